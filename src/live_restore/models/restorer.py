"""The Restorer protocol, input checks shared by every restorer, and the model registry.

Every restorer takes a float32 batch ``(N, Y, X)`` in camera units and returns frames in camera
units, so the pipeline, the CLI and the benchmarks never care which model runs.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

MODELS_DIR = Path(__file__).parents[1] / "weights"
USER_MODELS_DIR = Path.home() / ".live_restore" / "models"


@dataclass(frozen=True)
class RestoreResult:
    """``mean`` (N, Y, X) float32 in camera units; ``std`` the same shape when sampled > 1."""

    mean: np.ndarray
    std: np.ndarray | None = None


@runtime_checkable
class Restorer(Protocol):
    """What the acquisition worker, the CLI and the benchmarks call."""

    name: str
    version: str
    """A checksum of the weights/settings, recorded in the store for provenance."""

    def restore(
        self, batch: np.ndarray, *, samples: int = 1, seed: int | None = None
    ) -> RestoreResult:
        """Restore ``batch`` float32 (N, Y, X) in camera units."""
        ...


def check_batch(batch: np.ndarray) -> np.ndarray:
    """Return ``batch`` as float32 (N, Y, X), refusing what no restorer can use."""
    arr = np.asarray(batch)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise ValueError(f"expected frames of shape (N, Y, X) or (Y, X), got {arr.shape}")
    if arr.dtype.kind not in "uif":
        raise TypeError(f"expected a numeric image, got dtype {arr.dtype}")
    if 0 in arr.shape:
        raise ValueError(f"empty frame batch of shape {arr.shape}")
    arr = arr.astype(np.float32, copy=False)
    bad = ~np.isfinite(arr).reshape(len(arr), -1).all(axis=1)
    if bad.any():
        raise ValueError(f"frame(s) {np.flatnonzero(bad).tolist()} contain NaN or infinite values")
    return arr


class Averaged:
    """A restorer that returns the mean of ``samples`` draws per frame (and their spread).

    For the live pipeline and the dose sweep, which call ``restore(batch)``: MSCGM's
    draws differ by their Haar-grid offset and orientation, so their mean trades
    ``samples`` × the frame time for less grid error. Other attributes (``consistency``,
    ``config``) are the wrapped one's.
    """

    def __init__(self, restorer: Restorer, samples: int) -> None:
        if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
            raise ValueError(f"samples must be an integer >= 1, got {samples!r}")
        self.restorer = restorer
        self.samples = samples
        self.name = restorer.name if samples == 1 else f"{restorer.name}_avg{samples}"
        self.version = restorer.version

    def restore(
        self, batch: np.ndarray, *, samples: int = 1, seed: int | None = None
    ) -> RestoreResult:
        return self.restorer.restore(batch, samples=self.samples * samples, seed=seed)

    def __getattr__(self, name: str) -> object:
        return getattr(self.__dict__["restorer"], name)


def file_checksum(*paths: Path) -> str:
    """Short SHA-256 of one or more files: the model version recorded with each frame."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(Path(path).read_bytes())
    return digest.hexdigest()[:16]


def settings_checksum(settings: dict) -> str:
    """Short SHA-256 of a JSON-able settings dict, for restorers without weight files."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


_BUILTINS: dict[str, Callable[..., Restorer]] = {}

# Model-file formats (the "format" field of NAME.json) → the class that loads them; imported
# only when such a file is opened, so listing models never imports torch.
_LOADERS = {
    "live_restore.mscgm": ("live_restore.models.mscgm", "MSCGMRestorer"),
    "live_restore.care": ("live_restore.models.baselines", "CARERestorer"),
    "live_restore.ddpm": ("live_restore.models.baselines", "DDPMRestorer"),
}


def register_builtin(name: str, factory: Callable[..., Restorer]) -> None:
    """Make a restorer that needs no weight file available by name."""
    _BUILTINS[name] = factory


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
    """Built-in restorers plus every ``NAME.json`` in the shipped and user model folders."""
    rows = [{"name": n, "kind": "builtin", "path": ""} for n in sorted(_BUILTINS)]
    for folder, kind in ((MODELS_DIR, "shipped"), (USER_MODELS_DIR, "user")):
        if folder.is_dir():
            for cfg in sorted(folder.glob("*.json")):
                if _model_format(cfg) in _LOADERS:  # e.g. a CIN-GAN file is not a restorer
                    rows.append({"name": cfg.stem, "kind": kind, "path": str(cfg)})
    return rows


def get_restorer(name: str, device: str | None = None) -> Restorer:
    """Build a restorer from a built-in name, a model name, or a path to ``NAME.json``."""
    if name in _BUILTINS:
        return _BUILTINS[name](device=device)
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


def _classical(device: str | None = None) -> Restorer:
    """Imported on first use: ``live_restore.models.classical`` imports this module."""
    from live_restore.models.classical import ClassicalRestorer

    return ClassicalRestorer(device=device)


register_builtin("classical", _classical)
