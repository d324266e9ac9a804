"""One OME-Zarr v0.5 store per acquisition: raw frames, restored frames and their ledger.

Layout (a bioformats2raw-style container, so validating the root validates every image)::

    STORE/zarr.json            {"ome": {"version": "0.5", "bioformats2raw.layout": 3},
                                "live_restore": {...}, "useq_sequence": {...}}
    STORE/OME/zarr.json        {"ome": {"version": "0.5", "series": ["raw", "restored", ...]}}
    STORE/OME/METADATA.ome.xml one metadata-only OME Image per series (napari finds them by it)
    STORE/raw/0                camera dtype       one multiscale image, single level "0"
    STORE/restored/0           float32 (NaN until restored); (Z − 1)·K + 1 planes where raw
                               has Z when z-stacks are filled (``fill_planes`` K, see
                               :mod:`live_restore.acquisition.stacks`)
    STORE/uncertainty/0        float32, only when requested
    STORE/ledger/journal.jsonl append-only record of every frame event (the source of truth)
    STORE/ledger/{status,time_ms,x_um,y_um,z_um}   snapshots of the journal, written on flush
    STORE/models/NAME.{json,safetensors}   models adapted during the acquisition, if any

Why it is laid out this way:

* **Positions are series, not an axis.** OME-Zarr 0.5 allows at most five axes and only one of
  type channel or custom, so a (t, p, c, z, y, x) image does not validate. Every axis of
  ``sizes`` except the position axes ``p`` (stage position) and ``g`` (grid) is an image axis
  (storage order as given); each position gets its own series. A single position keeps the plain
  names ``raw``, ``restored``, ``uncertainty``; several positions are named
  ``raw_p0``, ``raw_p1``, ... (``raw_p0_g1`` with a grid), listed kind by kind in
  ``OME/zarr.json``. ``live_restore.series`` in the root attributes maps positions to names.
* **No sharding.** zarr-python rewrites a whole shard for every frame written into it, so the
  cost of a raw write would grow with the shard; raw frames are written on the acquisition
  thread, so every array uses one uncompressed chunk per frame (one file per frame).
* **Durability.** A frame's chunk is written to a temporary file and renamed, so it is either
  absent or complete. ``write_raw`` returns only after the chunk file is in place and the
  journal line is handed to the OS, so a ``kill -9`` after it returns cannot lose the frame
  (power loss is outside this promise: nothing is fsynced). Raw frames are never overwritten.
  ``open`` replays the journal and also scans the raw chunk files, so a frame whose journal
  line was lost to a crash still counts as written (and pending).
* **Per-frame metadata** goes into the journal with the raw frame (see
  :mod:`live_restore.acquisition.ledger`); flushes copy the numbers into the ``ledger`` arrays
  and a compact summary into ``live_restore.ledger``, with the length of the journal they
  describe (``journal_bytes``), so a reader can tell a stale snapshot. Opening a store for
  writing derives them from the journal again (after a crash, a full disk, a killed writer).
  Flushes happen on opening for writing, ``close``, ``set_model_info`` and every few outcomes
  or seconds, on the thread that records outcomes, never inside ``write_raw``.
* **A restored result counts once its journal line is written** (after its pixels), so a crash
  between the two leaves the frame pending and ``resume`` simply restores it again.
* **Viewers** get display windows from the data, axis units, the restoring model and
  ``OME/METADATA.ome.xml`` from :mod:`live_restore.acquisition.display`.

Only this module and :mod:`live_restore.acquisition.store_files` (the groups, arrays and chunk
files themselves) import zarr.
"""


from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import zarr

from live_restore.acquisition.display import ImageMetadata
from live_restore.acquisition.layout import (
    POSITION_AXES,
    axis_steps,
    image_attrs,
    image_kinds,
    result_sizes,
    series_names,
    software_versions,
    store_sizes,
)
from live_restore.acquisition.ledger import FrameKey, FrameStatus, Ledger, utc_now
from live_restore.acquisition.lock import StoreLock, lock_new_store, released_on_error
from live_restore.acquisition.stacks import ZStacks
from live_restore.acquisition.store_files import (
    JOURNAL,
    STORE_FORMAT,
    STORE_VERSION,
    array_location,
    cast_raw,
    raw_chunk_keys,
    write_frame_chunk,
    write_groups,
)

if TYPE_CHECKING:
    import useq

__all__ = ["AcquisitionStore", "FrameIndex", "FrameStatus"]

logger = logging.getLogger(__name__)

