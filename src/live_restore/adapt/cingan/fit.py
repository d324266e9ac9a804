"""Fitting a CIN-GAN on unpaired frames: multi-defect pre-training and one new row.

The data are injected: :func:`pretrain_cingan` takes one pair source per defect (e.g. the
simulator's tasks, wired in by the CLI or an experiment), :func:`fit_cingan` normalised frames.
Defective patches are flipped but never turned a quarter: scan lines and axial anisotropy have a
direction the row must learn.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor

from live_restore.adapt.cingan.layers import out_of_focus
from live_restore.adapt.cingan.model import CINGAN, CINGANConfig, normalise_frames
from live_restore.training.data import PairSource

__all__ = [
    "WGAN_GP_BETAS",
    "GANTrainConfig",
    "fit_cingan",
    "pretrain_cingan",
    "random_crops",
    "unpaired_frames",
]

logger = logging.getLogger(__name__)

#: Adam's betas in WGAN-GP (Gulrajani et al.): a short first-moment memory keeps the
#: generator and critic from chasing stale gradients of each other.
WGAN_GP_BETAS = (0.5, 0.9)

#: Generator steps per pre-training defect when no config is given.
PRETRAIN_STEPS_PER_DEFECT = 50

Progress = Callable[[int, int, dict[str, float]], None]


class GANTrainConfig(BaseModel):
    """Optimisation settings for :func:`fit_cingan` (Adam as in WGAN-GP, n_critic steps)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    steps: int = Field(ge=1, description="generator steps")
    batch_size: int = Field(4, ge=2)
    patch_size: int = Field(64, ge=16)
    n_critic: int = Field(2, ge=1, description="critic steps per generator step")
    lr_g: float = Field(1e-3, gt=0)
    lr_d: float = Field(1e-4, gt=0)
    head_lr_mult: float = Field(
        20.0, gt=0,
        description="the heads' lr relative to lr_g: their log-weights must travel several "
        "units, and Adam moves a parameter ~lr per step",
    )
    seed: int = 0


def random_crops(
    frames: Sequence[np.ndarray],
    batch: int,
    size: int,
    generator: torch.Generator,
    turn: bool = True,
) -> Tensor:
    """Random square crops of ``(C, Y, X)`` frames, every channel with the same random flip
    (and, with ``turn``, rot90) → ``(batch, C, size, size)``.

    Defective frames are not turned: a quarter turn swaps rows and columns, and scan lines,
    column offsets and axial anisotropy have a direction the new row must learn.
    """
    out = []
    for _ in range(batch):
        f = frames[int(torch.randint(len(frames), (1,), generator=generator))]
        top = int(torch.randint(f.shape[-2] - size + 1, (1,), generator=generator))
        left = int(torch.randint(f.shape[-1] - size + 1, (1,), generator=generator))
        c = torch.from_numpy(np.ascontiguousarray(f[:, top : top + size, left : left + size]))
        if int(torch.randint(2, (1,), generator=generator)):
            c = c.flip(-1)
        if turn:
            c = torch.rot90(c, int(torch.randint(4, (1,), generator=generator)), (-2, -1))
        elif int(torch.randint(2, (1,), generator=generator)):
            c = c.flip(-2)
        out.append(c)
    return torch.stack(out).float().contiguous()


def _check_frames(
    model: CINGAN,
    clean: Mapping[str, Sequence[np.ndarray]],
    defective: Mapping[str, Sequence[np.ndarray]],
    size: int,
) -> None:
    if set(clean) != set(defective) or not defective:
        raise ValueError(
            f"clean and defective must name the same defects, got {sorted(clean)} and "
            f"{sorted(defective)}"
        )
    if size % model.multiple:
        raise ValueError(f"patch_size must be a multiple of {model.multiple}, got {size}")
    for name, frames in [*clean.items(), *defective.items()]:
        model.defect_index(name)
        small = [f.shape for f in frames if min(f.shape) < size]
        if not frames or small:
            raise ValueError(
                f"defect {name!r}: need frames of at least {size}×{size}, got "
                f"{len(frames)} frame(s), too small: {small[:3]}"
            )


