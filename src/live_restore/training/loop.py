"""A plain torch training loop for any model exposing ``losses`` (MSCGM, CARE, DDPM).

No Lightning (style.md rule 13): AdamW, gradient clipping after ``backward``, an EMA copy (the
one exported), optional GAN critic steps, and resumable checkpoints written without pickle:
``out/checkpoint.safetensors`` holds every tensor (weights, EMA, optimiser moments, RNG
states) and ``out/checkpoint.json`` the scalars (step, configs, optimiser hyper-parameters).

A trainable model implements::

    losses(degraded, target, *, step, total_steps) -> dict[str, Tensor]   # "loss" required
    export(stem, provenance) -> Path                                       # writes the model

and optionally, for adversarial training, ``generator_parameters()``,
``discriminator_parameters()`` and ``discriminator_loss(...) -> dict | None`` (None while the
critic is not yet in use).
"""

from __future__ import annotations

import copy
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from live_restore import __version__
from live_restore.models.mscgm import MSCGMConfig, match_target, normalise_frame
from live_restore.sim import make_pairs

__all__ = ["PRESETS", "PairDataset", "TrainConfig", "TrainableModel", "preset", "train"]

logger = logging.getLogger(__name__)

CHECKPOINT_FORMAT_VERSION = 1


class TrainConfig(BaseModel):
    """Optimisation settings; the presets below are measured on a 2-core CPU."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    preset: str = "custom"
    steps: int = Field(ge=1, description="optimiser steps")
    batch_size: int = Field(ge=1)
    patch_size: int = Field(ge=8, description="square crop side, pixels")
    n_pairs: int = Field(ge=1, description="simulated training pairs")
    pair_size: int = Field(ge=8, description="side of each simulated pair, pixels")
    lr: float = Field(2e-4, gt=0)
    lr_d: float = Field(1e-4, gt=0, description="critic learning rate")
    weight_decay: float = Field(1e-4, ge=0)
    ema_decay: float = Field(0.999, ge=0, lt=1)
    grad_clip: float = Field(1.0, gt=0)
    checkpoint_every: int = Field(500, ge=1)
    seed: int = 0


#: Measured on the 2-core CPU (sted_denoise, default MSCGMConfig): "quick" at 1500 steps took
#: 5.1 min including data, so 2500 steps ≈ 8.5 min; "default" steps cost ≈ 0.17 / 0.28 / 0.36 s
#: (stage 1 / with critic / stage 2) at batch 8, patch 96: ≈ 31 min for 7000 steps. A whole
#: default run of the shipped ``confocal2sted`` command, alone on 2 threads, took 26.8 min.
PRESETS: dict[str, TrainConfig] = {
    "tiny": TrainConfig(
        preset="tiny",
        steps=4,
        batch_size=2,
        patch_size=32,
        n_pairs=2,
        pair_size=64,
        ema_decay=0.9,
        checkpoint_every=2,
    ),
    "quick": TrainConfig(
        preset="quick",
        steps=2500,
        batch_size=8,
        patch_size=64,
        n_pairs=48,
        pair_size=256,
        ema_decay=0.995,
    ),
    "default": TrainConfig(
        preset="default",
        steps=7000,
        batch_size=8,
        patch_size=96,
        n_pairs=128,
        pair_size=256,
    ),
}


def preset(name: str, **overrides: Any) -> TrainConfig:
    """A named preset, optionally with some fields replaced (validated)."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; expected one of {sorted(PRESETS)}")
    return TrainConfig.model_validate(PRESETS[name].model_dump() | overrides)


class TrainableModel(Protocol):
    """What :func:`train` needs from a model (see the module docstring)."""

    def losses(
        self, degraded: Tensor, target: Tensor, *, step: int, total_steps: int
    ) -> dict[str, Tensor]: ...

    def export(self, stem: Path, provenance: dict[str, object] | None = None) -> Path: ...


