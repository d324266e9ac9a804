"""Micro-Manager cores that always shut down cleanly, and what their camera will deliver."""

from __future__ import annotations

import atexit
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import numpy as np
from pymmcore_plus import CMMCorePlus

__all__ = ["core_pixel_size_um", "frame_format", "managed_core", "shutdown_core"]

logger = logging.getLogger(__name__)

CANCEL_TIMEOUT_S = 5.0
"""How long shutdown waits for a running MDA to honour its cancel before tearing down anyway."""

CANCEL_POLL_S = 0.01


def shutdown_core(core: CMMCorePlus) -> None:
    """Tear a core down so the interpreter cannot abort at exit.

    MMCore's callback thread may still be delivering into Python when the interpreter
    finalises; unregistering the callback joins that thread first.
    """
    if core.mda.is_running():
        core.mda.cancel()
        deadline = time.monotonic() + CANCEL_TIMEOUT_S
        while core.mda.is_running() and time.monotonic() < deadline:
            time.sleep(CANCEL_POLL_S)
    with suppress(Exception):
        super(CMMCorePlus, core).registerCallback(None)
    with suppress(Exception):
        core.unloadAllDevices()


@contextmanager
def managed_core(config: str | Path | None = None) -> Iterator[CMMCorePlus]:
    """A core (UniMMCore, so ``#py`` device lines load) that is always shut down cleanly.

    ``config=None`` loads Micro-Manager's genuine demo config (mm-test-adapters).
    """
    from pymmcore_plus.experimental.unicore import UniMMCore

    if config is not None and not Path(config).is_file():
        raise FileNotFoundError(f"Micro-Manager config not found: {config}")
    core = UniMMCore()
    atexit.register(shutdown_core, core)  # safety net if the caller is interrupted
    try:
        if config is None:
            core.loadSystemConfiguration()
        else:
            core.loadSystemConfiguration(str(config))
        yield core
    finally:
        shutdown_core(core)
        atexit.unregister(shutdown_core)


def frame_format(core: CMMCorePlus) -> tuple[tuple[int, int], np.dtype]:
    """The (Y, X) shape and dtype the current camera will deliver, before any frame exists.

    A UniMMCore Python camera states its dtype (float cameras included); a C++ camera only
    its bytes per pixel, which are read as unsigned integers.
    """
    components = core.getNumberOfComponents()
    if components != 1:
        raise ValueError(
            f"live_restore restores grey cameras; this one has {components} components"
        )
    shape = (core.getImageHeight(), core.getImageWidth())
    py_camera = getattr(core, "_py_camera", lambda: None)()
    if py_camera is not None:
        return shape, np.dtype(py_camera.dtype())
    return shape, np.dtype(f"uint{core.getBytesPerPixel() * 8}")


def core_pixel_size_um(core: CMMCorePlus) -> float | None:
    """The pixel size of the current objective, or None with one warning line when the core
    has none (it reports 0 when no pixel size configuration matches), so that a store records
    ``pixel_size_um: null`` and y/x in pixels instead of a made-up micrometre."""
    size = float(core.getPixelSizeUm())
    if size > 0:
        return size
    logger.warning(
        "the core reports no pixel size (no pixel size configuration matches the current "
        "objective): the store's y/x axes are in pixels; define one in the .cfg "
        "(ConfigPixelSize / PixelSize_um) to record micrometres"
    )
    return None
