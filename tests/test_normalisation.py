"""The normalisation object, the forward models and target matching, and the model configs
that embed them (old flat ``pmin``/``pmax`` files included)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.ndimage

from live_restore.models.configs import CAREConfig, DDPMConfig, ModelConfig, MSCGMConfig
from live_restore.models.normalisation import (
    CONFOCAL_BLUR_SIGMA_PX,
    Normalisation,
    apply_forward_model,
    match_target,
    normalise_frame,
)

WEIGHTS = Path(__file__).parents[1] / "src" / "live_restore" / "weights"


def test_normalisation_maps_percentiles_and_inverts_exactly():
    frame = np.arange(1000, dtype=np.float32).reshape(25, 40) * 3.0 + 100.0
    norm, lo, scale = Normalisation(pmin=1.0, pmax=99.0).normalise(frame)
    assert norm.dtype == np.float32
    assert np.percentile(norm, [1.0, 99.0]) == pytest.approx([0.0, 1.0], abs=1e-6)
    np.testing.assert_allclose(norm * scale + lo, frame, rtol=1e-6)
    flat, flat_lo, flat_scale = normalise_frame(np.full((4, 4), 7.0), 0.2, 99.8)
    assert (flat_lo, flat_scale) == (7.0, 1.0) and not flat.any()  # no division by zero


def test_normalisation_is_frozen_strict_and_checked():
    assert Normalisation().model_dump() == {
        "kind": "percentile", "pmin": 0.2, "pmax": 99.8, "inverse": "input"
    }
    with pytest.raises(ValueError, match=r"pmin must be below pmax, got 50\.0 and 40\.0"):
        Normalisation(pmin=50, pmax=40)
    with pytest.raises(ValueError, match="extra"):
        Normalisation(pmid=50)
    with pytest.raises(ValueError, match="frozen"):
        Normalisation().pmin = 1.0  # type: ignore[misc]


@pytest.mark.parametrize("config_type", [MSCGMConfig, CAREConfig, DDPMConfig])
def test_every_config_embeds_it_and_reads_old_flat_percentiles(config_type):
    old = config_type(task="denoise", pmin=1.0, pmax=99.0)  # files written before the object
    assert old.normalisation == Normalisation(pmin=1.0, pmax=99.0)
    assert (old.pmin, old.pmax) == (1.0, 99.0)
    dumped = old.model_dump(mode="json")
    assert "pmin" not in dumped and dumped["normalisation"]["pmax"] == 99.0
    assert config_type.model_validate(dumped) == old  # round trip through the new layout
    with pytest.raises(ValueError, match="either normalisation or pmin/pmax"):
        config_type(task="denoise", pmin=1.0, normalisation={"pmin": 2.0})
    with pytest.raises(ValueError, match="pmin must be below pmax"):
        config_type(task="denoise", pmin=50, pmax=40)


@pytest.mark.parametrize("name", ["denoise", "sted_denoise", "confocal2sted"])
def test_shipped_model_configs_still_load(name):
    meta = json.loads((WEIGHTS / f"{name}.json").read_text())
    loaded = MSCGMConfig.model_validate(meta["config"])
    assert loaded.normalisation == Normalisation.model_validate(meta["normalisation"])


def test_data_config_is_the_same_for_every_method_on_a_task():
    configs = [c.for_task("confocal2sted") for c in (MSCGMConfig, CAREConfig, DDPMConfig)]
    data = {c.data_config() for c in configs}
    assert data == {
        ModelConfig(
            task="confocal2sted",
            forward_model="confocal_blur",
            blur_sigma_px=CONFOCAL_BLUR_SIGMA_PX,
        )
    }
    assert CAREConfig.for_task("denoise").forward_model == "identity"


def test_forward_models():
    frame = np.zeros((21, 21))
    frame[10, 10] = 1.0
    np.testing.assert_array_equal(apply_forward_model(frame, "identity"), frame)
    blurred = apply_forward_model(frame, "confocal_blur", 2.0)
    assert blurred.sum() == pytest.approx(1.0) and blurred.max() < 0.1
    with pytest.raises(ValueError, match="unknown forward model 'fourier'"):
        apply_forward_model(frame, "fourier")


def test_match_target_recovers_the_degraded_photometry():
    rng = np.random.default_rng(0)
    clean = scipy.ndimage.gaussian_filter(rng.random((64, 64)), 2) * 50
    noisy = rng.poisson(clean * 2 + 5).astype(np.float64)
    deg_n, lo, scale = normalise_frame(noisy, 0.2, 99.8)
    tgt_n, _, _ = normalise_frame(clean, 0.2, 99.8)
    matched = match_target(deg_n, tgt_n, ModelConfig(task="denoise"))
    expected = (clean * 2 + 5 - lo) / scale  # the noise-free degraded frame, same units
    assert abs(matched.mean() - deg_n.mean()) < 1e-3
    assert np.abs(matched - expected).mean() < 0.1 * expected.std()
    flat = match_target(deg_n, np.zeros_like(tgt_n), ModelConfig(task="denoise"))
    assert not flat.any()  # a degenerate fit leaves the target as it is
