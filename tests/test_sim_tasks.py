"""Paired datasets: every task, determinism, shapes, the TIFF + JSON writer, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile

from live_restore.sim import TASKS, make_pair, make_pairs, write_dataset


@pytest.mark.parametrize("task", TASKS)
def test_each_task_makes_a_deterministic_pair(task: str) -> None:
    d, t, p = make_pair(task, seed=5, size=64)
    d2, t2, _ = make_pair(task, seed=5, size=64)
    assert np.array_equal(d, d2) and np.array_equal(t, t2)
    assert d.dtype == t.dtype == np.float32
    planes = {"axial_inpaint": 16, "axial": 17}
    assert d.shape == t.shape == ((planes[task], 64, 64) if task in planes else (64, 64))
    assert np.isfinite(d).all() and np.isfinite(t).all()
    assert not np.array_equal(d, t)
    assert p["task"] == task
    json.dumps(p)


@pytest.mark.parametrize("task", ["sted_denoise", "denoise", "detector"])
def test_a_second_realisation_is_the_same_field_with_fresh_noise(task: str) -> None:
    d0, t0, p0 = make_pair(task, seed=4, size=96)
    d1, t1, p1 = make_pair(task, seed=4, size=96, realisation=1)
    assert {k: v for k, v in p0.items() if k != "realisation"} == {
        k: v for k, v in p1.items() if k != "realisation"
    }
    assert (p0["realisation"], p1["realisation"]) == (0, 1)
    assert not np.array_equal(d0, d1) and not np.array_equal(t0, t1)
    # same expectation: the two targets agree far better than targets of different fields
    other = make_pair(task, seed=5, size=96)[1]
    assert np.corrcoef(t0.ravel(), t1.ravel())[0, 1] > 0.9
    assert np.corrcoef(t0.ravel(), other.ravel())[0, 1] < 0.5
    d_again, _, _ = make_pair(task, seed=4, size=96, realisation=1)
    assert np.array_equal(d1, d_again)


def test_low_dose_is_noisier_than_target() -> None:
    d, t, p = make_pair("sted_denoise", seed=2, size=128)
    ratio = p["target_photons_per_label"] / p["degraded_photons_per_label"]
    assert (t.mean() - 10) / (d.mean() - 10) == pytest.approx(ratio, rel=0.2)


def test_confocal2sted_target_is_sharper() -> None:
    d, t, _ = make_pair("confocal2sted", seed=1, size=128)

    def sharp(x):
        x = x - np.median(x)
        return np.mean(np.diff(x, axis=1) ** 2) / np.mean(x**2)

    assert sharp(t) > sharp(d) * 0.8  # low-dose confocal noise also has high gradients
    assert sharp(np.asarray(t)) > 0


def test_axial_inpaint_keeps_measured_planes() -> None:
    d, t, p = make_pair("axial_inpaint", seed=3, size=32)
    m = p["measured_planes"]
    assert np.array_equal(d[m], t[m])
    missing = [i for i in range(16) if i not in m]
    assert not np.array_equal(d[missing], t[missing])


def test_detector_task_is_eight_bit() -> None:
    d, _, p = make_pair("detector", seed=0, size=64)
    assert d.max() <= 255 and np.all(d == np.rint(d)) and p["detector"]["bit_depth"] == 8


def test_make_pairs_and_write_dataset(tmp_path) -> None:
    d, t, ps = make_pairs("haze", 3, seed=9, size=32)
    assert d.shape == t.shape == (3, 32, 32) and len(ps) == 3
    out = write_dataset("stripes", 2, tmp_path / "ds", seed=1, size=32)
    assert tifffile.imread(out / "degraded.tif").shape == (2, 32, 32)
    assert tifffile.imread(out / "target.tif").dtype == np.float32
    meta = json.loads((out / "params.json").read_text())
    assert meta["task"] == "stripes" and len(meta["pairs"]) == 2


@pytest.mark.parametrize(
    ("call", "bad"),
    [
        (lambda p: make_pair("deblur", 0), "deblur"),
        (lambda p: make_pairs("denoise", 0, 0), "0"),
        (lambda p: write_dataset("denoise", -2, p), "-2"),
        (lambda p: write_dataset("nope", 2, p), "nope"),
        (lambda p: make_pair("denoise", 0, size=0), "0"),
        (lambda p: make_pair("denoise", 0, realisation=-1), "realisation"),
    ],
)
def test_bad_input(call, bad: str, tmp_path) -> None:
    with pytest.raises(ValueError, match=bad):
        call(tmp_path / "x")


def test_denoise_pairs_include_correlated_noise_and_eight_bit_frames() -> None:
    readouts = [make_pair("denoise", seed, size=64)[2]["readout"] for seed in range(12)]
    assert any(r["lowpass"] and r["lowpass"]["kind"] == "line" for r in readouts)
    assert any(r["lowpass"] and r["lowpass"]["kind"] == "gaussian" for r in readouts)
    assert any(r["eight_bit"] is None for r in readouts)
    seed = next(s for s, r in enumerate(readouts) if r["eight_bit"])
    degraded, target, _ = make_pair("denoise", seed, size=64)
    assert degraded.min() >= 0 and degraded.max() <= 255
    assert np.array_equal(degraded, np.rint(degraded))
    assert target.min() >= 0 and target.max() <= 255
