"""Training data: a pair source is passed in (the simulator, a user's stacks), never imported.

A :class:`PairSource` draws ``n`` (degraded, target) pairs of side ``size`` for a seed; the CLI
and the experiments wire in the simulator's tasks. :class:`PairDataset` normalises pairs once,
exactly as the restorer normalises its input at inference, and serves augmented crops.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch import Tensor

from live_restore.models.normalisation import match_target, normalise_frame

__all__ = ["DataConfig", "PairDataset", "PairSource"]


class PairSource(Protocol):
    """``make_pairs(n, seed, size) -> (degraded, target)``: ``(N, [Z,] size, size)`` float32
    stacks in camera units, pair ``i`` of one seed the same on every call."""

    def __call__(self, n: int, seed: int, size: int) -> tuple[np.ndarray, np.ndarray]: ...


class DataConfig(Protocol):
    """What a dataset needs from a model config: the task, the percentile normalisation and
    the forward model the targets are matched through (every model config has them)."""

    @property
    def task(self) -> str: ...

    @property
    def pmin(self) -> float: ...

    @property
    def pmax(self) -> float: ...

    @property
    def forward_model(self) -> str: ...

    @property
    def blur_sigma_px(self) -> float: ...


class PairDataset:
    """Normalised (degraded, target) pairs ``(N, Y, X)`` float32, served as augmented crops;
    the degraded member may have channels, ``(N, C, Y, X)`` (e.g. an axial model's inputs)."""

    def __init__(self, degraded: np.ndarray, target: np.ndarray) -> None:
        degraded = np.ascontiguousarray(degraded, np.float32)
        target = np.ascontiguousarray(target, np.float32)
        frames = degraded.shape if degraded.ndim == 3 else degraded.shape[:1] + degraded.shape[2:]
        if degraded.ndim not in (3, 4) or target.ndim != 3 or frames != target.shape:
            raise ValueError(
                f"PairDataset needs (N, Y, X) or (N, C, Y, X) degraded and (N, Y, X) targets "
                f"of one shape, got {degraded.shape} and {target.shape}"
            )
        self.degraded, self.target = degraded, target

    @classmethod
    def for_model(
        cls,
        config: DataConfig,
        n: int,
        seed: int,
        size: int = 256,
        cache_dir: Path | None = None,
        *,
        make_pairs: PairSource,
    ) -> PairDataset:
        """``n`` pairs of ``make_pairs`` normalised exactly as the model described by ``config``
        expects: each degraded frame by its own percentiles and each target matched to it
        (:func:`live_restore.models.normalisation.match_target`).

        With ``cache_dir`` the normalised pairs are cached as ``.npz``, keyed by the config's
        task, normalisation and forward model and by ``n``, ``seed`` and ``size`` (so one
        folder holds one source per task), and a resumed run does not draw them again.
        """
        key = (f"{config.task}_n{n}_s{seed}_px{size}_{config.pmin}_{config.pmax}_"
               f"{config.forward_model}_{config.blur_sigma_px}")
        cache = Path(cache_dir) / f"pairs_{key}.npz" if cache_dir is not None else None
        if cache is not None and cache.is_file():
            with np.load(cache) as data:
                return cls(data["degraded"], data["target"])
        degraded, target = make_pairs(n, seed, size)
        normalised = np.empty_like(degraded, dtype=np.float32)
        matched = np.empty_like(target, dtype=np.float32)
        for i in range(len(degraded)):
            normalised[i], _, _ = normalise_frame(degraded[i], config.pmin, config.pmax)
            target_n, _, _ = normalise_frame(target[i], config.pmin, config.pmax)
            matched[i] = match_target(normalised[i], target_n, config)
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            partial = cache.with_suffix(".npz.tmp")  # a killed run leaves no half cache
            with partial.open("wb") as f:
                np.savez(f, degraded=normalised, target=matched)
            partial.replace(cache)
        return cls(normalised, matched)

    def __len__(self) -> int:
        return len(self.degraded)

    def batch(
        self, batch_size: int, patch_size: int, generator: torch.Generator
    ) -> tuple[Tensor, Tensor]:
        """Random crops with a random flip and rot90, the same for both members of a pair.

        Returns two ``(batch_size, C, patch_size, patch_size)`` float32 tensors, normalised
        (C = 1, or the degraded member's channels).
        """
        n, h, w = self.target.shape
        if patch_size > min(h, w):
            raise ValueError(f"patch_size {patch_size} exceeds the pairs' size {h}×{w}")
        idx = torch.randint(n, (batch_size,), generator=generator).tolist()
        tops = torch.randint(h - patch_size + 1, (batch_size,), generator=generator).tolist()
        lefts = torch.randint(w - patch_size + 1, (batch_size,), generator=generator).tolist()
        flips = torch.randint(2, (batch_size,), generator=generator).tolist()
        rots = torch.randint(4, (batch_size,), generator=generator).tolist()
        out = []
        for arr in (self.degraded, self.target):
            crops = []
            for i, top, left, flip, rot in zip(idx, tops, lefts, flips, rots, strict=True):
                c = torch.from_numpy(arr[i, ..., top : top + patch_size, left : left + patch_size])
                c = torch.rot90(c.flip(-1) if flip else c, rot, dims=(-2, -1))
                crops.append(c if c.ndim == 3 else c[None])
            out.append(torch.stack(crops).contiguous())
        return out[0], out[1]
