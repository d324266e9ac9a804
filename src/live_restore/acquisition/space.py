"""Disk space for a store, checked before the first exposure.

A disk that fills during an acquisition costs the frames exposed after it: light on live cells
for nothing. The frames a sequence will give are known before it starts, so the space they need
(raw in the camera's dtype, restored and uncertainty as float32, one uncompressed chunk per
frame) is compared with what the disk has, and a run that cannot fit is refused with both
numbers. Restored frames count too: a store whose raw frames fit but whose restored frames do
not would fill the disk while the acquisition runs.
"""

from __future__ import annotations

import logging
import math
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from live_restore.acquisition.layout import result_sizes

__all__ = ["SpaceNeeded", "check_free_space", "space_needed"]

log = logging.getLogger(__name__)

MARGIN = 1.05
"""Room kept for the journal, metadata and the file system's own blocks."""


@dataclass(frozen=True)
class SpaceNeeded:
    """Bytes a store of ``frames`` frames needs for raw pixels and for restored results."""

    frames: int
    raw_bytes: int
    restored_bytes: int

    @property
    def total_bytes(self) -> int:
        return self.raw_bytes + self.restored_bytes


def space_needed(sizes: Mapping[str, int], frame_shape: tuple[int, int], dtype: np.dtype | str,
                 *, uncertainty: bool = False, fill_planes: int = 1) -> SpaceNeeded:
    """The space a store shaped ``sizes`` x ``frame_shape`` needs when every frame is kept
    (``fill_planes``: restored z-stacks hold the filled planes too)."""
    frames = math.prod(int(v) for v in sizes.values())
    results = math.prod(int(v) for v in result_sizes(sizes, fill_planes).values())
    plane = frame_shape[0] * frame_shape[1]
    kinds = 2 if uncertainty else 1
    return SpaceNeeded(frames, frames * plane * np.dtype(dtype).itemsize,
                       results * plane * 4 * kinds)


def _gb(n: float) -> str:
    return f"{n / 1e9:.2f} GB"


def check_free_space(path: Path, need: SpaceNeeded) -> None:
    """Raise OSError naming both numbers when the disk under ``path`` cannot hold ``need``."""
    ancestor = Path(path).expanduser().absolute()
    while not ancestor.exists():
        ancestor = ancestor.parent
    free = shutil.disk_usage(ancestor).free
    if need.total_bytes * MARGIN > free:
        raise OSError(
            f"{str(ancestor)!r} has {_gb(free)} free; the {need.frames} frames of this sequence "
            f"need {_gb(need.total_bytes * MARGIN)} ({_gb(need.raw_bytes)} raw, "
            f"{_gb(need.restored_bytes)} restored): free space or shorten the sequence "
            "before exposing the sample")
    log.debug("store needs %s of %s free", _gb(need.total_bytes), _gb(free))
