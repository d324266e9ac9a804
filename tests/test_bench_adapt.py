"""``bench adapt``: every arm is measured, the defects are new to the CIN-GAN, bad input."""

from __future__ import annotations

import math

import pytest
import torch

from live_restore.adapt.finetune import adapt_preset
from live_restore.experiments.bench_adapt import (
    REPORT_TEST_SEED,
    SELECTION_SEEDS,
    AdaptBenchConfig,
    bench_adapt,
    bench_gan_sharing,
)
from live_restore.experiments.seeds import SeedSet
from live_restore.models.configs import MSCGMConfig
from live_restore.models.mscgm import MSCGM, MSCGMRestorer
from tiny_models import SMALL_MSCGM

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = AdaptBenchConfig(
    adapt=adapt_preset("tiny"),
    frame_size=32,
    test_frames=1,
    n_defective_frames=2,
    clean_frames=2,
    oracle_pairs=3,
    few_pairs=2,
    reference_draws=2,
)


@pytest.fixture
def base(tmp_path) -> str:
    torch.manual_seed(0)
    MSCGMRestorer(MSCGM(MSCGMConfig(task="denoise", **SMALL_MSCGM)), "cpu").save(tmp_path / "b")
    return str(tmp_path / "b.json")


def test_every_arm_is_measured_on_a_defect_new_to_the_cingan(base):
    lines: list[str] = []
    result = bench_adapt(("haze",), base, config=TINY, say=lines.append)
    row = result["defects"]["haze"]
    for key in ("base_psnr", "adapted_psnr", "oracle_psnr", "pairs10_psnr",
                "pairs10_cingan_psnr", "raw_psnr", "gen_divergence_psnr",
                "real_divergence_psnr", "minutes"):
        assert math.isfinite(row[key]), key
    assert row["n_defective_frames"] == 2 and row["oracle_pairs"] == 3
    assert row["n_synthetic_tiles"] == 2 * TINY.adapt.draws_per_tile
    assert "haze" not in result["cingan_pretrained_on"]
    assert "stripes" in result["cingan_pretrained_on"]
    check = result["targets_check"]["haze"]
    assert check["pairs10_cingan_ge_pairs10_plus_1dB"] == (
        row["pairs10_cingan_psnr"] >= row["pairs10_psnr"] + 1.0
    )
    if row["gap_closed"] is not None:
        assert row["gap_closed"] == pytest.approx(
            (row["adapted_psnr"] - row["base_psnr"]) / (row["oracle_psnr"] - row["base_psnr"])
        )
    assert any("learning the CIN row" in line for line in lines)
    assert result["settings"]["oracle_pairs"] == 3
    test = result["report_seeds"]["test"]
    assert test["seed"] == result["test_seed"] == REPORT_TEST_SEED and test["pairs"] == 1
    assert [s["seed"] for s in result["report_seeds"]["training"]] == [1, 2, 3, 4]
    assert {s["seed"] for s in result["selection_seeds"]} == {20_000, 1, 2, 3, 4, 5}


def test_report_test_set_is_disjoint_from_the_pairs_the_scope_rule_was_chosen_on():
    test = SeedSet(seed=REPORT_TEST_SEED, pairs=16, use="report")
    for chosen in SELECTION_SEEDS:
        assert not test.pair_seeds() & chosen.pair_seeds(), chosen.use
    assert SELECTION_SEEDS[0].seed == 20_000  # the former test set of `bench adapt --quick`
    # a run whose own training draws would land on the report pairs is refused before work
    with pytest.raises(ValueError, match=f"report seed {REPORT_TEST_SEED} shares 1 pair"):
        bench_adapt(("haze",), "no-such-model", config=TINY, seed=REPORT_TEST_SEED - 1)


@pytest.mark.parametrize(
    ("defects", "base_name", "message"),
    [
        (("blur",), None, "unknown task 'blur'"),
        (("axial_inpaint",), None, "stacks"),
        (("haze", "haze"), None, "distinct"),
        (("haze",), "classical", "needs MSCGM"),
    ],
)
def test_bad_input_is_refused(base, defects, base_name, message):
    with pytest.raises(ValueError, match=message):
        bench_adapt(defects, base_name or base, config=TINY)


def test_gan_sharing_scores_shared_and_separate_gans_per_task_and_pair_count(base):
    result = bench_gan_sharing(("denoise",), (2,), models={"denoise": base}, config=TINY)
    row = result["tasks"]["denoise"]
    assert math.isfinite(row["base_psnr"])
    assert set(row["2"]) == {"shared", "separate"}
    assert all(math.isfinite(v) for v in row["2"].values())
    assert result["report_seeds"]["test"]["seed"] == REPORT_TEST_SEED
    assert result["selection_seeds"][0]["seed"] == 20_000
    with pytest.raises(ValueError, match="unknown task"):
        bench_gan_sharing(("blur",), config=TINY)
