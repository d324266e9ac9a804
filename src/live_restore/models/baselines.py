"""Baseline restorers MSCGM is judged against: CARE and a conditional DDPM.

Both are trained by :func:`live_restore.training.loop.train` on the same :class:`PairDataset` as
MSCGM (same simulated pairs, same per-frame percentile normalisation, same target matching:
build it with ``PairDataset.for_model(config.data_config(), ...)``), and both use
:class:`live_restore.models.networks.UNet` at the width of MSCGM's bridge U-Net
(``MSCGMConfig.bridge_channels`` and ``bridge_mults``), but at full resolution.

- :class:`CARE` follows the CSBDeep recipe (notes/cingan_ddpm_sim.md §3): a residual U-Net
  regression in pixels, ``x̂ = y + UNet(y)``, trained with the mean absolute error.
- :class:`ConditionalDDPM` follows Osuna-Vargas et al. (WACV 2025; notes §2): the degraded
  frame is concatenated with ``x_t``, the network predicts ``ε`` (MSE), cosine schedule with
  ``s = 8e-3`` and ``T = 200`` (the paper's own T, for training and test), sampled with DDIM
  (50 steps by default; η = 0 for one sample, η = 1 when several are averaged: DDPM-avg).
  Deviations, flagged: our U-Net (no attention, discrete ``t`` embedding) instead of EDM2's,
  and ``x̂_0`` clamped to ±``x0_clip`` rather than ±1, because normalised fluorescence
  exceeds 1.

Model files are ``NAME.safetensors`` + ``NAME.json`` as for MSCGM
(:mod:`live_restore.models.files`), with the formats ``live_restore.care`` and
``live_restore.ddpm``.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path
from typing import ClassVar, Literal, TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import Tensor, nn

from live_restore import __version__
from live_restore.models.files import load_model_files, prepare_model, save_model_files
from live_restore.models.mscgm import MSCGMConfig, normalise_frame
from live_restore.models.networks import UNet
from live_restore.models.restorer import RestoreResult, check_batch
from live_restore.models.wavelets import crop, pad_to_multiple

__all__ = [
    "CARE",
    "CARE_FORMAT",
    "DDPM_FORMAT",
    "FORMAT_VERSION",
    "CAREConfig",
    "CARERestorer",
    "ConditionalDDPM",
    "DDPMConfig",
    "DDPMRestorer",
    "cosine_alphas_cumprod",
]

CARE_FORMAT = "live_restore.care"
DDPM_FORMAT = "live_restore.ddpm"
FORMAT_VERSION = 1

_MSCGM_FIELDS = MSCGMConfig.model_fields
ConfigT = TypeVar("ConfigT", bound=BaseModel)
ModelT = TypeVar("ModelT", bound=nn.Module)


def _all_weights(model: nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}


# ---------------------------------------------------------------------- configs


class _BaselineConfig(BaseModel):
    """Fields shared by both baselines; widths and normalisation default to MSCGM's."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    task: str = Field(min_length=1, description="training task, e.g. 'confocal2sted'")
    channels: int = Field(
        _MSCGM_FIELDS["bridge_channels"].default, ge=1, description="U-Net width (MSCGM bridge)"
    )
    channel_mults: tuple[int, ...] = _MSCGM_FIELDS["bridge_mults"].default
    pmin: float = Field(_MSCGM_FIELDS["pmin"].default, ge=0, lt=100)
    pmax: float = Field(_MSCGM_FIELDS["pmax"].default, gt=0, le=100)
    forward_model: Literal["identity", "confocal_blur"] = "identity"
    blur_sigma_px: float = Field(0.0, ge=0, description="Gaussian σ of confocal_blur, pixels")
    seed: int | None = None
    preset: str | None = None
    steps_trained: int = Field(0, ge=0)
    package_version: str = __version__

    @model_validator(mode="after")
    def _check(self) -> _BaselineConfig:
        # The data settings must be the ones MSCGM accepts, so both see identical pairs.
        self.data_config()
        if not self.channel_mults or min(self.channel_mults) < 1:
            raise ValueError(f"channel_mults must be positive integers, got {self.channel_mults}")
        return self

    @classmethod
    def for_task(cls: type[ConfigT], task: str, **kwargs: object) -> ConfigT:
        """Config with the task's forward model taken from :meth:`MSCGMConfig.for_task`."""
        ref = MSCGMConfig.for_task(task)
        defaults = {"forward_model": ref.forward_model, "blur_sigma_px": ref.blur_sigma_px}
        return cls.model_validate({"task": task} | defaults | kwargs)

    def data_config(self) -> MSCGMConfig:
        """The normalisation as an :class:`MSCGMConfig`, for ``PairDataset.for_model``."""
        return MSCGMConfig(
            task=self.task,
            pmin=self.pmin,
            pmax=self.pmax,
            forward_model=self.forward_model,
            blur_sigma_px=self.blur_sigma_px,
        )


