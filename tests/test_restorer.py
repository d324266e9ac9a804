"""The classical restorer, its noise model, input checks and the model registry."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from live_restore.models.classical import ClassicalRestorer
from live_restore.models.noise import NoiseModel, anscombe, estimate_noise, inverse_anscombe
from live_restore.models.protocol import Restorer, check_batch
from live_restore.models.restorer import get_restorer, list_models


def _scene(shape=(128, 128)) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    blob = 60 * np.exp(-((xx - shape[1] / 2) ** 2 + (yy - shape[0] / 3) ** 2) / 300.0)
    return 10 + blob + 30 * (np.sin(xx / 6.0) > 0.9)


@pytest.mark.parametrize(
    ("gain", "read_sigma", "offset"), [(1.0, 0.0, 0.0), (3.0, 2.0, 100.0), (0.5, 1.0, 10.0)]
)
def test_noise_gain_estimated_within_a_third(gain, read_sigma, offset):
    rng = np.random.default_rng(1)
    truth = _scene((256, 256))
    frame = gain * rng.poisson(truth) + rng.normal(offset, read_sigma, truth.shape)
    est = estimate_noise(frame)
    assert est.gain == pytest.approx(gain, rel=0.35)


def test_anscombe_stabilises_variance_and_inverts():
    rng = np.random.default_rng(2)
    noise = NoiseModel(gain=2.0, floor=4.0 - 2.0 * 50)  # read sigma 2, offset 50
    for level in (5.0, 50.0):
        x = 2.0 * rng.poisson(level, 200_000) + rng.normal(50, 2, 200_000)
        assert np.std(anscombe(x, noise)) == pytest.approx(1.0, abs=0.08)
    d = anscombe(np.array([2.0 * 40 + 50]), noise)
    assert inverse_anscombe(d, noise)[0] == pytest.approx(2.0 * 40 + 50, rel=0.02)


@pytest.mark.parametrize("shape", [(128, 128), (97, 61), (1, 50), (3, 3)])
def test_classical_restores_any_shape_in_camera_units(shape):
    rng = np.random.default_rng(3)
    truth = _scene(shape)
    noisy = rng.poisson(truth).astype(np.float32)
    out = ClassicalRestorer().restore(noisy[None]).mean
    assert out.shape == (1, *shape) and out.dtype == np.float32
    if min(shape) >= 32:
        assert np.mean((out[0] - truth) ** 2) < 0.5 * np.mean((noisy - truth) ** 2)
        assert abs(out.mean() - truth.mean()) < 0.05 * truth.mean()


def test_check_batch_refuses_nan_and_bad_shapes():
    with pytest.raises(ValueError, match="NaN"):
        check_batch(np.full((2, 8, 8), np.nan, dtype=np.float32))
    with pytest.raises(ValueError, match="shape"):
        check_batch(np.zeros((1, 2, 8, 8)))
    with pytest.raises(TypeError, match="dtype"):
        check_batch(np.zeros((8, 8), dtype=bool))
    assert check_batch(np.zeros((8, 8), dtype=np.uint16)).shape == (1, 8, 8)


def test_registry_lists_and_builds_classical():
    assert "classical" in [row["name"] for row in list_models()]
    restorer = get_restorer("classical")
    assert isinstance(restorer, Restorer)
    assert restorer.version == ClassicalRestorer().version
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        get_restorer("nope")


def test_classical_imports_first_in_a_fresh_interpreter():
    # The registry names "classical" without importing it: that import used to be circular.
    code = "import live_restore.models.classical as c; print(c.ClassicalRestorer.name)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "classical"


def test_classical_has_no_outliers_at_low_counts_with_offset():
    """Pixels that stabilise to ~0 must invert to ~0 photons, not to a divergent series."""
    rng = np.random.default_rng(4)
    truth = 0.3 * _scene((128, 128)) / 10
    frame = rng.poisson(truth) + 10 + rng.normal(0, 0.5, truth.shape)
    out = ClassicalRestorer().restore(frame.astype(np.float32)).mean[0]
    assert out.max() <= 1.5 * frame.max()
    assert out.min() >= frame.min() - 5


@pytest.mark.parametrize(
    ("content", "message"),
    [("{not json", "not a valid JSON"), ('{"format": "other.thing"}', "known formats")],
)
def test_registry_refuses_broken_or_foreign_model_files(tmp_path, content, message):
    (tmp_path / "m.json").write_text(content)
    with pytest.raises(ValueError, match=message):
        get_restorer(str(tmp_path / "m.json"))


def test_a_name_with_avg_k_gives_the_mean_of_k_draws():
    from live_restore.models.restorer import get_restorer

    averaged = get_restorer("denoise_avg2", device="cpu")
    assert averaged.name == "denoise_avg2" and averaged.samples == 2
    assert averaged.version == get_restorer("denoise", device="cpu").version
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        get_restorer("nope_avg2")
