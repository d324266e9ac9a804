"""Few-shot adaptation of an MSCGM restorer to a new defect, through the CIN-GAN.

A user has a handful (≤ 10) of defective frames from their own instrument and no ground truth
for them, plus a library of clean (high-dose) frames — their own, or the simulator's.
:func:`adapt` then

1. learns the defect as one new CIN row of a pre-trained CIN-GAN (pre-training one first on
   the pair sources it is given, e.g. the simulator's defect tasks, if none is given), every
   other weight frozen, and
   calibrates the row's heads on the whole set of frames
   (:func:`live_restore.adapt.cingan.calibrate_row`);
2. degrades tiles of the clean library with that row, several noisy draws per tile, into
   synthetic (degraded, clean) pairs normalised exactly as the restorer normalises its input
   (:class:`live_restore.training.data.PairDataset`);
3. mixes in any real pairs the user has, as a fixed fraction of the training set (the seed's
   ``alpha``: ``n_fake = n_real · (1/alpha − 1)``);
4. fine-tunes a copy of the base restorer (the weights of :func:`fine_tune_scope`) with
   :func:`live_restore.training.loop.train` and writes a new model whose JSON records what it was
   adapted from: the base model's name and checksum, the defect, a checksum of the frames
   used, the calibration and every setting;
5. if the user has a few held-out real pairs (never trained on), restores them with the base
   and the adapted model and records both PSNRs (:func:`pair_psnr`), warning when adaptation
   made things worse: it can (a learned row may even invert a defect), and without this
   check only the user's eye would notice.

Swapping models in a live session is a new :class:`~live_restore.acquisition.live.LiveRestorer`
(or ``run_acquisition``) with the adapted restorer: the store records per frame which model
version restored it.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from live_restore import metrics
from live_restore.adapt.cingan import (
    CINGAN,
    GANTrainConfig,
    calibrate_row,
    fit_cingan,
    normalise_frames,
    out_of_focus,
    pretrain_cingan,
)
from live_restore.models.mscgm import MSCGMRestorer
from live_restore.models.normalisation import match_target, normalise_frame
from live_restore.models.restorer import get_restorer
from live_restore.training.data import PairDataset, PairSource
from live_restore.training.loop import TrainConfig, train

__all__ = [
    "ADAPT_PRESETS",
    "MAX_DEFECTIVE_FRAMES",
    "AdaptConfig",
    "adapt",
    "adapt_preset",
    "fine_tune",
    "fine_tune_scope",
    "learn_defect",
    "load_base",
    "pair_psnr",
    "real_pairs",
    "synthetic_pairs",
    "training_set",
]

logger = logging.getLogger(__name__)

#: The method is few-shot: more frames are accepted (with a warning) but were not validated.
MAX_DEFECTIVE_FRAMES = 10

Progress = Callable[[str, int, int], None]


class AdaptConfig(BaseModel):
    """Every setting of one adaptation; recorded in the adapted model's JSON."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    preset: str = "custom"
    pretrain: GANTrainConfig = Field(description="CIN-GAN pre-training, when none is given")
    pretrain_pairs: int = Field(ge=1, description="simulated pairs per pre-training defect")
    pretrain_size: int = Field(ge=16, description="side of the simulated pre-training frames")
    new_defect: GANTrainConfig = Field(description="training of the new CIN row")
    calibration_steps: int = Field(
        60, ge=0, description="full-batch steps refitting the new row's line and noise heads "
        "(cingan.calibrate_row)"
    )
    tile: int = Field(ge=16, description="side of the tiles the clean frames are cut into")
    draws_per_tile: int = Field(ge=1, description="noisy CIN-GAN draws per clean tile")
    real_fraction: float = Field(
        0.3, gt=0, lt=1, description="share of real pairs in the training set, when given"
    )
    finetune: TrainConfig = Field(description="restorer fine-tuning (training.train)")
    scope: Literal["auto", "all", "heads"] = Field(
        "auto",
        description="'all' weights, only the detail heads (bridge frozen), or 'auto': all "
        "weights when real pairs are mixed in or the new row adds out-of-focus light, else the "
        "heads",
    )


