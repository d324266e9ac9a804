"""The model registry: restorers by name, and the public names of the Restorer contract.

``get_restorer`` builds a built-in restorer (no weight file) or loads a model file; every
implementation is imported only when it is asked for, by module name, so listing models
imports neither torch nor scikit-image, and no restorer module imports this one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from live_restore.models.protocol import Restorer, RestoreResult, check_samples

if TYPE_CHECKING:
    from live_restore.models.calibration import Calibration

__all__ = [
    "AUTO",
    "MODELS_DIR",
    "USER_MODELS_DIR",
    "Averaged",
    "RestoreResult",
    "Restorer",
    "auto_model_name",
    "get_restorer",
    "list_models",
    "restorers_by_channel",
    "restores_stacks",
]

MODELS_DIR = Path(__file__).parents[1] / "weights"
USER_MODELS_DIR = Path.home() / ".live_restore" / "models"

# Restorers that need no weight file: name → (module, class), built with ``device=``.
_BUILTINS = {
    "classical": ("live_restore.models.classical", "ClassicalRestorer"),
}

# Model-file formats (the "format" field of NAME.json) → (module, class) whose ``load`` reads
# them.
_LOADERS = {
    "live_restore.mscgm": ("live_restore.models.mscgm", "MSCGMRestorer"),
    "live_restore.care": ("live_restore.models.care", "CARERestorer"),
    "live_restore.ddpm": ("live_restore.models.ddpm", "DDPMRestorer"),
    "live_restore.axial": ("live_restore.models.axial", "AxialRestorer"),
}
_STACK_FORMATS = {"live_restore.axial"}
"""Formats whose restorer takes whole z-stacks, not frames (see :func:`restores_stacks`)."""


class Averaged:
    """A restorer that returns the mean of ``samples`` draws per frame (and their spread).

    For the live pipeline and the dose sweep, which call ``restore(batch)``: MSCGM's
    draws differ by their Haar-grid offset and orientation, so their mean trades
    ``samples`` × the frame time for less grid error. Other attributes (``consistency``,
    ``config``) are the wrapped one's.
    """

    def __init__(self, restorer: Restorer, samples: int) -> None:
        self.restorer = restorer
        self.samples = check_samples(samples)
        self.name = restorer.name if samples == 1 else f"{restorer.name}_avg{samples}"
        self.version = restorer.version

    def restore(
        self, batch: np.ndarray, *, samples: int = 1, seed: int | None = None
    ) -> RestoreResult:
        return self.restorer.restore(batch, samples=self.samples * samples, seed=seed)

    def __getattr__(self, name: str) -> object:
        return getattr(self.__dict__["restorer"], name)


def _model_files(name: str) -> Path | None:
    for folder in (MODELS_DIR, USER_MODELS_DIR):
        if (folder / f"{name}.json").is_file():
            return folder / f"{name}.json"
    return None


def _model_format(cfg: Path) -> object:
    try:
        meta = json.loads(cfg.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return meta.get("format") if isinstance(meta, dict) else None


def list_models() -> list[dict[str, str]]:
    """Built-in restorers plus every ``NAME.json`` in the shipped and user model folders;
    ``restores`` says whether a model takes ``frames`` or whole z-``stacks``."""
    rows = [{"name": n, "kind": "builtin", "path": "", "restores": "frames"}
            for n in sorted(_BUILTINS)]
    for folder, kind in ((MODELS_DIR, "shipped"), (USER_MODELS_DIR, "user")):
        if folder.is_dir():
            for cfg in sorted(folder.glob("*.json")):
                fmt = _model_format(cfg)
                if fmt in _LOADERS:  # e.g. a CIN-GAN file is not a restorer
                    rows.append({"name": cfg.stem, "kind": kind, "path": str(cfg),
                                 "restores": "stacks" if fmt in _STACK_FORMATS else "frames"})
    return rows


def restores_stacks(restorer: object) -> bool:
    """Whether ``restorer`` takes whole z-stacks (an axial model) instead of frames."""
    return bool(getattr(restorer, "restores_stacks", False))


AUTO = "auto"
"""The model name that asks for :func:`auto_model_name` per channel (the CLI's default)."""


def auto_model_name(channel: str = "") -> str:
    """The shipped model ``--model auto`` gives a channel: ``sted_denoise`` for a channel whose
    name says STED, ``denoise`` for any other channel or a file, ``classical`` where that model
    is not installed. A model that changes modality (``confocal2sted``) is never chosen for the
    user: its output is not the frame's own modality, so it must be asked for by name."""
    name = "sted_denoise" if "sted" in channel.lower() else "denoise"
    return name if _model_files(name) is not None else "classical"


def restorers_by_channel(
    names: Mapping[str, str | None], *, device: str | None = None,
    calibration: Calibration | None = None, samples: int = 1,
) -> dict[str, Restorer | None]:
    """``channel -> model name`` as restorers: ``auto`` is :func:`auto_model_name` of the
    channel, None leaves the channel raw. One instance per model, shared by its channels; with
    ``samples`` > 1 each sampling model gives the mean of that many draws (a deterministic
    restorer's draws would all be the same)."""
    resolved = {c: auto_model_name(c) if name == AUTO else name for c, name in names.items()}
    built: dict[str, Restorer] = {
        name: get_restorer(name, device=device, calibration=calibration)
        for name in dict.fromkeys(resolved.values()) if name is not None}
    if samples > 1:
        built = {n: Averaged(r, samples) if getattr(r, "stochastic", False) else r
                 for n, r in built.items()}
    return {channel: None if name is None else built[name] for channel, name in resolved.items()}


def get_restorer(
    name: str, device: str | None = None, calibration: Calibration | None = None
) -> Restorer:
    """Build a restorer from a built-in name, a model name, or a path to ``NAME.json``;
    ``NAME_avgK`` (how :class:`Averaged` names itself, e.g. in a store's model record) gives
    the mean of K draws of NAME.

    With a detector ``calibration`` the restorer takes its noise from it instead of each frame
    (ValueError for a model that reads no noise level).
    """
    if name in _BUILTINS:
        module, cls = _BUILTINS[name]
        return getattr(import_module(module), cls)(device=device, calibration=calibration)
    averaged = re.fullmatch(r"(.+)_avg(\d+)", name)
    if averaged and _model_files(name) is None:  # the name Averaged(NAME, K) goes by
        return Averaged(get_restorer(averaged[1], device, calibration), int(averaged[2]))
    restorer = _load_model(name, device)
    if calibration is not None:
        use = getattr(restorer, "use_calibration", None)
        if use is None:
            raise ValueError(f"model {name!r} reads no noise level: a calibration would "
                             "change nothing")
        use(calibration)
    return restorer


def _load_model(name: str, device: str | None) -> Restorer:
    path = Path(name)
    cfg = path if path.suffix == ".json" and path.is_file() else _model_files(name)
    if cfg is None:
        known = ", ".join(row["name"] for row in list_models())
        raise ValueError(f"unknown model {name!r}; available: {known}")
    try:
        fmt = json.loads(cfg.read_text()).get("format")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError) as err:
        raise ValueError(f"model description {cfg} is not a valid JSON object: {err}") from err
    if fmt not in _LOADERS:
        raise ValueError(f"{cfg} has model format {fmt!r}; known formats: {sorted(_LOADERS)}")
    module, cls = _LOADERS[fmt]
    return getattr(import_module(module), cls).load(cfg, device=device)
