"""Data consistency: does a restored frame explain its raw frame, and nothing more?

The raw frame should be the restored one seen through the task's forward model ``F``
(affinely fitted to it: photometry is not structure) plus Poisson–Gaussian noise. With
``v = gain · F(restored) + floor`` estimated from the raw frame
(:func:`live_restore.models.noise.estimate_noise`, floored at a fraction of ``gain``), a
Gaussian ``G`` about a PSF wide and ``E(a) = mean((G * (a / √v))²) / Σ G²`` (white noise gives
1), the score is

    ``(E(raw − F(restored)) − 1) / max(E(raw − mean(raw)) − 1, 1)``:

the residual's energy beyond noise, as a fraction of the raw frame's own structure beyond
noise. Smoothing over about a PSF lets a coherent residual (an invented spot, a lost filament)
add up instead of drowning in per-pixel noise. Measuring it against the structure rather than
the noise keeps the score comparable across doses: in noise units any small systematic
difference dominates a bright frame. ≈ 0 is consistent; 0.1 means a tenth of the structure is
unexplained (or invented); below 0 the restoration follows the noise.
"""

from __future__ import annotations

import numpy as np
import scipy.ndimage

from live_restore.metrics import fit_affine
from live_restore.models.noise import estimate_noise
from live_restore.models.normalisation import apply_forward_model

__all__ = ["SMOOTHING_SIGMA_PX", "VARIANCE_FLOOR_GAINS", "consistency_score"]

#: σ of the Gaussian the normalised residual is smoothed with: about a confocal PSF.
SMOOTHING_SIGMA_PX = 1.5
#: The per-pixel variance is floored at this fraction of the gain, so a predicted zero does
#: not divide by zero.
VARIANCE_FLOOR_GAINS = 0.25


def _kernel_energy(sigma: float) -> float:
    """``Σ G_σ²`` of scipy's Gaussian filter: the variance it leaves of unit white noise."""
    delta = np.zeros((8 * int(sigma + 1) + 1,) * 2)
    delta[delta.shape[0] // 2, delta.shape[1] // 2] = 1.0
    return float((scipy.ndimage.gaussian_filter(delta, sigma) ** 2).sum())


_KERNEL_ENERGY = _kernel_energy(SMOOTHING_SIGMA_PX)


def consistency_score(
    raw: np.ndarray, restored: np.ndarray, forward_model: str, blur_sigma_px: float = 0.0
) -> float:
    """Data-consistency score of one restored ``(Y, X)`` frame against its raw frame, both in
    camera units, under the forward model ``forward_model`` (module docstring)."""
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
    predicted = fit_affine(apply_forward_model(restored, forward_model, blur_sigma_px), raw)
    std = np.sqrt(
        np.maximum(noise.gain * predicted + noise.floor, VARIANCE_FLOOR_GAINS * noise.gain)
    )

    def energy(difference: np.ndarray) -> float:
        smoothed = scipy.ndimage.gaussian_filter(
            difference / std, SMOOTHING_SIGMA_PX, mode="reflect"
        )
        return float(np.mean(smoothed**2) / _KERNEL_ENERGY)

    excess = energy(raw - predicted) - 1.0
    return excess / max(energy(raw - raw.mean()) - 1.0, 1.0)
