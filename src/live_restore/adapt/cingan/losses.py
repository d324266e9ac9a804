"""The CIN-GAN's losses and the fixed statistics that describe a defect.

No pretrained VGG is available offline, so the style loss matches fixed, differentiable Fourier
and wavelet statistics (:func:`style_statistics`), and the content loss is the correlation of
band-passed images (:func:`content_loss`), which keeps structure in place while leaving a
defect free to change gain, offset, very low frequencies (haze) and fine detail (blur). The
critic and the statistics see each patch standardised (zero mean, unit variance), so they judge
the *shape* of a defect, not a frame's brightness.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from live_restore.models.wavelets import haar_dwt2

__all__ = [
    "WAVELET_LEVELS",
    "content_loss",
    "floor_slope",
    "gaussian_blur",
    "gradient_penalty",
    "smooth_floor",
    "standardise",
    "style_distance",
    "style_loss",
    "style_statistics",
]

#: Bins of the log power spectrum: radial (DC to Nyquist) and by orientation.
RADIAL_BINS = 12
ANGLE_BINS = 8
#: Haar levels of the sub-band statistics; patches must be divisible by ``2**WAVELET_LEVELS``.
WAVELET_LEVELS = 3
#: Quantiles (between :data:`QUANTILE_RANGE`) of the intensity and background histograms.
QUANTILES = 16
QUANTILE_RANGE = (0.01, 0.99)
#: The orientation statistics use the annulus of mid to high frequencies (cycles/px), where
#: scan lines and axial anisotropy show and the specimen's own low frequencies do not.
ANNULUS_CYCLES_PX = (0.1, 0.5)
#: Stripes concentrate on the ``kx = 0`` / ``ky = 0`` lines above this frequency (cycles/px).
AXIS_MIN_CYCLES_PX = 0.05
#: Difference-of-Gaussians band (σ, pixels) where a frame's structure sits.
CONTENT_BAND_SIGMAS_PX = (2.0, 8.0)
#: The rolling-ball floor: pre-blur σ, minimum window (odd, pixels), post-blur σ.
FLOOR_PRE_SIGMA_PX = 2.0
FLOOR_WINDOW_PX = 17
FLOOR_POST_SIGMA_PX = 8.0
#: Percentiles (fractions) that map a patch to [0, 1] before its background is measured.
BACKGROUND_BOUNDS = (0.002, 0.998)
#: Scale (σ, pixels) of the structure density that :func:`floor_slope` regresses on: out-of-
#: focus light, wider than a training patch's quarter.
DENSITY_SIGMA_PX = 16.0
#: Gradient penalty weight λ of WGAN-GP (Gulrajani et al.).
GP_WEIGHT = 10.0

_EPS = 1e-8
_STD_EPS = 1e-6


def standardise(x: Tensor) -> Tensor:
    """Per-sample zero mean, unit variance: the critic and the statistics judge shape only."""
    mean = x.mean(dim=(-2, -1), keepdim=True)
    std = x.std(dim=(-2, -1), keepdim=True)
    return (x - mean) / (std + _STD_EPS)


def gaussian_blur(x: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur of ``(B, 1, H, W)``, replicating the edges, radius 3 σ."""
    radius = max(1, math.ceil(3 * sigma))
    t = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    g = torch.exp(-(t**2) / (2 * sigma**2))
    g = g / g.sum()
    x = F.pad(x, (radius,) * 4, mode="replicate")
    x = F.conv2d(x, g.view(1, 1, 1, -1))
    return F.conv2d(x, g.view(1, 1, -1, 1))


def gradient_penalty(
    critic: nn.Module, real: Tensor, fake: Tensor, defect: Tensor, weight: float = GP_WEIGHT
) -> Tensor:
    """``weight · E[(‖∇D(x̂)‖₂ − 1)²]`` on ``x̂ = e·real + (1 − e)·fake``, ``e ~ U(0, 1)``.

    Gulrajani et al.; ``create_graph=True`` so the penalty trains the critic. ``fake`` is
    detached: the penalty constrains the critic, not the generator.
    """
    e = torch.rand(real.shape[0], 1, 1, 1, device=real.device, dtype=real.dtype)
    mixed = (e * real + (1 - e) * fake.detach()).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(mixed, defect).sum(), mixed, create_graph=True)
    return weight * ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()


