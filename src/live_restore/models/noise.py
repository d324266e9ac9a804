"""Poisson–Gaussian noise estimation and the generalised Anscombe transform.

Fluorescence detectors give ``x = a * Poisson(lambda) + N(mu, sigma^2)``: the variance of a
pixel grows linearly with its mean, ``var = a * mean + b`` with ``b = sigma^2 - a * mu``.
Estimating ``(a, b)`` from the frame itself lets a restorer stabilise the variance instead of
guessing the noise level (notes/transfer.md, lesson 2).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import numpy as np

_BLOCK = 8
_MAD_TO_SIGMA = 1.4826


@dataclass(frozen=True)
class NoiseModel:
    """Affine variance model ``var(x) = gain * E[x] + floor`` of one frame (camera units)."""

    gain: float
    floor: float


def estimate_noise(frame: np.ndarray) -> NoiseModel:
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
    # Bin by mean; in each bin keep the median variance (robust to the few blocks on edges).
    edges = np.unique(np.quantile(block_mean, np.linspace(0, 1, 17)))
    means, variances = [], []
    for lo, hi in pairwise(edges):
        sel = (block_mean >= lo) & (block_mean <= hi)
        if sel.sum() >= 4:
            means.append(np.median(block_mean[sel]))
            variances.append(np.median(block_var[sel]))
    if len(means) < 2 or np.ptp(means) <= 1e-12:
        var = float(np.median(block_var))
        return NoiseModel(gain=max(var / max(float(np.mean(block_mean)), 1e-6), 1e-6), floor=0.0)
    gain, floor = np.polyfit(np.asarray(means), np.asarray(variances), 1)
    return NoiseModel(gain=float(max(gain, 1e-6)), floor=float(floor))


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
