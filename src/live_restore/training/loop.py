"""A plain torch training loop for any model exposing ``losses`` (MSCGM, CARE, DDPM).

No Lightning (one fewer heavy dependency, and the loop stays readable): AdamW, gradient
clipping after ``backward``, an EMA copy (the one exported), optional GAN critic steps, and
resumable checkpoints written without pickle:
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

import torch
from pydantic import BaseModel, ConfigDict, Field
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from live_restore import __version__
from live_restore.training.data import PairDataset

__all__ = ["PRESETS", "TrainConfig", "TrainableModel", "preset", "train"]

logger = logging.getLogger(__name__)

CHECKPOINT_FORMAT_VERSION = 1


class TrainConfig(BaseModel):
    """Optimisation settings; the presets below are measured on a 2-core CPU."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    preset: str = "custom"
    steps: int = Field(ge=1, description="optimiser steps")
    batch_size: int = Field(ge=1)
    patch_size: int = Field(ge=8, description="square crop side, pixels")
    n_pairs: int = Field(ge=1, description="training pairs drawn from the pair source")
    pair_size: int = Field(ge=8, description="side of each drawn pair, pixels")
    lr: float = Field(2e-4, gt=0)
    lr_d: float = Field(1e-4, gt=0, description="critic learning rate")
    weight_decay: float = Field(1e-4, ge=0)
    ema_decay: float = Field(0.999, ge=0, lt=1)
    grad_clip: float = Field(1.0, gt=0)
    checkpoint_every: int = Field(500, ge=1)
    seed: int = 0


#: Sized for a 2-core CPU: "tiny" runs in seconds (tests), "quick" in about ten minutes,
#: "default" (the shipped models' budget) in about half an hour.
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
