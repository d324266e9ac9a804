"""MSCGM: a Brownian bridge on the coarsest Haar LL band, conditional GAN heads on the details.

Pipeline (notes/mscgm.md §2): the percentile-normalised degraded frame is decomposed into a
J-level Haar pyramid; a Brownian bridge maps its coarsest LL (block means) to the target's, in
a few deterministic DDIM-style hops; then, coarse to fine, one light :class:`DetailHead` per
level generates the three detail bands from (restored LL, degraded LL, degraded details, z),
and one synthesis step doubles the resolution. The result is mapped back through the input's
own normalisation, so restored frames are in the degraded frame's camera units.

Normalisation (used identically by :class:`live_restore.training.loop.PairDataset` and
:meth:`MSCGMRestorer.restore`):

- degraded ``y``: ``(y − p_lo) / (p_hi − p_lo)`` with its own ``pmin``/``pmax`` percentiles
  (CARE: 0.2 / 99.8), no clipping;
- target ``x``: normalised by its own percentiles, then affinely matched to the degraded one,
  ``a x_n + b`` with ``(a, b)`` the least-squares fit of ``y_n ≈ a F(x_n) + b`` where ``F`` is
  the task's forward model (identity, or the confocal blur). Noise is zero-mean and independent
  of ``x``, so the fit is unbiased: the restored frame carries the degraded frame's background
  and flux, which is what the data-consistency score and the inverse normalisation need.

Scales: the pyramid's LL is the 2^J block mean and the details are scaled to [-1, 1]
(:class:`live_restore.models.wavelets.HaarPyramid`); in those units one synthesis step is
``haar_idwt2(2 · LL, details)`` at every level (:func:`synthesise`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import numpy as np
import scipy.ndimage
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import Tensor, nn

from live_restore import __version__
from live_restore.metrics import fit_affine
from live_restore.models.bridge import BridgeDenoiser, BrownianBridge
from live_restore.models.files import load_model_files, prepare_model, save_model_files
from live_restore.models.networks import DetailHead, PatchDiscriminator, UNet, log_sigma_channel
from live_restore.models.noise import estimate_noise
from live_restore.models.restorer import RestoreResult, check_batch
from live_restore.models.wavelets import HaarPyramid, crop, haar_idwt2, pad_to_multiple

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "MSCGM",
    "MSCGMConfig",
    "MSCGMRestorer",
    "apply_forward_model",
    "match_target",
    "noise_level",
    "normalise_frame",
    "synthesise",
]

FORMAT = "live_restore.mscgm"
FORMAT_VERSION = 1

#: Default blur for ``confocal_blur``: the simulator's confocal PSF (FWHM ≈ 233 nm, σ ≈ 4.0 px
#: at 25 nm pixels) against its STED PSF (σ ≈ 0.7–1.4 px): √(4.0² − 1.1²) ≈ 3.8 px.
CONFOCAL_BLUR_SIGMA_PX = 3.8


_CONSISTENCY_SIGMA_PX = 1.5


def _kernel_energy(sigma: float) -> float:
    """``Σ G_σ²`` of scipy's Gaussian filter: the variance it leaves of unit white noise."""
    delta = np.zeros((8 * int(sigma + 1) + 1,) * 2)
    delta[delta.shape[0] // 2, delta.shape[1] // 2] = 1.0
    return float((scipy.ndimage.gaussian_filter(delta, sigma) ** 2).sum())


_KERNEL_ENERGY = _kernel_energy(_CONSISTENCY_SIGMA_PX)


class MSCGMConfig(BaseModel):
    """Everything needed to rebuild an MSCGM model; dumped into ``NAME.json``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    task: str = Field(min_length=1, description="training task, e.g. 'sted_denoise'")
    levels: int = Field(2, ge=1, le=4, description="Haar levels J; the bridge runs at 1/2^J")
    num_timesteps: int = Field(1000, ge=1, description="bridge T (training cost independent)")
    bridge_s: float = Field(0.1, gt=0, description="bridge variance scale (for_task)")
    bridge_objective: Literal["grad", "ysubx"] = Field(
        "grad", description="what the bridge network predicts: x_t − x_0 or y − x_0 (BBDM names)"
    )
    first_hop_fraction: float = Field(
        0.0, ge=0, le=1, description="share of bridge training draws at t = T (the first hop)"
    )
    steps: int = Field(2, ge=1, description="default sampling hops")
    eta: float = Field(0.0, ge=0, le=1, description="stochasticity for a single sample")
    sample_eta: float = Field(
        0.0, ge=0, le=1, description="stochasticity when samples > 1 (draws differ by offset, turn)"
    )
    detail_passes: int = Field(
        1, ge=1, description="head passes per draw, each on another Haar grid offset, averaged"
    )
    bridge_channels: int = Field(16, ge=1, description="bridge U-Net width at full LL size")
    bridge_mults: tuple[int, ...] = (1, 2, 4, 8)
    head_channels: int = Field(16, ge=1, description="width of every head but the finest")
    finest_head_channels: int = Field(8, ge=1, description="the finest head dominates time")
    head_mults: tuple[int, ...] = Field(
        (1, 2), description="U-Net resolutions of every head but the finest (which keeps 1, 2)"
    )
    detail_skip: bool = Field(False, description="heads gate the degraded details through")
    noise_scaled: bool = Field(
        False, description="bridge and head corrections in units of the frame's noise level"
    )
    noise_weight: float = Field(
        1.0, ge=0, le=1, description="noise-scaled: frames weigh 1/σ^p in the heads' L1"
    )
    noise_unit_details: bool = Field(
        False, description="noise-scaled heads see the degraded details divided by σ"
    )
    smooth_prior: bool = Field(
        False, description="heads start from the details of the bilinearly upsampled LL"
    )
    disc_channels: int = Field(16, ge=1)
    pmin: float = Field(0.2, ge=0, lt=100, description="input percentile mapped to 0")
    pmax: float = Field(99.8, gt=0, le=100, description="input percentile mapped to 1")
    forward_model: Literal["identity", "confocal_blur"] = "identity"
    blur_sigma_px: float = Field(0.0, ge=0, description="Gaussian σ of confocal_blur, pixels")
    ssim_weight: float = Field(0.2, ge=0, description="weight of 1 − SSIM per head")
    adv_weight: float = Field(0.01, ge=0, description="adversarial weight after warm-up")
    adv_start: float = Field(0.3, ge=0, le=1, description="fraction of steps before the GAN")
    adv_ramp: float = Field(0.2, ge=0, le=1, description="fraction over which α ramps up")
    robust_start: float = Field(0.8, ge=0, le=1, description="heads see bridge LL after this")
    ll_noise: float = Field(0.02, ge=0, description="max σ of conditioning-LL noise (stage 1)")
    ll_blur_fraction: float = Field(
        0.5, ge=0, le=1, description="share of stage-1 conditioning LLs blurred by [1 2 1]²"
    )
    seed: int | None = None
    preset: str | None = None
    steps_trained: int = Field(0, ge=0)
    package_version: str = __version__

    @model_validator(mode="after")
    def _check(self) -> MSCGMConfig:
        if self.pmin >= self.pmax:
            raise ValueError(f"pmin must be below pmax, got {self.pmin} and {self.pmax}")
        if self.forward_model == "confocal_blur" and self.blur_sigma_px <= 0:
            raise ValueError(
                f"forward_model 'confocal_blur' needs blur_sigma_px > 0, got {self.blur_sigma_px}"
            )
        if self.noise_scaled and not self.detail_skip:
            raise ValueError("noise_scaled needs detail_skip: it scales the heads' corrections")
        if self.bridge_objective == "ysubx" and self.noise_scaled:
            raise ValueError(
                "bridge_objective 'ysubx' needs noise_scaled off: that bridge ends at u_T = 0, "
                "not at the degraded LL the denoiser is conditioned on"
            )
        if self.noise_unit_details and not self.noise_scaled:
            raise ValueError("noise_unit_details needs noise_scaled: it divides details by σ")
        if self.detail_passes > 4**self.levels:
            raise ValueError(
                f"detail_passes must not exceed the {4**self.levels} Haar grid offsets of "
                f"{self.levels} level(s), got {self.detail_passes}"
            )
        for name in ("bridge_mults", "head_mults"):
            mults = getattr(self, name)
            if not mults or min(mults) < 1:
                raise ValueError(f"{name} must be positive integers, got {mults}")
        return self

    @classmethod
    def for_task(cls, task: str, **kwargs: object) -> MSCGMConfig:
        """Config with the task's defaults filled in; explicit ``kwargs`` win.

        Each default was chosen by A/B runs at the quick preset, scored on 10 validation
        frames (seeds 5000–5009) or, where marked "held-out", on 8 pairs of test seed 10 000,
        a set that contains the quick benchmark's 4 frames (PSNR in dB; band errors are MSE
        ×10⁴ in normalised units).

        confocal→STED, deblurring (the LL must move far more than the noise):

        - **one Haar level** (J = 1): the bridge restores the half-resolution LL and one
          generator adds its details. With J = 2 each network's error compounded the last
          (a 1/4-resolution LL error of 11.9 against CARE's 8.5, level-2 details 23.7 against
          20.3), and CARE led by 1.15 dB on 10 validation frames (``make_pairs(task, 10,
          5000)``, plain PSNR: 31.54 against 32.69); at J = 1, with the same bridge and
          finest head, 32.54, at CARE's parameter count (1.8 M against 1.7 M). Tried at J = 2
          and within ±0.15 dB of it: 128² crops in batches of 2, 256 training pairs instead
          of 48, an end-to-end L1 on the chain's image in the bridge-LL stage, and a bridge
          that also sees the finer degraded bands;
        - the confocal-blur forward model and a bridge 32 wide with 3 resolutions (the same
          parameters as the default 16 × 4; bridge-only probe, LL PSNR 36.9 → 38.3);
        - the bridge network predicts ``y − x_0`` (``ysubx``) and half of its training draws
          are at t = T, the hop that sees ``y`` alone: the LL error after 2 hops fell from
          20.2 to 13.1 (CARE's LL: 10.1). One hop by default: it scored as two (32.66 against
          32.61) and saves 46 ms of a 512² frame;
        - the head sees the conditioning LL un-augmented (``ll_noise`` and
          ``ll_blur_fraction`` 0): augmented, the J = 2 coarse head's error was the same fed
          the bridge's, CARE's or the true LL, so it had learnt to ignore it. The bridge-LL
          stage still guards against exposure bias;
        - a plain head, no skip gate (a confocal frame's details are blurred, not noisy
          signal: the gate lost 0.16 dB), 8 wide (16 → 8 saved 50 ms of a 512² frame), and
          no SSIM term (at J = 2 the coarse head's level-2 error fell 25 → 22 without it).
        - four detail passes per draw, one per Haar grid offset (``detail_passes``,
          :meth:`MSCGMRestorer._restore_draw`), chosen on 8 validation frames of 512²
          (``make_pairs(task, 8, 5000, 512)``, shipped model, one draw each): the FRC of
          restorations of two noise realisations fell 68.9 → 63.4 / 59.3 / 57.6 nm for
          K = 1 → 2 / 3 / 4 (target realisations: 56.6 nm), PSNR-affine 33.60 → 33.63. The
          bridge runs once, so a 512² frame took 158 → 213 ms on 2 threads.

        Denoising tasks: heads that gate the degraded details through (:class:`DetailHead`
        ``skip``) and a finest head 16 wide (on ``denoise``: 27.32 plain, 28.31 with both);
        two bridge hops, which score as four.

        ``denoise`` frames span 1–3 000 photons: in normalised units a bright frame's noise
        is ~0.003 and a dim one's ~0.3, and unscaled, the networks' precision floor and a loss
        dominated by the dim frames made bright frames worse than raw. So it is noise-scaled
        (:meth:`MSCGM._bridge_loss`): the bridge runs on the LL's difference from the degraded
        one in units of the frame's own noise σ (s = 1 in those units, BBDM's value), the
        heads' corrections are multiplied by σ, both see ``log10 σ``, each frame's L1 weighs
        1/σ, and the heads see the degraded details divided by σ and are 32/24 wide
        (held-out PSNR-affine 32.33 → 34.76). Its heads start from the smooth details of the
        restored LL (``smooth_prior``): 34.76 → 35.47, the dose sweep's 10 % confocal frames
        40.08 → 41.61.

        ``sted_denoise`` frames are all photon-starved (0.2–13 photons); noise-scaled, its
        validation SSIM fell 0.932 → 0.875, so it stays unscaled with s = 0.001: at s = 0.1
        the bridge had to see a clean LL that differs from the input by ~0.01 through bridge
        noise of σ ≈ 0.2 (bridge-only probe on ``denoise``, LL PSNR 33.50 at s = 0.1, 36.54 at
        0.001). confocal→STED keeps s = 0.1: its LL must change by far more than the noise.
        """
        if task == "confocal2sted":
            defaults: dict[str, object] = {
                "forward_model": "confocal_blur",
                "blur_sigma_px": CONFOCAL_BLUR_SIGMA_PX,
                "bridge_channels": 32,
                "bridge_mults": (1, 2, 4),
                "bridge_objective": "ysubx",
                "first_hop_fraction": 0.5,
                "levels": 1,
                "finest_head_channels": 8,
                "ssim_weight": 0.0,
                "ll_noise": 0.0,
                "steps": 1,
                "ll_blur_fraction": 0.0,
                "detail_passes": 4,
            }
        else:
            defaults = {"detail_skip": True, "finest_head_channels": 16}
            if task == "denoise":
                defaults |= {
                    "noise_scaled": True,
                    "bridge_s": 1.0,
                    "noise_unit_details": True,
                    "smooth_prior": True,
                    "head_channels": 32,
                    "finest_head_channels": 24,
                }
            else:
                defaults["bridge_s"] = 0.001
        return cls(task=task, **(defaults | kwargs))


# ---------------------------------------------------------------------- normalisation (numpy)


def normalise_frame(frame: np.ndarray, pmin: float, pmax: float) -> tuple[np.ndarray, float, float]:
    """Map the ``pmin``/``pmax`` percentiles of a ``(Y, X)`` frame to 0/1, without clipping.

    Returns the float32 normalised frame, the offset ``lo`` and the ``scale`` such that
    ``frame = normalised * scale + lo`` (scale 1 for a flat frame).
    """
    lo, hi = np.percentile(frame, [pmin, pmax])
    scale = float(hi - lo) if hi > lo else 1.0
    return ((frame - lo) / scale).astype(np.float32), float(lo), scale


def apply_forward_model(frame: np.ndarray, kind: str, sigma_px: float = 0.0) -> np.ndarray:
    """The task's forward model on a ``(Y, X)`` frame: identity or a Gaussian blur (reflect)."""
    if kind == "identity":
        return np.asarray(frame, dtype=np.float64)
    if kind == "confocal_blur":
        return scipy.ndimage.gaussian_filter(
            np.asarray(frame, np.float64), sigma_px, mode="reflect"
        )
    raise ValueError(f"unknown forward model {kind!r}; expected 'identity' or 'confocal_blur'")


