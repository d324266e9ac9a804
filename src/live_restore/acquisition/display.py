"""What a viewer needs to show a store's images well, kept up to date as frames are written.

A viewer (napari-ome-zarr, ome-zarr-py, OMERO) takes each channel's
first contrast limits from the image's ``omero.channels[*].window``. A window fixed when the
store is created can only be the dtype's range, which shows camera data of 7-180 in a
0-65 535 window as black and restored frames (camera units, float32) in a 0-1 window as white.
So every frame written updates a running window per image and channel: ``start``/``end`` are
the lowest 0.1 and highest 99.9 percentiles seen of any frame, ``min``/``max`` the integer
dtype's range (or, for float images, the lowest and highest values seen). The percentiles come
from about :data:`SAMPLE_PIXELS` pixels on a regular grid, so the cost on the acquisition
thread is about the same whatever the frame size: 15-60 us per frame (frame in cache or not),
against 0.5-0.7 ms for writing a 512x512 uint16 frame and 3 ms for a full-frame percentile.
A running min/max of whole frames would cost as much and let one hot pixel set the top of the
window. The store writes the windows into the image groups at its flushes (the first soon after
the first frames, the last at close), never inside a raw write.

The time axis gets its unit and scale from the sequence's planned interval
(:func:`live_restore.acquisition.layout.axis_steps`); a sequence without one (``interval: 0``,
as fast as possible) gets the median interval between the time points' first timestamps,
measured from the ledger at every flush. The restored and uncertainty images name the model
that restored them, so an image group copied out of the store still says where it came from.

Opening the store's root: napari-ome-zarr (0.10) follows ``bioformats2raw.layout`` through the
Image IDs of ``OME/METADATA.ome.xml``, which the spec recommends and :func:`ome_xml` writes, and
then shows every image's channels as layers (named ``raw: Confocal`` after each image's
multiscale name). ome-zarr-py's ``Reader`` (0.18) does not follow the layout at all and finds no
image at the root; :func:`image_paths` lists the image groups to open with it instead.
"""

from __future__ import annotations

import copy
import json
import os
import threading
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from live_restore.acquisition.layout import (
    AXIS_UNITS,
    POSITION_AXES,
    initial_window,
    result_sizes,
)

__all__ = ["ImageMetadata", "frame_range", "image_paths", "measured_interval_s", "ome_xml"]

SAMPLE_PIXELS = 4096
"""About how many pixels of a frame its percentiles are taken from (at the 0.1 % tails, the
4th lowest and highest of them)."""
PERCENTILES = (0.1, 99.9)


def frame_range(frame: np.ndarray) -> list[float] | None:
    """``[start, end, low, high]`` of one frame: its 0.1 and 99.9 percentiles and its extremes,
    from every n-th pixel along both axes (about :data:`SAMPLE_PIXELS` pixels); NaN and
    infinite pixels are left out, and a frame with no finite pixel gives None."""
    stride = max(1, int(np.sqrt(frame.size / SAMPLE_PIXELS)))
    sample = frame[::stride, ::stride].ravel()
    if sample.dtype.kind == "f":
        sample = sample[np.isfinite(sample)]
    if sample.size == 0:
        return None
    last = sample.size - 1
    lo, hi = (round(last * p / 100) for p in PERCENTILES)
    ordered = np.partition(sample, (lo, hi))  # a third of np.percentile's cost
    return [float(ordered[lo]), float(ordered[hi]), float(sample.min()), float(sample.max())]


def measured_interval_s(time_ms: np.ndarray, t_axis: int) -> float | None:
    """The median interval in seconds between consecutive time points' first frames, from the
    ledger's per-frame ``time_ms`` (NaN where no frame was written); None with fewer than two
    time points written."""
    per_t = np.moveaxis(time_ms, t_axis, 0).reshape(time_ms.shape[t_axis], -1)
    first = np.fmin.reduce(per_t, axis=1)  # fmin skips NaN without warning
    written = np.flatnonzero(np.isfinite(first))
    if written.size < 2:
        return None
    steps = np.diff(first[written]) / np.diff(written)  # a missing time point spans two steps
    interval = float(np.median(steps)) / 1000.0
    return float(f"{interval:.4g}") if interval > 0 else None


