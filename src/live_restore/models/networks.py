"""Small convolutional networks for the MSCGM restorer and the CARE/DDPM baselines.

Everything here is sized for a 2-core CPU: GroupNorm instead of BatchNorm (batches of a few
patches), SiLU, residual blocks, a linear output layer (normalised fluorescence exceeds 1, so
no Tanh) and no attention. Only torch and the shared timestep embedding are imported, so the
baselines can reuse these modules unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

from live_restore.models.timesteps import timestep_embedding
from live_restore.models.wavelets import haar_dwt2

__all__ = ["DetailHead", "PatchDiscriminator", "ResBlock", "UNet", "smooth_details"]


def _groups(channels: int) -> int:
    """Largest group count ≤ 8 dividing ``channels`` (GroupNorm needs an exact divisor)."""
    return next(g for g in (8, 4, 2, 1) if channels % g == 0)


def _check_positive_int(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return value


class ResBlock(nn.Module):
    """GroupNorm → SiLU → conv, twice, plus a (1×1 when widths differ) skip.

    An optional embedding (e.g. of the bridge timestep) is projected to a per-channel bias added
    between the two convolutions, as in DDPM's U-Net.
    """

    def __init__(self, in_channels: int, out_channels: int, emb_dim: int | None = None) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(_groups(in_channels), in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm2 = nn.GroupNorm(_groups(out_channels), out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.emb = nn.Linear(emb_dim, out_channels) if emb_dim else None
        self.skip = (
            nn.Identity()
            if in_channels == out_channels
            else nn.Conv2d(in_channels, out_channels, 1)
        )
        self.act = nn.SiLU()

    def forward(self, x: Tensor, emb: Tensor | None = None) -> Tensor:
        h = self.conv1(self.act(self.norm1(x)))
        if self.emb is not None and emb is not None:
            h = h + self.emb(emb)[:, :, None, None]
        h = self.conv2(self.act(self.norm2(h)))
        return h + self.skip(x)


class UNet(nn.Module):
    """Generic residual U-Net: ``(B, in_channels, H, W) → (B, out_channels, H, W)``.

    Parameters
    ----------
    in_channels, out_channels
        Input and output channel counts.
    base_channels
        Width of the first level; level ``k`` has ``base_channels * channel_mults[k]``.
    channel_mults
        One entry per resolution; ``H`` and ``W`` must be divisible by
        ``2 ** (len(channel_mults) - 1)``.
    time_embedding
        Condition every block on a sinusoidal embedding of ``t`` (``forward(x, t)``).
    num_res_blocks
        Residual blocks per level on the way down (and up).

    The output convolution starts at zero, so the untrained network returns zeros: a bridge
    denoiser then starts at ``x̂_0 = y`` and a residual wrapper starts as the identity.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        base_channels: int = 32,
        channel_mults: Sequence[int] = (1, 2, 4),
        time_embedding: bool = False,
        num_res_blocks: int = 1,
    ) -> None:
        super().__init__()
        _check_positive_int(in_channels, "in_channels")
        _check_positive_int(out_channels, "out_channels")
        _check_positive_int(base_channels, "base_channels")
        _check_positive_int(num_res_blocks, "num_res_blocks")
        mults = tuple(channel_mults)
        if not mults or any(isinstance(m, bool) or not isinstance(m, int) or m < 1 for m in mults):
            raise ValueError(f"channel_mults must be positive integers, got {channel_mults!r}")
        self.multiple = 2 ** (len(mults) - 1)
        self.time_dim = 4 * base_channels if time_embedding else None
        if self.time_dim:
            self.time_mlp = nn.Sequential(
                nn.Linear(base_channels, self.time_dim),
                nn.SiLU(),
                nn.Linear(self.time_dim, self.time_dim),
            )
        widths = [base_channels * m for m in mults]
        self.stem = nn.Conv2d(in_channels, widths[0], 3, padding=1)
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        ch = widths[0]
        skip_widths = []
        for level, width in enumerate(widths):
            blocks = nn.ModuleList()
            for _ in range(num_res_blocks):
                blocks.append(ResBlock(ch, width, self.time_dim))
                ch = width
            self.down.append(blocks)
            skip_widths.append(ch)
            if level < len(widths) - 1:
                self.downsample.append(nn.Conv2d(ch, ch, 3, stride=2, padding=1))
        self.mid = nn.ModuleList([ResBlock(ch, ch, self.time_dim), ResBlock(ch, ch, self.time_dim)])
        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for level in reversed(range(len(widths))):
            blocks = nn.ModuleList(
                [ResBlock(ch + skip_widths[level], widths[level], self.time_dim)]
            )
            ch = widths[level]
            blocks.extend(ResBlock(ch, ch, self.time_dim) for _ in range(num_res_blocks - 1))
            self.up.append(blocks)
            if level > 0:
                self.upsample.append(
                    nn.Sequential(
                        nn.Upsample(scale_factor=2, mode="nearest"),
                        nn.Conv2d(ch, widths[level - 1], 3, padding=1),
                    )
                )
                ch = widths[level - 1]
        self.out_norm = nn.GroupNorm(_groups(ch), ch)
        self.out = nn.Conv2d(ch, out_channels, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        self.base_channels = base_channels

    def forward(self, x: Tensor, t: Tensor | None = None) -> Tensor:
        """Apply the network.

        Parameters
        ----------
        x
            ``(B, in_channels, H, W)`` float, ``H`` and ``W`` divisible by :attr:`multiple`.
        t
            ``(B,)`` timesteps (int or float), required iff built with ``time_embedding``.

        Returns
        -------
        Tensor
            ``(B, out_channels, H, W)``, linear (unbounded) output.
        """
        h_in, w_in = x.shape[-2:]
        if h_in % self.multiple or w_in % self.multiple:
            raise ValueError(
                f"UNet input height and width must be divisible by {self.multiple}, "
                f"got {h_in}×{w_in}"
            )
        emb = None
        if self.time_dim:
            if t is None:
                raise ValueError("this UNet was built with time_embedding=True; pass t")
            emb = self.time_mlp(timestep_embedding(t, self.base_channels).to(x.dtype))
        h = self.stem(x)
        skips = []
        for level, blocks in enumerate(self.down):
            for block in blocks:
                h = block(h, emb)
            skips.append(h)
            if level < len(self.downsample):
                h = self.downsample[level](h)
        for block in self.mid:
            h = block(h, emb)
        for i, blocks in enumerate(self.up):
            h = torch.cat((h, skips.pop()), dim=1)
            for block in blocks:
                h = block(h, emb)
            if i < len(self.upsample):
                h = self.upsample[i](h)
        return self.out(nn.functional.silu(self.out_norm(h)))


def log_sigma_channel(sigma: Tensor, like: Tensor) -> Tensor:
    """``log10 σ`` ``(B, 1, 1, 1)`` as a constant channel shaped like ``like`` (``(B, 1, h, w)``):
    the noise-level map of FFDNet, in a unit-order range for σ from 1e-3 to 1."""
    return torch.log10(sigma).to(like.dtype).expand_as(like)


class DetailHead(nn.Module):
    """Conditional generator for the three detail bands of one wavelet level.

    Maps (restored LL, degraded LL, degraded details, noise z) at one level to the target's
    (horizontal, vertical, diagonal) details at that level, in the pyramid's scaled units. A
    small U-Net with two resolutions: the finest head runs at half the frame size and dominates
    the frame time, so keep ``base_channels`` low there.

    With ``skip``, the head outputs ``sigmoid(gate) · degraded details + correction`` (gate
    and correction per band and pixel) instead of generating the bands from nothing: a bright
    frame's details are mostly signal and pass through, a dim frame's are mostly noise and are
    gated out. Without it a head must regenerate every detail, so its own error bounds how
    clean a bright frame can come out.

    With ``smooth_prior``, the head also starts from :func:`smooth_details` of the restored LL,
    the details of smooth structure: with ``skip`` the gate blends the degraded details with
    them (``g · degraded + (1 − g) · smooth``), without it they are added to the output. An
    image sampled finer than its PSF has fine details that follow from the LL; the network
    then only learns what departs from smoothness.
    """

    def __init__(
        self,
        base_channels: int = 16,
        channel_mults: Sequence[int] = (1, 2),
        skip: bool = False,
        noise_input: bool = False,
        noise_unit_details: bool = False,
        smooth_prior: bool = False,
    ) -> None:
        super().__init__()
        if noise_input and not skip:
            raise ValueError("noise_input needs skip: it scales the skip head's correction")
        if noise_unit_details and not noise_input:
            raise ValueError("noise_unit_details needs noise_input: it divides the details by σ")
        self.skip, self.noise_input = skip, noise_input
        self.noise_unit_details = noise_unit_details
        self.smooth_prior = smooth_prior
        inputs = 7 if noise_input else 6
        out = 6 if skip else 3
        self.net = UNet(inputs, out, base_channels=base_channels, channel_mults=channel_mults)

    @property
    def multiple(self) -> int:
        """Inputs' height and width must be divisible by this."""
        return self.net.multiple

    def forward(
        self,
        ll: Tensor,
        ll_degraded: Tensor,
        details_degraded: Tensor,
        z: Tensor,
        sigma: Tensor | None = None,
    ) -> Tensor:
        """Generate the details.

        Parameters
        ----------
        ll, ll_degraded
            ``(B, 1, h, w)`` float: restored and degraded LL (block means, normalised units).
        details_degraded
            ``(B, 1, 3, h, w)`` float: degraded scaled details at this level.
        z
            ``(B, 1, h, w)`` standard normal noise (the GAN's latent).
        sigma
            ``(B, 1, 1, 1)`` noise σ of ``details_degraded``; required with ``noise_input``,
            which feeds ``log10 σ`` as a channel and scales the correction by σ. With
            ``noise_unit_details`` the network also sees the degraded details divided by σ
            (signal-to-noise units, what a gate must judge); the gate still acts on them in
            normalised units.

        Returns
        -------
        Tensor
            ``(B, 1, 3, h, w)`` float: the generated scaled details.
        """
        degraded = details_degraded.flatten(1, 2)
        inputs = [ll, ll_degraded, degraded, z]
        if self.noise_input:
            if sigma is None:
                raise ValueError("this head is noise-scaled: pass the details' noise sigma")
            if self.noise_unit_details:
                inputs[2] = degraded / sigma
            inputs.append(log_sigma_channel(sigma, z))
        out = self.net(torch.cat(inputs, dim=1))
        smooth = smooth_details(ll).flatten(1, 2) if self.smooth_prior else None
        if self.skip:
            correction = out[:, 3:] * sigma if self.noise_input else out[:, 3:]
            gate = torch.sigmoid(out[:, :3])
            out = gate * degraded + correction
            if smooth is not None:
                out = out + (1 - gate) * smooth
        elif smooth is not None:
            out = out + smooth
        return out.unsqueeze(1)


def smooth_details(ll: Tensor) -> Tensor:
    """Scaled details ``(B, C, 3, h, w)`` of ``ll`` ``(B, C, h, w)`` (block means) upsampled ×2
    bilinearly: exact where the intensity is locally linear, so they are the details of an
    image sampled finer than its PSF, up to its curvature."""
    return haar_dwt2(F.interpolate(ll, scale_factor=2, mode="bilinear", align_corners=False))[1]


class PatchDiscriminator(nn.Module):
    """PatchGAN critic with spectral normalisation on every conv and no normalisation layers.

    Spectral norm bounds the critic's Lipschitz constant, which keeps the adversarial
    gradients tame; no BatchNorm because batches are a few patches.

    Parameters
    ----------
    in_channels
        Channels of the judged image (e.g. reconstruction + degraded conditioning).
    base_channels
        Width of the first layer; doubles with each stride-2 layer.
    n_layers
        Number of stride-2 layers; the receptive field grows with it.
    """

    def __init__(self, in_channels: int = 2, base_channels: int = 32, n_layers: int = 2) -> None:
        super().__init__()
        _check_positive_int(in_channels, "in_channels")
        _check_positive_int(base_channels, "base_channels")
        _check_positive_int(n_layers, "n_layers")
        layers: list[nn.Module] = [
            spectral_norm(nn.Conv2d(in_channels, base_channels, 3, padding=1)),
            nn.LeakyReLU(0.2),
        ]
        ch = base_channels
        for _ in range(n_layers):
            layers += [
                spectral_norm(nn.Conv2d(ch, 2 * ch, 4, stride=2, padding=1)),
                nn.LeakyReLU(0.2),
            ]
            ch *= 2
        layers.append(spectral_norm(nn.Conv2d(ch, 1, 3, padding=1)))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, in_channels, H, W)`` float → ``(B, 1, H / 2^n_layers, W / 2^n_layers)`` logits."""
        return self.net(x)
