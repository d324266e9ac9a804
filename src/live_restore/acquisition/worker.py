"""Restoring into a store: the store sink, and the background worker of a live acquisition.

The worker restores queued frames in micro-batches at a lower OS priority, so a CPU restorer
cannot starve the acquisition thread (notes/pymmcore.md §6), writes each result beside its raw
frame and marks it in the ledger. A frame whose pixels were not kept in RAM (the hook's budget
was full) is read back from the raw array, so memory stays flat and no frame is lost.
"""

from __future__ import annotations

import logging
import os
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

import numpy as np
from psygnal import Signal, SignalGroup

from live_restore.acquisition.restore_loop import FrameSink, LoopCounts, restore_frames
from live_restore.acquisition.store import AcquisitionStore, FrameIndex
from live_restore.models.restorer import Restorer

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "LOWEST_PRIORITY_NICE",
    "LiveRestorerSignals",
    "RestoreJob",
    "RestoreStats",
    "RestoreWorker",
    "StoreSink",
    "skip_reason",
]

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 4
"""Frames restored together when that many are waiting: fewer restorer calls when behind,
no waiting for a batch to fill when keeping up."""

LOWEST_PRIORITY_NICE = 19
"""The worker's default nice value: the OS runs it only when the acquisition thread is idle."""

CORES_KEPT_FOR_ACQUISITION = 1
"""CPU cores torch's intra-op pool leaves free for the acquisition thread."""


def skip_reason(channel: str) -> str:
    """The ledger's reason for a frame left raw by design."""
    return f"no restorer for channel {channel!r}"


class LiveRestorerSignals(SignalGroup):
    """Signals of a :class:`~live_restore.acquisition.hook.LiveRestorer`; emitted from the
    worker thread."""

    frameRestored = Signal(object, object, dict)
    """``(restored (Y, X) float32 in camera units, event: useq.MDAEvent, meta: dict)``."""
    restoreFailed = Signal(object, str)
    """``(event, reason)``: the raw frame is saved; the ledger holds the reason."""
    rawWriteFailed = Signal(object, str)
    """``(event, reason)``: the store refused the raw frame (disk full, bad frame)."""


class StoreSink(FrameSink[FrameIndex]):
    """Restored frames into the store with the model (name@checksum) that made them; failures
    and skips into the ledger. A std map the store has no room for (created without
    ``uncertainty``) is dropped, not an error."""

    def __init__(self, store: AcquisitionStore) -> None:
        self.store = store

    def write(self, key: FrameIndex, mean: np.ndarray, std: np.ndarray | None,
              restorer: Restorer) -> None:
        self.store.write_restored(key, mean, std if self.store.has_uncertainty else None,
                                  model=f"{restorer.name}@{restorer.version}")

    def fail(self, key: FrameIndex, reason: str, error: Exception) -> None:
        log.warning("restoring frame %s failed: %s", dict(key), reason)
        self._record(self.store.mark_failed, key, reason)

    def skip(self, key: FrameIndex) -> None:
        self.skip_channel(key, self.store.channel_name(key))

    def skip_channel(self, key: FrameIndex, channel: str) -> None:
        """Mark ``key`` skipped because ``channel`` has no restorer."""
        self._record(self.store.mark_skipped, key, skip_reason(channel))

    @staticmethod
    def _record(mark: Callable[[FrameIndex, str], None], key: FrameIndex, reason: str) -> None:
        """A ledger that cannot be written (disk full) must not stop the acquisition."""
        try:
            mark(key, reason)
        except Exception:
            log.exception("could not record the outcome of frame %s in the ledger", dict(key))


@dataclass
class RestoreJob:
    """One frame waiting for the worker; ``frame`` is None when it must be read back."""

    index: dict[str, int]
    event: Any
    t_ready: float
    frame: np.ndarray | None
    meta: dict | None
    restorer: Restorer


