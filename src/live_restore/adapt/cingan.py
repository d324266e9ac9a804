"""CIN-GAN: learn a microscope defect from unpaired frames and synthesise it on clean frames.

After Razdaibiedina et al. (seed 002; notes/cingan_ddpm_sim.md §1): one generator maps a clean
frame to a degraded one; every normalisation layer is a *conditional* instance norm holding one
``(gamma, beta)`` row per defect type, and nothing else is defect specific. A new defect is
learned by appending one row per table and training only those rows on a handful of the
user's defective frames, so the defects already learned cannot change.

Departures from the released code, each for a reason given in the notes:

- **Per-channel CIN in every norm layer** (the released Keras code had one scalar per layer).
- **Stochastic output.** The generator predicts the *expected* degraded intensity ``mu``; a
  Poisson–Gaussian head with per-defect rows ``(log a, log b)`` adds reparameterised noise of
  variance ``a · relu(mu) + b``. Without it the synthetic noise would be a deterministic
  function of the clean frame, which is wrong for denoising.
- **Physical heads** with per-defect rows of a few numbers each, for what a convolutional body
  with instance norm cannot make: out-of-focus light (:class:`OutOfFocusHead`, a
  non-negative mix of whole-frame blurs) and line artefacts (:class:`LineJitterHead`, one
  random gain per row and offset per column). They are fitted by the content and style terms
  only (:func:`fit_cingan`), and a new defect starts from the identity body plus its heads
  (``body_gate`` 0). After training, a new row's heads are refitted on the whole set of
  frames (:func:`calibrate_row`): the out-of-focus amplitude by matching how the floor under
  the structure follows its density, the line and noise heads by full-batch style matching.
- **WGAN-GP critic** (λ = 10, no normalisation layers) with a projection-style defect
  embedding, one row per defect, so one critic judges every defect.
- **No pretrained VGG** (offline): the style loss matches fixed, differentiable Fourier and
  wavelet statistics (:func:`style_statistics`); the content loss is the correlation of
  band-passed images (:func:`content_loss`), which keeps structure in place while leaving the
  defects free to change gain, offset, very low frequencies (haze) and fine detail (blur).

Frames enter in camera units and are normalised by their own percentiles (the MSCGM
convention, :func:`live_restore.models.mscgm.normalise_frame`); the critic and the style statistics
see each patch standardised (zero mean, unit variance), so they judge the *shape* of a defect,
not a frame's brightness. Defective patches are flipped but never turned a quarter: scan lines
and axial anisotropy have a direction.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from itertools import pairwise
from pathlib import Path

import numpy as np
import scipy.ndimage
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, field_validator
from torch import Tensor, nn

from live_restore import __version__
from live_restore.metrics import psnr
from live_restore.models.files import load_model_files, save_model_files
from live_restore.models.mscgm import normalise_frame
from live_restore.models.wavelets import haar_dwt2
from live_restore.sim import make_pairs

__all__ = [
    "CINGAN",
    "DEFAULT_DEFECTS",
    "OUT_OF_FOCUS_SIGMAS_PX",
    "CINGANConfig",
    "CINGenerator",
    "ConditionalInstanceNorm2d",
    "GANTrainConfig",
    "LineJitterHead",
    "OutOfFocusHead",
    "PoissonGaussianHead",
    "WGANCritic",
    "calibrate_row",
    "content_loss",
    "divergence_psnr",
    "fit_cingan",
    "floor_slope",
    "gradient_penalty",
    "normalise_frames",
    "out_of_focus",
    "pretrain_cingan",
    "simulated_defect_frames",
    "style_loss",
    "style_statistics",
]

logger = logging.getLogger(__name__)

FORMAT = "live_restore.cingan"
FORMAT_VERSION = 2  # 2: the out-of-focus head and its blurred input channels

#: Simulator tasks used as pre-training defects: low dose (two modalities), blur/resolution,
#: axial undersampling, haze, scanner stripes and a foreign detector.
DEFAULT_DEFECTS: tuple[str, ...] = (
    "sted_denoise",
    "confocal2sted",
    "denoise",
    "axial_inpaint",
    "haze",
    "stripes",
    "detector",
)


# ---------------------------------------------------------------------- layers


def _rows(count: int, width: int, value: float) -> nn.ParameterList:
    return nn.ParameterList(nn.Parameter(torch.full((width,), value)) for _ in range(count))


def _append_mean_rows(*tables: nn.ParameterList) -> list[nn.Parameter]:
    """Append to each table a row equal to the mean of its rows (a neutral start for a new
    defect); return the new rows."""
    for rows in tables:
        with torch.no_grad():
            mean = torch.stack(tuple(rows)).mean(0)
        rows.append(nn.Parameter(mean.clone()))
    return [rows[-1] for rows in tables]


def _select(rows: nn.ParameterList, defect: Tensor) -> Tensor:
    """``(B,)`` long defect indices → ``(B, width)`` rows; only the rows used get gradients."""
    return torch.stack(tuple(rows))[defect]


class ConditionalInstanceNorm2d(nn.Module):
    """Instance norm with one learned ``(gamma, beta)`` row per defect (Dumoulin et al.).

    ``z = gamma[d] * (x - mu) / sigma + beta[d]``, with ``mu``, ``sigma`` over each sample's
    spatial axes. Every row is its own :class:`~torch.nn.Parameter` (not one ``(N, C)``
    matrix) so that freezing a defect is ``requires_grad_(False)`` on its rows and an
    optimiser handed only the new rows cannot touch the old ones — not even through AdamW's
    weight decay, which a gradient mask would not stop.
    """

    def __init__(self, channels: int, n_defects: int) -> None:
        super().__init__()
        self.gamma = _rows(n_defects, channels, 1.0)
        self.beta = _rows(n_defects, channels, 0.0)

    def add_row(self) -> list[nn.Parameter]:
        """Append a row (mean of the existing rows); return its new parameters."""
        return _append_mean_rows(self.gamma, self.beta)

    def forward(self, x: Tensor, defect: Tensor) -> Tensor:
        """``x`` ``(B, C, H, W)`` float, ``defect`` ``(B,)`` long → ``(B, C, H, W)``."""
        h = F.instance_norm(x, eps=1e-5)
        gamma = _select(self.gamma, defect)[:, :, None, None]
        beta = _select(self.beta, defect)[:, :, None, None]
        return gamma * h + beta


class _CINConv(nn.Module):
    """Conv → CIN → ReLU, the generator's unit."""

    def __init__(self, cin: int, cout: int, n_defects: int, kernel: int, stride: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, kernel // 2, padding_mode="reflect")
        self.norm = ConditionalInstanceNorm2d(cout, n_defects)

    def forward(self, x: Tensor, defect: Tensor) -> Tensor:
        return F.relu(self.norm(self.conv(x), defect))


class _CINResBlock(nn.Module):
    """Two 3×3 conv + CIN with an identity skip (CIN in the body too: notes §1 design)."""

    def __init__(self, channels: int, n_defects: int) -> None:
        super().__init__()
        self.first = _CINConv(channels, channels, n_defects, 3)
        self.conv = nn.Conv2d(channels, channels, 3, padding=1, padding_mode="reflect")
        self.norm = ConditionalInstanceNorm2d(channels, n_defects)

    def forward(self, x: Tensor, defect: Tensor) -> Tensor:
        return x + self.norm(self.conv(self.first(x, defect)), defect)


class PoissonGaussianHead(nn.Module):
    """Per-defect Poisson–Gaussian noise: ``x = mu + sqrt(a · relu(mu) + b) · ε``.

    ``log a`` and ``log b`` are rows like the CIN tables, so a new defect learns its own noise
    level. The Gaussian approximation of the Poisson part keeps the sample differentiable
    (reparameterised) in ``mu``, ``a`` and ``b``; in normalised units the photon count is
    large enough for it wherever the noise matters to the style statistics.
    """

    def __init__(self, n_defects: int) -> None:
        super().__init__()
        self.log_gain = _rows(n_defects, 1, math.log(1e-2))
        self.log_floor = _rows(n_defects, 1, math.log(1e-4))

    def add_row(self) -> list[nn.Parameter]:
        """Append a row (mean of the existing rows); return its new parameters."""
        return _append_mean_rows(self.log_gain, self.log_floor)

    def variance(self, mu: Tensor, defect: Tensor) -> Tensor:
        """Per-pixel noise variance ``(B, 1, H, W)`` of the expected image ``mu``."""
        a = _select(self.log_gain, defect).exp()[:, :, None, None]
        b = _select(self.log_floor, defect).exp()[:, :, None, None]
        return a * F.relu(mu) + b

    def forward(
        self, mu: Tensor, defect: Tensor, generator: torch.Generator | None = None
    ) -> Tensor:
        """Sample one noisy image per expected image ``mu`` ``(B, 1, H, W)``."""
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        return mu + self.variance(mu, defect).sqrt() * eps


class LineJitterHead(nn.Module):
    """Per-defect line artefacts: ``x · (1 + s_r · ε_row) + s_c · ε_col``, one ``ε`` per row and
    per column of each draw.

    Scanning microscopes jitter in gain from line to line (laser noise, resonant-scanner
    phase) and cameras read columns through their own amplifiers; a convolutional body with
    per-pixel noise cannot make one random number shared by a whole row. ``log s_r`` and
    ``log s_c`` are per-defect rows like the noise head's; an untouched row (``s ≈ 0``) adds
    nothing.
    """

    def __init__(self, n_defects: int) -> None:
        super().__init__()
        self.log_row_sd = _rows(n_defects, 1, math.log(1e-3))
        self.log_column_sd = _rows(n_defects, 1, math.log(1e-3))

    def add_row(self) -> list[nn.Parameter]:
        """Append a row (mean of the existing rows); return its new parameters."""
        return _append_mean_rows(self.log_row_sd, self.log_column_sd)

    def forward(
        self, mu: Tensor, defect: Tensor, generator: torch.Generator | None = None
    ) -> Tensor:
        """One jittered draw of expected images ``mu`` ``(B, 1, H, W)``."""
        b, _, h, w = mu.shape
        rows = torch.randn((b, 1, h, 1), generator=generator, device=mu.device, dtype=mu.dtype)
        cols = torch.randn((b, 1, 1, w), generator=generator, device=mu.device, dtype=mu.dtype)
        s_r = _select(self.log_row_sd, defect).exp()[:, :, None, None]
        s_c = _select(self.log_column_sd, defect).exp()[:, :, None, None]
        return mu * (1 + s_r * rows) + s_c * cols


#: Blurs (Gaussian σ, pixels) whose non-negative mix is a defect's out-of-focus light.
OUT_OF_FOCUS_SIGMAS_PX: tuple[float, ...] = (4.0, 8.0, 16.0, 32.0)


def out_of_focus(frame: np.ndarray) -> np.ndarray:
    """A normalised ``(Y, X)`` frame stacked with its blurs at :data:`OUT_OF_FOCUS_SIGMAS_PX`:
    ``(1 + K, Y, X)`` float32, the generator's input layout. Blurred over the whole frame
    (reflecting at its edges, as the simulator's haze), so crops of the stack carry the light
    that reaches them from outside."""
    frame = np.asarray(frame, np.float32)
    blurs = [scipy.ndimage.gaussian_filter(frame, s, mode="reflect")
             for s in OUT_OF_FOCUS_SIGMAS_PX]
    return np.stack([frame, *blurs]).astype(np.float32)


class OutOfFocusHead(nn.Module):
    """Per-defect out-of-focus light: ``Σ_k c_k[d] · (G_σk * clean)``, every ``c_k ≥ 0``.

    Haze is the specimen seen through a defocused PSF: a smooth, *positive* background that
    follows the structure at scales of 1–2 µm (20–40 px at 50 nm). The convolutional body
    sees ~45 px and instance norm removes each channel's spatial mean, so it cannot make
    such a background, and a new row trained from few frames got its sign wrong. Here the
    blur is fixed and only the non-negative weights ``log c_k`` are per-defect rows,
    like the noise head's: an untouched row (``c ≈ 0``) adds nothing. The blurs are taken of
    the whole frame (:func:`out_of_focus`) and cropped with the patch: a patch's haze comes
    from structure around it, and blurring the patch alone (padded) made edge artefacts
    that the style statistics rightly refused. The wide blurs of a new row are set on whole
    frames by :func:`calibrate_row`: a batch of patches cannot judge them.
    """

    def __init__(self, n_defects: int) -> None:
        super().__init__()
        self.log_coeff = _rows(n_defects, len(OUT_OF_FOCUS_SIGMAS_PX), math.log(1e-2))

    def add_row(self) -> list[nn.Parameter]:
        """Append a row (mean of the existing rows); return its new parameter."""
        return _append_mean_rows(self.log_coeff)

    def forward(self, blurred: Tensor, defect: Tensor) -> Tensor:
        """Out-of-focus light ``(B, 1, H, W)`` from the clean frames' blurs ``(B, K, H, W)``."""
        coeff = _select(self.log_coeff, defect).exp()
        return (coeff[:, :, None, None] * blurred).sum(1, keepdim=True)


class CINGenerator(nn.Module):
    """Clean → degraded generator, ``(B, 1 + K, H, W)`` → ``(B, 1, H, W)``; ``H``, ``W`` even.

    The input is a clean patch stacked with its frame's blurs (:func:`out_of_focus`); the
    blurs feed only the :class:`OutOfFocusHead`. Encoder (7×7 conv, one stride-2 conv),
    ``n_res`` residual blocks, decoder (nearest upsampling + conv, 7×7 conv), every norm a
    :class:`ConditionalInstanceNorm2d`; the output is a residual on the input whose last conv
    starts at zero, so an untrained generator is the identity plus the out-of-focus light, then
    the :class:`LineJitterHead` and the noise head: content is kept from the first step.
    """

    def __init__(self, channels: int, n_res: int, n_defects: int) -> None:
        super().__init__()
        c = channels
        self.stem = _CINConv(1, c, n_defects, 7)
        self.down = _CINConv(c, 2 * c, n_defects, 3, stride=2)
        self.body = nn.ModuleList(_CINResBlock(2 * c, n_defects) for _ in range(n_res))
        self.up = _CINConv(2 * c, c, n_defects, 3)
        self.out = nn.Conv2d(c, 1, 7, padding=3, padding_mode="reflect")
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        self.body_gate = _rows(n_defects, 1, 1.0)
        self.haze = OutOfFocusHead(n_defects)
        self.lines = LineJitterHead(n_defects)
        self.noise = PoissonGaussianHead(n_defects)

    def defect_rows(self) -> list[nn.ParameterList]:
        """Every per-defect table (CIN gammas/betas, then the heads'), in a fixed order."""
        tables: list[nn.ParameterList] = []
        for module in self.modules():
            if isinstance(module, ConditionalInstanceNorm2d):
                tables += [module.gamma, module.beta]
        return [
            *tables,
            self.body_gate,
            self.haze.log_coeff,
            self.lines.log_row_sd,
            self.lines.log_column_sd,
            self.noise.log_gain,
            self.noise.log_floor,
        ]

    def add_row(self) -> list[nn.Parameter]:
        """Append a row to every table; return the new parameters (the only ones to train)."""
        new: list[nn.Parameter] = []
        for module in self.modules():
            if isinstance(module, ConditionalInstanceNorm2d):
                new += module.add_row()
        # A new defect starts from the identity body (gate 0) and the heads' physics: started
        # from the mean of the other rows, the body's residual (their defects' blur and
        # gain) made synthetic haze pairs that lowered the restorer below its base (README).
        self.body_gate.append(nn.Parameter(torch.zeros(1)))
        heads = [*self.haze.add_row(), *self.lines.add_row(), *self.noise.add_row()]
        return [*new, self.body_gate[-1], *heads]

    def expected(self, stack: Tensor, defect: Tensor) -> Tensor:
        """The expected degraded intensity ``mu`` ``(B, 1, H, W)`` (before the noise head)."""
        h, w = stack.shape[-2:]
        if h % 2 or w % 2:
            raise ValueError(f"CINGenerator needs even height and width, got {h}×{w}")
        if stack.ndim != 4 or stack.shape[1] != 1 + len(OUT_OF_FOCUS_SIGMAS_PX):
            raise ValueError(
                f"CINGenerator expects (B, {1 + len(OUT_OF_FOCUS_SIGMAS_PX)}, H, W) clean "
                f"frames stacked with their blurs (out_of_focus), got {tuple(stack.shape)}"
            )
        clean, blurred = stack[:, :1], stack[:, 1:]
        x = self.down(self.stem(clean, defect), defect)
        for block in self.body:
            x = block(x, defect)
        x = self.up(F.interpolate(x, scale_factor=2.0, mode="nearest"), defect)
        gate = _select(self.body_gate, defect)[:, :, None, None]
        return clean + gate * self.out(x) + self.haze(blurred, defect)

    def forward(
        self, stack: Tensor, defect: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """Return ``(sample, mu)``: a noisy degraded image and its expectation."""
        mu = self.expected(stack, defect)
        return self.noise(self.lines(mu, defect, generator), defect, generator), mu


class WGANCritic(nn.Module):
    """WGAN-GP critic: strided convs with LeakyReLU, no normalisation (the gradient penalty is
    per sample, which batch norm would break), and a projection-style defect embedding.

    ``score = mean_xy(w·h + e[d]·h)`` for features ``h``: one critic serves every defect, and a
    new defect adds one embedding row. Returns ``(B,)`` scores.
    """

    def __init__(self, channels: int, n_layers: int, n_defects: int) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(1, channels, 3, padding=1), nn.LeakyReLU(0.2)]
        ch = channels
        for _ in range(n_layers):
            layers += [nn.Conv2d(ch, 2 * ch, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
            ch *= 2
        self.features = nn.Sequential(*layers)
        self.out = nn.Conv2d(ch, 1, 1)
        self.embed = _rows(n_defects, ch, 0.0)

    def add_row(self) -> None:
        """Append an embedding row for a new defect (mean of the others)."""
        _append_mean_rows(self.embed)

    def forward(self, x: Tensor, defect: Tensor) -> Tensor:
        """``x`` ``(B, 1, H, W)`` standardised patches, ``defect`` ``(B,)`` long → ``(B,)``."""
        h = self.features(x)
        proj = (_select(self.embed, defect)[:, :, None, None] * h).sum(1, keepdim=True)
        return (self.out(h) + proj).mean(dim=(1, 2, 3))


def gradient_penalty(
    critic: WGANCritic, real: Tensor, fake: Tensor, defect: Tensor, weight: float = 10.0
) -> Tensor:
    """``weight · E[(‖∇D(x̂)‖₂ − 1)²]`` on ``x̂ = e·real + (1 − e)·fake``, ``e ~ U(0, 1)``.

    Gulrajani et al.; ``create_graph=True`` so the penalty trains the critic. ``fake`` is
    detached: the penalty constrains the critic, not the generator.
    """
    e = torch.rand(real.shape[0], 1, 1, 1, device=real.device, dtype=real.dtype)
    mixed = (e * real + (1 - e) * fake.detach()).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(mixed, defect).sum(), mixed, create_graph=True)
    return weight * ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()


# ---------------------------------------------------------------------- losses


def _standardise(x: Tensor) -> Tensor:
    """Per-sample zero mean, unit variance: the critic and the statistics judge shape only."""
    mean = x.mean(dim=(-2, -1), keepdim=True)
    std = x.std(dim=(-2, -1), keepdim=True)
    return (x - mean) / (std + 1e-6)


def _gaussian_blur(x: Tensor, sigma: float) -> Tensor:
    radius = max(1, math.ceil(3 * sigma))
    t = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    g = torch.exp(-(t**2) / (2 * sigma**2))
    g = g / g.sum()
    x = F.pad(x, (radius,) * 4, mode="replicate")
    x = F.conv2d(x, g.view(1, 1, 1, -1))
    return F.conv2d(x, g.view(1, 1, -1, 1))


def content_loss(mu: Tensor, clean: Tensor, sigmas: tuple[float, float] = (2.0, 8.0)) -> Tensor:
    """``1 − corr(DoG(mu), DoG(clean))`` averaged over the batch; ``(B, 1, H, W)`` inputs.

    A difference of Gaussians keeps the band where structure sits; a correlation ignores gain
    and offset. So the loss pins the structure in place without fighting the defects, which
    change intensity scale (detector), add very low frequencies (haze) or remove the finest
    detail (blur). Computed on the expected image ``mu``, not on a noisy sample.
    """
    def band(x: Tensor) -> Tensor:
        b = _gaussian_blur(x, sigmas[0]) - _gaussian_blur(x, sigmas[1])
        return (b - b.mean(dim=(-2, -1), keepdim=True)).flatten(1)

    a, b = band(mu), band(clean)
    corr = (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1) + 1e-8)
    return (1 - corr).mean()


_RADIAL_BINS = 12
_ANGLE_BINS = 8
_WAVELET_LEVELS = 3
_QUANTILES = 16


def _spectrum_masks(h: int, w: int, device: torch.device) -> dict[str, Tensor]:
    """Masks over the ``rfft2`` half plane, each row normalised to a mean (sums to 1)."""
    fy = torch.fft.fftfreq(h, device=device)[:, None].expand(h, w // 2 + 1)
    fx = torch.fft.rfftfreq(w, device=device)[None, :].expand(h, w // 2 + 1)
    r = torch.sqrt(fx**2 + fy**2)
    theta = torch.atan2(fy, fx)  # in (-π/2, π/2]: every orientation once
    edges = torch.linspace(0.0, 0.5, _RADIAL_BINS + 1, device=device)
    radial = torch.stack([(r > lo) & (r <= hi) for lo, hi in pairwise(edges)])
    annulus = (r >= 0.1) & (r <= 0.5)
    a_edges = torch.linspace(-math.pi / 2, math.pi / 2, _ANGLE_BINS + 1, device=device)
    angle = torch.stack([annulus & (theta >= lo) & (theta < hi) for lo, hi in pairwise(a_edges)])
    axes = torch.stack([(fx == 0) & (fy.abs() >= 0.05), (fy == 0) & (fx >= 0.05)])
    masks = {"radial": radial, "directional": angle, "axes": axes, "annulus": annulus[None]}
    out = {}
    for key, m in masks.items():
        m = m.flatten(1).float()
        out[key] = m / m.sum(1, keepdim=True).clamp(min=1)
    return out


def _floor(x: Tensor) -> Tensor:
    """The local minimum over 17 px of the lightly blurred image, smoothed at σ 8 px: a
    differentiable rolling-ball background, beneath any filament or bead."""
    return _gaussian_blur(-F.max_pool2d(-_gaussian_blur(x, 2.0), 17, 1, 8), 8.0)


def _background(x: Tensor) -> Tensor:
    """The :func:`_floor` of ``(B, 1, H, W)`` patches, each mapped to [0, 1] by its own
    0.2/99.8 percentiles."""
    bounds = torch.tensor([0.002, 0.998], device=x.device, dtype=x.dtype)
    lo, hi = torch.quantile(x.flatten(1), bounds, dim=1)[:, :, None, None, None]
    return _floor((x - lo) / (hi - lo + 1e-6))


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
    - ``background`` ``(B, 16)``: 16 quantiles of the smooth floor under the structure
      (:func:`_background`), with the patch mapped to [0, 1] by its own 0.2/99.8
      percentiles: out-of-focus light. Measured on simulated haze, the other statistics were
      nearly flat in the haze amplitude, below the spread between two sets of 10 frames;
      this one has a clear minimum near the true amplitude.

    ``H`` and ``W`` must be divisible by 8.
    """
    if x.ndim != 4 or x.shape[1] != 1:
        raise ValueError(f"style_statistics expects (B, 1, H, W), got {tuple(x.shape)}")
    h, w = x.shape[-2:]
    if h % 2**_WAVELET_LEVELS or w % 2**_WAVELET_LEVELS:
        raise ValueError(f"style_statistics needs H and W divisible by 8, got {h}×{w}")
    background = _background(x)
    x = _standardise(x)
    window = torch.outer(
        torch.hann_window(h, periodic=False, device=x.device, dtype=x.dtype),
        torch.hann_window(w, periodic=False, device=x.device, dtype=x.dtype),
    )
    power = torch.fft.rfft2(x[:, 0] * window).abs().square().flatten(1) / (h * w)
    masks = _spectrum_masks(h, w, x.device)
    eps = 1e-8

    def band_power(key: str) -> Tensor:
        return power @ masks[key].T.to(power.dtype)

    annulus = torch.log(band_power("annulus") + eps)
    directional = torch.log(band_power("directional") + eps)
    stats = {
        "radial": torch.log(band_power("radial") + eps),
        "directional": directional - directional.mean(1, keepdim=True),
        "axes": torch.log(band_power("axes") + eps) - annulus,
    }
    subbands, ll = [], x
    for _ in range(_WAVELET_LEVELS):
        ll, details = haar_dwt2(ll)
        d = details[:, 0].flatten(2)  # (B, 3, n)
        centred = d - d.mean(2, keepdim=True)
        var = centred.square().mean(2)
        kurt = centred.pow(4).mean(2) / (var.square() + eps)
        subbands += [torch.log(var + eps), torch.log(kurt + eps)]
    stats["subbands"] = torch.cat(subbands, dim=1)
    levels = torch.linspace(0.01, 0.99, _QUANTILES, device=x.device, dtype=x.dtype)
    stats["histogram"] = torch.quantile(x.flatten(1), levels, dim=1).T
    stats["background"] = torch.quantile(background.flatten(1), levels, dim=1).T
    return stats


def style_loss(fake: Tensor, real: Tensor) -> Tensor:
    """Mean over statistic groups of the L1 distance between the batch means of
    :func:`style_statistics` of ``fake`` and of ``real`` (unpaired, so only distributions are
    compared; both ``(B, 1, H, W)`` from one defect)."""
    return _style_distance(style_statistics(fake), style_statistics(real))


def _style_distance(fake: Mapping[str, Tensor], real: Mapping[str, Tensor]) -> Tensor:
    parts = [(fake[k].mean(0) - real[k].mean(0)).abs().mean() for k in fake]
    return torch.stack(parts).mean()


# ---------------------------------------------------------------------- the model


class CINGANConfig(BaseModel):
    """Everything needed to rebuild a CIN-GAN; dumped into ``NAME.json``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    defects: tuple[str, ...] = Field(min_length=1, description="one CIN row per defect, in order")
    channels: int = Field(16, ge=1, description="generator width (twice this after the down)")
    n_res: int = Field(4, ge=0, description="residual blocks at half resolution")
    critic_channels: int = Field(16, ge=1)
    critic_layers: int = Field(3, ge=1, description="stride-2 critic layers")
    pmin: float = Field(0.2, ge=0, lt=100, description="frame percentile mapped to 0")
    pmax: float = Field(99.8, gt=0, le=100, description="frame percentile mapped to 1")
    adv_weight: float = Field(0.1, ge=0, description="Wasserstein term in the generator loss")
    content_weight: float = Field(1.0, ge=0)
    style_weight: float = Field(1.0, ge=0)
    gp_weight: float = Field(10.0, ge=0, description="gradient penalty λ (WGAN-GP: 10)")
    package_version: str = __version__

    @field_validator("defects")
    @classmethod
    def _unique(cls, defects: tuple[str, ...]) -> tuple[str, ...]:
        if any(not d for d in defects) or len(set(defects)) != len(defects):
            raise ValueError(f"defect names must be unique and non-empty, got {defects!r}")
        return defects


class CINGAN(nn.Module):
    """Generator, critic and losses; tensors in normalised units (module docstring)."""

    def __init__(self, config: CINGANConfig) -> None:
        super().__init__()
        self.config = config
        n = len(config.defects)
        self.generator = CINGenerator(config.channels, config.n_res, n)
        self.critic = WGANCritic(config.critic_channels, config.critic_layers, n)

    @property
    def defects(self) -> list[str]:
        """Defect names, in CIN-row order."""
        return list(self.config.defects)

    @property
    def multiple(self) -> int:
        """Patches must be multiples of this (critic strides, Haar levels of the statistics)."""
        return max(2**self.config.critic_layers, 2**_WAVELET_LEVELS)

    def defect_index(self, name: str) -> int:
        """Row of ``name``; ``ValueError`` listing the known defects otherwise."""
        if name not in self.config.defects:
            raise ValueError(f"unknown defect {name!r}; this CIN-GAN knows {self.defects}")
        return self.config.defects.index(name)

    def add_defect(self, name: str) -> list[nn.Parameter]:
        """Append one row for ``name`` to every table and freeze everything else.

        The shared generator weights and every other defect's rows get
        ``requires_grad = False``; the returned parameters (the new CIN and noise rows) are
        the only generator parameters left trainable. The critic gets a new embedding row and
        stays fully trainable: it is never deployed, and fine-tuning all of it learns a new
        defect faster. Raises ``ValueError`` if ``name`` is empty or already known.
        """
        if not name or name in self.config.defects:
            raise ValueError(
                f"defect {name!r} already exists in this CIN-GAN (defects: {self.defects}); "
                "choose a new, non-empty name"
            )
        self.generator.requires_grad_(False)
        new = self.generator.add_row()
        for p in new:
            p.requires_grad_(True)
        self.critic.add_row()
        self.config = self.config.model_copy(update={"defects": (*self.config.defects, name)})
        return new

    def _index(self, defect: int, batch: int, device: torch.device) -> Tensor:
        return torch.full((batch,), defect, dtype=torch.long, device=device)

    def synthesise(
        self, clean: Tensor, defect: str, generator: torch.Generator | None = None
    ) -> Tensor:
        """Degrade normalised clean frames with ``defect`` (one noisy draw) → ``(B, 1, H, W)``.

        ``clean`` is ``(B, 1, H, W)`` whole frames (their blurs are taken here) or
        ``(B, 1 + K, H, W)`` patches stacked with their own frames' blurs (:func:`out_of_focus`).
        """
        if clean.ndim == 4 and clean.shape[1] == 1:
            frames = clean[:, 0].detach().cpu().numpy()
            clean = torch.from_numpy(np.stack([out_of_focus(f) for f in frames])).to(clean)
        idx = self._index(self.defect_index(defect), clean.shape[0], clean.device)
        sample, _ = self.generator(clean, idx, generator)
        return sample

    def generator_losses(self, clean: Tensor, defective: Tensor, defect: int) -> dict[str, Tensor]:
        """Generator side on unpaired batches of one defect (row ``defect``): ``clean``
        ``(B, 1 + K, H, W)`` stacks (:func:`out_of_focus`), ``defective`` ``(B, 1, H, W)``.

        ``loss = adv_weight · (−D(G(y))) + content_weight · content + style_weight · style``;
        the critic's own weights are left out of the graph.
        """
        cfg = self.config
        idx = self._index(defect, clean.shape[0], clean.device)
        fake, mu = self.generator(clean, idx)
        fake_s = _standardise(fake)
        content = content_loss(mu, clean[:, :1])
        style = style_loss(fake_s, _standardise(defective))
        self.critic.requires_grad_(False)
        adv = -self.critic(fake_s, idx).mean()
        self.critic.requires_grad_(True)
        loss = cfg.adv_weight * adv + cfg.content_weight * content + cfg.style_weight * style
        return {"loss": loss, "adv": adv, "content": content, "style": style}

    def critic_losses(self, clean: Tensor, defective: Tensor, defect: int) -> dict[str, Tensor]:
        """Critic side: ``D(fake) − D(real) + λ · GP``; fakes drawn without generator grads
        (inputs as for :meth:`generator_losses`)."""
        idx = self._index(defect, clean.shape[0], clean.device)
        with torch.no_grad():
            fake, _ = self.generator(clean, idx)
        fake_s, real_s = _standardise(fake), _standardise(defective)
        wasserstein = self.critic(real_s, idx).mean() - self.critic(fake_s, idx).mean()
        gp = gradient_penalty(self.critic, real_s, fake_s, idx, self.config.gp_weight)
        return {"loss": -wasserstein + gp, "wasserstein": wasserstein, "gp": gp}

    # ------------------------------------------------------------------ files

    def _weights(self) -> dict[str, Tensor]:
        return {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}

    def save(self, stem: Path, provenance: dict[str, object] | None = None) -> Path:
        """Write ``stem.safetensors`` + ``stem.json`` (generator and critic: the critic is kept
        so a later defect starts from a trained one); return the JSON path."""
        path, _ = save_model_files(
            Path(stem),
            self._weights(),
            FORMAT,
            FORMAT_VERSION,
            {
                "defects": self.defects,
                "normalisation": {"kind": "percentile", "pmin": self.config.pmin,
                                  "pmax": self.config.pmax},
                "config": self.config.model_dump(mode="json"),
                "provenance": provenance or {},
            },
        )
        return path

    @classmethod
    def load(cls, path: Path | str) -> CINGAN:
        """Load ``NAME.json`` + ``NAME.safetensors``; ``ValueError`` for a bad or foreign file."""
        model, _, _ = load_model_files(
            path, FORMAT, FORMAT_VERSION, CINGANConfig, "CIN-GAN", cls, cls._weights
        )
        return model


# ---------------------------------------------------------------------- data and training


def normalise_frames(frames: Sequence[np.ndarray], pmin: float, pmax: float) -> list[np.ndarray]:
    """Each 2-D frame by its own percentiles (float32), as the restorer normalises inputs."""
    return [normalise_frame(np.asarray(f, np.float64), pmin, pmax)[0] for f in frames]


def _crops(
    frames: Sequence[np.ndarray],
    batch: int,
    size: int,
    generator: torch.Generator,
    turn: bool = True,
) -> Tensor:
    """Random square crops of ``(C, Y, X)`` frames, every channel with the same random flip
    (and, with ``turn``, rot90) → ``(batch, C, size, size)``.

    Defective frames are not turned: a quarter turn swaps rows and columns, and scan lines,
    column offsets and axial anisotropy have a direction the new row must learn.
    """
    out = []
    for _ in range(batch):
        f = frames[int(torch.randint(len(frames), (1,), generator=generator))]
        top = int(torch.randint(f.shape[-2] - size + 1, (1,), generator=generator))
        left = int(torch.randint(f.shape[-1] - size + 1, (1,), generator=generator))
        c = torch.from_numpy(np.ascontiguousarray(f[:, top : top + size, left : left + size]))
        if int(torch.randint(2, (1,), generator=generator)):
            c = c.flip(-1)
        if turn:
            c = torch.rot90(c, int(torch.randint(4, (1,), generator=generator)), (-2, -1))
        elif int(torch.randint(2, (1,), generator=generator)):
            c = c.flip(-2)
        out.append(c)
    return torch.stack(out).float().contiguous()


class GANTrainConfig(BaseModel):
    """Optimisation settings for :func:`fit_cingan` (Adam as in WGAN-GP, n_critic steps)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    steps: int = Field(ge=1, description="generator steps")
    batch_size: int = Field(4, ge=2)
    patch_size: int = Field(64, ge=16)
    n_critic: int = Field(2, ge=1, description="critic steps per generator step")
    lr_g: float = Field(1e-3, gt=0)
    lr_d: float = Field(1e-4, gt=0)
    head_lr_mult: float = Field(20.0, gt=0, description="the heads' lr relative to lr_g")
    seed: int = 0


def fit_cingan(
    model: CINGAN,
    clean: Mapping[str, Sequence[np.ndarray]],
    defective: Mapping[str, Sequence[np.ndarray]],
    config: GANTrainConfig,
    progress: Callable[[int, int, dict[str, float]], None] | None = None,
) -> dict[str, float]:
    """Train ``model`` on unpaired normalised frames, one defect per step in turn.

    Parameters
    ----------
    model
        The CIN-GAN; only generator parameters with ``requires_grad`` are optimised (all of
        them in pre-training, the new rows after :meth:`CINGAN.add_defect`). The critic is
        always trained.
    clean, defective
        Per defect name (same keys, each a known defect): 2-D float frames, normalised
        (:func:`normalise_frames`), each at least ``patch_size`` on a side. The two are drawn
        independently, so no pairing is assumed.
    config
        Steps, batch, patch, learning rates.
    progress
        ``progress(step, total, logs)`` after every generator step.

    Returns the last step's logs (generator and critic parts, seconds per step).
    """
    if set(clean) != set(defective) or not defective:
        raise ValueError(
            f"clean and defective must name the same defects, got {sorted(clean)} and "
            f"{sorted(defective)}"
        )
    size = config.patch_size
    if size % model.multiple:
        raise ValueError(f"patch_size must be a multiple of {model.multiple}, got {size}")
    for name, frames in [*clean.items(), *defective.items()]:
        model.defect_index(name)
        small = [f.shape for f in frames if min(f.shape) < size]
        if not frames or small:
            raise ValueError(
                f"defect {name!r}: need frames of at least {size}×{size}, got "
                f"{len(frames)} frame(s), too small: {small[:3]}"
            )
    names = sorted(defective, key=model.defect_index)
    # The generator's input layout, prepared once: clean frames with their whole-frame blurs.
    clean_stacks = {n: [out_of_focus(f) for f in clean[n]] for n in names}
    defective_stacks = {n: [np.asarray(f, np.float32)[None] for f in defective[n]] for n in names}
    heads = (model.generator.noise, model.generator.haze, model.generator.lines)
    head_params = [p for head in heads for p in head.parameters() if p.requires_grad]
    head_ids = {id(p) for p in head_params}
    gen_params = [
        p for p in model.generator.parameters() if p.requires_grad and id(p) not in head_ids
    ]
    # The heads' log-weights must travel several units from their start (Adam
    # moves a parameter ~lr per step): at lr_g they barely moved in a few hundred steps.
    opt_g = torch.optim.Adam(
        [
            {"params": gen_params},
            {"params": head_params, "lr": config.lr_g * config.head_lr_mult},
        ],
        lr=config.lr_g,
        betas=(0.5, 0.9),
    )
    opt_d = torch.optim.Adam(model.critic.parameters(), lr=config.lr_d, betas=(0.5, 0.9))
    rng = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed)
    model.train()
    logs: dict[str, float] = {}
    started = time.perf_counter()
    for step in range(config.steps):
        name = names[step % len(names)]
        d = model.defect_index(name)
        for _ in range(config.n_critic):
            y = _crops(clean_stacks[name], config.batch_size, size, rng)
            x = _crops(defective_stacks[name], config.batch_size, size, rng, turn=False)
            parts = model.critic_losses(y, x, d)
            opt_d.zero_grad(set_to_none=True)
            parts["loss"].backward()
            opt_d.step()
        logs = {f"critic_{k}": float(v.detach()) for k, v in parts.items()}
        y = _crops(clean_stacks[name], config.batch_size, size, rng)
        x = _crops(defective_stacks[name], config.batch_size, size, rng, turn=False)
        gparts = model.generator_losses(y, x, d)
        opt_g.zero_grad(set_to_none=True)
        # The heads (a handful of global numbers per defect) follow the content and style
        # terms only: the critic's gradient on them, 10–50× the statistics', drove a new
        # haze row's out-of-focus light to zero, where the style loss preferred some (README).
        matched = gparts["loss"] - model.config.adv_weight * gparts["adv"]
        head_grads = (
            torch.autograd.grad(matched, head_params, retain_graph=True, allow_unused=True)
            if head_params
            else ()
        )
        gparts["loss"].backward()
        for param, grad in zip(head_params, head_grads, strict=True):
            param.grad = grad
        opt_g.step()
        logs |= {k: float(v.detach()) for k, v in gparts.items()}
        logs["seconds_per_step"] = (time.perf_counter() - started) / (step + 1)
        if progress is not None:
            progress(step + 1, config.steps, logs)
    model.eval()
    return logs


def floor_slope(frames: Tensor) -> Tensor:
    """How far the smooth floor under the structure rises with the structure's local density:
    per frame, the least-squares slope of :func:`_floor` on the frame's σ 16 px blur.
    ``(B, 1, H, W)`` normalised whole frames → ``(B,)``.

    Out-of-focus light is the one defect that lifts the floor *where the specimen is dense*,
    at scales larger than a training patch; offsets and noise lift or lower it everywhere.
    Measured on two sets of 10 simulated frames of 128² (README): haze 0.40–0.53, stripes and
    the foreign detector 0.22–0.24; 16 clean frames 0.09.
    """
    density = _gaussian_blur(frames, 16.0).flatten(1)
    floor = _floor(frames).flatten(1)
    density = density - density.mean(1, keepdim=True)
    floor = floor - floor.mean(1, keepdim=True)
    return (density * floor).sum(1) / density.square().sum(1).clamp(min=1e-12)


#: Frames and crops that :func:`calibrate_row` measures (bounded cost for any library).
_CALIBRATION_FRAMES = 16
_CALIBRATION_CROP = 128


@torch.no_grad()
def _synthetic_slope(
    model: CINGAN, defect: str, stacks: Sequence[np.ndarray], seed: int
) -> float:
    """Mean :func:`floor_slope` of one fixed-seed synthetic draw of each whole clean stack."""
    generator = torch.Generator().manual_seed(seed)
    slopes = [
        floor_slope(model.synthesise(torch.from_numpy(s)[None], defect, generator))
        for s in stacks
    ]
    return float(torch.cat(slopes).mean())


def _even(frame: np.ndarray) -> np.ndarray:
    return frame[..., : frame.shape[-2] // 2 * 2, : frame.shape[-1] // 2 * 2]


def calibrate_row(
    model: CINGAN,
    defect: str,
    clean: Sequence[np.ndarray],
    defective: Sequence[np.ndarray],
    patch_size: int,
    steps: int = 60,
    seed: int = 0,
) -> dict[str, float]:
    """Refit a learned row's heads, a handful of global numbers, on the whole set of frames
    (normalised, as for :func:`fit_cingan`) where each training batch saw a few patches.

    1. **Out-of-focus light wider than a quarter patch** (σ ≥ ``patch_size`` / 4). A patch
       sees such light as a near-constant offset, which standardisation removes, so the
       batches cannot judge it: a haze row learned from 10 frames put ~5× too little there
       (README). Its amplitude (spread evenly over those blurs) is set by bisection so that
       the synthetic frames' mean :func:`floor_slope` equals the defective frames'; it stays 0
       unless the defective frames' slope exceeds the synthetic frames' without it by two
       standard errors, so a defect without haze gets none.
    2. **Line and noise heads**: ``steps`` full-batch Adam steps on :func:`style_loss` over
       fixed crops of the frames with fixed noise draws, a deterministic objective. 200
       batch steps had left a stripes row's row-gain sd at 0.004, where the simulator's is
       0.05–0.2; this takes it to ~0.2.

    Returns ``{"out_of_focus_light", "style_loss_before", "style_loss_after"}``.
    """
    d = model.defect_index(defect)
    pick = np.linspace(0, len(clean) - 1, min(len(clean), _CALIBRATION_FRAMES)).round()
    stacks = [out_of_focus(_even(clean[int(i)])) for i in np.unique(pick)]
    real = [np.asarray(_even(f), np.float32)[None] for f in defective]
    amplitude = _calibrate_out_of_focus(model, defect, stacks, real, patch_size, seed)
    before, after = _refit_line_and_noise_heads(model, d, stacks, real, steps, seed)
    return {"out_of_focus_light": amplitude, "style_loss_before": before,
            "style_loss_after": after}


def _calibrate_out_of_focus(
    model: CINGAN,
    defect: str,
    stacks: Sequence[np.ndarray],
    real: Sequence[np.ndarray],
    patch_size: int,
    seed: int,
) -> float:
    """Set the row's wide out-of-focus light by bisection on :func:`floor_slope` (step 1 of
    :func:`calibrate_row`); return its amplitude."""
    wide = torch.tensor([s >= patch_size / 4 for s in OUT_OF_FOCUS_SIGMAS_PX])
    if not bool(wide.any()):
        return 0.0
    row = model.generator.haze.log_coeff[model.defect_index(defect)]

    def slope_with(amplitude: float) -> float:
        with torch.no_grad():
            row[wide] = math.log(max(amplitude / int(wide.sum()), 1e-8))
        return _synthetic_slope(model, defect, stacks, seed)

    real_slopes = torch.cat([floor_slope(torch.from_numpy(f)[None]) for f in real])
    target = float(real_slopes.mean())
    spread = float(real_slopes.std()) / math.sqrt(len(real)) if len(real) > 1 else 0.0
    amplitude = 0.0
    if slope_with(0.0) + 2 * spread < target:
        low, high = 0.0, 8.0
        if slope_with(high) < target:
            low = high
        for _ in range(12):
            mid = (low + high) / 2
            low, high = (mid, high) if slope_with(mid) < target else (low, mid)
        amplitude = (low + high) / 2
    slope_with(amplitude)
    return amplitude


def _refit_line_and_noise_heads(
    model: CINGAN,
    d: int,
    stacks: Sequence[np.ndarray],
    real: Sequence[np.ndarray],
    steps: int,
    seed: int,
) -> tuple[float, float]:
    """Full-batch Adam on row ``d``'s line and noise heads (step 2 of :func:`calibrate_row`);
    return the style loss before and after."""
    gen = model.generator
    rng = torch.Generator().manual_seed(seed)
    side = min(_CALIBRATION_CROP, *(min(f.shape[-2:]) for f in [*stacks, *real]))
    side -= side % model.multiple
    clean_crops = _crops(stacks, _CALIBRATION_FRAMES, side, rng)
    real_crops = _crops(real, _CALIBRATION_FRAMES, side, rng, turn=False)
    real_stats = style_statistics(_standardise(real_crops))
    idx = model._index(d, len(clean_crops), clean_crops.device)

    def loss() -> Tensor:
        fake, _ = gen(clean_crops, idx, torch.Generator().manual_seed(seed))
        return _style_distance(style_statistics(_standardise(fake)), real_stats)

    heads = [gen.lines.log_row_sd[d], gen.lines.log_column_sd[d],
             gen.noise.log_gain[d], gen.noise.log_floor[d]]
    trainable = {p: p.requires_grad for p in gen.parameters()}
    gen.requires_grad_(False)
    for p in heads:
        p.requires_grad_(True)
    opt = torch.optim.Adam(heads, lr=0.1)
    with torch.no_grad():
        before = float(loss())
    for _ in range(steps):
        value = loss()
        opt.zero_grad(set_to_none=True)
        value.backward()
        opt.step()
    with torch.no_grad():
        after = float(loss())
    for p, flag in trainable.items():
        p.requires_grad_(flag)
    return before, after


def simulated_defect_frames(
    task: str, n: int, seed: int, size: int
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Unpaired (clean, defective) frames of one simulator task, in camera units.

    Defective frames are the degraded members of ``make_pairs(task, n, seed)``; clean ones the
    targets of an *independent* draw (``seed + 1``), so no frame of one set has its partner in
    the other. Stacks (``axial_inpaint``) contribute every plane as a frame.
    """
    degraded, _, _ = make_pairs(task, n, seed, size)
    _, target, _ = make_pairs(task, n, seed + 1, size)
    return list(target.reshape(-1, size, size)), list(degraded.reshape(-1, size, size))


def pretrain_cingan(
    defects: Sequence[str] = DEFAULT_DEFECTS,
    n: int = 8,
    seed: int = 0,
    config: GANTrainConfig | None = None,
    size: int = 128,
    model_config: CINGANConfig | None = None,
    progress: Callable[[int, int, dict[str, float]], None] | None = None,
) -> CINGAN:
    """Multi-defect, unpaired pre-training on the simulator's defect tasks.

    ``n`` pairs of side ``size`` per task are simulated (:func:`simulated_defect_frames`,
    task ``i`` with seed ``seed + 2 i``); the model gets one CIN row per task, in order.
    """
    defects = tuple(defects)
    model_config = model_config or CINGANConfig(defects=defects)
    if model_config.defects != defects:
        raise ValueError(
            f"model_config.defects {model_config.defects} differ from defects {defects}"
        )
    config = config or GANTrainConfig(steps=50 * len(defects), seed=seed)
    torch.manual_seed(seed)
    model = CINGAN(model_config)
    clean, defective = {}, {}
    for i, task in enumerate(defects):
        c, d = simulated_defect_frames(task, n, seed + 2 * i, size)
        clean[task] = normalise_frames(c, model_config.pmin, model_config.pmax)
        defective[task] = normalise_frames(d, model_config.pmin, model_config.pmax)
    fit_cingan(model, clean, defective, config, progress)
    return model


@torch.no_grad()
def divergence_psnr(
    model: CINGAN, defect: str, clean: Sequence[np.ndarray], seed: int = 0
) -> float:
    """Mean PSNR(clean, G(clean)) over normalised 2-D frames (``metrics.psnr``: affine fit).

    The seed's acceptance check: it should approach PSNR(clean, real defect) as the defect is
    learned (seed 002, Fig. 7). Frames need even sides.
    """
    generator = torch.Generator().manual_seed(seed)
    scores = []
    for frame in clean:
        x = torch.from_numpy(np.ascontiguousarray(frame, np.float32))[None, None]
        y = model.synthesise(x, defect, generator)[0, 0].numpy()
        scores.append(psnr(y, frame))
    return float(np.mean(scores))
