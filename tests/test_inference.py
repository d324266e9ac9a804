"""The one inference layer: normalisation round trip, tiling and blending, padding, samples,
cycle spinning, inference mode. Draws here are simple functions, so every expectation is exact."""

from __future__ import annotations

import re
from itertools import pairwise

import numpy as np
import pytest
import torch

from live_restore.models.inference import CycleSpin, Inferer, blend_window, tile_starts
from live_restore.models.normalisation import Normalisation


def _inferer(multiple: int = 4, **kwargs) -> Inferer:
    return Inferer(multiple, Normalisation(), torch.device("cpu"), **kwargs)


def _frames(n: int = 1, shape=(40, 70), seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.poisson(50.0, (n, *shape)).astype(np.float32) + 100.0


def _doubling(calls: list):
    def draw(y, generator, estimate, sigma):
        calls.append((tuple(y.shape), torch.is_inference_mode_enabled(), estimate is None))
        return 2 * y

    return draw


@pytest.mark.parametrize("shape", [(1, 1), (5, 3), (40, 70)])
def test_identity_draw_returns_the_frame_in_camera_units(shape):
    frames = _frames(2, shape)
    out = _inferer().restore(frames, lambda y, g, e, s: y, seed=0)
    assert out.mean.dtype == np.float32 and out.std is None
    np.testing.assert_allclose(out.mean, frames, rtol=1e-5)


def test_tiles_are_padded_drawn_in_inference_mode_and_blended_back_exactly():
    frames = _frames(1, (40, 70))
    calls = []
    out = _inferer(max_tile_pixels=32 * 32, overlap=8).restore(frames, _doubling(calls))
    lo = np.percentile(frames[0], 0.2)
    np.testing.assert_allclose(out.mean[0], 2 * frames[0] - lo, rtol=1e-5)
    assert len(calls) == len(tile_starts(40, 32, 8)) * len(tile_starts(70, 32, 8)) == 6
    assert {c[0] for c in calls} == {(1, 1, 32, 32)} and all(c[1] for c in calls)
    small = []
    _inferer(multiple=8).restore(_frames(1, (5, 3)), _doubling(small))
    assert small[0][0] == (1, 1, 16, 16)  # at least two multiples per side


def test_tile_geometry():
    assert tile_starts(30, 32, 8) == [0]
    starts = tile_starts(100, 32, 8)
    assert starts[0] == 0 and starts[-1] == 100 - 32
    assert all(b - a <= 32 - 8 for a, b in pairwise(starts))
    window = blend_window(32, 20, 8)
    assert window.shape == (32, 20) and window.min() > 0 and window.max() == 1.0
    np.testing.assert_array_equal(window, window[::-1, ::-1])  # symmetric ramps
    with pytest.raises(ValueError, match="leave no usable tile"):
        _inferer(multiple=16, max_tile_pixels=64, overlap=2)
    with pytest.raises(ValueError, match="leave no usable tile"):
        _inferer(max_tile_pixels=32 * 32, overlap=16)


def test_samples_give_mean_and_spread_and_a_seed_reproduces_them():
    frames = _frames(2, (12, 16))

    def noisy(y, generator, estimate, sigma):
        return y + torch.randn(y.shape, generator=generator)

    inferer = _inferer()
    a = inferer.restore(frames, noisy, samples=4, seed=1)
    b = inferer.restore(frames, noisy, samples=4, seed=1)
    np.testing.assert_array_equal(a.mean, b.mean)
    np.testing.assert_array_equal(a.std, b.std)
    scale = np.subtract(*np.percentile(frames[0], [99.8, 0.2]))
    assert 0.3 * scale < float(a.std[0].mean()) < 1.5 * scale  # unit noise, in camera units
    with pytest.raises(ValueError, match="samples must be an integer >= 1, got 0"):
        inferer.restore(frames, noisy, samples=0)
    calls = []
    once = _inferer(stochastic=False).restore(frames, _doubling(calls), samples=3)
    assert once.std is None and len(calls) == 2  # one draw per frame whatever samples


def test_batch_is_checked_before_any_draw():
    calls = []
    with pytest.raises(ValueError, match=r"frame\(s\) \[0\]"):
        _inferer().restore(np.full((1, 4, 4), np.nan), _doubling(calls))
    with pytest.raises(TypeError, match="dtype"):
        _inferer().restore(np.zeros((4, 4), dtype=bool), _doubling(calls))
    assert not calls


def test_cycle_spin_undoes_its_views_and_feeds_later_passes_the_first():
    frames = _frames(1, (21, 30))
    calls = []
    spin = CycleSpin(block=4, passes=3)
    for seed in range(6):
        out = _inferer().restore(frames, _doubling(calls), seed=seed, spin=spin)
        lo = np.percentile(frames[0], 0.2)
        np.testing.assert_allclose(out.mean[0], 2 * frames[0] - lo, rtol=1e-5)
    assert [c[2] for c in calls] == [True, False, False] * 6  # only the first pass is whole
    assert len({c[0] for c in calls}) > 1  # turned and not, shifted by different offsets
    for bad in (0, 17, 1.5, True):
        message = f"passes must be an integer from 1 to 16 (the grid offsets), got {bad!r}"
        with pytest.raises(ValueError, match=re.escape(message)):
            CycleSpin(block=4, passes=bad)


def test_a_plane_larger_than_a_tile_shows_no_seams_with_a_shipped_model(one_torch_thread):
    """A 200² plane restored whole and in 96² tiles (16 px overlap) by ``denoise``: the tiled
    result is as close to the truth (within 2 %) and differs from the whole one by far less
    than the noise (mean |difference| < 5 % of the noise SD)."""
    from scipy.ndimage import gaussian_filter

    from live_restore.models.restorer import get_restorer

    rng = np.random.default_rng(0)
    spots = np.zeros((200, 200))
    spots[tuple(rng.integers(0, 200, (2, 300)))] = 1
    clean = 10 + 200 * gaussian_filter(spots, 2.0) / gaussian_filter(spots, 2.0).max()
    noisy = rng.poisson(clean).astype(np.float32)
    restorer = get_restorer("denoise", device="cpu")
    whole = restorer.restore(noisy, seed=3).mean[0]
    inferer = restorer.inferer
    restorer.inferer = Inferer(inferer.multiple, inferer.normalisation, inferer.device,
                               max_tile_pixels=96 * 96, overlap=16)
    tiled = restorer.restore(noisy, seed=3).mean[0]

    def rmse(a: np.ndarray) -> float:
        return float(np.sqrt(np.mean((a - clean) ** 2)))

    assert rmse(tiled) <= 1.02 * rmse(whole)
    assert np.mean(np.abs(tiled - whole)) < 0.05 * np.std(noisy - clean)
