"""The classical restorer: variance stabilisation + wavelet shrinkage, inverted.

It needs no training, so the pipeline is usable from day one, and every learned model is
compared against it: a learned model that loses to it is miscalibrated.
"""

from __future__ import annotations

import numpy as np
import pywt
from skimage.restoration import denoise_wavelet

from live_restore.models.calibration import Calibration
from live_restore.models.noise import anscombe, estimate_noise, inverse_anscombe
from live_restore.models.protocol import RestoreResult, check_batch, settings_checksum


class ClassicalRestorer:
    """Generalised Anscombe → BayesShrink wavelet denoising at unit noise → unbiased inverse.

    The noise model is estimated per frame, so gain, offset and read noise need not be known;
    a detector ``calibration`` (:func:`live_restore.models.calibration.calibrate_burst`)
    replaces that estimate where one exists, and enters the settings checksum.
    """

    name = "classical"

    def __init__(
        self,
        wavelet: str = "sym4",
        levels: int = 4,
        device: str | None = None,
        calibration: Calibration | None = None,
    ) -> None:
        self.wavelet = wavelet
        self.levels = levels
        self.noise = None if calibration is None else calibration.noise_model()
        settings: dict[str, object] = {"name": self.name, "wavelet": wavelet, "levels": levels}
        if calibration is not None:
            settings["calibration"] = calibration.model_dump(mode="json")
        self.version = settings_checksum(settings)

    def restore(
        self, batch: np.ndarray, *, samples: int = 1, seed: int | None = None
    ) -> RestoreResult:
        """Denoise each frame of float32 ``(N, Y, X)``; deterministic, so ``std`` is None."""
        frames = check_batch(batch)
        out = np.empty_like(frames)
        for i, frame in enumerate(frames):
            out[i] = self._restore_frame(frame)
        return RestoreResult(mean=out)

    def _restore_frame(self, frame: np.ndarray) -> np.ndarray:
        levels = min(self.levels, pywt.dwt_max_level(min(frame.shape), self.wavelet))
        if levels < 1:
            return frame.copy()  # narrower than the wavelet: nothing to shrink
        noise = estimate_noise(frame) if self.noise is None else self.noise
        stable = anscombe(frame.astype(np.float64), noise)
        denoised = denoise_wavelet(
            stable,
            sigma=1.0,
            wavelet=self.wavelet,
            mode="soft",
            wavelet_levels=levels,
            method="BayesShrink",
            rescale_sigma=False,
        )
        return inverse_anscombe(denoised, noise).astype(np.float32)
