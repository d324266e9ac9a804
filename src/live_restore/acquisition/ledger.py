"""The ledger of one store: what happened to every frame, kept as an append-only journal.

``STORE/ledger/journal.jsonl`` holds one JSON line per frame event (raw written, restored,
failed, skipped, lost) and is the only source of truth: the in-memory state is rebuilt by replaying
it, and the ``ledger`` arrays and root-attribute summary the store writes are snapshots of it.
A line is handed to the OS before the call that wrote it returns, so a killed process loses at
most a line it was in the middle of writing; a torn line is skipped on replay.

The journal knows frames only as index tuples over the store's non-YX axes; where pixels live
is the store's business, so nothing here imports zarr.
"""

from __future__ import annotations

import datetime as _dt
import enum
import json
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

import numpy as np

__all__ = ["FrameKey", "FrameStatus", "Ledger", "utc_now"]

log = logging.getLogger(__name__)

FrameKey = tuple[int, ...]
"""A frame's position over the store's non-YX axes, in ``sizes`` order."""

META_KEYS = ("time_ms", "x_um", "y_um", "z_um")
"""Per-frame numbers copied into the ``ledger`` arrays on every flush."""

MAX_EXTRA_VALUE_CHARS = 16384
"""Longer per-frame metadata values (e.g. a full device-property dump) stay out of the journal:
every journal line is written on the acquisition thread."""

FLUSH_EVERY_UPDATES = 64
"""Outcomes (restored/failed/skipped) between two snapshots of the ledger into the store."""

FLUSH_EVERY_S = 5.0
"""Longest time between two snapshots while outcomes keep arriving, so a viewer sees progress."""


class FrameStatus(enum.IntEnum):
    """Ledger state of one frame."""

    EMPTY = 0
    RAW = 1
    RESTORED = 2
    FAILED = 3
    SKIPPED = 4  # channel not restored by design
    LOST = 5  # the camera gave the frame but its raw pixels could not be saved (reason kept)


STATUS_NAMES = {s: s.name.lower() for s in FrameStatus}
_STATUS_BY_NAME = {v: k for k, v in STATUS_NAMES.items()}


