"""One image series of a store (raw, restored or uncertainty) as an ndv data source.

ndv asks for slices by axis number from a thread pool; each slice is read frame by frame
through :class:`~live_restore.acquisition.store.AcquisitionStore`, so positions (separate
series in the store) are one more slider here, and a frame the ledger does not hold yet reads
as zeros: a panel shows "not there yet" as black, never as stale pixels (so does an
uncertainty frame a deterministic restorer left as NaN).
"""

from __future__ import annotations

import itertools
from collections.abc import Hashable, Mapping, Sequence
from typing import Any, TypeGuard

import numpy as np
from ndv import DataWrapper

from live_restore.acquisition.store import AcquisitionStore

__all__ = ["StoreSeries"]


class StoreSeries(DataWrapper[AcquisitionStore]):
    """``kind`` (``raw``, ``restored`` or ``uncertainty``) of a store, over the store's axes
    (t, p, c, z as present) then y, x."""

    PRIORITY = 10

    def __init__(self, store: AcquisitionStore, kind: str) -> None:
        self.kind = kind
        self._dtype = store.raw_dtype if kind == "raw" else np.dtype(np.float32)
        self.last_served: list[tuple[dict[str, int], np.ndarray]] = []
        """Each frame (index, pixels) of the last slice handed to ndv: what the panel shows."""
        super().__init__(store)

    @classmethod
    def supports(cls, obj: Any) -> TypeGuard[Any]:
        return False  # built explicitly with its kind; never picked for other data

    @property
    def store(self) -> AcquisitionStore:
        return self._data

    @property
    def dims(self) -> tuple[Hashable, ...]:
        return (*self.store.sizes, "y", "x")

    @property
    def coords(self) -> Mapping[Hashable, Sequence]:
        shape = (*self.store.sizes.values(), *self.store.frame_shape)
        return {axis: range(n) for axis, n in zip(self.dims, shape, strict=True)}

    @property
    def dtype(self) -> np.dtype:
        return self._dtype

    def frame(self, index: Mapping[str, int]) -> np.ndarray:
        """One frame's pixels, zeros where the ledger holds none of this kind yet."""
        read = {"raw": self.store.read_raw, "restored": self.store.read_restored,
                "uncertainty": self.store.read_uncertainty}[self.kind]
        try:
            pixels = read(dict(index))
        except KeyError:
            return np.zeros(self.store.frame_shape, self._dtype)
        # a deterministic restorer leaves no spread (NaN): shown as none, not as a blank LUT
        return np.nan_to_num(pixels) if self.kind == "uncertainty" else pixels

    def isel(self, index: Mapping[int, int | slice]) -> np.ndarray:
        """The slice ``{axis number: int or slice}``; axes not named are taken whole."""
        axes = list(self.store.sizes)
        chosen: list[Sequence[int]] = []
        kept: list[int] = []  # sizes of the non-image axes taken as slices
        for number, axis in enumerate(axes):
            sel = index.get(number, slice(None))
            values = range(self.store.sizes[axis])[sel] if isinstance(sel, slice) else [int(sel)]
            chosen.append(values)
            if isinstance(sel, slice):
                kept.append(len(values))
        rows = index.get(len(axes), slice(None))
        cols = index.get(len(axes) + 1, slice(None))
        frames_at = [dict(zip(axes, combo, strict=True)) for combo in itertools.product(*chosen)]
        served = [(at, self.frame(at)) for at in frames_at]
        self.last_served = served
        frames = [pixels[rows, cols] for _, pixels in served]
        return np.stack(frames).reshape(*kept, *frames[0].shape)
