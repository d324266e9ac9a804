"""The configs of the trained models: everything needed to rebuild one, dumped into
``NAME.json``.

Every config embeds the same :class:`~live_restore.models.normalisation.Normalisation` and
names its task's forward model (:class:`ModelConfig`), so MSCGM and the baselines it is
judged against see identical data and none of them depends on another's code.
"""

from __future__ import annotations

from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from live_restore import __version__
from live_restore.models.normalisation import ForwardModel, Normalisation, task_forward_model

__all__ = ["AxialConfig", "CAREConfig", "DDPMConfig", "MSCGMConfig", "ModelConfig",
           "validation_problems"]

#: U-Net width and resolutions of MSCGM's bridge by default; the baselines use the same at
#: full resolution, so the comparison is at equal width.
UNET_CHANNELS = 16
UNET_MULTS = (1, 2, 4, 8)
#: Upper bounds a model file must keep to (a file is untrusted input): a width or a schedule
#: beyond them would allocate gigabytes before any weight is checked.
MAX_CHANNELS = 512
MAX_MULTIPLIER = 16
MAX_UNET_LEVELS = 6
MAX_TIMESTEPS = 100_000


def validation_problems(error: ValidationError) -> str:
    """Every problem of a pydantic ``error`` on one line: ``field: message; …``."""
    return "; ".join(
        f"{'.'.join(map(str, e['loc'])) or 'file'}: {e['msg']}" for e in error.errors()
    )


def _check_mults(name: str, mults: tuple[int, ...]) -> None:
    """U-Net level multipliers: 1 to MAX_UNET_LEVELS levels of 1 to MAX_MULTIPLIER."""
    if not mults or min(mults) < 1 or max(mults) > MAX_MULTIPLIER:
        raise ValueError(f"{name} must be integers from 1 to {MAX_MULTIPLIER}, got {mults}")
    if len(mults) > MAX_UNET_LEVELS:
        raise ValueError(f"{name} may have at most {MAX_UNET_LEVELS} levels, got {len(mults)}")



