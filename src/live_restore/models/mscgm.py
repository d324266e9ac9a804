"""MSCGM: a Brownian bridge on the coarsest Haar LL band, conditional GAN heads on the details.

The normalised degraded frame (:mod:`live_restore.models.normalisation`) is decomposed into a
J-level Haar pyramid; a Brownian bridge maps its coarsest LL (block means) to the target's, in
a few deterministic DDIM-style hops; then, coarse to fine, one light :class:`DetailHead` per
level generates the three detail bands from (restored LL, degraded LL, degraded details, z),
and one synthesis step doubles the resolution. :class:`MSCGMRestorer` runs it through the
shared inference layer (:mod:`live_restore.models.inference`), cycle-spun on the pyramid's
grid, so restored frames come back in the degraded frame's camera units.

Scales: the pyramid's LL is the 2^J block mean and the details are scaled to [-1, 1]
(:class:`live_restore.models.wavelets.HaarPyramid`); in those units one synthesis step is
``haar_idwt2(2 · LL, details)`` at every level (:func:`synthesise`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from live_restore.models.bridge import BridgeDenoiser, BrownianBridge
from live_restore.models.configs import MSCGMConfig
from live_restore.models.consistency import consistency_score
from live_restore.models.inference import CycleSpin
from live_restore.models.networks import DetailHead, PatchDiscriminator, UNet, log_sigma_channel
from live_restore.models.protocol import RestoreResult
from live_restore.models.trained import TrainedRestorer
from live_restore.models.wavelets import HaarPyramid, haar_idwt2

__all__ = [
    "FORMAT",
    "MIN_NOISE_LEVEL",
    "MSCGM",
    "MSCGMRestorer",
    "noise_level",
    "ssim",
    "synthesise",
]

FORMAT = "live_restore.mscgm"

#: SSIM's Gaussian window (Wang et al. 2004): 7 pixels wide, σ = 1.5 px.
SSIM_WINDOW_SIZE, SSIM_WINDOW_SIGMA = 7, 1.5
#: SSIM's stabilisers ``(K1 L)²`` and ``(K2 L)²`` for data range ``L = 1`` (normalised units).
SSIM_C1, SSIM_C2 = 0.01**2, 0.03**2
#: Floor of :func:`noise_level`, normalised units: a noise-free frame must not divide by zero.
MIN_NOISE_LEVEL = 1e-3


# ---------------------------------------------------------------------- torch helpers


def synthesise(ll: Tensor, details: Tensor) -> Tensor:
    """One Haar synthesis step in the pyramid's scaled units.

    ``ll`` ``(B, C, h, w)`` block means and ``details`` ``(B, C, 3, h, w)`` scaled details at
    one level → ``(B, C, 2h, 2w)`` block means one level finer. The scaled LL at level k is
    ``2^-k`` times the raw one and the scaled details ``2^-(k-1)``, so the raw synthesis
    ``idwt(2^k LL, 2^(k-1) D) = 2^(k-1) LL'`` reduces to ``idwt(2 LL, D)`` at every level.
    """
    return haar_idwt2(2.0 * ll, details)


def _gaussian_window(size: int = SSIM_WINDOW_SIZE, sigma: float = SSIM_WINDOW_SIGMA) -> Tensor:
    g = torch.exp(-((torch.arange(size) - size // 2) ** 2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :])[None, None]


def ssim(a: Tensor, b: Tensor, window: Tensor) -> Tensor:
    """Mean SSIM of ``(B, 1, H, W)`` images in normalised units (data range 1), Gaussian window.

    Differentiable; the window is reflect-padded so patches of any size ≥ 4 work.
    """
    pad = window.shape[-1] // 2

    def blur(x: Tensor) -> Tensor:
        return F.conv2d(F.pad(x, (pad,) * 4, mode="reflect"), window)

    c1, c2 = SSIM_C1, SSIM_C2
    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    num = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
    den = (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    return (num / den).mean()


def _ramp(fraction: float, start: float, length: float) -> float:
    """0 before ``start``, then linear to 1 over ``length`` (a step when ``length`` is 0)."""
    if fraction < start:
        return 0.0
    return 1.0 if length <= 0 else min(1.0, (fraction - start) / length)


def noise_level(finest_details: Tensor) -> Tensor:
    """Per-frame noise σ in normalised pixels: RMS of the finest diagonal Haar band.

    ``finest_details`` ``(B, 1, 3, h, w)`` (the pyramid's finest level, where the scaled
    details are the orthonormal ones) → ``(B, 1, 1, 1)``. The diagonal band cancels locally
    linear signal, so it is mostly noise; its mean square is the frame's mean noise variance
    (Poisson–Gaussian noise included). The RMS, not a median: a photon-starved frame is mostly
    zeros and would have a median of 0. Sharp points leak in and raise σ, which only makes
    the noise-scaled model more cautious.
    """
    diagonal = finest_details[:, :, 2]
    sigma = diagonal.square().mean(dim=(-2, -1), keepdim=True).sqrt()
    return sigma.clamp_min(MIN_NOISE_LEVEL)


class _BridgeDenoiser(nn.Module):
    """``model(x_t, y, t) → x_t − x_0`` (:data:`live_restore.models.bridge.BridgeDenoiser`).

    Noise-scaled models also see ``log10 σ`` as a third input channel (FFDNet's noise map).
    """

    def __init__(self, config: MSCGMConfig) -> None:
        super().__init__()
        inputs = 3 if config.noise_scaled else 2
        self.unet = UNet(
            inputs, 1, config.bridge_channels, config.bridge_mults, time_embedding=True
        )
        self.objective = config.bridge_objective

    def forward(self, x_t: Tensor, y: Tensor, t: Tensor, sigma: Tensor | None = None) -> Tensor:
        channels = (x_t, y) if sigma is None else (x_t, y, log_sigma_channel(sigma, y))
        out = self.unet(torch.cat(channels, dim=1), t)
        # 'ysubx': the network predicts y − x_0, the same correction at every t; adding
        # x_t − y returns the bridge's x_t − x_0, so the L1 target and the sampler are unchanged.
        return out + (x_t - y) if self.objective == "ysubx" else out


class MSCGM(nn.Module):
    """The networks and the losses; everything in normalised units.

    Holds the Haar pyramid, the Brownian bridge, the bridge denoiser (on the coarsest LL), one
    :class:`DetailHead` per level (coarse → fine) and one conditional
    :class:`PatchDiscriminator` per level (training only; not saved with the model).
    """

    def __init__(self, config: MSCGMConfig) -> None:
        super().__init__()
        self.config = config
        self.pyramid = HaarPyramid(config.levels)
        self.bridge = BrownianBridge(config.num_timesteps, config.bridge_s)
        self.denoiser = _BridgeDenoiser(config)
        widths = [config.head_channels] * (config.levels - 1) + [config.finest_head_channels]
        mults = [config.head_mults] * (config.levels - 1) + [(1, 2)]
        self.heads = nn.ModuleList(
            DetailHead(
                w,
                mult,
                skip=config.detail_skip,
                noise_input=config.noise_scaled,
                noise_unit_details=config.noise_unit_details,
                smooth_prior=config.smooth_prior,
            )
            for w, mult in zip(widths, mults, strict=True)
        )
        self.discriminators = nn.ModuleList(
            PatchDiscriminator(2, config.disc_channels) for _ in range(config.levels)
        )
        self.register_buffer("ssim_window", _gaussian_window(), persistent=False)

    @property
    def multiple(self) -> int:
        """Frames are padded to a multiple of this: every U-Net (bridge at 1/2^J, head ``i`` at
        1/2^(J − i)) must see a size its own resolutions divide. All are powers of two."""
        levels = self.config.levels
        return max(
            self.pyramid.multiple * self.denoiser.unet.multiple,
            *(2 ** (levels - i) * head.multiple for i, head in enumerate(self.heads)),
        )

    def generator_parameters(self) -> list[nn.Parameter]:
        """Parameters of the bridge denoiser and the heads (the AdamW generator group)."""
        return [*self.denoiser.parameters(), *self.heads.parameters()]

    def discriminator_parameters(self) -> list[nn.Parameter]:
        """Parameters of the per-level critics."""
        return list(self.discriminators.parameters())

    def _check_pair(self, degraded: Tensor, target: Tensor) -> None:
        if degraded.ndim != 4 or degraded.shape[1] != 1 or degraded.shape != target.shape:
            raise ValueError(
                "degraded and target must share one shape (B, 1, H, W), got "
                f"{tuple(degraded.shape)} and {tuple(target.shape)}"
            )
        h, w = degraded.shape[-2:]
        if h % self.multiple or w % self.multiple:
            raise ValueError(f"patch size must be a multiple of {self.multiple}, got {h}×{w}")

    def _levels(self, x: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        """Block means at every level (coarse → fine, excluding the full image) and details."""
        p = self.pyramid(x)
        lls = [p.ll]
        for details in p.details[:-1]:
            lls.append(synthesise(lls[-1], details))
        return lls, p.details

    def _noise(self, y_details: list[Tensor]) -> Tensor | None:
        """The degraded frames' noise σ (:func:`noise_level`), or None when not noise-scaled."""
        return noise_level(y_details[-1]) if self.config.noise_scaled else None

    def _head_sigma(self, sigma: Tensor | None, i: int) -> Tensor | None:
        """Noise σ of head ``i``'s scaled details: halved per level coarser than the finest."""
        return None if sigma is None else sigma * 2.0 ** -(self.config.levels - 1 - i)

    def _residual_denoiser(self, y_ll: Tensor, sigma: Tensor) -> tuple[BridgeDenoiser, Tensor]:
        """The denoiser on ``u`` (its bridge end is ``u_T = 0``, so it is conditioned on the
        degraded LL itself) and σ_LL = σ / 2^J, the coarsest LL's noise."""

        def model(u_t: Tensor, _start: Tensor, t: Tensor) -> Tensor:
            return self.denoiser(u_t, y_ll, t, sigma)

        return model, sigma * 2.0**-self.config.levels

    def _bridge_loss(self, x_ll: Tensor, y_ll: Tensor, sigma: Tensor | None) -> Tensor:
        """Bridge training loss, in noise units for a noise-scaled model.

        Noise-scaled: the bridge runs on ``u = (x − y) / σ_LL`` (σ_LL = σ / 2^J, the coarsest
        LL's noise), from ``u_T = 0`` to ``u_0``, conditioned on ``y``. In camera terms that
        is the same Brownian bridge between ``x_0`` and ``y`` with a variance scale
        ``s σ_LL²`` per frame and the denoiser's output multiplied by ``σ_LL``: a bright
        frame's LL is corrected by a fraction of its own small noise, not by a fixed
        precision floor, and every frame weighs the same in the loss.
        """
        if sigma is None:
            return self.bridge.p_losses(
                self.denoiser, x_ll, y_ll, first_hop_fraction=self.config.first_hop_fraction
            )
        model, ll_sigma = self._residual_denoiser(y_ll, sigma)
        u_0 = (x_ll - y_ll) / ll_sigma
        return self.bridge.p_losses(
            model, u_0, torch.zeros_like(y_ll), first_hop_fraction=self.config.first_hop_fraction
        )

    def _bridge_sample(
        self,
        y_ll: Tensor,
        sigma: Tensor | None,
        steps: int,
        eta: float,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Restored coarsest LL from the degraded one (see :meth:`_bridge_loss`);
        differentiable unless called under inference mode."""
        if sigma is None:
            return self.bridge.reverse(self.denoiser, y_ll, steps, eta, generator)
        model, ll_sigma = self._residual_denoiser(y_ll, sigma)
        u = self.bridge.reverse(model, torch.zeros_like(y_ll), steps, eta, generator)
        return y_ll + ll_sigma * u

    def _augment_ll(self, ll: Tensor) -> Tensor:
        """Stage-1 robustness: random noise (σ ≤ ``ll_noise``) and, for ``ll_blur_fraction``
        of the batch, a [1 2 1]² blur, so the heads do not rely on a perfect conditioning LL."""
        batch = ll.shape[0]
        sigma = torch.rand(batch, 1, 1, 1, device=ll.device) * self.config.ll_noise
        k = torch.tensor([1.0, 2.0, 1.0], device=ll.device, dtype=ll.dtype)
        kernel = (k[:, None] * k[None, :] / 16.0)[None, None]
        blurred = F.conv2d(F.pad(ll, (1, 1, 1, 1), mode="replicate"), kernel)
        draw = torch.rand(batch, 1, 1, 1, device=ll.device)
        use_blur = (draw < self.config.ll_blur_fraction).to(ll.dtype)
        ll = use_blur * blurred + (1 - use_blur) * ll
        return ll + sigma * torch.randn_like(ll)

    def _conditioning(
        self,
        y_lls: list[Tensor],
        y_details: list[Tensor],
        x_lls: list[Tensor],
        sigma: Tensor | None,
        robust: bool,
    ) -> list[Tensor]:
        """The LL each head is conditioned on: augmented ground truth (stage 1) or the chain
        bridge sample → heads, computed without gradients (stage 2, no exposure bias)."""
        if not robust:
            return [self._augment_ll(ll) for ll in x_lls]
        with torch.no_grad():
            ll = self._bridge_sample(y_lls[0], sigma, self.config.steps, 0.0)
            ll = ll.clone()  # leave inference mode: the result feeds a graph below
            conds = []
            for i, head in enumerate(self.heads):
                conds.append(ll)
                if i + 1 < len(self.heads):
                    z = torch.randn_like(ll)
                    details = head(ll, y_lls[i], y_details[i], z, self._head_sigma(sigma, i))
                    ll = synthesise(ll, details)
        return conds

    def losses(
        self, degraded: Tensor, target: Tensor, *, step: int, total_steps: int
    ) -> dict[str, Tensor]:
        """Generator-side losses on a batch of normalised patches.

        Parameters
        ----------
        degraded, target
            ``(B, 1, H, W)`` float32, normalised (:mod:`~live_restore.models.normalisation`);
            ``H``, ``W`` multiples of :attr:`multiple`.
        step, total_steps
            Position in training: sets the adversarial warm-up and the stage-2 switch.

        Returns
        -------
        dict
            ``"loss"`` (the total to minimise) plus its parts, each a 0-d tensor: ``bridge``
            (L1 on ``x_t − x_0``) and per level ``l1_k``, ``ssim_k`` and ``adv_k``, computed on
            the image reconstructed at that level from the ground-truth LL and the generated
            details.
        """
        self._check_pair(degraded, target)
        cfg = self.config
        fraction = step / max(total_steps, 1)
        x_lls, x_details = self._levels(target)
        y_lls, y_details = self._levels(degraded)
        sigma = self._noise(y_details)
        out: dict[str, Tensor] = {"bridge": self._bridge_loss(x_lls[0], y_lls[0], sigma)}
        alpha = cfg.adv_weight * _ramp(fraction, cfg.adv_start, cfg.adv_ramp)
        conds = self._conditioning(y_lls, y_details, x_lls, sigma, fraction >= cfg.robust_start)
        # Noise-scaled: each frame's L1 weighs 1/σ^p (mean weight 1); at p = 1 the error counts
        # in units of its own noise and the bright frames are not drowned by the dim ones.
        weight = 1.0
        if sigma is not None:
            inverse = sigma ** -cfg.noise_weight
            weight = inverse / inverse.mean()
        total = out["bridge"]
        for i, head in enumerate(self.heads):
            z = torch.randn_like(conds[i])
            details = head(conds[i], y_lls[i], y_details[i], z, self._head_sigma(sigma, i))
            fake = synthesise(x_lls[i], details)
            real = synthesise(x_lls[i], x_details[i])
            l1 = (weight * (fake - real).abs()).mean()
            ssim_loss = 1.0 - ssim(fake, real, self.ssim_window)
            out[f"l1_{i}"], out[f"ssim_{i}"] = l1, ssim_loss
            total = total + l1 + cfg.ssim_weight * ssim_loss
            if alpha > 0:
                y_up = synthesise(y_lls[i], y_details[i])
                critic = self.discriminators[i]
                critic.requires_grad_(False)
                adv = -critic(torch.cat((fake, y_up), dim=1)).mean()
                critic.requires_grad_(True)
                out[f"adv_{i}"] = adv
                total = total + alpha * adv
        out["loss"] = total
        return out

    def discriminator_loss(
        self, degraded: Tensor, target: Tensor, *, step: int, total_steps: int
    ) -> dict[str, Tensor] | None:
        """Hinge loss of the per-level critics, or None before the adversarial warm-up ends.

        Fakes are regenerated without gradients from the ground-truth LL; inputs as for
        :meth:`losses`.
        """
        cfg = self.config
        if cfg.adv_weight <= 0 or step / max(total_steps, 1) < cfg.adv_start:
            return None
        self._check_pair(degraded, target)
        x_lls, x_details = self._levels(target)
        y_lls, y_details = self._levels(degraded)
        sigma = self._noise(y_details)
        out: dict[str, Tensor] = {}
        total = torch.zeros((), device=degraded.device)
        for i, head in enumerate(self.heads):
            with torch.no_grad():
                z = torch.randn_like(x_lls[i])
                details = head(x_lls[i], y_lls[i], y_details[i], z, self._head_sigma(sigma, i))
                fake = synthesise(x_lls[i], details)
            real = synthesise(x_lls[i], x_details[i])
            y_up = synthesise(y_lls[i], y_details[i])
            critic = self.discriminators[i]
            d_real = critic(torch.cat((real, y_up), dim=1))
            d_fake = critic(torch.cat((fake, y_up), dim=1))
            loss = F.relu(1 - d_real).mean() + F.relu(1 + d_fake).mean()
            out[f"d_{i}"] = loss
            total = total + loss
        out["loss"] = total
        return out

    @torch.inference_mode()
    def restore_normalised(
        self,
        y_norm: Tensor,
        steps: int | None = None,
        eta: float | None = None,
        generator: torch.Generator | None = None,
        estimate: Tensor | None = None,
        sigma: float | None = None,
    ) -> Tensor:
        """Restore normalised frames: bridge on the coarsest LL, then the heads coarse → fine.

        Parameters
        ----------
        y_norm
            ``(B, 1, H, W)`` float, normalised degraded frames; ``H``, ``W`` multiples of
            :attr:`multiple` (pad first).
        steps, eta
            Bridge hops and stochasticity; the config's defaults when None.
        generator
            Source of all sampling noise (bridge and the heads' ``z``), on ``y_norm``'s device.
        estimate
            A restoration of the same frames, shaped like ``y_norm``: the bridge is skipped and
            the heads start from its coarsest LL on this call's grid (the restorer's extra
            detail passes, :class:`~live_restore.models.inference.CycleSpin`).
        sigma
            The frames' noise level from a detector calibration, in the units of
            :func:`noise_level` (:meth:`~live_restore.models.inference.Inferer.calibrated_sigma`),
            instead of reading it off the frames; a model that is not noise-scaled refuses it.

        Returns
        -------
        Tensor
            ``(B, 1, H, W)`` float, same dtype as ``y_norm``, normalised units, not clamped.
        """
        return self._restore(y_norm, steps, eta, generator, estimate, sigma)

    def restore_differentiable(
        self, y_norm: Tensor, generator: torch.Generator | None = None
    ) -> Tensor:
        """:meth:`restore_normalised` with gradients (the config's hops and ``eta``): the
        prediction that self-supervised fine-tuning (:mod:`live_restore.adapt.noisy`) trains."""
        return self._restore(y_norm, None, None, generator, None, None)

    def _restore(
        self,
        y_norm: Tensor,
        steps: int | None,
        eta: float | None,
        generator: torch.Generator | None,
        estimate: Tensor | None,
        calibrated_sigma: float | None,
    ) -> Tensor:
        steps = self.config.steps if steps is None else steps
        eta = self.config.eta if eta is None else eta
        y_lls, y_details = self._levels(y_norm)
        if calibrated_sigma is None:
            sigma = self._noise(y_details)
        elif not self.config.noise_scaled:
            raise ValueError("this MSCGM model is not noise-scaled: it takes no calibrated noise")
        else:
            sigma = torch.full_like(y_lls[0][:, :1, :1, :1], float(calibrated_sigma))
            sigma = sigma.clamp_min(MIN_NOISE_LEVEL)
        if estimate is None:
            ll = self._bridge_sample(y_lls[0], sigma, steps, eta, generator)
        else:
            ll = self.pyramid(estimate).ll
        for i, head in enumerate(self.heads):
            z = torch.randn(ll.shape, generator=generator, device=ll.device, dtype=ll.dtype)
            ll = synthesise(ll, head(ll, y_lls[i], y_details[i], z, self._head_sigma(sigma, i)))
        return ll

    def export(self, stem: Path, provenance: dict[str, object] | None = None) -> Path:
        """Write ``stem.safetensors`` + ``stem.json`` (see :meth:`MSCGMRestorer.save`)."""
        return MSCGMRestorer(self, provenance=provenance).save(stem)


# ---------------------------------------------------------------------- the restorer


class MSCGMRestorer(TrainedRestorer):
    """:class:`live_restore.models.protocol.Restorer` over an :class:`MSCGM` model
    (constructor: :class:`~live_restore.models.trained.TrainedRestorer`).

    Every draw is cycle-spun on the pyramid's 2^J grid
    (:class:`~live_restore.models.inference.CycleSpin`): the pyramid is not shift-invariant,
    so its errors sit on that grid, the same in every frame, and averaging draws over offsets
    and orientations removes them. The networks were trained on flipped and turned crops, so
    every orientation is an equally good draw. Extra detail passes rerun only the heads on
    other offsets, starting from the first pass's LL: the bridge runs once per draw.
    """

    name = "mscgm"
    format = FORMAT
    kind = "MSCGM"
    config_type = MSCGMConfig
    model_type = MSCGM

    @staticmethod
    def _weights(model: nn.Module) -> dict[str, Tensor]:
        """Inference weights only: the critics are training-time state."""
        return {
            k: v for k, v in model.state_dict().items() if not k.startswith("discriminators.")
        }

    def _summary(self) -> dict[str, object]:
        return {"levels": self.config.levels, "steps": self.config.steps}

    @property
    def takes_calibration(self) -> bool:
        return self.config.noise_scaled

    def restore(
        self,
        batch: np.ndarray,
        *,
        samples: int = 1,
        seed: int | None = None,
        steps: int | None = None,
        eta: float | None = None,
        detail_passes: int | None = None,
    ) -> RestoreResult:
        """Restore ``batch`` (N, Y, X) or (Y, X), any numeric dtype, in camera units.

        Every draw restores the frame at a random offset and orientation of the Haar grid, its
        detail heads on ``detail_passes`` offsets (the config's when None). ``samples > 1``
        draws that many restorations (with ``sample_eta`` unless ``eta`` is given) and returns
        their mean and standard deviation; ``seed`` makes the result reproducible; ``steps``
        overrides the bridge hops. Output float32 (N, Y, X) in the input frames' camera units.
        """
        passes = self.config.detail_passes if detail_passes is None else detail_passes
        spin = CycleSpin(self.model.pyramid.multiple, passes)
        if eta is None:
            eta = self.config.eta if samples == 1 else self.config.sample_eta

        def draw(y: Tensor, generator: torch.Generator, estimate: Tensor | None,
                 sigma: float | None) -> Tensor:
            return self.model.restore_normalised(y, steps, eta, generator, estimate, sigma)

        return self.inferer.restore(
            batch, draw, samples=samples, seed=seed, spin=spin, noise=self.noise
        )

    def consistency(self, raw: np.ndarray, restored: np.ndarray) -> float:
        """Data-consistency score of one restored frame against its raw frame (camera units),
        under the task's forward model (:func:`~live_restore.models.consistency.consistency_score`).
        """
        return consistency_score(
            raw, restored, self.config.forward_model, self.config.blur_sigma_px
        )
