"""Tiny model settings and checks shared by the model tests (small enough for CPU seconds)."""

from __future__ import annotations

import torch

SMALL_MSCGM = {
    "bridge_channels": 8,
    "bridge_mults": (1, 2),
    "head_channels": 8,
    "finest_head_channels": 8,
    "disc_channels": 8,
    "num_timesteps": 100,
    "steps": 2,
}
TINY_BASELINE = {"channels": 8, "channel_mults": (1, 2)}


def one_step_changes_loss(model, params, degraded, target) -> tuple[float, float]:
    """Loss on a fixed batch before and after one AdamW step (same t, ε, z both times).

    The learning rate is small because Adam's first step moves every weight by ±lr.
    """
    opt = torch.optim.AdamW(params, lr=1e-5)

    def loss() -> torch.Tensor:
        torch.manual_seed(1)
        return model.losses(degraded, target, step=0, total_steps=100)["loss"]

    before = loss()
    opt.zero_grad()
    before.backward()
    opt.step()
    with torch.no_grad():
        after = loss()
    return float(before.detach()), float(after)
