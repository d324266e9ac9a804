"""``live-restore bench scale``: frames per second restoring a store in one process and on a
local Dask cluster of 1 and 2 workers, and whether the cluster's frames are the same.

One store of simulated-looking frames (Poisson noise on a smooth pattern) is copied once per
arm, so every arm restores the same pending frames. The single-process arm is ``resume``; the
cluster arms are :func:`live_restore.distributed.blockwise.restore_store` on a fresh
``LocalCluster`` (one thread per worker). Frames per second are the steady state: every
process loads its model first, and that start-up (cluster, imports and model loads; the
model load alone for one process) is reported beside it. Scaling
efficiency is fps(2 workers) / (2 × fps(1 worker)). Deterministic restorers must give
bit-identical frames; sampling restorers draw fresh noise per call, so only their spread is
reported.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from live_restore.acquisition.run import resume
from live_restore.acquisition.store import AcquisitionStore, FrameStatus
from live_restore.distributed.blockwise import dask_client, restore_store, warm_up
from live_restore.experiments.environment import machine, software_versions
from live_restore.models.restorer import get_restorer

__all__ = ["bench_scale"]


def _make_store(path: Path, frames: int, size: int) -> None:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size]
    clean = 20 + 30 * np.sin(xx / 7.0) ** 2 * np.cos(yy / 11.0) ** 2
    with AcquisitionStore.create(path, sizes={"t": frames}, frame_shape=(size, size),
                                 dtype="uint16") as store:
        for t in range(frames):
            store.write_raw({"t": t}, rng.poisson(clean).astype(np.uint16))


def _frames(path: Path) -> np.ndarray:
    with AcquisitionStore.open(path, mode="r") as store:
        return np.stack([store.read_restored(i) for i in store.indices(FrameStatus.RESTORED)])


def _arm(model: str, source: Path, work: Path, workers: int | None) -> tuple[dict, np.ndarray]:
    path = work / f"{model}_{workers or 'single'}.zarr"
    shutil.copytree(source, path)
    if workers is None:
        t_start = time.perf_counter()
        restorer = get_restorer(model)
        t0 = time.perf_counter()
        done = resume(path, restorer)
    else:
        t_start = time.perf_counter()
        with dask_client(workers) as client:
            warm_up(client, model)
            t0 = time.perf_counter()
            done = restore_store(path, model, client).restored
    seconds, startup = time.perf_counter() - t0, t0 - t_start
    row = {"workers": workers, "frames": done, "seconds": seconds,
           "fps": done / seconds if seconds else None, "startup_s": startup}
    return row, _frames(path)


def bench_scale(models: Sequence[str] = ("classical", "denoise"), *, frames: int = 32,
                size: int = 256, command: str | None = None,
                say: Callable[[str], None] = lambda _msg: None) -> dict[str, Any]:
    """Run every arm for every model (module docstring); the JSON-able result."""
    results: dict[str, Any] = {}
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the single-process arm gets what one worker gets
    try:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            _make_store(work / "source.zarr", frames, size)
            for model in models:
                rows, outputs = {}, {}
                for arm, workers in (("single_process", None), ("dask_1_worker", 1),
                                     ("dask_2_workers", 2)):
                    say(f"scale: {model} {arm}")
                    rows[arm], outputs[arm] = _arm(model, work / "source.zarr", work, workers)
                one, two = rows["dask_1_worker"]["fps"], rows["dask_2_workers"]["fps"]
                diffs = {arm: float(np.max(np.abs(out - outputs["single_process"])))
                         for arm, out in outputs.items() if arm != "single_process"}
                results[model] = {
                    "version": get_restorer(model).version,
                    "arms": rows,
                    "scaling_efficiency_2_workers": two / (2 * one) if one and two else None,
                    "max_abs_difference_to_single_process": diffs,
                    "bit_identical": all(d == 0.0 for d in diffs.values()),
                }
    finally:
        torch.set_num_threads(previous_threads)
    return {
        "benchmark": "scale",
        "command": command,
        "data": {"frames": frames, "size_px": size, "dtype": "uint16",
                 "source": "Poisson noise on a smooth pattern, one store copied per arm"},
        "gpu_worker": "no GPU on this machine" if not torch.cuda.is_available() else
                      "not measured: run with --device cuda",
        "machine": machine(),
        "software": software_versions((*("torch", "numpy"), "dask", "distributed")),
        "models": results,
    }
