"""Axial inpainting: a z-stack acquired every k-th plane, restored at every plane.

Acquiring every k-th plane cuts the light a stack costs k-fold. The planes in between are
estimated from the acquired ones: by linear or cubic interpolation along z (the floors), or by
:class:`AxialNet`, a U-Net that reads the ``neighbours`` acquired planes on each side of a
plane and the plane's position between them, and predicts the plane as a residual over the
linear interpolation (CARE's recipe, along z). Acquired planes go through the same pass at
position 0, so they come out denoised. Model files have the format ``live_restore.axial``.

A stack is normalised as a whole (the percentiles of all its acquired planes), so the planes
keep their brightness relative to one another, and comes back in the camera's units.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.interpolate
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from live_restore.models.configs import AxialConfig
from live_restore.models.networks import UNet
from live_restore.models.normalisation import normalise_frame
from live_restore.models.protocol import RestoreResult
from live_restore.models.trained import TrainedRestorer

__all__ = [
    "FORMAT",
    "INTERPOLATIONS",
    "AxialNet",
    "AxialRestorer",
    "StackFill",
    "acquired_planes",
    "interpolate_planes",
    "plane_inputs",
]

FORMAT = "live_restore.axial"
INTERPOLATIONS = ("linear", "cubic")
PLANES_PER_PASS = 4
"""Planes restored per network call (their inputs are 2·neighbours + 1 frames each)."""


def acquired_planes(n_planes: int, k: int) -> np.ndarray:
    """The planes a z plan keeping every ``k``-th of ``n_planes`` acquires: 0, k, 2k, …"""
    if n_planes < 1 or k < 1:
        raise ValueError(f"need n_planes >= 1 and k >= 1, got {n_planes} and {k}")
    return np.arange(0, n_planes, k)


def _check_stack(acquired: np.ndarray, positions: np.ndarray, n_planes: int) -> np.ndarray:
    positions = np.asarray(positions)
    if acquired.ndim != 3 or len(acquired) != len(positions) or len(positions) == 0:
        raise ValueError(f"expected (m, Y, X) acquired planes with m = {len(positions)} "
                         f"positions, got shape {acquired.shape}")
    if np.any(np.diff(positions) <= 0) or positions[0] < 0 or positions[-1] >= n_planes:
        raise ValueError(f"plane positions must rise within 0..{n_planes - 1}, got "
                         f"{positions.tolist()}")
    return positions


def _bracket(positions: np.ndarray, n_planes: int) -> tuple[np.ndarray, np.ndarray]:
    """For every plane: the index of the last acquired plane at or below it, and its position
    (0..1) towards the next acquired one (0 past the last: held constant)."""
    z = np.arange(n_planes)
    lo = np.clip(np.searchsorted(positions, z, side="right") - 1, 0, len(positions) - 1)
    hi = np.minimum(lo + 1, len(positions) - 1)
    gap = (positions[hi] - positions[lo]).astype(float)
    frac = np.where(gap > 0, (z - positions[lo]) / np.maximum(gap, 1), 0.0)
    return lo, np.clip(frac, 0.0, 1.0)


def interpolate_planes(acquired: np.ndarray, positions: np.ndarray, n_planes: int,
                       kind: str = "linear") -> np.ndarray:
    """Every plane of the stack from its acquired planes ``(m, Y, X)`` at ``positions``:
    ``linear`` or ``cubic`` (a not-a-knot spline; linear with two planes) along z, held
    constant beyond the first and last acquired plane. float32 ``(n_planes, Y, X)``."""
    if kind not in INTERPOLATIONS:
        raise ValueError(f"unknown interpolation {kind!r}; expected one of {INTERPOLATIONS}")
    acquired = np.asarray(acquired, np.float32)
    positions = _check_stack(acquired, positions, n_planes)
    if kind == "cubic" and len(positions) >= 3:
        z = np.clip(np.arange(n_planes), positions[0], positions[-1])
        spline = scipy.interpolate.CubicSpline(positions, acquired, axis=0)
        return spline(z).astype(np.float32)
    lo, frac = _bracket(positions, n_planes)
    hi = np.minimum(lo + 1, len(positions) - 1)
    f = frac[:, None, None].astype(np.float32)
    return (1 - f) * acquired[lo] + f * acquired[hi]


def plane_inputs(acquired: np.ndarray, positions: np.ndarray, n_planes: int,
                 neighbours: int, planes: np.ndarray | None = None) -> np.ndarray:
    """The network's input for each plane (all, or ``planes``): the ``neighbours`` acquired
    planes at or below it, the ``neighbours`` above (repeated at the stack's ends), then its
    position between the nearest two as a constant channel. ``(P, 2·neighbours + 1, Y, X)``;
    channels ``neighbours - 1`` and ``neighbours`` are the nearest two."""
    positions = _check_stack(acquired, positions, n_planes)
    lo, frac = _bracket(positions, n_planes)
    planes = np.arange(n_planes) if planes is None else np.asarray(planes)
    offsets = np.arange(-neighbours + 1, neighbours + 1)
    index = np.clip(lo[planes, None] + offsets[None, :], 0, len(positions) - 1)
    out = np.empty((len(planes), 2 * neighbours + 1, *acquired.shape[1:]), np.float32)
    out[:, :-1] = acquired[index]
    out[:, -1] = frac[planes, None, None]
    return out


class AxialNet(nn.Module):
    """``plane = lerp(nearest two acquired planes, position) + UNet(inputs)`` in normalised
    pixels, L1 loss. The U-Net's output layer starts at zero: untrained, it is linear
    interpolation."""

    def __init__(self, config: AxialConfig) -> None:
        super().__init__()
        self.config = config
        self.unet = UNet(2 * config.neighbours + 1, 1, config.channels, config.channel_mults)

    @property
    def multiple(self) -> int:
        """Frames are padded to a multiple of this."""
        return self.unet.multiple

    def forward(self, x: Tensor) -> Tensor:
        """``(B, 2·neighbours + 1, H, W)`` (:func:`plane_inputs`) → ``(B, 1, H, W)``."""
        n = self.config.neighbours
        position = x[:, -1:]
        base = (1 - position) * x[:, n - 1 : n] + position * x[:, n : n + 1]
        return base + self.unet(x)

    def losses(self, degraded: Tensor, target: Tensor, *, step: int, total_steps: int
               ) -> dict[str, Tensor]:
        """``{"loss": mean |plane − target|}`` on normalised patches."""
        channels = 2 * self.config.neighbours + 1
        if degraded.ndim != 4 or degraded.shape[1] != channels or target.shape[1] != 1:
            raise ValueError(f"expected (B, {channels}, H, W) inputs and (B, 1, H, W) targets, "
                             f"got {tuple(degraded.shape)} and {tuple(target.shape)}")
        return {"loss": (self(degraded) - target).abs().mean()}

    def export(self, stem: Path, provenance: dict[str, object] | None = None) -> Path:
        """Write ``stem.safetensors`` + ``stem.json`` (see :meth:`AxialRestorer.save`)."""
        device = str(next(self.parameters()).device)
        return AxialRestorer(self, device=device, provenance=provenance).save(stem)


class AxialRestorer(TrainedRestorer):
    """Restores whole z-stacks (:meth:`restore_stack`, :meth:`fill`), not frames (its
    ``restore`` refuses them); the live pipeline and ``resume`` use it through
    :class:`StackFill`."""

    name = "axial"
    format = FORMAT
    kind = "axial"
    config_type = AxialConfig
    model_type = AxialNet
    stochastic = False
    restores_stacks = True

    def restore(self, batch: np.ndarray, *, samples: int = 1, seed: int | None = None
                ) -> RestoreResult:
        """Refused: frames carry no neighbouring planes. ValueError naming the way in."""
        raise ValueError(f"model {self.name!r} restores z-stacks, not frames: use it with "
                         "--fill-planes K (restore, acquire; K = 1 denoises the planes)")

    def filling(self, every: int) -> StackFill:
        """This model as the restorer of whole raw stacks that fills ``every`` − 1 planes
        between acquired ones (:class:`StackFill`)."""
        return StackFill(self, every)

    def fill(self, acquired: np.ndarray, every: int) -> np.ndarray:
        """A stack acquired every ``every``-th plane ``(m, Y, X)`` → all ``(m − 1)·every + 1``
        planes at the finer spacing, float32 in the input's units."""
        if every < 1 or acquired.ndim != 3:
            raise ValueError(f"expected an (m, Y, X) stack and every >= 1, got shape "
                             f"{acquired.shape} and every={every}")
        n_planes = (len(acquired) - 1) * every + 1
        return self.restore_stack(acquired, acquired_planes(n_planes, every), n_planes)

    @torch.inference_mode()
    def restore_stack(self, acquired: np.ndarray, positions: np.ndarray,
                      n_planes: int) -> np.ndarray:
        """Every plane of a stack from its acquired planes ``(m, Y, X)`` (any numeric dtype) at
        plane ``positions``; float32 ``(n_planes, Y, X)`` in the input's units."""
        acquired = np.asarray(acquired, np.float32)
        if not np.isfinite(acquired).all():
            raise ValueError("the acquired planes contain NaN or infinite values")
        norm = self.config.normalisation
        scaled, lo, scale = normalise_frame(acquired, norm.pmin, norm.pmax)
        h, w = acquired.shape[1:]
        m = self.model.multiple
        pad = (0, (-w) % m, 0, (-h) % m)
        out = np.empty((n_planes, h, w), np.float32)
        for start in range(0, n_planes, PLANES_PER_PASS):
            planes = np.arange(start, min(start + PLANES_PER_PASS, n_planes))
            x = torch.from_numpy(plane_inputs(scaled, positions, n_planes,
                                              self.config.neighbours, planes))
            x = F.pad(x.to(self.device), pad, mode="reflect" if min(h, w) > 1 else "replicate")
            y = self.model(x)[:, 0, :h, :w].float().cpu().numpy()
            out[planes] = y * scale + lo
        return out


class StackFill:
    """An axial model as the restorer of whole stacks in the per-frame restore loop: each
    item of a batch is one raw z-stack ``(Z, Y, X)`` (planes 0..Z−1 at the acquired spacing,
    a plane of NaN where none was written) and comes back as ``(Z − 1)·every + 1`` planes at
    ``1/every`` of that spacing, acquired plane ``z`` at restored plane ``z·every``
    (``every`` = 1: denoised planes only)."""

    restores_stacks = True
    stochastic = False

    def __init__(self, restorer: AxialRestorer, every: int) -> None:
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every!r}")
        self.restorer = restorer
        self.every = every
        self.name = restorer.name
        self.version = restorer.version

    def restore(self, batch: np.ndarray, *, samples: int = 1, seed: int | None = None
                ) -> RestoreResult:
        """``(B, Z, Y, X)`` raw stacks → ``mean`` ``(B, (Z − 1)·every + 1, Y, X)``."""
        if batch.ndim != 4:
            raise ValueError(f"{self.name} restores z-stacks (B, Z, Y, X), got shape "
                             f"{batch.shape}")
        out = []
        for stack in np.asarray(batch, np.float32):
            acquired = np.flatnonzero(~np.isnan(stack).all(axis=(1, 2)))
            if len(acquired) == 0:
                raise ValueError("the stack holds no written plane")
            n_planes = (len(stack) - 1) * self.every + 1
            out.append(self.restorer.restore_stack(stack[acquired], acquired * self.every,
                                                   n_planes))
        return RestoreResult(np.stack(out))
