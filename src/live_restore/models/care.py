"""CARE baseline: a residual U-Net regression in normalised pixels, ``x̂ = y + UNet(y)``,
trained with the mean absolute error (the CSBDeep recipe, Weigert et al. 2018).

Trained by :func:`live_restore.training.loop.train` on the same pairs as MSCGM (same
normalisation and target matching, :meth:`~live_restore.models.configs.ModelConfig.data_config`)
at the width of MSCGM's default bridge U-Net, but at full resolution. Model files have the
format ``live_restore.care``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from live_restore.models.configs import CAREConfig
from live_restore.models.networks import UNet
from live_restore.models.protocol import RestoreResult
from live_restore.models.trained import TrainedRestorer

__all__ = ["CARE", "FORMAT", "CARERestorer", "check_pair"]

FORMAT = "live_restore.care"


def check_pair(degraded: Tensor, target: Tensor, multiple: int) -> None:
    """Refuse a training pair that is not ``(B, 1, H, W)`` twice with ``H``, ``W`` multiples of
    ``multiple``."""
    if degraded.ndim != 4 or degraded.shape[1] != 1 or degraded.shape != target.shape:
        raise ValueError(
            "degraded and target must share one shape (B, 1, H, W), got "
            f"{tuple(degraded.shape)} and {tuple(target.shape)}"
        )
    h, w = degraded.shape[-2:]
    if h % multiple or w % multiple:
        raise ValueError(f"patch size must be a multiple of {multiple}, got {h}×{w}")


class CARE(nn.Module):
    """Residual U-Net regression ``x̂ = y + UNet(y)`` in normalised pixels, L1 loss.

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
        check_pair(degraded, target, self.multiple)
        return {"loss": (self(degraded) - target).abs().mean()}

    @torch.inference_mode()
    def restore_normalised(self, y_norm: Tensor) -> Tensor:
        """``(B, 1, H, W)`` normalised, ``H``, ``W`` multiples of :attr:`multiple` → same."""
        return self(y_norm)

    def export(self, stem: Path, provenance: dict[str, object] | None = None) -> Path:
        """Write ``stem.safetensors`` + ``stem.json`` (see :meth:`CARERestorer.save`)."""
        device = str(next(self.parameters()).device)
        return CARERestorer(self, device=device, provenance=provenance).save(stem)


class CARERestorer(TrainedRestorer):
    """:class:`live_restore.models.protocol.Restorer` over a :class:`CARE` model
    (constructor: :class:`~live_restore.models.trained.TrainedRestorer`). Deterministic:
    ``std`` is None whatever ``samples``, and there are no sampling steps."""

    name = "care"
    format = FORMAT
    kind = "CARE"
    config_type = CAREConfig
    model_type = CARE
    stochastic = False

    def restore(
        self,
        batch: np.ndarray,
        *,
        samples: int = 1,
        seed: int | None = None,
        steps: int | None = None,
    ) -> RestoreResult:
        """Restore ``batch`` (N, Y, X) or (Y, X), any numeric dtype, in camera units; output
        float32 (N, Y, X) in the input frames' camera units. ``steps`` must be None."""
        if steps is not None:
            raise ValueError(f"CARE is one network pass and takes no steps, got steps={steps!r}")

        def draw(y: Tensor, generator: torch.Generator, estimate: Tensor | None,
                 sigma: float | None) -> Tensor:
            return self.model.restore_normalised(y)

        return self.inferer.restore(batch, draw, samples=samples, seed=seed)
