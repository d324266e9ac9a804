"""The floor check: a restored frame judged against another exposure of the same field."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import useq
from scipy.ndimage import gaussian_filter

from live_restore.acquisition.run import run_acquisition
from live_restore.acquisition.store import AcquisitionStore
from live_restore.metrics import fit_affine
from live_restore.models.classical import ClassicalRestorer
from live_restore.models.floor import FLOOR_SIGMA_PX, check_against_floor, judges_restorer
from live_restore.models.restorer import RestoreResult


def _field(seed: int = 0, size: int = 160) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = np.zeros((size, size))
    x[tuple(rng.integers(0, size, (2, 60)))] = 1.0
    return 40 + 400 * gaussian_filter(x, 3.0) / gaussian_filter(x, 3.0).max()


def _exposure(clean: np.ndarray, seed: int, scale: float = 1.0) -> np.ndarray:
    """Shot noise plus read noise a detector's low-pass made spatially correlated."""
    rng = np.random.default_rng(seed)
    read = gaussian_filter(rng.normal(0, 6, clean.shape), 0.8) * 2.0
    return rng.poisson(scale * clean).astype(np.float64) + read


def _true_gain(estimate: np.ndarray, raw: np.ndarray, clean: np.ndarray) -> float:
    def mse(e):
        return np.mean((fit_affine(e, clean) - clean) ** 2)
    return 10 * np.log10(mse(gaussian_filter(raw, FLOOR_SIGMA_PX)) / mse(estimate))


@pytest.mark.parametrize("scale", [1.0, 0.97])  # 0.97: the second exposure bleached 3 %
def test_the_estimate_follows_the_true_gain_over_the_floor(scale):
    clean = _field()
    raw, other = _exposure(clean, 1), _exposure(clean, 2, scale)
    perfect = check_against_floor(clean, raw, other, "t=1")
    assert perfect.gain_db > 2 and not perfect.below_floor and perfect.against == "t=1"
    for estimate in (raw, gaussian_filter(raw, 1.0), gaussian_filter(raw, 4.0)):
        check = check_against_floor(estimate, raw, other)
        true = _true_gain(estimate, raw, clean)
        # accurate near the floor; far from it, pulled towards 0 dB (never exaggerated)
        assert abs(check.gain_db - true) <= 0.25 or 0.8 <= check.gain_db / true <= 1.05
        assert check.below_floor == bool(true < -0.2)
    assert check_against_floor(raw, raw, other).below_floor  # no restoration at all
    assert check_against_floor(gaussian_filter(raw, FLOOR_SIGMA_PX), raw, other).gain_db == \
        pytest.approx(0.0, abs=1e-9)


def test_frames_without_noise_or_signal_give_no_estimate():
    flat = np.full((32, 32), 10.0)
    assert check_against_floor(flat, flat, flat) is None


def test_only_restorers_that_keep_their_input_modality_are_judged():
    assert judges_restorer(ClassicalRestorer())
    assert not judges_restorer(SimpleNamespace(config=SimpleNamespace(
        forward_model="confocal_blur")))


class _Identity:
    """Gives the raw frame back: no better than the camera, worse than a blur."""

    name, version = "identity", "test"

    def restore(self, batch, *, samples=1, seed=None):
        return RestoreResult(mean=np.asarray(batch, dtype=np.float32))


class _Oracle(_Identity):
    """Knows the RampCamera's noise-free pattern: better than any blur."""

    name = "oracle"

    def restore(self, batch, *, samples=1, seed=None):
        frames = np.asarray(batch, dtype=np.float32)
        xx = np.arange(frames.shape[-1])[None, :]
        clean = 25 + 10 * np.sin(xx / 5.0) ** 2
        return RestoreResult(mean=np.broadcast_to(clean, frames.shape).astype(np.float32))


def test_a_live_acquisition_flags_frames_restored_below_the_floor(pycam_core, tmp_path):
    core = pycam_core(shape=(48, 48))
    seq = useq.MDASequence(time_plan={"interval": 0, "loops": 6})
    flagged = tmp_path / "id.zarr"
    run_acquisition(core, seq, flagged, _Identity())
    with AcquisitionStore.open(flagged, mode="r") as store:
        below = store.below_floor()
        assert len(below) >= 5 and all(gain < -0.2 for gain in below.values())
        meta = store.frame_metadata({"t": 3})
        assert meta["floor"]["below_floor"] and meta["floor"]["against"] in ("t=2", "t=4")
        assert store._group.attrs["live_restore"]["ledger"]["below_floor"].keys() == below.keys()
    fine = tmp_path / "oracle.zarr"
    run_acquisition(core, seq, fine, _Oracle())
    with AcquisitionStore.open(fine, mode="r") as store:
        assert store.below_floor() == {}
        assert "gain_db" in store.frame_metadata({"t": 3})["floor"]  # checked, and not flagged
