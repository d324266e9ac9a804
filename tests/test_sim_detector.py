"""Detector statistics: a flat field's mean and variance follow Poisson + read noise."""

from __future__ import annotations

import numpy as np
import pytest

from live_restore.sim.detector import Detector, analogue_lowpass, eight_bit, spatial_lowpass


@pytest.mark.parametrize(
    ("photons", "gain", "offset", "read"),
    [
        (5.0, 1.0, 0.0, 0.0),
        (20.0, 2.0, 100.0, 3.0),
        (100.0, 0.5, 10.0, 1.5),
    ],
)
def test_flat_field_mean_and_variance(
    photons: float, gain: float, offset: float, read: float
) -> None:
    d = Detector(gain=gain, offset=offset, read_noise=read)
    img = d.sample(np.full((512, 512), photons), np.random.default_rng(0))
    assert img.mean() == pytest.approx(offset + gain * photons, rel=0.01)
    assert img.var() == pytest.approx(gain**2 * photons + read**2, rel=0.03)


def test_quantisation_clips_to_bit_depth() -> None:
    d = Detector(gain=4.0, offset=50.0, bit_depth=8)
    img = d.sample(np.full((64, 64), 100.0), np.random.default_rng(0))
    assert img.max() == 255 and np.all(img == np.rint(img))


def test_bad_detector_values() -> None:
    with pytest.raises(ValueError, match="-1"):
        Detector(gain=-1.0)
    with pytest.raises(ValueError, match="-2"):
        Detector().sample(np.array([1.0, -2.0]), np.random.default_rng(0))


def _neighbour_correlation(noise: np.ndarray, axis: int) -> float:
    a = noise - noise.mean()
    lead = [slice(None)] * 2
    lag = [slice(None)] * 2
    lead[axis], lag[axis] = slice(1, None), slice(None, -1)
    return float(np.mean(a[tuple(lead)] * a[tuple(lag)]) / np.mean(a * a))


@pytest.mark.parametrize("pole", [0.2, 0.5])
def test_line_lowpass_correlates_horizontal_neighbours_by_its_pole(pole: float) -> None:
    white = np.random.default_rng(0).standard_normal((256, 256)) + 100.0
    out = analogue_lowpass(white, pole)
    assert _neighbour_correlation(out, axis=1) == pytest.approx(pole, abs=0.02)
    assert abs(_neighbour_correlation(out, axis=0)) < 0.02
    assert out.mean() == pytest.approx(100.0, abs=0.01)  # unit DC gain, no start-up transient
    with pytest.raises(ValueError, match="pole"):
        analogue_lowpass(white, 1.0)


def test_camera_lowpass_correlates_both_directions_and_keeps_the_mean() -> None:
    white = np.random.default_rng(1).standard_normal((256, 256)) + 50.0
    out = spatial_lowpass(white, 0.8)
    assert _neighbour_correlation(out, 0) > 0.4 and _neighbour_correlation(out, 1) > 0.4
    assert out.mean() == pytest.approx(50.0, abs=0.01)
    assert np.array_equal(spatial_lowpass(white, 0.0), white.astype(np.float32))


def test_eight_bit_rounds_and_clips_at_both_ends() -> None:
    out = eight_bit(np.array([[-10.0, 0.2, 10.4, 100.0]]), scale=2.0, black_level=-1.0)
    assert out.tolist() == [[0.0, 0.0, 20.0, 199.0]]
    assert eight_bit(np.array([[500.0]]), 1.0, 0.0).item() == 255.0
