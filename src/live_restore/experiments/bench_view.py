"""``live-restore bench acquisition --view``: does watching live cost the acquisition frames?

The same hooked MDA on Micro-Manager's genuine DemoCamera as ``bench acquisition``, in two arms
interleaved (alternating which goes first): without a window, and with the viewer window open,
following the store and redrawing as frames arrive (the acquisition on its own thread, as
``acquire --view`` runs it). The frame rate is timed over the MDA itself, first exposure to
last raw frame written; the window builds its panels before the first exposure, and that
start-up delay is reported beside it. Needs a display (Xvfb here).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from live_restore.acquisition.core import managed_core
from live_restore.acquisition.run import AcquisitionReport, run_acquisition
from live_restore.experiments.bench_acquisition import (
    DEMOCAM_EXPOSURE_MS,
    DEMOCAM_SIZE,
    WARMUP_FRAMES,
    democam_sequence,
    setup_democam,
)
from live_restore.models.restorer import get_restorer

VIEW_FRAMES = 1000
"""Frames per run: a few seconds, so the window's one-off costs weigh as in a real session."""
VIEW_REPEATS = 5

VIEW_OVERHEAD_TARGET = 1.05
"""The acquisition may not slow down by more than 5 % while the window is open."""


def bench_acquisition_view(
    *, frames: int = VIEW_FRAMES, repeats: int = VIEW_REPEATS,
    size: int = DEMOCAM_SIZE, exposure_ms: float = DEMOCAM_EXPOSURE_MS,
    model: str = "classical", screenshot: Path | None = None,
) -> dict[str, Any]:
    """Hooked MDA without and with the viewer window; ``screenshot`` keeps the window of the
    last viewed run as a PNG."""
    from live_restore.viewer.app import qt_application, run_with_viewer
    from live_restore.viewer.window import RestoreWindow

    qt_application()
    restorer = get_restorer(model)
    sequence = democam_sequence(frames)
    plain: list[AcquisitionReport] = []
    viewed: list[AcquisitionReport] = []
    redraws: list[int] = []
    with managed_core(None) as core, tempfile.TemporaryDirectory() as tmp:
        setup_democam(core, size, exposure_ms)

        def with_window(path: Path, last: bool) -> AcquisitionReport:
            window = RestoreWindow()
            shot = screenshot if last and screenshot is not None else Path(tmp) / "shot.png"
            report = run_with_viewer(
                lambda watch: run_acquisition(core, sequence, path, restorer, watch=watch),
                screenshot=shot, window=window)
            redraws.append(window.redraws)
            return report

        warm = democam_sequence(WARMUP_FRAMES)
        run_acquisition(core, warm, Path(tmp) / "warm.zarr", restorer)
        for rep in range(repeats):
            viewed_first = rep % 2 == 1
            if viewed_first:
                viewed.append(with_window(Path(tmp) / f"viewed{rep}.zarr", rep == repeats - 1))
            plain.append(run_acquisition(core, sequence, Path(tmp) / f"plain{rep}.zarr",
                                         restorer))
            if not viewed_first:
                viewed.append(with_window(Path(tmp) / f"viewed{rep}.zarr", rep == repeats - 1))
    plain_fps = [frames / r.acquisition_seconds for r in plain]
    viewed_fps = [frames / r.acquisition_seconds for r in viewed]
    base, watched = float(np.median(plain_fps)), float(np.median(viewed_fps))
    startup = float(np.median([r.setup_seconds for r in viewed])
                    - np.median([r.setup_seconds for r in plain]))
    return {
        "scenario": "democam, viewer window open",
        "camera": f"DemoCamera {size}x{size} uint16, {exposure_ms} ms exposure",
        "restorer": model,
        "frames": frames,
        "repeats": repeats,
        "timing": "frame rate over the MDA, first exposure to last raw frame written; both "
                  "arms hooked (live_restore store, restoring in the background), the viewed "
                  "arm with the viewer window following the store; the window's start-up "
                  "(building its panels before the first exposure) apart",
        "display": os.environ.get("DISPLAY", ""),
        "hooked_fps": base,
        "viewed_fps": watched,
        "overhead_ratio": base / watched if watched else float("inf"),
        "window_startup_seconds": startup,
        "target_overhead_ratio": VIEW_OVERHEAD_TARGET,
        "hooked_fps_runs": plain_fps,
        "viewed_fps_runs": viewed_fps,
        "redraws_per_viewed_run": redraws,
        "raw_frames_written_viewed": [r.raw_frames_written for r in viewed],
        "restored_viewed": [r.restored for r in viewed],
        "cpu_count": os.cpu_count(),
    }
