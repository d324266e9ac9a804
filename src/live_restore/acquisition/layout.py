"""The OME-Zarr 0.5 shape of a store, worked out before anything is written.

Series names per stage position, the multiscale attributes of each image (validated with
yaozarrs so a bad axis combination fails before the first file exists), the software versions
recorded at creation, and the check that the store's path can be created. Pure metadata: the
store (:mod:`live_restore.acquisition.store`) turns it into zarr groups and arrays.
"""

from __future__ import annotations

import os
import platform
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from importlib import metadata as _metadata
from pathlib import Path
from typing import Any

import numpy as np
import yaozarrs

__all__ = [
    "POSITION_AXES",
    "image_attrs",
    "image_kinds",
    "prepare_path",
    "series_names",
    "software_versions",
]

POSITION_AXES = ("p", "g")
"""Stage position and grid: each of their combinations is its own series, not an image axis,
because OME-Zarr 0.5 allows at most five axes with only one of type channel or custom."""

AXIS_TYPES = {"t": "time", "c": "channel", "z": "space", "y": "space", "x": "space"}

RECORDED_DISTRIBUTIONS = ("live-restore", "zarr", "numpy", "torch", "pymmcore-plus", "useq-schema")
"""Packages whose versions shape the data, recorded in every store's root attributes."""


def software_versions() -> dict[str, str]:
    """Versions of the packages that shape the data, read without importing them (torch is slow)."""
    versions = {"python": platform.python_version()}
    for dist in RECORDED_DISTRIBUTIONS:
        try:
            versions[dist] = _metadata.version(dist)
        except _metadata.PackageNotFoundError:
            continue
    return versions


def image_kinds(uncertainty: bool) -> list[str]:
    """The images a store holds for every position, in the order ``OME/zarr.json`` lists them;
    ``uncertainty`` only when the restorer's std maps are kept."""
    return ["raw", "restored"] + (["uncertainty"] if uncertainty else [])


def series_names(
    sizes: Mapping[str, int], kinds: Sequence[str]
) -> dict[str, list[list[Any]]]:
    """``kind -> [[position, name], ...]``: plain ``raw`` for one position, else ``raw_p0``,
    ``raw_p1``, ... (``raw_p0_g1`` with a grid)."""
    pos_axes = [a for a in sizes if a in POSITION_AXES]
    positions = [tuple(p) for p in np.ndindex(*(sizes[a] for a in pos_axes))]
    return {
        kind: [
            [list(pos), kind + "".join(f"_{a}{i}" for a, i in zip(pos_axes, pos, strict=True))]
            if len(positions) > 1
            else [list(pos), kind]
            for pos in positions
        ]
        for kind in kinds
    }


def image_attrs(
    img_axes: Sequence[str],
    pixel_size_um: float | None,
    dtype: np.dtype,
    channel_names: Sequence[str] | None,
) -> dict[str, Any]:
    """OME 0.5 multiscales (+ omero channel labels) for one single-level image; ValueError if
    the axes do not make a valid image."""
    axes: list[dict[str, str]] = []
    for name in [*img_axes, "y", "x"]:
        axis = {"name": name}
        if name in AXIS_TYPES:
            axis["type"] = AXIS_TYPES[name]
        if name in ("y", "x") and pixel_size_um is not None:
            axis["unit"] = "micrometer"
        axes.append(axis)
    scale = [1.0] * len(img_axes) + [float(pixel_size_um or 1.0)] * 2
    ome: dict[str, Any] = {
        "version": "0.5",
        "multiscales": [
            {
                "axes": axes,
                "datasets": [
                    {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": scale}]}
                ],
            }
        ],
    }
    if channel_names:
        top = float(np.iinfo(dtype).max) if dtype.kind in "ui" else 1.0
        window = {"min": 0.0, "max": top, "start": 0.0, "end": top}
        ome["omero"] = {
            "channels": [
                {"label": str(name), "color": "FFFFFF", "active": True, "window": window}
                for name in channel_names
            ]
        }
    attrs = {"ome": ome}
    try:
        yaozarrs.validate_ome_object(attrs)
    except ValueError as exc:
        raise ValueError(f"axes {[*img_axes, 'y', 'x']} do not make a valid image") from exc
    return attrs


def prepare_path(path: Path, *, overwrite: bool) -> None:
    """Clear an old store at ``path`` (only with ``overwrite``) and check that a new one can be
    created there, raising before anything is written."""
    if path.exists():
        if not overwrite:
            raise FileExistsError(
                f"store {str(path)!r} exists; pass overwrite=True (--overwrite) to replace it"
            )
        if path.is_dir() and any(path.iterdir()) and not (path / "zarr.json").exists():
            raise FileExistsError(f"{str(path)!r} is a non-empty directory, not a zarr store")
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    ancestor = path.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise NotADirectoryError(f"cannot create store {str(path)!r}: {str(ancestor)!r} is a file")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise PermissionError(
            f"cannot create store {str(path)!r}: {str(ancestor)!r} is not writable"
        )
    try:  # os.access does not see read-only mounts and is always true for root
        with tempfile.TemporaryFile(dir=ancestor):
            pass
    except OSError as exc:
        raise PermissionError(
            f"cannot create store {str(path)!r}: {str(ancestor)!r} is not writable ({exc})"
        ) from exc
