"""MSCGM: pyramid bookkeeping, losses, restore() contract, consistency score, model files."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.ndimage
import torch

from live_restore.models.calibration import Calibration
from live_restore.models.configs import MSCGMConfig
from live_restore.models.inference import Inferer
from live_restore.models.mscgm import MSCGM, MSCGMRestorer, noise_level, synthesise
from live_restore.models.networks import DetailHead
from live_restore.models.normalisation import normalise_frame
from live_restore.models.protocol import Restorer, file_checksum
from live_restore.models.restorer import Averaged
from tiny_models import SMALL_MSCGM


def _model(seed: int = 0, **overrides) -> MSCGM:
    torch.manual_seed(seed)
    model = MSCGM(MSCGMConfig(task="sted_denoise", **(SMALL_MSCGM | overrides)))
    with torch.no_grad():  # leave the zero-initialised output layers, so outputs are non-trivial
        for module in model.modules():
            if isinstance(module, torch.nn.Conv2d) and not module.weight.any():
                module.weight.normal_(0, 0.01)
    return model


@pytest.fixture(scope="module")
def restorer() -> MSCGMRestorer:
    return MSCGMRestorer(_model(), device="cpu")


def _frames(n: int = 2, shape=(40, 48), seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.poisson(20.0, (n, *shape)).astype(np.float32) + 10.0


def test_synthesis_inverts_the_pyramid():
    model = _model()
    x = torch.rand(2, 1, 32, 32, dtype=torch.float64)
    lls, details = model._levels(x)
    assert torch.allclose(synthesise(lls[-1], details[-1]), x)
    assert torch.allclose(lls[0], torch.nn.functional.avg_pool2d(x, 4))


def test_config_is_frozen_strict_and_checked():
    with pytest.raises(ValueError, match="extra"):
        MSCGMConfig(task="denoise", colour="red")
    with pytest.raises(ValueError, match="blur_sigma_px"):
        MSCGMConfig(task="confocal2sted", forward_model="confocal_blur")
    with pytest.raises(ValueError, match="pmin must be below pmax"):
        MSCGMConfig(task="denoise", pmin=50, pmax=40)
    c2s = MSCGMConfig.for_task("confocal2sted")
    assert c2s.forward_model == "confocal_blur"
    assert (c2s.bridge_channels, c2s.bridge_mults, c2s.steps) == (32, (1, 2, 4), 1)
    assert MSCGMConfig.for_task("confocal2sted", steps=4).steps == 4  # explicit values win
    sted = MSCGMConfig.for_task("sted_denoise")
    assert sted.forward_model == "identity" and sted.detail_skip
    assert (c2s.levels, sted.levels) == (1, 2)
    assert (c2s.detail_passes, sted.detail_passes) == (4, 1)
    assert (sted.finest_head_channels, c2s.finest_head_channels) == (16, 8)
    assert (c2s.ssim_weight, sted.ssim_weight) == (0.0, 0.2)
    assert (c2s.bridge_objective, c2s.first_hop_fraction) == ("ysubx", 0.5)
    assert (sted.bridge_objective, sted.first_hop_fraction) == ("grad", 0.0)
    assert (c2s.ll_noise, c2s.ll_blur_fraction, sted.ll_blur_fraction) == (0.0, 0.0, 0.5)
    assert not c2s.detail_skip
    assert (sted.bridge_s, c2s.bridge_s) == (0.001, 0.1)
    generic = MSCGMConfig.for_task("denoise")
    assert generic.noise_scaled and generic.bridge_s == 1.0  # s in noise units
    assert generic.noise_unit_details and generic.smooth_prior
    assert not (sted.smooth_prior or c2s.smooth_prior)
    assert all(head.smooth_prior for head in MSCGM(generic).heads)
    assert (generic.head_channels, generic.finest_head_channels) == (32, 24)
    assert not (sted.noise_unit_details or c2s.noise_unit_details)
    assert not (sted.noise_scaled or c2s.noise_scaled)
    assert not MSCGMConfig(task="denoise").detail_skip  # files saved before the skip load as such


def test_ysubx_bridge_returns_x_t_minus_x0_from_a_prediction_of_y_minus_x0():
    with pytest.raises(ValueError, match="ysubx"):
        MSCGMConfig.for_task("denoise", bridge_objective="ysubx")
    grad, ysubx = _model(), _model(bridge_objective="ysubx")
    ysubx.denoiser.unet.load_state_dict(grad.denoiser.unet.state_dict())  # same network
    x_t, y, t = torch.rand(2, 1, 8, 8), torch.rand(2, 1, 8, 8), torch.tensor([3, 1000])
    with torch.no_grad():
        net = grad.denoiser(x_t, y, t)
        torch.testing.assert_close(ysubx.denoiser(x_t, y, t), net + x_t - y)
        # at t = T (x_T = y) both read the network's output as the whole correction
        torch.testing.assert_close(ysubx.denoiser(y, y, t), grad.denoiser(y, y, t))


def test_head_mults_deepen_the_coarse_heads_and_the_padding_follows():
    model = _model(levels=2, head_mults=(1, 2, 4))
    assert [len(h.net.down) for h in model.heads] == [3, 2]  # the finest head stays shallow
    # the coarse head runs on the coarsest LL (1/4 of the frame) and needs multiples of 4 there
    assert (model.denoiser.unet.multiple, model.multiple) == (2, 16)
    frames = _frames(1, shape=(36, 44))
    assert MSCGMRestorer(model, device="cpu").restore(frames, seed=0).mean.shape == (1, 36, 44)
    with pytest.raises(ValueError, match="head_mults"):
        MSCGMConfig(task="denoise", head_mults=())


def test_conditioning_ll_augmentation_follows_its_settings():
    ll = torch.zeros(4, 1, 8, 8)
    ll[:, :, 4, 4] = 1.0
    torch.testing.assert_close(_model(ll_noise=0.0, ll_blur_fraction=0.0)._augment_ll(ll), ll)
    blurred = _model(ll_noise=0.0, ll_blur_fraction=1.0)._augment_ll(ll)
    assert blurred[:, 0, 4, 4].tolist() == [0.25] * 4  # [1 2 1]² / 16 at the centre
    assert blurred.sum().item() == pytest.approx(4.0)  # the blur keeps the mean
    torch.manual_seed(0)
    noisy = _model(ll_noise=0.1, ll_blur_fraction=0.0)._augment_ll(ll) - ll
    assert 0 < noisy.std().item() < 0.1


def test_noise_level_measures_the_noise_not_smooth_signal():
    model = _model()
    rng = np.random.default_rng(0)
    ramp = np.add.outer(np.linspace(0, 1, 64), np.linspace(0, 0.5, 64))  # locally linear
    for sigma in (0.003, 0.05):
        noisy = torch.from_numpy(ramp + rng.normal(0, sigma, ramp.shape))[None, None]
        estimate = float(noise_level(model._levels(noisy)[1][-1]))
        assert estimate == pytest.approx(sigma, rel=0.1)
    clean = torch.from_numpy(ramp)[None, None]
    assert float(noise_level(model._levels(clean)[1][-1])) == pytest.approx(1e-3)  # the floor


def test_noise_scaled_corrections_scale_with_the_noise():
    with pytest.raises(ValueError, match="noise_scaled needs detail_skip"):
        MSCGMConfig(task="denoise", noise_scaled=True)
    head = DetailHead(8, skip=True, noise_input=True)
    with torch.no_grad():  # a head whose network outputs 0.5 everywhere, whatever the input
        head.net.out.weight.zero_()
        head.net.out.bias.fill_(0.5)
    ll, details, z = torch.rand(1, 1, 8, 8), torch.rand(1, 1, 3, 8, 8), torch.zeros(1, 1, 8, 8)
    gate = torch.sigmoid(torch.tensor(0.5)) * details
    for sigma in (0.01, 0.2):
        out = head(ll, ll, details, z, torch.full((1, 1, 1, 1), sigma))
        torch.testing.assert_close(out, gate + 0.5 * sigma)
    with pytest.raises(ValueError, match="pass the details' noise sigma"):
        head(ll, ll, details, z)

    model = _model(noise_scaled=True, detail_skip=True)
    with torch.no_grad():  # a bridge denoiser that predicts no change leaves the LL as it came
        model.denoiser.unet.out.weight.zero_()
        model.denoiser.unet.out.bias.zero_()
    y = torch.rand(2, 1, 32, 32)
    lls, details = model._levels(y)
    restored = model._bridge_sample(lls[0], model._noise(details), 2, 0.0)
    torch.testing.assert_close(restored, lls[0])
    parts = model.losses(y, torch.rand(2, 1, 32, 32), step=9, total_steps=10)
    assert torch.isfinite(parts["loss"]) and "adv_1" in parts


def test_noise_unit_details_feed_the_network_details_over_sigma():
    with pytest.raises(ValueError, match="noise_unit_details needs noise_scaled"):
        MSCGMConfig(task="denoise", detail_skip=True, noise_unit_details=True)
    with pytest.raises(ValueError, match="noise_unit_details needs noise_input"):
        DetailHead(8, skip=True, noise_unit_details=True)
    seen = []
    ll, details, z = torch.rand(1, 1, 8, 8), torch.rand(1, 1, 3, 8, 8), torch.zeros(1, 1, 8, 8)
    sigma = torch.full((1, 1, 1, 1), 0.05)
    for in_noise_units in (False, True):
        head = DetailHead(8, skip=True, noise_input=True, noise_unit_details=in_noise_units)
        head.net.register_forward_hook(lambda module, args, out: seen.append(args[0]))
        head(ll, ll, details, z, sigma)
    plain, scaled = (inputs[:, 2:5] for inputs in seen)
    torch.testing.assert_close(plain, details.flatten(1, 2))
    torch.testing.assert_close(scaled, details.flatten(1, 2) / 0.05)
    model = _model(noise_scaled=True, detail_skip=True, noise_unit_details=True)
    assert all(head.noise_unit_details for head in model.heads)


def test_losses_are_finite_and_the_critic_waits_for_warm_up():
    model = _model()
    x = torch.rand(2, 1, 16, 16)
    early = model.losses(x, x, step=0, total_steps=10)
    assert {"loss", "bridge", "l1_0", "ssim_1"} <= set(early)
    assert "adv_0" not in early
    assert model.discriminator_loss(x, x, step=0, total_steps=10) is None
    late = model.losses(x, x, step=9, total_steps=10)  # stage 2: heads see the bridge's LL
    assert "adv_1" in late and torch.isfinite(late["loss"])
    critic = model.discriminator_loss(x, x, step=9, total_steps=10)
    assert critic is not None and torch.isfinite(critic["loss"])
    with pytest.raises(ValueError, match="multiple of 8"):
        model.losses(torch.rand(1, 1, 12, 12), torch.rand(1, 1, 12, 12), step=0, total_steps=1)


def test_restorer_protocol(restorer):
    assert isinstance(restorer, Restorer)
    assert restorer.name == "mscgm"


@pytest.mark.parametrize("shape", [(37, 53), (1, 40), (40, 1), (8, 8)])
def test_restore_any_size(restorer, shape):
    out = restorer.restore(_frames(1, shape), seed=0)
    assert out.mean.shape == (1, *shape)
    assert out.mean.dtype == np.float32 and np.isfinite(out.mean).all()
    assert out.std is None


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32, np.float64])
def test_restore_accepts_camera_dtypes_and_returns_camera_units(restorer, dtype):
    frames = _frames(2, (32, 32)).astype(dtype)
    out = restorer.restore(frames, seed=0)
    assert out.mean.shape == (2, 32, 32) and out.mean.dtype == np.float32
    # the nearly untrained model stays close to its input, in the input's units (≈ 30 ADU)
    assert abs(float(out.mean.mean()) - float(frames.mean())) < 5


def test_restore_rejects_nan_and_bad_samples(restorer):
    frames = _frames(2, (16, 16))
    frames[1, 3, 3] = np.nan
    with pytest.raises(ValueError, match=r"frame\(s\) \[1\]"):
        restorer.restore(frames)
    with pytest.raises(ValueError, match="samples"):
        restorer.restore(_frames(1, (16, 16)), samples=0)


def test_same_seed_same_output_and_samples_spread(restorer):
    frames = _frames(1, (24, 24))
    a = restorer.restore(frames, samples=2, seed=3)
    b = restorer.restore(frames, samples=2, seed=3)
    np.testing.assert_array_equal(a.mean, b.mean)
    np.testing.assert_array_equal(a.std, b.std)
    assert a.std is not None and float(a.std.mean()) > 0
    c = restorer.restore(frames, samples=2, seed=4)
    assert not np.array_equal(a.mean, c.mean)


def test_draws_differ_by_grid_offset_and_averaged_returns_their_mean(restorer):
    frames = _frames(1, (40, 48))
    draws = [restorer.restore(frames, seed=s, eta=0.0).mean for s in range(6)]
    assert any(not np.array_equal(draws[0], d) for d in draws[1:])  # η = 0, offsets differ
    averaged = Averaged(restorer, 3)
    assert averaged.name == "mscgm_avg3" and averaged.version == restorer.version
    assert averaged.consistency == restorer.consistency  # the wrapped restorer's attributes
    result = averaged.restore(frames, seed=4)
    np.testing.assert_array_equal(result.mean, restorer.restore(frames, samples=3, seed=4).mean)
    assert result.std is not None and result.std.max() > 0
    with pytest.raises(ValueError, match="samples"):
        Averaged(restorer, 0)


def test_draws_turn_and_flip_the_frame_and_undo_it(restorer, monkeypatch):
    frames = _frames(1, (20, 36))
    seen = []

    def per_pixel(norm, *args):
        seen.append((norm.shape, norm[0, 0]))
        return 2 * norm

    monkeypatch.setattr(restorer.inferer, "_restore_frame", per_pixel)
    _, lo, _ = normalise_frame(frames[0], 0.2, 99.8)
    for seed in range(12):
        restored = restorer.restore(frames, seed=seed).mean
        np.testing.assert_allclose(restored, 2 * frames - lo, rtol=1e-5)
    assert {shape[0] < shape[1] for shape, _ in seen} == {True, False}  # turned and not
    assert len({corner for _, corner in seen}) > 2  # different corners came first


def test_an_estimate_replaces_the_bridge_and_heads_start_from_its_ll():
    torch.manual_seed(0)
    model = MSCGM(MSCGMConfig(task="confocal2sted", **(SMALL_MSCGM | {"levels": 1})))
    y, estimate = torch.rand(2, 2, 1, 16, 16).unbind(0)
    # untrained heads (zero output layer, no skip gate) add no details: the result is the
    # estimate's own 2×2 block means, whatever the degraded frame says
    blocks = torch.nn.functional.avg_pool2d(estimate, 2).repeat_interleave(2, -1)
    restored = model.restore_normalised(y, estimate=estimate)
    torch.testing.assert_close(restored, blocks.repeat_interleave(2, -2))
    assert not torch.allclose(model.restore_normalised(y), restored)


def _one_level_restorer() -> MSCGMRestorer:
    return MSCGMRestorer(_model(levels=1), device="cpu")


@pytest.mark.parametrize(("shape", "tile"), [((20, 36), 1024), ((23, 17), 1024), ((40, 70), 32)])
def test_detail_passes_start_from_the_first_pass_and_are_averaged(shape, tile, monkeypatch):
    restorer = MSCGMRestorer(_model(levels=1), device="cpu", max_tile_pixels=tile**2, overlap=8)
    frames = _frames(1, shape)
    calls = []

    def fake(y, steps, eta, generator, estimate=None, sigma=None):
        calls.append(estimate is None)
        return 2 * y if estimate is None else estimate + 1  # later passes: first pass + 1

    monkeypatch.setattr(restorer.model, "restore_normalised", fake)
    _, lo, scale = normalise_frame(frames[0], 0.2, 99.8)
    for seed in range(8):
        restored = restorer.restore(frames, seed=seed, detail_passes=3).mean
        # every pass saw the first pass's output on the same pixels: (0 + 1 + 1) / 3
        np.testing.assert_allclose(restored, 2 * frames - lo + scale * 2 / 3, rtol=1e-5)
    tiles = len(calls) // 24
    assert calls == ([True] * tiles + [False] * 2 * tiles) * 8  # the bridge once per draw


def test_detail_passes_cover_distinct_grid_offsets_in_every_orientation(monkeypatch):
    restorer = _one_level_restorer()
    frames = _frames(1, (24, 30))

    def grid_marker(y, steps, eta, generator, estimate=None, sigma=None):
        marker = torch.zeros_like(y)
        marker[..., ::2, ::2] = 1.0  # the top-left pixel of every Haar block of this view
        return marker

    monkeypatch.setattr(restorer.model, "restore_normalised", grid_marker)
    _, lo, scale = normalise_frame(frames[0], 0.2, 99.8)
    phases = set()
    for seed in range(16):
        one = (restorer.restore(frames, seed=seed, detail_passes=1).mean[0] - lo) / scale
        marked = np.argwhere(one[:2, :2] > 0.5)  # which corner of a block is its top-left
        assert len(marked) == 1
        phases.add(tuple(marked[0]))
        # four passes on a one-level model: all four grids, whatever the orientation
        four = (restorer.restore(frames, seed=seed, detail_passes=4).mean[0] - lo) / scale
        np.testing.assert_allclose(four, 0.25, atol=1e-6)
    assert phases == {(0, 0), (0, 1), (1, 0), (1, 1)}


def test_detail_passes_are_checked_and_change_the_result():
    restorer = _one_level_restorer()
    frames = _frames(1, (32, 40))
    one = restorer.restore(frames, seed=2).mean
    two = restorer.restore(frames, seed=2, detail_passes=2).mean
    assert two.shape == one.shape and np.isfinite(two).all() and not np.array_equal(one, two)
    for bad in (0, 5, 1.5, True):
        with pytest.raises(ValueError, match=r"passes must be an integer from 1 to 4 \(the grid"):
            restorer.restore(frames, detail_passes=bad)
    with pytest.raises(ValueError, match="detail_passes must not exceed the 4"):
        MSCGMConfig(task="confocal2sted", levels=1, detail_passes=5)


def test_tiling_blends_tiles_back_exactly(monkeypatch):
    model = _model()
    tiled = MSCGMRestorer(model, device="cpu", max_tile_pixels=32 * 32, overlap=8)
    frames = _frames(1, (40, 70))
    real = tiled.restore(frames, seed=0).mean
    assert real.shape == frames.shape and np.isfinite(real).all()
    # with a per-pixel tile restorer, overlapping tiles must blend back to the same map
    monkeypatch.setattr(tiled.inferer, "_restore_tile", lambda norm, *args: 2 * norm)
    _, lo, _ = normalise_frame(frames[0], 0.2, 99.8)
    np.testing.assert_allclose(tiled.restore(frames).mean, 2 * frames - lo, rtol=1e-5)
    with pytest.raises(ValueError, match="no usable tile"):
        MSCGMRestorer(model, device="cpu", max_tile_pixels=64, overlap=4)


def test_consistency_flags_hallucinated_structure(restorer):
    rng = np.random.default_rng(1)
    clean = 10.0 + 40.0 * scipy.ndimage.gaussian_filter(rng.random((96, 96)), 3)
    raw = rng.poisson(clean).astype(np.float64)
    spots = np.zeros_like(clean)
    spots[rng.integers(0, 96, 10), rng.integers(0, 96, 10)] = 1.0
    spots = scipy.ndimage.gaussian_filter(spots, 1.5)
    faked = clean + 30.0 * spots / spots.max()  # ten PSF-sized hallucinated puncta
    good = restorer.consistency(raw, clean)
    assert abs(good) < 0.2
    assert restorer.consistency(raw, faked) > good + 0.5
    assert restorer.consistency(raw, 1.1 * clean + 3.0) == pytest.approx(good)  # photometry
    assert restorer.consistency(raw, raw) < -0.3  # copying the noise is flagged too
    bright = rng.poisson(100 * clean).astype(np.float64)  # 100× the dose: same verdicts
    assert abs(restorer.consistency(bright, 100 * clean)) < 0.05
    assert restorer.consistency(bright, 100 * faked) > 0.4
    with pytest.raises(ValueError, match="one shape"):
        restorer.consistency(raw, clean[:10])


def test_save_load_round_trip(restorer, tmp_path):
    path = restorer.save(tmp_path / "m")
    assert path == tmp_path / "m.json" and (tmp_path / "m.safetensors").is_file()
    meta = json.loads(path.read_text())
    assert meta["task"] == "sted_denoise" and meta["levels"] == 2
    assert meta["normalisation"]["pmin"] == 0.2
    loaded = MSCGMRestorer.load(tmp_path / "m", device="cpu")
    assert loaded.version == restorer.version == meta["weights_checksum"]
    frames = _frames(1, (33, 31))
    np.testing.assert_array_equal(
        restorer.restore(frames, seed=1).mean, loaded.restore(frames, seed=1).mean
    )
    assert MSCGMRestorer.load(tmp_path / "m.safetensors").version == loaded.version


def test_half_precision_files_are_half_the_size_and_restore_alike(restorer, tmp_path):
    full, half = restorer.save(tmp_path / "full"), restorer.save(tmp_path / "half", half=True)
    assert json.loads(full.read_text())["weights_dtype"] == "float32"
    assert json.loads(half.read_text())["weights_dtype"] == "float16"
    sizes = [(tmp_path / f"{n}.safetensors").stat().st_size for n in ("full", "half")]
    assert 0.45 < sizes[1] / sizes[0] < 0.55
    loaded = MSCGMRestorer.load(half, device="cpu")
    assert all(p.dtype == torch.float32 for p in loaded.model.parameters())  # cast back on load
    frames = _frames(1, (32, 32))
    before, after = restorer.restore(frames, seed=1).mean, loaded.restore(frames, seed=1).mean
    assert not np.array_equal(before, after)  # the weights really were rounded
    np.testing.assert_allclose(after, before, atol=1e-3 * float(np.ptp(before)))


def test_load_reports_broken_files(restorer, tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        MSCGMRestorer.load(tmp_path / "missing.json")
    path = restorer.save(tmp_path / "m")
    meta = json.loads(path.read_text())
    weights = tmp_path / "m.safetensors"

    path.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        MSCGMRestorer.load(path)
    path.write_text(json.dumps(meta | {"format_version": 99}))
    with pytest.raises(ValueError, match="format_version 99"):
        MSCGMRestorer.load(path)
    path.write_text(json.dumps(meta | {"format": "something.else"}))
    with pytest.raises(ValueError, match="not an MSCGM model"):
        MSCGMRestorer.load(path)
    path.write_text(json.dumps(meta | {"config": meta["config"] | {"levels": "many"}}))
    with pytest.raises(ValueError, match="invalid MSCGM config"):
        MSCGMRestorer.load(path)

    weights.write_bytes(weights.read_bytes()[:100])  # truncated: checksum no longer matches
    path.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="does not belong together or a file is corrupt"):
        MSCGMRestorer.load(path)
    path.write_text(json.dumps(meta | {"weights_checksum": file_checksum(weights)}))
    with pytest.raises(ValueError, match="is corrupt"):
        MSCGMRestorer.load(path)

    other = MSCGMRestorer(_model(bridge_channels=16), device="cpu").save(tmp_path / "o")
    other_meta = json.loads(other.read_text())
    path.write_text(json.dumps(other_meta | {"weights": "m.safetensors"}))
    (tmp_path / "m.safetensors").write_bytes((tmp_path / "o.safetensors").read_bytes())
    path.write_text(json.dumps(meta | {"weights_checksum": other_meta["weights_checksum"]}))
    with pytest.raises(ValueError, match="do not match the config"):
        MSCGMRestorer.load(path)


def test_a_calibration_gives_the_model_its_noise_level_and_names_itself_in_the_version():
    restorer = MSCGMRestorer(_model(noise_scaled=True, detail_skip=True), device="cpu")
    frames = _frames(1, (64, 64))  # Poisson(20) + 10 ADU: var = 1 · x − 10
    plain = restorer.restore(frames, seed=0).mean
    version = restorer.version

    def calibration(gain: float, floor: float) -> Calibration:
        return Calibration(gain=gain, floor=floor, correlation=[[1.0]], frames=8,
                           shape=(64, 64), source="test")

    right = calibration(1.0, -10.0)
    norm, _, scale = restorer.config.normalisation.normalise(frames[0])
    y_details = restorer.model.pyramid(torch.from_numpy(norm)[None, None]).details
    read_off_frame = float(noise_level(y_details[-1]))
    assert Inferer.calibrated_sigma(frames[0], right.noise_model(), scale) == pytest.approx(
        read_off_frame, rel=0.1)
    restorer.use_calibration(right)
    assert restorer.version == f"{version}+cal-{right.digest()}"
    calibrated = restorer.restore(frames, seed=0).mean
    loud = MSCGMRestorer(restorer.model, device="cpu")
    loud.use_calibration(calibration(100.0, 0.0))
    louder = loud.restore(frames, seed=0).mean
    assert np.abs(louder - plain).mean() > 5 * np.abs(calibrated - plain).mean()
    with pytest.raises(ValueError, match="reads no noise level"):
        MSCGMRestorer(_model(), device="cpu").use_calibration(right)


def test_a_model_file_describing_a_huge_model_is_refused_before_anything_is_allocated(tmp_path):
    import resource

    path = MSCGMRestorer(_model(), device="cpu").save(tmp_path / "m")
    meta = json.loads(path.read_text())
    for field, value in (("bridge_channels", 100_000), ("num_timesteps", 10**12),
                         ("head_mults", [1, 2, 4, 8, 16, 32, 64])):
        path.write_text(json.dumps(meta | {"config": meta["config"] | {field: value}}))
        with pytest.raises(ValueError, match=f"invalid MSCGM config.*{field}"):
            MSCGMRestorer.load(path)
    # within the bounds but far wider than the weights (≈ 40 GB as float32): refused on shapes
    huge = {"bridge_channels": 512, "bridge_mults": [1, 16, 16, 16], "head_channels": 512}
    path.write_text(json.dumps(meta | {"config": meta["config"] | huge}))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ValueError, match="do not match the config"):
        MSCGMRestorer.load(path)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak < 500_000  # KiB
