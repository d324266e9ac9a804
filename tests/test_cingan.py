"""CIN-GAN: frozen rows stay frozen, the gradient penalty, style statistics, files."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage
import torch

from live_restore.adapt.cingan import (
    CINGAN,
    OUT_OF_FOCUS_SIGMAS_PX,
    CINGANConfig,
    GANTrainConfig,
    calibrate_row,
    fit_cingan,
    floor_slope,
    gradient_penalty,
    normalise_frames,
    out_of_focus,
    random_crops,
    style_loss,
    style_statistics,
    unpaired_frames,
)
from live_restore.experiments.sources import simulator_pairs

TINY = {"channels": 4, "n_res": 1, "critic_channels": 4, "critic_layers": 2}
TINY_FIT = GANTrainConfig(steps=3, batch_size=2, patch_size=32, n_critic=1, lr_g=1e-2)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _model(defects=("haze", "stripes")) -> CINGAN:
    torch.manual_seed(0)
    return CINGAN(CINGANConfig(defects=defects, **TINY))


def _frames(n: int, seed: int, size: int = 32) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return normalise_frames(list(rng.gamma(2.0, 1.0, (n, size, size))), 0.2, 99.8)


def _stacks(frames: list[np.ndarray]) -> torch.Tensor:
    """Frames in the generator's input layout: each with its whole-frame blurs."""
    return torch.from_numpy(np.stack([out_of_focus(f) for f in frames]))


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
    clean = _stacks(_frames(2, 1))
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
    parts = model.critic_losses(_stacks(list(fake[:, 0].numpy())), real, 0)
    assert all(torch.isfinite(v) for v in parts.values())


def test_noise_head_is_stochastic_around_the_expected_image():
    model = _model()
    clean = _stacks(_frames(1, 4)).expand(64, -1, 32, 32)
    draws = model.synthesise(clean.contiguous(), "haze", torch.Generator().manual_seed(0))
    mu = model.generator.expected(clean[:1], torch.zeros(1, dtype=torch.long)).detach()
    assert not torch.equal(draws[0], draws[1])
    assert torch.allclose(draws.mean(0), mu[0], atol=0.1)


def test_style_statistics_distinguish_two_defect_types():
    def stack(task: str, seed: int) -> torch.Tensor:
        _, defective = unpaired_frames(simulator_pairs(task), 4, seed, 64)
        return torch.from_numpy(np.stack(normalise_frames(defective, 0.2, 99.8)))[:, None]

    stripes, stripes2 = stack("stripes", 0), stack("stripes", 10)
    denoise, denoise2 = stack("denoise", 0), stack("denoise", 10)
    stats = style_statistics(stripes)
    assert {k: v.shape[1] for k, v in stats.items()} == {
        "radial": 12, "directional": 8, "axes": 2, "subbands": 18, "histogram": 16,
        "background": 16,
    }
    assert style_loss(stripes, stripes2) < style_loss(stripes, denoise2)
    assert style_loss(denoise, denoise2) < style_loss(denoise, stripes2)
    x = stripes.clone().requires_grad_(True)
    style_loss(x, denoise).backward()
    assert torch.isfinite(x.grad).all()


def test_generator_step_and_files_round_trip(tmp_path):
    model = _model()
    parts = model.generator_losses(_stacks(_frames(2, 9)), torch.rand(2, 1, 32, 32), 1)
    assert set(parts) == {"loss", "adv", "content", "style"}
    parts["loss"].backward()
    model.add_defect("camera")
    path = model.save(tmp_path / "gan", {"note": "test"})
    loaded = CINGAN.load(path)
    assert loaded.defects == ["haze", "stripes", "camera"]
    clean = _stacks(_frames(2, 10))
    for a, b in zip(_outputs(model, clean).values(), _outputs(loaded, clean).values(), strict=True):
        assert torch.equal(a, b)
    (tmp_path / "gan.json").write_text('{"format": "live_restore.mscgm"}')
    with pytest.raises(ValueError, match="not a CIN-GAN model"):
        CINGAN.load(tmp_path / "gan.json")


