"""Poisson–Gaussian noise estimation and the generalised Anscombe transform.

Fluorescence detectors give ``x = a * Poisson(lambda) + N(mu, sigma^2)``: the variance of a
pixel grows linearly with its mean, ``var = a * mean + b`` with ``b = sigma^2 - a * mu``.
Estimating ``(a, b)`` from the frame itself lets a restorer stabilise the variance instead of
guessing the noise level.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cache
from itertools import pairwise
from typing import Literal

import numpy as np

logger = logging.getLogger(__name__)

_BLOCK = 8
_MAD_TO_SIGMA = 1.4826
_CORRELATED_BLOCK = 16
_CORRELATION_RADIUS = 2
_ADC_BITS = (8, 10, 12, 14, 16)
_UNRELIABLE_ATTENUATION = 0.1

EstimatorMethod = Literal["diagonal", "correlated"]


@dataclass(frozen=True)
class NoiseModel:
    """Affine variance model ``var(x) = gain * E[x] + floor`` of one frame (camera units).

    ``correlation`` is the noise's normalised autocorrelation on a ``(2R+1, 2R+1)`` window
    (1 in the centre; None when it was not measured, i.e. assumed white): a restorer that
    shrinks wavelet bands needs it, because correlated noise puts more of its power into the
    coarse bands than white noise of the same pixel variance. ``quantisation_step`` is the ADC
    step in camera units (0 for unquantised data); its ``step**2 / 12`` is part of ``floor``.
    ``source`` says whether the model was read off one frame or fitted to a calibration burst.
    """

    gain: float
    floor: float
    correlation: tuple[tuple[float, ...], ...] | None = None
    quantisation_step: float = 0.0
    source: Literal["frame", "calibration"] = "frame"

    def variance(self, mean: np.ndarray | float) -> np.ndarray:
        """Pixel noise variance at expected intensity ``mean`` (camera units), never negative."""
        return np.maximum(self.gain * np.asarray(mean, dtype=np.float64) + self.floor, 0.0)

    def correlation_kernel(self) -> np.ndarray:
        """The autocorrelation window as a float64 array (``[[1.0]]`` for white noise)."""
        return np.array(self.correlation if self.correlation is not None else [[1.0]])

    def band_attenuation(self) -> float:
        """The fraction of the pixel variance the finest diagonal Haar band keeps (1 for white
        noise): ``1 - r_h - r_v + (r_d + r_a) / 2`` for the neighbour correlations ``r``."""
        return diagonal_band_attenuation(self.correlation_kernel())


def diagonal_band_attenuation(window: np.ndarray) -> float:
    """``1 - r_h - r_v + (r_d + r_a) / 2`` of a centred autocorrelation ``window``: the
    variance the finest diagonal Haar band keeps of unit-variance noise with that correlation
    (a 1×1 window is white noise: 1)."""
    window = np.asarray(window, dtype=np.float64)
    c = window.shape[0] // 2
    if c == 0:
        return 1.0
    return float(1.0 - window[c, c + 1] - window[c + 1, c]
                 + (window[c + 1, c + 1] + window[c + 1, c - 1]) / 2.0)


def estimate_noise(frame: np.ndarray, method: EstimatorMethod = "diagonal") -> NoiseModel:
    """Fit ``var = gain * mean + floor`` to one frame.

    ``method="diagonal"`` reads the finest diagonal Haar band (below); it assumes white noise
    and reads correlated noise low. ``method="correlated"`` is
    :func:`estimate_correlated_noise`, which also measures the correlation, leaves clipped
    pixels out and returns it in the model.
    """
    if method == "correlated":
        return estimate_correlated_noise(frame)
    if method != "diagonal":
        raise ValueError(f"unknown noise estimator {method!r}; use 'diagonal' or 'correlated'")
    return _estimate_from_diagonal_band(frame)


def _estimate_from_diagonal_band(frame: np.ndarray) -> NoiseModel:
    """Fit ``var = gain * mean + floor`` from the frame's finest diagonal Haar band.

    The diagonal band of a 2×2 block cancels any locally linear signal, so what is left is
    noise. Per 8×8 block we take the local mean and a robust noise variance, then fit a line
    through the blocks with the least structure (lowest variance per mean bin), which keeps
    edges of specimens from inflating the estimate.
    """
    x = np.asarray(frame, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"estimate_noise expects a 2-D frame, got shape {x.shape}")
    h, w = (x.shape[0] // 2) * 2, (x.shape[1] // 2) * 2
    if h < 2 * _BLOCK or w < 2 * _BLOCK:
        # Too small to fit a line: treat as pure Poisson with unit gain.
        return NoiseModel(gain=1.0, floor=0.0)
    x = x[:h, :w]
    diag = (x[0::2, 0::2] - x[0::2, 1::2] - x[1::2, 0::2] + x[1::2, 1::2]) / 2.0
    mean = (x[0::2, 0::2] + x[0::2, 1::2] + x[1::2, 0::2] + x[1::2, 1::2]) / 4.0
    bh, bw = diag.shape[0] // _BLOCK, diag.shape[1] // _BLOCK
    d = diag[: bh * _BLOCK, : bw * _BLOCK].reshape(bh, _BLOCK, bw, _BLOCK).transpose(0, 2, 1, 3)
    m = mean[: bh * _BLOCK, : bw * _BLOCK].reshape(bh, _BLOCK, bw, _BLOCK).transpose(0, 2, 1, 3)
    d = d.reshape(bh * bw, -1)
    block_mean = m.reshape(bh * bw, -1).mean(axis=1)
    mad = np.median(np.abs(d - np.median(d, axis=1, keepdims=True)), axis=1)
    block_var = (_MAD_TO_SIGMA * mad) ** 2
    gain, floor = _fit_affine_variance(block_mean, block_var)
    return NoiseModel(gain=gain, floor=floor)


def _fit_affine_variance(block_mean: np.ndarray, block_var: np.ndarray) -> tuple[float, float]:
    """Line through the median variance of 16 quantile bins of the block means.

    The median per bin keeps the few blocks that straddle edges of specimens from inflating
    the fit; a frame with a single intensity level gets a pure-Poisson line through it.
    """
    edges = np.unique(np.quantile(block_mean, np.linspace(0, 1, 17)))
    means, variances = [], []
    for lo, hi in pairwise(edges):
        sel = (block_mean >= lo) & (block_mean <= hi)
        if sel.sum() >= 4:
            means.append(np.median(block_mean[sel]))
            variances.append(np.median(block_var[sel]))
    if len(means) < 2 or np.ptp(means) <= 1e-12:
        var = float(np.median(block_var))
        return max(var / max(float(np.mean(block_mean)), 1e-6), 1e-6), 0.0
    gain, floor = np.polyfit(np.asarray(means), np.asarray(variances), 1)
    return float(max(gain, 1e-6)), float(floor)


def quantisation_step(frame: np.ndarray) -> float:
    """The ADC step of an integer-valued frame (greatest common spacing of its values).

    1 for plain 8- or 12-bit data, 16 for 12-bit data shifted into the top of 16 bits; 0 for a
    frame that is not integer-valued (already scaled or averaged), which has no visible step.
    """
    values = np.unique(np.asarray(frame))
    if values.size < 2 or not np.all(np.isfinite(values)) or np.any(values != np.rint(values)):
        return 0.0
    return float(np.gcd.reduce(np.diff(values).astype(np.int64)))


def clipped_pixels(frame: np.ndarray) -> np.ndarray:
    """Boolean mask of pixels at an ADC limit of an integer-valued frame.

    Zero is the bottom of every ADC; the top is a full-scale value ``2**bits - step`` for a
    common bit depth. A clipped pixel has lost the part of its noise beyond the limit, so its
    neighbourhood would read the noise low. Float frames that are not integer-valued have no
    visible ADC and nothing is masked.
    """
    x = np.asarray(frame)
    step = quantisation_step(x)
    if step == 0:
        return np.zeros(x.shape, dtype=bool)
    top = float(x.max())
    full_scale = any(top == 2.0**bits - step for bits in _ADC_BITS)
    return (x == 0) | ((x == top) if full_scale else False)


def estimate_correlated_noise(frame: np.ndarray) -> NoiseModel:
    """Fit ``var = gain * mean + floor`` and the noise correlation to one frame.

    Two measurements, each where it is reliable:

    - The noise level comes from the finest diagonal Haar band, which cancels locally linear
      signal, as mean squares per 16×16 block (not a median absolute deviation: at a few
      photons per pixel the noise is discrete and skewed, and the MAD of a band that takes a
      handful of values reads it far too low). The median block per intensity bin keeps blocks
      on specimen edges out of the line fit.
    - Noise that is correlated between neighbouring pixels (a scanner's analogue bandwidth, a
      camera's demosaicing or binning) partly cancels in that band: its variance is
      ``var * (1 - r_h - r_v + (r_d + r_a) / 2)`` for neighbour correlations ``r``. The
      correlation is measured on the flattest blocks (see :func:`_flat_block_correlation`) and the
      band variance is divided by that factor.

    Blocks with a clipped pixel are left out (see :func:`clipped_pixels`); they fall back to
    the diagonal-band estimate when fewer than 8 remain. The quantisation noise
    (``step**2 / 12``) is white and part of every pixel's variance, so it sits in ``floor``
    and in the centre of the correlation window.
    """
    x = np.asarray(frame, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"estimate_noise expects a 2-D frame, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("the frame must not contain NaN or infinite values")
    b = _CORRELATED_BLOCK
    bh, bw = x.shape[0] // b, x.shape[1] // b
    clipped = clipped_pixels(frame)[: bh * b, : bw * b].reshape(bh, b, bw, b).any(axis=(1, 3))
    if bh * bw - int(clipped.sum()) < 8:
        logger.warning(
            "frame %s has fewer than 8 unclipped %dx%d blocks; using the diagonal-band estimate",
            x.shape, b, b,
        )
        return _estimate_from_diagonal_band(x)
    blocks = x[: bh * b, : bw * b].reshape(bh, b, bw, b).transpose(0, 2, 1, 3)[~clipped]
    block_mean = blocks.mean(axis=(1, 2))
    band_var = np.mean(_diagonal_filter(blocks)[:, ::2, ::2] ** 2, axis=(1, 2))
    window = _flat_block_correlation(blocks, block_mean)
    attenuation = diagonal_band_attenuation(window)
    if attenuation < _UNRELIABLE_ATTENUATION:
        logger.warning(
            "noise correlated over several pixels keeps only %.2f of its variance in the finest "
            "band; the single-frame estimate is unreliable, calibrate from a burst instead",
            attenuation,
        )
    gain, floor = _fit_affine_variance(block_mean, band_var / max(attenuation, 0.05))
    return NoiseModel(
        gain=gain,
        floor=floor,
        correlation=tuple(tuple(float(v) for v in row) for row in window),
        quantisation_step=quantisation_step(frame),
    )


def _flat_block_correlation(blocks: np.ndarray, block_mean: np.ndarray) -> np.ndarray:
    """Noise autocorrelation of the frame's flattest blocks as a ``(2R+1, 2R+1)`` window.

    Flat blocks are the lower half, in each of 16 intensity bins, by the variance of their
    4×4-binned means: a coarse measure of structure to which the fine-scale noise adds almost
    nothing, so choosing on it does not bias the noise statistics. Per flat block, the
    diagonal-filtered block's lag sums are normalised by its energy; the median of each over
    the blocks is deconvolved to the noise's own correlation: the filter is linear, so the
    expected lag sums of a filtered block are a known linear map of the noise covariance at
    each lag (see :func:`_deconvolution`). The filter cancels locally bilinear signal, so
    little of the specimen leaks in.
    """
    n, b, _ = blocks.shape
    coarse = blocks.reshape(n, b // 4, 4, b // 4, 4).mean(axis=(2, 4)).var(axis=(1, 2))
    edges = np.quantile(block_mean, np.linspace(0, 1, 17)[1:-1])
    bins = np.searchsorted(edges, block_mean)
    flat = np.zeros(n, dtype=bool)
    for k in np.unique(bins):
        members = bins == k
        flat |= members & (coarse <= np.median(coarse[members]))
    sums = _lag_sums(_diagonal_filter(blocks[flat]), correlation_lags(_CORRELATION_RADIUS + 1))
    energetic = sums[:, 0] > 0
    if not energetic.any():
        return np.asarray(correlation_window(np.zeros(len(correlation_lags()) - 1)))
    typical = np.median(sums[energetic] / sums[energetic, :1], axis=0)
    covariance = _deconvolution(b) @ typical
    return np.asarray(correlation_window(covariance[1:] / covariance[0]))


def correlation_lags(radius: int = _CORRELATION_RADIUS) -> tuple[tuple[int, int], ...]:
    """The half-plane of lags ``(dy, dx)`` within ``radius``, starting with ``(0, 0)``."""
    lags = [(0, dx) for dx in range(radius + 1)]
    lags += [(dy, dx) for dy in range(1, radius + 1) for dx in range(-radius, radius + 1)]
    return tuple(lags)


def correlation_window(rho: np.ndarray, radius: int = _CORRELATION_RADIUS) -> tuple:
    """Symmetric ``(2R+1, 2R+1)`` window from the correlations at ``correlation_lags()[1:]``."""
    window = np.zeros((2 * radius + 1, 2 * radius + 1))
    for (dy, dx), value in zip(correlation_lags(radius), [1.0, *np.asarray(rho)], strict=True):
        window[radius + dy, radius + dx] = window[radius - dy, radius - dx] = value
    return tuple(tuple(float(v) for v in row) for row in window)


def _diagonal_filter(blocks: np.ndarray) -> np.ndarray:
    """The finest diagonal Haar filter at every pixel position: ``(N, B-1, B-1)``."""
    return (blocks[:, :-1, :-1] - blocks[:, :-1, 1:] - blocks[:, 1:, :-1] + blocks[:, 1:, 1:]) / 2


def _lag_pairs(b: int, lags: tuple[tuple[int, int], ...]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Flat indices of the pixel pairs at each lag inside a ``b×b`` block."""
    index = np.arange(b * b).reshape(b, b)
    return [
        (index[: b - dy, max(0, -dx) : b - max(0, dx)].ravel(),
         index[dy:, max(0, dx) : b - max(0, -dx)].ravel())
        for dy, dx in lags
    ]


def _lag_sums(values: np.ndarray, lags: tuple[tuple[int, int], ...]) -> np.ndarray:
    """``sum_i v_i v_{i+lag}`` over the pairs inside each block of ``(N, B, B)``: ``(N, L)``."""
    n, b, _ = values.shape
    flat = values.reshape(n, b * b)
    return np.stack([np.einsum("ni,ni->n", flat[:, a], flat[:, c])
                     for a, c in _lag_pairs(b, lags)], axis=1)


@cache
def _deconvolution(b: int) -> np.ndarray:
    """Least-squares inverse of the map from the noise covariance of a ``b×b`` block at
    :func:`correlation_lags` to the expected lag sums of its diagonal-filtered block, measured
    one lag further out than the window (the filter spreads each lag by one pixel, and with
    those sums the map has full rank)."""
    filter_matrix = _diagonal_filter(np.eye(b * b).reshape(b * b, b, b)).reshape(b * b, -1).T
    measured = _lag_pairs(b - 1, correlation_lags(_CORRELATION_RADIUS + 1))
    columns = []
    for k, (a, c) in enumerate(_lag_pairs(b, correlation_lags())):
        covariance = np.zeros((b * b, b * b))
        covariance[a, c] = 1.0
        covariance = np.eye(b * b) if k == 0 else covariance + covariance.T
        expected = filter_matrix @ covariance @ filter_matrix.T
        columns.append([expected[a2, c2].sum() for a2, c2 in measured])
    return np.linalg.pinv(np.array(columns).T)


def anscombe(x: np.ndarray, noise: NoiseModel) -> np.ndarray:
    """Generalised Anscombe transform: Poisson–Gaussian ``x`` → unit-variance Gaussian."""
    a = noise.gain
    return (2.0 / a) * np.sqrt(np.maximum(a * x + 0.375 * a * a + noise.floor, 0.0))


def inverse_anscombe(d: np.ndarray, noise: NoiseModel) -> np.ndarray:
    """Closed-form approximation of the exact unbiased inverse (Mäkitalo & Foi 2011).

    The algebraic inverse is biased at low counts; the unbiased inverse of the Poisson case is
    applied in normalised units (x/a), then the Gaussian part of the floor is removed.
    """
    a = noise.gain
    d = np.asarray(d, dtype=np.float64)
    s = np.sqrt(1.5)
    # Below 2*sqrt(3/8) (the transform of a zero count) the series diverges; the exact
    # unbiased inverse is 0 there.
    safe = np.maximum(d, 2.0 * np.sqrt(0.375))
    poisson = (
        safe**2 / 4.0 + s / 4.0 / safe - 11.0 / 8.0 / safe**2 + 5.0 * s / 8.0 / safe**3 - 0.125
    )
    poisson = np.where(d < 2.0 * np.sqrt(0.375), 0.0, np.maximum(poisson, 0.0))
    return a * (poisson - noise.floor / (a * a))
