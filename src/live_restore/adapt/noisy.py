"""Adapting a restorer to the user's microscope from its noisy frames alone (Noise2Noise).

A restorer trained on simulated pairs meets a real detector whose noise it never saw: spatially
correlated, quantised, offset, with a gain of its own. Ground truth is what a microscopist
does not have; repeated frames of the same field are what every acquisition has. Two
exposures of one field carry independent noise (shot noise and read noise do not correlate
across exposures), so a restorer fine-tuned to predict one frame from another converges, in
the L2 sense, to the clean frame's conditional mean (Lehtinen et al., Noise2Noise, 2018),
whatever the noise's spatial correlation, gain or offset. Blind-spot and neighbour-subsampling
losses need pixel-independent noise, which real detectors do not give.

Each frame of a stack (one position and channel) is paired with the mean of the other frames
at most ``max_frame_gap`` away: their noise is independent of the input's, and averaging them
halves the target's noise (a steadier gradient for the same expectation). A time-lapse moves:
the closer the frames, the less motion is learned as noise, and the mean of the frames just
before and after cancels steady motion to first order.

Benchmarks can pass each stack's ground truth (``targets``) instead: every frame is then paired
with its target, the same fine-tune supervised, which measures how much of the gap between the
self-supervised fine-tune and a target is due to the missing truth rather than the budget.

Each pair is normalised by the input frame's own percentiles (the restorer's convention), the
target with the same offset and scale, so the network predicts the target in the input's
units. The fine-tune runs through :func:`live_restore.training.loop.train`, the one training
loop, with the restored image (bridge hops and detail heads, differentiated end to end) as the
prediction.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from live_restore.models.mscgm import MSCGM, MSCGMRestorer
from live_restore.models.normalisation import normalise_frame
from live_restore.training.loop import TrainConfig, train

__all__ = ["NoisyAdaptConfig", "NoisyPairs", "adapt_from_noisy", "noise2noise_loss"]

logger = logging.getLogger(__name__)

Progress = Callable[[int, int, dict[str, float]], None]


class NoisyAdaptConfig(BaseModel):
    """Settings of a Noise2Noise fine-tune; recorded in the adapted model's JSON."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    method: Literal["noise2noise"] = "noise2noise"
    steps: int = Field(400, ge=1, description="optimiser steps")
    batch_size: int = Field(4, ge=1)
    patch_size: int = Field(128, ge=16, description="square crop side, pixels")
    lr: float = Field(3e-4, gt=0)
    scope: Literal["all", "heads"] = Field(
        "all", description="weights fine-tuned: bridge and heads, or the detail heads only"
    )
    max_frame_gap: int = Field(1, ge=1, description="pairs are at most this many frames apart")
    seed: int = 0


class NoisyPairs:
    """Pairs of frames of the same field, normalised by the input frame, as augmented crops.

    ``stacks``: one ``(T, Y, X)`` array per field (position × channel), frames in acquisition
    order; stacks with a single frame give no pair and are refused when no stack has two.
    ``targets`` (benchmarks only): one ``(Y, X)`` ground truth per stack; every frame is then
    paired with its stack's target instead of its neighbours.
    Satisfies what :func:`live_restore.training.loop.train` asks of a dataset (``batch``).
    """

    def __init__(
        self,
        stacks: Sequence[np.ndarray],
        *,
        pmin: float,
        pmax: float,
        max_frame_gap: int = 1,
        targets: Sequence[np.ndarray] | None = None,
    ) -> None:
        if targets is not None and len(targets) != len(stacks):
            raise ValueError(f"{len(targets)} targets for {len(stacks)} stacks")
        self.supervised = targets is not None
        self.frames: list[np.ndarray] = []  # one normalised (T, Y, X) float32 stack per field
        self.pairs: list[tuple[int, int, tuple[int, ...]]] = []  # (stack, input, targets)
        for s, raw in enumerate(stacks):
            stack = _frames(raw, f"stack {s}")
            count = len(stack)
            if self.supervised:  # the target rides along as the stack's last frame
                target = _frames(targets[s], f"target {s}")
                if target.shape[1:] != stack.shape[1:] or len(target) != 1:
                    raise ValueError(f"target {s}: {target.shape[1:]} is not one frame of the "
                                     f"stack's shape {stack.shape[1:]}")
                stack = np.concatenate([stack, target])
            self.frames.append(stack.astype(np.float32))
            for t in range(count):
                if self.supervised:
                    self.pairs.append((s, t, (count,)))
                    continue
                near = range(max(0, t - max_frame_gap), min(count, t + max_frame_gap + 1))
                others = tuple(u for u in near if u != t)
                if others:
                    self.pairs.append((s, t, others))
        if not self.pairs:
            raise ValueError(
                "Noise2Noise needs two frames of the same field; got "
                f"{[len(s) for s in self.frames]} frame(s) per stack"
            )
        # (offset, scale) of every frame's own normalisation: a pair's target is put in its
        # input frame's units.
        self._scales = [
            [normalise_frame(frame, pmin, pmax)[1:] for frame in stack] for stack in self.frames
        ]
        self.digest = hashlib.sha256(
            b"".join(np.ascontiguousarray(s).tobytes() for s in self.frames)
        ).hexdigest()[:16]

    def __len__(self) -> int:
        return len(self.pairs)

    @property
    def frame_count(self) -> int:
        """Noisy frames; the targets of a supervised set are not counted."""
        return sum(len(s) - self.supervised for s in self.frames)

    def batch(
        self, batch_size: int, patch_size: int, generator: torch.Generator
    ) -> tuple[Tensor, Tensor]:
        """Random frames and the mean of their neighbours, cropped at one place with one flip
        and rot90, both normalised with the input's offset and scale. Two ``(B, 1, P, P)``
        float32 tensors."""
        picks = torch.randint(len(self.pairs), (batch_size,), generator=generator).tolist()
        inputs, targets = [], []
        for k in picks:
            s, t, u = self.pairs[k]
            h, w = self.frames[s].shape[-2:]
            if patch_size > min(h, w):
                raise ValueError(f"patch_size {patch_size} exceeds the frames' size {h}×{w}")
            top, left, flip, rot = (
                int(torch.randint(n, (1,), generator=generator))
                for n in (h - patch_size + 1, w - patch_size + 1, 2, 4)
            )
            lo, scale = self._scales[s][t]
            window = (slice(top, top + patch_size), slice(left, left + patch_size))
            crops = self.frames[s][(slice(None), *window)]  # a view: crop before averaging
            target = crops[list(u)].mean(axis=0)
            for crop, out in ((crops[t], inputs), (target, targets)):
                crop = (crop - lo) / scale
                crop = np.rot90(crop[:, ::-1] if flip else crop, rot)
                out.append(torch.from_numpy(np.ascontiguousarray(crop, dtype=np.float32)))
        return torch.stack(inputs)[:, None], torch.stack(targets)[:, None]


