"""Adapting a channel's restorer on the first frames of the acquisition itself.

A restorer trained elsewhere meets this microscope's noise for the first time in the first
frames of a run. With :class:`AdaptFirst` the first ``frames`` frames of each restored channel
are saved and restored as usual; once a channel has them, an adapter (e.g. a Noise2Noise
fine-tune) runs in a background thread at the lowest OS priority on those raw frames, read back
from the store and grouped into one stack per field (every axis but time). When it returns, the
adapted model is saved in the store (``STORE/models``) and named in its metadata, the worker
restores the channel's waiting and future frames with it and restores again the frames the
base model restored, so every frame of the channel ends with the adapted model, and the ledger
says so frame by frame.

The acquisition thread only appends a frame index to a list and, once per channel, starts a
thread: raw frames are never delayed. An adapter that fails costs nothing but the adaptation:
the channel keeps its base model and the store records why. The adapter is injected (this
package never imports :mod:`live_restore.adapt`): ``adapter(base, stacks) -> Restorer``.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from live_restore.acquisition.ledger import utc_now
from live_restore.acquisition.store import AcquisitionStore, FrameIndex
from live_restore.acquisition.worker import (
    LOWEST_PRIORITY_NICE,
    RestoreWorker,
    lower_thread_priority,
    model_label,
)
from live_restore.models.restorer import Restorer

__all__ = ["AdaptFirst", "Adapter", "LiveAdaptation", "field_stacks"]

log = logging.getLogger(__name__)

Adapter = Callable[[Restorer, list[np.ndarray]], Restorer]
"""``adapter(base, stacks)``: a restorer adapted from ``base`` on ``stacks``, one ``(T, Y, X)``
array of raw frames (camera dtype, acquisition order) per field; raises to keep the base."""


@runtime_checkable
class _SavableRestorer(Protocol):
    """A restorer that writes its own model files (every trained restorer does)."""

    name: str
    version: str

    def save(self, stem: Path, extra: Mapping[str, object] | None = None) -> Path: ...


@dataclass(frozen=True)
class AdaptFirst:
    """Adapt each restored channel's model on its first ``frames`` frames with ``adapter``."""

    frames: int
    adapter: Adapter

    def __post_init__(self) -> None:
        if isinstance(self.frames, bool) or not isinstance(self.frames, int) or self.frames < 2:
            raise ValueError(
                f"adapt-first needs at least 2 frames of a channel (two of one field), "
                f"got {self.frames!r}"
            )


def field_stacks(store: AcquisitionStore, indices: list[FrameIndex]) -> list[np.ndarray]:
    """The raw frames at ``indices`` as one ``(T, Y, X)`` stack per field (every axis but
    ``t`` equal), fields in order of first appearance, frames in acquisition order."""
    fields: dict[tuple[tuple[str, int], ...], list[np.ndarray]] = {}
    for index in indices:
        key = tuple(sorted((a, int(v)) for a, v in index.items() if a != "t"))
        fields.setdefault(key, []).append(store.read_raw(index))
    return [np.stack(frames) for frames in fields.values()]


def _file_stem(name: str, channel: str) -> str:
    """A file name for the adapted model of ``channel``: letters, digits and ``+-._`` only."""
    stem = f"{name}-{channel}" if channel else name
    return re.sub(r"[^A-Za-z0-9+\-._]", "_", stem)


