"""Live view: restore the newest frame of a continuous acquisition, skipping stale ones.

Focusing and finding a cell need the *current* frame, not a queue of old ones: when the
restorer is slower than the camera, every frame but the newest is dropped (nothing is saved
in live view; use an MDA with :class:`~live_restore.acquisition.live.LiveRestorer` to record).
"""

from __future__ import annotations

import logging
import threading
import time

import numpy as np
from psygnal import Signal, SignalGroup
from pymmcore_plus import CMMCorePlus

from live_restore.models.restorer import Restorer

log = logging.getLogger(__name__)


class LiveViewSignals(SignalGroup):
    frameRestored = Signal(object, object, dict)
    """``(restored (Y, X) float32, raw (Y, X), {"skipped_total": frames dropped so far})``."""


class LiveView:
    """Runs ``core.startContinuousSequenceAcquisition`` and restores the newest frame."""

    def __init__(self, core: CMMCorePlus, restorer: Restorer, *, poll_s: float = 0.002) -> None:
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
        self.core.startContinuousSequenceAcquisition(0)
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

    def _run(self) -> None:
        while not self._stop.is_set():
            raw = self._newest()
            if raw is None:
                time.sleep(self.poll_s)
                continue
            skipped_before = self.skipped
            try:
                restored = self.restorer.restore(raw[None].astype(np.float32)).mean[0]
            except Exception:
                log.exception("live view could not restore a frame; showing the next one")
                continue
            self.shown += 1
            self.signals.frameRestored.emit(restored, raw, {"skipped_total": skipped_before})
