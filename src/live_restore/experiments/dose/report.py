"""The results of a dose sweep: one arm per modality and restorer, and the whole report."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from live_restore.experiments.dose.control import Target
from live_restore.models.restorer import Restorer


@dataclass
class SweepArm:
    """The sweep of one modality with one restorer (curves are per dose, mean over K frames)."""

    label: str
    modality: str | None
    reference_modality: str | None
    model: str
    basis: str
    """``ground_truth`` (simulator) or ``reference`` (the reference-dose frame of each field)."""
    doses: list[float]
    raw: dict[str, list[float | None]]
    restored: dict[str, list[float | None]]
    target: Target
    recommended_dose: float | None
    dose_reduction_factor: float | None
    note: str
    reference: dict[str, list[float]]
    """Raw reference-dose frames of each dose's fields vs their truth, mean per dose
    (simulator; shows how much field content alone moves the scores)."""
    stores: dict[str, str]
    reference_store: str
    bleaching: dict[str, Any] | None = None
    model_version: str | None = None
    """The restorer's version (a model file's weights checksum), so that results stay tied to
    the weights that made them when a shipped model is retrained under the same name."""

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["target"] = {**asdict(self.target), "text": str(self.target)}
        return out


@dataclass
class DoseSweepReport:
    """All arms of a sweep; the first is the default modality's and fills the top level."""

    arms: list[SweepArm]
    reference_dose: float
    frames_per_dose: int
    fields_per_dose: int
    dose_control: str
    pixel_size_um: float | None
    sequence: str | None = None
    """The recommended useq sequence JSON, when one was written."""

    @property
    def primary(self) -> SweepArm:
        return self.arms[0]

    def to_dict(self) -> dict[str, Any]:
        p = self.primary.to_dict()
        return {
            "doses": p["doses"],
            "raw": p["raw"],
            "restored": p["restored"],
            "recommended_dose": p["recommended_dose"],
            "reference_dose": self.reference_dose,
            "dose_reduction_factor": p["dose_reduction_factor"],
            "target": p["target"],
            "modality": p["modality"],
            "reference_modality": p["reference_modality"],
            "model": p["model"],
            "basis": p["basis"],
            "note": p["note"],
            "bleaching": p["bleaching"],
            "frames_per_dose": self.frames_per_dose,
            "fields_per_dose": self.fields_per_dose,
            "dose_control": self.dose_control,
            "pixel_size_um": self.pixel_size_um,
            "sequence": self.sequence,
            "per_modality": {arm.label: arm.to_dict() for arm in self.arms},
        }

    def to_json(self, path: str | Path | None = None) -> str:
        text = json.dumps(self.to_dict(), indent=2)
        if path is not None:
            Path(path).write_text(text)
        return text


@dataclass(frozen=True)
class ArmPlan:
    label: str
    modality: str | None
    restorer: Restorer
    reference_modality: str | None