#: ``tiny`` runs in seconds (tests). ``default`` fits the product's budget on a 2-core CPU:
#: about 20 minutes in all, about 11 with a pre-trained CIN-GAN (pre-training is the largest
#: share of the generator steps, then fine-tuning, then the new row).
ADAPT_PRESETS: dict[str, AdaptConfig] = {
    "tiny": AdaptConfig(
        preset="tiny",
        pretrain=GANTrainConfig(steps=2, batch_size=2, patch_size=32, n_critic=1),
        pretrain_pairs=1,
        pretrain_size=32,
        new_defect=GANTrainConfig(steps=2, batch_size=2, patch_size=32, n_critic=1),
        calibration_steps=2,
        tile=32,
        draws_per_tile=1,
        finetune=TrainConfig(
            preset="adapt-tiny", steps=2, batch_size=2, patch_size=32, n_pairs=1, pair_size=32,
            lr=5e-5, ema_decay=0.9, checkpoint_every=2,
        ),
    ),
    "default": AdaptConfig(
        preset="default",
        pretrain=GANTrainConfig(steps=1400, batch_size=4, patch_size=64, n_critic=2),
        pretrain_pairs=8,
        pretrain_size=128,
        # A new row's heads start from the mean of the others and may need to move ~4 log
        # units (a row-gain sd from 0.001 to 0.05): at 20× the lr they had not in 200 steps.
        new_defect=GANTrainConfig(
            steps=600, batch_size=4, patch_size=64, n_critic=2, head_lr_mult=50.0
        ),
        tile=128,
        draws_per_tile=4,
        finetune=TrainConfig(
            preset="adapt-default", steps=3000, batch_size=8, patch_size=64, n_pairs=1,
            pair_size=128, lr=5e-5, ema_decay=0.995, checkpoint_every=500,
        ),
    ),
}


def adapt_preset(name: str, **overrides: object) -> AdaptConfig:
    """A named adaptation preset, optionally with some top-level fields replaced (validated)."""
    if name not in ADAPT_PRESETS:
        raise ValueError(
            f"unknown adaptation preset {name!r}; expected one of {sorted(ADAPT_PRESETS)}"
        )
    return AdaptConfig.model_validate(ADAPT_PRESETS[name].model_dump() | overrides)


def load_base(name: str) -> MSCGMRestorer:
    """The restorer to adapt, on the CPU; only MSCGM models can be fine-tuned here."""
    restorer = get_restorer(name, device="cpu")
    if not isinstance(restorer, MSCGMRestorer):
        raise ValueError(f"base {name!r} is a {restorer.name!r} restorer; adaptation needs MSCGM")
    return restorer


# ---------------------------------------------------------------------- input checks


def _frames(frames: np.ndarray | Sequence[np.ndarray], what: str) -> np.ndarray:
    """``(N, Y, X)`` float32 from a stack or a list of 2-D frames of one size; clear errors
    for no frames, mixed sizes, non-2-D frames, non-numeric data and NaN/inf."""
    items = list(frames) if not isinstance(frames, np.ndarray) or frames.ndim == 3 else [frames]
    if not items:
        raise ValueError(f"no {what} frames given; pass at least one 2-D frame")
    arrays = [np.asarray(f) for f in items]
    not_2d = [i for i, a in enumerate(arrays) if a.ndim != 2]
    if not_2d:
        raise ValueError(
            f"{what} frames must be 2-D (Y, X); frame(s) {not_2d} have shape(s) "
            f"{[arrays[i].shape for i in not_2d[:3]]}"
        )
    shapes = sorted({a.shape for a in arrays})
    if len(shapes) > 1:
        raise ValueError(
            f"{what} frames have mixed sizes {shapes}; crop or split them to one size first"
        )
    if any(a.dtype.kind not in "uif" for a in arrays):
        dtypes = sorted({str(a.dtype) for a in arrays})
        raise ValueError(f"{what} frames must be numeric, got dtype(s) {dtypes}")
    stack = np.stack(arrays).astype(np.float32)
    bad = np.flatnonzero(~np.isfinite(stack).reshape(len(stack), -1).all(axis=1))
    if bad.size:
        raise ValueError(f"{what} frame(s) {bad.tolist()} contain NaN or infinite values")
    return stack