def _frames(raw: np.ndarray, what: str) -> np.ndarray:
    """``raw`` as finite numeric ``(T, Y, X)`` frames (a ``(Y, X)`` frame becomes ``T = 1``)."""
    stack = np.asarray(raw)
    if stack.ndim == 2:
        stack = stack[None]
    if stack.ndim != 3 or stack.dtype.kind not in "uif":
        raise ValueError(
            f"{what}: expected numeric frames (T, Y, X), got {stack.dtype} {stack.shape}"
        )
    if not np.isfinite(stack).all():
        raise ValueError(f"{what} contains NaN or infinite values")
    return stack


def noise2noise_loss(restored: Tensor, other: Tensor) -> Tensor:
    """Mean squared error against an independent noisy frame: its minimiser is the clean
    frame's conditional mean, so the noise of ``other`` only adds a constant."""
    return (restored - other).square().mean()


class _Noise2Noise(nn.Module):
    """An MSCGM seen by the training loop: ``losses`` restores the input end to end (with
    gradients) and scores it against the other frame; ``export`` writes the MSCGM."""

    def __init__(self, model: MSCGM) -> None:
        super().__init__()
        self.model = model

    def losses(
        self, noisy: Tensor, other: Tensor, *, step: int, total_steps: int
    ) -> dict[str, Tensor]:
        loss = noise2noise_loss(self.model.restore_differentiable(noisy), other)
        return {"loss": loss}

    def export(self, stem: Path, provenance: dict[str, object] | None = None) -> Path:
        return self.model.export(stem, provenance)


def adapt_from_noisy(
    base: MSCGMRestorer,
    stacks: Sequence[np.ndarray],
    config: NoisyAdaptConfig | None = None,
    *,
    progress: Progress | None = None,
    workdir: Path | None = None,
    targets: Sequence[np.ndarray] | None = None,
) -> MSCGMRestorer:
    """A copy of ``base`` fine-tuned by Noise2Noise on ``stacks`` (see the module docstring);
    ``base`` is left unchanged. With ``targets`` (one ground truth per stack; benchmarks only)
    the same fine-tune learns from the targets instead: method ``supervised``. The result's
    :attr:`adaptation` records the method, the frames (count and checksum), the settings and
    the time taken; :meth:`MSCGMRestorer.save` with ``extra={"adaptation":
    restorer.adaptation}`` writes it into the model JSON."""
    config = config or NoisyAdaptConfig()
    data = NoisyPairs(stacks, pmin=base.config.pmin, pmax=base.config.pmax,
                      max_frame_gap=config.max_frame_gap, targets=targets)
    method = "supervised" if data.supervised else config.method
    side = min(min(s.shape[-2:]) for s in data.frames)
    patch = min(config.patch_size, side - side % base.model.multiple)
    if patch < base.model.multiple:
        raise ValueError(f"frames of {side} pixels are smaller than the model's tile")
    model = copy.deepcopy(base.model)
    if config.scope == "heads":
        model.denoiser.requires_grad_(False)
    model.discriminators.requires_grad_(False)
    loop = TrainConfig(
        preset=f"noise2noise-{config.steps}",
        steps=config.steps,
        batch_size=config.batch_size,
        patch_size=patch,
        n_pairs=len(data),
        pair_size=side,
        lr=config.lr,
        weight_decay=0.0,
        ema_decay=0.0,  # few steps from a trained model: the last weights, not an average
        checkpoint_every=config.steps,
        seed=config.seed,
    )
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        exported = train(
            _Noise2Noise(model), data, loop, Path(workdir or tmp), progress, resume=False
        )
        adapted = MSCGMRestorer.load(exported, device=str(base.device))
    minutes = (time.perf_counter() - started) / 60.0
    adapted.name = f"{base.name}+{'sup' if data.supervised else 'n2n'}"
    adapted.config = adapted.model.config = adapted.config.model_copy(
        update={"steps_trained": base.config.steps_trained + config.steps}
    )
    adapted.adaptation = {
        "method": method,
        "base": {"name": base.name, "version": base.version},
        "frames": data.frame_count,
        "stacks": len(data.frames),
        "pairs": len(data),  # one per frame with a neighbour
        "frames_sha256": data.digest,
        "settings": config.model_dump(mode="json"),
        "minutes": round(minutes, 2),
    }
    logger.info("%s adaptation: %d steps on %d pairs in %.1f min", method, config.steps,
                len(data), minutes)
    return adapted
