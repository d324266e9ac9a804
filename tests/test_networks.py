"""U-Net, detail head and patch critic: shapes, sizes, time conditioning, input checks."""

from __future__ import annotations

import pytest
import torch

from live_restore.models.networks import DetailHead, PatchDiscriminator, UNet, smooth_details
from live_restore.models.wavelets import haar_dwt2


def _params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("size", [(16, 16), (8, 24), (32, 8)])
def test_unet_keeps_spatial_shape(size):
    net = UNet(3, 2, base_channels=8, channel_mults=(1, 2, 4))
    out = net(torch.randn(2, 3, *size))
    assert out.shape == (2, 2, *size)


def test_unet_starts_at_zero_output():
    net = UNet(2, 1, base_channels=8, channel_mults=(1, 2))
    assert torch.count_nonzero(net(torch.randn(1, 2, 8, 8))) == 0


def test_time_embedding_changes_the_output():
    torch.manual_seed(0)
    net = UNet(2, 1, base_channels=8, channel_mults=(1, 2), time_embedding=True)
    torch.nn.init.normal_(net.out.weight)  # leave the zero start, so t can show
    x = torch.randn(1, 2, 8, 8)
    a = net(x, torch.tensor([1]))
    b = net(x, torch.tensor([900]))
    assert not torch.allclose(a, b)
    with pytest.raises(ValueError, match="pass t"):
        net(x)


def test_unet_rejects_indivisible_size_and_bad_widths():
    with pytest.raises(ValueError, match="divisible by 4"):
        UNet(1, 1, base_channels=8, channel_mults=(1, 2, 4))(torch.randn(1, 1, 10, 12))
    with pytest.raises(ValueError, match="channel_mults"):
        UNet(1, 1, channel_mults=(1, 0))
    with pytest.raises(ValueError, match="base_channels"):
        UNet(1, 1, base_channels=0)


def test_parameter_budgets():
    bridge = UNet(2, 1, base_channels=16, channel_mults=(1, 2, 4, 8), time_embedding=True)
    assert 1_000_000 <= _params(bridge) <= 4_000_000
    assert _params(DetailHead(16)) <= 500_000
    assert _params(DetailHead(8)) <= 50_000  # the finest head must stay light


def test_detail_head_shapes():
    head = DetailHead(8)
    ll = torch.randn(2, 1, 12, 20)
    out = head(ll, ll, torch.randn(2, 1, 3, 12, 20), torch.randn_like(ll))
    assert out.shape == (2, 1, 3, 12, 20)


def test_detail_head_skip_gates_the_degraded_details():
    torch.manual_seed(0)
    head = DetailHead(8, skip=True)
    ll = torch.randn(2, 1, 12, 20)
    details = torch.randn(2, 1, 3, 12, 20)
    # untrained: zero correction, gate sigmoid(0), so half the degraded details pass
    torch.testing.assert_close(head(ll, ll, details, torch.randn_like(ll)), 0.5 * details)
    # the gate is learnable: pushing its logits up passes the details through whole
    with torch.no_grad():
        head.net.out.bias[:3] = 20.0
    torch.testing.assert_close(head(ll, ll, details, torch.randn_like(ll)), details)


def test_smooth_details_are_exact_for_locally_linear_intensity():
    rows, cols = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    ramp = (0.01 * rows + 0.02 * cols)[None, None]
    ll, details = haar_dwt2(ramp)
    predicted = smooth_details(ll / 2)  # block means, the units synthesise() works in
    inner = (..., slice(1, -1), slice(1, -1))  # the upsampling clamps at the border
    torch.testing.assert_close(predicted[inner], details[inner])
    blob = torch.exp(-((rows - 16) ** 2 + (cols - 15) ** 2) / (2 * 4.0**2))[None, None]
    ll, details = haar_dwt2(blob)
    residual = (smooth_details(ll / 2) - details).square().mean()
    assert residual < 0.02 * details.square().mean()  # a PSF of σ = 4 px is nearly linear


def test_detail_head_smooth_prior_starts_from_the_smooth_details():
    torch.manual_seed(0)
    ll = torch.rand(2, 1, 12, 20)
    details = torch.randn(2, 1, 3, 12, 20)
    smooth = smooth_details(ll)
    gated = DetailHead(8, skip=True, smooth_prior=True)  # untrained: gate sigmoid(0) = 0.5
    torch.testing.assert_close(gated(ll, ll, details, torch.randn_like(ll)),
                               0.5 * details + 0.5 * smooth)
    plain = DetailHead(8, smooth_prior=True)  # untrained: zero output, so the smooth details
    torch.testing.assert_close(plain(ll, ll, details, torch.randn_like(ll)), smooth)


def test_patch_discriminator_is_spectrally_normalised():
    critic = PatchDiscriminator(2, base_channels=8, n_layers=2)
    assert critic(torch.randn(3, 2, 32, 32)).shape == (3, 1, 8, 8)
    names = [n for n, _ in critic.named_parameters()]
    assert any("parametrizations.weight.original" in n for n in names)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in critic.modules())
