"""Benchmarks behind ``live-restore bench``: named scenarios, warm-up, interleaved repeats.

``acquisition`` asks the product's central question: does live restoration cost the
acquisition frames? It runs the same MDA on Micro-Manager's genuine DemoCamera with
pymmcore-plus writing its own OME-Zarr (the baseline) and with live_restore hooked in,
interleaved so that machine noise hits both alike.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import useq

from live_restore import sim
from live_restore.acquisition.live import managed_core, run_acquisition
from live_restore.models.restorer import Restorer, RestoreResult, get_restorer


def _rss_mb() -> float:
    """Current resident set size of this process (Linux /proc; 0 where unavailable)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


class _RssSampler(threading.Thread):
    """Samples RSS every 20 ms so the peak during a run is seen, not only its end."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak = _rss_mb()
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(0.02):
            self.peak = max(self.peak, _rss_mb())

    def stop(self) -> float:
        self._stop_event.set()
        self.join()
        return self.peak


class SlowRestorer:
    """Wraps a restorer and adds a fixed delay per frame: a stand-in for a heavy model."""

    def __init__(self, inner: Restorer, seconds_per_frame: float) -> None:
        self.inner = inner
        self.seconds_per_frame = seconds_per_frame
        self.name = f"slow-{inner.name}"
        self.version = inner.version

    def restore(
        self, batch: np.ndarray, *, samples: int = 1, seed: int | None = None
    ) -> RestoreResult:
        time.sleep(self.seconds_per_frame * len(batch))
        return self.inner.restore(batch, samples=samples, seed=seed)


def _democam_sequence(frames: int) -> useq.MDASequence:
    return useq.MDASequence(time_plan={"interval": 0, "loops": frames})


def _setup_democam(core: Any, size: int, exposure_ms: float) -> None:
    core.setProperty("Camera", "OnCameraCCDXSize", size)
    core.setProperty("Camera", "OnCameraCCDYSize", size)
    core.setProperty("Camera", "PixelType", "16bit")
    core.setExposure(exposure_ms)


def bench_acquisition(
    *, frames: int = 200, repeats: int = 3, size: int = 512, exposure_ms: float = 1.0,
    model: str = "classical", slow_factor: float = 10.0,
) -> dict[str, Any]:
    """Baseline vs hooked acquisition on the DemoCamera, plus a slow-restorer memory run."""
    restorer = get_restorer(model)
    sequence = _democam_sequence(frames)
    baseline_fps: list[float] = []
    hooked: list[dict[str, Any]] = []
    with managed_core(None) as core, tempfile.TemporaryDirectory() as tmp:
        _setup_democam(core, size, exposure_ms)
        core.mda.run(_democam_sequence(10))  # warm-up: camera, writer, first restore
        run_acquisition(core, _democam_sequence(10), Path(tmp) / "warm.zarr", restorer)
        for rep in range(repeats):
            t0 = time.perf_counter()
            core.mda.run(sequence, output=str(Path(tmp) / f"baseline{rep}.ome.zarr"))
            baseline_fps.append(frames / (time.perf_counter() - t0))
            report = run_acquisition(core, sequence, Path(tmp) / f"hooked{rep}.zarr", restorer)
            hooked.append(report.to_dict())
        camera_period = 1.0 / float(np.median(baseline_fps))
        slow = SlowRestorer(restorer, slow_factor * camera_period)
        rss_before = _rss_mb()
        sampler = _RssSampler()
        sampler.start()
        slow_report = run_acquisition(core, sequence, Path(tmp) / "slow.zarr", slow)
        peak = sampler.stop()
    hooked_fps = float(np.median([h["acquisition_fps"] for h in hooked]))
    base = float(np.median(baseline_fps))
    best = hooked[int(np.argsort([h["acquisition_fps"] for h in hooked])[len(hooked) // 2])]
    return {
        "scenario": "democam",
        "camera": f"DemoCamera {size}x{size} uint16, {exposure_ms} ms exposure",
        "restorer": model,
        "frames": frames,
        "repeats": repeats,
        "baseline_fps": base,
        "hooked_fps": hooked_fps,
        "overhead_ratio": base / hooked_fps if hooked_fps else float("inf"),
        "baseline_fps_runs": baseline_fps,
        "hooked_fps_runs": [h["acquisition_fps"] for h in hooked],
        "raw_frames_written": best["raw_frames_written"],
        "frames_emitted": best["frames_emitted"],
        "restored_frames": best["restored"],
        "pending_after_drain": best["pending"],
        "restore_fps": best["restore_fps"],
        "latency_ms_p50": best["latency_ms_p50"],
        "latency_ms_p95": best["latency_ms_p95"],
        "peak_rss_mb": peak,
        "slow_restorer": {
            "seconds_per_frame": slow.seconds_per_frame,
            "frames_emitted": slow_report.frames_emitted,
            "raw_frames_written": slow_report.raw_frames_written,
            "restored_frames": slow_report.restored,
            "pending_after_drain": slow_report.pending,
            "acquisition_fps": slow_report.acquisition_fps,
            "rss_growth_mb": peak - rss_before,
        },
        "cpu_count": os.cpu_count(),
    }


def bench_simulator(*, frames: int = 200, pairs: int = 16, size: int = 512) -> dict[str, Any]:
    """Frame rate of the simulated camera inside a real MDA, and paired-data throughput."""
    from live_restore.experiments.demo import default_config

    out: dict[str, Any] = {"frame_shape": [size, size], "frames": frames, "mda": {}}
    sequences = {
        "sequenced_confocal": useq.MDASequence(
            channels=[{"group": "Modality", "config": "Confocal"}],
            time_plan={"interval": 0, "loops": frames}),
        "snaps_confocal_sted": useq.MDASequence(
            channels=[{"group": "Modality", "config": c} for c in ("Confocal", "STED")],
            time_plan={"interval": 0, "loops": frames // 2}),
    }
    with managed_core(default_config()) as core:
        if size < core.getImageWidth():
            core.setROI(0, 0, size, size)
        core.mda.run(useq.MDASequence(time_plan={"interval": 0, "loops": 5}))  # warm tile cache
        for name, seq in sequences.items():
            t0 = time.perf_counter()
            core.mda.run(seq)
            out["mda"][name] = {"fps": frames / (time.perf_counter() - t0)}
    out["pairs"] = {}
    for task in ("denoise", "confocal2sted"):
        t0 = time.perf_counter()
        sim.make_pairs(task, pairs, seed=1234, size=256)
        seconds = time.perf_counter() - t0
        out["pairs"][task] = {"pairs": pairs, "size": 256, "seconds": seconds,
                              "minutes_per_1000": seconds / pairs * 1000 / 60}
    out["cpu_count"] = os.cpu_count()
    return out