class PairDataset:
    """Simulated (degraded, target) pairs, normalised once, served as augmented crops.

    Pairs come from :func:`live_restore.sim.make_pairs` and are cached as ``.npz`` in
    ``cache_dir`` (keyed by every argument), so a resumed run does not regenerate them. Each
    degraded frame is normalised by its own percentiles and each target matched to it
    (:func:`live_restore.models.mscgm.match_target`), exactly as the restorer normalises at
    inference.

    Parameters
    ----------
    task, n, seed, size
        As for :func:`live_restore.sim.make_pairs`.
    pmin, pmax
        Percentiles mapped to 0 and 1 (the model config's).
    forward_model, blur_sigma_px
        The task's forward model, for matching the target's photometry.
    cache_dir
        Folder for the cache file; None keeps the pairs in memory only.
    """

    def __init__(
        self,
        task: str,
        n: int,
        seed: int,
        size: int = 256,
        *,
        pmin: float = 0.2,
        pmax: float = 99.8,
        forward_model: str = "identity",
        blur_sigma_px: float = 0.0,
        cache_dir: Path | None = None,
    ) -> None:
        self.norm_config = MSCGMConfig(
            task=task,
            pmin=pmin,
            pmax=pmax,
            forward_model=forward_model,
            blur_sigma_px=blur_sigma_px,
        )
        key = f"{task}_n{n}_s{seed}_px{size}_{pmin}_{pmax}_{forward_model}_{blur_sigma_px}"
        cache = Path(cache_dir) / f"pairs_{key}.npz" if cache_dir is not None else None
        if cache is not None and cache.is_file():
            with np.load(cache) as data:
                self.degraded, self.target = data["degraded"], data["target"]
        else:
            degraded, target, _ = make_pairs(task, n, seed, size)
            self.degraded = np.empty_like(degraded)
            self.target = np.empty_like(target)
            for i in range(len(degraded)):
                self.degraded[i], _, _ = normalise_frame(degraded[i], pmin, pmax)
                target_n, _, _ = normalise_frame(target[i], pmin, pmax)
                self.target[i] = match_target(self.degraded[i], target_n, self.norm_config)
            if cache is not None:
                cache.parent.mkdir(parents=True, exist_ok=True)
                partial = cache.with_suffix(".npz.tmp")  # a killed run leaves no half cache
                with partial.open("wb") as f:
                    np.savez(f, degraded=self.degraded, target=self.target)
                partial.replace(cache)

    @classmethod
    def for_model(
        cls, config: MSCGMConfig, n: int, seed: int, size: int = 256, cache_dir: Path | None = None
    ) -> PairDataset:
        """Dataset normalised exactly as the model described by ``config`` expects."""
        return cls(
            config.task,
            n,
            seed,
            size,
            pmin=config.pmin,
            pmax=config.pmax,
            forward_model=config.forward_model,
            blur_sigma_px=config.blur_sigma_px,
            cache_dir=cache_dir,
        )

    def __len__(self) -> int:
        return len(self.degraded)

    def batch(
        self, batch_size: int, patch_size: int, generator: torch.Generator
    ) -> tuple[Tensor, Tensor]:
        """Random crops with a random flip and rot90, the same for both members of a pair.

        Returns two ``(batch_size, 1, patch_size, patch_size)`` float32 tensors, normalised.
        """
        n, h, w = self.degraded.shape
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
                c = torch.from_numpy(arr[i, top : top + patch_size, left : left + patch_size])
                c = torch.rot90(c.flip(-1) if flip else c, rot, dims=(-2, -1))
                crops.append(c)
            out.append(torch.stack(crops)[:, None].contiguous())
        return out[0], out[1]


# ---------------------------------------------------------------------- checkpoints


def _flatten_optimizer(opt: torch.optim.Optimizer, prefix: str) -> tuple[dict, dict]:
    """Optimiser state → (tensors for safetensors, JSON-able scalars). No pickle."""
    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for pid, state in sd["state"].items():
        for name, value in state.items():
            if isinstance(value, Tensor):
                tensors[f"{prefix}.{pid}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{pid}.{name}"] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _unflatten_optimizer(
    opt: torch.optim.Optimizer, tensors: dict[str, Tensor], meta: dict, prefix: str
) -> None:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith(prefix + "."):
            pid, name = key[len(prefix) + 1 :].split(".", 1)
            state.setdefault(int(pid), {})[name] = value
    for key, value in meta["scalars"].items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = value
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


class _Optimisers:
    """Generator and (optional) critic AdamW optimisers over a model's parameter groups."""

    def __init__(self, model: nn.Module, config: TrainConfig) -> None:
        has_critic = hasattr(model, "discriminator_parameters")
        gen = model.generator_parameters() if has_critic else list(model.parameters())
        self.gen = torch.optim.AdamW(gen, lr=config.lr, weight_decay=config.weight_decay)
        self.gen_params = gen
        self.critic: torch.optim.AdamW | None = None
        if has_critic:
            crit = model.discriminator_parameters()
            self.critic = torch.optim.AdamW(crit, lr=config.lr_d, betas=(0.5, 0.999))
            self.critic_params = crit

    def named(self) -> dict[str, torch.optim.Optimizer]:
        return {"opt_g": self.gen} | ({"opt_d": self.critic} if self.critic else {})


def _save_checkpoint(
    out: Path,
    step: int,
    model: nn.Module,
    ema: nn.Module,
    opts: _Optimisers,
    generator: torch.Generator,
    config: TrainConfig,
) -> None:
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tensors |= {f"ema.{k}": v.detach().cpu().contiguous() for k, v in ema.state_dict().items()}
    meta: dict[str, Any] = {
        "format_version": CHECKPOINT_FORMAT_VERSION,
        "step": step,
        "train_config": config.model_dump(),
        "package_version": __version__,
        "optimizers": {},
    }
    for name, opt in opts.named().items():
        opt_tensors, opt_meta = _flatten_optimizer(opt, name)
        tensors |= opt_tensors
        meta["optimizers"][name] = opt_meta
    tensors["rng.torch"] = torch.get_rng_state()
    tensors["rng.data"] = generator.get_state()
    tmp = out / "checkpoint.safetensors.tmp"
    save_file(tensors, str(tmp))
    tmp.replace(out / "checkpoint.safetensors")
    (out / "checkpoint.json").write_text(json.dumps(meta, indent=2))