def test_out_of_focus_blurs_the_whole_frame_so_crops_see_light_from_outside():
    frame = np.zeros((64, 64), np.float32)
    frame[32, 10] = 1.0  # a bright point well outside the crop below
    stack = out_of_focus(frame)
    assert stack.shape == (1 + len(OUT_OF_FOCUS_SIGMAS_PX), 64, 64)
    assert np.array_equal(stack[0], frame)
    crop = stack[:, 16:48, 32:64]
    assert crop[0].max() == 0 and crop[-1].min() > 0  # haze arrives, the point does not
    # each blur keeps the frame's flux (reflecting edges) and is smooth at its scale
    assert np.allclose(stack[1:].sum(axis=(1, 2)), 1.0, atol=1e-3)


def test_out_of_focus_head_adds_a_non_negative_mix_of_blurs_per_defect():
    model = _model()
    haze = model.generator.haze
    with torch.no_grad():
        haze.log_coeff[0].fill_(np.log(0.5))  # 'haze': strong out-of-focus light
        haze.log_coeff[1].fill_(-30.0)  # 'stripes': none
    stack = _stacks(_frames(1, 11))
    blurred = stack[:, 1:]
    light = {d: haze(blurred, torch.tensor([d])) for d in (0, 1)}
    assert torch.allclose(light[0], 0.5 * blurred.sum(1, keepdim=True))
    assert light[1].abs().max() < 1e-9
    assert (light[0] >= 0).all()
    with pytest.raises(ValueError, match="stacked with their blurs"):
        model.generator.expected(stack[:, :1], torch.tensor([0]))


def test_synthesise_takes_whole_frames_or_stacks_alike():
    model = _model()
    frames = _frames(2, 12)
    whole = torch.from_numpy(np.stack(frames))[:, None]
    a = model.synthesise(whole, "haze", torch.Generator().manual_seed(3))
    b = model.synthesise(_stacks(frames), "haze", torch.Generator().manual_seed(3))
    assert a.shape == (2, 1, 32, 32) and torch.equal(a, b)


def test_line_jitter_shares_one_draw_per_row_and_per_column():
    model = _model()
    lines = model.generator.lines
    with torch.no_grad():
        lines.log_row_sd[0].fill_(np.log(0.2))
        lines.log_column_sd[0].fill_(-30.0)
        lines.log_row_sd[1].fill_(-30.0)
        lines.log_column_sd[1].fill_(np.log(0.1))
    mu = torch.full((2, 1, 16, 24), 0.5)
    with torch.no_grad():
        rows = lines(mu[:1], torch.tensor([0]), torch.Generator().manual_seed(0))[0, 0]
        cols = lines(mu[:1], torch.tensor([1]), torch.Generator().manual_seed(0))[0, 0]
    assert torch.allclose(rows, rows[:, :1].expand_as(rows))  # constant along each row
    assert rows[:, 0].std() > 0.05  # rows differ: gain sd 0.2 of 0.5
    assert torch.allclose(cols, cols[:1].expand_as(cols))  # constant down each column
    assert 0.05 < float((cols[0] - 0.5).std()) < 0.2


def test_a_new_defect_starts_from_the_identity_body():
    model = _model()
    fit_cingan(model, {"haze": _frames(2, 5), "stripes": _frames(2, 6)},
               {"haze": _frames(2, 7), "stripes": _frames(2, 8)}, TINY_FIT)
    model.add_defect("camera")
    stack = _stacks(_frames(2, 13))
    camera = torch.full((2,), 2)
    with torch.no_grad():
        mu = model.generator.expected(stack, camera)
        light = model.generator.haze(stack[:, 1:], camera)
    assert torch.allclose(mu, stack[:, :1] + light)  # body gate 0: clean + out-of-focus light
    assert float(model.generator.body_gate[0]) != 0  # the pre-trained rows keep their body


def test_defective_crops_keep_their_rows_and_columns():
    frame = np.zeros((1, 32, 32), np.float32)
    frame[0, 5] = 1.0  # one bright scan line
    kept = random_crops([frame], 64, 16, torch.Generator().manual_seed(0), turn=False)[:, 0]
    turned = random_crops([frame], 64, 16, torch.Generator().manual_seed(0))[:, 0]
    assert set(kept.sum(dim=-1).unique().tolist()) == {0.0, 16.0}  # lit rows are whole rows
    assert (kept.sum(dim=-2) <= 1).all()  # and never a column
    assert (turned.sum(dim=-2) == 16).any()  # a quarter turn makes some of them columns


