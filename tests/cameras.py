"""A Python test camera for UniMMCore, importable by tests and by their subprocesses."""

from __future__ import annotations

import numpy as np
from pymmcore_plus.experimental.unicore import SimpleCameraDevice


class RampCamera(SimpleCameraDevice):
    """A Python camera of any dtype and size; pixel (0, 0) carries the frame number.

    ``nan_frames`` lists frame numbers filled with NaN (float cameras only), so tests can
    check that one bad frame costs nothing else.
    """

    def __init__(self, shape=(64, 64), dtype="uint16", nan_frames=()) -> None:
        super().__init__()
        self._shape = tuple(shape)
        self._dtype = np.dtype(dtype)
        self._exposure = 1.0
        self.nan_frames = set(nan_frames)
        self.count = 0
        self._rng = np.random.default_rng(0)

    def get_exposure(self) -> float:
        return self._exposure

    def set_exposure(self, exposure: float) -> None:
        self._exposure = float(exposure)

    def sensor_shape(self) -> tuple[int, int]:
        return self._shape

    def dtype(self):
        return self._dtype

    def snap(self, buffer: np.ndarray) -> dict:
        xx = np.arange(buffer.shape[1])[None, :]
        img = 20 + 10 * np.sin(xx / 5.0) ** 2 + self._rng.poisson(5, buffer.shape)
        if self.count in self.nan_frames:
            img = np.full(buffer.shape, np.nan)
        buffer[:] = img.astype(self._dtype) if self._dtype.kind == "f" else img
        buffer[0, 0] = self.count
        self.count += 1
        return {}