def _pair_frames(
    degraded: np.ndarray, target: np.ndarray, what: str
) -> tuple[np.ndarray, np.ndarray]:
    """Two stacks of the same pairs, each checked by :func:`_frames`, of one shape."""
    degraded, target = _frames(degraded, f"{what} degraded"), _frames(target, f"{what} target")
    if degraded.shape != target.shape:
        raise ValueError(
            f"{what} degraded and target stacks differ in shape: {degraded.shape} and "
            f"{target.shape}"
        )
    return degraded, target


def _check_size(stack: np.ndarray, side: int, what: str) -> None:
    if min(stack.shape[1:]) < side:
        raise ValueError(
            f"{what} frames are {stack.shape[1]}×{stack.shape[2]} but these settings need at "
            f"least {side}×{side}"
        )


def _digest(*stacks: np.ndarray) -> str:
    """Short SHA-256 of the frames' bytes: which frames an adapted model was made from."""
    h = hashlib.sha256()
    for s in stacks:
        h.update(np.ascontiguousarray(s).tobytes())
    return h.hexdigest()[:16]


# ---------------------------------------------------------------------- data


def _tiles(stack: np.ndarray, side: int) -> np.ndarray:
    """Non-overlapping ``side``² tiles of every frame of a ``(N, ..., Y, X)`` stack (frames
    must be at least ``side``) → ``(M, ..., side, side)``."""
    tiles = [
        f[..., top : top + side, left : left + side]
        for f in stack
        for top in range(0, f.shape[-2] - side + 1, side)
        for left in range(0, f.shape[-1] - side + 1, side)
    ]
    return np.stack(tiles)


def _normalised_pair(
    degraded: np.ndarray, target: np.ndarray, restorer: MSCGMRestorer
) -> tuple[np.ndarray, np.ndarray]:
    """Normalise one (degraded, target) frame pair exactly as
    :meth:`PairDataset.for_model` does."""
    cfg = restorer.config
    d, _, _ = normalise_frame(degraded, cfg.pmin, cfg.pmax)
    t, _, _ = normalise_frame(target, cfg.pmin, cfg.pmax)
    return d, match_target(d, t, cfg)


def pair_psnr(restorer: MSCGMRestorer, degraded: np.ndarray, target: np.ndarray) -> float:
    """Mean :func:`live_restore.metrics.psnr` (percentile-normalised, affine fit) of one
    seeded restoration of each ``(N, Y, X)`` degraded frame against its target."""
    restored = restorer.restore(degraded, seed=0).mean
    return float(np.mean([metrics.psnr(r, t) for r, t in zip(restored, target, strict=True)]))