def fit_cingan(
    model: CINGAN,
    clean: Mapping[str, Sequence[np.ndarray]],
    defective: Mapping[str, Sequence[np.ndarray]],
    config: GANTrainConfig,
    progress: Progress | None = None,
) -> dict[str, float]:
    """Train ``model`` on unpaired normalised frames, one defect per step in turn.

    Each generator step follows ``n_critic`` critic steps (WGAN-GP). The physical heads, a
    handful of global numbers per defect, follow the content and style terms only: the
    critic's gradient on them is an order of magnitude larger than the statistics' and drives
    a new row's out-of-focus light to zero where the statistics ask for some.

    Parameters
    ----------
    model
        The CIN-GAN; only generator parameters with ``requires_grad`` are optimised (all of
        them in pre-training, the new rows after :meth:`CINGAN.add_defect`). The critic is
        always trained.
    clean, defective
        Per defect name (same keys, each a known defect): 2-D float frames, normalised
        (:func:`normalise_frames`), each at least ``patch_size`` on a side. The two are drawn
        independently, so no pairing is assumed.
    config
        Steps, batch, patch, learning rates.
    progress
        ``progress(step, total, logs)`` after every generator step.

    Returns the last step's logs (generator and critic parts, seconds per step).
    """
    size = config.patch_size
    _check_frames(model, clean, defective, size)
    names = sorted(defective, key=model.defect_index)
    # The generator's input layout, prepared once: clean frames with their whole-frame blurs.
    clean_stacks = {n: [out_of_focus(f) for f in clean[n]] for n in names}
    defective_stacks = {n: [np.asarray(f, np.float32)[None] for f in defective[n]] for n in names}
    head_params = [
        p for head in model.generator.heads() for p in head.parameters() if p.requires_grad
    ]
    head_ids = {id(p) for p in head_params}
    gen_params = [
        p for p in model.generator.parameters() if p.requires_grad and id(p) not in head_ids
    ]
    opt_g = torch.optim.Adam(
        [
            {"params": gen_params},
            {"params": head_params, "lr": config.lr_g * config.head_lr_mult},
        ],
        lr=config.lr_g,
        betas=WGAN_GP_BETAS,
    )
    opt_d = torch.optim.Adam(model.critic.parameters(), lr=config.lr_d, betas=WGAN_GP_BETAS)
    rng = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed)
    model.train()
    logs: dict[str, float] = {}
    started = time.perf_counter()
    for step in range(config.steps):
        name = names[step % len(names)]
        d = model.defect_index(name)
        for _ in range(config.n_critic):
            y = random_crops(clean_stacks[name], config.batch_size, size, rng)
            x = random_crops(defective_stacks[name], config.batch_size, size, rng, turn=False)
            parts = model.critic_losses(y, x, d)
            opt_d.zero_grad(set_to_none=True)
            parts["loss"].backward()
            opt_d.step()
        logs = {f"critic_{k}": float(v.detach()) for k, v in parts.items()}
        y = random_crops(clean_stacks[name], config.batch_size, size, rng)
        x = random_crops(defective_stacks[name], config.batch_size, size, rng, turn=False)
        gparts = model.generator_losses(y, x, d)
        opt_g.zero_grad(set_to_none=True)
        matched = gparts["loss"] - model.config.adv_weight * gparts["adv"]
        head_grads = (
            torch.autograd.grad(matched, head_params, retain_graph=True, allow_unused=True)
            if head_params
            else ()
        )
        gparts["loss"].backward()
        for param, grad in zip(head_params, head_grads, strict=True):
            param.grad = grad
        opt_g.step()
        logs |= {k: float(v.detach()) for k, v in gparts.items()}
        logs["seconds_per_step"] = (time.perf_counter() - started) / (step + 1)
        if progress is not None:
            progress(step + 1, config.steps, logs)
    model.eval()
    return logs


def unpaired_frames(
    make_pairs: PairSource, n: int, seed: int, size: int
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Unpaired (clean, defective) 2-D frames from a pair source, in camera units.

    Defective frames are the degraded members of ``make_pairs(n, seed, size)``; clean ones the
    targets of an *independent* draw (``seed + 1``), so no frame of one set has its partner in
    the other. Stacks (``(N, Z, Y, X)``) contribute every plane as a frame.
    """
    degraded, _ = make_pairs(n, seed, size)
    _, target = make_pairs(n, seed + 1, size)
    return (list(np.asarray(target).reshape(-1, *target.shape[-2:])),
            list(np.asarray(degraded).reshape(-1, *degraded.shape[-2:])))


def pretrain_cingan(
    sources: Mapping[str, PairSource],
    n: int = 8,
    seed: int = 0,
    config: GANTrainConfig | None = None,
    size: int = 128,
    model_config: CINGANConfig | None = None,
    progress: Progress | None = None,
) -> CINGAN:
    """Multi-defect, unpaired pre-training: one CIN row per source, in the mapping's order.

    ``sources`` maps a defect name to its pair source; ``n`` pairs of side ``size`` are drawn
    per defect (:func:`unpaired_frames`, defect ``i`` with seed ``seed + 2 i``, so no two
    defects share a draw).
    """
    defects = tuple(sources)
    if not defects:
        raise ValueError("pretrain_cingan needs at least one pair source")
    model_config = model_config or CINGANConfig(defects=defects)
    if model_config.defects != defects:
        raise ValueError(
            f"model_config.defects {model_config.defects} differ from the sources' {defects}"
        )
    config = config or GANTrainConfig(steps=PRETRAIN_STEPS_PER_DEFECT * len(defects), seed=seed)
    torch.manual_seed(seed)
    model = CINGAN(model_config)
    clean, defective = {}, {}
    for i, (name, make_pairs) in enumerate(sources.items()):
        c, d = unpaired_frames(make_pairs, n, seed + 2 * i, size)
        clean[name] = normalise_frames(c, model_config.pmin, model_config.pmax)
        defective[name] = normalise_frames(d, model_config.pmin, model_config.pmax)
    fit_cingan(model, clean, defective, config, progress)
    return model
