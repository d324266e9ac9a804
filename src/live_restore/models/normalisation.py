"""How frames enter and leave a model's units, and how training targets are put in them.

Every trained model (MSCGM, CARE, DDPM) sees the same per-frame percentile normalisation
(CARE's convention, inverted on the way out with the input frame's own percentiles, so a
restored frame comes back in the camera's units), and is trained on the same target matching:

- degraded ``y``: ``(y − p_lo) / (p_hi − p_lo)`` with its own ``pmin``/``pmax`` percentiles,
  no clipping;
- target ``x``: normalised by its own percentiles, then affinely matched to the degraded one,
  ``a x_n + b`` with ``(a, b)`` the least-squares fit of ``y_n ≈ a F(x_n) + b`` where ``F`` is
  the task's forward model (identity, or the confocal blur). Noise is zero-mean and independent
  of ``x``, so the fit is unbiased: the restored frame carries the degraded frame's background
  and flux, which is what a data-consistency check and the inverse normalisation need.
"""

from __future__ import annotations

from typing import Literal, Protocol

import numpy as np
import scipy.ndimage
from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "CONFOCAL_BLUR_SIGMA_PX",
    "ForwardModel",
    "Normalisation",
    "apply_forward_model",
    "match_target",
    "normalise_frame",
    "task_forward_model",
]

ForwardModel = Literal["identity", "confocal_blur"]

#: Default blur for ``confocal_blur``: the simulator's confocal PSF (FWHM ≈ 233 nm, σ ≈ 4.0 px
#: at 25 nm pixels) against its STED PSF (σ ≈ 0.7–1.4 px): √(4.0² − 1.1²) ≈ 3.8 px.
CONFOCAL_BLUR_SIGMA_PX = 3.8


def normalise_frame(frame: np.ndarray, pmin: float, pmax: float) -> tuple[np.ndarray, float, float]:
    """Map the ``pmin``/``pmax`` percentiles of a ``(Y, X)`` frame to 0/1, without clipping.

    Returns the float32 normalised frame, the offset ``lo`` and the ``scale`` such that
    ``frame = normalised * scale + lo`` (scale 1 for a flat frame).
    """
    lo, hi = np.percentile(frame, [pmin, pmax])
    scale = float(hi - lo) if hi > lo else 1.0
    return ((frame - lo) / scale).astype(np.float32), float(lo), scale


class Normalisation(BaseModel):
    """A model's input normalisation, as written into its ``NAME.json``.

    ``percentile``: the ``pmin``/``pmax`` percentiles of each input frame go to 0/1;
    ``inverse: input``: outputs are mapped back with that same frame's offset and scale.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["percentile"] = "percentile"
    pmin: float = Field(0.2, ge=0, lt=100, description="input percentile mapped to 0")
    pmax: float = Field(99.8, gt=0, le=100, description="input percentile mapped to 1")
    inverse: Literal["input"] = "input"

    @model_validator(mode="after")
    def _check(self) -> Normalisation:
        if self.pmin >= self.pmax:
            raise ValueError(f"pmin must be below pmax, got {self.pmin} and {self.pmax}")
        return self

    def normalise(self, frame: np.ndarray) -> tuple[np.ndarray, float, float]:
        """``(normalised, lo, scale)`` of a ``(Y, X)`` frame (:func:`normalise_frame`)."""
        return normalise_frame(frame, self.pmin, self.pmax)


def task_forward_model(task: str) -> dict[str, object]:
    """The forward-model config fields a task implies: confocal→STED is a deblurring task."""
    if task == "confocal2sted":
        return {"forward_model": "confocal_blur", "blur_sigma_px": CONFOCAL_BLUR_SIGMA_PX}
    return {}


def apply_forward_model(frame: np.ndarray, kind: str, sigma_px: float = 0.0) -> np.ndarray:
    """The task's forward model on a ``(Y, X)`` frame: identity or a Gaussian blur (reflect)."""
    if kind == "identity":
        return np.asarray(frame, dtype=np.float64)
    if kind == "confocal_blur":
        return scipy.ndimage.gaussian_filter(
            np.asarray(frame, np.float64), sigma_px, mode="reflect"
        )
    raise ValueError(f"unknown forward model {kind!r}; expected 'identity' or 'confocal_blur'")


class ForwardModelled(Protocol):
    """Any config naming a forward model (every model config does)."""

    @property
    def forward_model(self) -> str: ...

    @property
    def blur_sigma_px(self) -> float: ...


def match_target(
    degraded_n: np.ndarray, target_n: np.ndarray, config: ForwardModelled
) -> np.ndarray:
    """Affinely map a normalised target onto the normalised degraded frame's photometry.

    ``a target_n + b`` with the least-squares ``(a, b)`` of ``degraded_n ≈ a F(target_n) + b``;
    falls back to the identity when the fit is degenerate (flat target or ``a <= 0``).
    """
    forward = apply_forward_model(target_n, config.forward_model, config.blur_sigma_px).ravel()
    fc = forward - forward.mean()
    var = float(fc @ fc)
    a = float(fc @ (degraded_n.ravel() - degraded_n.mean())) / var if var > 0 else 0.0
    if not a > 0:
        return target_n.astype(np.float32)
    b = float(degraded_n.mean()) - a * float(forward.mean())
    return (a * target_n + b).astype(np.float32)