@dataclass
class RestoreStats(LoopCounts):
    """What the worker measured; latencies from frameReady to restored frame written."""

    evicted: int = 0
    latencies_ms: list[float] = field(default_factory=list)

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else float("nan")


class _WorkerSink(FrameSink[RestoreJob]):
    """The store sink plus the worker's signals and latencies."""

    def __init__(self, store: StoreSink, signals: LiveRestorerSignals, stats: RestoreStats):
        self.store = store
        self.signals = signals
        self.stats = stats

    def write(self, key: RestoreJob, mean: np.ndarray, std: np.ndarray | None,
              restorer: Restorer) -> None:
        self.store.write(key.index, mean, std, restorer)
        self.stats.latencies_ms.append((time.perf_counter() - key.t_ready) * 1e3)
        self.signals.frameRestored.emit(mean, key.event, key.meta or {})

    def fail(self, key: RestoreJob, reason: str, error: Exception) -> None:
        self.store.fail(key.index, reason, error)
        self.signals.restoreFailed.emit(key.event, reason)


class RestoreWorker(threading.Thread):
    """Takes queued frames in micro-batches of what is waiting, restores, writes."""

    _STOP = object()

    def __init__(
        self,
        store: AcquisitionStore,
        signals: LiveRestorerSignals,
        release_ram: Callable[[int], None],
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        nice: int = LOWEST_PRIORITY_NICE,
    ) -> None:
        super().__init__(name="live-restore-worker", daemon=True)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
        self.store = store
        self.batch_size = batch_size
        self.nice = nice
        self.stats = RestoreStats()
        self._sink = _WorkerSink(StoreSink(store), signals, self.stats)
        self._release_ram = release_ram
        self._queue: queue.Queue[Any] = queue.Queue()
        self._abandon = threading.Event()

    def submit(self, job: RestoreJob) -> None:
        self._queue.put(job)

    def finish(self, drain: bool = True) -> None:
        """Ask the worker to stop after the backlog (``drain``) or after the current batch."""
        if not drain:
            self._abandon.set()
        self._queue.put(self._STOP)

    @property
    def backlog(self) -> int:
        return self._queue.qsize()

    def run(self) -> None:
        self._lower_priority()
        restore_frames(self._micro_batches(), read=self._load,
                       restorer_for=attrgetter("restorer"), sink=self._sink, counts=self.stats)

    def _micro_batches(self) -> Iterator[list[RestoreJob]]:
        """Block for the next job, then take whatever else is already waiting (up to the batch
        size), so a worker that keeps up never waits for a batch to fill."""
        pending: Any = None
        while True:
            job = pending if pending is not None else self._queue.get()
            pending = None
            if job is self._STOP or self._abandon.is_set():
                self._abandon_queue(job)
                return
            batch = [job]
            while len(batch) < self.batch_size:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is self._STOP:
                    pending = nxt
                    break
                batch.append(nxt)
            yield batch

    def _abandon_queue(self, job: Any) -> None:
        """Leave unrestored frames marked RAW in the ledger so ``resume`` finds them."""
        while job is not None:
            if job is not self._STOP and job.frame is not None:
                self._release_ram(job.frame.nbytes)
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                job = None

    def _lower_priority(self) -> None:
        """Keep a CPU restorer from starving the acquisition thread (notes/pymmcore.md §6)."""
        if self.nice > 0 and sys.platform.startswith("linux"):
            with suppress(OSError):
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), self.nice)
        if "torch" in sys.modules:
            import torch

            torch.set_num_threads(max(1, (os.cpu_count() or 2) - CORES_KEPT_FOR_ACQUISITION))

    def _load(self, job: RestoreJob) -> np.ndarray:
        if job.frame is not None:
            frame = job.frame
            self._release_ram(frame.nbytes)
            job.frame = None
            return frame
        self.stats.evicted += 1
        job.meta = self.store.frame_metadata(job.index)
        return self.store.read_raw(job.index)
