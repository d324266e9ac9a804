"""CIN-GAN: frozen rows stay frozen, the gradient penalty, style statistics, files."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from live_restore.cingan import (
    CINGAN,
    CINGANConfig,
    GANTrainConfig,
    fit_cingan,
    gradient_penalty,
    normalise_frames,
    simulated_defect_frames,
    style_loss,
    style_statistics,
)

TINY = {"channels": 4, "n_res": 1, "critic_channels": 4, "critic_layers": 2}
TINY_FIT = GANTrainConfig(steps=3, batch_size=2, patch_size=32, n_critic=1, lr_g=1e-2)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _model(defects=("haze", "stripes")) -> CINGAN:
    torch.manual_seed(0)
    return CINGAN(CINGANConfig(defects=defects, **TINY))


def _frames(n: int, seed: int, size: int = 32) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return normalise_frames(list(rng.gamma(2.0, 1.0, (n, size, size))), 0.2, 99.8)


def _outputs(model: CINGAN, clean: torch.Tensor) -> dict[int, torch.Tensor]:
    with torch.no_grad():
        return {
            d: model.generator.expected(clean, torch.full((len(clean),), d)).clone()
            for d in range(len(model.defects))
        }


def test_new_row_leaves_the_other_defects_unchanged():
    model = _model()
    # A short pre-training moves the zero-initialised output conv, so rows get gradients.
    fit_cingan(model, {"haze": _frames(2, 5), "stripes": _frames(2, 6)},
               {"haze": _frames(2, 7), "stripes": _frames(2, 8)}, TINY_FIT)
    clean = torch.from_numpy(np.stack(_frames(2, 1)))[:, None]
    before = _outputs(model, clean)
    new = model.add_defect("camera")
    assert model.defects == ["haze", "stripes", "camera"]
    trainable = {id(p) for p in model.generator.parameters() if p.requires_grad}
    assert trainable == {id(p) for p in new}
    frozen = {n: p.detach().clone() for n, p in model.generator.named_parameters()
              if not p.requires_grad}
    rows = [p.detach().clone() for p in new]
    fit_cingan(model, {"camera": _frames(2, 2)}, {"camera": _frames(2, 3)}, TINY_FIT)
    assert any(not torch.equal(r, p.detach()) for r, p in zip(rows, new, strict=True))
    params = dict(model.generator.named_parameters())
    assert all(torch.equal(v, params[n].detach()) for n, v in frozen.items())
    after = _outputs(model, clean)
    for d in (0, 1):
        assert torch.equal(before[d], after[d])


def test_add_defect_refuses_a_known_name_and_unknown_defects_are_named():
    model = _model()
    with pytest.raises(ValueError, match="'haze' already exists"):
        model.add_defect("haze")
    with pytest.raises(ValueError, match="unknown defect 'blur'"):
        model.synthesise(torch.zeros(1, 1, 32, 32), "blur")
    with pytest.raises(ValueError, match="unique"):
        CINGANConfig(defects=("a", "a"))


def test_gradient_penalty_is_finite_and_taken_on_interpolates():
    model = _model()
    real = torch.randn(3, 1, 32, 32)
    fake = torch.randn(3, 1, 32, 32)
    seen: list[torch.Tensor] = []
    hook = model.critic.register_forward_pre_hook(lambda _m, args: seen.append(args[0].detach()))
    gp = gradient_penalty(model.critic, real, fake, torch.zeros(3, dtype=torch.long))
    hook.remove()
    assert gp.ndim == 0 and torch.isfinite(gp) and gp > 0
    (mixed,) = seen
    e = ((mixed - fake) / (real - fake)).flatten(1)  # one mixing weight per sample
    assert torch.allclose(e, e[:, :1].expand_as(e), atol=1e-4)
    assert ((e >= 0) & (e <= 1)).all()
    gp.backward()  # create_graph: the penalty trains the critic
    assert all(p.grad is not None for p in model.critic.features.parameters())
    parts = model.critic_losses(real, fake, 0)
    assert all(torch.isfinite(v) for v in parts.values())


def test_noise_head_is_stochastic_around_the_expected_image():
    model = _model()
    clean = torch.from_numpy(np.stack(_frames(1, 4)))[:, None].expand(64, 1, 32, 32)
    draws = model.synthesise(clean.contiguous(), "haze", torch.Generator().manual_seed(0))
    mu = model.generator.expected(clean[:1], torch.zeros(1, dtype=torch.long)).detach()
    assert not torch.equal(draws[0], draws[1])
    assert torch.allclose(draws.mean(0), mu[0], atol=0.1)


def test_style_statistics_distinguish_two_defect_types():
    def stack(task: str, seed: int) -> torch.Tensor:
        _, defective = simulated_defect_frames(task, 4, seed, 64)
        return torch.from_numpy(np.stack(normalise_frames(defective, 0.2, 99.8)))[:, None]

    stripes, stripes2 = stack("stripes", 0), stack("stripes", 10)
    denoise, denoise2 = stack("denoise", 0), stack("denoise", 10)
    stats = style_statistics(stripes)
    assert {k: v.shape[1] for k, v in stats.items()} == {
        "radial": 12, "directional": 8, "axes": 2, "subbands": 18, "histogram": 16
    }
    assert style_loss(stripes, stripes2) < style_loss(stripes, denoise2)
    assert style_loss(denoise, denoise2) < style_loss(denoise, stripes2)
    x = stripes.clone().requires_grad_(True)
    style_loss(x, denoise).backward()
    assert torch.isfinite(x.grad).all()


def test_generator_step_and_files_round_trip(tmp_path):
    model = _model()
    parts = model.generator_losses(torch.rand(2, 1, 32, 32), torch.rand(2, 1, 32, 32), 1)
    assert set(parts) == {"loss", "adv", "content", "style"}
    parts["loss"].backward()
    model.add_defect("camera")
    path = model.save(tmp_path / "gan", {"note": "test"})
    loaded = CINGAN.load(path)
    assert loaded.defects == ["haze", "stripes", "camera"]
    clean = torch.rand(2, 1, 32, 32)
    for a, b in zip(_outputs(model, clean).values(), _outputs(loaded, clean).values(), strict=True):
        assert torch.equal(a, b)
    (tmp_path / "gan.json").write_text('{"format": "live_restore.mscgm"}')
    with pytest.raises(ValueError, match="not a CIN-GAN model"):
        CINGAN.load(tmp_path / "gan.json")
