"""``bench_restorers``: JSON shape, skipped models, FRC plumbing and the targets check."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from live_restore.experiments import bench_restorers as bench
from live_restore.models.care import CARE, CARERestorer
from live_restore.models.configs import CAREConfig, DDPMConfig, MSCGMConfig
from live_restore.models.ddpm import ConditionalDDPM, DDPMRestorer
from live_restore.models.mscgm import MSCGM, MSCGMRestorer
from tiny_models import SMALL_MSCGM, TINY_BASELINE

ROW_KEYS = {"psnr", "psnr_affine", "ssim", "frc_resolution_nm", "ms_per_frame", "steps", "params"}


@pytest.fixture(scope="module")
def model_files(tmp_path_factory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    task = "denoise"
    restorers = {
        "mscgm": MSCGMRestorer(MSCGM(MSCGMConfig.for_task(task, **SMALL_MSCGM)), device="cpu"),
        "care": CARERestorer(CARE(CAREConfig.for_task(task, **TINY_BASELINE)), device="cpu"),
        "ddpm": DDPMRestorer(
            ConditionalDDPM(DDPMConfig.for_task(task, **TINY_BASELINE, steps=3)), device="cpu"
        ),
    }
    return {name: str(r.save(folder / name)) for name, r in restorers.items()}


def test_quick_run_reports_every_row_and_skips_missing_models(model_files, tmp_path):
    models = {
        "denoise": model_files,
        "confocal2sted": {"mscgm": model_files["mscgm"], "care": str(tmp_path / "gone.json")},
    }
    result = bench.bench_restorers(models=models, quick=True, frames=2, size=64)
    assert set(result["tasks"]) == {"confocal2sted", "denoise"}
    denoise = result["tasks"]["denoise"]
    assert denoise["frame_shape"] == [64, 64] and denoise["frames"] == 2
    assert denoise["device"] in ("cpu", "cuda") and denoise["threads"] >= 1
    rows = denoise["methods"]
    assert set(rows) == {"target", "raw", *bench.METHODS}
    for name in ("raw", *bench.METHODS):
        assert ROW_KEYS <= set(rows[name]), name
        assert np.isfinite(rows[name]["psnr"]) and rows[name]["ms_per_frame"] >= 0
    assert rows["raw"]["params"] == rows["classical"]["params"] == 0
    assert rows["care"]["params"] > 0 and rows["care"]["steps"] == 1
    assert rows["ddpm"]["steps"] == 3 and rows["mscgm"]["steps"] == 2
    assert rows["ddpm_avg4"]["samples"] == 4 and rows["mscgm_avg4"]["samples"] == 4
    for name in ("target", "raw", "classical", "care", "mscgm"):
        assert rows[name]["frc_resolution_nm"] > 0, name
    other = result["tasks"]["confocal2sted"]["methods"]
    assert other["care"] == {"skipped": f"no model file: {tmp_path / 'gone.json'}"}
    assert other["ddpm"]["skipped"].startswith("no model file") and "skipped" in other["ddpm_avg4"]
    assert "psnr" in other["mscgm"]
    check = result["targets_check"]["confocal2sted"]
    assert check["mscgm_30x_faster_than_ddpm"] is None
    assert check["mscgm_512_single_sample_le_250ms"] is None  # 64² frames
    assert isinstance(result["targets_check"]["denoise"]["mscgm_psnr_ge_care_minus_0.5dB"], bool)
    # untrained model files record no training steps, so the budgets cannot be compared
    assert rows["mscgm"]["train_steps"] is None and rows["classical"]["train_steps"] is None
    assert result["targets_check"]["denoise"]["mscgm_care_same_training_steps"] is None


def test_targets_check():
    rows = {
        "mscgm": {"ms_per_frame": 10.0, "psnr": 30.0, "frc_resolution_nm": 60.0},
        "mscgm_avg4": {"psnr": 31.0},
        "care": {"ms_per_frame": 5.0, "psnr": 30.4, "frc_resolution_nm": 80.0},
        "ddpm": {"ms_per_frame": 290.0, "psnr": 30.2},
        "target": {"frc_resolution_nm": 55.0},
    }
    rows["mscgm"]["train_steps"], rows["care"]["train_steps"] = 7000, 2500
    check = bench._targets(rows, [512, 512])
    assert check == {
        "mscgm_30x_faster_than_ddpm": False,
        "mscgm_psnr_ge_ddpm_minus_0.3dB": True,
        "mscgm_psnr_ge_care_minus_0.5dB": True,
        "mscgm_avg4_psnr_ge_care": True,
        "mscgm_frc_closer_to_target_than_care": True,
        "mscgm_care_same_training_steps": False,
        "mscgm_512_single_sample_le_250ms": True,
    }


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tasks": ("axial_inpaint",)}, "2-D simulator task"),
        ({"frames": 0}, "frames must be"),
        ({"models": {"haze": {}}}, "not benchmarked"),
        ({"models": {"denoise": {"mscgm_avg4": "x"}}}, "unknown method"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        bench.bench_restorers(**kwargs)


def test_report_seeds_are_disjoint_from_the_selection_and_training_seeds(monkeypatch):
    from live_restore.experiments.seeds import SeedSet
    from live_restore.sim.tasks import pair_seed

    calls: list[int] = []
    monkeypatch.setattr(bench, "_bench_task", lambda task, paths, frames, size, seed, device:
                        calls.append(seed) or {"methods": {}, "frame_shape": [size, size]})
    result = bench.bench_restorers(tasks=("denoise",), frames=3, size=16)
    assert calls == [bench.REPORT_SEED]
    report = SeedSet.model_validate(result["report_seeds"])
    assert report == SeedSet(seed=bench.REPORT_SEED, pairs=3, use=report.use)
    chosen = [SeedSet.model_validate(s) for s in result["selection_seeds"]]
    assert {s.seed for s in chosen} == {5_000, 10_000}  # validation and held-out A/B pairs
    trained = [SeedSet.model_validate(s) for s in result["training_seeds"]]
    for other in (*chosen, *trained):
        assert not report.pair_seeds() & other.pair_seeds()
    assert report.pair_seeds() == {pair_seed(bench.REPORT_SEED, i) for i in range(3)}
    # the former test seed, on which the shipped settings were compared, is refused
    with pytest.raises(ValueError, match="report seed 10000 shares 2 pair"):
        bench.bench_restorers(tasks=("denoise",), frames=2, size=16, seed=10_000)
    assert calls == [bench.REPORT_SEED]
