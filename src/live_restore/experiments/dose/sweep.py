"""Running a dose sweep: plan the arms, acquire every dose on fresh fields, score."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import useq
from pymmcore_plus import CMMCorePlus

from live_restore import sim
from live_restore.acquisition.core import managed_core
from live_restore.acquisition.run import run_acquisition
from live_restore.experiments.demo import default_config, reference_channels
from live_restore.experiments.dose.control import (
    DEFAULT_DOSES,
    DoseControl,
    Target,
    dose_control,
    parse_doses,
    parse_target,
)
from live_restore.experiments.dose.report import ArmPlan, DoseSweepReport
from live_restore.experiments.dose.scoring import score_arm
from live_restore.models.restorer import Averaged, get_restorer, list_models, restores_stacks

MODALITY_MODELS = {"STED": "sted_denoise", "Confocal": "denoise"}
"""With ``model="auto"``: the shipped model per modality, else ``classical``."""
TRANSFER_MODEL = "confocal2sted"
FIELD_STEP = 1.5
"""Distance between neighbouring fields, in field widths."""


def _shipped() -> set[str]:
    return {row["name"] for row in list_models()}


def _plan_arms(
    core: CMMCorePlus, modality: str | None, model: str, device: str | None, samples: int = 1
) -> list[ArmPlan]:
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
        frames = get_restorer(name, device=device)
        if restores_stacks(frames):
            raise ValueError(f"model {name!r} restores z-stacks: the dose sweep takes frame "
                             "restorers (z-skipping is swept by `bench restorers --task axial`)")
        restorer = Averaged(frames, samples)
        ref = reference_channels({mod or "": restorer})[mod or ""] or None
        ref = ref if ref in presets else mod
        plans.append(ArmPlan(mod if ref == mod else f"{mod}->{ref}", mod, restorer, ref))
    if modality is None and model == "auto" and TRANSFER_MODEL in shipped and "STED" in presets:
        restorer = Averaged(get_restorer(TRANSFER_MODEL, device=device), samples)
        plans.append(ArmPlan("Confocal->STED", "Confocal", restorer, "STED"))
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
            arms.append(score_arm(plan, dose_list, reference_dose, fields_per_dose, stores,
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
