"""Orthonormal 2-D Haar wavelet pyramid in torch (batched, any device, any float dtype).

MSCGM runs its Brownian bridge on the coarsest LL band of a J-level Haar transform and its
GANs on the detail bands. The transform here is written with strided
slicing and reshapes, so it runs wherever torch does, and its raw coefficients equal
``pywt.wavedec2(x, "haar", level=J)`` (tested).

On one 2×2 block ``[[a, b], [c, d]]`` the orthonormal Haar analysis is::

    LL = (a + b + c + d) / 2        H = (a + b - c - d) / 2
    V  = (a - b + c - d) / 2        D = (a - b - c + d) / 2

which are pywt's ``cA, cH, cV, cD``. The transform preserves energy, so the LL grows ×2 per
level: the level-J LL of an image in [0, 1] lies in [0, 2^J]. :class:`HaarPyramid` divides
each band by a fixed power of two so every band enters the networks in a unit-order range,
and multiplies it back before synthesis.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["HaarPyramid", "Pyramid", "crop", "haar_dwt2", "haar_idwt2", "pad_to_multiple"]


def _check_float_4d(x: Tensor, name: str) -> None:
    if x.ndim != 4:
        raise ValueError(f"{name} must have shape (B, C, H, W), got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")


def haar_dwt2(x: Tensor) -> tuple[Tensor, Tensor]:
    """One level of the orthonormal 2-D Haar analysis (pywt ``dwt2(x, "haar")``).

    Parameters
    ----------
    x
        ``(B, C, H, W)`` floating point, any range; ``H`` and ``W`` even.

    Returns
    -------
    ll
        ``(B, C, H/2, W/2)``, same dtype and device as ``x``: the approximation band ``cA``.
    details
        ``(B, C, 3, H/2, W/2)``: the detail bands stacked as (horizontal, vertical, diagonal),
        i.e. pywt's ``(cH, cV, cD)``.
    """
    _check_float_4d(x, "x")
    h, w = x.shape[-2:]
    if h % 2 or w % 2:
        raise ValueError(f"haar_dwt2 needs even height and width, got {h}×{w}")
    a = x[..., 0::2, 0::2]
    b = x[..., 0::2, 1::2]
    c = x[..., 1::2, 0::2]
    d = x[..., 1::2, 1::2]
    top, bottom = a + b, c + d
    left_minus_right_top, left_minus_right_bottom = a - b, c - d
    ll = (top + bottom) / 2
    horizontal = (top - bottom) / 2
    vertical = (left_minus_right_top + left_minus_right_bottom) / 2
    diagonal = (left_minus_right_top - left_minus_right_bottom) / 2
    return ll, torch.stack((horizontal, vertical, diagonal), dim=2)


def haar_idwt2(ll: Tensor, details: Tensor) -> Tensor:
    """Invert :func:`haar_dwt2` exactly (orthonormal synthesis, pywt ``idwt2``).

    Parameters
    ----------
    ll
        ``(B, C, h, w)`` floating point.
    details
        ``(B, C, 3, h, w)``, (horizontal, vertical, diagonal), same dtype as ``ll``.

    Returns
    -------
    Tensor
        ``(B, C, 2h, 2w)``, same dtype and device as ``ll``.
    """
    _check_float_4d(ll, "ll")
    expected = (*ll.shape[:2], 3, *ll.shape[2:])
    if tuple(details.shape) != expected:
        raise ValueError(
            f"details must have shape {expected} to match ll {tuple(ll.shape)}, "
            f"got {tuple(details.shape)}"
        )
    horizontal, vertical, diagonal = details.unbind(dim=2)
    s, t = ll + horizontal, ll - horizontal
    u, v = vertical + diagonal, vertical - diagonal
    a, b = (s + u) / 2, (s - u) / 2
    c, d = (t + v) / 2, (t - v) / 2
    # (B, C, h, 2, w, 2) → (B, C, 2h, 2w): rows interleave (a b / c d) blocks.
    blocks = torch.stack((torch.stack((a, b), dim=-1), torch.stack((c, d), dim=-1)), dim=-3)
    batch, channels, h, w = ll.shape
    return blocks.reshape(batch, channels, 2 * h, 2 * w)


@dataclass
class Pyramid:
    """A J-level Haar decomposition.

    Attributes
    ----------
    ll
        ``(B, C, H/2^J, W/2^J)``: the coarsest approximation band.
    details
        ``J`` tensors ordered coarse → fine (as in ``pywt.wavedec2``); entry ``i`` has shape
        ``(B, C, 3, H/2^(J-i), W/2^(J-i))`` with bands (horizontal, vertical, diagonal).

    Whether the bands are scaled (:meth:`HaarPyramid.forward`) or raw
    (``forward(x, scaled=False)``) is up to the producer; :meth:`HaarPyramid.inverse` must be
    told the same.
    """

    ll: Tensor
    details: list[Tensor]


def _check_scale(value: float, name: str) -> float:
    value = float(value)
    if not (value > 0 and value < float("inf")):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return value


class HaarPyramid(nn.Module):
    """J-level orthonormal Haar pyramid with fixed per-band scale factors.

    Default scale factors, for images normalised to roughly [0, 1]:

    - ``ll_scale = 2^-J``: the scaled LL is the 2^J×2^J block mean, so it stays in the image's
      own range [0, 1] (the BBDM bridge and its variance ``s`` were tuned for unit-range data;
      the raw LL in [0, 2^J] would make the bridge noise 2^J times weaker).
    - ``detail_scales[i] = 2^-(J-1-i)`` for detail level ``i`` ordered coarse → fine (level
      ``j = J - i`` counted from the finest, ``j = 1``): the raw level-j details lie in
      [-2^(j-1), 2^(j-1)], so the scaled ones are the difference between the mean intensities
      of the two halves of a 2^j×2^j block and lie in [-1, 1], the same unit range at every
      level and compatible with a Tanh head. Each band keeps the image's intensity units, so
      the scaled details have about the same spread at every level (std ≈ 0.05–0.07 at
      J = 3 on a synthetic percentile-normalised filament/puncta frame, clean or noisy), where
      the raw coefficients grow ×2 per level. Sparse fluorescence details have std well below
      their unit range; a data-dependent gain to unit std (≈ ×16 there) can be passed in
      ``detail_scales``, but would put the bound at ±16 and is not a fixed property of the
      transform.

    Powers of two make scaling and unscaling bit-exact in floating point, so the scaled
    round trip is as exact as the raw one. Other factors may be passed (e.g. per-band
    standard deviations from training data); they are inverted by division.

    Parameters
    ----------
    levels
        Number of decomposition levels ``J >= 1``. ``H`` and ``W`` must be multiples of 2^J.
    ll_scale
        Factor applied to the coarsest LL; default ``2**-levels``.
    detail_scales
        ``levels`` factors applied to the detail bands, ordered coarse → fine like
        :attr:`Pyramid.details`; default ``[2**-(levels-1), ..., 2**-1, 1]``.
    """

    def __init__(
        self,
        levels: int,
        ll_scale: float | None = None,
        detail_scales: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        if isinstance(levels, bool) or not isinstance(levels, int) or levels < 1:
            raise ValueError(f"levels must be an integer >= 1, got {levels!r}")
        self.levels = levels
        self.ll_scale = _check_scale(2.0**-levels if ll_scale is None else ll_scale, "ll_scale")
        if detail_scales is None:
            detail_scales = [2.0 ** -(levels - 1 - i) for i in range(levels)]
        if len(detail_scales) != levels:
            raise ValueError(
                f"detail_scales needs {levels} entries (one per level, coarse → fine), "
                f"got {list(detail_scales)!r}"
            )
        self.detail_scales = [_check_scale(c, "detail_scales entry") for c in detail_scales]

    @property
    def multiple(self) -> int:
        """Height and width must be multiples of this (``2**levels``)."""
        return 2**self.levels

    def extra_repr(self) -> str:
        return f"levels={self.levels}, ll_scale={self.ll_scale}, detail_scales={self.detail_scales}"

    def forward(self, x: Tensor, *, scaled: bool = True) -> Pyramid:
        """Decompose ``x`` into a J-level pyramid.

        Parameters
        ----------
        x
            ``(B, C, H, W)`` floating point; ``H`` and ``W`` multiples of ``2**levels``
            (see :func:`pad_to_multiple`).
        scaled
            Apply the scale factors (default). ``False`` returns the raw orthonormal
            coefficients, equal to ``pywt.wavedec2(x, "haar", level=levels)``.
        """
        _check_float_4d(x, "x")
        h, w = x.shape[-2:]
        if h % self.multiple or w % self.multiple:
            raise ValueError(
                f"height and width must be multiples of 2**{self.levels} = {self.multiple}, "
                f"got {h}×{w}; pad with pad_to_multiple first"
            )
        ll, details = x, []
        for _ in range(self.levels):
            ll, band = haar_dwt2(ll)
            details.append(band)
        details.reverse()
        pyramid = Pyramid(ll=ll, details=details)
        return self.scale(pyramid) if scaled else pyramid

    def inverse(self, p: Pyramid, *, scaled: bool = True) -> Tensor:
        """Reconstruct ``(B, C, H, W)`` from a pyramid made by :meth:`forward`.

        ``scaled`` must match the ``scaled`` the pyramid was made with.
        """
        if len(p.details) != self.levels:
            raise ValueError(
                f"pyramid has {len(p.details)} detail levels, this HaarPyramid has {self.levels}"
            )
        if scaled:
            p = self.unscale(p)
        x = p.ll
        for band in p.details:
            x = haar_idwt2(x, band)
        return x

    def scale(self, p: Pyramid) -> Pyramid:
        """Raw coefficients → network units (multiply by the scale factors)."""
        return Pyramid(
            ll=p.ll * self.ll_scale,
            details=[d * c for d, c in zip(p.details, self.detail_scales, strict=True)],
        )

    def unscale(self, p: Pyramid) -> Pyramid:
        """Network units → raw coefficients (divide by the scale factors)."""
        return Pyramid(
            ll=p.ll / self.ll_scale,
            details=[d / c for d, c in zip(p.details, self.detail_scales, strict=True)],
        )


def pad_to_multiple(
    x: Tensor, multiple: int, min_size: int = 0
) -> tuple[Tensor, tuple[int, int]]:
    """Pad the bottom and right of ``x`` so height and width are multiples of ``multiple``.

    Reflect padding keeps the border statistics natural; when a side is too small to reflect
    (the pad is not smaller than the side, e.g. a 1-pixel-wide frame) that axis is padded by
    replicating the edge instead. Sides shorter than ``min_size`` are first edge-replicated up
    to it (networks whose innermost maps would otherwise shrink to one pixel need this).

    Parameters
    ----------
    x
        ``(..., H, W)`` floating point.
    multiple
        Integer ``>= 1``, e.g. :attr:`HaarPyramid.multiple`.
    min_size
        Smallest padded height and width, in pixels.

    Returns
    -------
    padded
        ``(..., H + pad_h, W + pad_w)``.
    pad
        ``(pad_h, pad_w)``, to undo with :func:`crop`.
    """
    if isinstance(multiple, bool) or not isinstance(multiple, int) or multiple < 1:
        raise ValueError(f"multiple must be an integer >= 1, got {multiple!r}")
    if x.ndim < 2:
        raise ValueError(f"x must have at least 2 dims (..., H, W), got shape {tuple(x.shape)}")
    lead = x.shape[:-2]
    h0, w0 = x.shape[-2:]
    extra_h, extra_w = max(min_size - h0, 0), max(min_size - w0, 0)
    flat = x.reshape(-1, 1, h0, w0)
    if extra_h or extra_w:
        flat = F.pad(flat, (0, extra_w, 0, extra_h), mode="replicate")
    h, w = h0 + extra_h, w0 + extra_w
    pad_h, pad_w = -h % multiple, -w % multiple
    if pad_w:
        flat = F.pad(flat, (0, pad_w, 0, 0), mode="reflect" if pad_w < w else "replicate")
    if pad_h:
        flat = F.pad(flat, (0, 0, 0, pad_h), mode="reflect" if pad_h < h else "replicate")
    if not (extra_h or extra_w or pad_h or pad_w):
        return x, (0, 0)
    return flat.reshape(*lead, h + pad_h, w + pad_w), (extra_h + pad_h, extra_w + pad_w)


def crop(x: Tensor, pad: tuple[int, int]) -> Tensor:
    """Undo :func:`pad_to_multiple`: drop ``pad = (pad_h, pad_w)`` rows/columns bottom/right."""
    pad_h, pad_w = pad
    h, w = x.shape[-2:]
    if not (0 <= pad_h < h and 0 <= pad_w < w):
        raise ValueError(f"pad {pad!r} does not fit a tensor of spatial size {h}×{w}")
    return x[..., : h - pad_h, : w - pad_w]
