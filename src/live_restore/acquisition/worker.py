"""Restoring into a store: the store sink, and the background worker of a live acquisition.

The worker restores queued frames in micro-batches at a lower OS priority, so a CPU restorer
cannot starve the acquisition thread, writes each result beside its raw
frame and marks it in the ledger. A frame whose pixels were not kept in RAM (the hook's budget
was full) is read back from the raw array, so memory stays flat and no frame is lost.

A channel's restorer can be switched while frames wait (:meth:`RestoreWorker.switch`, e.g. to a
model adapted on the first frames): queued frames of that channel are restored with the new one,
and the frames the old one already restored are restored again, in the gaps between live frames,
so every frame of the channel ends with the new model. A worker asked to stop while a switch is
announced (:meth:`RestoreWorker.hold`) waits for it.
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
from typing import Any

import numpy as np
from psygnal import Signal, SignalGroup

from live_restore.acquisition.restore_loop import FrameSink, LoopCounts, batched, restore_frames
from live_restore.acquisition.store import AcquisitionStore, FrameIndex
from live_restore.models.floor import check_against_floor, judges_restorer
from live_restore.models.restorer import Restorer

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "LOWEST_PRIORITY_NICE",
    "LiveRestorerSignals",
    "RestoreJob",
    "RestoreStats",
    "RestoreWorker",
    "StackSink",
    "StoreSink",
    "lower_thread_priority",
    "model_label",
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


def model_label(restorer: Restorer) -> str:
    """How the ledger names the model that restored a frame: ``name@version``."""
    return f"{restorer.name}@{restorer.version}"


def lower_thread_priority(nice: int) -> None:
    """Lower the calling thread's OS priority and leave a core to the acquisition thread, so
    background restoring or training cannot starve it."""
    if nice > 0 and sys.platform.startswith("linux"):
        with suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
    if "torch" in sys.modules:
        import torch

        torch.set_num_threads(max(1, (os.cpu_count() or 2) - CORES_KEPT_FOR_ACQUISITION))


class LiveRestorerSignals(SignalGroup):
    """Signals of a :class:`~live_restore.acquisition.hook.LiveRestorer`: ``rawSaved`` and
    ``rawWriteFailed`` from the thread delivering frames, the others from the worker thread.
    Slots must be quick and must not touch a GUI directly: a viewer relays them to its own
    thread (:mod:`live_restore.viewer`)."""

    rawSaved = Signal(object)
    """``(event: useq.MDAEvent)``: the frame's raw pixels are in the store."""

    frameRestored = Signal(object, object, dict)
    """``(restored (Y, X) float32 in camera units, event: useq.MDAEvent, meta: dict)``."""
    stackRestored = Signal(object, object)
    """``(restored (Z', Y, X) float32 z-stack at the restored spacing, event of its last
    plane)``: a stack model restored a whole stack (event None for a stack cut short,
    restored after the sequence with the planes it had)."""
    restoreFailed = Signal(object, str)
    """``(event, reason)``: the raw frame is saved; the ledger holds the reason."""
    rawWriteFailed = Signal(object, str)
    """``(event, reason)``: the store refused the raw frame (disk full, bad frame)."""


class StoreSink(FrameSink[FrameIndex]):
    """Restored frames into the store with the model (name@checksum) that made them and their
    check against the Gaussian floor (:mod:`live_restore.models.floor`, judged against the
    field's neighbouring time point when its raw frame is saved); failures and skips into the
    ledger. A std map the store has no room for (created without ``uncertainty``) is dropped,
    not an error."""

    def __init__(self, store: AcquisitionStore) -> None:
        self.store = store

    def write(self, key: FrameIndex, mean: np.ndarray, std: np.ndarray | None,
              restorer: Restorer) -> None:
        self.store.write_restored(key, mean, std if self.store.has_uncertainty else None,
                                  model=model_label(restorer),
                                  floor=self._floor_check(key, mean, restorer))

    def _floor_check(self, key: FrameIndex, mean: np.ndarray,
                     restorer: Restorer) -> dict[str, Any] | None:
        other = self.store.other_exposure(key) if judges_restorer(restorer) else None
        if other is None:
            return None
        check = check_against_floor(mean, self.store.read_raw(key), self.store.read_raw(other),
                                    self.store.label(other))
        if check is not None and check.below_floor:
            log.warning("restored frame %s is estimated %.2f dB below a Gaussian blur of it "
                        "(judged against %s); flagged in the ledger", self.store.label(key),
                        -check.gain_db, check.against)
        return None if check is None else check.to_json()

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


