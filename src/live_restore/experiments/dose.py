"""Reduced-light-dose calibration: how far can the dose drop before restoration stops paying?

A sweep acquires ``K`` frames at each dose through the ordinary live pipeline
(:func:`~live_restore.acquisition.live.run_acquisition`: raw first, restored beside it) and scores
raw and restored frames against a reference. The answer it gives is a *recommended dose*: the
lowest dose whose restored frames still meet a quality target, by default the quality of raw
frames at the reference (highest) dose, and a useq sequence that acquires at that dose.

Design decisions, each for a reason:

- **The dose is set by the sequence's setup event.** ``MDASequence.setup`` is applied by the
  pymmcore-plus engine before the first event, and it is saved with the sequence JSON, so the
  recommended sequence carries its dose to ``live-restore acquire``. A dose is a device
  property (``"SimCam-LaserPower"``: ``properties=[(device, prop, value)]``) or a preset of a
  config group (``"Dose"``: the setup event's ``channel``). The engine only logs a failed
  setter, so the control is checked here, before any light reaches the sample.
- **Fresh fields for every dose** (``F`` per dose, ``K`` frames each). Bleaching would
  otherwise bias the comparison (the frames taken later see fewer labels). Fields sit on a
  grid ``1.5`` field widths apart, so scan overshoot does not pre-bleach a neighbour: one
  column per dose (the first at the start position's x), one row per field, a block of rows
  per arm, the whole grid centred vertically on the start position. Each dose's store is
  ``OUTPUT/<arm>/dose_<d>.ome.zarr``. Field content moves SSIM by about ±0.01–0.02 on the
  simulator, as much as a dose step, so more fields per dose make the recommendation sturdier.
- **A reference frame on every field.** After all doses, one frame at the reference dose is
  taken on each field (``OUTPUT/<arm>/reference.ome.zarr``, stored raw only). Comparing with a
  high-dose frame needs the same field, and on real hardware that frame is the only reference.
  The low-dose frames before it bleach little (≤ 1 % on the simulator at 50 % and K = 2).
- **The primary basis is the simulator's noise-free truth** when every frame carries one
  (``ssim``, ``psnr``); the ``*_vs_reference`` metrics use the reference frame and exist on
  hardware too. A restorer that changes modality (``confocal2sted``) is scored against the
  truth of its target modality, which the reference frame (taken in that modality) records.
- **The default target is "as good as raw at the reference dose"**: ``ssim >=`` the mean SSIM
  of the reference frames against their truth (simulator), or of raw frames at the reference
  dose against the reference frame (hardware). Field content differs between doses, so the
  recommendation is the lowest dose from which *every* higher dose meets the target.
- **A strip field** (the row after each arm's test fields) sees every dose in ascending
  order (K frames each), so the image strip shows the same detail at each dose. It is for
  display and for checking that the dose changes the signal; it accumulates bleaching, so it
  is never scored.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import useq
from pymmcore_plus import CMMCorePlus

from live_restore import sim
from live_restore.acquisition.live import managed_core, run_acquisition
from live_restore.acquisition.store import AcquisitionStore
from live_restore.experiments.demo import default_config, reference_channels
from live_restore.metrics import frc_resolution, psnr, ssim
from live_restore.models.restorer import Averaged, Restorer, get_restorer, list_models
from live_restore.sim.microscope import BLEACH_KAPPA, BLEACH_STED_FACTOR

log = logging.getLogger(__name__)

DEFAULT_DOSES: tuple[float, ...] = (1, 2, 5, 10, 20, 50, 100)
MODALITY_MODELS = {"STED": "sted_denoise", "Confocal": "denoise"}
"""With ``model="auto"``: the shipped model per modality, else ``classical``."""
TRANSFER_MODEL = "confocal2sted"
FIELD_STEP = 1.5
"""Distance between neighbouring fields, in field widths."""
TARGET_METRICS = {"ssim": ">=", "psnr": ">=", "ssim_vs_reference": ">=",
                  "psnr_vs_reference": ">=", "frc_um": "<="}
"""Metrics a target may name, with the direction in which they improve."""
_TARGET_RE = re.compile(r"^\s*([a-z_]+)\s*(>=|<=)\s*([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?\d+)?)\s*$")


# ---------------------------------------------------------------------------------- parsing
def parse_doses(text: str | Sequence[float]) -> tuple[float, ...]:
    """``"1,2,5"`` (or numbers) → sorted unique positive doses; ValueError quoting a bad one."""
    items = text.split(",") if isinstance(text, str) else list(text)
    doses = []
    for item in items:
        try:
            value = float(item)
        except (TypeError, ValueError):
            raise ValueError(f"--doses: {str(item).strip()!r} is not a number") from None
        if not math.isfinite(value) or value <= 0:
            raise ValueError(f"--doses: every dose must be > 0, got {str(item).strip()!r}")
        doses.append(value)
    if not doses:
        raise ValueError(f"--doses: no dose given in {text!r}")
    return tuple(sorted(set(doses)))


@dataclass(frozen=True)
class Target:
    """A quality target: ``metric op value`` on the mean of the restored frames at a dose."""

    metric: str
    op: str
    value: float
    source: str = "user"
    """``user``, or what the default was measured on."""

    def met(self, x: float | None) -> bool:
        if x is None or not math.isfinite(x):
            return False
        return x >= self.value if self.op == ">=" else x <= self.value

    def __str__(self) -> str:
        return f"{self.metric}{self.op}{self.value:.4g}"


def parse_target(text: str) -> Target:
    """``"ssim>=0.90"`` / ``"psnr>=30"`` / ``"frc_um<=0.08"`` → :class:`Target`."""
    m = _TARGET_RE.match(text.lower())
    if m is None:
        raise ValueError(f"--target: expected METRIC>=VALUE or METRIC<=VALUE, got {text!r}")
    metric, op, value = m.group(1), m.group(2), float(m.group(3))
    if metric not in TARGET_METRICS:
        raise ValueError(f"--target: unknown metric {metric!r} in {text!r}; "
                         f"known: {', '.join(TARGET_METRICS)}")
    if op != TARGET_METRICS[metric]:
        raise ValueError(f"--target: {metric} improves as it goes {TARGET_METRICS[metric][0]}, "
                         f"so use {metric}{TARGET_METRICS[metric]}…, got {text!r}")
    return Target(metric, op, value)


# ----------------------------------------------------------------------------- dose control
@dataclass(frozen=True)
class DoseControl:
    """How a dose reaches the hardware: one numeric property, or the presets of a group.

    For a group, each preset's dose is the value of its one numeric setting (the simulator's
    ``Dose`` group: Low/Medium/High = LaserPower 5/20/80 %), so doses stay numbers.
    """

    device: str
    prop: str
    group: str | None = None
    presets: Mapping[float, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.group or f"{self.device}-{self.prop}"

    def setup_event(self, dose: float) -> useq.MDAEvent:
        """The setup event that puts ``dose`` on the hardware before a sequence's first frame."""
        if self.group is None:
            return useq.MDAEvent(properties=[(self.device, self.prop, dose)])
        if dose not in self.presets:
            raise ValueError(f"dose {dose:g} is not a preset of group {self.group!r}; presets: "
                             + ", ".join(f"{v:g} ({k})" for k, v in self._by_name().items()))
        return useq.MDAEvent(channel={"group": self.group, "config": self.presets[dose]})

    def _by_name(self) -> dict[str, float]:
        return {name: dose for dose, name in sorted(self.presets.items())}

    def check(self, core: CMMCorePlus, doses: Sequence[float]) -> None:
        """Refuse doses the hardware cannot take (the engine would only log a warning)."""
        if self.group is not None:
            for dose in doses:
                self.setup_event(dose)
            return
        if core.hasPropertyLimits(self.device, self.prop):
            lo = core.getPropertyLowerLimit(self.device, self.prop)
            hi = core.getPropertyUpperLimit(self.device, self.prop)
            bad = [d for d in doses if not lo <= d <= hi]
            if bad:
                raise ValueError(f"dose(s) {', '.join(f'{d:g}' for d in bad)} outside the limits "
                                 f"[{lo:g}, {hi:g}] of {self.name!r}")


