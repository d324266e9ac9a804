"""The live restorer: a pymmcore-plus MDA output handler that saves every frame raw at once and
restores it in the background.

The thread that delivers ``frameReady`` does as little as possible: it writes the raw frame
(raw first, always) and hands the frame's index to a :class:`RestoreWorker`. When frames
arrive faster than they are restored, pixels beyond a RAM budget are not kept in the queue;
the worker reads them back from the raw array later, so memory stays flat and no frame is lost.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

import numpy as np
from pymmcore_plus import CMMCorePlus

from live_restore.acquisition.adapt_first import AdaptFirst, LiveAdaptation
from live_restore.acquisition.engine import draining_engine
from live_restore.acquisition.restore_loop import ChannelRestorers, channel_restorer
from live_restore.acquisition.stacks import StackAssembler, stack_restorers
from live_restore.acquisition.store import AcquisitionStore
from live_restore.acquisition.worker import (
    DEFAULT_BATCH_SIZE,
    LOWEST_PRIORITY_NICE,
    LiveRestorerSignals,
    RestoreJob,
    RestoreStats,
    RestoreWorker,
    StoreSink,
)
from live_restore.models.restorer import restores_stacks

if TYPE_CHECKING:
    import useq

__all__ = ["DEFAULT_RAM_BUDGET_MB", "FrameAnnotator", "LiveRestorer"]

log = logging.getLogger(__name__)

DEFAULT_RAM_BUDGET_MB = 256.0
"""Pixels the queue may hold before further frames are read back from the store instead."""

FrameAnnotator = Callable[[np.ndarray, Mapping[str, Any]], Mapping[str, Any]]
"""Extra per-frame metadata to store with the raw frame, e.g. the simulator's ground truth."""


def _small_meta(meta: Mapping[str, Any]) -> dict[str, Any]:
    """The per-frame facts worth keeping in the store (time, exposure, stage position)."""
    out: dict[str, Any] = {}
    if "runner_time_ms" in meta:
        out["time_ms"] = float(meta["runner_time_ms"])
    if "exposure_ms" in meta:
        out["exposure_ms"] = float(meta["exposure_ms"])
    position = meta.get("position") or {}
    for axis in ("x", "y", "z"):
        if position.get(axis) is not None:
            out[f"{axis}_um"] = float(position[axis])
    return out


