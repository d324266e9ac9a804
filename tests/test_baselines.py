"""CARE and conditional-DDPM baselines: losses, restore() contract, sampling, tiling, files."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from live_restore.experiments.sources import simulator_pairs
from live_restore.models.care import CARE, CARERestorer
from live_restore.models.configs import CAREConfig, DDPMConfig, MSCGMConfig
from live_restore.models.ddpm import ConditionalDDPM, DDPMRestorer, cosine_alphas_cumprod
from live_restore.models.protocol import Restorer, file_checksum
from live_restore.training.data import PairDataset
from live_restore.training.loop import preset, train
from tiny_models import TINY_BASELINE, one_step_changes_loss


def _perturb(model: torch.nn.Module) -> torch.nn.Module:
    """Give the zero-initialised output layer weights, so outputs depend on the input."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.Conv2d) and not module.weight.any():
                module.weight.normal_(0, 0.01)
    return model


def _care(seed: int = 0, **overrides) -> CARE:
    torch.manual_seed(seed)
    return _perturb(CARE(CAREConfig.for_task("denoise", **(TINY_BASELINE | overrides))))


def _ddpm(seed: int = 0, **overrides) -> ConditionalDDPM:
    torch.manual_seed(seed)
    config = DDPMConfig.for_task("confocal2sted", **(TINY_BASELINE | {"steps": 4} | overrides))
    return _perturb(ConditionalDDPM(config))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> PairDataset:
    config = CAREConfig.for_task("denoise")
    return PairDataset.for_model(
        config.data_config(),
        n=2,
        seed=0,
        size=64,
        cache_dir=tmp_path_factory.mktemp("pairs"),
        make_pairs=simulator_pairs("denoise"),
    )


@pytest.fixture(scope="module", params=["care", "ddpm"])
def restorer(request) -> CARERestorer | DDPMRestorer:
    if request.param == "care":
        return CARERestorer(_care(), device="cpu")
    return DDPMRestorer(_ddpm(), device="cpu")


def _frames(n: int = 2, shape=(40, 48), seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.poisson(20.0, (n, *shape)).astype(np.float32) + 10.0


def test_configs_match_mscgm_width_data_and_task_forward_model():
    mscgm = MSCGMConfig(task="confocal2sted")
    config = DDPMConfig.for_task("confocal2sted")
    assert (config.channels, config.channel_mults) == (mscgm.bridge_channels, mscgm.bridge_mults)
    assert config.data_config() == MSCGMConfig.for_task("confocal2sted").data_config()
    assert (config.num_timesteps, config.schedule_s, config.steps) == (200, 8e-3, 50)
    assert CAREConfig.for_task("denoise").forward_model == "identity"
    with pytest.raises(ValueError, match="steps must not exceed"):
        DDPMConfig(task="denoise", num_timesteps=10, steps=20)
    with pytest.raises(ValueError, match="pmin must be below pmax"):
        CAREConfig(task="denoise", pmin=50, pmax=40)
    with pytest.raises(ValueError):
        CAREConfig(task="denoise", typo=1)


def test_cosine_schedule():
    ab = cosine_alphas_cumprod(200, 8e-3)
    assert ab[0] == 1 and bool((ab[1:] < ab[:-1]).all()) and 0 < float(ab[-1]) < 1e-6
    betas = 1 - ab[1:] / ab[:-1]
    assert float(betas.max()) == pytest.approx(0.999)


@pytest.mark.parametrize("make", [_care, _ddpm], ids=["care", "ddpm"])
def test_one_step_lowers_the_loss_on_a_fixed_batch(dataset, make):
    model = make()
    degraded, target = dataset.batch(4, 32, torch.Generator().manual_seed(0))
    before, after = one_step_changes_loss(model, model.parameters(), degraded, target)
    assert after < before


def test_losses_refuse_bad_patches():
    with pytest.raises(ValueError, match="multiple of 2"):
        _care().losses(torch.zeros(1, 1, 9, 8), torch.zeros(1, 1, 9, 8), step=0, total_steps=1)
    with pytest.raises(ValueError, match="share one shape"):
        _ddpm().losses(torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 4, 4), step=0, total_steps=1)


def test_untrained_care_is_the_identity():
    torch.manual_seed(0)
    restorer = CARERestorer(CARE(CAREConfig.for_task("denoise", **TINY_BASELINE)), device="cpu")
    frames = _frames(1)
    np.testing.assert_allclose(restorer.restore(frames).mean, frames, rtol=1e-5)


def test_restorer_protocol(restorer):
    assert isinstance(restorer, Restorer)
    assert restorer.name in ("care", "ddpm") and restorer.version == "unsaved"


@pytest.mark.parametrize("shape", [(1, 1), (7, 5), (33, 31), (40, 48)])
def test_restore_any_size(restorer, shape):
    out = restorer.restore(_frames(1, shape), seed=0)
    assert out.mean.shape == (1, *shape) and out.mean.dtype == np.float32
    assert np.isfinite(out.mean).all()


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32, np.float64])
def test_restore_accepts_camera_dtypes(restorer, dtype):
    frames = _frames(2, (24, 20)).astype(dtype)
    out = restorer.restore(frames, seed=0)
    assert out.mean.shape == (2, 24, 20) and out.mean.dtype == np.float32
    assert abs(float(out.mean.mean()) - float(frames.mean())) < 10.0  # camera units back


def test_restore_rejects_nan_bad_samples_and_steps(restorer):
    frames = _frames(2)
    frames[1, 3, 4] = np.nan
    with pytest.raises(ValueError, match=r"frame\(s\) \[1\]"):
        restorer.restore(frames)
    with pytest.raises(ValueError, match="samples must be an integer >= 1, got 0"):
        restorer.restore(_frames(1), samples=0)
    with pytest.raises(ValueError, match="steps"):
        restorer.restore(_frames(1), steps=0)


