"""Micro-Manager devices (UniMMCore pure-Python) for the simulated confocal/STED microscope.

Thin wrappers over :class:`live_restore.sim.Microscope`; load them with
``hardware_configs/sim_confocal_sted.cfg``. Python devices cannot query one another, so the
camera follows the stages through the core's ``XYStagePositionChanged`` and
``stagePositionChanged`` signals, which the simulated stages emit on every move.

Each frame's metadata carries ``"sim_truth"``: a JSON string from which
:func:`live_restore.sim.ground_truth` regenerates the frame's noise-free expectation. In an
sequenced MDA it arrives as ``meta["camera_metadata"]["sim_truth"]`` in ``frameReady``; snapped
MDA frames lose camera metadata in pymmcore-plus 0.18, so use
:func:`live_restore.sim.frame_truth(img, meta)`, which falls back to a lookup by pixels.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence

import numpy as np
from pymmcore_plus.experimental.unicore import (
    CameraDevice,
    StageDevice,
    XYStageDevice,
    pymm_property,
)

from live_restore.sim.detector import Detector
from live_restore.sim.microscope import MODALITIES, Microscope, check_modality, register_frame
from live_restore.sim.specimens import SPECIMENS

BIT_DEPTH = 12


class SimCamera(CameraDevice):
    """Scanning confocal/STED detector rendered from the virtual slide under the stage."""

    def __init__(self) -> None:
        super().__init__()
        self._scope = Microscope(detector=Detector(1.0, 10.0, 0.5, BIT_DEPTH))

    def initialize(self) -> None:
        self.core.events.XYStagePositionChanged.connect(self._on_xy)
        self.core.events.stagePositionChanged.connect(self._on_z)

    def shutdown(self) -> None:
        self.core.events.XYStagePositionChanged.disconnect(self._on_xy)
        self.core.events.stagePositionChanged.disconnect(self._on_z)

    def _on_xy(self, _label: str, x: float, y: float) -> None:
        self._scope.stage_um[0], self._scope.stage_um[1] = float(x), float(y)

    def _on_z(self, _label: str, z: float) -> None:
        self._scope.stage_um[2] = float(z)

    # --- camera API ------------------------------------------------------------------
    def get_exposure(self) -> float:
        return self._scope.exposure_ms

    def set_exposure(self, exposure: float) -> None:
        if float(exposure) < 0:
            raise ValueError(f"exposure must be >= 0 ms, got {exposure!r}")
        self._scope.exposure_ms = float(exposure)

    def shape(self) -> tuple[int, int]:
        _, _, w, h = self._scope.get_roi()
        return (h, w)

    def dtype(self) -> np.dtype:
        return np.dtype(np.uint16)

    def get_roi(self) -> tuple[int, int, int, int]:
        return self._scope.get_roi()

    def set_roi(self, x: int, y: int, width: int, height: int) -> None:
        self._scope.set_roi(x, y, width, height)

    def clear_roi(self) -> None:
        self._scope.roi = None

    def start_sequence(
        self, n: int | None, get_buffer: Callable[[Sequence[int], np.dtype], np.ndarray]
    ) -> Iterator[Mapping]:
        count = 0
        while n is None or count < n:
            img, truth = self._scope.acquire()
            buf = get_buffer(img.shape, self.dtype())
            buf[:] = img
            count += 1
            sim_truth = json.dumps(truth)
            register_frame(buf, sim_truth)
            yield {"sim_truth": sim_truth}

    # --- detector properties (standard names) -----------------------------------------
    def get_gain(self) -> float:
        return self._scope.detector.gain

    def set_gain(self, value: float) -> None:
        self._set_detector(gain=float(value))

    def get_offset(self) -> float:
        return self._scope.detector.offset

    def set_offset(self, value: float) -> None:
        self._set_detector(offset=float(value))

    def _set_detector(self, **changes: float) -> None:
        d = self._scope.detector.to_dict() | changes
        self._scope.detector = Detector(**d)

    # --- simulator properties ---------------------------------------------------------
    @pymm_property(name="Modality", allowed_values=list(MODALITIES))
    def modality(self) -> str:
        """Confocal or STED; the channel group switches this."""
        return self._scope.modality

    @modality.setter
    def modality(self, value: str) -> None:
        self._scope.modality = check_modality(str(value))

    @pymm_property(name="LaserPower", limits=(0.0, 100.0))
    def laser_power(self) -> float:
        """Excitation power in % of maximum; photons ∝ laser power × exposure."""
        return self._scope.laser_power

    @laser_power.setter
    def laser_power(self, value: float) -> None:
        if float(value) < 0:
            raise ValueError(f"laser power (dose) must be >= 0 %, got {value!r}")
        self._scope.laser_power = float(value)

    @pymm_property(name="DepletionPower", limits=(0.0, 100.0))
    def depletion_power(self) -> float:
        """STED depletion power in %; I/I_sat = 0.4 × power (50 % → FWHM ≈ 51 nm)."""
        return self._scope.depletion_power

    @depletion_power.setter
    def depletion_power(self, value: float) -> None:
        if float(value) < 0:
            raise ValueError(f"depletion power must be >= 0 %, got {value!r}")
        self._scope.depletion_power = float(value)

    @pymm_property(name="ReadNoise", limits=(0.0, 100.0))
    def read_noise(self) -> float:
        """Gaussian read noise in ADU rms."""
        return self._scope.detector.read_noise

    @read_noise.setter
    def read_noise(self, value: float) -> None:
        self._set_detector(read_noise=float(value))

    @pymm_property(name="BitDepth", is_read_only=True)
    def bit_depth(self) -> int:
        """Significant bits of the uint16 frames (values are clipped to 0 … 4095)."""
        return BIT_DEPTH

    @pymm_property(name="SimSeed", is_pre_init=True)
    def sim_seed(self) -> int:
        """Seed of the virtual slide and of the frame noise."""
        return self._scope.seed

    @sim_seed.setter
    def sim_seed(self, value: int) -> None:
        self._rebuild(seed=int(value))

    @pymm_property(name="Specimen", allowed_values=list(SPECIMENS), is_pre_init=True)
    def specimen(self) -> str:
        """Specimen on the virtual slide."""
        return self._scope.specimen

    @specimen.setter
    def specimen(self, value: str) -> None:
        self._rebuild(specimen=str(value))

    def _rebuild(self, **changes: object) -> None:
        s = self._scope
        kw = {"seed": s.seed, "specimen": s.specimen, "detector": s.detector} | changes
        self._scope = Microscope(**kw)  # type: ignore[arg-type]


class SimXYStage(XYStageDevice):
    """XY stage over the 200 × 200 µm virtual slide; (0, 0) is the slide centre."""

    def __init__(self) -> None:
        super().__init__()
        self._xy = (0.0, 0.0)

    def set_position_um(self, x: float, y: float) -> None:
        self._xy = (float(x), float(y))
        self.core.events.XYStagePositionChanged.emit(self.get_label(), *self._xy)

    def get_position_um(self) -> tuple[float, float]:
        return self._xy

    def home(self) -> None:
        self.set_position_um(0.0, 0.0)

    def stop(self) -> None:
        """Moves are instantaneous; nothing to stop."""

    def set_origin_x(self) -> None:
        raise NotImplementedError("the simulated stage keeps slide coordinates; no origin reset")

    def set_origin_y(self) -> None:
        raise NotImplementedError("the simulated stage keeps slide coordinates; no origin reset")


class SimZStage(StageDevice):
    """Focus drive; z = 0 µm is the specimen's mid-plane."""

    def __init__(self) -> None:
        super().__init__()
        self._z = 0.0

    def set_position_um(self, val: float) -> None:
        self._z = float(val)
        self.core.events.stagePositionChanged.emit(self.get_label(), self._z)

    def get_position_um(self) -> float:
        return self._z

    def home(self) -> None:
        self.set_position_um(0.0)

    def stop(self) -> None:
        """Moves are instantaneous; nothing to stop."""

    def set_origin(self) -> None:
        raise NotImplementedError("the simulated stage keeps slide coordinates; no origin reset")
