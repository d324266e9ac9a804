"""Detector statistics: a flat field's mean and variance follow Poisson + read noise."""

from __future__ import annotations

import numpy as np
import pytest

from live_restore.sim.detector import Detector


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
