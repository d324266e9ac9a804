"""Haar pyramid: pywt equality, perfect reconstruction, scale factors, padding."""

from __future__ import annotations

import numpy as np
import pytest
import pywt
import torch

from live_restore.models.wavelets import (
    HaarPyramid,
    Pyramid,
    crop,
    haar_dwt2,
    haar_idwt2,
    pad_to_multiple,
)

# (levels, batch, channels, height, width): heights/widths are multiples of 2^J, not squares.
SHAPES = [
    (1, 1, 1, 2, 2),
    (1, 2, 3, 6, 10),
    (2, 3, 1, 12, 20),
    (3, 2, 2, 24, 40),
    (4, 1, 2, 32, 48),
]
TOLERANCE = {torch.float64: 1e-10, torch.float32: 1e-5}


def _image(shape: tuple[int, ...], dtype: torch.dtype, seed: int = 0) -> torch.Tensor:
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


@pytest.mark.parametrize(("levels", "b", "c", "h", "w"), SHAPES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_raw_coefficients_equal_pywt_wavedec2(levels, b, c, h, w, dtype):
    x = _image((b, c, h, w), dtype)
    p = HaarPyramid(levels)(x, scaled=False)
    ref = pywt.wavedec2(x.double().numpy(), "haar", level=levels)
    tol = TOLERANCE[dtype]
    np.testing.assert_allclose(p.ll.double().numpy(), ref[0], rtol=0, atol=tol * 2**levels)
    assert len(p.details) == levels
    for ours, (ch, cv, cd) in zip(p.details, ref[1:], strict=True):
        assert ours.shape == (b, c, 3, *ch.shape[-2:])
        assert ours.dtype == dtype
        np.testing.assert_allclose(
            ours.double().numpy(), np.stack((ch, cv, cd), axis=2), rtol=0, atol=tol * 2**levels
        )


@pytest.mark.parametrize(("levels", "b", "c", "h", "w"), SHAPES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("scaled", [True, False])
def test_round_trip_is_perfect(levels, b, c, h, w, dtype, scaled):
    x = _image((b, c, h, w), dtype, seed=1) * 4 - 1
    pyramid = HaarPyramid(levels)
    y = pyramid.inverse(pyramid(x, scaled=scaled), scaled=scaled)
    assert y.shape == x.shape
    assert y.dtype == dtype
    assert (y - x).abs().max().item() < TOLERANCE[dtype]


def test_single_level_matches_pywt_dwt2_and_inverts():
    x = _image((2, 3, 8, 6), torch.float64, seed=2)
    ll, details = haar_dwt2(x)
    ca, (ch, cv, cd) = pywt.dwt2(x.numpy(), "haar")
    np.testing.assert_allclose(ll.numpy(), ca, atol=1e-12)
    np.testing.assert_allclose(details.numpy(), np.stack((ch, cv, cd), axis=2), atol=1e-12)
    np.testing.assert_allclose(
        haar_idwt2(ll, details).numpy(), pywt.idwt2((ca, (ch, cv, cd)), "haar"), atol=1e-12
    )


def test_default_scales_are_powers_of_two_and_keep_unit_range():
    levels = 3
    pyramid = HaarPyramid(levels)
    assert pyramid.ll_scale == 2.0**-3
    assert pyramid.detail_scales == [0.25, 0.5, 1.0]  # coarse → fine
    # A [0, 1] image: the scaled LL is the 8×8 block mean, details lie in [-1, 1].
    x = _image((2, 1, 32, 32), torch.float64, seed=3)
    p = pyramid(x)
    block_mean = torch.nn.functional.avg_pool2d(x, 2**levels)
    torch.testing.assert_close(p.ll, block_mean, rtol=0, atol=1e-12)
    # Worst case: a checkerboard of 0/1 blocks at each level's scale reaches ±1 exactly.
    for level in range(1, levels + 1):
        size = 2 ** (level - 1)
        checker = (torch.arange(32) // size) % 2
        stripes = checker[:, None].expand(32, 32).to(torch.float64)[None, None]
        details = pyramid(stripes).details
        assert details[levels - level].abs().max().item() == 1.0
        assert all(d.abs().max().item() <= 1.0 for d in details)


def test_scaling_is_bit_exact_for_default_factors():
    pyramid = HaarPyramid(2)
    raw = pyramid(_image((1, 1, 16, 16), torch.float32, seed=4), scaled=False)
    back = pyramid.unscale(pyramid.scale(raw))
    assert torch.equal(back.ll, raw.ll)
    assert all(torch.equal(a, b) for a, b in zip(back.details, raw.details, strict=True))


def test_custom_scales_are_applied_and_inverted():
    pyramid = HaarPyramid(2, ll_scale=0.3, detail_scales=[3.0, 7.0])
    x = _image((2, 2, 8, 8), torch.float64, seed=5)
    raw, scaled = pyramid(x, scaled=False), pyramid(x)
    torch.testing.assert_close(scaled.ll, raw.ll * 0.3)
    torch.testing.assert_close(scaled.details[0], raw.details[0] * 3.0)
    torch.testing.assert_close(scaled.details[1], raw.details[1] * 7.0)
    assert (pyramid.inverse(scaled) - x).abs().max().item() < 1e-10


def test_constant_image_has_no_details_and_ll_grows_two_per_level():
    x = torch.full((1, 1, 16, 16), 0.75, dtype=torch.float64)
    p = HaarPyramid(3)(x, scaled=False)
    torch.testing.assert_close(p.ll, torch.full((1, 1, 2, 2), 0.75 * 8, dtype=torch.float64))
    assert all(d.abs().max().item() == 0 for d in p.details)


def test_half_precision_and_gradients():
    x = _image((1, 1, 8, 8), torch.float32, seed=6).requires_grad_(True)
    pyramid = HaarPyramid(2)
    pyramid.inverse(pyramid(x)).sum().backward()
    torch.testing.assert_close(x.grad, torch.ones_like(x))
    x16 = x.detach().to(torch.bfloat16)
    assert pyramid.inverse(pyramid(x16)).dtype == torch.bfloat16


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    x = _image((2, 1, 16, 16), torch.float32, seed=7)
    pyramid = HaarPyramid(2)
    p = pyramid(x.cuda())
    torch.testing.assert_close(p.ll.cpu(), pyramid(x).ll)
    torch.testing.assert_close(pyramid.inverse(p).cpu(), x, rtol=0, atol=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"levels": 0}, "levels must be an integer >= 1, got 0"),
        ({"levels": 2.0}, "got 2.0"),
        ({"levels": 2, "ll_scale": 0.0}, "ll_scale must be a positive finite number, got 0.0"),
        ({"levels": 2, "detail_scales": [1.0]}, r"needs 2 entries .* got \[1.0\]"),
        ({"levels": 2, "detail_scales": [1.0, -2.0]}, "got -2.0"),
    ],
)
def test_bad_constructor_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        HaarPyramid(**kwargs)


