"""Model cards (``docs/models/NAME.md``) and the README's model table, from each shipped
model's JSON and the benchmark JSONs.

A card says what a model is for, how to rebuild it (command, commit, data, seeds, steps,
wall time), how it normalises frames, how it scored and where it should not be trusted. The
provenance lives in the model's own JSON (its ``purpose``, ``training`` and ``limits`` fields)
and the scores in ``docs/bench/*.json``: a benchmark row counts for a model only when the row's
checksum is this model's, so a score measured on an earlier file never reaches its card.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from live_restore.experiments.markdown import metric, number, table
from live_restore.models.axial import FORMAT as AXIAL_FORMAT
from live_restore.models.configs import MSCGMConfig
from live_restore.models.mscgm import FORMAT as MSCGM_FORMAT
from live_restore.models.restorer import list_models

NOT_RECORDED = "not recorded"
_SCORE_METRICS = ("psnr", "psnr_affine", "ssim", "frc_resolution_nm", "ms_per_frame")


@dataclass(frozen=True)
class ShippedModel:
    """A shipped ``NAME.json`` as read from disk."""

    name: str
    path: Path
    meta: dict

    @property
    def checksum(self) -> str:
        return str(self.meta.get("weights_checksum"))


def shipped_models() -> dict[str, ShippedModel]:
    """Every model file shipped in the package, by name."""
    rows = [row for row in list_models() if row["kind"] == "shipped"]
    return {
        row["name"]: ShippedModel(row["name"], Path(row["path"]),
                                  json.loads(Path(row["path"]).read_text()))
        for row in rows
    }


def model_table(shipped: dict[str, ShippedModel]) -> str:
    """The README's table: one line per shipped model, linking to its card."""
    rows = [[f"`{m.name}`", f"`{m.meta.get('task', '?')}`", m.meta.get("purpose", NOT_RECORDED),
             f"[card](docs/models/{m.name}.md)"] for m in shipped.values()]
    return "\n".join(table(["model", "task", "what it is for", "details"], rows))


def _training(meta: dict) -> list[str]:
    config = meta.get("config", {})
    training = meta.get("training", {})
    data = training.get("data")
    data_text = (
        f"{data['pairs']} simulated `{data['task']}` pairs of {data['size']}², seed "
        f"{data['seed']} (`{data['generator']}`)" if data else NOT_RECORDED
    )
    wall = training.get("wall_time_min")
    wall_text = NOT_RECORDED if wall is None else f"{number(wall, 0)} min"
    if training.get("wall_time_note"):
        wall_text += f" ({training['wall_time_note']})"
    rows = [
        ["command", f"`{training['command']}`" if "command" in training else NOT_RECORDED],
        ["commit", f"`{training['commit']}`" if "commit" in training else NOT_RECORDED],
        ["data", data_text],
        ["preset / steps / seed", f"{config.get('preset', '?')} / "
                                  f"{number(config.get('steps_trained'))} / "
                                  f"{number(config.get('seed'))}"],
        ["wall time", wall_text],
        *([["after training", training["after"]]] if "after" in training else []),
    ]
    return table(["", ""], rows)


def _description(model: ShippedModel) -> list[str]:
    meta, config = model.meta, model.meta.get("config", {})
    norm = meta.get("normalisation", {})
    rows = [
        ["task", f"`{meta.get('task', '?')}`"],
        ["file", f"`{model.path.name}` + `{meta.get('weights', '?')}` ({meta.get('format')} "
                 f"v{meta.get('format_version')}, {meta.get('weights_dtype', '?')} weights)"],
        ["checksum", f"`{model.checksum}` (the version every restored frame records)"],
        ["acquired planes read on each side / every k-th plane acquired in training",
         f"{number(config.get('neighbours'))} / k = "
         + ", ".join(str(k) for k in config.get("sparsity", []))]
        if meta.get("format") == AXIAL_FORMAT else
        ["Haar levels / bridge steps / detail passes",
         f"{number(config.get('levels'))} / {number(config.get('steps'))} / "
         f"{number(config.get('detail_passes', 1))}"],
        ["normalisation", f"{norm.get('kind', '?')}: {number(norm.get('pmin'))} % → 0, "
                          f"{number(norm.get('pmax'))} % → 1, inverted to the input's units"
                          if norm else NOT_RECORDED],
        ["package version", f"`{config.get('package_version', NOT_RECORDED)}`"],
    ]
    return table(["", ""], rows)


def _restorer_scores(model: ShippedModel, benchmarks: dict[str, dict]) -> list[list[str]]:
    rows = []
    for stem, data in benchmarks.items():
        for task, result in data.get("tasks", {}).items():
            methods = result.get("methods") if isinstance(result, dict) else None
            if not isinstance(methods, dict):
                continue
            for method, row in methods.items():
                if row.get("version") != model.checksum:
                    continue
                floors = [metric("psnr", methods.get(f, {}).get("psnr")) for f in
                          ("raw", "classical")]
                rows.append([f"[`{stem}`](../benchmarks.md#{stem})", task,
                             f"{result['frames']} × {result['frame_shape'][0]}²", method,
                             *(metric(k, row.get(k)) for k in _SCORE_METRICS), *floors])
    return rows


