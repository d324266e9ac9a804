"""Live restoration inside a pymmcore-plus MDA: the frameReady hook and the restore worker.

The acquisition thread does as little as possible: it writes the raw frame (raw first,
always) and hands the frame's index to a worker thread. The worker restores in micro-batches
at a lower OS priority, writes the result beside the raw frame and marks it in the ledger.
When frames arrive faster than they are restored, pixels beyond a RAM budget are dropped from
the queue and read back from the raw array later, so memory stays flat and no frame is lost.
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from psygnal import Signal, SignalGroup
from pymmcore_plus import CMMCorePlus
from pymmcore_plus.mda import MDAEngine

from live_restore.acquisition.engine import DrainingEngine
from live_restore.acquisition.store import AcquisitionStore, FrameIndex
from live_restore.models.restorer import Restorer

if TYPE_CHECKING:
    import useq

log = logging.getLogger(__name__)

ChannelRestorers = Restorer | Mapping[str, Restorer | None]
"""One restorer for every channel, or a map from channel config name to restorer (or None:
that channel is stored raw only and marked skipped)."""

FrameAnnotator = Callable[[np.ndarray, Mapping[str, Any]], Mapping[str, Any]]
"""Extra per-frame metadata to store with the raw frame, e.g. the simulator's ground truth."""


def shutdown_core(core: CMMCorePlus) -> None:
    """Tear a core down so the interpreter cannot abort at exit (notes/pymmcore.md §4).

    MMCore's callback thread may still be delivering into Python when the interpreter
    finalises; unregistering the callback joins that thread first.
    """
    if core.mda.is_running():
        core.mda.cancel()
        deadline = time.monotonic() + 5.0
        while core.mda.is_running() and time.monotonic() < deadline:
            time.sleep(0.01)
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
    """The (Y, X) shape and dtype the current camera will deliver, before any frame exists."""
    if core.getNumberOfComponents() != 1:
        raise ValueError("live_restore restores single-component (grey) cameras; got an RGB camera")
    shape = (core.getImageHeight(), core.getImageWidth())
    py_camera = getattr(core, "_py_camera", lambda: None)()  # UniMMCore Python camera
    if py_camera is not None:
        return shape, np.dtype(py_camera.dtype())
    return shape, np.dtype(f"uint{core.getBytesPerPixel() * 8}")


class LiveRestorerSignals(SignalGroup):
    """Signals of a :class:`LiveRestorer`; emitted from the worker thread."""

    frameRestored = Signal(object, object, dict)
    """``(restored (Y, X) float32 in camera units, event: useq.MDAEvent, meta: dict)``."""
    restoreFailed = Signal(object, str)
    """``(event, reason)``: the raw frame is saved; the ledger holds the reason."""
    rawWriteFailed = Signal(object, str)
    """``(event, reason)``: the store refused the raw frame (disk full, bad frame)."""


@dataclass
class _Job:
    index: dict[str, int]
    event: Any
    channel: str
    t_ready: float
    frame: np.ndarray | None
    meta: dict | None
    restorer: Restorer


@dataclass
class RestoreStats:
    """What the worker measured; latencies from frameReady to restored frame written."""

    restored: int = 0
    failed: int = 0
    evicted: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    busy_seconds: float = 0.0

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else float("nan")


def _write_result(
    store: AcquisitionStore, index: FrameIndex, mean: np.ndarray,
    std: np.ndarray | None, restorer: Restorer,
) -> None:
    """Write one restored frame with the model that made it; a std map the store has no room
    for (created without ``uncertainty``) is dropped, not an error."""
    store.write_restored(index, mean, std if store.has_uncertainty else None,
                         model=f"{restorer.name}@{restorer.version}")


