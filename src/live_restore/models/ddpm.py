"""Conditional DDPM baseline (Osuna-Vargas et al., WACV 2025) at full resolution.

The degraded frame is concatenated with ``x_t``, the network predicts ``ε`` (MSE), cosine
schedule with ``s = 8e-3`` and ``T = 200`` (the paper's own T, for training and test), sampled
with DDIM (50 steps by default; η = 0 for one sample, η = 1 when several are averaged:
DDPM-avg). Deviations, flagged: our U-Net (no attention, discrete ``t`` embedding) instead of
EDM2's, and ``x̂_0`` clamped to ±``x0_clip`` rather than ±1, because normalised fluorescence
exceeds 1.

Trained by :func:`live_restore.training.loop.train` on the same pairs as MSCGM and CARE, at
the width of MSCGM's default bridge U-Net. Model files have the format ``live_restore.ddpm``.
"""

from __future__ import annotations

import math
from itertools import pairwise
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from live_restore.models.care import check_pair
from live_restore.models.configs import DDPMConfig
from live_restore.models.networks import UNet
from live_restore.models.protocol import RestoreResult
from live_restore.models.timesteps import sampling_timesteps
from live_restore.models.trained import TrainedRestorer

__all__ = ["FORMAT", "ConditionalDDPM", "DDPMRestorer", "cosine_alphas_cumprod"]

FORMAT = "live_restore.ddpm"
#: Largest ``β_t`` of the cosine schedule, as in the paper's code (otherwise ``ᾱ_T = 0``).
MAX_BETA = 0.999


def cosine_alphas_cumprod(num_timesteps: int, s: float) -> Tensor:
    """``ᾱ_t`` for ``t = 0 … T`` (float64; ``ᾱ_0 = 1``), cosine schedule (Nichol & Dhariwal).

    ``ᾱ_t = f(t) / f(0)`` with ``f(t) = cos²(((t/T + s) / (1 + s)) π/2)``; each
    ``β_t = 1 − ᾱ_t / ᾱ_{t−1}`` is clipped at :data:`MAX_BETA`, and ``ᾱ`` is rebuilt from the
    clipped betas.
    """
    t = torch.arange(num_timesteps + 1, dtype=torch.float64) / num_timesteps
    f = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2
    alphabar = f / f[0]
    betas = (1 - alphabar[1:] / alphabar[:-1]).clamp(max=MAX_BETA)
    return torch.cat((torch.ones(1, dtype=torch.float64), torch.cumprod(1 - betas, 0)))