def dose_control(core: CMMCorePlus, name: str | None = None) -> DoseControl:
    """Resolve ``"Device-Property"`` or a config group name; ``None`` looks for a default.

    The default is the camera's ``LaserPower`` property (the simulator), else a ``Dose`` group.
    """
    if name is None:
        camera = core.getCameraDevice()
        if camera and core.hasProperty(camera, "LaserPower"):
            name = f"{camera}-LaserPower"
        elif core.isGroupDefined("Dose"):
            name = "Dose"
        else:
            raise ValueError(
                "this configuration has no dose control: the camera has no 'LaserPower' property "
                "and there is no 'Dose' config group; name one with --dose-property "
                "(e.g. 'Laser-Power' or a config group whose presets set the power)"
            )
    if core.isGroupDefined(name):
        return _group_control(core, name)
    for i in [i for i, ch in enumerate(name) if ch == "-"]:
        device, prop = name[:i], name[i + 1:]
        if device in core.getLoadedDevices() and core.hasProperty(device, prop):
            if core.isPropertyReadOnly(device, prop):
                raise ValueError(f"dose property {name!r} is read-only")
            return DoseControl(device, prop)
    groups = ", ".join(core.getAvailableConfigGroups()) or "none"
    raise ValueError(
        f"unknown dose property or config group {name!r}: expected 'Device-Property' of a loaded "
        f"device or a config group (groups: {groups})"
    )


