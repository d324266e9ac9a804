"""The Restorer protocol and what every restorer shares: its result, its input check, and the
checksums that version it.

Every restorer takes a batch ``(N, Y, X)`` in camera units and returns frames in camera units,
so the pipeline, the CLI and the benchmarks never care which model runs. This module imports
nothing of ours, so restorers and the registry (:mod:`live_restore.models.restorer`) can both
import it without importing each other.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

__all__ = [
    "RestoreResult",
    "Restorer",
    "check_batch",
    "check_samples",
    "file_checksum",
    "settings_checksum",
]


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


def check_samples(samples: int) -> int:
    """Return ``samples`` if it is an integer >= 1 (not a bool), else raise ``ValueError``."""
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise ValueError(f"samples must be an integer >= 1, got {samples!r}")
    return samples


def file_checksum(*paths: Path) -> str:
    """Short SHA-256 of one or more files: the model version recorded with each frame."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(Path(path).read_bytes())
    return digest.hexdigest()[:16]


def settings_checksum(settings: dict) -> str:
    """Short SHA-256 of a JSON-able settings dict, for restorers without weight files."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