class RestoreWorker(threading.Thread):
    """Takes queued frames in micro-batches (one channel, one restorer), restores, writes."""

    _STOP = object()

    def __init__(
        self,
        store: AcquisitionStore,
        signals: LiveRestorerSignals,
        release_ram: Callable[[int], None],
        *,
        batch_size: int = 4,
        nice: int = 19,
    ) -> None:
        super().__init__(name="live-restore-worker", daemon=True)
        self.store = store
        self.signals = signals
        self.batch_size = max(1, batch_size)
        self.nice = nice
        self.stats = RestoreStats()
        self._release_ram = release_ram
        self._queue: queue.Queue[Any] = queue.Queue()
        self._abandon = threading.Event()

    def submit(self, job: _Job) -> None:
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
        pending: _Job | None = None
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
                if nxt is self._STOP or (nxt.channel, nxt.restorer) != (job.channel, job.restorer):
                    pending = nxt
                    break
                batch.append(nxt)
            self._restore_batch(batch)

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

            torch.set_num_threads(max(1, (os.cpu_count() or 2) - 1))

    def _load(self, job: _Job) -> np.ndarray:
        if job.frame is not None:
            frame = job.frame
            self._release_ram(frame.nbytes)
            job.frame = None
            return frame
        self.stats.evicted += 1
        job.meta = self.store.frame_metadata(job.index)
        return self.store.read_raw(job.index)

    def _restore_batch(self, batch: list[_Job]) -> None:
        restorer = batch[0].restorer
        frames = [self._load(job) for job in batch]
        t0 = time.perf_counter()
        try:
            result = restorer.restore(np.stack(frames).astype(np.float32))
            outputs = [(result.mean[i], None if result.std is None else result.std[i])
                       for i in range(len(batch))]
        except Exception:
            if len(batch) == 1:
                outputs = None
            else:  # isolate the bad frame: retry one by one
                for job, frame in zip(batch, frames, strict=True):
                    self._restore_one(job, frame, restorer)
                self.stats.busy_seconds += time.perf_counter() - t0
                return
        if outputs is None:
            self._restore_one(batch[0], frames[0], restorer)
        else:
            for job, (mean, std) in zip(batch, outputs, strict=True):
                self._write(job, mean, std, restorer)
        self.stats.busy_seconds += time.perf_counter() - t0

    def _restore_one(self, job: _Job, frame: np.ndarray, restorer: Restorer) -> None:
        try:
            result = restorer.restore(frame[None].astype(np.float32))
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"
            log.warning("restoring frame %s failed: %s", job.index, reason)
            self.stats.failed += 1
            self._ledger(self.store.mark_failed, job.index, reason)
            self.signals.restoreFailed.emit(job.event, reason)
            return
        std = None if result.std is None else result.std[0]
        self._write(job, result.mean[0], std, restorer)

    def _write(self, job: _Job, mean: np.ndarray, std: np.ndarray | None, r: Restorer) -> None:
        try:
            _write_result(self.store, job.index, mean, std, r)
        except Exception as exc:  # e.g. a full disk: the raw frame is already safe
            reason = f"writing restored frame failed: {type(exc).__name__}: {exc}"
            log.error("%s (frame %s)", reason, job.index)
            self.stats.failed += 1
            self._ledger(self.store.mark_failed, job.index, reason)
            self.signals.restoreFailed.emit(job.event, reason)
            return
        self.stats.restored += 1
        self.stats.latencies_ms.append((time.perf_counter() - job.t_ready) * 1e3)
        self.signals.frameRestored.emit(mean, job.event, job.meta or {})

    @staticmethod
    def _ledger(mark: Callable[[dict, str], None], index: dict, reason: str) -> None:
        try:
            mark(index, reason)
        except Exception:
            log.exception("could not record the failure of frame %s in the ledger", index)


