"""Axial inpainting: the simulated z-stack task, interpolation floors, the axial model's inputs,
files and stack restoration, its training pairs, and the benchmark's contract."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from live_restore.models.axial import (
    AxialNet,
    AxialRestorer,
    acquired_planes,
    interpolate_planes,
    plane_inputs,
)
from live_restore.models.configs import AxialConfig
from live_restore.sim.tasks import AXIAL_PLANES, make_pair
from live_restore.training.axial import axial_dataset
from live_restore.training.loop import preset, train

TINY = {"channels": 4, "channel_mults": (1, 2)}


def test_the_axial_task_pairs_low_and_high_dose_stacks_in_one_unit() -> None:
    degraded, target, params = make_pair("axial", seed=5, size=48)
    assert degraded.shape == target.shape == (AXIAL_PLANES, 48, 48)
    assert params["plane_spacing_um"] == 0.2 and params["modality"] in ("Confocal", "STED")
    assert params["axial_fwhm_nm"] == 600.0
    # the target is the same stack at 15-40x the dose, rescaled to the degraded's photons
    assert abs(float(degraded.mean() - target.mean())) < 0.05 * float(degraded.mean())
    assert float(np.std(degraded - target)) > float(np.std(target - make_pair(
        "axial", seed=5, size=48, realisation=1)[1]))  # the high-dose stack is less noisy
    again, _, _ = make_pair("axial", seed=5, size=48)
    np.testing.assert_array_equal(again, degraded)
    # the structures change from plane to plane (a z-stack, not one frame repeated)
    assert np.corrcoef(target[2].ravel(), target[14].ravel())[0, 1] < 0.9


def test_acquired_planes_and_interpolation_floors() -> None:
    np.testing.assert_array_equal(acquired_planes(17, 4), [0, 4, 8, 12, 16])
    np.testing.assert_array_equal(acquired_planes(10, 4), [0, 4, 8])  # odd count: 9 left out
    z = np.arange(10, dtype=np.float32)[:, None, None] * np.ones((1, 3, 3), np.float32)
    positions = acquired_planes(10, 4)
    linear = interpolate_planes(z[positions], positions, 10, "linear")
    np.testing.assert_allclose(linear[:9, 0, 0], np.arange(9))  # exact on a linear ramp
    assert linear[9, 0, 0] == 8  # held past the last acquired plane
    cube = (np.arange(17, dtype=np.float64) ** 3)[:, None, None] * np.ones((1, 3, 3))
    positions = acquired_planes(17, 4)  # five planes: the not-a-knot spline is exact on cubics
    cubic = interpolate_planes(cube[positions], positions, 17, "cubic")
    np.testing.assert_allclose(cubic[:, 0, 0], np.arange(17) ** 3, rtol=1e-4)
    with pytest.raises(ValueError, match="rise"):
        interpolate_planes(z[[4, 0]], np.array([4, 0]), 10)
    with pytest.raises(ValueError, match="unknown interpolation"):
        interpolate_planes(cube[positions], positions, 17, "nearest")


def test_plane_inputs_hold_the_nearest_planes_and_the_position() -> None:
    positions = acquired_planes(9, 4)  # 0, 4, 8
    acquired = np.stack([np.full((2, 2), v, np.float32) for v in (10, 20, 30)])
    x = plane_inputs(acquired, positions, 9, neighbours=2)
    assert x.shape == (9, 5, 2, 2)
    np.testing.assert_array_equal(x[5, :4, 0, 0], [10, 20, 30, 30])  # 2 below, 2 above
    assert x[5, 4, 0, 0] == pytest.approx(0.25)
    np.testing.assert_array_equal(x[4, :4, 0, 0], [10, 20, 30, 30])  # acquired: position 0
    assert x[4, 4, 0, 0] == 0


def test_an_untrained_model_is_linear_interpolation_and_files_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(0)
    restorer = AxialRestorer(AxialNet(AxialConfig.for_task("axial", **TINY)), device="cpu")
    degraded, _, _ = make_pair("axial", seed=1, size=24)
    positions = acquired_planes(AXIAL_PLANES, 4)
    out = restorer.restore_stack(degraded[positions], positions, AXIAL_PLANES)
    assert out.shape == (AXIAL_PLANES, 24, 24) and out.dtype == np.float32
    np.testing.assert_allclose(out, interpolate_planes(degraded[positions], positions,
                                                       AXIAL_PLANES), rtol=1e-4, atol=1e-3)
    with torch.no_grad():  # a trained model departs from it, and survives a save and a load
        for p in restorer.model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    path = restorer.save(tmp_path / "axial")
    loaded = AxialRestorer.load(path, device="cpu")
    np.testing.assert_array_equal(loaded.restore_stack(degraded[positions], positions, 17),
                                  restorer.restore_stack(degraded[positions], positions, 17))
    meta = json.loads(path.read_text())
    assert meta["format"] == "live_restore.axial" and meta["config"]["sparsity"] == [2, 4]
    meta["config"]["sparsity"] = [9]
    path.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="sparsity"):
        AxialRestorer.load(path)
    bad = degraded[positions].copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        restorer.restore_stack(bad, positions, 17)


def test_training_pairs_and_a_tiny_training_run(tmp_path: Path) -> None:
    config = AxialConfig.for_task("axial", **TINY)
    stacks = [make_pair("axial", seed=s, size=32) for s in (1, 2)]
    degraded = np.stack([s[0] for s in stacks])
    target = np.stack([s[1] for s in stacks])
    data = axial_dataset(degraded, target, config)
    assert data.degraded.shape == (2 * 2 * AXIAL_PLANES, 5, 32, 32)  # stacks × k × planes
    assert data.target.shape == (2 * 2 * AXIAL_PLANES, 32, 32)
    x, y = data.batch(3, 16, torch.Generator().manual_seed(0))
    assert x.shape == (3, 5, 16, 16) and y.shape == (3, 1, 16, 16)
    exported = train(AxialNet(config), data, preset("tiny", patch_size=16), tmp_path / "run")
    model = AxialRestorer.load(exported)
    assert model.config.steps_trained == 4
    with pytest.raises(ValueError, match="of one shape"):
        axial_dataset(degraded, target[:, :5], config)


def test_bench_axial_reports_floors_models_and_the_targets(tmp_path: Path) -> None:
    from live_restore.experiments.bench_axial import FLOORS, bench_axial

    torch.manual_seed(0)
    path = AxialRestorer(AxialNet(AxialConfig.for_task("axial", **TINY)),
                         device="cpu").save(tmp_path / "tiny")
    report = bench_axial(stacks=1, size=32, models={"axial": path})
    assert set(report["results"]) == {"k2", "k4"}
    rows = report["results"]["k4"]
    assert set(rows) == {*FLOORS, "axial"}
    assert np.isnan(rows["raw_every_plane"]["psnr_filled"])
    # untrained: linear interpolation, so no gain over cubic worth 3 dB
    assert abs(rows["axial"]["psnr_filled"] - rows["linear"]["psnr_filled"]) < 0.1
    check = report["targets_check"]["axial"]
    assert check["filled_gain_met"] is False and "dose_cut_4x_met" in check
    assert set(check["dose_cut_met"]) == {"k2", "k4"}
    assert report["model_versions"] == {"axial": AxialRestorer.load(path).version}
    assert report["dose_arm"] is None  # only with a dose_model
    json.dumps(report)  # the JSON the CLI writes


def test_the_dose_arm_counts_skipped_planes_as_dose(tmp_path: Path) -> None:
    """Photons per stack = dose per plane × planes acquired / all planes; more dose gives the
    raw stack a better SSIM; the cheapest restored stack reaching the reference is named."""
    from live_restore.experiments.bench_axial import dose_arm

    torch.manual_seed(0)
    path = AxialRestorer(AxialNet(AxialConfig.for_task("axial", **TINY)),
                         device="cpu").save(tmp_path / "tiny")
    arm = dose_arm(path, stacks=1, size=32, seed=30000, doses=(1.0, 4.0))
    rows = {(r["restored_by"], r["every"], r["dose"]): r for r in arm["rows"]}
    assert rows[("axial", 4, 4.0)]["planes"] == 5
    assert rows[("axial", 4, 4.0)]["photons_per_stack"] == pytest.approx(4.0 * 5 / AXIAL_PLANES)
    assert rows[("raw", 1, 4.0)]["ssim_all"] > rows[("raw", 1, 1.0)]["ssim_all"]
    assert arm["reference"]["ssim_all"] == rows[("raw", 1, 1.0)]["ssim_all"]
    cheapest = arm["cheapest_meeting_reference"]
    assert arm["cut_bounded_by_lowest_dose"] == (cheapest is not None and cheapest["dose"] == 1.0)
    if cheapest is not None:
        assert cheapest["ssim_all"] >= arm["reference"]["ssim_all"]
        assert arm["photons_per_stack_cut"] == pytest.approx(1 / cheapest["photons_per_stack"])
    with pytest.raises(ValueError, match="axial task"):
        make_pair("denoise", seed=1, size=16, dose=2.0)


def test_the_cli_keeps_stacks_and_frames_apart(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from live_restore.cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["train", "--task", "denoise", "--method", "axial",
                                 "--out", str(tmp_path / "m")])
    assert result.exit_code == 1 and "--method axial trains on --task axial" in result.output
    result = runner.invoke(app, ["bench", "restorers", "--task", "axial", "--task", "denoise",
                                 "--json", str(tmp_path / "b.json")])
    assert result.exit_code == 1 and "on its own" in result.output
    result = runner.invoke(app, ["bench", "restorers", "--task", "axial", "--model",
                                 "denoise:care=x.json", "--json", str(tmp_path / "b.json")])
    assert result.exit_code == 1 and "axial:NAME=PATH" in result.output


def test_frame_restorers_learn_from_filled_planes_and_bench_as_fillers(tmp_path: Path) -> None:
    """MSCGM / CARE on ``--task axial``: pairs are the linearly filled planes of thinned stacks
    against the high-dose planes; in the benchmark they restore each filled plane."""
    from live_restore.experiments.bench_axial import bench_axial
    from live_restore.experiments.sources import axial_fill_pairs
    from live_restore.models.care import CARE, CARERestorer
    from live_restore.models.configs import CAREConfig

    filled, truth = axial_fill_pairs()(1, 3, 24)
    assert filled.shape == truth.shape == (2 * AXIAL_PLANES, 24, 24)  # one stack, k = 2 and 4
    np.testing.assert_array_equal(truth[:AXIAL_PLANES], truth[AXIAL_PLANES:])  # same targets
    k2, k4 = filled[:AXIAL_PLANES], filled[AXIAL_PLANES:]
    np.testing.assert_array_equal(k2[4], k4[4])  # an acquired plane at both k: the noisy plane
    np.testing.assert_allclose(k4[2], 0.5 * (k4[0] + k4[4]), rtol=1e-5)  # halfway: the mean
    np.testing.assert_allclose(k2[1], 0.5 * (k2[0] + k2[2]), rtol=1e-5)
    assert not np.allclose(k4[0], truth[0])  # noisy, low dose
    torch.manual_seed(0)
    care = CARERestorer(CARE(CAREConfig.for_task("axial", **TINY)), device="cpu")
    path = care.save(tmp_path / "care_fill")
    report = bench_axial(stacks=1, size=32, models={"care_fill": path})
    rows = report["results"]["k2"]
    # an untrained CARE is the identity: it returns the linear interpolation
    assert abs(rows["care_fill"]["psnr_filled"] - rows["linear"]["psnr_filled"]) < 0.05


def test_restore_fills_the_planes_of_a_sparse_stack(tmp_path: Path) -> None:
    """``restore --fill-planes K``: a stack acquired every K-th plane comes back with every
    plane, the acquired ones at their places, through an axial model; clear errors else."""
    import tifffile
    from typer.testing import CliRunner

    from live_restore.cli import app

    torch.manual_seed(0)
    model = AxialRestorer(AxialNet(AxialConfig.for_task("axial", **TINY)), device="cpu")
    path = model.save(tmp_path / "axial")
    degraded, _, _ = make_pair("axial", seed=2, size=24)
    sparse = degraded[::4]  # 5 of the 17 planes
    tifffile.imwrite(tmp_path / "sparse.tif", sparse)
    runner = CliRunner()
    args = ["restore", str(tmp_path / "sparse.tif"), str(tmp_path / "full.tif"),
            "--fill-planes", "4", "--model", str(path)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    full = tifffile.imread(tmp_path / "full.tif")
    assert full.shape == (17, 24, 24) and "5 planes filled to 17" in result.output
    np.testing.assert_allclose(full, model.fill(sparse, 4))
    # untrained: linear interpolation, so an acquired plane comes back as it went in
    np.testing.assert_allclose(full[8], sparse[2], rtol=1e-4, atol=1e-3)
    result = runner.invoke(app, [*args[:5], "--model", "denoise", "--overwrite"])
    assert result.exit_code == 1 and "needs a z-stack model" in result.output
    tifffile.imwrite(tmp_path / "frame.tif", sparse[0])
    result = runner.invoke(app, ["restore", str(tmp_path / "frame.tif"),
                                 str(tmp_path / "out.tif"), "--fill-planes", "2",
                                 "--model", str(path)])
    assert result.exit_code == 1 and "z-stack" in result.output
