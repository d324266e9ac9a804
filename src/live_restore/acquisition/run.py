"""One call per job: run a restored acquisition into a new store, or finish an old store's
backlog."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pymmcore_plus import CMMCorePlus

from live_restore.acquisition.core import frame_format
from live_restore.acquisition.engine import draining_engine
from live_restore.acquisition.hook import LiveRestorer
from live_restore.acquisition.restore_loop import (
    ChannelRestorers,
    batched,
    channel_restorer,
    restore_frames,
)
from live_restore.acquisition.store import AcquisitionStore, FrameIndex
from live_restore.acquisition.worker import DEFAULT_BATCH_SIZE, StoreSink
from live_restore.models.restorer import Restorer, get_restorer

if TYPE_CHECKING:
    import useq

__all__ = ["AcquisitionReport", "resume", "run_acquisition"]


@dataclass
class AcquisitionReport:
    """Summary of one hooked acquisition (what the demo prints and the benchmark records).

    ``setup_seconds``: from the call to the MDA's start (engine, store, hook);
    ``acquisition_seconds``: the MDA itself, every raw frame written when it ends;
    ``total_seconds``: from the MDA's start until the backlog is drained and the store closed;
    ``re_restored``: frames restored again by a model adapted during the run (adapt-first),
    and ``adaptations`` what each channel's adaptation did (see the store's metadata).
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

    The draining engine is installed (and the pymmcore-plus version checked) and the store is
    created, with its path checked, before the first frame, so a bad setup fails before any
    light reaches the sample. ``uncertainty`` keeps the restorer's std maps (from a restorer
    that averages draws). ``live_kwargs`` go to :class:`LiveRestorer` (e.g. ``adapt_first``).
    """
    t_call = time.perf_counter()
    shape, dtype = frame_format(core)
    with draining_engine(core):
        store = AcquisitionStore.from_sequence(
            output, sequence, frame_shape=shape, dtype=dtype, overwrite=overwrite,
            pixel_size_um=core.getPixelSizeUm() or None, uncertainty=uncertainty,
        )
        try:
            if model_info:
                store.set_model_info(**model_info)
            live = LiveRestorer(core, restorer, store, drain=drain, **live_kwargs)
            t0 = time.perf_counter()
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
        setup_seconds=t0 - t_call,
        acquisition_seconds=t_acq,
        total_seconds=time.perf_counter() - t0,
        restore_busy_seconds=stats.busy_seconds,
        latency_ms_p50=stats.percentile(50),
        latency_ms_p95=stats.percentile(95),
        re_restored=live.re_restored,
        adaptations=live.adaptation.records if live.adaptation is not None else {},
    )


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
           progress: Callable[[int, int], None] | None = None) -> int:
    """Restore every frame the ledger does not mark done; return how many were restored.

    ``progress(done, total)`` is called after each micro-batch.
    """
    with AcquisitionStore.open(store_path) as store:
        todo = store.pending()

        def restorer_for(index: FrameIndex) -> Restorer | None:
            return channel_restorer(restorer, store.channel_name(index))

        counts = restore_frames(
            batched(todo, DEFAULT_BATCH_SIZE), read=store.read_raw, restorer_for=restorer_for,
            sink=StoreSink(store),
            progress=(lambda n: progress(n, len(todo))) if progress else None,
        )
    return counts.restored