class StackSink(FrameSink[FrameIndex]):
    """Restored z-stacks into the store, one journal line per stack (the key is any index
    of the stack); a failure marks every raw plane of the stack FAILED with its reason."""

    def __init__(self, store: AcquisitionStore) -> None:
        self.store = store

    def write(self, key: FrameIndex, mean: np.ndarray, std: np.ndarray | None,
              restorer: Restorer) -> None:
        self.store.write_restored_stack(key, mean, model=model_label(restorer))

    def fail(self, key: FrameIndex, reason: str, error: Exception) -> None:
        log.warning("restoring the z-stack of %s failed: %s", dict(key), reason)
        StoreSink._record(self.store.mark_stack_failed, key, reason)


class _RedoSink(StoreSink):
    """Restoring a frame again with a switched-in model: a failure keeps the result the old
    model wrote (the frame stays RESTORED with its old model in the ledger)."""

    def fail(self, key: FrameIndex, reason: str, error: Exception) -> None:
        log.warning("restoring frame %s again failed, its first result stays: %s",
                    dict(key), reason)


@dataclass
class RestoreJob:
    """One frame waiting for the worker; ``frame`` is None when it must be read back.
    ``stack``: the job is the whole z-stack of ``index``, read back from the store."""

    index: dict[str, int]
    event: Any
    t_ready: float
    frame: np.ndarray | None
    meta: dict | None
    restorer: Restorer
    channel: str = ""
    stack: bool = False


@dataclass
class RestoreStats(LoopCounts):
    """What the worker measured; latencies from frameReady to restored frame written."""

    evicted: int = 0
    latencies_ms: list[float] = field(default_factory=list)

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else float("nan")


class _WorkerSink(FrameSink[RestoreJob]):
    """The store's frame and stack sinks plus the worker's signals and latencies."""

    def __init__(self, store: AcquisitionStore, signals: LiveRestorerSignals,
                 stats: RestoreStats):
        self.frames = StoreSink(store)
        self.stacks = StackSink(store)
        self.signals = signals
        self.stats = stats

    def write(self, key: RestoreJob, mean: np.ndarray, std: np.ndarray | None,
              restorer: Restorer) -> None:
        (self.stacks if key.stack else self.frames).write(key.index, mean, std, restorer)
        self.stats.latencies_ms.append((time.perf_counter() - key.t_ready) * 1e3)
        if key.stack:
            self.signals.stackRestored.emit(mean, key.event)
        else:
            self.signals.frameRestored.emit(mean, key.event, key.meta or {})

    def fail(self, key: RestoreJob, reason: str, error: Exception) -> None:
        (self.stacks if key.stack else self.frames).fail(key.index, reason, error)
        self.signals.restoreFailed.emit(key.event, reason)


