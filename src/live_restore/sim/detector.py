"""Detectors: expected photons → digital numbers, with shot, read and pattern noise.

The generic model is y = offset + gain·Poisson(λ) + N(0, read_noise²), rounded and clipped to
the bit depth when one is given. Camera-specific defects (per-pixel gain, column offsets,
row noise, scanner stripes, hot pixels) are separate functions so that each dataset task can
switch on exactly the defect it is about.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import scipy.ndimage
import scipy.signal


@dataclass(frozen=True)
class Detector:
    """Linear detector. ``gain`` in ADU per photon, ``offset`` and ``read_noise`` in ADU."""

    gain: float = 1.0
    offset: float = 0.0
    read_noise: float = 0.0
    bit_depth: int | None = None

    def __post_init__(self) -> None:
        if self.gain <= 0:
            raise ValueError(f"detector gain must be > 0, got {self.gain!r}")
        if self.read_noise < 0:
            raise ValueError(f"read noise must be >= 0, got {self.read_noise!r}")
        if self.bit_depth is not None and not 1 <= self.bit_depth <= 16:
            raise ValueError(f"bit depth must be in 1..16, got {self.bit_depth!r}")

    def expected(self, photons: np.ndarray) -> np.ndarray:
        """Mean output before quantisation and clipping (float32)."""
        return (self.offset + self.gain * photons).astype(np.float32)

    def sample(self, photons: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One noisy readout of expected photon counts ``photons`` (float32, ADU)."""
        if np.any(photons < 0):
            raise ValueError(f"expected photon counts must be >= 0, min is {photons.min()!r}")
        out = rng.poisson(photons).astype(np.float32)
        out *= np.float32(self.gain)
        out += np.float32(self.offset)
        if self.read_noise > 0:
            out += rng.standard_normal(photons.shape, dtype=np.float32) * np.float32(
                self.read_noise
            )
        return self.quantise(out)

    def quantise(self, adu: np.ndarray) -> np.ndarray:
        """Round and clip to the ADC range; identity when no bit depth is set."""
        if self.bit_depth is None:
            return adu
        return np.clip(np.rint(adu), 0, 2**self.bit_depth - 1).astype(np.float32)

    def to_dict(self) -> dict:
        return asdict(self)


def pixel_gain_map(rng: np.random.Generator, shape: tuple[int, int], sd: float) -> np.ndarray:
    """Photo-response non-uniformity: per-pixel relative gain ~ N(1, sd), fixed per camera."""
    return np.clip(rng.normal(1.0, sd, shape), 0.1, None).astype(np.float32)


def column_offsets(rng: np.random.Generator, shape: tuple[int, int], sd: float) -> np.ndarray:
    """sCMOS column-amplifier offsets (ADU), a fixed pattern broadcast over rows."""
    return np.broadcast_to(rng.normal(0.0, sd, (1, shape[1])), shape).astype(np.float32)


def row_noise(rng: np.random.Generator, shape: tuple[int, int], sd: float) -> np.ndarray:
    """Temporal per-row offset (ADU), new every frame (rolling-shutter / line noise)."""
    return np.broadcast_to(rng.normal(0.0, sd, (shape[0], 1)), shape).astype(np.float32)


def hot_pixels(
    rng: np.random.Generator, shape: tuple[int, int], fraction: float, level: float
) -> np.ndarray:
    """Additive hot-pixel map: ``fraction`` of pixels get ~``level`` ADU extra."""
    mask = rng.random(shape) < fraction
    return (mask * rng.uniform(0.5, 1.5, shape) * level).astype(np.float32)


def scanner_stripes(
    rng: np.random.Generator,
    image: np.ndarray,
    row_gain_sd: float,
    shift_px: int,
    hum_amplitude: float,
) -> np.ndarray:
    """Resonant-scanner line artefacts applied to an expected image.

    Per-row gain ~ N(1, row_gain_sd) (laser/line jitter), odd rows shifted by ``shift_px``
    (bidirectional phase error) and a mains-hum modulation of relative ``hum_amplitude``
    whose phase advances row by row (50/60 Hz beating with the line rate → slanted stripes).
    """
    h, w = image.shape
    out = image * rng.normal(1.0, row_gain_sd, (h, 1))
    if shift_px:
        out[1::2] = np.roll(out[1::2], shift_px, axis=1)
    period = rng.uniform(20.0, 80.0)
    phase = rng.uniform(0, 2 * np.pi) + np.arange(h)[:, None] * rng.uniform(0.05, 0.5)
    hum = 1.0 + hum_amplitude * np.sin(2 * np.pi * np.arange(w)[None, :] / period + phase)
    return np.clip(out * hum, 0.0, None).astype(np.float32)


def analogue_lowpass(image: np.ndarray, pole: float) -> np.ndarray:
    """A point scanner's amplifier bandwidth: a one-pole low-pass along each line (axis 1).

    The detector current is integrated with a time constant comparable to the pixel dwell, so
    each pixel keeps ``pole`` of the one before it in the line: shot and read noise become
    correlated between horizontal neighbours (correlation ``pole``) and the signal is smeared
    by the same amount. The filter has unit DC gain, so mean levels are kept.
    """
    if not 0.0 <= pole < 1.0:
        raise ValueError(f"low-pass pole must be in [0, 1), got {pole!r}")
    if pole == 0.0:
        return np.asarray(image, np.float32)
    out = scipy.signal.lfilter([1.0 - pole], [1.0, -pole], image, axis=1,
                               zi=np.asarray(image)[:, :1] * pole)[0]
    return out.astype(np.float32)


def spatial_lowpass(image: np.ndarray, sigma_px: float) -> np.ndarray:
    """A camera pipeline's resampling (binning, demosaicing, rescaling): an isotropic Gaussian
    low-pass of ``sigma_px`` that makes the noise correlated over neighbouring pixels."""
    if sigma_px < 0:
        raise ValueError(f"low-pass sigma must be >= 0, got {sigma_px!r}")
    if sigma_px == 0:
        return np.asarray(image, np.float32)
    return scipy.ndimage.gaussian_filter(np.asarray(image, np.float32), sigma_px, mode="reflect")


def eight_bit(image: np.ndarray, scale: float, black_level: float) -> np.ndarray:
    """An 8-bit readout: ``image * scale + black_level`` rounded and clipped to 0..255.

    A negative black level clips the dark pixels at 0 (their noise is lost), a high scale
    saturates the brightest ones at 255: both are what 8-bit confocal and camera frames show.
    """
    return np.clip(np.rint(np.asarray(image, np.float64) * scale + black_level), 0, 255).astype(
        np.float32
    )