class LiveAdaptation:
    """The adapt-first bookkeeping of one :class:`~live_restore.acquisition.hook.LiveRestorer`.

    ``note_frame`` runs on the thread that delivers frames; everything else runs in one
    background thread per channel. ``records`` holds, per channel, where its adaptation stands
    (``running``, ``adapted``, ``failed``, ``cancelled``, or ``waiting`` for frames), as the
    store's metadata does.
    """

    def __init__(
        self,
        plan: AdaptFirst,
        store: AcquisitionStore,
        worker: RestoreWorker,
        *,
        nice: int = LOWEST_PRIORITY_NICE,
    ) -> None:
        self.plan = plan
        self.store = store
        self.nice = nice
        self.records: dict[str, dict[str, Any]] = {}
        self._worker = worker
        self._collected: dict[str, list[FrameIndex]] = {}
        self._threads: dict[str, threading.Thread] = {}
        self._open: set[str] = set()  # channels whose worker hold is not yet released
        self._lock = threading.Lock()
        self._cancelled = False

    def note_frame(self, channel: str, index: FrameIndex, restorer: Restorer) -> None:
        """A frame of ``channel`` was saved and queued for ``restorer``; the channel's
        ``frames``-th starts its adaptation. Cheap: it runs on the acquisition thread."""
        if channel in self._threads or self._cancelled:
            return
        indices = self._collected.setdefault(channel, [])
        indices.append(dict(index))
        if len(indices) < self.plan.frames:
            return
        with self._lock:
            self._open.add(channel)
        self._worker.hold()
        thread = threading.Thread(target=self._adapt, args=(channel, indices, restorer),
                                  name=f"live-restore-adapt-{channel or 'frames'}", daemon=True)
        self._threads[channel] = thread
        self.records[channel] = {"status": "running", "base": model_label(restorer),
                                 "frames": len(indices), "started": utc_now()}
        log.info("adapting %s on the first %d frames of channel %r", model_label(restorer),
                 len(indices), channel)
        thread.start()

    def cancel(self) -> None:
        """Stop waiting for running adaptations (the user interrupted): their channels keep the
        base model and whatever they return is dropped."""
        with self._lock:
            self._cancelled = True
            channels, self._open = self._open, set()
        for channel in channels:
            self._finish(channel, {"status": "cancelled"}, None)

    def close(self) -> None:
        """Note in the store the channels that never reached ``frames`` frames."""
        for channel, indices in self._collected.items():
            if channel not in self._threads:
                record = {"status": "waiting", "frames": len(indices),
                          "reason": f"the channel had {len(indices)} of the "
                                    f"{self.plan.frames} frames adapt-first needs"}
                self.records[channel] = record
                self._store_record(channel, record)

    def _adapt(self, channel: str, indices: list[FrameIndex], base: Restorer) -> None:
        lower_thread_priority(self.nice)
        started = time.perf_counter()
        try:
            adapted = self.plan.adapter(base, field_stacks(self.store, indices))
            if not isinstance(adapted, Restorer):
                raise TypeError(f"the adapter returned {type(adapted).__name__}, not a restorer")
            outcome = {"status": "adapted", **self._save(adapted, channel, indices)}
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"
            log.error("adapting channel %r failed; it keeps %s: %s", channel,
                      model_label(base), reason)
            adapted, outcome = None, {"status": "failed", "reason": reason}
        outcome["minutes"] = round((time.perf_counter() - started) / 60.0, 3)
        with self._lock:
            if channel not in self._open:  # cancelled meanwhile
                return
            self._open.discard(channel)
        self._finish(channel, outcome, None if adapted is None else (base, adapted))

    def _save(self, adapted: Restorer, channel: str, indices: list[FrameIndex]
              ) -> dict[str, Any]:
        """Write the adapted model into ``STORE/models`` when it can save itself; the ledger
        names it by the saved files' name and checksum."""
        if not isinstance(adapted, _SavableRestorer):
            return {"model": model_label(adapted), "file": None}
        record = dict(getattr(adapted, "adaptation", None) or {})
        record["live"] = {"channel": channel, "frames": indices}
        stem = self.store.model_folder() / _file_stem(adapted.name, channel)
        path = adapted.save(stem, extra={"adaptation": record})
        adapted.name = stem.name  # as the file names it, so the ledger and the file agree
        return {"model": model_label(adapted),
                "file": path.relative_to(self.store.path).as_posix()}

    def _finish(self, channel: str, outcome: dict[str, Any],
                switch: tuple[Restorer, Restorer] | None) -> None:
        """Record the outcome, then switch the worker (or release its hold)."""
        record = {**self.records.get(channel, {}), **outcome, "finished": utc_now()}
        self.records[channel] = record
        self._store_record(channel, record)
        if switch is None:
            self._worker.release()
        else:
            self._worker.switch(channel, *switch)
            log.info("channel %r now restored with %s", channel, record["model"])

    def _store_record(self, channel: str, record: dict[str, Any]) -> None:
        try:
            self.store.record_adaptation(channel, record)
        except Exception:  # a full disk must not stop the switch or the acquisition
            log.exception("could not record the adaptation of channel %r in the store", channel)