def _load_checkpoint(
    out: Path,
    model: nn.Module,
    ema: nn.Module,
    opts: _Optimisers,
    generator: torch.Generator,
    config: TrainConfig,
) -> int:
    """Restore everything from ``out``; return the step to continue from."""
    meta_path, weights = out / "checkpoint.json", out / "checkpoint.safetensors"
    try:
        meta = json.loads(meta_path.read_text())
        tensors = load_file(str(weights))
    except Exception as err:
        raise ValueError(f"checkpoint in {out} is unreadable: {err}") from err
    if meta.get("format_version") != CHECKPOINT_FORMAT_VERSION:
        raise ValueError(
            f"checkpoint in {out} has format_version {meta.get('format_version')!r}, "
            f"expected {CHECKPOINT_FORMAT_VERSION}"
        )
    saved = {k: v for k, v in meta["train_config"].items() if k != "steps"}
    current = {k: v for k, v in config.model_dump().items() if k != "steps"}
    if saved != current:
        raise ValueError(
            f"checkpoint in {out} was written with another training config {saved}; "
            f"pass resume=False or a fresh output folder to start over"
        )
    for prefix, module in (("model.", model), ("ema.", ema)):
        state = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
        module.load_state_dict(state)
    for name, opt in opts.named().items():
        _unflatten_optimizer(opt, tensors, meta["optimizers"][name], name)
    torch.set_rng_state(tensors["rng.torch"])
    generator.set_state(tensors["rng.data"])
    return int(meta["step"])


@torch.no_grad()
def _update_ema(ema: nn.Module, model: nn.Module, decay: float) -> None:
    for e, p in zip(ema.parameters(), model.parameters(), strict=True):
        e.lerp_(p.detach(), 1.0 - decay)
    for e, b in zip(ema.buffers(), model.buffers(), strict=True):
        e.copy_(b)


# ---------------------------------------------------------------------- the loop


def train(
    model: nn.Module,
    data: PairDataset,
    config: TrainConfig,
    out: Path,
    progress: Callable[[int, int, dict[str, float]], None] | None = None,
    resume: bool = True,
) -> Path:
    """Train ``model`` on ``data``; export the EMA model to ``out/model.{safetensors,json}``.

    Each step: one generator update (AdamW on ``losses(...)["loss"]``, gradients clipped to
    ``grad_clip`` after ``backward``), then one critic update when the model returns a
    critic loss, then the EMA update. A checkpoint is written every ``checkpoint_every``
    steps and at the end; with ``resume`` an existing one in ``out`` is continued (same
    training config, ``steps`` may grow). ``progress(step, total, logs)`` is called after
    every step. Returns the path of the exported ``model.json``.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed + 1)
    device = next(model.parameters()).device
    model.train()
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    opts = _Optimisers(model, config)
    step = 0
    if resume and (out / "checkpoint.json").is_file():
        step = _load_checkpoint(out, model, ema, opts, generator, config)
        logger.info("resuming from step %d in %s", step, out)
    started = time.perf_counter()
    while step < config.steps:
        degraded, target = data.batch(config.batch_size, config.patch_size, generator)
        degraded, target = degraded.to(device), target.to(device)
        parts = model.losses(degraded, target, step=step, total_steps=config.steps)
        opts.gen.zero_grad(set_to_none=True)
        parts["loss"].backward()
        nn.utils.clip_grad_norm_(opts.gen_params, config.grad_clip)
        opts.gen.step()
        logs = {k: float(v.detach()) for k, v in parts.items()}
        if opts.critic is not None:
            critic = model.discriminator_loss(degraded, target, step=step, total_steps=config.steps)
            if critic is not None:
                opts.critic.zero_grad(set_to_none=True)
                critic["loss"].backward()
                nn.utils.clip_grad_norm_(opts.critic_params, config.grad_clip)
                opts.critic.step()
                logs |= {f"critic_{k}": float(v.detach()) for k, v in critic.items()}
        _update_ema(ema, model, config.ema_decay)
        step += 1
        logs["seconds"] = time.perf_counter() - started
        if step % config.checkpoint_every == 0 or step == config.steps:
            _save_checkpoint(out, step, model, ema, opts, generator, config)
        if progress is not None:
            progress(step, config.steps, logs)
    provenance = {"seed": config.seed, "preset": config.preset, "steps_trained": step}
    return ema.export(out / "model", provenance)
