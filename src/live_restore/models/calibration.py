"""Detector calibration from a burst of frames of a static scene (a photon-transfer curve).

One frame can only guess its noise from what looks flat; N frames of the same scene give every
pixel its own temporal mean and variance, so the line ``var = gain * mean + floor`` is measured
instead of inferred. Differences of successive frames carry no scene at all, which also gives
the noise's spatial correlation without any structure leaking in, and makes the variance
immune to slow drift (bleaching, focus, lamp warm-up). Dark frames (shutter closed) add the
offset and read noise, per pixel as sCMOS cameras need. The result is ``CAL.json`` (plus
``CAL.safetensors`` with the per-pixel maps when dark frames were given), which a restorer
uses in place of its per-frame estimate.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from safetensors.numpy import load_file, save_file

from live_restore.models.configs import validation_problems
from live_restore.models.noise import (
    NoiseModel,
    clipped_pixels,
    correlation_lags,
    correlation_window,
    quantisation_step,
)

logger = logging.getLogger(__name__)

FORMAT = "live_restore.calibration"
FORMAT_VERSION = 1
MIN_FRAMES = 4
_PTC_BINS = 32


class Calibration(BaseModel):
    """A detector's noise, fitted to a burst: ``var = gain * mean + floor`` in ADU.

    ``floor`` is ``read_noise**2 - gain * offset`` plus the quantisation variance
    ``quantisation_step**2 / 12``. ``offset_adu`` and ``read_noise_adu`` are only known when
    dark frames were given (a bright burst cannot tell offset from read noise); their
    per-pixel maps then sit in ``maps_file`` next to the JSON.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal["live_restore.calibration"] = FORMAT
    version: Literal[1] = FORMAT_VERSION
    gain: float = Field(gt=0, description="ADU per photoelectron (slope of the PTC)")
    floor: float = Field(description="variance at 0 ADU, ADU²")
    offset_adu: float | None = None
    read_noise_adu: float | None = Field(default=None, ge=0)
    quantisation_step: float = Field(default=0.0, ge=0, description="ADC step, ADU")
    correlation: list[list[float]] = Field(description="normalised noise autocorrelation")
    frames: int = Field(ge=MIN_FRAMES)
    dark_frames: int = Field(default=0, ge=0)
    shape: tuple[int, int]
    source: str = Field(description="where the burst came from (camera label or file)")
    maps_file: str | None = None
    maps_sha256: str | None = None

    @field_validator("correlation")
    @classmethod
    def _square_window(cls, window: list[list[float]]) -> list[list[float]]:
        size = len(window)
        if size % 2 == 0 or any(len(row) != size for row in window):
            raise ValueError(f"correlation must be an odd square window, got {window!r}")
        if abs(window[size // 2][size // 2] - 1.0) > 1e-9:
            raise ValueError(f"correlation's centre must be 1, got {window[size // 2][size // 2]}")
        return window

    def noise_model(self) -> NoiseModel:
        """The calibration as the noise model restorers take."""
        return NoiseModel(
            gain=self.gain,
            floor=self.floor,
            correlation=tuple(tuple(row) for row in self.correlation),
            quantisation_step=self.quantisation_step,
            source="calibration",
        )

    def digest(self) -> str:
        """Eight hex digits that name this calibration in model versions and stores."""
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()[:8]

    def summary(self) -> dict[str, object]:
        """What a store or a benchmark records of the calibration it used."""
        return {"digest": self.digest(), "source": self.source, "frames": self.frames,
                "gain": self.gain, "floor": self.floor}

    def save(self, path: str | Path, maps: dict[str, np.ndarray] | None = None) -> Path:
        """Write ``path`` (JSON) and, with ``maps``, ``path`` with suffix ``.safetensors``."""
        path = Path(path)
        calibration = self
        if maps:
            maps_path = path.with_suffix(".safetensors")
            save_file({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in maps.items()},
                      str(maps_path))
            digest = hashlib.sha256(maps_path.read_bytes()).hexdigest()
            calibration = self.model_copy(
                update={"maps_file": maps_path.name, "maps_sha256": digest}
            )
        path.write_text(calibration.model_dump_json(indent=1) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> Calibration:
        """Read and validate ``CAL.json``; unknown keys and other formats are refused with
        one ValueError line naming every problem."""
        path = Path(path)
        try:
            return cls.model_validate_json(path.read_text())
        except OSError as err:
            raise ValueError(f"cannot read calibration {path}: {err}") from err
        except ValidationError as err:
            problems = validation_problems(err)
            raise ValueError(f"calibration {path} is not valid: {problems}") from err

    def load_maps(self, path: str | Path) -> dict[str, np.ndarray]:
        """The per-pixel maps saved beside the JSON at ``path`` (checksum verified)."""
        if self.maps_file is None:
            raise ValueError(f"calibration {path} has no per-pixel maps (no dark frames)")
        maps_path = Path(path).parent / self.maps_file
        if hashlib.sha256(maps_path.read_bytes()).hexdigest() != self.maps_sha256:
            raise ValueError(f"{maps_path} does not match the checksum in {path}")
        return load_file(str(maps_path))


def calibrate_burst(
    frames: np.ndarray, dark: np.ndarray | None = None, source: str = "frames"
) -> tuple[Calibration, dict[str, np.ndarray]]:
    """Fit a :class:`Calibration` to ``(N, Y, X)`` frames of a static scene (camera units).

    Returns the calibration and its per-pixel maps (``offset``, ``read_variance`` from
    ``dark``, an ``(M, Y, X)`` burst with the shutter closed; empty without dark frames).
    Pixels clipped in any frame are left out of every fit.
    """
    stack = _check_burst(frames, "frames")
    valid = ~clipped_pixels(stack).any(axis=0)
    gain, floor = _fit_transfer_curve(stack[0::2][:, valid], stack[1::2][:, valid])
    offset = read_noise = None
    maps: dict[str, np.ndarray] = {}
    if dark is not None:
        dark_stack = _check_burst(dark, "dark frames")
        if dark_stack.shape[1:] != stack.shape[1:]:
            raise ValueError(
                f"dark frames are {dark_stack.shape[1:]}, the burst is {stack.shape[1:]}"
            )
        maps = {
            "offset": dark_stack.mean(axis=0),
            "read_variance": successive_difference_variance(dark_stack),
        }
        dark_valid = ~clipped_pixels(dark_stack).any(axis=0)
        if not dark_valid.any():
            raise ValueError("every pixel of the dark frames is clipped at 0 or full scale")
        offset = float(np.median(maps["offset"][dark_valid]))
        read_noise = float(np.sqrt(np.median(maps["read_variance"][dark_valid])))
    calibration = Calibration(
        gain=gain,
        floor=floor,
        offset_adu=offset,
        read_noise_adu=read_noise,
        quantisation_step=quantisation_step(stack),
        correlation=[list(row) for row in _difference_correlation(stack, valid)],
        frames=len(stack),
        dark_frames=0 if dark is None else len(dark),
        shape=(int(stack.shape[1]), int(stack.shape[2])),
        source=source,
    )
    logger.info("calibration from %d frames: gain %.4g, floor %.4g", len(stack), gain, floor)
    return calibration, maps


def successive_difference_variance(stack: np.ndarray) -> np.ndarray:
    """Per-pixel noise variance ``sum (x[t+1] - x[t])**2 / (2 (N - 1))`` of ``(N, Y, X)``.

    Unbiased for independent frames, and a slow change of the scene between frames adds only
    its squared step, where the plain temporal variance would add the whole drift.
    """
    return np.mean(np.diff(stack, axis=0) ** 2, axis=0) / 2.0


def _check_burst(frames: np.ndarray, what: str) -> np.ndarray:
    stack = np.asarray(frames)
    if stack.ndim != 3:
        raise ValueError(f"{what} must be a (N, Y, X) stack, got shape {stack.shape}")
    if len(stack) < MIN_FRAMES:
        raise ValueError(f"{what} need at least {MIN_FRAMES} frames, got {len(stack)}")
    if min(stack.shape[1:]) < 2 * 2 + 1:
        raise ValueError(f"{what} are too small to measure a correlation: {stack.shape[1:]}")
    if not np.all(np.isfinite(stack)):
        raise ValueError(f"{what} must not contain NaN or infinite values")
    return stack.astype(np.float64)


def _fit_transfer_curve(first: np.ndarray, second: np.ndarray) -> tuple[float, float]:
    """Weighted line ``var = gain * mean + floor`` through binned pixels of two half-bursts.

    Pixels are binned by their mean in one half and measured (mean and successive-difference
    variance) in the other, then the other way round. Binning on the same noisy means that
    are plotted would push each bin's mean outward from its pixels' true level and flatten
    the line; the other half's noise is independent of the binning. A bin's mean variance has
    a standard error ∝ its variance / sqrt(pixels), which sets the weights. A scene whose
    levels span less than two noise SDs has no slope to see and is refused.
    """
    if first.shape[1] < _PTC_BINS:
        raise ValueError(f"only {first.shape[1]} unclipped pixels; a calibration needs more")
    points = [_binned_transfer(a, b) for a, b in ((first, second), (second, first))]
    bin_mean, bin_var, counts = (np.concatenate(values) for values in zip(*points, strict=True))
    if len(bin_mean) < 2 or np.ptp(bin_mean) < 2.0 * np.sqrt(max(np.median(bin_var), 0.0)):
        raise ValueError(
            "the burst shows a single intensity level; calibrate on a scene with bright and "
            f"dark parts (mean range {float(bin_mean.min()):.4g}..{float(bin_mean.max()):.4g})"
        )
    weights = np.sqrt(counts) / np.maximum(bin_var, 1e-12)
    gain, floor = np.polyfit(bin_mean, bin_var, 1, w=weights)
    if gain <= 0:
        raise ValueError(
            f"the variance does not grow with the mean (slope {gain:.4g}); is the scene static "
            "and the camera's gain on?"
        )
    return float(gain), float(floor)


def _binned_transfer(
    binning: np.ndarray, measured: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per quantile bin of ``binning``'s pixel means: the mean and successive-difference
    variance of ``measured`` (both ``(N, P)``), and the bin's pixel count."""
    key = binning.mean(axis=0)
    edges = np.unique(np.quantile(key, np.linspace(0, 1, _PTC_BINS + 1)))
    if len(edges) < 2:
        return np.zeros(0), np.zeros(0), np.zeros(0)
    bins = np.clip(np.searchsorted(edges, key, side="right") - 1, 0, len(edges) - 2)
    counts = np.bincount(bins, minlength=len(edges) - 1)
    keep = counts >= 2
    mean = np.bincount(bins, measured.mean(axis=0))[keep] / counts[keep]
    variance = np.bincount(bins, successive_difference_variance(measured))[keep] / counts[keep]
    return mean, variance, counts[keep]


def _difference_correlation(stack: np.ndarray, valid: np.ndarray) -> tuple:
    """Spatial autocorrelation of successive-frame differences (scene-free noise) over the
    unclipped pixels, as the window of :func:`live_restore.models.noise.correlation_window`."""
    difference = np.diff(stack, axis=0) * valid
    difference -= difference.sum(axis=(1, 2), keepdims=True) / max(int(valid.sum()), 1)
    difference *= valid
    _, h, w = difference.shape
    sums = []
    for dy, dx in correlation_lags():
        a = difference[:, : h - dy, max(0, -dx) : w - max(0, dx)]
        b = difference[:, dy:, max(0, dx) : w - max(0, -dx)]
        pair_valid = valid[: h - dy, max(0, -dx) : w - max(0, dx)] & valid[
            dy:, max(0, dx) : w - max(0, -dx)
        ]
        sums.append(np.sum(a * b) / max(int(pair_valid.sum()), 1))
    sums = np.asarray(sums)
    return correlation_window(sums[1:] / sums[0])
