"""The simulator as a pair source for training and adaptation.

Training and adaptation take their data as a :class:`~live_restore.training.data.PairSource`
and never import the simulator; the CLI and the experiments wire it in through here.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from live_restore import sim
from live_restore.training.data import PairSource

__all__ = ["AXIAL_STACK_PX", "CINGAN_PRETRAINING_TASKS", "axial_fill_pairs", "simulator_pairs",
           "simulator_sources"]

AXIAL_STACK_PX = 128
"""Side of the simulated training stacks of every axial model (the same stacks for each)."""

#: Simulator tasks a CIN-GAN is pre-trained on, one row each: low dose (two modalities),
#: blur/resolution, axial undersampling, haze, scanner stripes and a foreign detector.
CINGAN_PRETRAINING_TASKS: tuple[str, ...] = (
    "sted_denoise",
    "confocal2sted",
    "denoise",
    "axial_inpaint",
    "haze",
    "stripes",
    "detector",
)


def simulator_pairs(task: str) -> PairSource:
    """``make_pairs(n, seed, size)`` drawing ``sim.make_pairs(task, ...)`` (camera units);
    ``ValueError`` for an unknown task."""
    sim.check_task(task)

    def make_pairs(n: int, seed: int, size: int) -> tuple[np.ndarray, np.ndarray]:
        degraded, target, _ = sim.make_pairs(task, n, seed, size)
        return degraded, target

    return make_pairs


def axial_fill_pairs() -> PairSource:
    """2-D pairs for a frame restorer that fills planes (MSCGM or CARE on ``--task axial``):
    every plane of ``n`` simulated ``axial`` stacks (so ``n`` × planes × ks pairs), as the
    linear interpolation of the stack thinned to every k-th plane for each k of
    ``sim.tasks.AXIAL_SPARSITY`` (acquired planes: themselves), against the high-dose plane."""
    from live_restore.models.axial import acquired_planes, interpolate_planes

    def make_pairs(n: int, seed: int, size: int) -> tuple[np.ndarray, np.ndarray]:
        degraded, target, _ = sim.make_pairs("axial", n, seed, size)
        n_planes = degraded.shape[1]
        thinned = [acquired_planes(n_planes, k) for k in sim.tasks.AXIAL_SPARSITY]
        filled = [interpolate_planes(stack[planes], planes, n_planes)
                  for stack in degraded for planes in thinned]
        truth = [stack for stack in target for _ in sim.tasks.AXIAL_SPARSITY]
        return np.concatenate(filled), np.concatenate(truth)

    return make_pairs


def simulator_sources(tasks: Sequence[str] = CINGAN_PRETRAINING_TASKS) -> dict[str, PairSource]:
    """One :func:`simulator_pairs` source per task, in order (a CIN-GAN's pre-training set)."""
    return {task: simulator_pairs(task) for task in tasks}
