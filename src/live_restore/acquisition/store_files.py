"""The files of an acquisition store: its groups and arrays, one frame's chunk, and reading.

:class:`~live_restore.acquisition.store.AcquisitionStore` decides what is written when (the
journal, the lock, the indices); this module is how it lands in Zarr v3 files. Every array is
uncompressed with one frame per chunk (one file per frame), so a frame can be written straight
to its chunk file and a crash leaves each frame's file complete or absent.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.codecs import BytesCodec
from zarr.codecs.bytes import Endian
from zarr.storage import LocalStore

from live_restore.acquisition.display import ome_xml
from live_restore.acquisition.layout import POSITION_AXES, image_kinds, result_sizes
from live_restore.acquisition.ledger import META_KEYS, FrameKey, FrameStatus

__all__ = [
    "JOURNAL",
    "STORE_FORMAT",
    "STORE_VERSION",
    "array_location",
    "cast_raw",
    "image_array",
    "raw_chunk_keys",
    "read_image_array",
    "write_frame_chunk",
    "write_groups",
]

STORE_FORMAT = "live_restore.store"
STORE_VERSION = 1
JOURNAL = Path("ledger") / "journal.jsonl"
"""The ledger's journal, relative to the store root."""


def write_groups(path: Path, info: dict[str, Any], *, sequence: Any, attrs: Mapping[str, Any],
                 image_meta: Mapping[str, Any]) -> zarr.Group:
    """Write a new store's root, series list, images, ledger arrays and empty journal into
    ``path`` (its ``ledger`` folder may exist, holding the writer lock); the root group."""
    sizes, series = info["sizes"], info["series"]
    frame_shape, raw_dtype = tuple(info["frame_shape"]), np.dtype(info["raw_dtype"])
    img_axes = info["image_axes"][:-2]
    kinds = image_kinds(info["uncertainty"])
    root = zarr.open_group(path, mode="a", zarr_format=3)
    root_attrs: dict[str, Any] = {
        "ome": {"version": "0.5", "bioformats2raw.layout": 3},
        "live_restore": info,
        **attrs,
    }
    if sequence is not None:
        root_attrs["useq_sequence"] = sequence
    root.attrs.update(root_attrs)
    names = [name for kind in kinds for _, name in series[kind]]
    root.create_group("OME", attributes={"ome": {"version": "0.5", "series": names}})
    (path / "OME" / "METADATA.ome.xml").write_text(ome_xml(info), encoding="utf-8")
    chunks = (1,) * len(img_axes) + frame_shape
    for kind in kinds:
        dtype_k = raw_dtype if kind == "raw" else np.dtype("float32")
        kind_sizes = sizes if kind == "raw" else result_sizes(sizes, info["fill_planes"])
        shape = tuple(kind_sizes[a] for a in img_axes) + frame_shape
        for _, name in series[kind]:
            image = root.create_group(name, attributes=image_meta[kind])
            image.create_array(
                "0",
                shape=shape,
                chunks=chunks,
                dtype=dtype_k,
                fill_value=0 if kind == "raw" else float("nan"),
                compressors=None,
                dimension_names=[*img_axes, "y", "x"],
                config={"write_empty_chunks": True},
            )
    ledger = root.create_group(
        "ledger",
        attributes={
            "description": "journal.jsonl is the source of truth; arrays are flush snapshots",
            "status_codes": {s.name: int(s) for s in FrameStatus},
        },
    )
    ledger_shape = tuple(sizes.values()) or (1,)
    ledger.create_array("status", shape=ledger_shape, dtype="uint8", fill_value=0)
    for key in META_KEYS:
        ledger.create_array(key, shape=ledger_shape, dtype="float64", fill_value=float("nan"))
    (path / JOURNAL).touch()
    return root


