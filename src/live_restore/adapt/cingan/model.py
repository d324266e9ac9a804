"""The CIN-GAN model, its configuration and its files (``NAME.safetensors`` + ``NAME.json``).

Frames enter in camera units and are normalised by their own percentiles (the restorer's
convention, :func:`live_restore.models.mscgm.normalise_frame`); every tensor here is in
those normalised units.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator
from torch import Tensor, nn

from live_restore import __version__
from live_restore.adapt.cingan.layers import CINGenerator, WGANCritic, out_of_focus
from live_restore.adapt.cingan.losses import (
    GP_WEIGHT,
    WAVELET_LEVELS,
    content_loss,
    gradient_penalty,
    standardise,
    style_loss,
)
from live_restore.metrics import psnr
from live_restore.models.files import load_model_files, save_model_files
from live_restore.models.normalisation import normalise_frame

__all__ = ["CINGAN", "FORMAT", "FORMAT_VERSION", "CINGANConfig", "divergence_psnr",
           "normalise_frames"]

FORMAT = "live_restore.cingan"
FORMAT_VERSION = 2  # 2: the out-of-focus head and its blurred input channels


class CINGANConfig(BaseModel):
    """Everything needed to rebuild a CIN-GAN; dumped into ``NAME.json``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    defects: tuple[str, ...] = Field(min_length=1, description="one CIN row per defect, in order")
    channels: int = Field(16, ge=1, description="generator width (twice this after the down)")
    n_res: int = Field(4, ge=0, description="residual blocks at half resolution")
    critic_channels: int = Field(16, ge=1)
    critic_layers: int = Field(3, ge=1, description="stride-2 critic layers")
    pmin: float = Field(0.2, ge=0, lt=100, description="frame percentile mapped to 0")
    pmax: float = Field(99.8, gt=0, le=100, description="frame percentile mapped to 1")
    adv_weight: float = Field(0.1, ge=0, description="Wasserstein term in the generator loss")
    content_weight: float = Field(1.0, ge=0)
    style_weight: float = Field(1.0, ge=0)
    gp_weight: float = Field(GP_WEIGHT, ge=0, description="gradient penalty λ (WGAN-GP: 10)")
    package_version: str = __version__

    @field_validator("defects")
    @classmethod
    def _unique(cls, defects: tuple[str, ...]) -> tuple[str, ...]:
        if any(not d for d in defects) or len(set(defects)) != len(defects):
            raise ValueError(f"defect names must be unique and non-empty, got {defects!r}")
        return defects


