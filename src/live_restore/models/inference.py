"""The one inference layer under every trained restorer (MONAI's inferers, CAREamics' predict).

A model contributes only its draw (:data:`TileDraw`: a padded, normalised tile → its
restoration); :class:`Inferer` does the rest, the same for every model:

check the batch → normalise each frame by its own percentiles → per draw, cycle-spin the frame
if the model asks (:class:`CycleSpin`) → cut it into overlapping tiles above the memory budget
→ pad each tile to the model's multiple → run the draw (bf16 autocast on CUDA) → crop → blend
the tiles linearly → map back to camera units → mean and spread over the draws.

Everything runs under ``torch.inference_mode()``; every random choice comes from one
``torch.Generator`` seeded by the caller, so a seed reproduces a restoration exactly.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from live_restore.models.noise import NoiseModel
from live_restore.models.normalisation import Normalisation
from live_restore.models.protocol import RestoreResult, check_batch, check_samples
from live_restore.models.wavelets import crop, pad_to_multiple

__all__ = [
    "DEFAULT_MAX_TILE_PIXELS",
    "DEFAULT_OVERLAP_PX",
    "CycleSpin",
    "Inferer",
    "TileDraw",
    "blend_window",
    "tile_starts",
]

TileDraw = Callable[[Tensor, torch.Generator, Tensor | None, float | None], Tensor]
"""``draw(y, generator, estimate, sigma) -> restored``: ``y`` ``(1, 1, H, W)`` float32,
normalised, ``H`` and ``W`` multiples of the model's :attr:`Inferer.multiple`; ``generator``
the source of all sampling noise; ``estimate`` None, or (later cycle-spin passes) the first
pass's restoration of the same pixels, shaped like ``y``; ``sigma`` None (the model reads the
noise off the tile, if it needs it), or the frame's noise from a detector calibration
(:meth:`Inferer.calibrated_sigma`). Returns ``(1, 1, H, W)``, normalised."""

#: Frames up to this many pixels are restored whole; larger ones in square tiles this big, so
#: memory stays bounded whatever the camera's frame size.
DEFAULT_MAX_TILE_PIXELS = 1024 * 1024
#: Tile overlap in pixels, blended linearly so that no seam shows where tiles meet.
DEFAULT_OVERLAP_PX = 32
#: A tile is padded to at least this many model multiples per side: smaller, the U-Nets'
#: innermost maps shrink to one pixel, where GroupNorm has nothing to normalise.
MIN_MULTIPLES = 2
#: Flips × quarter turns a cycle-spin draw chooses from.
_TURNS, _FLIPS = 4, 2


def tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """Start of every tile along one axis of ``size`` pixels; the last tile ends flush."""
    if size <= tile:
        return [0]
    starts = list(range(0, size - tile, tile - overlap))
    return [*starts, size - tile]


def blend_window(h: int, w: int, overlap: int) -> np.ndarray:
    """Weights rising linearly over ``overlap`` pixels at every tile edge (never exactly 0)."""

    def ramp(n: int) -> np.ndarray:
        r = np.ones(n)
        k = min(overlap, n // 2)
        if k > 0:
            edge = (np.arange(k) + 1) / (k + 1)
            r[:k], r[n - k :] = edge, edge[::-1]
        return r

    return np.outer(ramp(h), ramp(w))


@dataclass(frozen=True)
class CycleSpin:
    """Restore every draw at a random offset of a ``block``-pixel grid, in a random one of the
    8 flips and quarter turns of the frame (both undone afterwards), with ``passes`` K > 1
    re-running the draw on K − 1 other offsets and averaging the K images.

    For a model whose errors sit on a fixed grid (a Haar pyramid's 2^J blocks): restorations
    of two noise realisations would agree at those frequencies whatever the true resolution;
    averaging over offsets (Coifman–Donoho cycle spinning) removes the grid instead. Each later
    pass receives the first pass's image as its ``estimate``, so a model can skip its costly
    coarse stage there. The frame is padded to whole grid blocks before it is turned, so every
    orientation keeps the offset drawn.
    """

    block: int
    passes: int = 1

    def __post_init__(self) -> None:
        offsets = self.block**2
        if (
            isinstance(self.passes, bool)
            or not isinstance(self.passes, int)
            or not 1 <= self.passes <= offsets
        ):
            raise ValueError(
                f"passes must be an integer from 1 to {offsets} (the grid offsets), "
                f"got {self.passes!r}"
            )


class Inferer:
    """Runs a model's :data:`TileDraw` over frames in camera units (module docstring).

    Parameters
    ----------
    multiple
        Tiles are padded (reflect) to a multiple of this, and to at least two of it per side.
    normalisation
        The model's input normalisation, inverted on the way out with each frame's own values.
    device
        Where the tiles go; bf16 autocast when it is CUDA.
    max_tile_pixels
        Frames larger than this are restored in square tiles of side ``√max_tile_pixels``.
    overlap
        Tile overlap in pixels, blended linearly.
    stochastic
        Whether draws differ; a deterministic model is run once per frame whatever
        ``samples``, and returns no ``std``.
    """

    def __init__(
        self,
        multiple: int,
        normalisation: Normalisation,
        device: torch.device,
        max_tile_pixels: int = DEFAULT_MAX_TILE_PIXELS,
        overlap: int = DEFAULT_OVERLAP_PX,
        stochastic: bool = True,
    ) -> None:
        tile = math.isqrt(int(max_tile_pixels))
        if tile < multiple or overlap < 0 or 2 * overlap >= tile:
            raise ValueError(
                f"max_tile_pixels={max_tile_pixels} and overlap={overlap} leave no usable tile "
                f"(need a side ≥ {multiple} and more than twice the overlap)"
            )
        self.multiple = multiple
        self.normalisation = normalisation
        self.device = device
        self.tile, self.overlap = tile, overlap
        self.stochastic = stochastic

    def restore(
        self,
        batch: np.ndarray,
        draw: TileDraw,
        *,
        samples: int = 1,
        seed: int | None = None,
        spin: CycleSpin | None = None,
        noise: NoiseModel | None = None,
    ) -> RestoreResult:
        """Restore ``batch`` (N, Y, X) or (Y, X), any numeric dtype, in camera units.

        ``samples > 1`` draws that many restorations per frame (one for a deterministic
        model) and returns their mean and standard deviation; ``seed`` makes the result
        reproducible (a fresh random seed when None); ``noise``, a detector calibration's
        noise model, gives every draw the frame's noise level (:meth:`calibrated_sigma`).
        Output float32 (N, Y, X) in the input frames' camera units.
        """
        frames = check_batch(batch)
        check_samples(samples)
        draws = samples if self.stochastic else 1
        generator = torch.Generator(self.device)
        if seed is None:
            generator.seed()
        else:
            generator.manual_seed(int(seed))
        mean = np.empty_like(frames)
        std = np.empty_like(frames) if draws > 1 else None
        with torch.inference_mode():
            for n, frame in enumerate(frames):
                norm, lo, scale = self.normalisation.normalise(frame)
                sigma = None if noise is None else self.calibrated_sigma(frame, noise, scale)
                images = np.stack(
                    [self._draw_frame(norm, draw, generator, spin, sigma) for _ in range(draws)]
                )
                mean[n] = images.mean(axis=0) * scale + lo
                if std is not None:
                    std[n] = images.std(axis=0) * scale
        return RestoreResult(mean=mean, std=std)

    @staticmethod
    def calibrated_sigma(frame: np.ndarray, noise: NoiseModel, scale: float) -> float:
        """The frame's noise as a noise-scaled model reads it off a tile, from a calibration.

        Those models take the RMS of the finest diagonal Haar band of the normalised tile: the
        noise σ for white noise, less for noise correlated between neighbours (the band keeps
        :meth:`~live_restore.models.noise.NoiseModel.band_attenuation` of its variance). The
        calibration predicts that same number without the specimen's own fine detail or the
        few-photon spread of one tile: the mean variance ``gain · x + floor`` over the frame,
        times the band's attenuation, in normalised units (``/ scale``).
        """
        variance = float(np.mean(noise.variance(np.maximum(frame, 0.0))))
        return float(np.sqrt(variance * max(noise.band_attenuation(), 0.0))) / float(scale)

    def _draw_frame(
        self,
        norm: np.ndarray,
        draw: TileDraw,
        generator: torch.Generator,
        spin: CycleSpin | None,
        sigma: float | None = None,
    ) -> np.ndarray:
        """One draw of a normalised ``(Y, X)`` frame, cycle-spun when ``spin`` is given."""
        if spin is None:
            return self._restore_frame(norm, None, draw, generator, sigma)
        block = spin.block
        dy, dx, turns, flip = (
            int(torch.randint(n, (1,), generator=generator, device=self.device))
            for n in (block, block, _TURNS, _FLIPS)
        )
        offsets = [(dy, dx)]
        if spin.passes > 1:
            others = [(y, x) for y in range(block) for x in range(block) if (y, x) != (dy, dx)]
            order = torch.randperm(len(others), generator=generator, device=self.device)
            offsets += [others[int(k)] for k in order[: spin.passes - 1]]
        h, w = norm.shape

        def view(frame: np.ndarray, oy: int, ox: int) -> np.ndarray:
            pad = ((oy, -(h + oy) % block), (ox, -(w + ox) % block))
            shifted = np.pad(frame, pad, mode="symmetric")
            return np.rot90(shifted[:, ::-1] if flip else shifted, turns)

        def unview(frame: np.ndarray, oy: int, ox: int) -> np.ndarray:
            out = np.rot90(frame, -turns)
            return (out[:, ::-1] if flip else out)[oy : oy + h, ox : ox + w]

        images: list[np.ndarray] = []
        for oy, ox in offsets:  # the first pass is the full draw, the others start from it
            estimate = view(images[0], oy, ox) if images else None
            restored = self._restore_frame(view(norm, oy, ox), estimate, draw, generator, sigma)
            images.append(unview(restored, oy, ox))
        return np.mean(images, axis=0, dtype=np.float32) if len(images) > 1 else images[0]

    def _restore_frame(
        self,
        norm: np.ndarray,
        estimate: np.ndarray | None,
        draw: TileDraw,
        generator: torch.Generator,
        sigma: float | None = None,
    ) -> np.ndarray:
        """A normalised ``(Y, X)`` frame, tiled with linear blending when it is large;
        ``estimate`` (or None) is cut into the same tiles."""
        h, w = norm.shape
        if h * w <= self.tile * self.tile:
            return self._restore_tile(norm, estimate, draw, generator, sigma)
        out = np.zeros((h, w), np.float64)
        weight = np.zeros((h, w), np.float64)
        th, tw = min(h, self.tile), min(w, self.tile)
        window = blend_window(th, tw, self.overlap)
        for top in tile_starts(h, th, self.overlap):
            for left in tile_starts(w, tw, self.overlap):
                rows, cols = slice(top, top + th), slice(left, left + tw)
                part = None if estimate is None else estimate[rows, cols]
                out[rows, cols] += window * self._restore_tile(
                    norm[rows, cols], part, draw, generator, sigma
                )
                weight[rows, cols] += window
        return (out / weight).astype(np.float32)

    def _restore_tile(
        self,
        norm: np.ndarray,
        estimate: np.ndarray | None,
        draw: TileDraw,
        generator: torch.Generator,
        sigma: float | None = None,
    ) -> np.ndarray:
        """One tile: padded to the model's multiple, drawn (bf16 on CUDA), cropped back."""
        multiple = self.multiple

        def tensor(frame: np.ndarray) -> tuple[Tensor, tuple[int, int]]:
            x = torch.from_numpy(np.ascontiguousarray(frame))[None, None].to(self.device)
            return pad_to_multiple(x, multiple, min_size=MIN_MULTIPLES * multiple)

        x, pad = tensor(norm)
        prior = None if estimate is None else tensor(estimate)[0]
        with torch.autocast("cuda", torch.bfloat16, enabled=self.device.type == "cuda"):
            y = draw(x, generator, prior, sigma)
        return crop(y.float(), pad)[0, 0].cpu().numpy()