def _group_control(core: CMMCorePlus, group: str) -> DoseControl:
    presets: dict[float, str] = {}
    device = prop = ""
    for preset in core.getAvailableConfigs(group):
        settings = [s for s in core.getConfigData(group, preset) if _is_number(s[2])]
        if len(settings) != 1:
            raise ValueError(f"preset {preset!r} of dose group {group!r} must set exactly one "
                             f"numeric property, found {len(settings)}")
        device, prop, value = settings[0]
        presets[float(value)] = preset
    if not presets:
        raise ValueError(f"dose group {group!r} has no presets")
    return DoseControl(device, prop, group, presets)


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


# -------------------------------------------------------------------------------- the sweep
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
class _ArmPlan:
    label: str
    modality: str | None
    restorer: Restorer
    reference_modality: str | None


def _shipped() -> set[str]:
    return {row["name"] for row in list_models()}


def _plan_arms(
    core: CMMCorePlus, modality: str | None, model: str, device: str | None, samples: int = 1
) -> list[_ArmPlan]:
    """Which modality/restorer pairs to sweep: one for ``modality``; all presets for None."""
    group = core.getChannelGroup()
    presets = list(core.getAvailableConfigs(group)) if group else []
    if modality is not None and modality not in presets:
        raise ValueError(f"unknown modality {modality!r}; presets of channel group "
                         f"{group or '(none)'!r}: {', '.join(presets) or 'none'}")
    if modality is None:  # every modality, the default (STED on the simulator) first
        modalities: list[str | None] = sorted(presets, key=lambda m: m != "STED") or [None]
    else:
        modalities = [modality]
    shipped = _shipped()
    plans = []
    for mod in modalities:
        name = model
        if model == "auto":
            wanted = MODALITY_MODELS.get(mod or "", "classical")
            name = wanted if wanted in shipped else "classical"
        restorer = Averaged(get_restorer(name, device=device), samples)
        ref = reference_channels({mod or "": restorer})[mod or ""] or None
        ref = ref if ref in presets else mod
        plans.append(_ArmPlan(mod if ref == mod else f"{mod}->{ref}", mod, restorer, ref))
    if modality is None and model == "auto" and TRANSFER_MODEL in shipped and "STED" in presets:
        restorer = Averaged(get_restorer(TRANSFER_MODEL, device=device), samples)
        plans.append(_ArmPlan("Confocal->STED", "Confocal", restorer, "STED"))
    return plans


def _annotate(img: np.ndarray, meta: Mapping[str, Any]) -> dict[str, Any]:
    """Record the simulator's truth with each frame; real cameras have none."""
    try:
        return {"sim_truth": sim.frame_truth(img, dict(meta))}
    except KeyError:
        return {}


def recommended_sequence(
    control: DoseControl, dose: float, modality: str | None = None, frames: int = 1,
    path: str | Path | None = None, *, channel_group: str = "Modality",
    positions: Sequence[tuple[float, float]] = (),
) -> useq.MDASequence:
    """A sequence of ``frames`` frames at ``dose`` (on ``positions`` µm, else the current field).

    The dose travels in the setup event, so the JSON written to ``path`` (when given) is ready
    for ``live-restore acquire --sequence`` and sets its own dose. The sweep builds its
    per-dose sequences with this function too.
    """
    if frames < 1:
        raise ValueError(f"frames must be at least 1, got {frames}")
    kw: dict[str, Any] = {}
    if modality is not None:
        kw["channels"] = [{"group": channel_group, "config": modality}]
    if positions:
        kw["stage_positions"] = [{"x": x, "y": y} for x, y in positions]
    if frames > 1:
        kw["time_plan"] = {"interval": 0, "loops": frames}
    seq = useq.MDASequence(setup=control.setup_event(dose), axis_order="tpcz", **kw)
    if path is not None:
        Path(path).write_text(seq.model_dump_json(indent=2))
    return seq