def image_paths(store: str | os.PathLike[str]) -> list[Path]:
    """The image groups of a store (raw first) in the order ``OME/zarr.json`` lists them: the
    paths to open in ome-zarr-py or napari, which do not follow ``bioformats2raw.layout`` from
    the store's root."""
    root = Path(store)
    ome = json.loads((root / "OME" / "zarr.json").read_text())["attributes"]["ome"]
    return [root / name for name in ome["series"]]


def ome_xml(info: Mapping[str, Any]) -> str:
    """``OME/METADATA.ome.xml`` for a store's ``live_restore`` record: one metadata-only Image
    per series, in the order ``OME/zarr.json`` lists them, with ID ``Image:NAME`` so that
    readers that follow the bioformats2raw layout (napari-ome-zarr) find each image's group."""
    (height, width) = info["frame_shape"]
    root = ET.Element("OME", xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06")
    for kind, entries in info["series"].items():
        sizes = (info["sizes"] if kind == "raw"
                 else result_sizes(info["sizes"], info.get("fill_planes", 1)))
        dtype = np.dtype(info["raw_dtype"] if kind == "raw" else "float32")
        pixel_type = (dtype.name if dtype.kind in "ui" and dtype.itemsize <= 4
                      else "double" if dtype.itemsize == 8 else "float")
        for _, name in entries:
            image = ET.SubElement(root, "Image", ID=f"Image:{name}", Name=name)
            pixels = ET.SubElement(
                image, "Pixels", ID=f"Pixels:{name}", DimensionOrder="XYZCT", Type=pixel_type,
                SizeX=str(width), SizeY=str(height),
                **{f"Size{a.upper()}": str(sizes.get(a, 1)) for a in "zct"},
                **({"PhysicalSizeX": str(info["pixel_size_um"]),
                    "PhysicalSizeY": str(info["pixel_size_um"])} if info["pixel_size_um"] else {}),
            )
            for c, label in enumerate(info["channel_names"] or [None] * sizes.get("c", 1)):
                ET.SubElement(pixels, "Channel", ID=f"Channel:{name}:{c}",
                              **({"Name": label} if label is not None else {}))
            ET.SubElement(pixels, "MetadataOnly")
    return ET.tostring(root, encoding="unicode", xml_declaration=True)


class ImageMetadata:
    """The OME attributes of a store's image groups, held in memory and updated from the frames
    written (display windows), the ledger's timestamps (time scale) and the model record.

    Thread-safe: the acquisition thread observes raw frames while the restore worker observes
    restored ones and flushes. The store writes what :meth:`changed` returns; nothing here
    touches the files, so a raw write only pays for :func:`frame_range`.
    """

    def __init__(
        self,
        sizes: Mapping[str, int],
        series: Mapping[str, Sequence[Sequence[Any]]],
        raw_dtype: np.dtype,
        attrs: Mapping[str, Mapping[str, Any]],
    ) -> None:
        """``series``: the store's ``kind -> [[position, name], ...]``; ``attrs``: each image
        group's current attributes by name. Windows already taken from data (any but the
        initial one) are kept as the starting range, so resuming a store only widens them."""
        axes = list(sizes)
        self._shape = tuple(sizes.values())
        self._pos_axes = [i for i, a in enumerate(axes) if a in POSITION_AXES]
        self._c_axis = axes.index("c") if "c" in axes else None
        self._names = {
            (kind, tuple(pos)): name for kind, entries in series.items() for pos, name in entries
        }
        self._dtypes = {
            name: raw_dtype if kind == "raw" else np.dtype("float32")
            for (kind, _), name in self._names.items()
        }
        self._attrs = {name: copy.deepcopy(dict(attrs[name])) for name in self._dtypes}
        self._changed: set[str] = set()
        self._ranges: dict[str, dict[int, list[float]]] = {name: {} for name in self._dtypes}
        for name, image in self._attrs.items():
            multiscale = image["ome"]["multiscales"][0]
            if multiscale.get("name") != name:  # viewers name layers "raw: Confocal" by it
                multiscale["name"] = name
                self._changed.add(name)
            for c, channel in enumerate(image["ome"].get("omero", {}).get("channels", [])):
                window = channel["window"]
                if window != initial_window(self._dtypes[name]):
                    self._ranges[name][c] = [window[k] for k in ("start", "end", "min", "max")]
        t_axes = [a for a in multiscale["axes"] if a["name"] == "t"]  # the same in every image
        self._t_axis = axes.index("t") if t_axes and "unit" not in t_axes[0] else None
        self._lock = threading.Lock()

    def observe(self, kind: str, key: Sequence[int], frame: np.ndarray) -> None:
        """Widen the display window of the image and channel that frame ``key`` (a full index
        in ``sizes`` order) of ``kind`` belongs to, so that it covers this frame."""
        stats = frame_range(frame)
        if stats is None:
            return
        name = self._names[(kind, tuple(key[i] for i in self._pos_axes))]
        channel = key[self._c_axis] if self._c_axis is not None else 0
        with self._lock:
            old = self._ranges[name].get(channel)
            new = stats if old is None else [
                min(old[0], stats[0]), max(old[1], stats[1]),
                min(old[2], stats[2]), max(old[3], stats[3]),
            ]
            if new != old:
                self._ranges[name][channel] = new
                self._changed.add(name)

    def set_model(self, record: Mapping[str, Any]) -> None:
        """Name the model that restores this store in every restored and uncertainty image."""
        with self._lock:
            for (kind, _), name in self._names.items():
                if kind != "raw":
                    self._attrs[name]["live_restore"] = {"model": dict(record)}
                    self._changed.add(name)

    def changed(self, time_ms: np.ndarray) -> dict[str, dict[str, Any]]:
        """The attributes of every image group that changed since the last call (by name), with
        the current windows and, for a sequence without a planned interval, the time scale
        measured from ``time_ms`` (the ledger's per-frame times, in ``sizes`` order)."""
        with self._lock:
            if self._t_axis is not None:
                interval = measured_interval_s(np.reshape(time_ms, self._shape), self._t_axis)
                if interval is not None:
                    self._set_time_scale(interval)
            for name in self._changed:
                # stores made before windows followed the data have no omero without channels
                channels = self._attrs[name]["ome"].get("omero", {}).get("channels", [])
                for c, stats in self._ranges[name].items():
                    if c < len(channels):
                        channels[c]["window"] = self._window(self._dtypes[name], stats)
            out = {name: copy.deepcopy(self._attrs[name]) for name in self._changed}
            self._changed.clear()
        return out

    def _set_time_scale(self, interval: float) -> None:
        """Put the measured ``interval`` (seconds) on every image's ``t`` axis."""
        for name in self._attrs:
            multiscale = self._attrs[name]["ome"]["multiscales"][0]
            i = [a["name"] for a in multiscale["axes"]].index("t")
            scale = multiscale["datasets"][0]["coordinateTransformations"][0]["scale"]
            if scale[i] != interval:
                multiscale["axes"][i]["unit"] = AXIS_UNITS["t"]
                scale[i] = interval
                self._changed.add(name)

    @staticmethod
    def _window(dtype: np.dtype, stats: list[float]) -> dict[str, float]:
        """The OME window of a channel's running ``[start, end, low, high]``: ``min``/``max``
        the integer dtype's range (a float image's lowest and highest values), ``end`` above
        ``start`` even for a flat image, as viewers require."""
        start, end, low, high = stats
        if end <= start:
            end = start + 1.0
        if dtype.kind in "ui":
            bounds = initial_window(dtype)
            low, high = bounds["min"], bounds["max"]
            end = min(end, high)
            start = min(start, end - 1.0)
        return {"min": min(low, start), "max": max(high, end), "start": start, "end": end}
