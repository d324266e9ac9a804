"""Noise2Noise adaptation from noisy frames alone (live_restore.adapt.noisy)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from live_restore.adapt.noisy import NoisyAdaptConfig, NoisyPairs, adapt_from_noisy
from live_restore.models.mscgm import MSCGM, MSCGMConfig, MSCGMRestorer
from live_restore.models.restorer import get_restorer
from tiny_models import SMALL_MSCGM


def blobs(shape: tuple[int, int], seed: int) -> np.ndarray:
    """A smooth specimen: a few Gaussian spots on a dim background (photons per pixel)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    out = np.full(shape, 5.0)
    for cy, cx in rng.uniform(8, min(shape) - 8, size=(6, 2)):
        out += 60.0 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * 3.0**2))
    return out


def noisy_stack(clean: np.ndarray, frames: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.stack([rng.poisson(clean) + 10 for _ in range(frames)]).astype(np.uint16)


@pytest.fixture
def base() -> MSCGMRestorer:
    torch.manual_seed(0)
    config = MSCGMConfig.for_task("denoise", **SMALL_MSCGM)
    return MSCGMRestorer(MSCGM(config), device="cpu")


def test_each_frame_is_paired_with_its_neighbours_in_its_own_field() -> None:
    stacks = [np.zeros((4, 32, 32)), np.zeros((1, 32, 32)), np.zeros((3, 32, 32))]
    data = NoisyPairs(stacks, pmin=0.2, pmax=99.8, max_frame_gap=1)
    assert data.pairs == [
        (0, 0, (1,)), (0, 1, (0, 2)), (0, 2, (1, 3)), (0, 3, (2,)),
        (2, 0, (1,)), (2, 1, (0, 2)), (2, 2, (1,)),
    ]
    assert data.frame_count == 8
    wide = NoisyPairs(stacks, pmin=0.2, pmax=99.8, max_frame_gap=3)
    assert wide.pairs[0] == (0, 0, (1, 2, 3)) and len(wide) == 7


def test_target_is_the_mean_of_the_neighbours() -> None:
    frames = np.stack([np.full((32, 32), v) for v in (0.0, 10.0, 30.0)])
    frames[:, 0, 0] = 100.0  # every frame's percentiles: 0 -> 0 and 100 -> 1 at pmin/pmax 0/100
    frames[:, 1, 1] = 0.0
    data = NoisyPairs([frames], pmin=0.0, pmax=100.0)
    data.pairs = [(0, 1, (0, 2))]
    inputs, targets = data.batch(1, 32, torch.Generator().manual_seed(0))
    flat = targets[0, 0].numpy()
    assert np.median(flat) == pytest.approx((15.0 - 0.0) / 100.0)
    assert np.median(inputs[0, 0].numpy()) == pytest.approx(0.1)


def test_target_is_put_in_the_input_frames_units() -> None:
    """A brighter second exposure must stay brighter: the target is not renormalised."""
    ramp = np.tile(np.linspace(0.0, 100.0, 32), (32, 1))
    data = NoisyPairs([np.stack([ramp, 2.0 * ramp])], pmin=0.0, pmax=100.0)
    data.pairs = [(0, 0, (1,))]
    inputs, targets = data.batch(3, 16, torch.Generator().manual_seed(0))
    np.testing.assert_allclose(targets.numpy(), 2.0 * inputs.numpy(), atol=1e-5)
    assert float(inputs.min()) >= 0.0 and float(inputs.max()) <= 1.0


def test_targets_replace_the_neighbours_and_are_not_counted_as_frames() -> None:
    """Supervised (benchmark ceiling): every frame, single ones too, is paired with its
    stack's target, which is cropped with it and put in the input frame's units."""
    ramp = np.tile(np.linspace(0.0, 100.0, 32), (32, 1))
    stacks = [np.stack([ramp, ramp]), ramp[None]]
    data = NoisyPairs(stacks, pmin=0.0, pmax=100.0, targets=[3.0 * ramp, ramp])
    assert data.supervised and data.frame_count == 3
    assert data.pairs == [(0, 0, (2,)), (0, 1, (2,)), (1, 0, (1,))]
    data.pairs = data.pairs[:1]
    inputs, targets = data.batch(2, 16, torch.Generator().manual_seed(0))
    np.testing.assert_allclose(targets.numpy(), 3.0 * inputs.numpy(), atol=1e-5)


@pytest.mark.parametrize(
    ("targets", "message"),
    [
        ([np.zeros((32, 32))] * 2, "2 targets for 1 stacks"),
        ([np.zeros((16, 32))], "is not one frame of the stack's shape"),
        ([np.full((32, 32), np.inf)], "target 0 contains NaN"),
    ],
)
def test_bad_targets_are_refused(targets, message) -> None:
    with pytest.raises(ValueError, match=message):
        NoisyPairs([np.zeros((2, 32, 32))], pmin=0.2, pmax=99.8, targets=targets)


@pytest.mark.parametrize(
    ("stacks", "message"),
    [
        ([np.zeros((1, 32, 32))], "two frames of the same field"),
        ([np.full((2, 32, 32), np.nan)], "NaN"),
        ([np.zeros((2, 2, 32, 32))], "expected numeric frames"),
        ([np.zeros((2, 32, 32), dtype=bool)], "expected numeric frames"),
    ],
)
def test_bad_stacks_are_refused(stacks, message) -> None:
    with pytest.raises(ValueError, match=message):
        NoisyPairs(stacks, pmin=0.2, pmax=99.8)


def test_adaptation_denoises_and_records_its_provenance(base, tmp_path) -> None:
    """Trained on noisy pairs only, the restorer comes closer to the clean specimen it never
    saw; the base is left as it was, and the adapted model's JSON says how it was made."""
    torch.manual_seed(0)
    before = {k: v.clone() for k, v in base.model.state_dict().items()}
    clean = blobs((64, 64), 0) + 10
    stack = noisy_stack(clean - 10, frames=3, seed=1)
    config = NoisyAdaptConfig(steps=40, batch_size=2, patch_size=32, lr=1e-3, seed=0)
    logs: list[float] = []
    adapted = adapt_from_noisy(
        base, [stack], config, progress=lambda step, total, parts: logs.append(parts["loss"])
    )
    assert len(logs) == 40

    unseen = noisy_stack(clean - 10, frames=1, seed=7)[0].astype(np.float32)

    def error(restorer: MSCGMRestorer) -> float:
        return float(np.mean((restorer.restore(unseen, seed=0).mean[0] - clean) ** 2))

    assert error(adapted) < 0.7 * error(base)
    assert all(torch.equal(v, before[k]) for k, v in base.model.state_dict().items())
    supervised = adapt_from_noisy(base, [stack], config.model_copy(update={"steps": 2}),
                                  targets=[clean])
    assert supervised.adaptation["method"] == "supervised" and supervised.name.endswith("+sup")
    record = adapted.adaptation
    assert record["method"] == "noise2noise" and record["frames"] == 3 and record["pairs"] == 3
    assert record["base"]["version"] == base.version
    path = adapted.save(tmp_path / "adapted", extra={"adaptation": record})
    assert json.loads(path.read_text())["adaptation"]["frames_sha256"] == record["frames_sha256"]
    reloaded = get_restorer(str(path), device="cpu")
    np.testing.assert_array_equal(
        reloaded.restore(unseen, seed=3).mean, adapted.restore(unseen, seed=3).mean
    )


def test_adapting_on_pure_noise_does_not_invent_structure(base) -> None:
    """Flat fields: Noise2Noise's target is the flat mean, so the adapted model must come out
    smoother than the raw frame and than the base model, with no spots of its own."""
    torch.manual_seed(0)
    flat = np.full((64, 64), 20.0)
    stack = noisy_stack(flat, frames=4, seed=2)
    config = NoisyAdaptConfig(steps=40, batch_size=2, patch_size=32, lr=1e-3, seed=0)
    adapted = adapt_from_noisy(base, [stack], config)
    unseen = noisy_stack(flat, frames=1, seed=99)[0].astype(np.float32)
    restored = adapted.restore(unseen, seed=0).mean[0]
    raw_spread = float(unseen.std())
    assert float(restored.std()) < 0.5 * raw_spread
    assert float(np.abs(restored - unseen.mean()).max()) < 3.0 * raw_spread
    assert abs(float(restored.mean()) - float(unseen.mean())) < 0.1 * raw_spread