def test_same_seed_same_output(restorer):
    frames = _frames(1)
    a = restorer.restore(frames, seed=3).mean
    np.testing.assert_array_equal(a, restorer.restore(frames, seed=3).mean)


def test_ddpm_samples_spread_and_care_is_deterministic():
    frames = _frames(1)
    ddpm = DDPMRestorer(_ddpm(), device="cpu")
    out = ddpm.restore(frames, samples=3, seed=0)
    assert out.std is not None and out.std.shape == frames.shape and float(out.std.mean()) > 0
    assert (
        float(np.abs(ddpm.restore(frames, seed=1).mean - ddpm.restore(frames, seed=2).mean).max())
        > 0
    )
    care = CARERestorer(_care(), device="cpu").restore(frames, samples=3)
    assert care.std is None


def test_ddim_makes_one_network_call_per_step():
    model = _ddpm(steps=50)
    calls = []
    model.unet.register_forward_hook(lambda *_: calls.append(1))
    DDPMRestorer(model, device="cpu").restore(_frames(1, (16, 16)), seed=0)
    assert len(calls) == 50
    calls.clear()
    DDPMRestorer(model, device="cpu").restore(_frames(1, (16, 16)), seed=0, steps=7)
    assert len(calls) == 7
    assert model.timesteps(4) == [200, 150, 100, 50, 0]


@pytest.mark.parametrize(("cls", "make"), [(CARERestorer, _care), (DDPMRestorer, _ddpm)])
def test_large_frames_are_tiled_like_mscgm(monkeypatch, cls, make):
    restorer = cls(make(), device="cpu", max_tile_pixels=32 * 32, overlap=8)
    shapes = []

    def doubling(y, *args):
        shapes.append(tuple(y.shape))
        return 2 * y

    monkeypatch.setattr(restorer.model, "restore_normalised", doubling)
    frames = _frames(1, (40, 70))
    lo = np.percentile(frames[0], 0.2)
    np.testing.assert_allclose(restorer.restore(frames, seed=0).mean, 2 * frames - lo, rtol=1e-5)
    assert shapes == [(1, 1, 32, 32)] * 6  # 2 × 3 overlapping tiles, blended back exactly


@pytest.mark.parametrize(
    ("cls", "make", "fmt"),
    [(CARERestorer, _care, "live_restore.care"), (DDPMRestorer, _ddpm, "live_restore.ddpm")],
    ids=["care", "ddpm"],
)
def test_save_load_round_trip(tmp_path, cls, make, fmt):
    restorer = cls(make(), device="cpu", provenance={"seed": 5})
    path = restorer.save(tmp_path / "m")
    assert path == tmp_path / "m.json" and (tmp_path / "m.safetensors").is_file()
    meta = json.loads(path.read_text())
    assert meta["format"] == fmt and meta["format_version"] == 1 and meta["config"]["seed"] == 5
    assert meta["normalisation"]["pmin"] == 0.2
    loaded = cls.load(tmp_path / "m", device="cpu")
    assert loaded.version == restorer.version == meta["weights_checksum"]
    frames = _frames(1, (33, 31))
    np.testing.assert_array_equal(
        restorer.restore(frames, seed=1).mean, loaded.restore(frames, seed=1).mean
    )
    assert cls.load(tmp_path / "m.safetensors").version == loaded.version


def test_load_reports_broken_files(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        CARERestorer.load(tmp_path / "missing.json")
    path = CARERestorer(_care(), device="cpu").save(tmp_path / "m")
    meta = json.loads(path.read_text())
    weights = tmp_path / "m.safetensors"

    path.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        CARERestorer.load(path)
    path.write_text(json.dumps(meta | {"format_version": 99}))
    with pytest.raises(ValueError, match="format_version 99"):
        CARERestorer.load(path)
    path.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="is not a DDPM model"):
        DDPMRestorer.load(path)
    path.write_text(json.dumps(meta | {"config": meta["config"] | {"channels": "many"}}))
    with pytest.raises(ValueError, match="invalid CARE config"):
        CARERestorer.load(path)

    weights.write_bytes(weights.read_bytes()[:100])  # truncated: checksum no longer matches
    path.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="does not belong together or a file is corrupt"):
        CARERestorer.load(path)
    path.write_text(json.dumps(meta | {"weights_checksum": file_checksum(weights)}))
    with pytest.raises(ValueError, match="is corrupt"):
        CARERestorer.load(path)

    other = CARERestorer(_care(channels=4), device="cpu").save(tmp_path / "o")
    weights.write_bytes((tmp_path / "o.safetensors").read_bytes())
    checksum = json.loads(other.read_text())["weights_checksum"]
    path.write_text(json.dumps(meta | {"weights_checksum": checksum}))
    with pytest.raises(ValueError, match="do not match the config"):
        CARERestorer.load(path)


@pytest.mark.parametrize(
    ("make", "cls"), [(_care, CARERestorer), (_ddpm, DDPMRestorer)], ids=["care", "ddpm"]
)
def test_trained_by_the_shared_loop(dataset, tmp_path, make, cls):
    config = preset("tiny", steps=2)
    exported = train(make(), dataset, config, tmp_path / "run")
    loaded = cls.load(exported, device="cpu")
    assert loaded.config.steps_trained == 2 and loaded.config.preset == "tiny"
    assert loaded.restore(_frames(1, (20, 20)), seed=0).mean.shape == (1, 20, 20)