@torch.no_grad()
def synthetic_pairs(
    base: MSCGMRestorer,
    gan: CINGAN,
    defect: str,
    clean: np.ndarray,
    config: AdaptConfig,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """``draws_per_tile`` CIN-GAN degradations (row ``defect``) of every ``tile``² tile of the
    clean ``(N, Y, X)`` frames, as training pairs normalised for ``base``."""
    generator = torch.Generator().manual_seed(seed)
    frames = normalise_frames(clean, gan.config.pmin, gan.config.pmax)
    # Out-of-focus light reaches a tile from the whole frame: blur frames, then tile.
    stacks = _tiles(np.stack([out_of_focus(f) for f in frames]), config.tile)
    draws = config.draws_per_tile
    degraded, target = [], []
    for stack in stacks:
        x = torch.from_numpy(stack)[None].expand(draws, *stack.shape)
        for fake in gan.synthesise(x.contiguous(), defect, generator)[:, 0].numpy():
            d, t = _normalised_pair(fake, stack[0], base)
            degraded.append(d)
            target.append(t)
    return np.stack(degraded), np.stack(target)


def real_pairs(
    base: MSCGMRestorer, degraded: np.ndarray, target: np.ndarray, tile: int
) -> tuple[np.ndarray, np.ndarray]:
    """Real ``(N, Y, X)`` pair stacks (camera units) → normalised ``tile``² training tiles."""
    real_d, real_t = _pair_frames(degraded, target, "paired")
    _check_size(real_d, tile, "paired")
    normalised = [_normalised_pair(d, t, base) for d, t in zip(real_d, real_t, strict=True)]
    return (
        _tiles(np.stack([d for d, _ in normalised]), tile),
        _tiles(np.stack([t for _, t in normalised]), tile),
    )


def training_set(
    config: AdaptConfig,
    synthetic: tuple[np.ndarray, np.ndarray] | None = None,
    real: tuple[np.ndarray, np.ndarray] | None = None,
) -> PairDataset:
    """The fine-tuning set: synthetic pairs (:func:`synthetic_pairs`), real pairs
    (:func:`real_pairs`), or both, the real ones repeated to make up ``real_fraction`` of the
    set (the seed's ``alpha``)."""
    if synthetic is None or real is None:
        pairs = synthetic if synthetic is not None else real
        if pairs is None:
            raise ValueError("training_set needs synthetic pairs, real pairs, or both")
        return PairDataset(*pairs)
    n_fake, n_real = len(synthetic[0]), len(real[0])
    repeats = max(1, round(n_fake * config.real_fraction / (1 - config.real_fraction) / n_real))
    return PairDataset(
        np.concatenate([synthetic[0], *[real[0]] * repeats]),
        np.concatenate([synthetic[1], *[real[1]] * repeats]),
    )


def learn_defect(
    gan: CINGAN,
    defect: str,
    defective: np.ndarray,
    clean: np.ndarray,
    config: GANTrainConfig,
    calibration_steps: int,
    progress: Callable[[int, int, dict[str, float]], None] | None = None,
) -> dict[str, float]:
    """Append a CIN row for ``defect`` to ``gan``, train it (every other weight frozen) on
    unpaired ``(N, Y, X)`` defective and clean frames in camera units, then refit its heads
    on the whole set (:func:`live_restore.adapt.cingan.calibrate_row`, whose result is returned)."""
    gan.add_defect(defect)
    cfg = gan.config
    clean_n = normalise_frames(clean, cfg.pmin, cfg.pmax)
    defective_n = normalise_frames(defective, cfg.pmin, cfg.pmax)
    fit_cingan(gan, {defect: clean_n}, {defect: defective_n}, config, progress)
    return calibrate_row(gan, defect, clean_n, defective_n, config.patch_size,
                         calibration_steps, config.seed)


def fine_tune_scope(
    config: AdaptConfig, synthetic_only: bool, out_of_focus_light: bool = False
) -> Literal["all", "heads"]:
    """The weights fine-tuning trains: ``config.scope``, with ``"auto"`` resolved to the heads
    when every pair is synthetic and the new row adds no out-of-focus light (calibrated by
    :func:`live_restore.adapt.cingan.calibrate_row`), and to all weights otherwise.

    Haze lives in the coarsest LL band, which only the bridge restores: with the bridge
    frozen no synthetic pair can teach its removal. Every other defect keeps the bridge
    frozen on synthetic pairs alone, since a learned row can get the low frequencies wrong,
    and a bridge trained on such pairs can end below the base. Real pairs carry the true low
    frequencies, so with them every weight is trained.
    """
    if config.scope != "auto":
        return config.scope
    return "heads" if synthetic_only and not out_of_focus_light else "all"


def fine_tune(
    base: MSCGMRestorer,
    data: PairDataset,
    config: AdaptConfig,
    *,
    synthetic_only: bool,
    out_of_focus_light: bool = False,
    seed: int = 0,
    workdir: Path | None = None,
    progress: Callable[[int, int, dict[str, float]], None] | None = None,
) -> MSCGMRestorer:
    """A copy of ``base`` fine-tuned on ``data`` with ``config.finetune`` (the weights of
    :func:`fine_tune_scope`; ``synthetic_only``: ``data`` holds no real pair;
    ``out_of_focus_light``: its synthetic pairs carry haze); ``base`` is left unchanged."""
    model = copy.deepcopy(base.model)
    if fine_tune_scope(config, synthetic_only, out_of_focus_light) == "heads":
        model.denoiser.requires_grad_(False)
    finetune = config.finetune.model_copy(update={"seed": seed})
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(workdir) if workdir is not None else Path(tmp)
        exported = train(model, data, finetune, run_dir, progress, resume=False)
        restorer = MSCGMRestorer.load(exported, device=str(base.device))
    restorer.config = restorer.model.config = restorer.config.model_copy(
        update={"steps_trained": base.config.steps_trained + finetune.steps,
                "preset": f"adapt-{config.preset}"}
    )
    return restorer


# ---------------------------------------------------------------------- adapt


def adapt(
    base: MSCGMRestorer,
    defect: str,
    defective_frames: np.ndarray | Sequence[np.ndarray],
    clean_frames: np.ndarray | Sequence[np.ndarray],
    pairs: tuple[np.ndarray, np.ndarray] | None = None,
    *,
    out: Path,
    check: tuple[np.ndarray, np.ndarray] | None = None,
    preset: str | AdaptConfig = "default",
    cingan: CINGAN | Path | str | None = None,
    pretrain_sources: Mapping[str, PairSource] | None = None,
    cingan_out: Path | None = None,
    workdir: Path | None = None,
    seed: int = 0,
    progress: Progress | None = None,
) -> Path:
    """Adapt ``base`` to ``defect`` and write ``out.safetensors`` + ``out.json``.

    Parameters
    ----------
    base
        The restorer to start from (left unchanged: a copy is fine-tuned).
    defect
        Name of the new defect; must not already be a row of the CIN-GAN.
    defective_frames
        ``(N, Y, X)`` stack or list of 2-D frames, camera units, ``1 ≤ N``; more than
        :data:`MAX_DEFECTIVE_FRAMES` is allowed but logged as a warning. No ground truth.
    clean_frames
        The clean library, ``(M, Y, X)`` or a list of 2-D frames of one size, camera units.
    pairs
        Optional real ``(degraded, target)`` stacks of one shape, mixed in at
        ``real_fraction``.
    out
        Stem of the adapted model files.
    check
        Optional held-out real ``(degraded, target)`` stacks of one shape, any frame size,
        used only to score the base and the adapted model (recorded as ``check`` in the
        JSON; a warning is logged if the adapted model scores lower).
    preset
        ``"tiny"``, ``"default"`` (≤ 20 min on a 2-core CPU) or an :class:`AdaptConfig`.
    cingan
        A pre-trained CIN-GAN (or the path of its files); None pre-trains one on
        ``pretrain_sources`` with the preset's ``pretrain`` settings.
    pretrain_sources
        Defect name → pair source (e.g. the simulator's defect tasks), one CIN row each;
        needed only when ``cingan`` is None.
    cingan_out
        Where to save the CIN-GAN with the new row (so more defects can be added later).
    workdir
        Fine-tuning checkpoints; a temporary folder when None.
    seed
        Seeds pre-training, the new row's training, the synthetic draws and fine-tuning.
    progress
        ``progress(stage, step, total)`` with stage ``"pretrain"``, ``"defect"`` or
        ``"finetune"``.

    Returns the path of ``out.json``. Raises ``ValueError`` for no frames, frames of mixed
    sizes or with NaN, frames too small for the preset, a defect name the CIN-GAN already
    has (or a pre-training source has), neither a CIN-GAN nor pre-training sources, or
    mismatched pairs or check pairs.
    """
    config = adapt_preset(preset) if isinstance(preset, str) else preset
    defective = _frames(defective_frames, "defective")
    clean = _frames(clean_frames, "clean")
    if len(defective) > MAX_DEFECTIVE_FRAMES:
        logger.warning(
            "%d defective frames given; adaptation is designed and tested for at most %d",
            len(defective), MAX_DEFECTIVE_FRAMES,
        )
    _check_size(defective, config.new_defect.patch_size, "defective")
    _check_size(clean, max(config.tile, config.new_defect.patch_size), "clean")
    multiple = base.model.multiple
    if config.finetune.patch_size % multiple or config.finetune.patch_size > config.tile:
        raise ValueError(
            f"finetune.patch_size {config.finetune.patch_size} must be a multiple of "
            f"{multiple} (the base model's) and at most tile {config.tile}"
        )
    real = None if pairs is None else real_pairs(base, pairs[0], pairs[1], config.tile)
    held_out = None if check is None else _pair_frames(*check, "check")

    def stage(name: str) -> Callable[[int, int, dict[str, float]], None] | None:
        if progress is None:
            return None
        return lambda step, total, _logs: progress(name, step, total)

    gan = CINGAN.load(cingan) if isinstance(cingan, (str, Path)) else copy.deepcopy(cingan)
    if gan is None and not pretrain_sources:
        raise ValueError(
            "no CIN-GAN given and no pair sources to pre-train one; pass cingan= or "
            "pretrain_sources="
        )
    known = gan.defects if gan is not None else list(pretrain_sources or {})
    if not defect or defect in known:
        raise ValueError(
            f"defect {defect!r} already exists in the CIN-GAN (defects: {known}); choose a "
            "new, non-empty name"
        )
    if gan is None:
        gan = pretrain_cingan(
            pretrain_sources or {}, config.pretrain_pairs, seed,
            config.pretrain.model_copy(update={"seed": seed}), config.pretrain_size,
            progress=stage("pretrain"),
        )
    calibration = learn_defect(
        gan, defect, defective, clean, config.new_defect.model_copy(update={"seed": seed}),
        config.calibration_steps, stage("defect"),
    )
    hazy = calibration["out_of_focus_light"] > 0
    synthetic = synthetic_pairs(base, gan, defect, clean, config, seed)
    data = training_set(config, synthetic, real)
    restorer = fine_tune(base, data, config, synthetic_only=real is None,
                         out_of_focus_light=hazy, seed=seed, workdir=workdir,
                         progress=stage("finetune"))
    cingan_path = None
    if cingan_out is not None:
        cingan_path = gan.save(cingan_out, {"added": defect, "seed": seed})
    scores = None
    if held_out is not None:
        scores = {"n": len(held_out[0]), "base_psnr": pair_psnr(base, *held_out),
                  "adapted_psnr": pair_psnr(restorer, *held_out)}
        if scores["adapted_psnr"] < scores["base_psnr"]:
            logger.warning(
                "the adapted model scores below its base on the %d check pair(s): %.2f vs "
                "%.2f dB PSNR; keep using the base for this defect",
                scores["n"], scores["adapted_psnr"], scores["base_psnr"],
            )
    adaptation = {
        "base_model": {"name": base.name, "checksum": base.version, "task": base.config.task},
        "defect": defect,
        "defective_frames": {"n": len(defective), "shape": list(defective.shape[1:]),
                             "checksum": _digest(defective)},
        "clean_frames": {"n": len(clean), "shape": list(clean.shape[1:]),
                         "checksum": _digest(clean)},
        "real_pairs": 0 if real is None else len(real[0]),
        "check": scores,
        "training_tiles": {"synthetic": len(synthetic[0]), "total": len(data)},
        "fine_tuned": fine_tune_scope(config, real is None, hazy),
        "cingan": {"defects": gan.defects, "file": str(cingan_path) if cingan_path else None,
                   "calibration": calibration},
        "seed": seed,
        "settings": config.model_dump(mode="json"),
    }
    return restorer.save(Path(out), extra={"adaptation": adaptation})