class CAREConfig(_BaselineConfig):
    """Everything needed to rebuild a :class:`CARE` model; dumped into ``NAME.json``."""

    kind: Literal["care"] = "care"


class DDPMConfig(_BaselineConfig):
    """Everything needed to rebuild a :class:`ConditionalDDPM`; dumped into ``NAME.json``."""

    kind: Literal["ddpm"] = "ddpm"
    num_timesteps: int = Field(200, ge=1, description="T, training and test (paper: 200)")
    schedule_s: float = Field(8e-3, gt=0, description="cosine schedule offset s (paper)")
    steps: int = Field(50, ge=1, description="default DDIM steps (network calls)")
    eta: float = Field(0.0, ge=0, le=1, description="DDIM stochasticity for a single sample")
    sample_eta: float = Field(1.0, ge=0, le=1, description="stochasticity when samples > 1")
    x0_clip: float = Field(4.0, gt=0, description="|x̂_0| bound in diffusion units (2x − 1)")

    @model_validator(mode="after")
    def _check_steps(self) -> DDPMConfig:
        if self.steps > self.num_timesteps:
            raise ValueError(
                f"steps must not exceed num_timesteps, got {self.steps} > {self.num_timesteps}"
            )
        return self


# ---------------------------------------------------------------------- models


def _check_pair(degraded: Tensor, target: Tensor, multiple: int) -> None:
    if degraded.ndim != 4 or degraded.shape[1] != 1 or degraded.shape != target.shape:
        raise ValueError(
            "degraded and target must share one shape (B, 1, H, W), got "
            f"{tuple(degraded.shape)} and {tuple(target.shape)}"
        )
    h, w = degraded.shape[-2:]
    if h % multiple or w % multiple:
        raise ValueError(f"patch size must be a multiple of {multiple}, got {h}×{w}")


class CARE(nn.Module):
    """Residual U-Net regression ``x̂ = y + UNet(y)`` in normalised pixels, L1 loss (CSBDeep).

    The U-Net's output layer starts at zero, so the untrained model is the identity.
    """

    def __init__(self, config: CAREConfig) -> None:
        super().__init__()
        self.config = config
        self.unet = UNet(1, 1, config.channels, config.channel_mults)

    @property
    def multiple(self) -> int:
        """Frames are padded to a multiple of this."""
        return self.unet.multiple

    def forward(self, y: Tensor) -> Tensor:
        """``(B, 1, H, W)`` normalised degraded → restored, same shape and units."""
        return y + self.unet(y)

    def losses(
        self, degraded: Tensor, target: Tensor, *, step: int, total_steps: int
    ) -> dict[str, Tensor]:
        """``{"loss": mean |x̂ − target|}`` on ``(B, 1, H, W)`` normalised patches."""
        _check_pair(degraded, target, self.multiple)
        return {"loss": (self(degraded) - target).abs().mean()}

    @torch.inference_mode()
    def restore_normalised(self, y_norm: Tensor) -> Tensor:
        """``(B, 1, H, W)`` normalised, ``H``, ``W`` multiples of :attr:`multiple` → same."""
        return self(y_norm)

    def export(self, stem: Path, provenance: dict[str, object] | None = None) -> Path:
        """Write ``stem.safetensors`` + ``stem.json`` (see :meth:`CARERestorer.save`)."""
        device = str(next(self.parameters()).device)
        return CARERestorer(self, device=device, provenance=provenance).save(stem)


