"""Is a restored frame better than a Gaussian blur? Judged against another exposure of the field.

A learned restorer can be worse than the floor a microscopist already has (a Gaussian blur of
σ 1.5 px) on frames unlike its training data, and nothing in one restored frame says so. Two
exposures of one field do: their noise is independent (shot and read noise do not correlate
across exposures, whatever their spatial correlation within a frame), so for any estimate
``f`` made from frame ``y`` and an independent frame ``y'`` of the same clean image ``x``::

    E ||f - y'||² = E ||f - x||² + E ||n'||²        (Noise2Noise, Lehtinen et al. 2018)

and the noise term is half the mean square difference of the two frames. So the restored
frame's error and the Gaussian floor's error are both estimated from the frames alone, with no
noise model, and their ratio is the PSNR the restoration gains over the floor. Each estimate,
and ``y`` itself for the noise term, is first fitted affinely to ``y'`` (as PSNR-affine does to the
truth), so a global intensity drift between the exposures (bleaching, laser power) cancels.
The fit of a noisy ``y`` shrinks towards the mean and reads the noise a little low when the
specimen's contrast is no larger than the noise; both errors then grow alike and the estimate
moves towards 0 dB, as with motion. Motion between the exposures adds the
same error to both, pulling the estimate towards 0 dB: a moving specimen can hide a loss, it
cannot invent one.

Chosen on the real confocal frames' selection part (fov02–fov10, 50-frame truths; ``denoise``
and ``sted_denoise``, 18 field × model pairs): mean absolute error 0.14 dB against the true
PSNR-affine difference (0.19 dB with the plain variance of the frames' difference as the
noise term, which a drift in gain would also inflate).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter

from live_restore.metrics import fit_affine

__all__ = ["FLOOR_SIGMA_PX", "LOSS_TOLERANCE_DB", "FloorCheck", "check_against_floor",
           "judges_restorer"]

FLOOR_SIGMA_PX = 1.5
"""The Gaussian floor's σ (the real-data benchmark's Gaussian row)."""

LOSS_TOLERANCE_DB = 0.2
"""A frame estimated to lose more than this to the floor is flagged."""


@dataclass(frozen=True)
class FloorCheck:
    """The estimated PSNR gain (dB) of a restored frame over the Gaussian floor of its raw
    frame, judged against the independent exposure ``against`` (a frame label)."""

    gain_db: float
    against: str

    @property
    def below_floor(self) -> bool:
        return self.gain_db < -LOSS_TOLERANCE_DB

    def to_json(self) -> dict[str, float | str | bool]:
        """The ledger's record of the check (the ledger reads ``below_floor`` only)."""
        return {"gain_db": round(self.gain_db, 3), "against": self.against,
                "below_floor": self.below_floor}


def _error(estimate: np.ndarray, other: np.ndarray) -> float:
    return float(np.mean((fit_affine(estimate, other) - other) ** 2))


def check_against_floor(restored: np.ndarray, raw: np.ndarray, other: np.ndarray,
                        against: str = "") -> FloorCheck | None:
    """The :class:`FloorCheck` of ``restored`` (made from ``raw``) judged against ``other``,
    an independent exposure of the same field; None when the frames give no estimate (flat
    frames, or more noise in the estimates than the frames differ by)."""
    raw64, other64 = raw.astype(np.float64), other.astype(np.float64)
    noise = _error(raw64, other64) / 2.0
    floor = _error(gaussian_filter(raw64, FLOOR_SIGMA_PX), other64) - noise
    ours = _error(restored.astype(np.float64), other64) - noise
    if not (floor > 0 and ours > 0 and np.isfinite(floor + ours)):
        return None
    return FloorCheck(float(10.0 * np.log10(floor / ours)), against)


def judges_restorer(restorer: object) -> bool:
    """Whether the check applies: the restorer's output is its input's modality (a
    confocal→STED model is meant to differ from the confocal frames it is judged against)."""
    config = getattr(restorer, "config", None)
    return getattr(config, "forward_model", "identity") == "identity"