def match_target(degraded_n: np.ndarray, target_n: np.ndarray, config: MSCGMConfig) -> np.ndarray:
    """Affinely map a normalised target onto the normalised degraded frame's photometry.

    ``a target_n + b`` with the least-squares ``(a, b)`` of ``degraded_n ≈ a F(target_n) + b``;
    falls back to the identity when the fit is degenerate (flat target or ``a <= 0``).
    """
    forward = apply_forward_model(target_n, config.forward_model, config.blur_sigma_px).ravel()
    fc = forward - forward.mean()
    var = float(fc @ fc)
    a = float(fc @ (degraded_n.ravel() - degraded_n.mean())) / var if var > 0 else 0.0
    if not a > 0:
        return target_n.astype(np.float32)
    b = float(degraded_n.mean()) - a * float(forward.mean())
    return (a * target_n + b).astype(np.float32)


# ---------------------------------------------------------------------- torch helpers


def synthesise(ll: Tensor, details: Tensor) -> Tensor:
    """One Haar synthesis step in the pyramid's scaled units.

    ``ll`` ``(B, C, h, w)`` block means and ``details`` ``(B, C, 3, h, w)`` scaled details at
    one level → ``(B, C, 2h, 2w)`` block means one level finer. The scaled LL at level k is
    ``2^-k`` times the raw one and the scaled details ``2^-(k-1)``, so the raw synthesis
    ``idwt(2^k LL, 2^(k-1) D) = 2^(k-1) LL'`` reduces to ``idwt(2 LL, D)`` at every level.
    """
    return haar_idwt2(2.0 * ll, details)


