"""Training loop: one step lowers the loss, datasets, checkpoints without pickle, resume."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from live_restore.experiments.sources import simulator_pairs
from live_restore.models.configs import MSCGMConfig
from live_restore.models.mscgm import MSCGM, MSCGMRestorer
from live_restore.training.data import PairDataset
from live_restore.training.loop import preset, train
from tiny_models import SMALL_MSCGM, one_step_changes_loss


def _model() -> MSCGM:
    torch.manual_seed(0)
    return MSCGM(MSCGMConfig(task="sted_denoise", **SMALL_MSCGM))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> PairDataset:
    return PairDataset.for_model(
        _model().config, n=2, seed=0, size=64, cache_dir=tmp_path_factory.mktemp("pairs"),
        make_pairs=simulator_pairs("sted_denoise"),
    )


def test_one_step_lowers_the_loss_on_a_fixed_batch(dataset):
    model = _model()
    degraded, target = dataset.batch(4, 32, torch.Generator().manual_seed(0))
    before, after = one_step_changes_loss(model, model.generator_parameters(), degraded, target)
    assert after < before


def test_dataset_is_normalised_cached_and_augmented(dataset, tmp_path):
    assert dataset.degraded.shape == (2, 64, 64) and dataset.degraded.dtype == np.float32
    assert np.percentile(dataset.degraded[0], 99.8) == pytest.approx(1.0, abs=1e-4)
    assert abs(dataset.target[0].mean() - dataset.degraded[0].mean()) < 0.02
    d, t = dataset.batch(3, 16, torch.Generator().manual_seed(5))
    assert d.shape == t.shape == (3, 1, 16, 16)
    d2, _ = dataset.batch(3, 16, torch.Generator().manual_seed(5))
    assert torch.equal(d, d2)
    with pytest.raises(ValueError, match="exceeds"):
        dataset.batch(1, 128, torch.Generator())
    config = _model().config
    first = PairDataset.for_model(config, 1, 7, 32, tmp_path,
                                  make_pairs=simulator_pairs("sted_denoise"))
    assert len(list(tmp_path.glob("pairs_*.npz"))) == 1

    def no_draws(n: int, seed: int, size: int) -> tuple[np.ndarray, np.ndarray]:
        raise AssertionError("a cached dataset must not draw its pairs again")

    again = PairDataset.for_model(config, 1, 7, 32, tmp_path, make_pairs=no_draws)
    np.testing.assert_array_equal(first.target, again.target)


def test_dataset_takes_any_pair_source_and_normalises_it_like_the_restorer():
    rng = np.random.default_rng(0)
    calls: list[tuple[int, int, int]] = []

    def source(n: int, seed: int, size: int) -> tuple[np.ndarray, np.ndarray]:
        calls.append((n, seed, size))
        target = rng.gamma(2.0, 50.0, (n, size, size)).astype(np.float32)
        return (3.0 * target + 100.0).astype(np.float32), target

    data = PairDataset.for_model(_model().config, 2, 5, 16, make_pairs=source)
    assert calls == [(2, 5, 16)]
    # an affine camera: the matched target equals the normalised degraded frame
    np.testing.assert_allclose(data.target, data.degraded, atol=1e-4)
    assert np.percentile(data.degraded[0], 0.2) == pytest.approx(0.0, abs=1e-4)
    with pytest.raises(ValueError, match="one shape"):
        PairDataset(np.zeros((2, 8, 8)), np.zeros((2, 8, 4)))


def test_presets():
    assert preset("tiny").steps < 10
    assert preset("default", steps=7).steps == 7
    with pytest.raises(ValueError, match="unknown preset"):
        preset("huge")


def test_train_writes_checkpoint_and_model_and_resumes(dataset, tmp_path):
    seen: list[int] = []
    model_json = train(
        _model(),
        dataset,
        preset("tiny", steps=2),
        tmp_path,
        progress=lambda s, n, logs: seen.append(s),
    )
    assert seen == [1, 2]
    meta = json.loads((tmp_path / "checkpoint.json").read_text())
    assert meta["step"] == 2
    tensors = load_file(str(tmp_path / "checkpoint.safetensors"))
    assert any(k.startswith("opt_g.") for k in tensors) and "rng.torch" in tensors
    restorer = MSCGMRestorer.load(model_json, device="cpu")
    assert restorer.config.steps_trained == 2 and restorer.config.preset == "tiny"

    seen.clear()
    train(
        _model(),
        dataset,
        preset("tiny", steps=4),
        tmp_path,
        progress=lambda s, n, logs: seen.append(s),
    )
    assert seen == [3, 4]  # continued, not restarted
    assert json.loads((tmp_path / "checkpoint.json").read_text())["step"] == 4


def test_resume_after_a_crash_reproduces_an_uninterrupted_run(dataset, tmp_path):
    def crash(step: int, total: int, logs: dict) -> None:
        if step == 2:  # the checkpoint of step 2 is already on disk
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(_model(), dataset, preset("tiny"), tmp_path / "crashed", progress=crash)
    train(_model(), dataset, preset("tiny"), tmp_path / "crashed")
    train(_model(), dataset, preset("tiny"), tmp_path / "straight")
    a = load_file(str(tmp_path / "crashed" / "model.safetensors"))
    b = load_file(str(tmp_path / "straight" / "model.safetensors"))
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_refuses_another_config(dataset, tmp_path):
    train(_model(), dataset, preset("tiny", steps=1), tmp_path)

    with pytest.raises(ValueError, match="another training config"):
        train(_model(), dataset, preset("tiny", steps=5, lr=1.0), tmp_path)


def test_training_and_adaptation_never_import_the_simulator():
    import subprocess
    import sys

    code = ("import sys, live_restore.training.loop, live_restore.training.data, "
            "live_restore.adapt.cingan, live_restore.adapt.finetune; "
            "print(sorted(m for m in sys.modules if m.startswith('live_restore.sim')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
