"""Scoring one arm of a sweep, choosing the recommended dose and estimating bleaching."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from live_restore import sim
from live_restore.acquisition.store import AcquisitionStore
from live_restore.experiments.dose.control import Target
from live_restore.experiments.dose.report import ArmPlan, SweepArm
from live_restore.metrics import frc_resolution, psnr, ssim
from live_restore.sim.microscope import BLEACH_KAPPA, BLEACH_STED_FACTOR


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def score_arm(
    plan: ArmPlan, doses: Sequence[float], reference_dose: float, fields_per_dose: int,
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
    recommended, note = recommend(doses, restored.get(target.metric, []), target)
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
        bleaching=bleaching, model_version=plan.restorer.version,
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


def recommend(
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