def _gaussian_window(size: int = 7, sigma: float = 1.5) -> Tensor:
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

    c1, c2 = 0.01**2, 0.03**2
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


#: Floor of :func:`noise_level`, normalised units: a noise-free frame must not divide by zero.
MIN_NOISE_LEVEL = 1e-3


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
        """Restored coarsest LL from the degraded one (see :meth:`_bridge_loss`)."""
        if sigma is None:
            return self.bridge.sample(self.denoiser, y_ll, steps, eta, generator)
        model, ll_sigma = self._residual_denoiser(y_ll, sigma)
        u = self.bridge.sample(model, torch.zeros_like(y_ll), steps, eta, generator)
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
            ``(B, 1, H, W)`` float32, normalised (module docstring); ``H``, ``W`` multiples of
            :attr:`multiple`.
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
            detail passes, :meth:`MSCGMRestorer._restore_draw`).

        Returns
        -------
        Tensor
            ``(B, 1, H, W)`` float, same dtype as ``y_norm``, normalised units, not clamped.
        """
        steps = self.config.steps if steps is None else steps
        eta = self.config.eta if eta is None else eta
        y_lls, y_details = self._levels(y_norm)
        sigma = self._noise(y_details)
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


def _weights(model: MSCGM) -> dict[str, Tensor]:
    """Inference weights only: the critics are training-time state."""
    return {
        k: v.detach().contiguous().cpu()
        for k, v in model.state_dict().items()
        if not k.startswith("discriminators.")
    }


def _tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    if size <= tile:
        return [0]
    starts = list(range(0, size - tile, tile - overlap))
    return [*starts, size - tile]


def _blend_window(h: int, w: int, overlap: int) -> np.ndarray:
    """Weights rising linearly over ``overlap`` pixels at every tile edge (never exactly 0)."""

    def ramp(n: int) -> np.ndarray:
        r = np.ones(n)
        k = min(overlap, n // 2)
        if k > 0:
            edge = (np.arange(k) + 1) / (k + 1)
            r[:k], r[n - k :] = edge, edge[::-1]
        return r

    return np.outer(ramp(h), ramp(w))


class MSCGMRestorer:
    """:class:`live_restore.models.restorer.Restorer` over an :class:`MSCGM` model.

    Frames enter in camera units; each is normalised by its own percentiles, restored (tiled
    with overlap above ``max_tile_pixels``), and mapped back through the same normalisation.

    Parameters
    ----------
    model
        A trained model (put in eval mode here).
    device
        ``"cuda"`` when available and None, else ``"cpu"``; bf16 autocast on CUDA only.
    provenance
        Extra config fields (seed, preset, steps_trained) recorded by :meth:`save`.
    max_tile_pixels
        Frames larger than this are restored in square tiles of side ``√max_tile_pixels``.
    overlap
        Tile overlap in pixels, blended linearly.
    """

    name = "mscgm"

    def __init__(
        self,
        model: MSCGM,
        device: str | None = None,
        provenance: dict[str, object] | None = None,
        max_tile_pixels: int = 1024 * 1024,
        overlap: int = 32,
        version: str | None = None,
    ) -> None:
        self.model, self.device = prepare_model(model, MSCGMConfig, device, provenance)
        self.config = model.config
        tile = math.isqrt(int(max_tile_pixels))
        if tile < model.multiple or overlap < 0 or 2 * overlap >= tile:
            raise ValueError(
                f"max_tile_pixels={max_tile_pixels} and overlap={overlap} leave no usable tile "
                f"(need a side ≥ {model.multiple} and more than twice the overlap)"
            )
        self.tile, self.overlap = tile, overlap
        self.version = version or "unsaved"

    # ------------------------------------------------------------------ restore

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

        Every draw restores the frame at a random offset of the Haar grid (cycle spinning,
        :meth:`_restore_draw`), its detail heads on ``detail_passes`` offsets (the config's
        when None). ``samples > 1`` draws that many restorations (with ``sample_eta`` unless
        ``eta`` is given) and returns their mean and standard deviation; ``seed`` makes the
        result reproducible. Output float32 (N, Y, X) in the input frames' camera units.
        """
        frames = check_batch(batch)
        if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
            raise ValueError(f"samples must be an integer >= 1, got {samples!r}")
        passes = self.config.detail_passes if detail_passes is None else detail_passes
        offsets = self.model.pyramid.multiple**2
        if isinstance(passes, bool) or not isinstance(passes, int) or not 1 <= passes <= offsets:
            raise ValueError(
                f"detail_passes must be an integer from 1 to {offsets} (the Haar grid "
                f"offsets), got {passes!r}"
            )
        if eta is None:
            eta = self.config.eta if samples == 1 else self.config.sample_eta
        generator = torch.Generator(self.device)
        if seed is None:
            generator.seed()
        else:
            generator.manual_seed(int(seed))
        mean = np.empty_like(frames)
        std = np.empty_like(frames) if samples > 1 else None
        for n, frame in enumerate(frames):
            norm, lo, scale = normalise_frame(frame, self.config.pmin, self.config.pmax)
            draws = np.stack(
                [self._restore_draw(norm, steps, eta, passes, generator) for _ in range(samples)]
            )
            mean[n] = draws.mean(axis=0) * scale + lo
            if std is not None:
                std[n] = draws.std(axis=0) * scale
        return RestoreResult(mean=mean, std=std)

    def _restore_draw(
        self,
        norm: np.ndarray,
        steps: int | None,
        eta: float,
        passes: int,
        generator: torch.Generator,
    ) -> np.ndarray:
        """One draw, restored at a random offset ``(dy, dx) < 2^J`` of the Haar grid and in a
        random one of the 8 flips and quarter turns of the frame, undone afterwards; with
        ``passes`` K > 1, the heads run again on K − 1 other offsets and the K images
        are averaged.

        The pyramid is not shift-invariant: the errors it leaves sit on its 2^J-pixel grid,
        the same in every frame. Restorations of two noise realisations then agree at those
        frequencies and their FRC reaches Nyquist whatever the true resolution; a mean over
        offsets (Coifman–Donoho cycle spinning) averages the grid errors out instead. The
        networks were trained on flipped and turned crops, so the orientations are equally
        good draws whose errors differ: on ``confocal2sted`` validation (10 frames), the mean
        of 4 draws gained 0.23 dB over one with offsets alone and 0.31 dB with both.

        The extra passes cycle-spin the detail heads within one draw: each starts from the
        first pass's coarsest LL on its own grid, so the bridge (nine tenths of a
        ``confocal2sted`` frame) runs once. The frame is padded to whole grid blocks before
        it is turned, so every orientation keeps the offset drawn.
        """
        block = self.model.pyramid.multiple
        dy, dx, turns, flip = (
            int(torch.randint(n, (1,), generator=generator, device=self.device))
            for n in (block, block, 4, 2)
        )
        offsets = [(dy, dx)]
        if passes > 1:
            others = [(y, x) for y in range(block) for x in range(block) if (y, x) != (dy, dx)]
            order = torch.randperm(len(others), generator=generator, device=self.device)
            offsets += [others[int(k)] for k in order[: passes - 1]]
        h, w = norm.shape

        def view(frame: np.ndarray, oy: int, ox: int) -> np.ndarray:
            pad = ((oy, -(h + oy) % block), (ox, -(w + ox) % block))
            shifted = np.pad(frame, pad, mode="symmetric")
            return np.rot90(shifted[:, ::-1] if flip else shifted, turns)

        def unview(frame: np.ndarray, oy: int, ox: int) -> np.ndarray:
            out = np.rot90(frame, -turns)
            return (out[:, ::-1] if flip else out)[oy : oy + h, ox : ox + w]

        images: list[np.ndarray] = []
        for oy, ox in offsets:  # the first pass runs the bridge, the others start from it
            estimate = view(images[0], oy, ox) if images else None
            restored = self._restore_frame(view(norm, oy, ox), estimate, steps, eta, generator)
            images.append(unview(restored, oy, ox))
        return np.mean(images, axis=0, dtype=np.float32) if len(images) > 1 else images[0]

    def _restore_frame(
        self,
        norm: np.ndarray,
        estimate: np.ndarray | None,
        steps: int | None,
        eta: float,
        generator: torch.Generator,
    ) -> np.ndarray:
        """One normalised ``(Y, X)`` frame, tiled with linear blending when it is large;
        ``estimate`` (or None) is passed on to :meth:`MSCGM.restore_normalised`."""
        h, w = norm.shape
        if h * w <= self.tile * self.tile:
            return self._restore_tile(norm, estimate, steps, eta, generator)
        out = np.zeros((h, w), np.float64)
        weight = np.zeros((h, w), np.float64)
        th, tw = min(h, self.tile), min(w, self.tile)
        window = _blend_window(th, tw, self.overlap)
        for top in _tile_starts(h, th, self.overlap):
            for left in _tile_starts(w, tw, self.overlap):
                rows, cols = slice(top, top + th), slice(left, left + tw)
                part = None if estimate is None else estimate[rows, cols]
                out[rows, cols] += window * self._restore_tile(
                    norm[rows, cols], part, steps, eta, generator
                )
                weight[rows, cols] += window
        return (out / weight).astype(np.float32)

    def _restore_tile(
        self,
        norm: np.ndarray,
        estimate: np.ndarray | None,
        steps: int | None,
        eta: float,
        generator: torch.Generator,
    ) -> np.ndarray:
        multiple = self.model.multiple

        def tensor(frame: np.ndarray) -> tuple[Tensor, tuple[int, int]]:
            x = torch.from_numpy(np.ascontiguousarray(frame))[None, None].to(self.device)
            # Frames smaller than two multiples would shrink the U-Nets' inner maps to 1 pixel,
            # where GroupNorm has nothing to normalise.
            return pad_to_multiple(x, multiple, min_size=2 * multiple)

        x, pad = tensor(norm)
        prior = None if estimate is None else tensor(estimate)[0]
        with torch.autocast("cuda", torch.bfloat16, enabled=self.device.type == "cuda"):
            y = self.model.restore_normalised(x, steps, eta, generator, prior)
        return crop(y.float(), pad)[0, 0].cpu().numpy()

    # ------------------------------------------------------------------ consistency

    def consistency(self, raw: np.ndarray, restored: np.ndarray) -> float:
        """Data-consistency score of one restored frame against its raw frame (camera units).

        The raw frame should be the restored one seen through the task's forward model ``F``
        (affinely fitted to it: photometry is not structure) plus Poisson–Gaussian noise.
        With ``v = gain · F(restored) + floor`` estimated from the raw frame
        (:func:`live_restore.models.noise.estimate_noise`, floored at a quarter of ``gain``), a
        Gaussian ``G`` (σ = 1.5 px) and ``E(a) = mean((G * (a / √v))²) / Σ G²`` (white noise
        gives 1), the score is

            ``(E(raw − F(restored)) − 1) / max(E(raw − mean(raw)) − 1, 1)``:

        the residual's energy beyond noise, as a fraction of the raw frame's own structure
        beyond noise. Smoothing over about a PSF lets a coherent residual (an invented spot, a
        lost filament) add up instead of drowning in per-pixel noise. Measuring it against
        the structure rather than the noise keeps the score comparable across doses: in noise
        units any small systematic difference dominates a bright frame. ≈ 0 is consistent;
        0.1 means a tenth of the structure is unexplained (or invented); below 0 the
        restoration follows the noise.
        """
        raw = np.asarray(raw, dtype=np.float64)
        restored = np.asarray(restored, dtype=np.float64)
        if raw.ndim != 2 or raw.shape != restored.shape:
            raise ValueError(
                f"raw and restored must be 2-D frames of one shape, got {raw.shape} and "
                f"{restored.shape}"
            )
        if not (np.isfinite(raw).all() and np.isfinite(restored).all()):
            raise ValueError("raw and restored must not contain NaN or infinite values")
        noise = estimate_noise(raw)
        predicted = fit_affine(
            apply_forward_model(restored, self.config.forward_model, self.config.blur_sigma_px),
            raw,
        )
        std = np.sqrt(np.maximum(noise.gain * predicted + noise.floor, 0.25 * noise.gain))

        def energy(difference: np.ndarray) -> float:
            smoothed = scipy.ndimage.gaussian_filter(
                difference / std, _CONSISTENCY_SIGMA_PX, mode="reflect"
            )
            return float(np.mean(smoothed**2) / _KERNEL_ENERGY)

        excess = energy(raw - predicted) - 1.0
        return excess / max(energy(raw - raw.mean()) - 1.0, 1.0)

    # ------------------------------------------------------------------ files

    def save(
        self, stem: Path, extra: Mapping[str, object] | None = None, half: bool = False
    ) -> Path:
        """Write ``stem.safetensors`` (weights, float16 with ``half``) and ``stem.json``
        (config, normalisation, task, levels, steps, provenance, format version, weights
        checksum, plus ``extra`` fields such as an adaptation record); return the JSON path."""
        path, self.version = save_model_files(
            stem,
            _weights(self.model),
            FORMAT,
            FORMAT_VERSION,
            {
                "task": self.config.task,
                "levels": self.config.levels,
                "steps": self.config.steps,
                "normalisation": {
                    "kind": "percentile",
                    "pmin": self.config.pmin,
                    "pmax": self.config.pmax,
                    "inverse": "input",
                },
                "config": self.config.model_dump(mode="json"),
                **(extra or {}),
            },
            half=half,
        )
        return path

    @classmethod
    def load(cls, path: Path | str, device: str | None = None) -> MSCGMRestorer:
        """Load ``NAME.json`` + ``NAME.safetensors`` (``path`` is either, or the stem).

        Raises ``ValueError`` naming the file and the problem for a missing, corrupt,
        mismatched or foreign file. Never unpickles.
        """
        model, meta, checksum = load_model_files(
            path, FORMAT, FORMAT_VERSION, MSCGMConfig, "MSCGM", MSCGM, _weights
        )
        restorer = cls(model, device=device, version=checksum)
        restorer.name = str(meta.get("name", cls.name))
        return restorer