@pytest.mark.parametrize("shape", [(1, 1, 12, 16), (1, 1, 16, 20), (1, 1, 7, 8)])
def test_size_not_divisible_raises_with_size(shape):
    h, w = shape[-2:]
    with pytest.raises(ValueError, match=f"multiples of 2\\*\\*3 = 8, got {h}×{w}"):
        HaarPyramid(3)(torch.zeros(shape))


def test_bad_tensors_raise():
    with pytest.raises(ValueError, match=r"got shape \(8, 8\)"):
        HaarPyramid(1)(torch.zeros(8, 8))
    with pytest.raises(TypeError, match=r"torch\.int64"):
        haar_dwt2(torch.zeros(1, 1, 4, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="even height and width, got 3×4"):
        haar_dwt2(torch.zeros(1, 1, 3, 4))
    with pytest.raises(ValueError, match=r"got \(1, 1, 3, 2, 3\)"):
        haar_idwt2(torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 3, 2, 3))
    with pytest.raises(ValueError, match="pyramid has 1 detail levels"):
        HaarPyramid(2).inverse(Pyramid(ll=torch.zeros(1, 1, 2, 2), details=[torch.zeros(1)]))


@pytest.mark.parametrize(
    ("shape", "multiple", "pad"),
    [
        ((2, 1, 16, 16), 8, (0, 0)),
        ((2, 1, 13, 17), 8, (3, 7)),
        ((3, 5, 10), 4, (3, 2)),  # (C, H, W)
        ((1, 1, 1, 6), 4, (3, 2)),  # 1-pixel-tall frame: replicate along H
        ((6, 1), 4, (2, 3)),  # 1-pixel-wide frame, 2-D input
    ],
)
def test_pad_to_multiple_and_crop_round_trip(shape, multiple, pad):
    x = _image(shape, torch.float32, seed=8)
    padded, got = pad_to_multiple(x, multiple)
    assert got == pad
    assert padded.shape[:-2] == x.shape[:-2]
    assert padded.shape[-2] % multiple == 0
    assert padded.shape[-1] % multiple == 0
    assert torch.equal(crop(padded, got), x)


def test_pad_reflects_and_falls_back_to_replicate():
    x = torch.arange(6.0).reshape(1, 1, 2, 3)
    padded, pad = pad_to_multiple(x, 4)
    assert pad == (2, 1)
    # Width 3 → 4 reflects column 1; height 2 → 4 cannot reflect 2 rows, so replicates.
    torch.testing.assert_close(padded[0, 0, 0], torch.tensor([0.0, 1.0, 2.0, 1.0]))
    torch.testing.assert_close(padded[0, 0, 3], torch.tensor([3.0, 4.0, 5.0, 4.0]))
    torch.testing.assert_close(padded[0, 0, 2], padded[0, 0, 1])


def test_pad_and_crop_bad_input_raise():
    with pytest.raises(ValueError, match="multiple must be an integer >= 1, got 0"):
        pad_to_multiple(torch.zeros(1, 1, 4, 4), 0)
    with pytest.raises(ValueError, match=r"pad \(4, 0\) does not fit"):
        crop(torch.zeros(1, 1, 4, 4), (4, 0))


def test_pad_to_multiple_min_size_replicates_small_frames_up_first():
    x = torch.arange(6, dtype=torch.float64).reshape(1, 1, 2, 3)
    padded, pad = pad_to_multiple(x, 4, min_size=8)
    assert padded.shape == (1, 1, 8, 8) and pad == (6, 5)
    assert torch.equal(crop(padded, pad), x)
    assert torch.equal(padded[0, 0, :2, 3:], x[0, 0, :, -1:].expand(2, 5))  # edge replicated
    same, none = pad_to_multiple(torch.zeros(1, 1, 16, 16), 4, min_size=8)
    assert none == (0, 0) and same.shape == (1, 1, 16, 16)
