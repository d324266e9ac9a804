"""The CIN-GAN's networks: conditional instance norm, the physical heads, generator and critic.

Everything defect specific is a *row*: one small :class:`~torch.nn.Parameter` per defect in a
:class:`~torch.nn.ParameterList`. A new defect appends one row per table and trains only those,
so the defects already learned cannot change (freezing is ``requires_grad_(False)`` on the old
rows, and an optimiser handed only the new rows cannot touch the others, not even through
weight decay, which a gradient mask would not stop).
"""

from __future__ import annotations

import math

import numpy as np
import scipy.ndimage
import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "OUT_OF_FOCUS_SIGMAS_PX",
    "CINGenerator",
    "ConditionalInstanceNorm2d",
    "LineJitterHead",
    "OutOfFocusHead",
    "PoissonGaussianHead",
    "WGANCritic",
    "out_of_focus",
    "select_rows",
]

#: Blurs (Gaussian σ, pixels) whose non-negative mix is a defect's out-of-focus light.
OUT_OF_FOCUS_SIGMAS_PX: tuple[float, ...] = (4.0, 8.0, 16.0, 32.0)

#: Starting values of the heads' rows, small enough that an untrained head adds almost nothing:
#: Poisson gain ``a`` and Gaussian floor ``b`` (normalised units), row/column jitter sd and
#: out-of-focus weights.
INITIAL_NOISE_GAIN = 1e-2
INITIAL_NOISE_FLOOR = 1e-4
INITIAL_JITTER_SD = 1e-3
INITIAL_OUT_OF_FOCUS_WEIGHT = 1e-2

#: Negative slope of the critic's LeakyReLUs (the DCGAN/WGAN-GP value).
CRITIC_LEAKY_SLOPE = 0.2


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


def select_rows(rows: nn.ParameterList, defect: Tensor) -> Tensor:
    """``(B,)`` long defect indices → ``(B, width)`` rows; only the rows used get gradients."""
    return torch.stack(tuple(rows))[defect]