class LiveRestorer:
    """Save every frame of one MDA sequence raw, restore it in the background.

    Two ways in, one per sequence:

    * as a pymmcore-plus output handler, ``core.mda.run(seq, output=live)`` then
      ``live.wait()``: pymmcore-plus calls :meth:`sequenceStarted`, :meth:`frameReady` and
      :meth:`sequenceFinished` (from its relay thread) and the core's engine is left as it is;
    * as a context manager around ``core.mda.run(seq)`` (or :meth:`attach` / :meth:`detach`):
      the same methods are connected to ``core.mda.events`` and run on the acquisition thread,
      and a stock engine is replaced by a :class:`~live_restore.acquisition.engine.
      DrainingEngine` with the same settings, so a hardware sequence cannot leave its last
      frame unsaved in the camera buffer; a custom engine is left alone.

    After the sequence finishes the backlog drains (``drain=True``) or is left in the ledger
    for ``live-restore resume``. A raw frame the store cannot take (a full disk, a frame of
    the wrong shape) stops the acquisition at once (the MDA is cancelled: no light on the
    sample for frames that cannot be saved); the frame is journalled as LOST with its reason,
    :attr:`stop_reason` says why the run ended early, and :attr:`lost` names every lost frame
    (also those whose journal line the full disk refused).

    ``ram_budget_mb`` caps the pixels held in the queue; ``nice`` lowers the worker thread's
    priority; ``annotate(img, meta)`` adds metadata to each stored raw frame (it runs on the
    thread delivering frames: keep it cheap). ``adapt_first``
    adapts each restored channel's model on its first frames and restores the channel with the
    adapted model (:mod:`live_restore.acquisition.adapt_first`); it needs ``drain``, and the
    drain waits for the adaptations unless the run is interrupted (Ctrl-C).

    A channel whose model restores z-stacks (axial) is restored a stack at a time: the stack
    is queued when its last plane is saved (after the sequence, an unfinished stack with the
    planes it has) and written at the store's restored z spacing (``fill_planes``).
    """

    def __init__(
        self,
        core: CMMCorePlus,
        restorer: ChannelRestorers,
        store: AcquisitionStore,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        ram_budget_mb: float = DEFAULT_RAM_BUDGET_MB,
        drain: bool = True,
        nice: int = LOWEST_PRIORITY_NICE,
        annotate: FrameAnnotator | None = None,
        adapt_first: AdaptFirst | None = None,
    ) -> None:
        if adapt_first is not None and not drain:
            raise ValueError("adapt-first restores the first frames again after the run's "
                             "adaptation; it cannot leave the backlog for resume (drain=False)")
        restorer = stack_restorers(restorer, store.sizes, store.fill_planes)
        if adapt_first is not None and any(
                restores_stacks(r) for r in (restorer.values() if isinstance(restorer, Mapping)
                                             else [restorer])):
            raise ValueError("adapt-first adapts frame restorers; a z-stack model (axial) "
                             "cannot be adapted live")
        self._stacks = StackAssembler(store.sizes) if "z" in store.sizes else None
        self.core = core
        self.annotate = annotate
        self.store = store
        self.drain = drain
        self.signals = LiveRestorerSignals()
        self.ram_budget_bytes = int(ram_budget_mb * 2**20)
        self.frames_emitted = 0
        self.raw_frames_written = 0
        self.skipped = 0
        self.lost: dict[str, str] = {}
        """``"t=3,c=1" -> reason`` for every frame whose raw pixels could not be saved."""
        self.stop_reason = ""
        """Why the acquisition was stopped before its end ("" when it was not)."""
        self._restorer = restorer
        self._sink = StoreSink(store)
        self._ram_lock = threading.Lock()
        self._ram_bytes = 0
        self._worker = RestoreWorker(store, self.signals, self._release_ram,
                                     batch_size=batch_size, nice=nice)
        self.adaptation = (None if adapt_first is None
                           else LiveAdaptation(adapt_first, store, self._worker, nice=nice))
        self._start_lock = threading.Lock()
        self._started = False
        self._finish_sent = False
        self._attached: ExitStack | None = None

    # -- pymmcore-plus output handler --------------------------------------------------------
    def sequenceStarted(self, sequence: useq.MDASequence, meta: Mapping[str, Any]) -> None:
        """Start the worker (once: a live restorer serves one sequence, as its store does)."""
        if self._finish_sent:
            log.warning("this LiveRestorer has finished its sequence; new frames are saved raw "
                        "and left for `live-restore resume`")
        self._start_worker()

    def frameReady(self, img: np.ndarray, event: useq.MDAEvent, meta: Mapping[str, Any]) -> None:
        """Write the raw frame, then queue it for restoration; never raises."""
        t_ready = time.perf_counter()
        self._start_worker()  # a frame can reach us before sequenceStarted when attached late
        self.frames_emitted += 1
        index = {k: int(v) for k, v in event.index.items()}
        small = _small_meta(meta)
        try:
            if self.annotate is not None:
                small.update(self.annotate(img, meta))
            self.store.write_raw(index, img, small)
        except Exception as exc:
            self._lose(index, event, f"{type(exc).__name__}: {exc}")
            return
        self.raw_frames_written += 1
        self.signals.rawSaved.emit(event)
        channel = event.channel.config if event.channel is not None else ""
        restorer = channel_restorer(self._restorer, channel)
        if restorer is None:
            self.skipped += 1
            self._sink.skip_channel(index, channel)
            return
        if restores_stacks(restorer):
            if self._stacks.add(index):
                self._worker.submit(RestoreJob(index, event, t_ready, None, None, restorer,
                                               channel, stack=True))
            return
        keep = self._reserve_ram(img.nbytes)
        self._worker.submit(RestoreJob(index, event, t_ready, img if keep else None,
                                       small if keep else None, restorer, channel))
        if self.adaptation is not None and not self._finish_sent:
            self.adaptation.note_frame(channel, index, restorer)

    def stop(self, reason: str) -> None:
        """Cancel the MDA (the frame being exposed is still saved) and say why, once."""
        if not self.stop_reason:
            self.stop_reason = reason
            self.core.mda.cancel()

    def _lose(self, index: dict[str, int], event: useq.MDAEvent, reason: str) -> None:
        """Journal a frame the store refused and stop the acquisition; logged once."""
        try:
            label = self.store.label(index)  # the journal's name for the frame
        except ValueError:  # an index outside the store: nothing to journal it under
            label = ",".join(f"{a}={v}" for a, v in index.items())
        self.lost[label] = reason
        try:
            self.store.mark_lost(index, reason)
        except Exception as exc:  # the journal sits on the same full disk, or a bad index
            log.debug("frame %s lost and not journalled: %s", label, exc)
        if not self.stop_reason:
            log.error("raw frame %s could not be saved (%s): stopping the acquisition",
                      index, reason)
            self.stop(f"raw frames could not be saved: {reason}")
        self.signals.rawWriteFailed.emit(event, reason)

    def leave_backlog(self) -> None:
        """Stop restoring after the current batch and leave the rest to ``resume``, e.g. on a
        second Ctrl-C (an adaptation in progress is cancelled: its frames stay as restored)."""
        if self.adaptation is not None:
            self.adaptation.cancel()
        with self._start_lock:
            if self._started:
                self._worker.finish(drain=False)
                self._finish_sent = True

    def sequenceFinished(self, sequence: useq.MDASequence) -> None:
        """Tell the worker no more frames come; it drains or abandons the backlog."""
        self._finish()

    # -- attached to core.mda.events ---------------------------------------------------------
    def attach(self) -> None:
        """Connect to ``core.mda.events`` and install the draining engine (see the class)."""
        if self._attached is not None:
            return
        stack = ExitStack()
        stack.enter_context(draining_engine(self.core))
        events = self.core.mda.events
        for name in ("sequenceStarted", "frameReady", "sequenceFinished"):
            signal, slot = getattr(events, name), getattr(self, name)
            signal.connect(slot)
            stack.callback(signal.disconnect, slot)
        self._start_worker()
        self._attached = stack

    def detach(self) -> None:
        """Disconnect and put the core's own engine back; the worker keeps draining."""
        if self._attached is not None:
            self._attached.close()
            self._attached = None

    def __enter__(self) -> LiveRestorer:
        self.attach()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        self.detach()
        if exc_type is KeyboardInterrupt:
            self.leave_backlog()
        self.wait()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the worker has drained (or abandoned) its queue; True if it has."""
        if not self._started:
            return True  # nothing was ever queued
        self._finish()
        self._worker.join(timeout)
        done = not self._worker.is_alive()
        if done:
            if self.adaptation is not None:
                self.adaptation.close()
            self.store.flush()
        return done

    @property
    def stats(self) -> RestoreStats:
        return self._worker.stats

    @property
    def re_restored(self) -> int:
        """Frames restored again with a model switched in after adapt-first."""
        return self._worker.redo_counts.restored

    @property
    def backlog(self) -> int:
        return self._worker.backlog

    def swap(self, restorer: ChannelRestorers) -> None:
        """Restore frames acquired from now on with ``restorer`` (e.g. an adapted model).

        Frames already queued keep the restorer they were queued with; the store records per
        frame which model (name@checksum) restored it, so a swap is visible in the data.
        """
        self._restorer = stack_restorers(restorer, self.store.sizes, self.store.fill_planes)

    # -- internals ---------------------------------------------------------------------------
    def _start_worker(self) -> None:
        with self._start_lock:
            if self._started or self._finish_sent:
                return
            self._worker.start()
            self._started = True

    def _finish(self) -> None:
        """Send the worker its stop marker once: after the sequence, or when waited on."""
        with self._start_lock:
            if self._started and not self._finish_sent:
                for index in self._stacks.unfinished() if self._stacks is not None else []:
                    self._submit_stack(index)
                self._worker.finish(self.drain)
                self._finish_sent = True

    def _submit_stack(self, index: dict[str, int]) -> None:
        """Queue a stack that did not get every plane, with its channel's stack restorer."""
        channel = self.store.channel_name(index)
        restorer = channel_restorer(self._restorer, channel)
        if restores_stacks(restorer):
            self._worker.submit(RestoreJob(index, None, time.perf_counter(), None, None,
                                           restorer, channel, stack=True))

    def _reserve_ram(self, nbytes: int) -> bool:
        with self._ram_lock:
            if self._ram_bytes + nbytes > self.ram_budget_bytes:
                return False
            self._ram_bytes += nbytes
            return True

    def _release_ram(self, nbytes: int) -> None:
        with self._ram_lock:
            self._ram_bytes -= nbytes