def test_background_statistic_tracks_out_of_focus_light():
    rng = np.random.default_rng(0)
    frames = []
    for _ in range(4):
        f = np.zeros((64, 64), np.float32)
        f[rng.integers(0, 64, 20), rng.integers(0, 64, 20)] = 1.0
        frames.append(out_of_focus(f))
    stack = torch.from_numpy(np.stack(frames))
    clean = stack[:, :1]
    levels = [float(style_statistics(clean + c * stack[:, 4:5])["background"].mean())
              for c in (0.0, 20.0, 80.0)]
    assert levels[0] < levels[1] < levels[2]
    # gain and offset do not change it: the patch is mapped to its own percentiles
    hazy = clean + 20.0 * stack[:, 4:5]
    a = style_statistics(hazy)["background"]
    b = style_statistics(3.0 * hazy + 0.5)["background"]
    assert torch.allclose(a, b, atol=1e-4)


def test_the_heads_are_fitted_by_the_statistics_not_the_critic():
    model = _model()
    frames = {"haze": _frames(2, 5)}
    # only the critic's term: a zero content/style weight leaves the heads without gradient
    model.config = model.config.model_copy(update={"content_weight": 0.0, "style_weight": 0.0})
    heads = [p.detach().clone() for p in model.generator.haze.parameters()]
    fit_cingan(model, frames, {"haze": _frames(2, 7)}, TINY_FIT)
    assert all(torch.equal(h, p.detach())
               for h, p in zip(heads, model.generator.haze.parameters(), strict=True))


def _specimen(n: int, seed: int, size: int = 64) -> list[np.ndarray]:
    """Normalised frames of sparse, slightly blurred beads clustered on one side (so the
    structure's density varies at the scale of out-of-focus light)."""
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(n):
        f = np.zeros((size, size), np.float32)
        y, x = rng.integers(0, size, 40), rng.integers(0, size // 2, 40)
        f[y, x] = 1.0
        f[rng.integers(0, size, 8), rng.integers(size // 2, size, 8)] = 1.0
        frames.append(scipy.ndimage.gaussian_filter(f, 1.5) + 0.01)
    return normalise_frames(frames, 0.2, 99.8)


def _hazy(frames: list[np.ndarray], amplitude: float) -> list[np.ndarray]:
    return [f + amplitude * out_of_focus(f)[3:].mean(0) for f in frames]


def test_floor_slope_rises_with_out_of_focus_light_and_ignores_gain_and_offset():
    frames = _specimen(3, 0)
    slopes = [float(floor_slope(torch.from_numpy(np.stack(_hazy(frames, c)))[:, None]).mean())
              for c in (0.0, 1.0, 3.0)]
    assert slopes[0] < slopes[1] < slopes[2]
    x = torch.from_numpy(np.stack(_hazy(frames, 1.0)))[:, None]
    assert torch.allclose(floor_slope(3.0 * x + 0.5), floor_slope(x), atol=1e-4)


def test_calibration_finds_out_of_focus_light_only_in_hazy_frames():
    clean = _specimen(4, 1)
    amplitudes = {}
    for name, defective in {"haze": _hazy(_specimen(4, 2), 2.0), "none": _specimen(4, 2)}.items():
        model = _model(("stripes",))
        model.add_defect(name)
        old = [p.detach().clone() for p in model.generator.parameters()]
        flags = [p.requires_grad for p in model.generator.parameters()]
        cal = calibrate_row(model, name, clean, defective, patch_size=32, steps=3)
        amplitudes[name] = cal["out_of_focus_light"]
        assert cal["style_loss_after"] < cal["style_loss_before"]
        rows = model.generator.defect_rows()
        # the old defect's rows and the shared weights are untouched, and stay frozen
        assert all(torch.equal(a, b.detach())
                   for a, b in zip(old, model.generator.parameters(), strict=True)
                   if not any(b is table[-1] for table in rows))
        assert flags == [p.requires_grad for p in model.generator.parameters()]
    assert amplitudes["none"] == 0.0
    assert amplitudes["haze"] > 0.5
