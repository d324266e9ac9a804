"""Peer methods for ``bench real`` that live in their own Python environment: CAREamics N2V2.

CAREamics 0.3.5 pins ``torchvision<=0.26``, which needs ``torch==2.11``, while the package runs
on a newer torch; the two cannot share one environment. So N2V2 runs in a separate *peer
environment*: this module writes each field's noisy frames as ``.npy`` files, runs
:mod:`live_restore.experiments.n2v2_job` there as a script (it imports nothing from
``live_restore``) and reads the predictions back.

Creating the peer environment (``make peers`` does exactly this)::

    python3 -m venv .venv-peers
    .venv-peers/bin/pip install careamics==0.3.5

On Linux x86_64 PyPI only has the CUDA build of ``torch==2.11`` (about 5 GB installed with
its NVIDIA libraries); it runs on CPU as well. Where the PyTorch CPU wheel index is reachable,
``pip install torch==2.11.* --index-url https://download.pytorch.org/whl/cpu`` before
CAREamics keeps the environment small.

The interpreter used is, in order: the ``python`` argument (``--peers-python``), the
:data:`PEERS_PYTHON_ENV` environment variable, :data:`DEFAULT_PEERS_PYTHON` (relative to the
working directory). When it is missing or cannot import CAREamics, the benchmark reports the
N2V2 row as skipped with :func:`careamics_unavailable`'s reason.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "DEFAULT_PEERS_PYTHON",
    "PEERS_PYTHON_ENV",
    "N2V2Result",
    "careamics_unavailable",
    "peers_python",
    "run_n2v2",
]

logger = logging.getLogger(__name__)

PEERS_PYTHON_ENV = "LIVE_RESTORE_PEERS_PYTHON"
DEFAULT_PEERS_PYTHON = Path(".venv-peers") / "bin" / "python"
_JOB_SCRIPT = Path(__file__).with_name("n2v2_job.py")
_IMPORT_CHECK_TIMEOUT_S = 300


@dataclass(frozen=True)
class N2V2Result:
    """One field's N2V2 outcome: the first frame restored (float32 ``(Y, X)``, input units)."""

    prediction: np.ndarray
    steps: int
    train_cpu_s: float
    ms_per_frame: float


def peers_python(python: str | Path | None = None) -> Path:
    """The peer environment's interpreter: ``python``, else ``$LIVE_RESTORE_PEERS_PYTHON``, else
    :data:`DEFAULT_PEERS_PYTHON`."""
    if python is not None:
        return Path(python)
    return Path(os.environ.get(PEERS_PYTHON_ENV) or DEFAULT_PEERS_PYTHON)


def careamics_unavailable(python: Path) -> str | None:
    """Why N2V2 cannot run with ``python`` (one line), or None when CAREamics imports there."""
    if not python.is_file():
        return f"no peer environment: {python} does not exist (create it with `make peers`)"
    try:
        proc = subprocess.run(
            [str(python), "-c", "import careamics, lightning, torch"],
            capture_output=True,
            text=True,
            timeout=_IMPORT_CHECK_TIMEOUT_S,
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"peer environment {python} does not run: {err}"
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"]
        return f"CAREamics is not importable with {python}: {lines[-1]}"
    return None


def _patch_size(shape: tuple[int, ...]) -> int:
    """CAREamics' usual 64 px patch, or the largest power of two that fits a smaller frame."""
    side = min(shape[-2:])
    if side < 16:
        raise ValueError(f"N2V2 needs frames of at least 16×16 pixels, got {shape[-2:]}")
    return min(64, 1 << (side.bit_length() - 1))


def run_n2v2(
    python: Path,
    groups: Mapping[str, tuple[np.ndarray, Mapping[str, np.ndarray]]],
    *,
    cpu_seconds_per_group: float,
    batch_size: int = 16,
    seed: int = 1,
    threads: int = 1,
) -> tuple[dict[str, N2V2Result], dict[str, str]]:
    """Train one N2V2 network per group on its noisy frames and restore the group's frames.

    ``groups`` maps a group's name to its float32 ``(T, Y, X)`` training frames and the
    ``(Y, X)`` frames to restore, by name. Returns the results by restored frame's name and the
    peer's software versions. Raises RuntimeError (one line; the full log is written to the
    debug log) when the peer run fails.
    """
    if cpu_seconds_per_group <= 0:
        raise ValueError(f"cpu_seconds_per_group must be > 0, got {cpu_seconds_per_group!r}")
    shapes = {np.shape(frames)[-2:] for frames, _ in groups.values()}
    patch = min(_patch_size(shape) for shape in shapes)
    with tempfile.TemporaryDirectory(prefix="live-restore-n2v2-") as tmp:
        job_dir = Path(tmp)
        entries = []
        for g, (name, (frames, restore)) in enumerate(groups.items()):
            np.save(job_dir / f"frames_{g}.npy", np.asarray(frames, dtype=np.float32))
            restore_entries = []
            for k, (field, frame) in enumerate(restore.items()):
                np.save(job_dir / f"input_{g}_{k}.npy", np.asarray(frame, dtype=np.float32))
                restore_entries.append({"name": field, "input": f"input_{g}_{k}.npy",
                                        "prediction": f"prediction_{g}_{k}.npy"})
            entries.append({"name": name, "frames": f"frames_{g}.npy",
                            "restore": restore_entries})
        job = {
            "groups": entries,
            "cpu_seconds_per_group": cpu_seconds_per_group,
            "seed": seed,
            "threads": threads,
            "patch_size": patch,
            "batch_size": batch_size,
        }
        (job_dir / "job.json").write_text(json.dumps(job))
        # Generous wall limit: the budget is CPU time, and a shared machine stretches wall time.
        timeout_s = 600.0 + 4.0 * cpu_seconds_per_group * len(entries)
        env = os.environ | {"OMP_NUM_THREADS": str(threads), "PYTHONNOUSERSITE": "1"}
        try:
            proc = subprocess.run(
                [str(python), str(_JOB_SCRIPT), str(job_dir)],
                capture_output=True,
                text=True,
                timeout=timeout_s,
                env=env,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired as err:
            raise RuntimeError(f"N2V2 peer run exceeded {timeout_s:.0f} s") from err
        logger.debug("N2V2 peer output:\n%s\n%s", proc.stdout, proc.stderr)
        if proc.returncode != 0:
            lines = proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"]
            raise RuntimeError(f"N2V2 peer run failed: {lines[-1]}")
        report = json.loads((job_dir / "result.json").read_text())
        results = {
            field["name"]: N2V2Result(
                prediction=np.load(job_dir / field["prediction"]),
                **report["fields"][field["name"]],
            )
            for entry in entries
            for field in entry["restore"]
        }
    return results, dict(report["versions"])