def cosine_alphas_cumprod(num_timesteps: int, s: float) -> Tensor:
    """``ᾱ_t`` for ``t = 0 … T`` (float64; ``ᾱ_0 = 1``), cosine schedule (Nichol & Dhariwal).

    ``ᾱ_t = f(t) / f(0)`` with ``f(t) = cos²(((t/T + s) / (1 + s)) π/2)``; each
    ``β_t = 1 − ᾱ_t / ᾱ_{t−1}`` is clipped at 0.999 as in the paper's code (otherwise
    ``ᾱ_T = 0``), and ``ᾱ`` is rebuilt from the clipped betas.
    """
    t = torch.arange(num_timesteps + 1, dtype=torch.float64) / num_timesteps
    f = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2
    alphabar = f / f[0]
    betas = (1 - alphabar[1:] / alphabar[:-1]).clamp(max=0.999)
    return torch.cat((torch.ones(1, dtype=torch.float64), torch.cumprod(1 - betas, 0)))


class ConditionalDDPM(nn.Module):
    """Conditional DDPM at full resolution: ``ε_θ([x_t, y], t)``, cosine schedule, DDIM.

    The diffusion runs on ``2x − 1`` of the normalised frames (the paper's [−1, 1] data
    range, so its schedule means the same signal-to-noise ratios here); ``y`` is mapped alike.
    Buffer ``alphas_cumprod`` (float32, length ``T + 1``) is computed in float64.
    """

    alphas_cumprod: Tensor

    def __init__(self, config: DDPMConfig) -> None:
        super().__init__()
        self.config = config
        self.unet = UNet(2, 1, config.channels, config.channel_mults, time_embedding=True)
        alphabar = cosine_alphas_cumprod(config.num_timesteps, config.schedule_s)
        self.register_buffer("alphas_cumprod", alphabar.to(torch.float32))

    @property
    def multiple(self) -> int:
        """Frames are padded to a multiple of this."""
        return self.unet.multiple

    def eps_model(self, x_t: Tensor, y: Tensor, t: Tensor) -> Tensor:
        """``ε_θ``: ``x_t``, ``y`` ``(B, 1, H, W)`` diffusion units, ``t`` ``(B,)`` int64."""
        return self.unet(torch.cat((x_t, y), dim=1), t)

    def q_sample(self, x0: Tensor, t: Tensor, noise: Tensor) -> Tensor:
        """``x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε`` (DDPM eq. 4)."""
        ab = self.alphas_cumprod[t].to(x0.dtype).reshape(-1, 1, 1, 1)
        return ab.sqrt() * x0 + (1 - ab).sqrt() * noise

    def losses(
        self, degraded: Tensor, target: Tensor, *, step: int, total_steps: int
    ) -> dict[str, Tensor]:
        """``{"loss": ‖ε_θ([x_t, y], t) − ε‖²}`` with ``t ~ U{1 … T}`` (DDPM eq. 14)."""
        _check_pair(degraded, target, self.multiple)
        x0, y = 2 * target - 1, 2 * degraded - 1
        t = torch.randint(1, self.config.num_timesteps + 1, (x0.shape[0],), device=x0.device)
        noise = torch.randn_like(x0)
        return {"loss": F.mse_loss(self.eps_model(self.q_sample(x0, t, noise), y, t), noise)}

    def timesteps(self, steps: int) -> list[int]:
        """The DDIM grid: ``steps + 1`` evenly spaced integers from ``T`` down to 0."""
        if isinstance(steps, bool) or not isinstance(steps, int):
            raise ValueError(f"steps must be an integer, got {steps!r}")
        if not 1 <= steps <= self.config.num_timesteps:
            raise ValueError(f"steps must lie in [1, {self.config.num_timesteps}], got {steps}")
        grid = torch.linspace(self.config.num_timesteps, 0, steps + 1, dtype=torch.float64)
        return [int(t) for t in grid.round()]

    @torch.inference_mode()
    def restore_normalised(
        self,
        y_norm: Tensor,
        steps: int | None = None,
        eta: float | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """DDIM (Song et al. 2021, eq. 12) from ``x_T ~ N(0, I)``, one network call per step.

        Each hop ``t → s``: ``x̂_0 = (x_t − √(1−ᾱ_t) ε_θ) / √ᾱ_t`` clamped to ±``x0_clip``,
        ``ε̂`` recomputed from the clamped ``x̂_0``, then
        ``x_s = √ᾱ_s x̂_0 + √(1 − ᾱ_s − σ²) ε̂ + σ z`` with
        ``σ = η √((1 − ᾱ_s)/(1 − ᾱ_t)) √(1 − ᾱ_t/ᾱ_s)``; the last hop lands on ``x̂_0``.

        Parameters
        ----------
        y_norm
            ``(B, 1, H, W)`` float, normalised degraded frames, ``H``, ``W`` multiples of
            :attr:`multiple`.
        steps, eta
            DDIM steps and stochasticity; the config's defaults when None.
        generator
            Source of all sampling noise, on ``y_norm``'s device.

        Returns
        -------
        Tensor
            ``(B, 1, H, W)``, same dtype as ``y_norm``, normalised units.
        """
        steps = self.config.steps if steps is None else steps
        eta = self.config.eta if eta is None else eta
        clip = self.config.x0_clip
        y = 2 * y_norm - 1
        x = torch.randn(y.shape, generator=generator, device=y.device, dtype=y.dtype)
        alphabar = self.alphas_cumprod.double().cpu()
        for t, s in pairwise(self.timesteps(steps)):
            ab_t, ab_s = float(alphabar[t]), float(alphabar[s])
            t_batch = torch.full((y.shape[0],), t, device=y.device, dtype=torch.long)
            eps = self.eps_model(x, y, t_batch).to(x.dtype)
            x0 = ((x - math.sqrt(1 - ab_t) * eps) / math.sqrt(ab_t)).clamp(-clip, clip)
            eps = (x - math.sqrt(ab_t) * x0) / math.sqrt(1 - ab_t)
            sigma = eta * math.sqrt((1 - ab_s) / (1 - ab_t) * (1 - ab_t / ab_s))
            x = math.sqrt(ab_s) * x0 + math.sqrt(max(1 - ab_s - sigma**2, 0.0)) * eps
            if sigma > 0:
                x = x + sigma * torch.randn(
                    x.shape, generator=generator, device=x.device, dtype=x.dtype
                )
        return (x + 1) / 2

    def export(self, stem: Path, provenance: dict[str, object] | None = None) -> Path:
        """Write ``stem.safetensors`` + ``stem.json`` (see :meth:`DDPMRestorer.save`)."""
        device = str(next(self.parameters()).device)
        return DDPMRestorer(self, device=device, provenance=provenance).save(stem)


# ---------------------------------------------------------------------- restorers


class _BaselineRestorer(ABC):
    """Restorer plumbing shared by the baselines: per-frame percentile normalisation in and
    its inverse out (as :class:`live_restore.models.mscgm.MSCGMRestorer`), pad to the U-Net's
    multiple and crop, inference mode, CUDA with bf16 autocast when present, model files."""

    name: str
    format: ClassVar[str]
    kind: ClassVar[str]
    config_type: ClassVar[type[_BaselineConfig]]
    model_type: ClassVar[Callable[..., nn.Module]]
    stochastic: ClassVar[bool]
    """Whether ``samples > 1`` draws differ (else one pass, ``std`` None)."""

    def __init__(
        self,
        model: CARE | ConditionalDDPM,
        device: str | None = None,
        provenance: dict[str, object] | None = None,
        version: str | None = None,
    ) -> None:
        self.model, self.device = prepare_model(model, self.config_type, device, provenance)
        self.config = model.config
        self.version = version or "unsaved"

    def restore(
        self,
        batch: np.ndarray,
        *,
        samples: int = 1,
        seed: int | None = None,
        steps: int | None = None,
    ) -> RestoreResult:
        """Restore ``batch`` (N, Y, X) or (Y, X), any numeric dtype, in camera units.

        ``samples > 1`` returns the mean and standard deviation of that many restorations
        (stochastic models only); ``seed`` makes the result reproducible. Output float32
        (N, Y, X) in the input frames' camera units.
        """
        frames = check_batch(batch)
        if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
            raise ValueError(f"samples must be an integer >= 1, got {samples!r}")
        self._check_steps(steps)
        generator = torch.Generator(self.device)
        if seed is None:
            generator.seed()
        else:
            generator.manual_seed(int(seed))
        draws_per_frame = samples if self.stochastic else 1
        mean = np.empty_like(frames)
        std = np.empty_like(frames) if draws_per_frame > 1 else None
        for n, frame in enumerate(frames):
            norm, lo, scale = normalise_frame(frame, self.config.pmin, self.config.pmax)
            x = torch.from_numpy(np.ascontiguousarray(norm))[None, None].to(self.device)
            # At least two multiples per side: smaller inner maps leave GroupNorm nothing.
            multiple = self.model.multiple
            x, pad = pad_to_multiple(x, multiple, min_size=2 * multiple)
            draws = []
            for _ in range(draws_per_frame):
                with torch.autocast("cuda", torch.bfloat16, enabled=self.device.type == "cuda"):
                    y = self._draw(x, steps, samples, generator)
                draws.append(crop(y.float(), pad)[0, 0].cpu().numpy())
            stack = np.stack(draws)
            mean[n] = stack.mean(axis=0) * scale + lo
            if std is not None:
                std[n] = stack.std(axis=0) * scale
        return RestoreResult(mean=mean, std=std)

    @abstractmethod
    def _check_steps(self, steps: int | None) -> None:
        """Refuse a ``steps`` value this model cannot use."""

    @abstractmethod
    def _draw(
        self, x: Tensor, steps: int | None, samples: int, generator: torch.Generator
    ) -> Tensor:
        """One restoration of the padded normalised ``(1, 1, H, W)`` frame ``x``."""

    def _fields(self) -> dict[str, object]:
        return {
            "task": self.config.task,
            "normalisation": {
                "kind": "percentile",
                "pmin": self.config.pmin,
                "pmax": self.config.pmax,
                "inverse": "input",
            },
            "config": self.config.model_dump(mode="json"),
        }

    def save(self, stem: Path, half: bool = False) -> Path:
        """Write ``stem.safetensors`` (weights, float16 with ``half``) and ``stem.json``
        (format, config, normalisation, task, provenance, weights checksum); return the JSON
        path."""
        path, self.version = save_model_files(
            stem, _all_weights(self.model), self.format, FORMAT_VERSION, self._fields(), half
        )
        return path

    @classmethod
    def load(cls, path: Path | str, device: str | None = None) -> _BaselineRestorer:
        """Load ``NAME.json`` + ``NAME.safetensors`` (``path`` is either, or the stem).

        Raises ``ValueError`` naming the file and the problem for a missing, corrupt,
        mismatched or foreign file (:func:`load_model_files`). Never unpickles.
        """
        model, meta, checksum = load_model_files(
            path,
            cls.format,
            FORMAT_VERSION,
            cls.config_type,
            cls.kind,
            cls.model_type,
            _all_weights,
        )
        restorer = cls(model, device=device, version=checksum)
        restorer.name = str(meta.get("name", cls.name))
        return restorer


class CARERestorer(_BaselineRestorer):
    """:class:`live_restore.models.restorer.Restorer` over a :class:`CARE` model (deterministic:
    ``std`` is None whatever ``samples``; there are no sampling steps)."""

    name = "care"
    format = CARE_FORMAT
    kind = "CARE"
    config_type = CAREConfig
    model_type = CARE
    stochastic = False

    def _check_steps(self, steps: int | None) -> None:
        if steps is not None:
            raise ValueError(f"CARE is one network pass and takes no steps, got steps={steps!r}")

    def _draw(
        self, x: Tensor, steps: int | None, samples: int, generator: torch.Generator
    ) -> Tensor:
        return self.model.restore_normalised(x)


class DDPMRestorer(_BaselineRestorer):
    """:class:`live_restore.models.restorer.Restorer` over a :class:`ConditionalDDPM`.

    One sample: DDIM with ``eta`` (0: deterministic given the seed). ``samples = K``: K draws
    with ``sample_eta`` (1), mean and standard deviation (DDPM-avg, notes §2).
    """

    name = "ddpm"
    format = DDPM_FORMAT
    kind = "DDPM"
    config_type = DDPMConfig
    model_type = ConditionalDDPM
    stochastic = True

    def _check_steps(self, steps: int | None) -> None:
        if steps is not None:
            self.model.timesteps(steps)

    def _draw(
        self, x: Tensor, steps: int | None, samples: int, generator: torch.Generator
    ) -> Tensor:
        eta = self.config.eta if samples == 1 else self.config.sample_eta
        return self.model.restore_normalised(x, steps, eta, generator)

    def _fields(self) -> dict[str, object]:
        return {"steps": self.config.steps} | super()._fields()
