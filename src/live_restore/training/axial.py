"""Training pairs for an axial model from paired z-stacks (low dose, every plane; high dose).

Each stack is thinned to every k-th plane for each k the model is trained on; every plane of
the stack is then one pair: its network input (:func:`~live_restore.models.axial.plane_inputs`)
and the high-dose plane, normalised together by the thinned stack's percentiles, so the pairs
need stacks whose two members are in one unit (the simulator's ``axial`` task rescales its
high-dose stack to the low dose's photons).
"""

from __future__ import annotations

import numpy as np

from live_restore.models.axial import acquired_planes, plane_inputs
from live_restore.models.configs import AxialConfig
from live_restore.models.normalisation import normalise_frame
from live_restore.training.data import PairDataset

__all__ = ["axial_dataset"]


def axial_dataset(degraded: np.ndarray, target: np.ndarray, config: AxialConfig) -> PairDataset:
    """``(N, Z, Y, X)`` low-dose and high-dose stacks → one pair per plane, per stack and per
    k in ``config.sparsity``."""
    if degraded.ndim != 4 or degraded.shape != target.shape:
        raise ValueError(f"expected two (N, Z, Y, X) stacks of one shape, got {degraded.shape} "
                         f"and {target.shape}")
    n_planes = degraded.shape[1]
    inputs, planes = [], []
    for stack, truth in zip(degraded, target, strict=True):
        for k in config.sparsity:
            positions = acquired_planes(n_planes, k)
            scaled, lo, scale = normalise_frame(stack[positions], config.normalisation.pmin,
                                                config.normalisation.pmax)
            inputs.append(plane_inputs(scaled, positions, n_planes, config.neighbours))
            planes.append(((truth - lo) / scale).astype(np.float32))
    return PairDataset(np.concatenate(inputs), np.concatenate(planes))
