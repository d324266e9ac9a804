"""What every restorer over a trained network shares: device placement, the one inference
layer, and its model files (``NAME.safetensors`` + ``NAME.json``).

A subclass names its file format and model class and writes ``restore`` as a call to
:meth:`Inferer.restore` with its own draw.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import ClassVar, Self

from torch import Tensor, nn

from live_restore.models.calibration import Calibration
from live_restore.models.configs import ModelConfig
from live_restore.models.files import load_model_files, prepare_model, save_model_files
from live_restore.models.inference import DEFAULT_MAX_TILE_PIXELS, DEFAULT_OVERLAP_PX, Inferer
from live_restore.models.noise import NoiseModel

__all__ = ["TrainedRestorer"]

#: Every trained format is at version 1; a change that old files cannot meet bumps it.
FORMAT_VERSION = 1


class TrainedRestorer:
    """A :class:`live_restore.models.protocol.Restorer` over a trained ``nn.Module`` whose
    ``config`` is a :class:`~live_restore.models.configs.ModelConfig` and which has a
    ``multiple`` (frames are padded to it).

    Parameters
    ----------
    model
        A trained model (moved to ``device`` and put in eval mode here).
    device
        ``"cuda"`` when available and None, else ``"cpu"``; bf16 autocast on CUDA only.
    provenance
        Extra config fields (seed, preset, steps_trained) recorded by :meth:`save`.
    max_tile_pixels, overlap
        Tiling of large frames (:class:`~live_restore.models.inference.Inferer`).
    version
        The weights' checksum when loaded from files; ``"unsaved"`` otherwise.
    """

    name: str
    format: ClassVar[str]
    kind: ClassVar[str]
    """The model's name in error messages, e.g. ``"MSCGM"``."""
    config_type: ClassVar[type[ModelConfig]]
    model_type: ClassVar[Callable[..., nn.Module]]
    stochastic: ClassVar[bool] = True
    """Whether ``samples > 1`` draws differ (else one pass, ``std`` None)."""

    def __init__(
        self,
        model: nn.Module,
        device: str | None = None,
        provenance: dict[str, object] | None = None,
        max_tile_pixels: int = DEFAULT_MAX_TILE_PIXELS,
        overlap: int = DEFAULT_OVERLAP_PX,
        version: str | None = None,
    ) -> None:
        self.model, self.device = prepare_model(model, self.config_type, device, provenance)
        self.config = model.config
        self.inferer = Inferer(
            model.multiple,
            self.config.normalisation,
            self.device,
            max_tile_pixels,
            overlap,
            stochastic=self.stochastic,
        )
        self.version = version or "unsaved"
        self.noise: NoiseModel | None = None

    @property
    def takes_calibration(self) -> bool:
        """Whether the model reads a noise level that a detector calibration can supply."""
        return False

    def use_calibration(self, calibration: Calibration) -> None:
        """Take the frames' noise level from ``calibration`` instead of each frame.

        The version gains ``+cal-<digest>``, so every frame restored this way records the
        calibration it used. Raises ValueError for a model that reads no noise level.
        """
        if not self.takes_calibration:
            raise ValueError(
                f"{self.kind} model {self.name!r} reads no noise level: a calibration would "
                "change nothing"
            )
        self.noise = calibration.noise_model()
        self.version = f"{self.version}+cal-{calibration.digest()}"

    @staticmethod
    def _weights(model: nn.Module) -> dict[str, Tensor]:
        """The tensors a model file holds: every one in the state dict by default."""
        return dict(model.state_dict())

    def _fields(self) -> dict[str, object]:
        """What ``NAME.json`` says besides the file bookkeeping: the task, the model's own
        headline settings (:meth:`_summary`), the normalisation and the whole config."""
        return {
            "task": self.config.task,
            **self._summary(),
            "normalisation": self.config.normalisation.model_dump(mode="json"),
            "config": self.config.model_dump(mode="json"),
        }

    def _summary(self) -> dict[str, object]:
        """Settings worth reading at a glance in ``NAME.json`` (e.g. sampling steps)."""
        return {}

    def save(
        self, stem: Path, extra: Mapping[str, object] | None = None, half: bool = False
    ) -> Path:
        """Write ``stem.safetensors`` (weights, float16 with ``half``) and ``stem.json``
        (format, config, normalisation, task, provenance, weights checksum, plus ``extra``
        fields such as an adaptation record); return the JSON path."""
        path, self.version = save_model_files(
            stem,
            self._weights(self.model),
            self.format,
            FORMAT_VERSION,
            {**self._fields(), **(extra or {})},
            half=half,
        )
        return path

    @classmethod
    def load(cls, path: Path | str, device: str | None = None) -> Self:
        """Load ``NAME.json`` + ``NAME.safetensors`` (``path`` is either, or the stem).

        Raises ``ValueError`` naming the file and the problem for a missing, corrupt,
        mismatched or foreign file (:func:`~live_restore.models.files.load_model_files`).
        Never unpickles.
        """
        model, meta, checksum = load_model_files(
            path, cls.format, FORMAT_VERSION, cls.config_type, cls.kind, cls.model_type,
            cls._weights,
        )
        restorer = cls(model, device=device, version=checksum)
        restorer.name = str(meta.get("name", cls.name))
        return restorer