def _dose_scores(model: ShippedModel, benchmarks: dict[str, dict]) -> list[list[str]]:
    rows = []
    for stem, data in benchmarks.items():
        for arm in data.get("per_modality", {}).values():
            if (arm.get("model") not in (model.name, f"{model.name}_avg4")
                    or arm.get("model_version") != model.checksum):
                continue  # another model, or one of this name with other weights
            dose = arm["recommended_dose"]
            restored = (arm["restored"][arm["target"]["metric"]][arm["doses"].index(dose)]
                        if dose is not None else None)
            rows.append([f"[`{stem}`](../benchmarks.md#{stem})", arm["label"],
                         f"`{arm['target']['text']}`", number(dose, 0),
                         f"{number(arm['dose_reduction_factor'], 0)}×",
                         number(restored, 3)])
    return rows


def _adaptation_scores(model: ShippedModel, benchmarks: dict[str, dict]) -> list[list[str]]:
    return [
        [f"[`{stem}`](../benchmarks.md#{stem})", defect, metric("psnr", d["base_psnr"]),
         metric("psnr", d["adapted_psnr"]), metric("psnr", d["oracle_psnr"]),
         f"{100 * d['gap_closed']:.0f} %"]
        for stem, data in benchmarks.items()
        if data.get("base_model", {}).get("checksum") == model.checksum
        for defect, d in data["defects"].items()
    ]


def _axial_scores(model: ShippedModel, benchmarks: dict[str, dict]) -> list[list[str]]:
    rows = []
    for stem, data in benchmarks.items():
        for name, version in data.get("model_versions", {}).items():
            if data.get("task") != "axial" or version != model.checksum:
                continue
            for k, result in data["results"].items():
                rows.append([f"[`{stem}`](../benchmarks.md#{stem})",
                             f"{data['stacks']} × {data['planes']} × {data['size']}²",
                             f"k = {k[1:]}", name, metric("psnr", result[name]["psnr_filled"]),
                             metric("psnr", result["cubic"]["psnr_filled"]),
                             number(result[name]["ssim_all"], 3),
                             number(result["raw_every_plane"]["ssim_all"], 3)])
    return rows


def _scores(model: ShippedModel, benchmarks: dict[str, dict]) -> list[str]:
    lines = ["Benchmark rows run with this file (same checksum); raw and classical are the "
             "floors on the same frames. Details and conditions in "
             "[benchmarks](../benchmarks.md).", ""]
    restorer = _restorer_scores(model, benchmarks)
    if restorer:
        headers = ["benchmark", "task", "frames", "method", "PSNR", "PSNR-affine", "SSIM",
                   "FRC nm", "ms/frame", "raw PSNR", "classical PSNR"]
        lines += [*table(headers, restorer), ""]
    dose = _dose_scores(model, benchmarks)
    if dose:
        headers = ["benchmark", "arm", "target", "recommended dose %", "reduction",
                   "restored at that dose"]
        lines += ["Dose sweeps run with this file (same checksum):", "",
                  *table(headers, dose), ""]
    axial = _axial_scores(model, benchmarks)
    if axial:
        headers = ["benchmark", "stacks", "acquired", "row", "PSNR filled planes",
                   "cubic PSNR filled", "SSIM volume", "raw every plane SSIM"]
        lines += ["Z-stacks acquired every k-th plane (the raw row: every plane acquired, k "
                  "times the light):", "", *table(headers, axial), ""]
        for stem, data in benchmarks.items():
            arm = data.get("dose_arm") or {}
            if arm.get("model_version") == model.checksum and arm["cheapest_meeting_reference"]:
                best = arm["cheapest_meeting_reference"]
                lines += [f"Dose arm of [`{stem}`](../benchmarks.md#{stem}): one plane in "
                          f"{best['every']} at dose {best['dose']:g} reaches "
                          "the raw stack acquired at every plane at the task's dose: "
                          f"{number(arm['photons_per_stack_cut'], 1)}× fewer photons per "
                          "stack.", ""]
    adapted = _adaptation_scores(model, benchmarks)
    if adapted:
        lines += ["As the base of the adaptation benchmark (PSNR-affine, dB):", ""]
        headers = ["benchmark", "defect", "base", "adapted", "oracle", "gap closed"]
        lines += [*table(headers, adapted), ""]
    if not (restorer or dose or axial or adapted):
        lines += ["No benchmark JSON was run with this file.", ""]
    return lines


def _limits(model: ShippedModel) -> list[str]:
    lines = [f"- {text}" for text in model.meta.get("limits", [])]
    config = model.meta.get("config", {})
    if model.meta.get("format") == MSCGM_FORMAT:
        absent = sorted(set(MSCGMConfig.model_fields) - set(config))
        if absent:
            lines.append(
                "- Config fields absent from the file take today's defaults when it is loaded: "
                + ", ".join(f"`{name}`" for name in absent) + "."
            )
    return lines or ["- None recorded."]


def model_card(model: ShippedModel, benchmarks: dict[str, dict]) -> str:
    """The card for one shipped model as markdown text."""
    lines = [
        f"# `{model.name}`",
        "",
        f"Generated by `live-restore docs` from `src/live_restore/weights/{model.path.name}` "
        "and `docs/bench/*.json`; do not edit by hand.",
        "",
        model.meta.get("purpose", f"Purpose: {NOT_RECORDED}."),
        "",
        *_description(model),
        "",
        "## Training",
        "",
        *_training(model.meta),
        "",
        "## Scores",
        "",
        *_scores(model, benchmarks),
        "## Limits",
        "",
        *_limits(model),
    ]
    return "\n".join(lines).rstrip() + "\n"