class ConditionalInstanceNorm2d(nn.Module):
    """Instance norm with one learned ``(gamma, beta)`` row per defect (Dumoulin et al.).

    ``z = gamma[d] * (x - mu) / sigma + beta[d]``, with ``mu``, ``sigma`` over each sample's
    spatial axes; the rows are separate parameters (module docstring).
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
        h = F.instance_norm(x)
        gamma = select_rows(self.gamma, defect)[:, :, None, None]
        beta = select_rows(self.beta, defect)[:, :, None, None]
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
    """Two 3×3 conv + CIN with an identity skip: the body is conditional too, so a defect can
    change what the residual blocks do, not only the encoder's and decoder's scale."""

    def __init__(self, channels: int, n_defects: int) -> None:
        super().__init__()
        self.first = _CINConv(channels, channels, n_defects, 3)
        self.conv = nn.Conv2d(channels, channels, 3, padding=1, padding_mode="reflect")
        self.norm = ConditionalInstanceNorm2d(channels, n_defects)

    def forward(self, x: Tensor, defect: Tensor) -> Tensor:
        return x + self.norm(self.conv(self.first(x, defect)), defect)


class PoissonGaussianHead(nn.Module):
    """Per-defect Poisson–Gaussian noise: ``x = mu + sqrt(a · relu(mu) + b) · ε``.

    Without it the synthetic noise would be a deterministic function of the clean frame,
    which is wrong for denoising. ``log a`` and ``log b`` are rows, so a new defect learns its
    own noise level. The Gaussian approximation of the Poisson part keeps the sample
    differentiable (reparameterised) in ``mu``, ``a`` and ``b``; in normalised units the
    photon count is large enough for it wherever the noise matters to the style statistics.
    """

    def __init__(self, n_defects: int) -> None:
        super().__init__()
        self.log_gain = _rows(n_defects, 1, math.log(INITIAL_NOISE_GAIN))
        self.log_floor = _rows(n_defects, 1, math.log(INITIAL_NOISE_FLOOR))

    def add_row(self) -> list[nn.Parameter]:
        """Append a row (mean of the existing rows); return its new parameters."""
        return _append_mean_rows(self.log_gain, self.log_floor)

    def variance(self, mu: Tensor, defect: Tensor) -> Tensor:
        """Per-pixel noise variance ``(B, 1, H, W)`` of the expected image ``mu``."""
        a = select_rows(self.log_gain, defect).exp()[:, :, None, None]
        b = select_rows(self.log_floor, defect).exp()[:, :, None, None]
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
    ``log s_c`` are rows; an untouched row (``s ≈ 0``) adds nothing.
    """

    def __init__(self, n_defects: int) -> None:
        super().__init__()
        self.log_row_sd = _rows(n_defects, 1, math.log(INITIAL_JITTER_SD))
        self.log_column_sd = _rows(n_defects, 1, math.log(INITIAL_JITTER_SD))

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
        s_r = select_rows(self.log_row_sd, defect).exp()[:, :, None, None]
        s_c = select_rows(self.log_column_sd, defect).exp()[:, :, None, None]
        return mu * (1 + s_r * rows) + s_c * cols


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
    sees ~45 px and instance norm removes each channel's spatial mean, so it cannot make such
    a background, and a free-form row trained from few frames can get its sign wrong. Here the
    blur is fixed and only the non-negative weights ``log c_k`` are rows; an untouched row
    (``c ≈ 0``) adds nothing. The blurs are taken of the whole frame (:func:`out_of_focus`)
    and cropped with the patch: a patch's haze comes from structure around it, and blurring
    the patch alone (padded) makes edge artefacts. A batch of patches cannot judge the wide
    blurs, so a new row's are set on whole frames
    (:func:`live_restore.adapt.cingan.calibrate.calibrate_row`).
    """

    def __init__(self, n_defects: int) -> None:
        super().__init__()
        self.log_coeff = _rows(
            n_defects, len(OUT_OF_FOCUS_SIGMAS_PX), math.log(INITIAL_OUT_OF_FOCUS_WEIGHT)
        )

    def add_row(self) -> list[nn.Parameter]:
        """Append a row (mean of the existing rows); return its new parameter."""
        return _append_mean_rows(self.log_coeff)

    def forward(self, blurred: Tensor, defect: Tensor) -> Tensor:
        """Out-of-focus light ``(B, 1, H, W)`` from the clean frames' blurs ``(B, K, H, W)``."""
        coeff = select_rows(self.log_coeff, defect).exp()
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

    def heads(self) -> tuple[nn.Module, ...]:
        """The physical heads (a handful of global numbers per defect)."""
        return (self.noise, self.haze, self.lines)

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
        """Append a row to every table; return the new parameters (the only ones to train).

        A new defect starts from the identity body (gate 0) and the heads' physics: started
        from the mean of the other rows, the body's residual would carry the other defects'
        blur and gain into the new defect's synthetic pairs.
        """
        new: list[nn.Parameter] = []
        for module in self.modules():
            if isinstance(module, ConditionalInstanceNorm2d):
                new += module.add_row()
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
        gate = select_rows(self.body_gate, defect)[:, :, None, None]
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
        layers: list[nn.Module] = [
            nn.Conv2d(1, channels, 3, padding=1), nn.LeakyReLU(CRITIC_LEAKY_SLOPE)
        ]
        ch = channels
        for _ in range(n_layers):
            layers += [nn.Conv2d(ch, 2 * ch, 4, stride=2, padding=1),
                       nn.LeakyReLU(CRITIC_LEAKY_SLOPE)]
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
        proj = (select_rows(self.embed, defect)[:, :, None, None] * h).sum(1, keepdim=True)
        return (self.out(h) + proj).mean(dim=(1, 2, 3))
