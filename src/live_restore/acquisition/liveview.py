"""Live view: restore the newest frame of a continuous acquisition, skipping stale ones.

Focusing and finding a cell need the *current* frame, not a queue of old ones: when the
restorer is slower than the camera, every frame but the newest is dropped (nothing is saved
in live view; use an MDA with :class:`~live_restore.acquisition.hook.LiveRestorer` to record).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from psygnal import Signal, SignalGroup
from pymmcore_plus import CMMCorePlus

from live_restore.acquisition.restore_loop import FrameSink, restore_frames
from live_restore.models.restorer import Restorer

log = logging.getLogger(__name__)

DEFAULT_POLL_S = 0.002
"""Wait between looks at an empty circular buffer: short against any camera's frame time."""

CONTINUOUS = 0
"""``startContinuousSequenceAcquisition``'s interval: as fast as the camera runs."""


class LiveViewSignals(SignalGroup):
    frameRestored = Signal(object, object, dict)
    """``(restored (Y, X) float32, raw (Y, X), {"skipped_total": frames dropped so far})``."""


@dataclass(frozen=True)
class _NewestFrame:
    raw: np.ndarray
    skipped_total: int


class _ShowSink(FrameSink[_NewestFrame]):
    """Restored frames out through the view's signal; a failure is logged and the next frame
    shown (nothing is saved in live view, so there is nothing to record)."""

    def __init__(self, view: LiveView) -> None:
        self.view = view

    def write(self, key: _NewestFrame, mean: np.ndarray, std: np.ndarray | None,
              restorer: Restorer) -> None:
        self.view.shown += 1
        self.view.signals.frameRestored.emit(mean, key.raw, {"skipped_total": key.skipped_total})

    def fail(self, key: _NewestFrame, reason: str, error: Exception) -> None:
        log.warning("live view could not restore a frame (%s); showing the next one", reason)


class LiveView:
    """Runs ``core.startContinuousSequenceAcquisition`` and restores the newest frame."""

    def __init__(self, core: CMMCorePlus, restorer: Restorer, *,
                 poll_s: float = DEFAULT_POLL_S) -> None:
        self.core = core
        self.restorer = restorer
        self.poll_s = poll_s
        self.signals = LiveViewSignals()
        self.shown = 0
        self.skipped = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("live view is already running")
        self._stop.clear()
        self.core.startContinuousSequenceAcquisition(CONTINUOUS)
        self._thread = threading.Thread(target=self._run, name="live-restore-view", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self.core.isSequenceRunning():
            self.core.stopSequenceAcquisition()

    def __enter__(self) -> LiveView:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _newest(self) -> np.ndarray | None:
        """Pop everything waiting in the circular buffer; keep only the last frame."""
        newest = None
        while self.core.getRemainingImageCount() > 0:
            if newest is not None:
                self.skipped += 1
            newest = self.core.popNextImage()
        return newest

    def _newest_frames(self) -> Iterator[list[_NewestFrame]]:
        """The newest frame whenever there is one, until stopped."""
        while not self._stop.is_set():
            raw = self._newest()
            if raw is None:
                time.sleep(self.poll_s)
                continue
            yield [_NewestFrame(raw, self.skipped)]

    def _run(self) -> None:
        restore_frames(self._newest_frames(), read=lambda frame: frame.raw,
                       restorer_for=lambda _: self.restorer, sink=_ShowSink(self))