def write_frame_chunk(array: zarr.Array, where: tuple[int, ...], frame: np.ndarray) -> None:
    """Write one frame, which is exactly one chunk, straight to its chunk file.

    Every array here is uncompressed (a little-endian ``bytes`` codec) with one frame per
    chunk, so the chunk file is the frame's bytes; writing them directly skips zarr-python's
    async machinery, which would otherwise dominate the cost of a raw write on the acquisition
    thread. Written to a temporary name and renamed, so a crash leaves the frame complete or
    absent. Any other layout falls back to zarr.
    """
    codecs = array.metadata.codecs
    plain = (
        len(codecs) == 1
        and isinstance(codecs[0], BytesCodec)
        and codecs[0].endian in (None, Endian.little)
        and tuple(array.chunks[-2:]) == frame.shape
        and isinstance(array.store_path.store, LocalStore)
    )
    if not plain:
        array[where] = frame
        return
    key = array.metadata.encode_chunk_key((*where, 0, 0))
    path = Path(array_location(array)) / key
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    data = np.ascontiguousarray(frame, dtype=frame.dtype.newbyteorder("<"))
    try:
        with open(tmp, "wb") as fh:
            fh.write(data.tobytes())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a full disk leaves no partial file behind
        raise


def cast_raw(frame: np.ndarray, target: np.dtype) -> np.ndarray:
    """``frame`` in the raw dtype ``target``, cast only when no value can change: a widening
    cast, float to float (rounding only, NaN kept), or integers that fit; else an error."""
    if np.can_cast(frame.dtype, target, casting="safe"):
        return frame.astype(target)
    if frame.dtype.kind in "f" and target.kind == "f":
        return frame.astype(target)
    if frame.dtype.kind in "uib" and target.kind in "ui":
        info = np.iinfo(target)
        if frame.size == 0 or (frame.min() >= info.min and frame.max() <= info.max):
            return frame.astype(target)
        raise ValueError(
            f"raw frame values {frame.min()}..{frame.max()} do not fit {target} "
            f"({info.min}..{info.max})"
        )
    raise TypeError(f"refusing lossy cast of a {frame.dtype} frame to raw dtype {target}")


def raw_chunk_keys(path: Path, raw_series: Sequence[Sequence[Any]],
                   sizes: Mapping[str, int]) -> Iterator[FrameKey]:
    """The full index (``sizes`` order) of every raw chunk file on disk; temporary files left
    by an interrupted write are skipped."""
    pos_axes = [a for a in sizes if a in POSITION_AXES]
    img_axes = [a for a in sizes if a not in POSITION_AXES]
    for pos, name in raw_series:
        chunk_dir = path / name / "0" / "c"
        if not chunk_dir.is_dir():
            continue
        for chunk in chunk_dir.rglob("*"):
            if not chunk.is_file():
                continue
            try:
                parts = tuple(int(p) for p in chunk.relative_to(chunk_dir).parts)
            except ValueError:  # a temporary file left by an interrupted write
                continue
            if len(parts) != len(img_axes) + 2:
                continue
            named = dict(zip(img_axes, parts[: len(img_axes)], strict=True))
            named.update(zip(pos_axes, pos, strict=True))
            yield tuple(named[a] for a in sizes)


def array_location(array: zarr.Array) -> str:
    """The folder of a Zarr array in a local store: where another process opens it."""
    return str(Path(array.store_path.store.root) / array.store_path.path)


def image_array(path: str | os.PathLike[str]) -> zarr.Array:
    """The array of an OME-Zarr image, read lazily: the ``raw`` series of a live_restore store
    (first position), or level ``0`` of any plain OME-Zarr image."""
    path = Path(path)
    try:
        group = zarr.open_group(path, mode="r", zarr_format=3)
    except Exception as exc:
        raise ValueError(f"{str(path)!r} is not a Zarr v3 group: {exc}") from exc
    info = group.attrs.get("live_restore")
    if isinstance(info, dict) and info.get("format") == STORE_FORMAT:
        return group[f"{info['series']['raw'][0][1]}/0"]
    multiscales = (group.attrs.get("ome") or {}).get("multiscales")
    if not multiscales:
        raise ValueError(f"{str(path)!r} is neither a live_restore store nor an OME-Zarr image")
    return group[multiscales[0]["datasets"][0]["path"]]


def read_image_array(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an OME-Zarr image into memory (see :func:`image_array`)."""
    return np.asarray(image_array(path)[...])