def _dose_tag(dose: float) -> str:
    return f"dose_{dose:g}".replace(".", "p")


def run_dose_sweep(
    output: str | Path = "live-restore-dose-sweep",
    *,
    config: str | Path | None = None,
    doses: Sequence[float] | str = DEFAULT_DOSES,
    reference_dose: float | None = None,
    frames_per_dose: int = 2,
    fields_per_dose: int = 3,
    modality: str | None = None,
    model: str = "auto",
    samples: int = 1,
    target: Target | str | None = None,
    dose_property: str | None = None,
    roi: int = 256,
    bleach_frames: int = 100,
    device: str | None = None,
    overwrite: bool = False,
    progress: Callable[[str], None] | None = None,
) -> DoseSweepReport:
    """Sweep the dose on fresh fields, restore live, score, and pick the lowest good dose.

    Every dose gets ``fields_per_dose`` fresh fields of ``frames_per_dose`` frames each
    (two frames of one field give the FRC).

    ``config=None`` uses the simulated confocal/STED microscope. ``modality=None`` sweeps every
    preset of the channel group (STED first) plus ``confocal2sted`` when shipped. The
    reference dose (default: the highest dose) is always swept too. ``samples > 1`` restores
    every frame as the mean of that many draws (:class:`~live_restore.models.restorer.Averaged`).
    The recommended sequence (``bleach_frames`` frames at the recommended dose) is written to
    ``OUTPUT/recommended_sequence.json`` when a dose meets the target.
    """
    dose_list = parse_doses(doses)
    reference_dose = float(reference_dose) if reference_dose is not None else max(dose_list)
    if reference_dose <= 0:
        raise ValueError(f"--reference-dose must be > 0, got {reference_dose!r}")
    dose_list = tuple(sorted({*dose_list, reference_dose}))
    if frames_per_dose < 1:
        raise ValueError(f"--frames-per-dose must be at least 1, got {frames_per_dose}")
    if fields_per_dose < 1:
        raise ValueError(f"--fields-per-dose must be at least 1, got {fields_per_dose}")
    if bleach_frames < 1:
        raise ValueError(f"--bleach-frames must be at least 1, got {bleach_frames}")
    user_target = parse_target(target) if isinstance(target, str) else target
    output = Path(output)
    if output.exists() and not overwrite:
        raise FileExistsError(f"{output} exists; pass overwrite=True (--overwrite) to replace it")
    say = progress or (lambda _msg: None)
    with managed_core(config or default_config()) as core:
        control = dose_control(core, dose_property)
        control.check(core, dose_list)
        if not core.getXYStageDevice():
            raise ValueError("the sweep moves to a fresh field per dose and needs an XY stage")
        arms_plan = _plan_arms(core, modality, model, device, samples)
        group = core.getChannelGroup() or "Modality"
        width, height = core.getImageWidth(), core.getImageHeight()
        if roi and roi < min(width, height):
            core.setROI((width - roi) // 2, (height - roi) // 2, roi, roi)
        pixel_um = core.getPixelSizeUm() or None
        step = FIELD_STEP * core.getImageWidth() * (pixel_um or 1.0)
        x0, y0 = core.getXYPosition()
        rows_per_arm = fields_per_dose + 1  # the test fields, then the strip field
        top = y0 - (len(arms_plan) * rows_per_arm - 1) / 2 * step
        arms = []
        for a, plan in enumerate(arms_plan):
            y_first = top + a * rows_per_arm * step
            grid = [[(x0 + i * step, y_first + j * step) for j in range(fields_per_dose)]
                    for i in range(len(dose_list))]
            strip = (x0, y_first + fields_per_dose * step)
            folder = output / plan.label
            folder.mkdir(parents=True, exist_ok=True)
            stores: dict[str, str] = {}
            for dose, fields in zip(dose_list, grid, strict=True):
                say(f"{plan.label}: dose {dose:g} ({fields_per_dose} fields × "
                    f"{frames_per_dose} frames)")
                path = folder / f"{_dose_tag(dose)}.ome.zarr"
                seq = recommended_sequence(control, dose, plan.modality, frames_per_dose,
                                           channel_group=group, positions=[*fields, strip])
                run_acquisition(core, seq, path, plan.restorer, overwrite=overwrite,
                                annotate=_annotate, uncertainty=samples > 1, model_info={
                                    "name": plan.restorer.name,
                                    "checksum": plan.restorer.version})
                stores[f"{dose:g}"] = str(path)
            say(f"{plan.label}: reference frames at dose {reference_dose:g}")
            ref_path = folder / "reference.ome.zarr"
            ref_seq = recommended_sequence(control, reference_dose, plan.reference_modality,
                                           channel_group=group,
                                           positions=[xy for fields in grid for xy in fields])
            run_acquisition(core, ref_seq, ref_path, {plan.reference_modality or "": None},
                            overwrite=overwrite, annotate=_annotate)
            arms.append(_score_arm(plan, dose_list, reference_dose, fields_per_dose, stores,
                                   str(ref_path), user_target, pixel_um, bleach_frames))
    report = DoseSweepReport(arms, reference_dose, frames_per_dose, fields_per_dose,
                             control.name, pixel_um)
    best = report.primary
    if best.recommended_dose is not None:
        seq_path = output / "recommended_sequence.json"
        recommended_sequence(control, best.recommended_dose, best.modality, bleach_frames,
                             seq_path, channel_group=group)
        report.sequence = str(seq_path)
    return report


# ------------------------------------------------------------------------------- scoring
def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def _score_arm(
    plan: _ArmPlan, doses: Sequence[float], reference_dose: float, fields_per_dose: int,
    stores: dict[str, str], reference_store: str, user_target: Target | None,
    pixel_um: float | None, bleach_frames: int,
) -> SweepArm:
    """Per dose: mean metrics of its test frames (every field and time point) against truth
    and against the reference frame of their own field."""
    with AcquisitionStore.open(reference_store, mode="r") as ref:
        refs = [(ref.read_raw({"p": i}).astype(np.float32), ref.frame_metadata({"p": i}))
                for i in range(len(doses) * fields_per_dose)]
    basis = "ground_truth" if all("sim_truth" in meta for _, meta in refs) else "reference"
    # Rendered once: a cross-modality arm scores every restored frame against its field's
    # reference-modality truth, and the reference frames are scored against the same truths.
    ref_truths = ([sim.ground_truth(meta["sim_truth"]) for _, meta in refs]
                  if basis == "ground_truth" else [])
    raw: dict[str, list[float | None]] = {}
    restored: dict[str, list[float | None]] = {}
    truths: list[dict] = []
    consistency = getattr(plan.restorer, "consistency", None)
    cross = plan.reference_modality != plan.modality
    for i, dose in enumerate(doses):
        rows: dict[str, dict[str, list[float]]] = {"raw": {}, "restored": {}}
        with AcquisitionStore.open(stores[f"{dose:g}"], mode="r") as store:
            for f in range(fields_per_dose):
                field = i * fields_per_dose + f
                ref_img, _ = refs[field]
                frames: dict[str, list[np.ndarray]] = {"raw": [], "restored": []}
                for t in range(store.sizes.get("t", 1)):
                    index = {"t": t, "p": f}
                    meta = store.frame_metadata(index)
                    pair = {"raw": store.read_raw(index).astype(np.float32),
                            "restored": store.read_restored(index)}
                    if t == 0 and f == 0 and "sim_truth" in meta:
                        truths.append(json.loads(meta["sim_truth"]))
                    own_truth = (sim.ground_truth(meta["sim_truth"])
                                 if basis == "ground_truth" else None)
                    for kind, img in pair.items():
                        frames[kind].append(img)
                        row = rows[kind]
                        row.setdefault("mean_adu", []).append(float(img.mean()))
                        row.setdefault("psnr_vs_reference", []).append(psnr(img, ref_img))
                        row.setdefault("ssim_vs_reference", []).append(ssim(img, ref_img))
                        if own_truth is not None:
                            truth = ref_truths[field] if (
                                kind == "restored" and cross) else own_truth
                            row.setdefault("psnr", []).append(psnr(img, truth))
                            row.setdefault("ssim", []).append(ssim(img, truth))
                    if consistency is not None:
                        rows["restored"].setdefault("consistency", []).append(
                            float(consistency(pair["raw"], pair["restored"])))
                for kind in ("raw", "restored"):
                    if len(frames[kind]) >= 2:  # FRC needs two independent frames of one field
                        rows[kind].setdefault("frc_um", []).append(frc_resolution(
                            frames[kind][0], frames[kind][1], pixel_um or 1.0))
        for kind, out in (("raw", raw), ("restored", restored)):
            row = rows[kind]
            if basis == "reference":
                row.setdefault("psnr", row["psnr_vs_reference"])
                row.setdefault("ssim", row["ssim_vs_reference"])
            for metric in ("psnr", "ssim", "psnr_vs_reference", "ssim_vs_reference", "frc_um",
                           "consistency", "mean_adu"):
                if metric == "consistency" and kind == "raw":
                    continue
                out.setdefault(metric, []).append(_mean(row.get(metric, [])))
    reference: dict[str, list[float]] = {}
    if basis == "ground_truth":
        scores: dict[str, list[float]] = {}
        for (img, _), truth in zip(refs, ref_truths, strict=True):
            scores.setdefault("psnr", []).append(psnr(img, truth))
            scores.setdefault("ssim", []).append(ssim(img, truth))
        reference = {metric: [float(np.mean(values[i:i + fields_per_dose]))
                              for i in range(0, len(values), fields_per_dose)]
                     for metric, values in scores.items()}
    target = user_target or _default_target(reference, raw, doses, reference_dose)
    recommended, note = _recommend(doses, restored.get(target.metric, []), target)
    if cross and recommended is None:
        note += (f" Restored {plan.modality} frames are scored against raw "
                 f"{plan.reference_modality} at the reference dose: {plan.modality} resolution "
                 f"(restored FRC {_fmt(restored['frc_um'][-1])} µm at the reference dose) "
                 "may forbid reaching it at any dose.")
    factor = reference_dose / recommended if recommended else None
    bleaching = (_bleaching(truths, list(doses), reference_dose, recommended, bleach_frames)
                 if len(truths) == len(doses) else None)
    return SweepArm(
        label=plan.label, modality=plan.modality, reference_modality=plan.reference_modality,
        model=plan.restorer.name, basis=basis, doses=list(doses), raw=raw, restored=restored,
        target=target, recommended_dose=recommended, dose_reduction_factor=factor, note=note,
        reference=reference, stores=stores, reference_store=reference_store,
        bleaching=bleaching,
    )


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def _default_target(
    reference: dict[str, list[float]], raw: dict[str, list[float | None]],
    doses: Sequence[float], reference_dose: float,
) -> Target:
    """SSIM of raw frames at the reference dose: what the restored frames should match."""
    if reference:
        scores = reference["ssim"]
        return Target("ssim", ">=", float(np.mean(scores)),
                      f"raw reference-dose frames on the fields of all {len(scores)} doses "
                      "vs ground truth")
    value = raw["ssim_vs_reference"][list(doses).index(reference_dose)]
    return Target("ssim", ">=", float(value if value is not None else math.nan),
                  "raw frames at the reference dose vs the reference frame of their field")


def _recommend(
    doses: Sequence[float], values: list[float | None], target: Target
) -> tuple[float | None, str]:
    """The lowest dose from which every higher dose meets the target (field content varies)."""
    if not values:
        return None, f"metric {target.metric!r} was not measured in this sweep."
    recommended = None
    for dose, value in zip(reversed(doses), reversed(values), strict=True):
        if not target.met(value):
            break
        recommended = dose
    if recommended is None:
        return None, f"no dose meets {target} ({target.source}); the highest scored " \
                     f"{_fmt(values[-1])}."
    return recommended, f"lowest dose from which every higher dose meets {target}."


def _bleaching(
    truths: list[dict], doses: list[float], reference_dose: float,
    recommended: float | None, frames: int,
) -> dict[str, Any]:
    """The simulator's bleaching model, exp(−κ·D·(1 + c·I/I_sat)) per frame, over N frames.

    D and the photon budget come from each dose's recorded frame truth, so the numbers are
    those of the frames actually acquired (whatever property set the dose).
    """

    def at(dose: float) -> dict[str, float]:
        t = truths[doses.index(dose)]
        d = t["laser_power"] * t["exposure_ms"] / 100.0
        rate = BLEACH_KAPPA * d * (1 + BLEACH_STED_FACTOR * t["sted_saturation"])
        return {
            "dose": dose,
            "photons_per_label_per_frame": t["photons_per_label"],
            "photons_per_label_total": t["photons_per_label"] * frames,
            "signal_left": math.exp(-rate * frames),
        }

    out: dict[str, Any] = {"frames": frames, "reference": at(reference_dose)}
    if recommended is not None:
        out["recommended"] = at(recommended)
        out["photon_saving_factor"] = (out["reference"]["photons_per_label_total"]
                                       / out["recommended"]["photons_per_label_total"])
    return out


# ------------------------------------------------------------------------------- figures
def plot_sweep(report: DoseSweepReport, png: str | Path) -> Path:
    """Quality against dose, one row per arm: raw and restored, the target, the recommendation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = ("ssim", "psnr", "frc_um")
    fig, axes = plt.subplots(len(report.arms), len(metrics),
                             figsize=(4.2 * len(metrics), 3.3 * len(report.arms)), squeeze=False)
    for row, arm in zip(axes, report.arms, strict=True):
        for ax, metric in zip(row, metrics, strict=True):
            for kind, series, style in (("raw", arm.raw, "o--"), ("restored", arm.restored, "s-")):
                ys = [np.nan if v is None else v for v in series.get(metric, [])]
                if ys:
                    ax.plot(arm.doses, ys, style, label=kind if kind == "raw"
                            else f"restored ({arm.model})")
            if metric in arm.reference:
                ax.plot(arm.doses, arm.reference[metric], "x", color="0.5",
                        label=f"raw at dose {report.reference_dose:g}, same field")
            if metric == arm.target.metric:
                ax.axhline(arm.target.value, color="k", lw=0.8, ls=":",
                           label=f"target {arm.target}")
            if arm.recommended_dose is not None:
                ax.axvline(arm.recommended_dose, color="tab:green", lw=1,
                           label=f"recommended {arm.recommended_dose:g}")
            ax.set_xscale("log")
            ax.set_xlabel(f"dose ({report.dose_control})")
            unit = " (µm)" if metric == "frc_um" and report.pixel_size_um else ""
            basis = "" if metric == "frc_um" else f" vs {arm.basis.replace('_', ' ')}"
            ax.set_ylabel(f"{metric.removesuffix('_um').upper()}{unit}")
            ax.set_title(f"{arm.label}: {metric.removesuffix('_um')}{basis}", fontsize=9)
            ax.grid(alpha=0.3)
        row[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return Path(png)


def plot_strip(report: DoseSweepReport, png: str | Path, crop: int = 96) -> Path:
    """The same detail (strip field, centre crop) at each dose: raw over restored [over truth]."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arm = report.primary
    panels: list[dict[str, np.ndarray]] = []
    for dose in arm.doses:
        with AcquisitionStore.open(arm.stores[f"{dose:g}"], mode="r") as store:
            index = {"t": 0, "p": report.fields_per_dose}  # the strip field
            y0, x0 = (max(0, (n - crop) // 2) for n in store.frame_shape)
            sl = np.s_[y0:y0 + crop, x0:x0 + crop]
            frame = {"raw": store.read_raw(index)[sl], "restored": store.read_restored(index)[sl]}
            meta = store.frame_metadata(index)
            if "sim_truth" in meta:
                frame["truth"] = sim.ground_truth(meta["sim_truth"])[sl]
            panels.append(frame)
    kinds = list(panels[0])
    fig, axes = plt.subplots(len(kinds), len(panels), squeeze=False,
                             figsize=(1.8 * len(panels), 1.9 * len(kinds)))
    for c, (dose, frame) in enumerate(zip(arm.doses, panels, strict=True)):
        for r, kind in enumerate(kinds):
            img = frame[kind]
            lo, hi = np.percentile(img, [0.5, 99.8])
            ax = axes[r, c]
            ax.imshow(img, cmap="magma", vmin=lo, vmax=hi)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                star = " ★" if dose == arm.recommended_dose else ""
                ax.set_title(f"{dose:g}{star}", fontsize=9)
            if c == 0:
                ax.set_ylabel(kind if kind != "restored" else f"restored\n{arm.model}", fontsize=8)
    fig.suptitle(f"{arm.label}: same detail at each dose ({report.dose_control}); "
                 "★ recommended", fontsize=9)
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return Path(png)
