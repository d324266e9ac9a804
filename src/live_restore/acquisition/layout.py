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
from typing import TYPE_CHECKING, Any

import numpy as np
import yaozarrs

if TYPE_CHECKING:
    import useq

__all__ = [
    "POSITION_AXES",
    "axis_steps",
    "image_attrs",
    "image_kinds",
    "initial_window",
    "prepare_path",
    "result_sizes",
    "series_names",
    "software_versions",
    "store_sizes",
]

POSITION_AXES = ("p", "g")
"""Stage position and grid: each of their combinations is its own series, not an image axis,
because OME-Zarr 0.5 allows at most five axes with only one of type channel or custom."""

AXIS_TYPES = {"t": "time", "c": "channel", "z": "space", "y": "space", "x": "space"}
AXIS_UNITS = {"t": "second", "z": "micrometer", "y": "micrometer", "x": "micrometer"}
"""The units of useq's time interval (s), z step and pixel size (um), as OME-Zarr names them."""

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


def result_sizes(sizes: Mapping[str, int], fill_planes: int) -> dict[str, int]:
    """The axes of the restored (and uncertainty) images: the raw ``sizes`` with, when a
    z-stack is acquired every ``fill_planes``-th plane, the planes in between added:
    ``(z − 1)·fill_planes + 1`` planes at ``1/fill_planes`` of the acquired z step."""
    if fill_planes < 1:
        raise ValueError(f"fill_planes must be >= 1, got {fill_planes!r}")
    if fill_planes > 1 and "z" not in sizes:
        raise ValueError("filling planes needs a z-stack: the sequence has no z plan")
    out = dict(sizes)
    if "z" in out:
        out["z"] = (out["z"] - 1) * fill_planes + 1
    return out


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


def axis_steps(sequence: Mapping[str, Any] | None) -> dict[str, float]:
    """The planned spacing of the ``t`` (seconds) and ``z`` (micrometres) axes of a useq
    sequence (its JSON form), for the axes where the plan fixes one.

    ``interval: 0`` (as fast as possible), a duration without loops, phases of different
    intervals and unevenly spaced z positions have no single spacing, so they give none; the
    store then measures the time interval from the frames' timestamps (see
    :mod:`live_restore.acquisition.display`).
    """
    steps: dict[str, float] = {}
    time_plan = (sequence or {}).get("time_plan") or {}
    phases = time_plan.get("phases", [time_plan])
    intervals = {_interval_s(phase) for phase in phases}
    if len(intervals) == 1 and (interval := intervals.pop()):
        steps["t"] = interval
    z_plan = (sequence or {}).get("z_plan") or {}
    positions = z_plan.get("relative", z_plan.get("absolute"))
    if z_plan.get("step"):
        steps["z"] = abs(float(z_plan["step"]))
    elif positions is not None and len(positions) > 1:
        gaps = np.diff(np.asarray(positions, dtype=float))
        if np.allclose(gaps, gaps[0]) and gaps[0] != 0:
            steps["z"] = abs(float(gaps[0]))
    return steps


def _interval_s(phase: Mapping[str, Any]) -> float | None:
    """One time phase's interval in seconds (useq writes intervals and durations as seconds);
    None where it has none."""
    if phase.get("interval"):
        return float(phase["interval"])
    loops, duration = phase.get("loops"), phase.get("duration")
    if duration and loops and loops > 1:
        return float(duration) / (loops - 1)
    return None


def initial_window(dtype: np.dtype) -> dict[str, float]:
    """The display window an image gets before any frame is seen: the integer dtype's range
    (0-1 for floats), which the store replaces with the data's as frames arrive."""
    top = float(np.iinfo(dtype).max) if dtype.kind in "ui" else 1.0
    return {"min": 0.0, "max": top, "start": 0.0, "end": top}


def image_attrs(
    img_axes: Sequence[str],
    pixel_size_um: float | None,
    dtype: np.dtype,
    channel_names: Sequence[str | None],
    steps: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """OME 0.5 multiscales and omero display settings for one single-level image; ValueError
    if the axes do not make a valid image.

    ``channel_names``: one per channel (one entry without a ``c`` axis), None where a channel
    has no name; every channel gets a display window, because viewers (napari through
    ome-zarr-py) take their contrast limits from it. ``steps`` (from :func:`axis_steps`) gives
    ``t`` and ``z`` their spacing; an axis whose spacing is unknown keeps scale 1 and no unit,
    so no viewer shows a made-up physical size.
    """
    spacing = {a: float(v) for a, v in (steps or {}).items() if a in AXIS_UNITS and v > 0}
    if pixel_size_um:  # 0 is what a core without a pixel size configuration reports
        spacing.update(y=float(pixel_size_um), x=float(pixel_size_um))
    names = [*img_axes, "y", "x"]
    axes: list[dict[str, str]] = []
    for name in names:
        axis = {"name": name}
        if name in AXIS_TYPES:
            axis["type"] = AXIS_TYPES[name]
        if name in spacing:
            axis["unit"] = AXIS_UNITS[name]
        axes.append(axis)
    scale = [spacing.get(name, 1.0) for name in names]
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
        "omero": {
            "channels": [
                {**({"label": str(name)} if name is not None else {}),
                 "color": "FFFFFF", "active": True, "window": initial_window(dtype)}
                for name in channel_names
            ]
        },
    }
    attrs = {"ome": ome}
    try:
        yaozarrs.validate_ome_object(attrs)
    except ValueError as exc:
        raise ValueError(f"axes {names} do not make a valid image") from exc
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


SEQUENCE_ORDER = ("t", "p", "g", "c", "z")
"""pymmcore-plus's storage order of useq axes."""


def store_sizes(sequence: useq.MDASequence) -> dict[str, int]:
    """The store axes a sequence gives: t, p, g, c, z as used, in pymmcore-plus's order."""
    seq_sizes = {str(getattr(k, "value", k)): int(v) for k, v in sequence.sizes.items()}
    return {a: seq_sizes[a] for a in SEQUENCE_ORDER if seq_sizes.get(a, 0) > 0}