def content_loss(
    mu: Tensor, clean: Tensor, sigmas: tuple[float, float] = CONTENT_BAND_SIGMAS_PX
) -> Tensor:
    """``1 − corr(DoG(mu), DoG(clean))`` averaged over the batch; ``(B, 1, H, W)`` inputs.

    A difference of Gaussians keeps the band where structure sits; a correlation ignores gain
    and offset. So the loss pins the structure in place without fighting the defects, which
    change intensity scale (detector), add very low frequencies (haze) or remove the finest
    detail (blur). Computed on the expected image ``mu``, not on a noisy sample.
    """
    def band(x: Tensor) -> Tensor:
        b = gaussian_blur(x, sigmas[0]) - gaussian_blur(x, sigmas[1])
        return (b - b.mean(dim=(-2, -1), keepdim=True)).flatten(1)

    a, b = band(mu), band(clean)
    corr = (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1) + _EPS)
    return (1 - corr).mean()


def _spectrum_masks(h: int, w: int, device: torch.device) -> dict[str, Tensor]:
    """Masks over the ``rfft2`` half plane, each row normalised to a mean (sums to 1)."""
    fy = torch.fft.fftfreq(h, device=device)[:, None].expand(h, w // 2 + 1)
    fx = torch.fft.rfftfreq(w, device=device)[None, :].expand(h, w // 2 + 1)
    r = torch.sqrt(fx**2 + fy**2)
    theta = torch.atan2(fy, fx)  # in (-π/2, π/2]: every orientation once
    edges = torch.linspace(0.0, 0.5, RADIAL_BINS + 1, device=device)
    radial = torch.stack([(r > lo) & (r <= hi) for lo, hi in pairwise(edges)])
    annulus = (r >= ANNULUS_CYCLES_PX[0]) & (r <= ANNULUS_CYCLES_PX[1])
    a_edges = torch.linspace(-math.pi / 2, math.pi / 2, ANGLE_BINS + 1, device=device)
    angle = torch.stack([annulus & (theta >= lo) & (theta < hi) for lo, hi in pairwise(a_edges)])
    axes = torch.stack([(fx == 0) & (fy.abs() >= AXIS_MIN_CYCLES_PX),
                        (fy == 0) & (fx >= AXIS_MIN_CYCLES_PX)])
    masks = {"radial": radial, "directional": angle, "axes": axes, "annulus": annulus[None]}
    out = {}
    for key, m in masks.items():
        m = m.flatten(1).float()
        out[key] = m / m.sum(1, keepdim=True).clamp(min=1)
    return out


def smooth_floor(x: Tensor) -> Tensor:
    """A differentiable rolling-ball background of ``(B, 1, H, W)``, beneath any filament or
    bead: the local minimum of the lightly blurred image, smoothed."""
    lightly = gaussian_blur(x, FLOOR_PRE_SIGMA_PX)
    minimum = -F.max_pool2d(-lightly, FLOOR_WINDOW_PX, 1, FLOOR_WINDOW_PX // 2)
    return gaussian_blur(minimum, FLOOR_POST_SIGMA_PX)


def _background(x: Tensor) -> Tensor:
    """The :func:`smooth_floor` of ``(B, 1, H, W)`` patches, each mapped to [0, 1] by its own
    :data:`BACKGROUND_BOUNDS` percentiles (so gain and offset do not change it)."""
    bounds = torch.tensor(BACKGROUND_BOUNDS, device=x.device, dtype=x.dtype)
    lo, hi = torch.quantile(x.flatten(1), bounds, dim=1)[:, :, None, None, None]
    return smooth_floor((x - lo) / (hi - lo + _STD_EPS))


def floor_slope(frames: Tensor) -> Tensor:
    """How far the smooth floor under the structure rises with the structure's local density:
    per frame, the least-squares slope of :func:`smooth_floor` on the frame's blur at
    :data:`DENSITY_SIGMA_PX`. ``(B, 1, H, W)`` normalised whole frames → ``(B,)``.

    Out-of-focus light is the one defect that lifts the floor *where the specimen is dense*,
    at scales larger than a training patch; offsets and noise lift or lower it everywhere.
    """
    density = gaussian_blur(frames, DENSITY_SIGMA_PX).flatten(1)
    floor = smooth_floor(frames).flatten(1)
    density = density - density.mean(1, keepdim=True)
    floor = floor - floor.mean(1, keepdim=True)
    return (density * floor).sum(1) / density.square().sum(1).clamp(min=1e-12)


def style_statistics(x: Tensor) -> dict[str, Tensor]:
    """Fixed, differentiable statistics that describe a defect; ``x`` ``(B, 1, H, W)`` float.

    Each patch is standardised first, then (all logs of mean powers, natural log):

    - ``radial`` ``(B, 12)``: log radial power spectrum (Hann window) in 12 bins up to Nyquist;
      the slope shows blur/OTF cut-off, the flat tail the noise floor.
    - ``directional`` ``(B, 8)``: log power in 8 orientation bins of the 0.1–0.5 cycles/px
      annulus, minus their mean: anisotropy (axial undersampling, scan direction).
    - ``axes`` ``(B, 2)``: log power on the ``kx = 0`` and ``ky = 0`` lines relative to the
      annulus: row and column stripes concentrate there.
    - ``subbands`` ``(B, 18)``: log variance and log kurtosis of each Haar detail band
      (horizontal, vertical, diagonal) at 3 levels: noise level, scale, and heavy tails (hot
      pixels, sparse structure).
    - ``histogram`` ``(B, 16)``: 16 quantiles of the standardised intensities (background
      level, clipping, skew).
    - ``background`` ``(B, 16)``: 16 quantiles of the smooth floor under the structure, with
      the patch mapped to [0, 1] by its own 0.2/99.8 percentiles: out-of-focus light, to which
      the spectral statistics are nearly blind.

    ``H`` and ``W`` must be divisible by 8.
    """
    if x.ndim != 4 or x.shape[1] != 1:
        raise ValueError(f"style_statistics expects (B, 1, H, W), got {tuple(x.shape)}")
    h, w = x.shape[-2:]
    if h % 2**WAVELET_LEVELS or w % 2**WAVELET_LEVELS:
        raise ValueError(
            f"style_statistics needs H and W divisible by {2**WAVELET_LEVELS}, got {h}×{w}"
        )
    background = _background(x)
    x = standardise(x)
    window = torch.outer(
        torch.hann_window(h, periodic=False, device=x.device, dtype=x.dtype),
        torch.hann_window(w, periodic=False, device=x.device, dtype=x.dtype),
    )
    power = torch.fft.rfft2(x[:, 0] * window).abs().square().flatten(1) / (h * w)
    masks = _spectrum_masks(h, w, x.device)

    def band_power(key: str) -> Tensor:
        return power @ masks[key].T.to(power.dtype)

    annulus = torch.log(band_power("annulus") + _EPS)
    directional = torch.log(band_power("directional") + _EPS)
    stats = {
        "radial": torch.log(band_power("radial") + _EPS),
        "directional": directional - directional.mean(1, keepdim=True),
        "axes": torch.log(band_power("axes") + _EPS) - annulus,
    }
    subbands, ll = [], x
    for _ in range(WAVELET_LEVELS):
        ll, details = haar_dwt2(ll)
        d = details[:, 0].flatten(2)  # (B, 3, n)
        centred = d - d.mean(2, keepdim=True)
        var = centred.square().mean(2)
        kurt = centred.pow(4).mean(2) / (var.square() + _EPS)
        subbands += [torch.log(var + _EPS), torch.log(kurt + _EPS)]
    stats["subbands"] = torch.cat(subbands, dim=1)
    levels = torch.linspace(*QUANTILE_RANGE, QUANTILES, device=x.device, dtype=x.dtype)
    stats["histogram"] = torch.quantile(x.flatten(1), levels, dim=1).T
    stats["background"] = torch.quantile(background.flatten(1), levels, dim=1).T
    return stats


def style_distance(fake: Mapping[str, Tensor], real: Mapping[str, Tensor]) -> Tensor:
    """Mean over statistic groups of the L1 distance between the batch means of two sets of
    :func:`style_statistics` (unpaired, so only distributions are compared)."""
    parts = [(fake[k].mean(0) - real[k].mean(0)).abs().mean() for k in fake]
    return torch.stack(parts).mean()


def style_loss(fake: Tensor, real: Tensor) -> Tensor:
    """:func:`style_distance` between the statistics of ``fake`` and ``real`` (both
    ``(B, 1, H, W)`` from one defect)."""
    return style_distance(style_statistics(fake), style_statistics(real))
