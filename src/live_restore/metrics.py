"""Image-quality metrics in the CARE convention, and Fourier ring correlation.

Restored frames and references rarely share a scale (photon counts at another dose, another
modality), so PSNR and SSIM are computed after normalising the reference by percentiles and
fitting the prediction to it with the least-squares affine map (CSBDeep's ``normalize_minmse``).
"""

from __future__ import annotations

import numpy as np
from skimage.metrics import peak_signal_noise_ratio, structural_similarity


def normalize_percentile(
    x: np.ndarray, pmin: float = 0.1, pmax: float = 99.9
) -> tuple[np.ndarray, float, float]:
    """Map the ``pmin``/``pmax`` percentiles of ``x`` to 0/1 (no clipping); return lo, scale."""
    x = np.asarray(x, dtype=np.float64)
    lo, hi = np.percentile(x, [pmin, pmax])
    scale = float(hi - lo) if hi > lo else 1.0
    return (x - lo) / scale, float(lo), scale


def fit_affine(pred: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Least-squares ``a * pred + b`` closest to ``ref``."""
    p = np.asarray(pred, dtype=np.float64)
    r = np.asarray(ref, dtype=np.float64)
    pc = p - p.mean()
    var = float((pc * pc).mean())
    a = float((pc * (r - r.mean())).mean()) / var if var > 0 else 0.0
    return a * pc + r.mean()


def _prepare(pred: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if np.shape(pred) != np.shape(ref):
        raise ValueError(
            f"shape mismatch: prediction {np.shape(pred)} vs reference {np.shape(ref)}"
        )
    ref_n, _, _ = normalize_percentile(ref)
    return fit_affine(pred, ref_n), ref_n


def psnr(pred: np.ndarray, ref: np.ndarray) -> float:
    """PSNR (dB, data range 1) of ``pred`` affinely fitted to the percentile-normalised ``ref``."""
    p, r = _prepare(pred, ref)
    return float(peak_signal_noise_ratio(r, p, data_range=1.0))


def ssim(pred: np.ndarray, ref: np.ndarray) -> float:
    """SSIM (Gaussian window σ 1.5, data range 1) after the same normalisation as :func:`psnr`."""
    p, r = _prepare(pred, ref)
    if min(r.shape) < 7:
        raise ValueError(f"SSIM needs frames of at least 7×7 pixels, got {r.shape}")
    return float(
        structural_similarity(
            r, p, data_range=1.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
        )
    )


def frc_curve(
    a: np.ndarray, b: np.ndarray, n_bins: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Fourier ring correlation of two independent images of one field.

    Returns (spatial frequency in cycles/pixel, correlation) per ring. A Hann window keeps
    the frame edges from adding a spurious cross at the axes.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"FRC needs two 2-D images of one shape, got {a.shape} and {b.shape}")
    window = np.outer(np.hanning(a.shape[0]), np.hanning(a.shape[1]))
    fa = np.fft.fftshift(np.fft.fft2((a - a.mean()) * window))
    fb = np.fft.fftshift(np.fft.fft2((b - b.mean()) * window))
    fy = np.fft.fftshift(np.fft.fftfreq(a.shape[0]))
    fx = np.fft.fftshift(np.fft.fftfreq(a.shape[1]))
    radius = np.hypot(*np.meshgrid(fy, fx, indexing="ij"))
    n_bins = n_bins or min(a.shape) // 2
    edges = np.linspace(0.0, 0.5, n_bins + 1)
    ring = np.digitize(radius.ravel(), edges) - 1
    valid = (ring >= 0) & (ring < n_bins)
    ring = ring[valid]
    num = np.bincount(ring, (fa * np.conj(fb)).real.ravel()[valid], n_bins)
    pa = np.bincount(ring, (np.abs(fa) ** 2).ravel()[valid], n_bins)
    pb = np.bincount(ring, (np.abs(fb) ** 2).ravel()[valid], n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.where(pa * pb > 0, num / np.sqrt(pa * pb), 0.0)
    return (edges[:-1] + edges[1:]) / 2.0, corr


def frc_resolution(a: np.ndarray, b: np.ndarray, pixel_size_um: float = 1.0) -> float:
    """Resolution (in the unit of ``pixel_size_um``) where the FRC first drops below 1/7."""
    freq, corr = frc_curve(a, b)
    below = np.flatnonzero(corr[1:] < 1.0 / 7.0)
    if below.size == 0:
        return 2.0 * pixel_size_um  # correlated up to Nyquist
    k = below[0] + 1
    f0, f1, c0, c1 = freq[k - 1], freq[k], corr[k - 1], corr[k]
    f_cross = f0 + (c0 - 1.0 / 7.0) * (f1 - f0) / (c0 - c1) if c0 != c1 else f1
    return float(pixel_size_um / max(f_cross, 1e-9))