def _small_meta(meta: Mapping[str, Any]) -> dict[str, Any]:
    """The per-frame facts worth keeping in the store (time, stage position)."""
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
    """Attach to ``core.mda.events``: save every frame raw, restore it in the background.

    Use as a context manager around ``core.mda.run(...)`` or call :meth:`attach` /
    :meth:`detach`. After the sequence finishes the backlog drains (``drain=True``) or is
    left in the ledger for ``live-restore resume``. ``ram_budget_mb`` caps the pixels held in
    the queue; ``nice`` lowers the worker thread's priority; ``annotate(img, meta)`` adds
    metadata to each stored raw frame (it runs on the acquisition thread: keep it cheap).
    While attached, a stock pymmcore-plus engine is replaced by a :class:`DrainingEngine` with
    the same settings, so a hardware sequence cannot leave its last frame unsaved in the
    camera buffer; a custom engine is left alone.
    """

    def __init__(
        self,
        core: CMMCorePlus,
        restorer: ChannelRestorers,
        store: AcquisitionStore,
        *,
        batch_size: int = 4,
        ram_budget_mb: float = 256.0,
        drain: bool = True,
        nice: int = 19,
        annotate: FrameAnnotator | None = None,
    ) -> None:
        self.core = core
        self.annotate = annotate
        self.store = store
        self.drain = drain
        self.signals = LiveRestorerSignals()
        self.ram_budget_bytes = int(ram_budget_mb * 2**20)
        self.frames_emitted = 0
        self.raw_frames_written = 0
        self.skipped = 0
        self._restorer = restorer
        self._ram_lock = threading.Lock()
        self._ram_bytes = 0
        self._batch_size = batch_size
        self._nice = nice
        self._worker: RestoreWorker | None = None
        self._attached = False
        self._finish_sent = False
        self._replaced_engine: MDAEngine | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def attach(self) -> None:
        if self._attached:
            return
        self._finish_sent = False
        self._worker = RestoreWorker(
            self.store, self.signals, self._release_ram, batch_size=self._batch_size,
            nice=self._nice,
        )
        self._worker.start()
        events = self.core.mda.events
        events.frameReady.connect(self._on_frame_ready)
        events.sequenceFinished.connect(self._on_sequence_finished)
        engine = self.core.mda.engine
        if type(engine) is MDAEngine and not self.core.mda.is_running():
            self.core.mda.set_engine(DrainingEngine.replacing(engine))
            self._replaced_engine = engine
        self._attached = True

    def detach(self) -> None:
        if not self._attached:
            return
        events = self.core.mda.events
        events.frameReady.disconnect(self._on_frame_ready)
        events.sequenceFinished.disconnect(self._on_sequence_finished)
        if self._replaced_engine is not None and not self.core.mda.is_running():
            self.core.mda.set_engine(self._replaced_engine)
            self._replaced_engine = None
        self._attached = False

    def __enter__(self) -> LiveRestorer:
        self.attach()
        return self

    def __exit__(self, *exc: object) -> None:
        self.detach()
        self.wait()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the worker has drained (or abandoned) its queue; True if it has."""
        if self._worker is None:
            return True
        self._finish()
        self._worker.join(timeout)
        done = not self._worker.is_alive()
        if done:
            self.store.flush()
        return done

    def _finish(self) -> None:
        """Send the worker its stop marker once: after the sequence, or when waited on."""
        if self._worker is not None and not self._finish_sent:
            self._worker.finish(self.drain)
            self._finish_sent = True

    @property
    def stats(self) -> RestoreStats:
        return self._worker.stats if self._worker else RestoreStats()

    @property
    def backlog(self) -> int:
        return self._worker.backlog if self._worker else 0

    def swap(self, restorer: ChannelRestorers) -> None:
        """Restore frames acquired from now on with ``restorer`` (e.g. an adapted model).

        Frames already queued keep the restorer they were queued with; the store records per
        frame which model (name@checksum) restored it, so a swap is visible in the data.
        """
        self._restorer = restorer

    # -- acquisition thread: keep it short ---------------------------------------------------
    def _restorer_for(self, channel: str) -> Restorer | None:
        if isinstance(self._restorer, Mapping):
            return self._restorer.get(channel)
        return self._restorer

    def _on_frame_ready(self, img: np.ndarray, event: useq.MDAEvent, meta: Mapping) -> None:
        t_ready = time.perf_counter()
        self.frames_emitted += 1
        index = {k: int(v) for k, v in event.index.items()}
        small = _small_meta(meta)
        try:
            if self.annotate is not None:
                small.update(self.annotate(img, meta))
            self.store.write_raw(index, img, small)
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"
            log.error("raw frame %s could not be written: %s", index, reason)
            self.signals.rawWriteFailed.emit(event, reason)
            return
        self.raw_frames_written += 1
        channel = event.channel.config if event.channel is not None else ""
        restorer = self._restorer_for(channel)
        if restorer is None:
            self.skipped += 1
            RestoreWorker._ledger(self.store.mark_skipped, index,
                                  f"no restorer for channel {channel!r}")
            return
        keep = self._reserve_ram(img.nbytes)
        job = _Job(index, event, channel, t_ready, img if keep else None, small if keep else None,
                   restorer)
        assert self._worker is not None
        self._worker.submit(job)

    def _on_sequence_finished(self, sequence: useq.MDASequence) -> None:
        self._finish()

    def _reserve_ram(self, nbytes: int) -> bool:
        with self._ram_lock:
            if self._ram_bytes + nbytes > self.ram_budget_bytes:
                return False
            self._ram_bytes += nbytes
            return True

    def _release_ram(self, nbytes: int) -> None:
        with self._ram_lock:
            self._ram_bytes -= nbytes


@dataclass
class AcquisitionReport:
    """Summary of one hooked acquisition (what the demo prints and the benchmark records)."""

    store: str
    frames_emitted: int
    raw_frames_written: int
    restored: int
    failed: int
    skipped: int
    pending: int
    acquisition_seconds: float
    total_seconds: float
    restore_busy_seconds: float
    latency_ms_p50: float
    latency_ms_p95: float

    @property
    def acquisition_fps(self) -> float:
        return self.frames_emitted / self.acquisition_seconds if self.acquisition_seconds else 0.0

    @property
    def restore_fps(self) -> float:
        busy = self.restore_busy_seconds
        return self.restored / busy if busy else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "acquisition_fps": self.acquisition_fps,
                "restore_fps": self.restore_fps}


def run_acquisition(
    core: CMMCorePlus,
    sequence: useq.MDASequence,
    output: str | Path,
    restorer: ChannelRestorers,
    *,
    overwrite: bool = False,
    drain: bool = True,
    model_info: Mapping[str, Any] | None = None,
    uncertainty: bool = False,
    **live_kwargs: Any,
) -> AcquisitionReport:
    """Create the store, run the MDA with a :class:`LiveRestorer` attached, drain, close.

    The store is created (and the path checked) before the first frame, so a bad output path
    fails before any light reaches the sample. ``uncertainty`` keeps the restorer's std maps
    (from a restorer that averages draws).
    """
    shape, dtype = frame_format(core)
    store = AcquisitionStore.from_sequence(
        output, sequence, frame_shape=shape, dtype=dtype, overwrite=overwrite,
        pixel_size_um=core.getPixelSizeUm() or None, uncertainty=uncertainty,
    )
    if model_info:
        store.set_model_info(**model_info)
    live = LiveRestorer(core, restorer, store, drain=drain, **live_kwargs)
    t0 = time.perf_counter()
    try:
        with live:
            core.mda.run(sequence)
            t_acq = time.perf_counter() - t0
        pending = len(store.pending())  # after the drain (or the deferral)
    finally:
        store.close()
    stats = live.stats
    return AcquisitionReport(
        store=str(output),
        frames_emitted=live.frames_emitted,
        raw_frames_written=live.raw_frames_written,
        restored=stats.restored,
        failed=stats.failed,
        skipped=live.skipped,
        pending=pending,
        acquisition_seconds=t_acq,
        total_seconds=time.perf_counter() - t0,
        restore_busy_seconds=stats.busy_seconds,
        latency_ms_p50=stats.percentile(50),
        latency_ms_p95=stats.percentile(95),
    )


def resume(store_path: str | Path, restorer: ChannelRestorers,
           progress: Callable[[int, int], None] | None = None) -> int:
    """Restore every frame the ledger does not mark done; return how many were restored."""
    with AcquisitionStore.open(store_path) as store:
        todo = store.pending()
        names = store.channel_names
        done = 0
        for i, index in enumerate(todo):
            channel = names[index.get("c", 0)] if names else ""
            r = restorer.get(channel) if isinstance(restorer, Mapping) else restorer
            if r is None:
                store.mark_skipped(index, f"no restorer for channel {channel!r}")
                continue
            try:
                result = r.restore(store.read_raw(index)[None].astype(np.float32))
            except Exception as exc:
                store.mark_failed(index, f"{type(exc).__name__}: {exc}")
            else:
                std = None if result.std is None else result.std[0]
                _write_result(store, index, result.mean[0], std, r)
                done += 1
            if progress:
                progress(i + 1, len(todo))
    return done
