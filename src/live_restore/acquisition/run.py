"""One call per job: run a restored acquisition into a new store, or finish an old store's
backlog."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pymmcore_plus import CMMCorePlus

from live_restore.acquisition.core import core_pixel_size_um, frame_format
from live_restore.acquisition.engine import draining_engine
from live_restore.acquisition.hook import LiveRestorer
from live_restore.acquisition.interrupts import Interrupts
from live_restore.acquisition.layout import store_sizes
from live_restore.acquisition.restore_loop import (
    ChannelRestorers,
    batched,
    channel_restorer,
    restore_frames,
)
from live_restore.acquisition.space import check_free_space, space_needed
from live_restore.acquisition.stacks import stack_restorers
from live_restore.acquisition.store import AcquisitionStore, FrameIndex
from live_restore.acquisition.worker import DEFAULT_BATCH_SIZE, StackSink, StoreSink
from live_restore.models.restorer import Restorer, get_restorer, restores_stacks

if TYPE_CHECKING:
    import useq

__all__ = [
    "AcquisitionReport",
    "model_record",
    "recorded_restorers",
    "resume",
    "run_acquisition",
]


@dataclass
class AcquisitionReport:
    """Summary of one hooked acquisition (what the demo prints and the benchmark records).

    ``setup_seconds``: from the call to the MDA's start (engine, store, hook);
    ``acquisition_seconds``: the MDA itself, every raw frame written when it ends;
    ``total_seconds``: from the MDA's start until the backlog is drained and the store closed;
    ``re_restored``: frames restored again by a model adapted during the run (adapt-first),
    and ``adaptations`` what each channel's adaptation did (see the store's metadata);
    ``lost``: frames the camera gave whose raw pixels could not be saved (journalled as LOST);
    ``stopped``: why the acquisition ended before the sequence did ("" when it did not);
    ``backlog``: what became of the frames waiting when the MDA ended: ``restored``, or
    ``left for resume`` (``--defer``, an interrupt with ``on_interrupt="leave"``, a second one).
    """

    store: str
    frames_emitted: int
    raw_frames_written: int
    restored: int
    failed: int
    skipped: int
    pending: int
    setup_seconds: float
    acquisition_seconds: float
    total_seconds: float
    restore_busy_seconds: float
    latency_ms_p50: float
    latency_ms_p95: float
    re_restored: int = 0
    adaptations: dict[str, dict[str, Any]] = field(default_factory=dict)
    lost: int = 0
    stopped: str = ""
    backlog: str = "restored"

    @property
    def complete(self) -> bool:
        """Every frame of the sequence was taken and saved raw."""
        return not self.stopped and not self.lost

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
    fill_planes: int = 1,
    on_interrupt: Literal["finish", "leave"] = "finish",
    notify: Callable[[str], None] | None = None,
    progress: Callable[[int, int], None] | None = None,
    watch: Callable[[LiveRestorer], None] | None = None,
    **live_kwargs: Any,
) -> AcquisitionReport:
    """Create the store, run the MDA with a :class:`LiveRestorer` attached, drain, close.

    Before the first frame the draining engine is installed (and the pymmcore-plus version
    checked), the disk's free space is checked against the sequence's size and the store is
    created and locked, so a bad setup fails before any light reaches the sample.
    ``uncertainty`` keeps the restorer's std maps (from a restorer that averages draws).
    ``fill_planes`` > 1: the sequence's z plan acquires every ``fill_planes``-th plane and a
    z-stack model (axial) restores every plane (:meth:`AcquisitionStore.create`).

    The first Ctrl-C or SIGTERM stops the acquisition (:mod:`~live_restore.acquisition.
    interrupts`); the frames waiting are then restored (``on_interrupt="finish"``) or left for
    ``resume`` (``"leave"``); a second one leaves them at once. A raw frame that cannot be
    saved stops the acquisition too. ``notify(message)`` tells the user of either as it
    happens; ``progress(done, total)`` follows the restoration of the backlog after the MDA.
    ``watch(live)`` is called once the hook exists, before the first exposure: where a viewer
    connects to its signals (:mod:`live_restore.viewer`). ``live_kwargs`` go to
    :class:`LiveRestorer` (e.g. ``adapt_first``).
    """
    t_call = time.perf_counter()
    say = notify or (lambda message: None)
    shape, dtype = frame_format(core)
    with draining_engine(core):
        sizes = store_sizes(sequence)
        stack_restorers(restorer, sizes, fill_planes)  # a bad pairing fails before any light
        check_free_space(Path(output), space_needed(sizes, shape, dtype, uncertainty=uncertainty,
                                                    fill_planes=fill_planes))
        store = AcquisitionStore.from_sequence(
            output, sequence, frame_shape=shape, dtype=dtype, overwrite=overwrite,
            pixel_size_um=core_pixel_size_um(core), uncertainty=uncertainty,
            fill_planes=fill_planes,
        )
        try:
            if model_info:
                store.set_model_info(**model_info)
            live = LiveRestorer(core, restorer, store, drain=drain, **live_kwargs)
            if watch is not None:
                watch(live)

            def first_interrupt(signal_name: str) -> None:
                live.stop(f"interrupted ({signal_name})")
                say(f"{signal_name}: stopping the acquisition; "
                    + ("restoring the frames waiting (press Ctrl-C again to leave them for "
                       "`resume`)"
                       if drain and on_interrupt == "finish" else
                       "the frames waiting are left for `live-restore resume`"))

            interrupts = Interrupts(first_interrupt)
            t0 = time.perf_counter()
            with interrupts.installed():
                t_acq = _acquire_and_drain(core, sequence, live, interrupts, on_interrupt,
                                           progress) - t0
            pending = len(store.pending())  # after the drain (or the deferral)
            counts = store.counts()  # frames, also where a stack model restored whole stacks
        finally:
            store.close()
    stats = live.stats
    if live.stop_reason.startswith("raw frames"):
        say(f"acquisition stopped: {live.stop_reason}")
    return AcquisitionReport(
        store=str(output),
        frames_emitted=live.frames_emitted,
        raw_frames_written=live.raw_frames_written,
        restored=counts["restored"],
        failed=counts["failed"],
        skipped=live.skipped,
        pending=pending,
        setup_seconds=t0 - t_call,
        acquisition_seconds=t_acq,
        total_seconds=time.perf_counter() - t0,
        restore_busy_seconds=stats.busy_seconds,
        latency_ms_p50=stats.percentile(50),
        latency_ms_p95=stats.percentile(95),
        re_restored=live.re_restored,
        adaptations=live.adaptation.records if live.adaptation is not None else {},
        lost=len(live.lost),
        stopped=live.stop_reason,
        backlog="restored" if pending == 0 else "left for resume",
    )


def _acquire_and_drain(core: CMMCorePlus, sequence: useq.MDASequence, live: LiveRestorer,
                       interrupts: Interrupts, on_interrupt: str,
                       progress: Callable[[int, int], None] | None) -> float:
    """Run the MDA, then wait for the worker; the time the MDA ended (``perf_counter``).

    A second interrupt (KeyboardInterrupt) leaves the backlog to ``resume`` and waits only for
    the batch being restored, so the store is closed after the worker's last write."""
    t_end = None
    try:
        with live:
            core.mda.run(sequence)
            t_end = time.perf_counter()
            if interrupts.requested and on_interrupt == "leave":
                live.leave_backlog()
            while not live.wait(timeout=0.25):
                if progress is not None:
                    progress(live.stats.handled, live.stats.handled + live.backlog)
    except KeyboardInterrupt:  # LiveRestorer.__exit__ left the backlog and joined the worker
        live.stop_reason = live.stop_reason or "interrupted"
    return t_end if t_end is not None else time.perf_counter()