class CINGAN(nn.Module):
    """Learn a microscope defect from unpaired frames and synthesise it on clean frames.

    After Razdaibiedina et al.: one generator maps a clean frame to a degraded one; every
    normalisation layer is a *conditional* instance norm holding one ``(gamma, beta)`` row per
    defect type (per channel), and the physical heads hold a few numbers per defect
    (:mod:`live_restore.adapt.cingan.layers`); nothing else is defect specific. A new defect is
    learned by appending one row per table and training only those rows on a handful of the
    user's defective frames. A WGAN-GP critic with a projection-style defect embedding judges
    every defect.
    """

    def __init__(self, config: CINGANConfig) -> None:
        super().__init__()
        self.config = config
        n = len(config.defects)
        self.generator = CINGenerator(config.channels, config.n_res, n)
        self.critic = WGANCritic(config.critic_channels, config.critic_layers, n)

    @property
    def defects(self) -> list[str]:
        """Defect names, in CIN-row order."""
        return list(self.config.defects)

    @property
    def multiple(self) -> int:
        """Patches must be multiples of this (critic strides, Haar levels of the statistics)."""
        return max(2**self.config.critic_layers, 2**WAVELET_LEVELS)

    def defect_index(self, name: str) -> int:
        """Row of ``name``; ``ValueError`` listing the known defects otherwise."""
        if name not in self.config.defects:
            raise ValueError(f"unknown defect {name!r}; this CIN-GAN knows {self.defects}")
        return self.config.defects.index(name)

    def add_defect(self, name: str) -> list[nn.Parameter]:
        """Append one row for ``name`` to every table and freeze everything else.

        The shared generator weights and every other defect's rows get
        ``requires_grad = False``; the returned parameters (the new CIN and head rows) are
        the only generator parameters left trainable. The critic gets a new embedding row and
        stays fully trainable: it is never deployed, and fine-tuning all of it learns a new
        defect faster. Raises ``ValueError`` if ``name`` is empty or already known.
        """
        if not name or name in self.config.defects:
            raise ValueError(
                f"defect {name!r} already exists in this CIN-GAN (defects: {self.defects}); "
                "choose a new, non-empty name"
            )
        self.generator.requires_grad_(False)
        new = self.generator.add_row()
        for p in new:
            p.requires_grad_(True)
        self.critic.add_row()
        self.config = self.config.model_copy(update={"defects": (*self.config.defects, name)})
        return new

    def rows_for(self, defect: int, batch: int, device: torch.device) -> Tensor:
        """``(batch,)`` long indices of row ``defect``, the form every layer takes."""
        return torch.full((batch,), defect, dtype=torch.long, device=device)

    def synthesise(
        self, clean: Tensor, defect: str, generator: torch.Generator | None = None
    ) -> Tensor:
        """Degrade normalised clean frames with ``defect`` (one noisy draw) → ``(B, 1, H, W)``.

        ``clean`` is ``(B, 1, H, W)`` whole frames (their blurs are taken here) or
        ``(B, 1 + K, H, W)`` patches stacked with their own frames' blurs (:func:`out_of_focus`).
        """
        if clean.ndim == 4 and clean.shape[1] == 1:
            frames = clean[:, 0].detach().cpu().numpy()
            clean = torch.from_numpy(np.stack([out_of_focus(f) for f in frames])).to(clean)
        idx = self.rows_for(self.defect_index(defect), clean.shape[0], clean.device)
        sample, _ = self.generator(clean, idx, generator)
        return sample

    def generator_losses(self, clean: Tensor, defective: Tensor, defect: int) -> dict[str, Tensor]:
        """Generator side on unpaired batches of one defect (row ``defect``): ``clean``
        ``(B, 1 + K, H, W)`` stacks (:func:`out_of_focus`), ``defective`` ``(B, 1, H, W)``.

        ``loss = adv_weight · (−D(G(y))) + content_weight · content + style_weight · style``;
        the critic's own weights are left out of the graph.
        """
        cfg = self.config
        idx = self.rows_for(defect, clean.shape[0], clean.device)
        fake, mu = self.generator(clean, idx)
        fake_s = standardise(fake)
        content = content_loss(mu, clean[:, :1])
        style = style_loss(fake_s, standardise(defective))
        self.critic.requires_grad_(False)
        adv = -self.critic(fake_s, idx).mean()
        self.critic.requires_grad_(True)
        loss = cfg.adv_weight * adv + cfg.content_weight * content + cfg.style_weight * style
        return {"loss": loss, "adv": adv, "content": content, "style": style}

    def critic_losses(self, clean: Tensor, defective: Tensor, defect: int) -> dict[str, Tensor]:
        """Critic side: ``D(fake) − D(real) + λ · GP``; fakes drawn without generator grads
        (inputs as for :meth:`generator_losses`)."""
        idx = self.rows_for(defect, clean.shape[0], clean.device)
        with torch.no_grad():
            fake, _ = self.generator(clean, idx)
        fake_s, real_s = standardise(fake), standardise(defective)
        wasserstein = self.critic(real_s, idx).mean() - self.critic(fake_s, idx).mean()
        gp = gradient_penalty(self.critic, real_s, fake_s, idx, self.config.gp_weight)
        return {"loss": -wasserstein + gp, "wasserstein": wasserstein, "gp": gp}

    # ------------------------------------------------------------------ files

    def _weights(self) -> dict[str, Tensor]:
        return dict(self.state_dict())

    def save(self, stem: Path, provenance: dict[str, object] | None = None) -> Path:
        """Write ``stem.safetensors`` + ``stem.json`` (generator and critic: the critic is kept
        so a later defect starts from a trained one); return the JSON path."""
        path, _ = save_model_files(
            Path(stem),
            self._weights(),
            FORMAT,
            FORMAT_VERSION,
            {
                "defects": self.defects,
                "normalisation": {"kind": "percentile", "pmin": self.config.pmin,
                                  "pmax": self.config.pmax},
                "config": self.config.model_dump(mode="json"),
                "provenance": provenance or {},
            },
        )
        return path

    @classmethod
    def load(cls, path: Path | str) -> CINGAN:
        """Load ``NAME.json`` + ``NAME.safetensors``; ``ValueError`` for a bad or foreign file."""
        model, _, _ = load_model_files(
            path, FORMAT, FORMAT_VERSION, CINGANConfig, "CIN-GAN", cls, cls._weights
        )
        return model


def normalise_frames(frames: Sequence[np.ndarray], pmin: float, pmax: float) -> list[np.ndarray]:
    """Each 2-D frame by its own percentiles (float32), as the restorer normalises inputs."""
    return [normalise_frame(np.asarray(f, np.float64), pmin, pmax)[0] for f in frames]


@torch.no_grad()
def divergence_psnr(
    model: CINGAN, defect: str, clean: Sequence[np.ndarray], seed: int = 0
) -> float:
    """Mean PSNR(clean, G(clean)) over normalised 2-D frames (``metrics.psnr``: affine fit).

    The acceptance check of the CIN-GAN method: as the defect is learned it should approach
    PSNR(clean, real defect). Frames need even sides.
    """
    generator = torch.Generator().manual_seed(seed)
    scores = []
    for frame in clean:
        x = torch.from_numpy(np.ascontiguousarray(frame, np.float32))[None, None]
        y = model.synthesise(x, defect, generator)[0, 0].numpy()
        scores.append(psnr(y, frame))
    return float(np.mean(scores))