FrameIndex = Mapping[str, int]
"""A useq ``event.index``, e.g. ``{"t": 3, "c": 1}``; missing axes mean 0."""

MODELS = "models"
"""The group of models made during the acquisition (see :meth:`AcquisitionStore.model_folder`)."""


class AcquisitionStore(ZStacks):
    """Raw, restored and uncertainty images of one acquisition plus the ledger of what is done.

    Thread-safe: the acquisition thread calls ``write_raw`` while a restore worker calls
    ``write_restored`` / ``mark_failed`` concurrently. Pixels are written outside the lock;
    only the journal and in-memory ledger are updated under it.
    """

    def __init__(self, path: Path, group: zarr.Group, info: dict[str, Any], mode: str,
                 lock: StoreLock | None = None) -> None:
        """Use ``create``, ``from_sequence`` or ``open``; this only wires up an existing store
        (``lock``: the writer lock a writable store holds until :meth:`close`)."""
        self.path = path
        self._lock = lock
        self._group = group
        self._info = info
        self._read_only = mode == "r"
        self.sizes: dict[str, int] = {k: int(v) for k, v in info["sizes"].items()}
        self.frame_shape: tuple[int, int] = (
            int(info["frame_shape"][0]),
            int(info["frame_shape"][1]),
        )
        self.raw_dtype = np.dtype(info["raw_dtype"])
        self.has_uncertainty: bool = bool(info["uncertainty"])
        self.fill_planes = int(info.get("fill_planes", 1))
        """Restored planes per acquired z step (1: restored z is raw z)."""
        self.channel_names: list[str] | None = info.get("channel_names")
        self._pos_axes = [a for a in self.sizes if a in POSITION_AXES]
        self._img_axes = [a for a in self.sizes if a not in POSITION_AXES]
        self._arrays: dict[str, dict[tuple[int, ...], zarr.Array]] = {
            kind: {
                tuple(pos): group[f"{name}/0"].with_config({"write_empty_chunks": True})
                for pos, name in info["series"][kind]
            }
            for kind in image_kinds(self.has_uncertainty)
        }
        self._images = ImageMetadata(self.sizes, info["series"], self.raw_dtype, {
            name: group[name].attrs.asdict() for entries in info["series"].values()
            for _, name in entries
        })
        self._flush_lock = threading.Lock()
        self._closed = False
        self._ledger = Ledger(path / JOURNAL, self.sizes, writable=not self._read_only)
        self._scan_raw_chunks()

    # ------------------------------------------------------------------ construction

    @classmethod
    def create(
        cls,
        path: str | os.PathLike[str],
        *,
        sizes: Mapping[str, int],
        frame_shape: tuple[int, int],
        dtype: Any,
        channel_names: Sequence[str] | None = None,
        pixel_size_um: float | None = None,
        sequence_json: str | None = None,
        uncertainty: bool = False,
        overwrite: bool = False,
        attrs: Mapping | None = None,
        fill_planes: int = 1,
    ) -> AcquisitionStore:
        """Create a new store; ``sizes`` are the non-YX axes in storage (pymmcore-plus) order.

        ``fill_planes`` > 1: the z-stacks are acquired every ``fill_planes``-th plane and
        restored at every plane, so the restored images hold ``(z − 1)·fill_planes + 1``
        planes at ``1/fill_planes`` of the raw z step (:func:`~live_restore.acquisition.
        layout.result_sizes`); raw plane ``z`` is restored plane ``z·fill_planes``."""
        path = Path(path).expanduser().absolute()
        sizes = {str(k): int(v) for k, v in sizes.items()}
        if any(k in ("y", "x") for k in sizes) or any(v < 1 for v in sizes.values()):
            raise ValueError(f"sizes must be non-YX axes of size >= 1, got {sizes!r}")
        if len(frame_shape) != 2 or any(int(n) < 1 for n in frame_shape):
            raise ValueError(f"frame_shape must be (Y, X) of positive ints, got {frame_shape!r}")
        frame_shape = (int(frame_shape[0]), int(frame_shape[1]))
        raw_dtype = np.dtype(dtype)
        if raw_dtype.kind not in "uif":
            raise TypeError(f"raw dtype must be an integer or float type, got {raw_dtype}")
        n_channels = sizes.get("c")
        if channel_names is not None and len(channel_names) != (n_channels or 0):
            raise ValueError(
                f"{len(channel_names)} channel names {list(channel_names)!r} for c={n_channels}"
            )
        attrs = dict(attrs or {})
        if {"ome", "live_restore"} & attrs.keys():
            raise ValueError(f"attrs may not set reserved keys 'ome'/'live_restore': {attrs!r}")
        sequence = json.loads(sequence_json) if sequence_json else None
        fill_planes = int(fill_planes)
        result_sizes(sizes, fill_planes)  # raises for a bad fill before anything is written

        img_axes = [a for a in sizes if a not in POSITION_AXES]
        kinds = image_kinds(uncertainty)
        series = series_names(sizes, kinds)
        steps = axis_steps(sequence)
        result_steps = {a: v / fill_planes if a == "z" else v for a, v in steps.items()}
        image_meta = {  # validated here, before anything is written
            kind: image_attrs(
                img_axes,
                pixel_size_um,
                np.dtype("float32") if kind != "raw" else raw_dtype,
                channel_names or [None] * sizes.get("c", 1),
                steps if kind == "raw" else result_steps,
            )
            for kind in kinds
        }
        lock = lock_new_store(path, overwrite=overwrite)
        with released_on_error(lock):
            info: dict[str, Any] = {
                "format": STORE_FORMAT,
                "format_version": STORE_VERSION,
                "created": utc_now(),
                "software": software_versions(),
                "sizes": sizes,
                "image_axes": [*img_axes, "y", "x"],
                "frame_shape": list(frame_shape),
                "raw_dtype": raw_dtype.str,
                "channel_names": list(channel_names) if channel_names is not None else None,
                "pixel_size_um": pixel_size_um or None,  # a core without one says 0
                "uncertainty": bool(uncertainty),
                "fill_planes": fill_planes,
                "series": series,
                "model": None,
                "ledger": None,
            }
            root = write_groups(path, info, sequence=sequence, attrs=attrs,
                                image_meta=image_meta)
            logger.info("created store %s sizes=%s frame=%s %s", path, sizes, frame_shape,
                        raw_dtype)
            return cls(path, root, info, "r+", lock)

    @classmethod
    def from_sequence(
        cls,
        path: str | os.PathLike[str],
        sequence: useq.MDASequence,
        frame_shape: tuple[int, int],
        dtype: Any,
        **kw: Any,
    ) -> AcquisitionStore:
        """Create a store shaped like ``sequence`` (axes t, p, g, c, z as used, in that order)."""
        sizes = store_sizes(sequence)
        if "c" in sizes:
            kw.setdefault("channel_names", [ch.config for ch in sequence.channels])
        kw.setdefault("sequence_json", sequence.model_dump_json())
        return cls.create(path, sizes=sizes, frame_shape=frame_shape, dtype=dtype, **kw)

    @classmethod
    def open(cls, path: str | os.PathLike[str], mode: str = "r+", *,
             following: bool = False) -> AcquisitionStore:
        """Reopen a store to read it or to resume; the ledger is rebuilt from the journal.

        ``r+`` takes the store's writer lock (:class:`~live_restore.acquisition.lock.
        StoreBusyError` while another writer holds it); ``r`` reads beside a writer, and warns
        when the root summary lags the journal unless ``following`` says the reader expects a
        running writer (and will :meth:`follow` it)."""
        if mode not in ("r", "r+"):
            raise ValueError(f"mode must be 'r' or 'r+', got {mode!r}")
        path = Path(path).expanduser().absolute()
        if not (path / "zarr.json").is_file():
            raise FileNotFoundError(f"{str(path)!r} is not a zarr store (no zarr.json)")
        group = zarr.open_group(path, mode=mode, zarr_format=3)
        info = group.attrs.get("live_restore")
        if not isinstance(info, dict) or info.get("format") != STORE_FORMAT:
            raise ValueError(f"{str(path)!r} is a zarr store but not a live_restore store")
        if info.get("format_version") != STORE_VERSION:
            raise ValueError(
                f"{str(path)!r} has store format version {info.get('format_version')!r}; "
                f"this live_restore reads version {STORE_VERSION}"
            )
        if mode == "r":
            store = cls(path, group, dict(info), mode)
            if store.summary_is_stale and not following:
                logger.warning("%s: the summary in the root attributes is older than the "
                               "journal (a writer is running, or one stopped without closing "
                               "the store); the counts here come from the journal", path)
            return store
        lock = StoreLock.acquire(path)
        with released_on_error(lock):
            store = cls(path, group, dict(info), mode, lock)
            store.flush()  # the summary and status arrays, derived again from the journal
            return store

    def follow(self) -> int:
        """A store opened read-only beside a running writer: take in the frames the writer
        journalled since (how many journal lines); its pixels are then readable."""
        if not self._read_only:
            raise OSError(f"{self.path} is open for writing; it has nothing to follow")
        return self._ledger.follow()

    @property
    def summary_is_stale(self) -> bool:
        """True when the root summary and ``ledger`` arrays do not describe the whole journal
        (a writer still running, or killed before its last flush); the API reads the journal
        itself, so only readers of the snapshots need to care."""
        summary = self._info.get("ledger") or {}
        return summary.get("journal_bytes") != self._ledger.journal_bytes

    # ------------------------------------------------------------------ indices

    def _key(self, index: FrameIndex) -> FrameKey:
        """Full index tuple in ``sizes`` order; raises ValueError quoting a bad index."""
        unknown = [a for a, v in index.items() if a not in self.sizes and int(v) != 0]
        if unknown:
            raise ValueError(f"index {dict(index)!r} uses axes {unknown} not in {self.sizes}")
        key = tuple(int(index.get(a, 0)) for a in self.sizes)
        for (axis, size), value in zip(self.sizes.items(), key, strict=True):
            if not 0 <= value < size:
                raise ValueError(f"index {dict(index)!r}: {axis}={value} outside 0..{size - 1}")
        return key

    def _as_index(self, key: FrameKey) -> dict[str, int]:
        return dict(zip(self.sizes, key, strict=True))

    def _locate(self, kind: str, key: FrameKey) -> tuple[zarr.Array, tuple[int, ...]]:
        """The series array holding ``key`` and the frame's index inside it (raw plane ``z``
        of a filled stack is restored plane ``z·fill_planes``)."""
        named = dict(zip(self.sizes, key, strict=True))
        if kind != "raw" and "z" in named:
            named["z"] *= self.fill_planes
        pos = tuple(named[a] for a in self._pos_axes)
        return self._arrays[kind][pos], tuple(named[a] for a in self._img_axes)

    def frame_location(self, kind: str, index: FrameIndex) -> tuple[str, tuple[int, ...]]:
        """The path of the Zarr array holding frame ``index`` of ``kind`` and the frame's
        index in it: where another process reads the frame (blockwise restoration)."""
        array, where = self._locate(kind, self._key(index))
        return array_location(array), where

    def _scan_raw_chunks(self) -> None:
        """Count raw chunk files without a journal line (crash between pixels and journal)."""
        for key in raw_chunk_keys(self.path, self._info["series"]["raw"], self.sizes):
            if self._ledger.note_raw_chunk(key):
                logger.warning("raw frame %s has pixels but no ledger line",
                               self._ledger.label(key))

    # ------------------------------------------------------------------ writing

    def write_raw(self, index: FrameIndex, frame: np.ndarray, meta: Mapping | None = None) -> None:
        """Write one camera frame; once this returns it survives a crash. Never overwrites."""
        key = self._key(index)
        frame = self._check_frame(frame, "raw frame")
        if frame.dtype != self.raw_dtype:
            frame = cast_raw(frame, self.raw_dtype)
        if self._ledger.has_raw(key):
            raise ValueError(
                f"raw frame {self._ledger.label(key)} already written; raw is never replaced"
            )
        array, where = self._locate("raw", key)
        write_frame_chunk(array, where, frame)
        self._ledger.record_raw(key, meta)
        self._images.observe("raw", key, frame)

    def write_restored(
        self,
        index: FrameIndex,
        mean: np.ndarray,
        std: np.ndarray | None = None,
        *,
        model: str = "",
        floor: Mapping[str, Any] | None = None,
    ) -> None:
        """Write a restored frame (and its uncertainty) as float32, then mark it RESTORED
        (``floor``: its check against the Gaussian floor, kept in the journal)."""
        key = self._key(index)
        mean = self._check_frame(mean, "restored frame").astype(np.float32, copy=False)
        if std is not None:
            if not self.has_uncertainty:
                raise ValueError("store was created without uncertainty=True; cannot store std")
            std = self._check_frame(std, "uncertainty frame").astype(np.float32, copy=False)
        if not self._ledger.has_raw(key):
            raise ValueError(f"frame {self._ledger.label(key)} has no raw frame; write raw first")
        array, where = self._locate("restored", key)
        array[where] = mean
        self._images.observe("restored", key, mean)
        if std is not None:
            array, where = self._locate("uncertainty", key)
            array[where] = std
            self._images.observe("uncertainty", key, std)
        if self._ledger.record_restored(key, model, floor):
            self.flush()

    def mark_failed(self, index: FrameIndex, reason: str) -> None:
        """Record that restoring this frame failed (the raw frame is kept)."""
        self._mark(index, FrameStatus.FAILED, reason)

    def mark_lost(self, index: FrameIndex, reason: str) -> None:
        """Record that the camera gave this frame but its raw pixels could not be saved (a
        full disk, a frame of the wrong shape), so the store says so instead of looking like
        a frame never taken."""
        self._mark(index, FrameStatus.LOST, reason)

    def mark_skipped(self, index: FrameIndex, reason: str) -> None:
        """Record that this frame is not restored by design (e.g. a channel left raw)."""
        self._mark(index, FrameStatus.SKIPPED, reason)

    def _mark(self, index: FrameIndex, status: FrameStatus, reason: str) -> None:
        if self._ledger.record_outcome(self._key(index), status, reason):
            self.flush()

    def _check_frame(self, frame: np.ndarray, what: str) -> np.ndarray:
        frame = np.asarray(frame)
        if frame.shape != self.frame_shape:
            raise ValueError(f"{what} has shape {frame.shape}, store expects {self.frame_shape}")
        return frame

    def set_model_info(
        self, name: str, checksum: str, steps: int | None = None, **extra: Any
    ) -> None:
        """Record the restorer used (name, checksum, sampling steps) in the root attributes."""
        self._info["model"] = {"name": name, "checksum": checksum, "steps": steps, **extra}
        self._images.set_model(self._info["model"])
        self.flush()

    @property
    def model_info(self) -> dict[str, Any]:
        """The restorer record ``set_model_info`` wrote (empty when none was)."""
        return dict(self._info.get("model") or {})

    def model_folder(self) -> Path:
        """``STORE/models``, a zarr group (so the root still lists only zarr members and
        validates) holding the models made during the acquisition as ``NAME.safetensors`` +
        ``NAME.json`` files, as the ``ledger`` group holds the journal."""
        if MODELS not in self._group:
            self._group.create_group(MODELS, attributes={
                "description": "models made during this acquisition (NAME.json + "
                               "NAME.safetensors); live_restore.adaptations names them",
            })
        return self.path / MODELS

    def record_adaptation(self, channel: str, record: Mapping[str, Any]) -> None:
        """Record what adapting ``channel``'s restorer gave (model, file, or the failure) in
        the root attributes, under ``live_restore.adaptations``."""
        with self._flush_lock:
            self._info.setdefault("adaptations", {})[channel] = dict(record)
        self.flush()

    # ------------------------------------------------------------------ reading

    def read_raw(self, index: FrameIndex) -> np.ndarray:
        """The raw frame in camera dtype; KeyError if it was never written."""
        key = self._key(index)
        if not self._ledger.has_raw(key):
            raise KeyError(f"raw frame {self._ledger.label(key)} was not written")
        array, where = self._locate("raw", key)
        return np.asarray(array[where])

    def read_restored(self, index: FrameIndex) -> np.ndarray:
        """The restored float32 frame; KeyError unless its status is RESTORED."""
        return self._read_result("restored", index)

    def read_uncertainty(self, index: FrameIndex) -> np.ndarray:
        """The float32 uncertainty (std) frame; NaN where the restorer gave none."""
        if not self.has_uncertainty:
            raise ValueError("store was created without uncertainty=True")
        return self._read_result("uncertainty", index)

    def _read_result(self, kind: str, index: FrameIndex) -> np.ndarray:
        key = self._key(index)
        status = self._ledger.status(key)
        if status != FrameStatus.RESTORED:
            raise KeyError(f"frame {self._ledger.label(key)} is {status.name}, not RESTORED")
        array, where = self._locate(kind, key)
        return np.asarray(array[where])

    def status(self, index: FrameIndex) -> FrameStatus:
        """Ledger state of one frame."""
        return self._ledger.status(self._key(index))

    def indices(self, *statuses: FrameStatus) -> list[dict[str, int]]:
        """Every frame with one of ``statuses``, in storage (C) order."""
        return [self._as_index(key) for key in self._ledger.keys(*statuses)]

    def pending(self, retry_failed: bool = False) -> list[dict[str, int]]:
        """Frames written raw but neither restored, failed nor skipped: what ``resume`` must do
        (with ``retry_failed``, the frames whose restoration failed too), in storage order."""
        if retry_failed:
            return self.indices(FrameStatus.RAW, FrameStatus.FAILED)
        return self.indices(FrameStatus.RAW)

    def indices_restored_by(self, model: str) -> list[dict[str, int]]:
        """Every frame whose current restored result ``model`` (``name@version``) wrote."""
        return [self._as_index(key) for key in self._ledger.keys_restored_by(model)]

    def counts(self) -> dict[str, int]:
        """Frames per ledger status (``empty``, ``raw``, ``restored``, ``failed``, ...)."""
        return self._ledger.counts()

    def latest(self, status: FrameStatus) -> dict[str, int] | None:
        """The frame most recently recorded with ``status``; None before the first."""
        key = self._ledger.latest(status)
        return None if key is None else self._as_index(key)

    def frame_record(self, index: FrameIndex) -> dict[str, Any]:
        """The ledger's word on one frame: ``status`` and, where they apply, ``model``,
        ``floor`` (its check against the Gaussian floor) and ``reason``."""
        return self._ledger.record_of(self._key(index))

    def below_floor(self) -> dict[str, float]:
        """``"t=3,c=1" -> estimated dB`` for every restored frame whose check against another
        exposure says it is worse than a Gaussian blur of its raw frame."""
        return self._ledger.below_floor()

    def other_exposure(self, index: FrameIndex) -> dict[str, int] | None:
        """The same field's previous time point (else the next) when its raw frame is saved:
        an independent exposure of the same field, for the floor check; None without one."""
        if "t" not in self.sizes:
            return None
        key = self._key(index)
        axis = list(self.sizes).index("t")
        for step in (-1, 1):
            t = key[axis] + step
            other = (*key[:axis], t, *key[axis + 1:])
            if 0 <= t < self.sizes["t"] and self._ledger.has_raw(other):
                return self._as_index(other)
        return None

    def label(self, index: FrameIndex) -> str:
        """``"t=3,c=1"``: how the journal and the summaries name a frame."""
        return self._ledger.label(self._key(index))

    def models_used(self) -> dict[str, int]:
        """``name@version -> frames`` restored by each model: more than one entry is a store
        restored by several models (an adapted model, a resume with another ``--model``)."""
        return self._ledger.model_counts()

    def models_per_channel(self) -> dict[str, dict[str, int]]:
        """``channel -> {name@version: frames}``: a channel restored by more than one model
        (a store may restore each channel with its own model by design)."""
        if "c" not in self.sizes:
            return {"": self.models_used()}
        names = self.channel_names or [str(c) for c in range(self.sizes["c"])]
        return {names[c]: models for c, models in self._ledger.model_counts("c").items()}

    def failures(self) -> dict[str, str]:
        """``"t=3,c=1" -> reason`` for every frame whose restoration failed."""
        return self._ledger.reasons(FrameStatus.FAILED)

    def lost(self) -> dict[str, str]:
        """``"t=3,c=1" -> reason`` for every frame whose raw pixels could not be saved."""
        return self._ledger.reasons(FrameStatus.LOST)

    def channel_name(self, index: FrameIndex) -> str:
        """The channel config name of a frame; ``""`` when the store has no channel names."""
        names = self.channel_names
        return names[self._key(index)[list(self.sizes).index("c")]] if names else ""

    def frame_metadata(self, index: FrameIndex) -> dict[str, Any]:
        """Per-frame metadata recorded by ``write_raw`` (time_ms, x/y/z_um, extras) and outcome."""
        return self._ledger.frame_metadata(self._key(index))

    # ------------------------------------------------------------------ flush / close

    def flush(self) -> None:
        """Write the ledger snapshot arrays and its JSON summary into the root attributes."""
        if self._read_only or self._closed:
            return
        with self._flush_lock:
            ledger, status, meta = self._ledger.snapshot()
            group = self._group["ledger"]
            shape = group["status"].shape
            group["status"][...] = status.reshape(shape)
            for name, values in meta.items():
                group[name][...] = values.reshape(shape)
            for name, attrs in self._images.changed(meta["time_ms"]).items():
                self._group[name].attrs.update(attrs)
            self._info["ledger"] = ledger
            self._group.attrs["live_restore"] = self._info
            self._ledger.flushed()

    def close(self) -> None:
        """Flush, release the journal and the writer lock; safe to call twice."""
        if self._closed:
            return
        try:
            self.flush()
        finally:
            self._closed = True
            self._ledger.close()
            if self._lock is not None:
                self._lock.release()

    def __enter__(self) -> AcquisitionStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"AcquisitionStore({str(self.path)!r}, sizes={self.sizes}, raw={self.raw_dtype})"