class ConditionalDDPM(nn.Module):
    """Conditional DDPM at full resolution: ``ε_θ([x_t, y], t)``, cosine schedule, DDIM.

    The diffusion runs on ``2x − 1`` of the normalised frames (the paper's [−1, 1] data
    range, so its schedule means the same signal-to-noise ratios here); ``y`` is mapped alike.
    Buffer ``alphas_cumprod`` (float32, length ``T + 1``) is computed in float64.
    """

    alphas_cumprod: Tensor

    def __init__(self, config: DDPMConfig) -> None:
        super().__init__()
        self.config = config
        self.unet = UNet(2, 1, config.channels, config.channel_mults, time_embedding=True)
        alphabar = cosine_alphas_cumprod(config.num_timesteps, config.schedule_s)
        self.register_buffer("alphas_cumprod", alphabar.to(torch.float32))

    @property
    def multiple(self) -> int:
        """Frames are padded to a multiple of this."""
        return self.unet.multiple

    def eps_model(self, x_t: Tensor, y: Tensor, t: Tensor) -> Tensor:
        """``ε_θ``: ``x_t``, ``y`` ``(B, 1, H, W)`` diffusion units, ``t`` ``(B,)`` int64."""
        return self.unet(torch.cat((x_t, y), dim=1), t)

    def q_sample(self, x0: Tensor, t: Tensor, noise: Tensor) -> Tensor:
        """``x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε`` (DDPM eq. 4)."""
        ab = self.alphas_cumprod[t].to(x0.dtype).reshape(-1, 1, 1, 1)
        return ab.sqrt() * x0 + (1 - ab).sqrt() * noise

    def losses(
        self, degraded: Tensor, target: Tensor, *, step: int, total_steps: int
    ) -> dict[str, Tensor]:
        """``{"loss": ‖ε_θ([x_t, y], t) − ε‖²}`` with ``t ~ U{1 … T}`` (DDPM eq. 14)."""
        check_pair(degraded, target, self.multiple)
        x0, y = 2 * target - 1, 2 * degraded - 1
        t = torch.randint(1, self.config.num_timesteps + 1, (x0.shape[0],), device=x0.device)
        noise = torch.randn_like(x0)
        return {"loss": F.mse_loss(self.eps_model(self.q_sample(x0, t, noise), y, t), noise)}

    def timesteps(self, steps: int) -> list[int]:
        """The DDIM grid: ``steps + 1`` evenly spaced integers from ``T`` down to 0, rounded to
        the nearest (:func:`~live_restore.models.timesteps.sampling_timesteps`)."""
        return sampling_timesteps(self.config.num_timesteps, steps, rounding="nearest")

    @torch.inference_mode()
    def restore_normalised(
        self,
        y_norm: Tensor,
        steps: int | None = None,
        eta: float | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """DDIM (Song et al. 2021, eq. 12) from ``x_T ~ N(0, I)``, one network call per step.

        Each hop ``t → s``: ``x̂_0 = (x_t − √(1−ᾱ_t) ε_θ) / √ᾱ_t`` clamped to ±``x0_clip``,
        ``ε̂`` recomputed from the clamped ``x̂_0``, then
        ``x_s = √ᾱ_s x̂_0 + √(1 − ᾱ_s − σ²) ε̂ + σ z`` with
        ``σ = η √((1 − ᾱ_s)/(1 − ᾱ_t)) √(1 − ᾱ_t/ᾱ_s)``; the last hop lands on ``x̂_0``.

        Parameters
        ----------
        y_norm
            ``(B, 1, H, W)`` float, normalised degraded frames, ``H``, ``W`` multiples of
            :attr:`multiple`.
        steps, eta
            DDIM steps and stochasticity; the config's defaults when None.
        generator
            Source of all sampling noise, on ``y_norm``'s device.

        Returns
        -------
        Tensor
            ``(B, 1, H, W)``, same dtype as ``y_norm``, normalised units.
        """
        steps = self.config.steps if steps is None else steps
        eta = self.config.eta if eta is None else eta
        clip = self.config.x0_clip
        y = 2 * y_norm - 1
        x = torch.randn(y.shape, generator=generator, device=y.device, dtype=y.dtype)
        alphabar = self.alphas_cumprod.double().cpu()
        for t, s in pairwise(self.timesteps(steps)):
            ab_t, ab_s = float(alphabar[t]), float(alphabar[s])
            t_batch = torch.full((y.shape[0],), t, device=y.device, dtype=torch.long)
            eps = self.eps_model(x, y, t_batch).to(x.dtype)
            x0 = ((x - math.sqrt(1 - ab_t) * eps) / math.sqrt(ab_t)).clamp(-clip, clip)
            eps = (x - math.sqrt(ab_t) * x0) / math.sqrt(1 - ab_t)
            sigma = eta * math.sqrt((1 - ab_s) / (1 - ab_t) * (1 - ab_t / ab_s))
            x = math.sqrt(ab_s) * x0 + math.sqrt(max(1 - ab_s - sigma**2, 0.0)) * eps
            if sigma > 0:
                x = x + sigma * torch.randn(
                    x.shape, generator=generator, device=x.device, dtype=x.dtype
                )
        return (x + 1) / 2

    def export(self, stem: Path, provenance: dict[str, object] | None = None) -> Path:
        """Write ``stem.safetensors`` + ``stem.json`` (see :meth:`DDPMRestorer.save`)."""
        device = str(next(self.parameters()).device)
        return DDPMRestorer(self, device=device, provenance=provenance).save(stem)


class DDPMRestorer(TrainedRestorer):
    """:class:`live_restore.models.protocol.Restorer` over a :class:`ConditionalDDPM`
    (constructor: :class:`~live_restore.models.trained.TrainedRestorer`).

    One sample: DDIM with ``eta`` (0: deterministic given the seed). ``samples = K``: K draws
    with ``sample_eta`` (1), their mean and standard deviation (DDPM-avg).
    """

    name = "ddpm"
    format = FORMAT
    kind = "DDPM"
    config_type = DDPMConfig
    model_type = ConditionalDDPM

    def _summary(self) -> dict[str, object]:
        return {"steps": self.config.steps}

    def restore(
        self,
        batch: np.ndarray,
        *,
        samples: int = 1,
        seed: int | None = None,
        steps: int | None = None,
    ) -> RestoreResult:
        """Restore ``batch`` (N, Y, X) or (Y, X), any numeric dtype, in camera units, with
        ``steps`` DDIM steps (the config's when None); see the class docstring for
        ``samples``. Output float32 (N, Y, X) in the input frames' camera units."""
        if steps is not None:
            self.model.timesteps(steps)  # refuse a bad value before any work
        eta = self.config.eta if samples == 1 else self.config.sample_eta

        def draw(y: Tensor, generator: torch.Generator, estimate: Tensor | None,
                 sigma: float | None) -> Tensor:
            return self.model.restore_normalised(y, steps, eta, generator)

        return self.inferer.restore(batch, draw, samples=samples, seed=seed)
