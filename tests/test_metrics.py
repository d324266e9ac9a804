"""PSNR/SSIM in the CARE convention and Fourier ring correlation."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from live_restore.metrics import fit_affine, frc_resolution, psnr, ssim


def _specimen(seed: int = 0, size: int = 128) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.zeros((size, size))
    img[rng.integers(0, size, 60), rng.integers(0, size, 60)] = 1.0
    return img


def test_psnr_is_invariant_to_affine_scaling_and_ranks_noise():
    ref = gaussian_filter(_specimen(), 2.0)
    rng = np.random.default_rng(1)
    low = ref + rng.normal(0, 0.01, ref.shape)
    high = ref + rng.normal(0, 0.003, ref.shape)
    assert psnr(low * 7 + 100, ref) == pytest.approx(psnr(low, ref), abs=1e-6)
    assert psnr(high, ref) > psnr(low, ref) + 5
    assert ssim(high, ref) > ssim(low, ref)
    assert ssim(ref, ref) == pytest.approx(1.0)


def test_fit_affine_recovers_scale():
    rng = np.random.default_rng(2)
    ref = rng.random((32, 32))
    np.testing.assert_allclose(fit_affine(3 * ref - 2, ref), ref, atol=1e-12)


def test_metrics_refuse_mismatched_shapes():
    with pytest.raises(ValueError, match="shape mismatch"):
        psnr(np.zeros((4, 4)), np.zeros((5, 5)))


def test_frc_resolution_tracks_blur():
    """Two noise realisations of a sharper image correlate to higher frequencies."""
    rng = np.random.default_rng(3)
    specimen = _specimen(size=256) * 400
    res = {}
    for sigma in (1.0, 3.0):
        rate = gaussian_filter(specimen, sigma) + 2
        a, b = rng.poisson(rate), rng.poisson(rate)
        res[sigma] = frc_resolution(a, b, pixel_size_um=0.02)
    assert res[1.0] < res[3.0]
