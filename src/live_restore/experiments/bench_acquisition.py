"""Benchmarks behind ``live-restore bench``: named scenarios, warm-up, interleaved repeats.

``acquisition`` asks the product's central question: does live restoration cost the
acquisition frames? It runs the same MDA on Micro-Manager's genuine DemoCamera in two arms,
like for like: plain pymmcore-plus writing the raw frames to OME-Zarr through its own sink, and
the same MDA with live_restore writing the raw frames to its store and restoring them in the
background. Each arm is timed from before its writer is set up until its last raw frame is
written; the restorer's own cost (busy time, the drain after the MDA, latency) is reported
beside it. Repeats alternate which arm goes first, so machine noise and warm caches hit both
alike.
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
from live_restore.acquisition.core import managed_core
from live_restore.acquisition.run import AcquisitionReport, run_acquisition
from live_restore.models.restorer import Restorer, RestoreResult, get_restorer

ACQUISITION_FRAMES = 200
ACQUISITION_REPEATS = 3
DEMOCAM_SIZE = 512
DEMOCAM_EXPOSURE_MS = 1.0
WARMUP_FRAMES = 10
"""Frames run through each arm before timing: camera, writers and the restorer's first call."""
SLOW_FACTOR = 10.0
"""The slow-restorer run's restorer takes this many camera frame periods per frame, so the
backlog (and the RAM budget that caps it) is exercised."""
RSS_SAMPLE_S = 0.02
SIMULATOR_WARMUP_FRAMES = 5


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
    """Samples RSS every ``RSS_SAMPLE_S`` so the peak during a run is seen, not only its end."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak = _rss_mb()
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(RSS_SAMPLE_S):
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


def democam_sequence(frames: int) -> useq.MDASequence:
    return useq.MDASequence(time_plan={"interval": 0, "loops": frames})


def setup_democam(core: Any, size: int, exposure_ms: float) -> None:
    core.setProperty("Camera", "OnCameraCCDXSize", size)
    core.setProperty("Camera", "OnCameraCCDYSize", size)
    core.setProperty("Camera", "PixelType", "16bit")
    core.setExposure(exposure_ms)


def _plain_arm(core: Any, sequence: useq.MDASequence, path: Path) -> float:
    """Seconds for plain pymmcore-plus: its sink is set up inside ``run`` and closed (last
    frame written) before ``run`` returns."""
    t0 = time.perf_counter()
    core.mda.run(sequence, output=str(path))
    return time.perf_counter() - t0


def _hooked_seconds(report: AcquisitionReport) -> float:
    """Seconds for the hooked arm on the same clock: store and hook set-up plus the MDA, whose
    raw frames are all written (on the acquisition thread) when it returns."""
    return report.setup_seconds + report.acquisition_seconds


def bench_acquisition(
    *, frames: int = ACQUISITION_FRAMES, repeats: int = ACQUISITION_REPEATS,
    size: int = DEMOCAM_SIZE, exposure_ms: float = DEMOCAM_EXPOSURE_MS,
    model: str = "classical", slow_factor: float = SLOW_FACTOR,
) -> dict[str, Any]:
    """Plain vs hooked acquisition on the DemoCamera, plus a slow-restorer memory run."""
    restorer = get_restorer(model)
    sequence = democam_sequence(frames)
    plain_seconds: list[float] = []
    hooked: list[AcquisitionReport] = []
    with managed_core(None) as core, tempfile.TemporaryDirectory() as tmp:
        setup_democam(core, size, exposure_ms)
        warm = democam_sequence(WARMUP_FRAMES)
        _plain_arm(core, warm, Path(tmp) / "warm.ome.zarr")
        run_acquisition(core, warm, Path(tmp) / "warm.zarr", restorer)
        for rep in range(repeats):
            plain = Path(tmp) / f"plain{rep}.ome.zarr"
            hooked_path = Path(tmp) / f"hooked{rep}.zarr"
            if rep % 2:
                hooked.append(run_acquisition(core, sequence, hooked_path, restorer))
                plain_seconds.append(_plain_arm(core, sequence, plain))
            else:
                plain_seconds.append(_plain_arm(core, sequence, plain))
                hooked.append(run_acquisition(core, sequence, hooked_path, restorer))
        base = frames / float(np.median(plain_seconds))
        slow = SlowRestorer(restorer, slow_factor / base)
        rss_before = _rss_mb()
        sampler = _RssSampler()
        sampler.start()
        slow_report = run_acquisition(core, sequence, Path(tmp) / "slow.zarr", slow)
        peak = sampler.stop()
    hooked_runs = [frames / _hooked_seconds(r) for r in hooked]
    hooked_fps = float(np.median(hooked_runs))
    median = hooked[int(np.argsort(hooked_runs)[len(hooked) // 2])]
    return {
        "scenario": "democam",
        "camera": f"DemoCamera {size}x{size} uint16, {exposure_ms} ms exposure",
        "restorer": model,
        "frames": frames,
        "repeats": repeats,
        "timing": "each arm from before its writer is set up until its last raw frame is "
                  "written; both write raw frames (plain: pymmcore-plus OME-Zarr sink; hooked: "
                  "live_restore store, restoring in the background)",
        "baseline_fps": base,
        "hooked_fps": hooked_fps,
        "overhead_ratio": base / hooked_fps if hooked_fps else float("inf"),
        "baseline_fps_runs": [frames / s for s in plain_seconds],
        "hooked_fps_runs": hooked_runs,
        "hooked_setup_seconds": median.setup_seconds,
        "raw_frames_written": median.raw_frames_written,
        "frames_emitted": median.frames_emitted,
        "restored_frames": median.restored,
        "pending_after_drain": median.pending,
        "restore_fps": median.restore_fps,
        "latency_ms_p50": median.latency_ms_p50,
        "latency_ms_p95": median.latency_ms_p95,
        "restorer_cost": {
            "busy_seconds": median.restore_busy_seconds,
            "drain_seconds_after_mda": median.total_seconds - median.acquisition_seconds,
            "restore_fps": median.restore_fps,
        },
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
        core.mda.run(democam_sequence(SIMULATOR_WARMUP_FRAMES))  # warm the tile cache
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
