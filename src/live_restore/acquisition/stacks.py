"""Z-stacks as the unit of restoration: reading, writing and journalling a whole stack in a
store, and assembling stacks from the planes of a running acquisition.

A stack restorer (axial inpainting, :mod:`live_restore.models.axial`) takes every acquired
plane of a stack and gives every plane at the restored spacing, so its unit of work is the
stack: the stack is named by any of its frames' indices (z ignored), its raw planes are read
together (NaN for a plane that was never written), its restored planes are written together
and its outcome is one journal line covering its planes
(:meth:`~live_restore.acquisition.ledger.Ledger.record_stack`). When the store fills planes
(``fill_planes`` > 1), raw plane ``z`` is restored plane ``z·fill_planes``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from live_restore.acquisition.ledger import FrameStatus
from live_restore.acquisition.restore_loop import ChannelRestorers
from live_restore.models.restorer import restores_stacks

__all__ = ["StackAssembler", "ZStacks", "stack_restorers"]

FrameIndex = Mapping[str, int]


class ZStacks:
    """Whole-stack access, mixed into :class:`~live_restore.acquisition.store.
    AcquisitionStore`: it uses the store's ``sizes``, ``frame_shape``, ``fill_planes``,
    ``_img_axes``, ``_key``, ``_locate``, ``read_raw``, ``pending``, ``flush``, ``_ledger`` and
    ``_images``."""

    def stack_planes(self, index: FrameIndex) -> list[int]:
        """The raw planes (z) written so far of the z-stack ``index`` belongs to (its z is
        ignored)."""
        at = list(self.sizes).index("z")
        key = list(self._key({**index, "z": 0}))
        planes = []
        for z in range(self.sizes["z"]):
            key[at] = z
            if self._ledger.has_raw(tuple(key)):
                planes.append(z)
        return planes

    def read_raw_stack(self, index: FrameIndex) -> np.ndarray:
        """The z-stack ``index`` belongs to, float32 ``(Z, Y, X)`` from plane 0 to its last
        written plane, NaN where a plane was not written (a lost frame): what a stack
        restorer takes. KeyError when no plane is written."""
        planes = self.stack_planes(index)
        if not planes:
            raise KeyError(f"no raw plane of the stack of {dict(index)!r} was written")
        stack = np.full((planes[-1] + 1, *self.frame_shape), np.nan, np.float32)
        for z in planes:
            stack[z] = self.read_raw({**index, "z": z})
        return stack

    def write_restored_stack(self, index: FrameIndex, stack: np.ndarray, *,
                             model: str = "") -> None:
        """Write the restored z-stack of ``index`` (``(P, Y, X)``: restored planes 0..P−1,
        at the restored z spacing) and mark its raw planes RESTORED in one journal line."""
        stack = np.asarray(stack, np.float32)
        planes = self.stack_planes(index)
        expected = (planes[-1] * self.fill_planes + 1) if planes else 0
        if stack.ndim != 3 or stack.shape != (expected, *self.frame_shape):
            raise ValueError(f"restored stack has shape {stack.shape}, the stack of "
                             f"{dict(index)!r} needs ({expected}, {self.frame_shape[0]}, "
                             f"{self.frame_shape[1]})")
        key = self._key({**index, "z": 0})
        array, where = self._locate("restored", key)
        at = self._img_axes.index("z")
        for z, plane in enumerate(stack):
            array[(*where[:at], z, *where[at + 1:])] = plane
            self._images.observe("restored", key, plane)
        if self._ledger.record_stack(key, planes, FrameStatus.RESTORED, model=model):
            self.flush()

    def read_restored_stack(self, index: FrameIndex) -> np.ndarray:
        """Every restored plane of the z-stack ``index`` belongs to, float32 ``(Z', Y, X)`` at
        the restored spacing; NaN where nothing is restored yet."""
        array, where = self._locate("restored", self._key({**index, "z": 0}))
        at = self._img_axes.index("z")
        return np.asarray(array[(*where[:at], slice(None), *where[at + 1:])])

    def mark_stack_failed(self, index: FrameIndex, reason: str) -> None:
        """Record that restoring the z-stack of ``index`` failed (its raw planes are kept)."""
        planes = self.stack_planes(index)
        if self._ledger.record_stack(self._key({**index, "z": 0}), planes, FrameStatus.FAILED,
                                     reason=reason):
            self.flush()

    def pending_stacks(self, retry_failed: bool = False) -> list[dict[str, int]]:
        """One index (z = 0) per z-stack with a plane waiting (or failed, with
        ``retry_failed``), in storage order: what ``resume`` restores stack by stack."""
        return list({tuple(sorted({**index, "z": 0}.items())): {**index, "z": 0}
                     for index in self.pending(retry_failed)}.values())

    def stack_counts(self) -> dict[str, int]:
        """Z-stacks acquired, restored, pending and failed (see :meth:`Ledger.stack_counts`);
        ValueError for a store without a z axis."""
        if "z" not in self.sizes:
            raise ValueError(f"{self.path} has no z axis: it holds no z-stacks")
        return self._ledger.stack_counts()


def stack_restorers(restorers: ChannelRestorers, sizes: Mapping[str, int],
                    fill_planes: int) -> ChannelRestorers:
    """``restorers`` for a store of ``sizes`` that fills ``fill_planes``: each stack model
    as the restorer of whole raw stacks (``filling(fill_planes)``), frame restorers as they
    are. ValueError, before any light, for a stack model without a z-stack, or a frame
    restorer where planes are filled (it would leave the planes in between empty)."""
    single = not isinstance(restorers, Mapping)
    chosen = {"": restorers} if single else dict(restorers)
    for channel, restorer in chosen.items():
        where = f" (channel {channel!r})" if channel else ""
        if restores_stacks(restorer) and "z" not in sizes:
            raise ValueError(f"model {restorer.name!r}{where} restores z-stacks: the sequence "
                             "needs a z plan")
        if restorer is not None and not restores_stacks(restorer) and fill_planes > 1:
            raise ValueError(f"filling {fill_planes - 1} plane(s) between acquired ones needs "
                             f"a z-stack model such as axial; {restorer.name!r}{where} "
                             "restores frames")
    wrapped: dict[int, Any] = {}  # one wrapper per model, shared like the model
    for channel, restorer in chosen.items():
        if restores_stacks(restorer):
            chosen[channel] = wrapped.setdefault(id(restorer), restorer.filling(fill_planes))
    return chosen[""] if single else chosen


class StackAssembler:
    """Which planes of each z-stack a running acquisition has saved, so that a stack goes to
    its stack restorer as soon as its last plane is in, whatever the sequence's axis order;
    after the sequence, the stacks that never got every plane (a cancelled run, a lost
    frame) go with the planes they have."""

    def __init__(self, sizes: Mapping[str, int]) -> None:
        self.n_planes = int(sizes["z"])
        self._planes: dict[tuple[tuple[str, int], ...], int] = {}
        """Planes saved per stack begun and not complete (the stack: its index but z)."""

    def add(self, index: Mapping[str, int]) -> bool:
        """Note one saved plane; True when it completes its stack."""
        stack = tuple(sorted((a, int(v)) for a, v in index.items() if a != "z"))
        self._planes[stack] = self._planes.get(stack, 0) + 1
        if self._planes[stack] == self.n_planes:
            del self._planes[stack]
            return True
        return False

    def unfinished(self) -> list[dict[str, int]]:
        """One index (z = 0) per stack begun and not completed; forgets them."""
        out = [{**dict(stack), "z": 0} for stack in self._planes]
        self._planes.clear()
        return out
