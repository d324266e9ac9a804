"""A camera that plays a recorded stack back through the real MDA engine (UniMMCore device).

Replaying a real low-dose acquisition exercises the whole live path (engine, hook, store,
restorer) on real noise without a microscope. Load it with ``hardware_configs/replay.cfg``
and point its ``Path`` property at a TIFF (2-D, T×Y×X or more axes) or an OME-Zarr image
(a live_restore store's ``raw`` series, or level 0 of any multiscale image); the planes come
out in file order, one per snapped or sequenced frame, in the file's dtype and shape.

At the end of the stack with ``Loop`` = ``no`` the camera stops instead of inventing frames:
a hardware sequence ends early with the planes it delivered (pymmcore-plus logs "Unexpected
number of images" and the MDA finishes), and a snap with no plane left raises a one-line
error, which the MDA engine logs before moving on to the next event. Either way the MDA ends
on its own; the frames past the end are simply never emitted. Setting ``NextPlane`` (or
``Path`` again) rewinds.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
from pymmcore_plus import CMMCorePlus
from pymmcore_plus.experimental.unicore import CameraDevice, pymm_property

from live_restore.acquisition.batch import load_image

__all__ = ["REPLAY_DTYPES", "ReplayCamera", "load_stack", "replay_stack"]

log = logging.getLogger(__name__)

REPLAY_DTYPES = (np.dtype(np.uint8), np.dtype(np.uint16))
"""What a camera delivers; a float stack is a processed one, not a recording."""
MAX_FRAME_INTERVAL_MS = 10_000.0
PIXEL_SIZE_PRESET = "Replay"


def load_stack(path: str | Path) -> np.ndarray:
    """The planes of a recorded stack, ``(N, Y, X)`` uint8/uint16 in file order.

    Raises FileNotFoundError for a missing file and ValueError for an unreadable file, a
    stack with fewer than two axes, or a dtype no camera delivers (float, signed, 32-bit).
    """
    path = Path(path)
    try:
        image = load_image(path)
    except FileNotFoundError:
        raise
    except Exception as exc:
        raise ValueError(f"cannot replay {str(path)!r}: {exc}") from exc
    if image.ndim < 2 or min(image.shape[-2:]) < 1:
        raise ValueError(f"replay stack {str(path)!r} has shape {image.shape}; need (..., Y, X)")
    if image.dtype not in REPLAY_DTYPES:
        raise ValueError(
            f"replay stack {str(path)!r} is {image.dtype}; a camera delivers uint8 or uint16 "
            "(convert processed or float stacks back to the camera's integer type)"
        )
    return np.ascontiguousarray(image.reshape(-1, *image.shape[-2:]))


class ReplayCamera(CameraDevice):
    """Plays the planes of ``Path`` in order; see the module docstring for the end of the stack.

    ``FrameIntervalMs`` is the shortest time between two delivered frames (0: as fast as the
    MDA asks); ``Exposure`` is recorded, not waited for, because the planes are already
    exposed. ``PixelSizeUm`` is stamped on every frame's camera metadata; the core's pixel
    size comes from a pixel-size preset (see :func:`replay_stack`). Software ROI works on
    the planes; binning stays 1.
    """

    def __init__(self) -> None:
        super().__init__()
        self._path = ""
        self._planes: np.ndarray | None = None
        self._next = 0
        self._loop = False
        self._interval_ms = 0.0
        self._exposure_ms = 10.0
        self._pixel_size_um = 1.0
        self._roi: tuple[int, int, int, int] | None = None
        self._last_frame_t: float | None = None
        self._plane_lock = threading.Lock()  # the acquisition thread advances _next

    # --- the stack ---------------------------------------------------------------------
    @pymm_property(name="Path")
    def path(self) -> str:
        """The stack being replayed (TIFF file or OME-Zarr directory); setting it rewinds."""
        return self._path

    @path.setter
    def path(self, value: str) -> None:
        path = str(value).strip()
        planes = load_stack(path)
        with self._plane_lock:
            self._planes, self._path, self._next, self._roi = planes, path, 0, None
        log.info("replaying %d planes of %s from %s", len(planes), planes.shape[1:], self._path)

    @pymm_property(name="Planes", is_read_only=True)
    def planes(self) -> int:
        """Number of (Y, X) planes in the stack (0 before ``Path`` is set)."""
        return 0 if self._planes is None else len(self._planes)

    @pymm_property(name="NextPlane")
    def next_plane(self) -> int:
        """Index of the plane the next frame shows; set it to rewind or skip ahead."""
        return self._next

    @next_plane.setter
    def next_plane(self, value: int) -> None:
        index = int(value)
        if not 0 <= index < max(self.planes, 1):
            raise ValueError(f"NextPlane must be in [0, {self.planes}), got {value!r}")
        with self._plane_lock:
            self._next = index

    @pymm_property(name="Loop", allowed_values=["no", "yes"])
    def loop(self) -> str:
        """At the end of the stack: ``yes`` starts over, ``no`` stops delivering frames."""
        return "yes" if self._loop else "no"

    @loop.setter
    def loop(self, value: str) -> None:
        self._loop = value == "yes"

    @pymm_property(name="FrameIntervalMs", limits=(0.0, MAX_FRAME_INTERVAL_MS))
    def frame_interval_ms(self) -> float:
        """Shortest time between two delivered frames in ms (the recording's pace, or 0)."""
        return self._interval_ms

    @frame_interval_ms.setter
    def frame_interval_ms(self, value: float) -> None:
        self._interval_ms = float(value)

    @pymm_property(name="PixelSizeUm", limits=(0.0, 1000.0))
    def pixel_size_um(self) -> float:
        """Pixel size of the recording in µm, stamped on each frame's camera metadata."""
        return self._pixel_size_um

    @pixel_size_um.setter
    def pixel_size_um(self, value: float) -> None:
        if float(value) <= 0:
            raise ValueError(f"PixelSizeUm must be > 0 µm, got {value!r}")
        self._pixel_size_um = float(value)

    @pymm_property(name="BitDepth", is_read_only=True)
    def bit_depth(self) -> int:
        """Bits per pixel of the stack's dtype (8 or 16)."""
        return self.dtype().itemsize * 8

    # --- camera API ----------------------------------------------------------------------
    def get_exposure(self) -> float:
        return self._exposure_ms

    def set_exposure(self, exposure: float) -> None:
        if float(exposure) < 0:
            raise ValueError(f"exposure must be >= 0 ms, got {exposure!r}")
        self._exposure_ms = float(exposure)

    def _stack(self) -> np.ndarray:
        if self._planes is None:
            raise ValueError(
                "the replay camera has no stack yet: set its Path property "
                "(config line '#py Property,Replay,Path,STACK')"
            )
        return self._planes

    def shape(self) -> tuple[int, int]:
        if self._roi is not None:
            return (self._roi[3], self._roi[2])
        return self._stack().shape[1:]  # type: ignore[return-value]

    def dtype(self) -> np.dtype:
        return np.dtype(np.uint16) if self._planes is None else self._planes.dtype

    def get_roi(self) -> tuple[int, int, int, int]:
        if self._roi is not None:
            return self._roi
        height, width = self._stack().shape[1:]
        return (0, 0, width, height)

    def set_roi(self, x: int, y: int, width: int, height: int) -> None:
        full_h, full_w = self._stack().shape[1:]
        if x < 0 or y < 0 or width < 1 or height < 1 or x + width > full_w or y + height > full_h:
            raise ValueError(f"ROI {(x, y, width, height)} is outside the {full_w}x{full_h} planes")
        self._roi = (x, y, width, height)

    def clear_roi(self) -> None:
        self._roi = None

    def _take_plane(self) -> tuple[int, np.ndarray] | None:
        """The next plane and its index, or None at the end of a non-looping stack."""
        planes = self._stack()
        with self._plane_lock:
            if self._next >= len(planes):
                if not self._loop:
                    return None
                self._next = 0
            index = self._next
            self._next += 1
        return index, planes[index]

    def _wait_for_interval(self) -> None:
        if self._last_frame_t is not None and self._interval_ms > 0:
            due = self._last_frame_t + self._interval_ms / 1e3
            if (wait := due - time.monotonic()) > 0:
                time.sleep(wait)
        self._last_frame_t = time.monotonic()

    def start_sequence(
        self, n: int | None, get_buffer: Callable[[Sequence[int], np.dtype], np.ndarray]
    ) -> Iterator[Mapping]:
        x, y, width, height = self.get_roi()
        delivered = 0
        while n is None or delivered < n:
            taken = self._take_plane()
            if taken is None:
                if delivered == 0:
                    raise RuntimeError(
                        f"replay stack {self._path!r} ended after {self.planes} planes and "
                        "Loop is 'no'; set NextPlane to 0 (or Loop to yes) to replay again"
                    )
                log.warning("replay stack %s ended after %d planes; the sequence stops "
                            "after %d frame(s)", self._path, self.planes, delivered)
                return
            index, plane = taken
            self._wait_for_interval()
            buffer = get_buffer((height, width), plane.dtype)
            buffer[:] = plane[y : y + height, x : x + width]
            delivered += 1
            yield {"ReplayPlane": str(index), "PixelSizeUm": str(self._pixel_size_um)}


def replay_stack(
    core: CMMCorePlus,
    stack: str | Path,
    *,
    camera: str = "Replay",
    pixel_size_um: float | None = None,
    loop: bool | None = None,
    frame_interval_ms: float | None = None,
) -> int:
    """Point the replay camera ``camera`` at ``stack``; return its number of planes.

    The core's pixel size (what the store records) is set to the camera's ``PixelSizeUm``
    in the active pixel-size preset, or in a new ``Replay`` preset that matches every state
    when none is active (a .cfg cannot key a preset on a Python device's property).
    """
    core.setProperty(camera, "Path", str(stack))
    if pixel_size_um is not None:
        core.setProperty(camera, "PixelSizeUm", pixel_size_um)
    if loop is not None:
        core.setProperty(camera, "Loop", "yes" if loop else "no")
    if frame_interval_ms is not None:
        core.setProperty(camera, "FrameIntervalMs", frame_interval_ms)
    preset = core.getCurrentPixelSizeConfig()
    if not preset:
        preset = PIXEL_SIZE_PRESET
        core.definePixelSizeConfig(preset)
    core.setPixelSizeUm(preset, float(core.getProperty(camera, "PixelSizeUm")))
    return int(core.getProperty(camera, "Planes"))