def model_record(restorers: ChannelRestorers) -> dict[str, str]:
    """The store's model record (``model_info``) for ``restorers``: ``name``/``checksum``, as
    ``channel=name`` entries when channels differ: what :func:`recorded_restorers` reads."""
    if not isinstance(restorers, Mapping):
        return {"name": restorers.name, "checksum": restorers.version}
    used = {c: r for c, r in restorers.items() if r is not None}  # others stay raw
    return {"name": ",".join(f"{c}={r.name}" for c, r in used.items()),
            "checksum": ",".join(r.version for r in used.values())}


def recorded_restorers(store_path: str | Path, device: str | None = None) -> ChannelRestorers:
    """The restorers a store says it was restored with, so that ``resume`` goes on with them.

    The store's model record (``name``/``checksum``, one per channel as ``channel=model``
    when channels differ) is rebuilt with :func:`get_restorer`, and each installed model must
    still have the recorded checksum: finishing a run with another model (or another version
    of it) would leave the store silently mixed. Raises ValueError naming the way out
    (``--model``) otherwise.
    """
    with AcquisitionStore.open(store_path, mode="r") as store:
        info = store.model_info
    if not info.get("name"):
        raise ValueError(f"{store_path} records no restorer; pass --model")
    names, checksums = str(info["name"]).split(","), str(info.get("checksum", "")).split(",")
    if len(names) != len(checksums):
        raise ValueError(f"{store_path} has a malformed model record {info!r}; pass --model")
    chosen: dict[str, Restorer] = {}
    for entry, checksum in zip(names, checksums, strict=True):
        channel, _, model = entry.rpartition("=")
        restorer = get_restorer(model, device=device)
        if restorer.version != checksum:
            raise ValueError(
                f"{store_path} was restored with {model}@{checksum}, but the {model} found here "
                f"is @{restorer.version}; pass --model to choose the restorer for the rest"
            )
        chosen[channel] = restorer
    return chosen[""] if list(chosen) == [""] else chosen


def resume(store_path: str | Path, restorer: ChannelRestorers,
           progress: Callable[[int, int], None] | None = None, *,
           retry_failed: bool = False) -> int:
    """Restore every frame the ledger does not mark done; return how many were restored.

    ``retry_failed`` restores the frames whose restoration failed too (a full disk, a model
    that ran out of memory); ``progress(done, total)`` is called after each micro-batch. A
    channel whose model restores z-stacks is restored stack by stack (counted in frames).
    """
    with AcquisitionStore.open(store_path) as store:
        chosen = stack_restorers(restorer, store.sizes, store.fill_planes)
        todo = store.pending(retry_failed)
        before = store.counts()["restored"]

        def restorer_for(index: FrameIndex) -> Restorer | None:
            return channel_restorer(chosen, store.channel_name(index))

        stacks = [i for i in store.pending_stacks(retry_failed) if restores_stacks(
            restorer_for(i))] if "z" in store.sizes else []
        frames = [i for i in todo if not restores_stacks(restorer_for(i))]
        report = (lambda n: progress(n, len(frames) + len(stacks))) if progress else None
        restore_frames(batched(stacks, 1), read=store.read_raw_stack,
                       restorer_for=restorer_for, sink=StackSink(store), progress=report)
        restore_frames(batched(frames, DEFAULT_BATCH_SIZE), read=store.read_raw,
                       restorer_for=restorer_for, sink=StoreSink(store),
                       progress=(lambda n: report(n + len(stacks))) if report else None)
        return store.counts()["restored"] - before
