"""Few-shot adaptation: clear input errors, and adapted model files that round-trip."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch

import live_restore.adapt.finetune as adapt_module
from live_restore.adapt.cingan import CINGAN, CINGANConfig
from live_restore.adapt.finetune import (
    MAX_DEFECTIVE_FRAMES,
    adapt,
    adapt_preset,
    fine_tune,
    pair_psnr,
    real_pairs,
    training_set,
)
from live_restore.experiments.sources import simulator_sources
from live_restore.models.configs import MSCGMConfig
from live_restore.models.mscgm import MSCGM, MSCGMRestorer
from live_restore.models.restorer import get_restorer
from tiny_models import SMALL_MSCGM

GAN = {"channels": 4, "n_res": 1, "critic_channels": 4, "critic_layers": 2}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def base(tmp_path) -> MSCGMRestorer:
    torch.manual_seed(0)
    restorer = MSCGMRestorer(MSCGM(MSCGMConfig(task="sted_denoise", **SMALL_MSCGM)), "cpu")
    restorer.save(tmp_path / "base")
    return MSCGMRestorer.load(tmp_path / "base", device="cpu")


@pytest.fixture
def gan() -> CINGAN:
    torch.manual_seed(0)
    return CINGAN(CINGANConfig(defects=("denoise", "haze"), **GAN))


def _stack(n: int, seed: int, size: int = 32) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.poisson(rng.gamma(2.0, 20.0, (n, size, size))).astype(np.float32)


BAD_INPUTS = [
    ("no frames", {"defective_frames": np.zeros((0, 32, 32))}, "no defective frames"),
    ("empty list", {"defective_frames": []}, "no defective frames"),
    ("mixed sizes", {"defective_frames": [np.ones((32, 32)), np.ones((40, 32))]},
     r"mixed sizes \[\(32, 32\), \(40, 32\)\]"),
    ("NaN", {"defective_frames": np.stack([np.ones((32, 32)), np.full((32, 32), np.nan)])},
     r"frame\(s\) \[1\] contain NaN"),
    ("known defect", {"defect": "haze"}, "'haze' already exists"),
    ("too small", {"clean_frames": np.ones((2, 16, 16))}, "need at least 32×32"),
    ("mismatched pairs", {"pairs": (np.ones((1, 32, 32)), np.ones((2, 32, 32)))},
     "differ in shape"),
    ("mismatched check", {"check": (np.ones((1, 32, 32)), np.ones((1, 40, 32)))},
     "check degraded and target stacks differ in shape"),
    ("NaN check", {"check": (np.full((1, 32, 32), np.nan), np.ones((1, 32, 32)))},
     r"check degraded frame\(s\) \[0\] contain NaN"),
]


@pytest.mark.parametrize(("case", "change", "message"), BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_inputs_give_clear_errors(base, gan, tmp_path, case, change, message):
    kwargs = {"defect": "camera", "defective_frames": _stack(2, 0), "clean_frames": _stack(2, 1),
              "out": tmp_path / "adapted", "preset": "tiny", "cingan": gan} | change
    with pytest.raises(ValueError, match=message):
        adapt(base, **kwargs)
    assert not (tmp_path / "adapted.json").exists()


def test_pretraining_sources_refuse_their_own_defect_name_and_are_required(base, tmp_path):
    with pytest.raises(ValueError, match="'stripes' already exists"):
        adapt(base, "stripes", _stack(1, 0), _stack(1, 1), out=tmp_path / "a", preset="tiny",
              pretrain_sources=simulator_sources())
    with pytest.raises(ValueError, match="no CIN-GAN given and no pair sources"):
        adapt(base, "camera", _stack(1, 0), _stack(1, 1), out=tmp_path / "a", preset="tiny")


def test_adapted_model_round_trips_and_records_provenance(base, gan, tmp_path, caplog):
    stages: set[str] = set()
    defective = _stack(MAX_DEFECTIVE_FRAMES + 1, 0)
    check = (_stack(2, 5, 40), _stack(2, 6, 40))
    with caplog.at_level(logging.WARNING, logger="live_restore.adapt.finetune"):
        path = adapt(
            base, "camera", defective, _stack(2, 1, 64), pairs=(_stack(1, 2), _stack(1, 3)),
            out=tmp_path / "adapted", check=check, preset="tiny", cingan=gan,
            cingan_out=tmp_path / "gan",
            progress=lambda stage, step, total: stages.add(stage),
        )
    assert "11 defective frames" in caplog.text
    assert stages == {"defect", "finetune"}
    meta = json.loads(path.read_text())
    info = meta["adaptation"]
    assert info["base_model"] == {"name": "base", "checksum": base.version,
                                  "task": "sted_denoise"}
    assert info["defect"] == "camera"
    assert info["defective_frames"]["n"] == 11 and info["real_pairs"] == 1
    assert info["training_tiles"]["total"] > info["training_tiles"]["synthetic"] == 8
    assert info["settings"] == adapt_preset("tiny").model_dump(mode="json")
    assert info["fine_tuned"] == "all"  # real pairs mixed in: every weight
    loaded = MSCGMRestorer.load(path, device="cpu")
    assert loaded.version == meta["weights_checksum"] != base.version
    assert loaded.config.preset == "adapt-tiny"
    assert get_restorer(str(path)).version == loaded.version
    for key, value in loaded.model.state_dict().items():
        if not key.startswith("discriminators."):
            assert torch.equal(value, MSCGMRestorer.load(path).model.state_dict()[key])
    assert info["check"] == {"n": 2, "base_psnr": pytest.approx(pair_psnr(base, *check)),
                             "adapted_psnr": pytest.approx(pair_psnr(loaded, *check))}
    out = loaded.restore(_stack(1, 4), seed=0).mean
    assert out.shape == (1, 32, 32) and np.isfinite(out).all()
    assert CINGAN.load(tmp_path / "gan").defects == ["denoise", "haze", "camera"]
    assert gan.defects == ["denoise", "haze"]  # the caller's CIN-GAN is not modified


def test_pretrains_a_cingan_when_none_is_given(base, tmp_path):
    stages: set[str] = set()
    path = adapt(base, "camera", _stack(1, 0), _stack(1, 1), out=tmp_path / "a", preset="tiny",
                 pretrain_sources=simulator_sources(("haze", "stripes")),
                 progress=lambda stage, step, total: stages.add(stage))
    assert stages == {"pretrain", "defect", "finetune"}
    defects = json.loads(path.read_text())["adaptation"]["cingan"]["defects"]
    assert defects == ["haze", "stripes", "camera"]


def test_check_pairs_warn_when_the_adapted_model_scores_below_its_base(
    base, gan, tmp_path, caplog, monkeypatch
):
    monkeypatch.setattr(adapt_module, "pair_psnr", lambda r, d, t: 30.0 if r is base else 29.0)
    with caplog.at_level(logging.WARNING, logger="live_restore.adapt.finetune"):
        path = adapt(base, "camera", _stack(1, 0), _stack(1, 1), out=tmp_path / "a",
                     check=(_stack(1, 2), _stack(1, 3)), preset="tiny", cingan=gan)
    assert "scores below its base on the 1 check pair(s): 29.00 vs 30.00 dB" in caplog.text
    assert json.loads(path.read_text())["adaptation"]["check"] == {
        "n": 1, "base_psnr": 30.0, "adapted_psnr": 29.0}


@pytest.mark.parametrize(
    ("scope", "synthetic_only", "hazy", "bridge_trained"),
    [
        ("auto", True, False, False),
        ("auto", True, True, True),
        ("auto", False, False, True),
        ("all", True, False, True),
        ("heads", False, True, False),
    ],
)
def test_fine_tune_scope_decides_whether_the_bridge_is_trained(
    base, scope, synthetic_only, hazy, bridge_trained
):
    config = adapt_preset("tiny", scope=scope)
    data = training_set(config, real=real_pairs(base, _stack(2, 0), _stack(2, 1), config.tile))
    tuned = fine_tune(base, data, config, synthetic_only=synthetic_only, out_of_focus_light=hazy)
    before, after = base.model.state_dict(), tuned.model.state_dict()

    def changed(prefix: str) -> bool:
        return any(not torch.equal(before[k], after[k]) for k in before if k.startswith(prefix))

    assert changed("denoiser.") is bridge_trained
    assert changed("heads.")
