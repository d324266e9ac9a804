"""Brownian-bridge diffusion (BBDM, Li et al. 2023) on the coarsest wavelet LL band.

MSCGM maps the degraded image's coarsest LL band ``y`` to the clean one ``x_0`` with a
Brownian bridge. Equations, with ``t ∈ {0, …, T}``:

- (1) schedule ``m_t = t / T`` and variance ``δ_t = 2 s (m_t − m_t²)``, so both ends are exact:
  ``x_0`` at ``t = 0`` and ``y`` at ``t = T``;
- (2) marginal ``q(x_t | x_0, y) = N((1 − m_t) x_0 + m_t y, δ_t I)``;
- (3) training target ``x_t − x_0 = m_t (y − x_0) + √δ_t ε`` (BBDM's ``grad`` objective), L1;
- (4) posterior variance of a hop ``t → s < t``: ``σ²_{s|t} = δ_{t|s} δ_s / δ_t`` with
  ``δ_{t|s} = δ_t − δ_s ((1 − m_t)/(1 − m_s))²``, which for this ``δ`` simplifies to
  ``σ²_{s|t} = 2 s m_s (m_t − m_s) / m_t`` (finite at ``t = T``, where it equals ``δ_s``);
- (5) DDIM-style hop ``x_s = (1 − m_s) x̂_0 + m_s y + √(δ_s − η² σ²_{s|t}) ε̂ + η σ_{s|t} z``
  with ``x̂_0 = x_t − model(x_t, y, t)`` and ``ε̂ = (x_t − (1 − m_t) x̂_0 − m_t y) / √δ_t``.

Unlike BBDM's ``p_sample``, η scales σ inside the mean coefficient too, so
η = 0 is true deterministic DDIM and η = 1 is the exact posterior ``q(x_s | x_t, x̂_0)``; every
η keeps the marginals (2) given a correct ``x̂_0``. The step grid is even and ends at 0 (no
wasted 1 → 0 hop), and ``x̂_0`` is not clamped: normalised fluorescence may exceed 1.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from itertools import pairwise

import torch
from torch import Tensor, nn

from live_restore.models.timesteps import sampling_timesteps

__all__ = ["BridgeDenoiser", "BrownianBridge"]

BridgeDenoiser = Callable[[Tensor, Tensor, Tensor], Tensor]
"""``model(x_t, y, t) -> x_t − x_0``: ``x_t``, ``y`` and the result ``(B, 1, h, w)`` float,
``t`` ``(B,)`` int64 in ``[1, T]``. The network concatenates ``x_t`` and ``y`` itself."""

_SCHEDULES = ("linear",)


def _per_sample(buffer: Tensor, t: Tensor, like: Tensor) -> Tensor:
    """``buffer[t]`` shaped ``(B, 1, …, 1)`` to broadcast against ``like``, in its dtype."""
    return buffer[t].to(like.dtype).reshape(-1, *([1] * (like.ndim - 1)))


class BrownianBridge(nn.Module):
    """Brownian-bridge diffusion process between a clean ``x_0`` and a degraded ``y``.

    Holds no network: :meth:`p_losses` and :meth:`sample` take the denoiser as an argument
    (a :data:`BridgeDenoiser`).

    Parameters
    ----------
    num_timesteps
        ``T``; the bridge runs over ``t ∈ {0, …, T}``. Training cost does not depend on it.
    s
        Variance scale ("max_var" in BBDM): ``δ_t`` peaks at ``s / 2`` at ``m_t = 0.5``.
        BBDM's 1.0 was tuned for data in [-1, 1]; normalised fluorescence LL bands need
        smaller values, chosen per task (:meth:`live_restore.models.configs.MSCGMConfig.for_task`).
    schedule
        Family of ``m_t``: only ``"linear"``, ``m_t = t / T`` (BBDM paper, eq. 1 above).

    Buffers (float32, computed in float64, length ``T + 1``): ``m_t``, ``variance_t``.
    """

    m_t: Tensor
    variance_t: Tensor

    def __init__(self, num_timesteps: int = 1000, s: float = 1.0, schedule: str = "linear"):
        super().__init__()
        if isinstance(num_timesteps, bool) or not isinstance(num_timesteps, int):
            raise ValueError(f"num_timesteps must be an integer >= 1, got {num_timesteps!r}")
        if num_timesteps < 1:
            raise ValueError(f"num_timesteps must be an integer >= 1, got {num_timesteps!r}")
        if not (float(s) > 0 and math.isfinite(s)):
            raise ValueError(f"s must be a positive finite number, got {s!r}")
        if schedule not in _SCHEDULES:
            raise ValueError(f"schedule must be one of {_SCHEDULES}, got {schedule!r}")
        self.num_timesteps = num_timesteps
        self.s = float(s)
        self.schedule = schedule
        m = torch.arange(num_timesteps + 1, dtype=torch.float64) / num_timesteps
        variance = 2.0 * self.s * (m - m * m)
        self.register_buffer("m_t", m.to(torch.float32))
        self.register_buffer("variance_t", variance.to(torch.float32))

    def extra_repr(self) -> str:
        return f"num_timesteps={self.num_timesteps}, s={self.s}, schedule={self.schedule!r}"

    # ------------------------------------------------------------------ forward process

    def _check_pair(self, x: Tensor, y: Tensor, x_name: str) -> None:
        if x.ndim != 4 or x.shape != y.shape:
            raise ValueError(
                f"{x_name} and y must share one shape (B, C, h, w), "
                f"got {tuple(x.shape)} and {tuple(y.shape)}"
            )

    def _check_t(self, t: Tensor, batch: int) -> None:
        if t.shape != (batch,) or t.dtype != torch.long:
            raise ValueError(
                f"t must be an int64 tensor of shape ({batch},), "
                f"got {t.dtype} of shape {tuple(t.shape)}"
            )
        if bool(((t < 0) | (t > self.num_timesteps)).any()):
            raise ValueError(f"t must lie in [0, {self.num_timesteps}], got {t.tolist()}")

    def q_sample(self, x0: Tensor, y: Tensor, t: Tensor, noise: Tensor) -> Tensor:
        """Draw ``x_t ~ q(x_t | x_0, y)`` (eq. 2): ``(1 − m_t) x_0 + m_t y + √δ_t ε``.

        Parameters
        ----------
        x0, y
            ``(B, C, h, w)`` float: clean and degraded endpoints, same normalisation.
        t
            ``(B,)`` int64 in ``[0, T]``.
        noise
            ``ε``, standard normal, shaped like ``x0``.
        """
        self._check_pair(x0, y, "x0")
        self._check_t(t, x0.shape[0])
        if noise.shape != x0.shape:
            raise ValueError(f"noise must have shape {tuple(x0.shape)}, got {tuple(noise.shape)}")
        m = _per_sample(self.m_t, t, x0)
        std = _per_sample(self.variance_t, t, x0).sqrt()
        return (1 - m) * x0 + m * y + std * noise

    def p_losses(
        self,
        model: BridgeDenoiser,
        x0: Tensor,
        y: Tensor,
        t: Tensor | None = None,
        generator: torch.Generator | None = None,
        first_hop_fraction: float = 0.0,
    ) -> Tensor:
        """Training loss (eq. 3): ``mean |model(x_t, y, t) − (x_t − x_0)|``.

        Parameters
        ----------
        model
            The denoiser being trained.
        x0, y
            ``(B, C, h, w)`` float: clean and degraded LL bands, same normalisation.
        t
            ``(B,)`` int64 in ``[0, T]``; by default drawn uniformly from ``[1, T]`` (``t = 0``
            has the trivial target 0 and is never visited by the sampler).
        generator
            Source of ``t`` and ``ε``, on the device of ``x0``; the global RNG if None.
        first_hop_fraction
            When ``t`` is drawn: the expected fraction of the batch put at ``t = T``, the
            sampler's first hop, which sees ``y`` alone and so carries the whole restoration
            (uniform draws put 1/T there).

        Returns
        -------
        Tensor
            0-d float loss, differentiable through ``model``.
        """
        self._check_pair(x0, y, "x0")
        batch = x0.shape[0]
        if not 0.0 <= first_hop_fraction <= 1.0:
            raise ValueError(f"first_hop_fraction must lie in [0, 1], got {first_hop_fraction!r}")
        if t is None:
            t = torch.randint(
                1, self.num_timesteps + 1, (batch,), generator=generator, device=x0.device
            )
            if first_hop_fraction > 0:
                draw = torch.rand(batch, generator=generator, device=x0.device)
                t = torch.where(draw < first_hop_fraction, self.num_timesteps, t)
        noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        x_t = self.q_sample(x0, y, t, noise)
        target = x_t - x0
        return (model(x_t, y, t) - target).abs().mean()

    # ------------------------------------------------------------------ reverse process

    def timesteps(self, steps: int) -> list[int]:
        """The even sampling grid ``T = t_0 > t_1 > … > t_S = 0``, rounded down
        (:func:`~live_restore.models.timesteps.sampling_timesteps`): ``S`` network evaluations,
        one per hop."""
        return sampling_timesteps(self.num_timesteps, steps)

    def p_sample(
        self,
        model: BridgeDenoiser,
        x_t: Tensor,
        y: Tensor,
        t: int,
        s: int,
        eta: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """One DDIM-style hop ``x_t → x_s`` (eqs. 4–5), ``0 <= s < t <= T``.

        At ``t = T`` (``δ_T = 0``, ``x_T = y``) there is no noise to estimate, so ``ε̂ = 0``;
        at ``s = 0`` the hop returns ``x̂_0``. Call under ``torch.inference_mode()`` or
        ``torch.no_grad()`` unless you need gradients.

        Parameters
        ----------
        model
            The trained denoiser.
        x_t
            ``(B, C, h, w)`` float, the current state.
        y
            ``(B, C, h, w)`` float, the degraded endpoint.
        t, s
            Current and next timestep.
        eta
            Stochasticity in [0, 1]: 0 deterministic, 1 the full posterior variance.
        generator
            Source of ``z`` (only drawn when ``eta > 0``), on the device of ``x_t``.

        Returns
        -------
        Tensor
            ``x_s``, shaped like ``x_t``.
        """
        self._check_pair(x_t, y, "x_t")
        if not 0 <= s < t <= self.num_timesteps:
            raise ValueError(f"need 0 <= s < t <= {self.num_timesteps}, got t={t!r}, s={s!r}")
        if not 0.0 <= eta <= 1.0:
            raise ValueError(f"eta must lie in [0, 1], got {eta!r}")
        batch = x_t.shape[0]
        t_batch = torch.full((batch,), t, dtype=torch.long, device=x_t.device)
        x0_hat = x_t - model(x_t, y, t_batch)

        m_t, m_s = float(self.m_t[t]), float(self.m_t[s])
        var_t, var_s = 2.0 * self.s * m_t * (1 - m_t), 2.0 * self.s * m_s * (1 - m_s)
        sigma2 = eta * eta * 2.0 * self.s * m_s * (m_t - m_s) / m_t
        direction = math.sqrt(max(var_s - sigma2, 0.0))
        x_s = (1 - m_s) * x0_hat + m_s * y
        if direction > 0 and var_t > 0:
            eps_hat = (x_t - (1 - m_t) * x0_hat - m_t * y) / math.sqrt(var_t)
            x_s = x_s + direction * eps_hat
        if sigma2 > 0:
            z = torch.randn(x_t.shape, generator=generator, device=x_t.device, dtype=x_t.dtype)
            x_s = x_s + math.sqrt(sigma2) * z
        return x_s

    @torch.inference_mode()
    def sample(
        self,
        model: BridgeDenoiser,
        y: Tensor,
        steps: int = 8,
        eta: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Restore ``x_0`` from ``y``: start at ``x_T = y`` exactly and hop along
        :meth:`timesteps` with :meth:`p_sample`.

        Parameters
        ----------
        model
            The trained denoiser (put it in eval mode first).
        y
            ``(B, C, h, w)`` float, the degraded LL band in the training normalisation.
        steps
            Number of hops ``S`` (network evaluations), ``1 <= S <= T``.
        eta
            Stochasticity in [0, 1]; 0 is deterministic (same input → same output).
        generator
            Source of the sampling noise, on the device of ``y``; the global RNG if None.

        Returns
        -------
        Tensor
            ``(B, C, h, w)``, the estimate of ``x_0``, same dtype as ``y``; not clamped.
        """
        return self.reverse(model, y, steps, eta, generator)

    def reverse(
        self,
        model: BridgeDenoiser,
        y: Tensor,
        steps: int = 8,
        eta: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """:meth:`sample` without inference mode: the hops stay differentiable, for training
        through the whole restoration (self-supervised fine-tuning)."""
        x = y
        for t, s in pairwise(self.timesteps(steps)):
            x = self.p_sample(model, x, y, t, s, eta=eta, generator=generator)
        return x