class ModelConfig(BaseModel):
    """What every trained model's config holds: its task, the data normalisation, the task's
    forward model (for target matching and data consistency), and provenance.

    On its own it describes the training data (:meth:`data_config`). Files written before the
    normalisation was an object hold ``pmin``/``pmax`` at the top level; they still load.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    task: str = Field(min_length=1, description="training task, e.g. 'sted_denoise'")
    normalisation: Normalisation = Normalisation()
    forward_model: ForwardModel = "identity"
    blur_sigma_px: float = Field(0.0, ge=0, description="Gaussian σ of confocal_blur, pixels")
    seed: int | None = None
    preset: str | None = None
    steps_trained: int = Field(0, ge=0)
    package_version: str = __version__

    @model_validator(mode="before")
    @classmethod
    def _nest_flat_percentiles(cls, data: Any) -> Any:
        if isinstance(data, dict) and ("pmin" in data or "pmax" in data):
            if "normalisation" in data:
                raise ValueError("give either normalisation or pmin/pmax, not both")
            data = dict(data)
            data["normalisation"] = {k: data.pop(k) for k in ("pmin", "pmax") if k in data}
        return data

    @model_validator(mode="after")
    def _check_forward_model(self) -> ModelConfig:
        if self.forward_model == "confocal_blur" and self.blur_sigma_px <= 0:
            raise ValueError(
                f"forward_model 'confocal_blur' needs blur_sigma_px > 0, got {self.blur_sigma_px}"
            )
        return self

    @property
    def pmin(self) -> float:
        """Input percentile mapped to 0 (:attr:`normalisation`)."""
        return self.normalisation.pmin

    @property
    def pmax(self) -> float:
        """Input percentile mapped to 1 (:attr:`normalisation`)."""
        return self.normalisation.pmax

    def data_config(self) -> ModelConfig:
        """The data settings alone (task, normalisation, forward model), for
        ``PairDataset.for_model``: every method trained on a task sees the same pairs."""
        return ModelConfig(
            task=self.task,
            normalisation=self.normalisation,
            forward_model=self.forward_model,
            blur_sigma_px=self.blur_sigma_px,
        )


class MSCGMConfig(ModelConfig):
    """Everything needed to rebuild an MSCGM model (:mod:`live_restore.models.mscgm`)."""

    levels: int = Field(2, ge=1, le=4, description="Haar levels J; the bridge runs at 1/2^J")
    num_timesteps: int = Field(
        1000, ge=1, le=MAX_TIMESTEPS, description="bridge T (training cost independent)"
    )
    bridge_s: float = Field(0.1, gt=0, description="bridge variance scale (for_task)")
    bridge_objective: Literal["grad", "ysubx"] = Field(
        "grad", description="what the bridge network predicts: x_t − x_0 or y − x_0 (BBDM names)"
    )
    first_hop_fraction: float = Field(
        0.0, ge=0, le=1, description="share of bridge training draws at t = T (the first hop)"
    )
    steps: int = Field(2, ge=1, le=MAX_TIMESTEPS, description="default sampling hops")
    eta: float = Field(0.0, ge=0, le=1, description="stochasticity for a single sample")
    sample_eta: float = Field(
        0.0, ge=0, le=1, description="stochasticity when samples > 1 (draws differ by offset, turn)"
    )
    detail_passes: int = Field(
        1, ge=1, description="head passes per draw, each on another Haar grid offset, averaged"
    )
    bridge_channels: int = Field(
        UNET_CHANNELS, ge=1, le=MAX_CHANNELS, description="bridge U-Net width"
    )
    bridge_mults: tuple[int, ...] = UNET_MULTS
    head_channels: int = Field(
        16, ge=1, le=MAX_CHANNELS, description="width of every head but the finest"
    )
    finest_head_channels: int = Field(
        8, ge=1, le=MAX_CHANNELS, description="the finest head dominates time"
    )
    head_mults: tuple[int, ...] = Field(
        (1, 2), description="U-Net resolutions of every head but the finest (which keeps 1, 2)"
    )
    detail_skip: bool = Field(False, description="heads gate the degraded details through")
    noise_scaled: bool = Field(
        False, description="bridge and head corrections in units of the frame's noise level"
    )
    noise_weight: float = Field(
        1.0, ge=0, le=1, description="noise-scaled: frames weigh 1/σ^p in the heads' L1"
    )
    noise_unit_details: bool = Field(
        False, description="noise-scaled heads see the degraded details divided by σ"
    )
    smooth_prior: bool = Field(
        False, description="heads start from the details of the bilinearly upsampled LL"
    )
    disc_channels: int = Field(16, ge=1, le=MAX_CHANNELS)
    ssim_weight: float = Field(0.2, ge=0, description="weight of 1 − SSIM per head")
    adv_weight: float = Field(0.01, ge=0, description="adversarial weight after warm-up")
    adv_start: float = Field(0.3, ge=0, le=1, description="fraction of steps before the GAN")
    adv_ramp: float = Field(0.2, ge=0, le=1, description="fraction over which α ramps up")
    robust_start: float = Field(0.8, ge=0, le=1, description="heads see bridge LL after this")
    ll_noise: float = Field(0.02, ge=0, description="max σ of conditioning-LL noise (stage 1)")
    ll_blur_fraction: float = Field(
        0.5, ge=0, le=1, description="share of stage-1 conditioning LLs blurred by [1 2 1]²"
    )

    @model_validator(mode="after")
    def _check(self) -> MSCGMConfig:
        if self.noise_scaled and not self.detail_skip:
            raise ValueError("noise_scaled needs detail_skip: it scales the heads' corrections")
        if self.bridge_objective == "ysubx" and self.noise_scaled:
            raise ValueError(
                "bridge_objective 'ysubx' needs noise_scaled off: that bridge ends at u_T = 0, "
                "not at the degraded LL the denoiser is conditioned on"
            )
        if self.noise_unit_details and not self.noise_scaled:
            raise ValueError("noise_unit_details needs noise_scaled: it divides details by σ")
        if self.detail_passes > 4**self.levels:
            raise ValueError(
                f"detail_passes must not exceed the {4**self.levels} Haar grid offsets of "
                f"{self.levels} level(s), got {self.detail_passes}"
            )
        for name in ("bridge_mults", "head_mults"):
            _check_mults(name, getattr(self, name))
        return self

    @classmethod
    def for_task(cls, task: str, **kwargs: object) -> MSCGMConfig:
        """Config with the task's defaults filled in; explicit ``kwargs`` win.

        confocal→STED is deblurring: the LL must move far more than the noise. One Haar level,
        so the bridge and a single head do not compound each other's errors; the confocal-blur
        forward model; a wider, shallower bridge that predicts ``y − x_0`` and trains half its
        draws on the first hop (the one that sees ``y`` alone), sampled in one hop; heads
        conditioned on the un-augmented LL (augmented, they learn to ignore it); a plain
        8-wide finest head without SSIM (blurred details are not noisy signal to gate
        through); four detail passes, one per Haar grid offset, to average out the grid's
        errors while the bridge runs once.

        ``axial`` (restoring a plane linearly interpolated from the acquired planes around it)
        takes the same settings: its structures must move as far, and the interpolated
        details are not the plane's own to gate through.

        Denoising: heads that gate the degraded details through, a 16-wide finest head, two
        bridge hops. ``denoise`` spans three decades of photons, so it is noise-scaled (bridge
        and heads work in units of each frame's own noise, :meth:`MSCGM._bridge_loss`) with
        wider heads that start from the smooth details of the restored LL. ``sted_denoise``
        is photon-starved throughout: unscaled, with a bridge variance scale of 0.001, so the
        bridge noise does not swamp the small LL change it must make.
        """
        if task in ("confocal2sted", "axial"):  # axial: a filled plane is far from its truth
            defaults: dict[str, object] = {
                **task_forward_model(task),
                "bridge_channels": 32,
                "bridge_mults": (1, 2, 4),
                "bridge_objective": "ysubx",
                "first_hop_fraction": 0.5,
                "levels": 1,
                "finest_head_channels": 8,
                "ssim_weight": 0.0,
                "ll_noise": 0.0,
                "steps": 1,
                "ll_blur_fraction": 0.0,
                "detail_passes": 4,
            }
        else:
            defaults = {"detail_skip": True, "finest_head_channels": 16}
            if task == "denoise":
                defaults |= {
                    "noise_scaled": True,
                    "bridge_s": 1.0,
                    "noise_unit_details": True,
                    "smooth_prior": True,
                    "head_channels": 32,
                    "finest_head_channels": 24,
                }
            else:
                defaults["bridge_s"] = 0.001
        return cls(task=task, **(defaults | kwargs))


class _BaselineConfig(ModelConfig):
    """A full-resolution U-Net as wide as MSCGM's default bridge."""

    channels: int = Field(UNET_CHANNELS, ge=1, le=MAX_CHANNELS, description="U-Net width")
    channel_mults: tuple[int, ...] = UNET_MULTS

    @model_validator(mode="after")
    def _check_mults(self) -> _BaselineConfig:
        _check_mults("channel_mults", self.channel_mults)
        return self

    @classmethod
    def for_task(cls, task: str, **kwargs: object) -> Self:
        """Config with the task's forward model filled in; explicit ``kwargs`` win."""
        return cls.model_validate({"task": task} | task_forward_model(task) | kwargs)


class CAREConfig(_BaselineConfig):
    """Everything needed to rebuild a CARE model (:mod:`live_restore.models.care`)."""

    kind: Literal["care"] = "care"


MAX_NEIGHBOURS = 4
MAX_SPARSITY = 8


class AxialConfig(_BaselineConfig):
    """Everything needed to rebuild an axial model (:mod:`live_restore.models.axial`): a U-Net
    over the ``neighbours`` acquired planes on each side of a plane and the plane's position
    between them, trained on stacks acquired every k-th plane for each k in ``sparsity``."""

    kind: Literal["axial"] = "axial"
    neighbours: int = Field(2, ge=1, le=MAX_NEIGHBOURS,
                            description="acquired planes read on each side of a plane")
    sparsity: tuple[int, ...] = Field((2, 4), min_length=1,
                                      description="every k-th plane acquired, k trained on")

    @model_validator(mode="after")
    def _check_sparsity(self) -> AxialConfig:
        if any(not 1 <= k <= MAX_SPARSITY for k in self.sparsity):
            raise ValueError(f"sparsity must lie in 1..{MAX_SPARSITY}, got {self.sparsity}")
        return self


class DDPMConfig(_BaselineConfig):
    """Everything needed to rebuild a conditional DDPM (:mod:`live_restore.models.ddpm`)."""

    kind: Literal["ddpm"] = "ddpm"
    num_timesteps: int = Field(
        200, ge=1, le=MAX_TIMESTEPS, description="T, training and test (paper: 200)"
    )
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