@dataclass
class _Release:
    """Queue marker: an announced switch is over; ``switch`` is (channel, old, new) or None
    when the channel keeps its restorer."""

    switch: tuple[str, Restorer, Restorer] | None


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
        self.redo_counts = LoopCounts()
        """Frames restored again after a switch (not counted in ``stats``)."""
        self._sink = _WorkerSink(store, signals, self.stats)
        self._redo_sink = _RedoSink(store)
        self._release_ram = release_ram
        self._queue: queue.Queue[Any] = queue.Queue()
        self._abandon = threading.Event()
        self._switched: dict[str, tuple[Restorer, Restorer]] = {}
        self._holds = 0
        self._redo: list[FrameIndex] = []
        self._redo_restorer: Restorer | None = None

    def submit(self, job: RestoreJob) -> None:
        self._queue.put(job)

    def finish(self, drain: bool = True) -> None:
        """Ask the worker to stop after the backlog (``drain``) or after the current batch.

        Draining also waits for every announced switch (:meth:`hold`) and its second pass."""
        if not drain:
            self._abandon.set()
        self._queue.put(self._STOP)

    def hold(self) -> None:
        """Announce a switch to come: until its :meth:`release`, a draining worker does not
        stop. Call it before :meth:`finish`, from the thread that submits frames."""
        self._queue.put(_HOLD)

    def release(self) -> None:
        """The announced switch will not happen: the channel keeps its restorer."""
        self._queue.put(_Release(None))

    def switch(self, channel: str, old: Restorer, new: Restorer) -> None:
        """Restore ``channel``'s frames queued for ``old`` with ``new`` from now on, then restore
        again every frame of ``channel`` that ``old`` restored; releases one :meth:`hold`."""
        self._switched[channel] = (old, new)  # read by the worker at its next batch
        self._queue.put(_Release((channel, old, new)))

    @property
    def backlog(self) -> int:
        return self._queue.qsize()

    def run(self) -> None:
        lower_thread_priority(self.nice)
        restore_frames(self._micro_batches(), read=self._load, restorer_for=self._restorer_for,
                       sink=self._sink, counts=self.stats)

    def _restorer_for(self, job: RestoreJob) -> Restorer:
        old, new = self._switched.get(job.channel, (None, None))
        return new if job.restorer is old and new is not None else job.restorer

    def _micro_batches(self) -> Iterator[list[RestoreJob]]:
        """Block for the next job, then take whatever else is already waiting (up to the batch
        size), so a worker that keeps up never waits for a batch to fill. Frames to restore
        again go in the gaps, when no live frame waits."""
        pending: Any = None
        stopping = False
        while True:
            if self._abandon.is_set():
                self._abandon_queue(pending)
                return
            if pending is None and self._redo and self._queue.empty():
                self._restore_again()
                continue
            idle = pending is None and not self._redo and self._queue.empty()
            if stopping and idle and self._holds == 0:
                return
            item = pending if pending is not None else self._queue.get()
            pending = None
            if item is self._STOP:
                stopping = True
                continue
            if item is _HOLD or isinstance(item, _Release):
                self._control(item)
                continue
            batch = [item]
            while len(batch) < self.batch_size:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if not isinstance(nxt, RestoreJob):
                    pending = nxt
                    break
                batch.append(nxt)
            yield batch

    def _control(self, item: Any) -> None:
        """Count holds; on a release with a switch, queue the old model's frames again."""
        if item is _HOLD:
            self._holds += 1
            return
        self._holds -= 1
        if item.switch is None:
            return
        channel, old, new = item.switch
        label = model_label(old)
        again = [index for index in self.store.indices_restored_by(label)
                 if self.store.channel_name(index) == channel]
        log.info("channel %r switched to %s; restoring %d frame(s) of %s again",
                 channel, model_label(new), len(again), label)
        if self._redo and self._redo_restorer is not new:
            self._restore_again(everything=True)  # an earlier switch's frames first
        self._redo.extend(again)
        self._redo_restorer = new

    def _restore_again(self, everything: bool = False) -> None:
        """Restore one micro-batch (or ``everything``) of the frames queued again."""
        restorer = self._redo_restorer
        count = len(self._redo) if everything else self.batch_size
        batch, self._redo = self._redo[:count], self._redo[count:]
        restore_frames(batched(batch, self.batch_size), read=self.store.read_raw,
                       restorer_for=lambda _: restorer, sink=self._redo_sink,
                       counts=self.redo_counts)

    def _abandon_queue(self, job: Any) -> None:
        """Leave unrestored frames marked RAW in the ledger so ``resume`` finds them."""
        self._redo = []
        while True:
            if isinstance(job, RestoreJob) and job.frame is not None:
                self._release_ram(job.frame.nbytes)
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                return

    def _load(self, job: RestoreJob) -> np.ndarray:
        if job.stack:
            return self.store.read_raw_stack(job.index)
        if job.frame is not None:
            frame = job.frame
            self._release_ram(frame.nbytes)
            job.frame = None
            return frame
        self.stats.evicted += 1
        job.meta = self.store.frame_metadata(job.index)
        return self.store.read_raw(job.index)


_HOLD = object()
"""Queue marker: a switch is announced (see :meth:`RestoreWorker.hold`)."""