def utc_now() -> str:
    """An ISO 8601 UTC timestamp to the second, as stored in the root attributes."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _ranges(flat: np.ndarray) -> list[list[int]]:
    """Sorted flat indices as half-open ``[start, stop)`` runs: a compact ledger for 10^4 frames."""
    if flat.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(flat) != 1) + 1
    starts = np.concatenate([[0], breaks])
    stops = np.concatenate([breaks, [flat.size]])
    return [[int(flat[a]), int(flat[b - 1]) + 1] for a, b in zip(starts, stops, strict=True)]


def frame_meta(meta: Mapping | None) -> dict[str, Any]:
    """Normalise pymmcore-plus frame metadata to time/stage keys plus small JSON-able extras."""
    if not meta:
        return {}
    out: dict[str, Any] = {}
    position = meta.get("position") or {}
    sources = {
        "time_ms": (meta.get("time_ms"), meta.get("runner_time_ms"), meta.get("ElapsedTime-ms")),
        "x_um": (meta.get("x_um"), position.get("x")),
        "y_um": (meta.get("y_um"), position.get("y")),
        "z_um": (meta.get("z_um"), position.get("z")),
    }
    for key, candidates in sources.items():
        for value in candidates:
            try:
                out[key] = float(value)
                break
            except (TypeError, ValueError):
                continue
    for key, value in meta.items():
        if key in out or key == "position":
            continue
        try:
            text = json.dumps(value)
        except (TypeError, ValueError):
            continue
        if len(text) <= MAX_EXTRA_VALUE_CHARS:
            out[str(key)] = value
    return out


class Ledger:
    """The state of every frame of one store, replayed from and appended to its journal.

    Thread-safe: the acquisition thread records raw frames while a restore worker records
    outcomes. ``writable=False`` replays the journal without opening it for appending.
    """

    def __init__(self, journal_path: Path, sizes: Mapping[str, int], *, writable: bool) -> None:
        self.journal_path = journal_path
        self.axes = list(sizes)
        shape = tuple(sizes.values())
        self._status = np.zeros(shape, dtype=np.uint8)
        self._has_raw = np.zeros(shape, dtype=bool)
        self._meta: dict[FrameKey, dict[str, Any]] = {}
        self._reasons: dict[FrameKey, str] = {}
        self._models: dict[FrameKey, str] = {}
        self._floor: dict[FrameKey, dict[str, Any]] = {}  # the restored result's floor check
        self._latest: dict[FrameStatus, FrameKey] = {}  # the frame of each status last recorded
        self._lock = threading.Lock()
        self._updates_since_flush = 0
        self._last_flush = time.monotonic()
        self.journal_bytes = 0
        """The journal's length as replayed and appended (what a snapshot summarises)."""
        self._replay()
        self._journal: TextIO | None = self._open() if writable else None

    # ------------------------------------------------------------------ journal

    def _apply(self, record: Mapping[str, Any]) -> None:
        """Fold one journal record into the in-memory state (caller holds the lock); a stack's
        record (``"z"``: its planes) applies to each of its planes."""
        if "z" in record:
            at = self.axes.index("z")
            for z in record["z"]:
                key = list(record["i"])
                key[at] = int(z)
                self._apply({k: v for k, v in record.items() if k != "z"} | {"i": key})
            return
        key = tuple(record["i"])
        status = _STATUS_BY_NAME[record["s"]]
        self._latest[status] = key
        if status == FrameStatus.RAW:
            self._has_raw[key] = True
            self._meta[key] = dict(record.get("m", {}))
            if self._status[key] == FrameStatus.EMPTY:
                self._status[key] = FrameStatus.RAW
            return
        self._status[key] = status
        self._reasons.pop(key, None)
        self._models.pop(key, None)
        self._floor.pop(key, None)
        if status == FrameStatus.RESTORED:
            self._models[key] = record.get("model", "")
            if isinstance(record.get("floor"), dict):
                self._floor[key] = record["floor"]
        else:
            self._reasons[key] = record.get("reason", "")

    def _replay(self) -> None:
        """Rebuild the state; a line torn by a crash is skipped."""
        if not self.journal_path.exists():
            return
        self.journal_bytes = self.journal_path.stat().st_size
        with self.journal_path.open(encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    self._apply(json.loads(line))
                except (ValueError, KeyError, IndexError, TypeError):
                    log.warning("%s:%d: skipping unreadable ledger line", self.journal_path, lineno)

    def follow(self) -> int:
        """Apply the whole lines another process appended since the last look; how many.

        For a read-only ledger beside a running writer (a viewer following a store): a line
        still being written is left for the next call."""
        if self._journal is not None:
            raise OSError(f"ledger {str(self.journal_path)!r} is the writer's; it needs no follow")
        if not self.journal_path.exists():
            return 0
        with self.journal_path.open("rb") as fh:
            fh.seek(self.journal_bytes)
            new = fh.read()
        whole = new[:new.rfind(b"\n") + 1]
        applied = 0
        with self._lock:
            for line in whole.decode("utf-8", errors="replace").splitlines():
                try:
                    self._apply(json.loads(line))
                    applied += 1
                except (ValueError, KeyError, IndexError, TypeError):
                    continue  # a line torn by a killed writer; the writer's replay skips it too
            self.journal_bytes += len(whole)
        return applied

    def _open(self) -> TextIO:
        size = self.journal_path.stat().st_size
        torn = False
        if size:
            with self.journal_path.open("rb") as raw:
                raw.seek(size - 1)
                torn = raw.read(1) != b"\n"
        fh = self.journal_path.open("a", encoding="utf-8")
        if torn:
            fh.write("\n")  # end a line torn by a crash so the next record starts clean
            fh.flush()
            self.journal_bytes += 1
        return fh

    def _append(self, record: dict[str, Any]) -> bool:
        """Write one line (durable against process death) and apply it; True when a flush of
        the snapshots is due."""
        if self._journal is None:
            raise OSError(f"ledger {str(self.journal_path)!r} is open read-only or closed")
        line = json.dumps(record, separators=(",", ":")) + "\n"
        with self._lock:
            self._journal.write(line)
            self._journal.flush()
            self.journal_bytes += len(line.encode())
            self._apply(record)
            if record["s"] == STATUS_NAMES[FrameStatus.RAW]:
                return False
            self._updates_since_flush += 1
            return (
                self._updates_since_flush >= FLUSH_EVERY_UPDATES
                or time.monotonic() - self._last_flush >= FLUSH_EVERY_S
            )

    # ------------------------------------------------------------------ recording

    def record_raw(self, key: FrameKey, meta: Mapping | None) -> None:
        """The raw frame's pixels are in place; note it with its metadata."""
        self._append({"i": list(key), "s": STATUS_NAMES[FrameStatus.RAW], "m": frame_meta(meta)})

    def record_restored(self, key: FrameKey, model: str,
                        floor: Mapping[str, Any] | None = None) -> bool:
        """The restored pixels are in place (``floor``: how they compare with the Gaussian
        floor, see :mod:`live_restore.models.floor`); True when a flush is due."""
        record = {"i": list(key), "s": STATUS_NAMES[FrameStatus.RESTORED], "model": model}
        if floor is not None:
            record["floor"] = dict(floor)
        return self._append(record)

    def record_outcome(self, key: FrameKey, status: FrameStatus, reason: str) -> bool:
        """A frame failed, was skipped or was lost for ``reason``; True when a flush is due."""
        return self._append({"i": list(key), "s": STATUS_NAMES[status], "reason": str(reason)})

    def record_stack(self, key: FrameKey, planes: Sequence[int], status: FrameStatus, *,
                     model: str = "", reason: str = "") -> bool:
        """One outcome for a whole z-stack, one journal line: ``key`` names the stack (its z
        is ignored), ``planes`` the raw planes the outcome covers; ``model`` for RESTORED,
        ``reason`` otherwise. True when a flush is due."""
        record: dict[str, Any] = {"i": list(key), "z": [int(z) for z in planes],
                                  "s": STATUS_NAMES[status]}
        record.update({"model": model} if status == FrameStatus.RESTORED
                      else {"reason": str(reason)})
        return self._append(record)

    def note_raw_chunk(self, key: FrameKey) -> bool:
        """A raw chunk file exists for ``key``; True if the journal had no line for it (a crash
        between the pixels and the journal), in which case it now counts as written."""
        with self._lock:
            if self._has_raw[key]:
                return False
            self._has_raw[key] = True
            if self._status[key] in (FrameStatus.EMPTY, FrameStatus.LOST):  # pixels are there
                self._status[key] = FrameStatus.RAW
            return True

    # ------------------------------------------------------------------ reading

    def has_raw(self, key: FrameKey) -> bool:
        with self._lock:
            return bool(self._has_raw[key])

    def status(self, key: FrameKey) -> FrameStatus:
        return FrameStatus(int(self._status[key]))

    def label(self, key: FrameKey) -> str:
        """``"t=3,c=1"``: how errors and the failure table name a frame."""
        return ",".join(f"{a}={v}" for a, v in zip(self.axes, key, strict=True))

    def keys(self, *statuses: FrameStatus) -> list[FrameKey]:
        """Every frame with one of ``statuses``, in storage (C) order."""
        with self._lock:
            hits = np.argwhere(np.isin(self._status, [int(s) for s in statuses]))
        return [tuple(int(v) for v in hit) for hit in hits]

    def keys_restored_by(self, model: str) -> list[FrameKey]:
        """Every frame whose current result ``model`` (``name@version``) wrote, in C order."""
        with self._lock:
            return sorted(k for k, m in self._models.items()
                          if m == model and self._status[k] == FrameStatus.RESTORED)

    def below_floor(self) -> dict[str, float]:
        """``"t=3,c=1" -> estimated dB gain`` for every restored frame whose floor check says
        it is worse than a Gaussian blur of its raw frame."""
        with self._lock:
            return self._below_floor()

    def _below_floor(self) -> dict[str, float]:
        """:meth:`below_floor`, for a caller holding the lock."""
        return {self.label(k): float(c.get("gain_db", "nan"))
                for k, c in sorted(self._floor.items())
                if c.get("below_floor") and self._status[k] == FrameStatus.RESTORED}

    def latest(self, status: FrameStatus) -> FrameKey | None:
        """The frame whose journal line last recorded ``status`` (RAW: the newest raw frame)."""
        with self._lock:
            return self._latest.get(status)

    def counts(self) -> dict[str, int]:
        """Frames per status name (``raw`` counts frames written raw and not yet restored)."""
        with self._lock:
            found = np.bincount(self._status.ravel(), minlength=len(FrameStatus))
        return {STATUS_NAMES[s]: int(found[s]) for s in FrameStatus}

    def stack_counts(self) -> dict[str, int]:
        """Z-stacks (every index but z) by how far they are: ``acquired`` (at least one raw
        plane), ``restored`` (every raw plane restored), ``pending`` (a plane waits),
        ``failed`` (a plane failed)."""
        at = self.axes.index("z")
        with self._lock:
            status, has_raw = self._status, self._has_raw
            done = (status == FrameStatus.RESTORED) | ~has_raw
            return {
                "acquired": int(has_raw.any(axis=at).sum()),
                "restored": int((done.all(axis=at) & has_raw.any(axis=at)).sum()),
                "pending": int((status == FrameStatus.RAW).any(axis=at).sum()),
                "failed": int((status == FrameStatus.FAILED).any(axis=at).sum()),
            }

    def record_of(self, key: FrameKey) -> dict[str, Any]:
        """What the journal says of one frame: its status and, as they apply, the model that
        restored it, its floor check and the reason it failed, was skipped or lost."""
        with self._lock:
            out: dict[str, Any] = {"status": STATUS_NAMES[FrameStatus(self._status[key])]}
            for name, found in (("model", self._models), ("floor", self._floor),
                                ("reason", self._reasons)):
                if key in found:
                    out[name] = found[key]
        return out

    def model_counts(self, axis: str | None = None) -> dict[Any, Any]:
        """``name@version -> frames`` whose current restored result that model wrote; with
        ``axis`` (e.g. ``"c"``), those counts per value of that axis."""
        at = None if axis is None else self.axes.index(axis)
        with self._lock:
            counts: dict[Any, dict[str, int]] = {}
            for key, model in self._models.items():
                if self._status[key] == FrameStatus.RESTORED:
                    group = counts.setdefault(None if at is None else key[at], {})
                    group[model] = group.get(model, 0) + 1
        if at is None:
            return dict(sorted(counts.get(None, {}).items()))
        return {value: dict(sorted(group.items())) for value, group in sorted(counts.items())}

    def reasons(self, status: FrameStatus) -> dict[str, str]:
        """``"t=3,c=1" -> reason`` for every frame with ``status`` (FAILED, SKIPPED or LOST)."""
        with self._lock:
            return self._reasons_of(status)

    def _reasons_of(self, status: FrameStatus) -> dict[str, str]:
        """:meth:`reasons`, for a caller holding the lock."""
        return {self.label(k): r for k, r in sorted(self._reasons.items())
                if self._status[k] == status}

    def frame_metadata(self, key: FrameKey) -> dict[str, Any]:
        """Metadata recorded with the raw frame, plus its status and model or reason."""
        with self._lock:
            out = dict(self._meta.get(key, {}))
            out["status"] = STATUS_NAMES[FrameStatus(int(self._status[key]))]
            if key in self._models:
                out["model"] = self._models[key]
            if key in self._reasons:
                out["reason"] = self._reasons[key]
            if key in self._floor:
                out["floor"] = dict(self._floor[key])
        return out

    def snapshot(self) -> tuple[dict[str, Any], np.ndarray, dict[str, np.ndarray]]:
        """The JSON summary, the status array and the per-frame number arrays, taken under the
        lock so the store can write them outside it."""
        with self._lock:
            journal_bytes = self.journal_bytes
            status = self._status.copy()
            by_model: dict[str, list[int]] = {}
            for key, model in self._models.items():
                if status[key] == FrameStatus.RESTORED:
                    by_model.setdefault(model, []).append(np.ravel_multi_index(key, status.shape))
            skipped: dict[str, list[int]] = {}
            for key, reason in self._reasons.items():
                if status[key] == FrameStatus.SKIPPED:
                    skipped.setdefault(reason, []).append(np.ravel_multi_index(key, status.shape))
            failed, lost = self._reasons_of(FrameStatus.FAILED), self._reasons_of(FrameStatus.LOST)
            below_floor = self._below_floor()
            meta = {name: np.full(status.shape, np.nan) for name in META_KEYS}
            for key, values in self._meta.items():
                for name in META_KEYS:
                    if name in values:
                        meta[name][key] = values[name]
        summary = {
            "updated": utc_now(),
            "journal_bytes": journal_bytes,
            "axes": self.axes,
            "encoding": "[start, stop) runs of C-order flat indices over the axes",
            "counts": {STATUS_NAMES[s]: int((status == s).sum()) for s in FrameStatus},
            "restored": {m: _ranges(np.sort(np.array(v))) for m, v in sorted(by_model.items())},
            "skipped": {r: _ranges(np.sort(np.array(v))) for r, v in sorted(skipped.items())},
            "failed": failed,
            "lost": lost,
            "below_floor": below_floor,
        }
        if "z" in self.axes:
            summary["stacks"] = self.stack_counts()
        return summary, status, meta

    def flushed(self) -> None:
        """The store has written a snapshot: restart the flush counters."""
        with self._lock:
            self._updates_since_flush = 0
            self._last_flush = time.monotonic()

    def close(self) -> None:
        """Release the journal file; recording after this raises OSError."""
        with self._lock:
            if self._journal is not None:
                self._journal.close()
                self._journal = None
