"""Diffusion timesteps, shared by the Brownian bridge and the DDPM baseline: the sampling grid
and the sinusoidal embedding the U-Nets are conditioned on."""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor

__all__ = ["sampling_timesteps", "timestep_embedding"]


def sampling_timesteps(
    num_timesteps: int, steps: int, rounding: Literal["floor", "nearest"] = "floor"
) -> list[int]:
    """The even DDIM grid ``T = t_0 > t_1 > … > t_S = 0`` (``S + 1`` entries, ``S`` hops).

    ``t_i`` is ``T (S − i) / S`` rounded down (``floor``, the bridge's grid) or to the nearest
    integer, ties to even (``nearest``, the DDPM's); gaps are all ``T / S`` when ``S`` divides
    ``T`` and differ by at most one otherwise. Each model keeps the rounding it was evaluated
    with, so a trained model samples on the grid it was judged on. Raises ``ValueError``
    unless ``steps`` is an integer in ``[1, T]``.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= num_timesteps:
        raise ValueError(f"steps must be an integer in [1, {num_timesteps}], got {steps!r}")
    if rounding == "floor":
        return [num_timesteps * (steps - i) // steps for i in range(steps + 1)]
    grid = torch.linspace(num_timesteps, 0, steps + 1, dtype=torch.float64)
    return [int(t) for t in grid.round()]


def timestep_embedding(t: Tensor, dim: int, max_period: float = 10_000.0) -> Tensor:
    """Sinusoidal timestep embedding (Transformer / DDPM style).

    Parameters
    ----------
    t
        ``(B,)`` timesteps, integer or float, on any device.
    dim
        Embedding width ``>= 1``; an odd width gets a trailing zero column.
    max_period
        Longest wavelength, controls the lowest frequency.

    Returns
    -------
    Tensor
        ``(B, dim)`` float32 in [-1, 1]: ``[cos(t ω_k), sin(t ω_k)]`` with
        ``ω_k = max_period^(−k / (dim // 2))``.
    """
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise ValueError(f"dim must be an integer >= 1, got {dim!r}")
    if t.ndim != 1:
        raise ValueError(f"t must have shape (B,), got shape {tuple(t.shape)}")
    half = dim // 2
    k = torch.arange(half, dtype=torch.float32, device=t.device)
    freqs = torch.exp(-math.log(max_period) * k / max(half, 1))
    args = t.to(torch.float32)[:, None] * freqs[None, :]
    emb = torch.cat((torch.cos(args), torch.sin(args)), dim=-1)
    if dim % 2:
        emb = torch.cat((emb, torch.zeros_like(emb[:, :1])), dim=-1)
    return emb
