"""How each kind of benchmark JSON is drawn on docs/benchmarks.md and in the README's summary.

A :class:`Renderer` turns one JSON into a sentence on its data, tables and a one-line result.
:data:`RENDERERS` maps file-name patterns to renderers; a JSON matching none is drawn by
:data:`GENERIC` as a table of its values, so a new benchmark shows up before anyone writes its
renderer. Floors (the raw input and untrained restorers) are always shown where the JSON has
them, first and in bold.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from live_restore.experiments.acquisition_renderers import (
    acquisition_body,
    acquisition_data,
    acquisition_headline,
    view_body,
    view_data,
    view_headline,
)
from live_restore.experiments.axial_renderers import axial_body, axial_data, axial_headline
from live_restore.experiments.markdown import FLOORS, metric, number, table, values_table
from live_restore.experiments.model_cards import ShippedModel
from live_restore.experiments.real_renderers import (
    floor_body,
    floor_data,
    floor_headline,
    real_body,
    real_data,
    real_headline,
)

#: Restorer-benchmark columns: (JSON key, header).
RESTORER_METRICS = (
    ("psnr", "PSNR"),
    ("psnr_affine", "PSNR-affine"),
    ("ssim", "SSIM"),
    ("frc_resolution_nm", "FRC nm"),
    ("ms_per_frame", "ms/frame"),
)


@dataclass(frozen=True)
class Renderer:
    """How one kind of benchmark JSON is drawn: a title, what it measures, its data, its tables
    and the one-line result for the README's summary."""

    title: str
    measures: str
    data: Callable[[dict], str]
    body: Callable[[dict, dict[str, ShippedModel]], list[str]]
    headline: Callable[[dict, dict[str, ShippedModel]], str]


# ---------------------------------------------------------------- restorers


def _method_order(methods: dict) -> list[str]:
    floors = [m for m in FLOORS if m in methods]
    return ["target", *floors, *(m for m in methods if m not in ("target", *FLOORS))]


def _model_cell(row: dict, shipped: dict[str, ShippedModel]) -> str:
    """Which model file a row ran: the shipped one, an earlier file of a shipped name, or a path."""
    path, version = row.get("model"), row.get("version")
    if path is None:
        return "built in" if version else ""
    name = Path(path).stem
    if Path(path).parent.name in ("weights", "models") and name in shipped:
        if shipped[name].checksum == version:
            return f"shipped `{name}`"
        return f"earlier `{name}` file ({version})"
    return f"`{path}` ({version})"


def _restorer_data(data: dict) -> str:
    tasks = data["tasks"].values()
    sizes = sorted({f"{t['frames']} × {t['frame_shape'][0]}²" for t in tasks})
    seeds = sorted({str(t["seed"]) for t in tasks})
    threads = sorted({str(t.get("threads", "?")) for t in tasks})
    return (
        f"report data: {', '.join(sizes)} simulated fields per task, test seed "
        f"{', '.join(seeds)} (training pairs use seed 0; the shipped models' settings were "
        f"chosen on validation seed 5000); {', '.join(threads)} torch thread(s), "
        f"{data.get('cpu_count', '?')} CPU cores."
    )


def _check(value: object) -> str:
    """A ``targets_check`` entry: met, not met, or – where the rows it needs are missing."""
    return "–" if value is None else ("met" if value else "**not met**")


def _restorer_body(data: dict, shipped: dict[str, ShippedModel]) -> list[str]:
    lines: list[str] = []
    for task, result in data["tasks"].items():
        methods = result["methods"]
        rows, skipped = [], []
        for name in _method_order(methods):
            row = methods[name]
            if "skipped" in row:
                skipped.append(f"`{name}` ({row['skipped']})")
                continue
            rows.append([
                f"**{name}**" if name in FLOORS else name,
                _model_cell(row, shipped),
                number(row.get("train_steps")),
                *(metric(key, row.get(key)) for key, _ in RESTORER_METRICS),
            ])
        lines += [f"**{task}** ({result['frames']} frames of {result['frame_shape'][0]}²)", ""]
        headers = ["method", "model", "train steps", *(h for _, h in RESTORER_METRICS)]
        lines += [*table(headers, rows), ""]
        if skipped:
            lines += [f"Not run: {'; '.join(skipped)}.", ""]
    checks = data.get("targets_check", {})
    names = sorted({check for per_task in checks.values() for check in per_task})
    if names:
        lines += ["Targets (`targets_check`; – where a needed row is missing):", ""]
        rows = [[f"`{n}`", *(_check(checks[t].get(n)) for t in checks)] for n in names]
        lines += [*table(["check", *checks], rows), ""]
    return lines


def _restorer_headline(data: dict, shipped: dict[str, ShippedModel]) -> str:
    """Per task: the first learned method (its file), single-draw baselines, the floors."""
    parts = []
    for task, result in data["tasks"].items():
        methods = result["methods"]
        ran = [m for m in _method_order(methods) if m != "target" and "psnr" in methods[m]]
        learned = [m for m in ran if m not in FLOORS and not m.endswith("_avg4")]
        if not learned:
            continue
        lead, *others = learned
        row = methods[lead]
        cells = [f"{m} {metric('psnr', methods[m]['psnr'])}" for m in others]
        floors = [f"{m} {metric('psnr', methods[m]['psnr'])}" for m in ran if m in FLOORS]
        parts.append(
            f"`{task}` {result['frames']} × {result['frame_shape'][0]}²: {lead}, "
            f"{_model_cell(row, shipped)}: {metric('psnr', row['psnr'])} dB, "
            f"{metric('ms_per_frame', row['ms_per_frame'])} ms/frame"
            + (f"; {', '.join(cells)}" if cells else "")
            + (f"; floors {', '.join(floors)}" if floors else "")
        )
    return "; ".join(parts) or "no learned method ran"


# ---------------------------------------------------------------- dose sweep


def _dose_data(data: dict) -> str:
    return (
        f"report data: the simulated microscope, {data['fields_per_dose']} fresh fields per dose "
        f"with {data['frames_per_dose']} frames each and a reference-dose frame on every field; "
        f"doses set by `{data['dose_control']}`; scored against the simulator's "
        f"{data['basis'].replace('_', ' ')}."
    )


def _dose_body(data: dict, shipped: dict[str, ShippedModel]) -> list[str]:
    lines: list[str] = []
    for arm in data["per_modality"].values():
        target = arm["target"]
        metric_name = target["metric"]
        lines += [
            f"**{arm['label']}** (`{arm['model']}`; {arm['modality']} frames scored against "
            f"{arm['reference_modality']} truth; target `{target['text']}`: {target['source']})",
            "",
        ]
        rows = []
        for i, dose in enumerate(arm["doses"]):
            restored = arm["restored"][metric_name][i]
            rows.append([
                number(dose, 0),
                metric("ssim", arm["raw"]["ssim"][i]),
                metric("ssim", arm["restored"]["ssim"][i]),
                metric("psnr", arm["raw"]["psnr"][i]),
                metric("psnr", arm["restored"]["psnr"][i]),
                number(arm["restored"]["consistency"][i], 3),
                "yes" if restored >= target["value"] else "no",
            ])
        headers = ["dose %", "raw SSIM", "restored SSIM", "raw PSNR", "restored PSNR",
                   "consistency", "meets target"]
        lines += [*table(headers, rows), ""]
        bleach = arm["bleaching"]
        lines += [
            f"Recommended dose: {number(arm['recommended_dose'], 0)} % "
            f"(reduction {number(arm['dose_reduction_factor'], 0)}×: "
            f"{arm['note'].rstrip('.')}). Over "
            f"{bleach['frames']} frames the simulator's bleaching leaves "
            f"{100 * bleach['recommended']['signal_left']:.3g} % of the signal at the "
            f"recommended dose, {100 * bleach['reference']['signal_left']:.3g} % at the "
            "reference dose.",
            "",
        ]
    return lines


def _dose_headline(data: dict, shipped: dict[str, ShippedModel]) -> str:
    return "; ".join(
        f"{arm['label']} (`{arm['model']}`) {number(arm['dose_reduction_factor'], 0)}× dose "
        "reduction"
        for arm in data["per_modality"].values()
    )


# ---------------------------------------------------------------- adaptation


def _adapt_data(data: dict) -> str:
    s = data["settings"]
    return (
        f"report data: {s['test_frames']} test frames of {s['frame_size']}² per defect, test "
        f"seed {data['test_seed']}, reference = mean of {s['reference_draws']} noise "
        f"realisations; training draws use seed {data['seed']} + 1 …; base model "
        f"`{data['base_model']['name']}` ({data['base_model']['checksum']}); CIN-GAN "
        f"pre-trained on {', '.join(data['cingan_pretrained_on'])}."
    )


def _adapt_body(data: dict, shipped: dict[str, ShippedModel]) -> list[str]:
    s = data["settings"]
    arms = (f"Arms: `base` (no fine-tuning), `adapted` (CIN-GAN from {s['n_defective_frames']} "
            f"unpaired defective frames and {s['clean_frames']} clean frames), `oracle` "
            f"({s['oracle_pairs']} true pairs), `pairs{s['few_pairs']}` ({s['few_pairs']} true "
            "pairs), and those pairs plus CIN-GAN pairs. Gap closed = (adapted − base) / "
            "(oracle − base). PSNR-affine in dB.")
    rows = [[
        defect,
        metric("psnr", d["raw_psnr"]),
        metric("psnr", d["base_psnr"]),
        metric("psnr", d["adapted_psnr"]),
        metric("psnr", d["oracle_psnr"]),
        metric("psnr", d["pairs10_psnr"]),
        metric("psnr", d["pairs10_cingan_psnr"]),
        f"{100 * d['gap_closed']:.0f} %",
        d["adapted_scope"],
        number(d["calibration"]["out_of_focus_light"], 2),
        f"{metric('psnr', d['gen_divergence_psnr'])} / {metric('psnr', d['real_divergence_psnr'])}",
        metric("minutes", d["minutes"]),
    ] for defect, d in data["defects"].items()]
    headers = ["defect", "**raw**", "**base**", "adapted", "oracle", f"pairs{s['few_pairs']}",
               f"pairs{s['few_pairs']} + CIN-GAN", "gap closed", "scope",
               "out-of-focus light", "divergence G / real", "minutes"]
    checks = data["targets_check"]
    names = sorted({n for per in checks.values() for n in per})
    check_rows = [[f"`{n}`", *(_check(checks[d].get(n)) for d in checks)] for n in names]
    return [
        arms, "", *table(headers, rows), "",
        f"Pre-training {metric('minutes', data['pretrain_minutes'])} min; whole run "
        f"{metric('minutes', data['total_minutes'])} min on {data['threads']} threads.", "",
        *table(["check", *checks], check_rows), "",
    ]


def _adapt_headline(data: dict, shipped: dict[str, ShippedModel]) -> str:
    return "gap closed: " + ", ".join(
        f"{defect} {100 * d['gap_closed']:.0f} %" for defect, d in data["defects"].items()
    )


def _gan_sharing_data(data: dict) -> str:
    s = data["settings"]
    return (f"report data: {s['test_frames']} test frames of {s['frame_size']}² per task, test "
            f"seed {data['test_seed']}; training seed {data['seed']}.")


def _gan_sharing_body(data: dict, shipped: dict[str, ShippedModel]) -> list[str]:
    counts = [str(n) for n in data["pair_counts"]]
    headers = ["task", "**base**"] + [f"{n} pairs, {k}" for n in counts
                                      for k in ("shared", "separate")]
    rows = [[task, metric("psnr", t["base_psnr"]),
             *(metric("psnr", t[n][k]) for n in counts for k in ("shared", "separate"))]
            for task, t in data["tasks"].items()]
    return ["PSNR-affine in dB.", "", *table(headers, rows), "",
            f"Whole run {metric('minutes', data['minutes'])} min.", ""]


def _gan_sharing_headline(data: dict, shipped: dict[str, ShippedModel]) -> str:
    parts = []
    for task, t in data["tasks"].items():
        gains = [f"{t[str(n)]['separate'] - t[str(n)]['shared']:+.2f}" for n in data["pair_counts"]]
        parts.append(f"{task} {' / '.join(gains)} dB")
    counts = " / ".join(str(n) for n in data["pair_counts"])
    return f"separate − shared GAN at {counts} pairs: {', '.join(parts)}"


# ---------------------------------------------------------------- acquisition, simulator, startup


def _simulator_data(data: dict) -> str:
    shape = "×".join(str(n) for n in data["frame_shape"])
    return (f"report data: {data['frames']} frames of {shape} per MDA, "
            f"{data['cpu_count']} CPU cores.")


def _simulator_body(data: dict, shipped: dict[str, ShippedModel]) -> list[str]:
    mda = [[name, metric("fps", r["fps"])] for name, r in data["mda"].items()]
    pairs = [[task, r["pairs"], f"{r['size']}²", metric("minutes", r["minutes_per_1000"])]
             for task, r in data["pairs"].items()]
    return [*table(["MDA", "frames/s"], mda), "",
            *table(["task", "pairs timed", "size", "minutes per 1000 pairs"], pairs), ""]


def _simulator_headline(data: dict, shipped: dict[str, ShippedModel]) -> str:
    return ", ".join(f"{name} {metric('fps', r['fps'])} frames/s"
                     for name, r in data["mda"].items())


def _startup_data(data: dict) -> str:
    load = [number(v) for v in data["load_average_1m"].values()]
    return (f"report data: {data['repeats']} runs of each case in fresh processes, interleaved, "
            f"after {data['warmup_runs']} untimed run each; restore input {data['input']}; "
            f"{data['machine']['cpu_count']} CPU cores, 1-minute load {' → '.join(load)}.")


def _startup_body(data: dict, shipped: dict[str, ShippedModel]) -> list[str]:
    rows = [[name, f"`{c['command']}`", number(c["median_s"]), number(c["min_s"]),
             number(c["target_s"], 0), _check(c["met"])] for name, c in data["cases"].items()]
    heavy = ", ".join(data["heavy_modules_at_cli_import"]) or "none"
    return [*table(["case", "command", "median s", "min s", "target s", "met"], rows), "",
            f"Heavy libraries loaded by importing the CLI: {heavy}.", ""]


def _startup_headline(data: dict, shipped: dict[str, ShippedModel]) -> str:
    return ", ".join(f"{name} {number(c['median_s'])} s (≤ {number(c['target_s'], 0)} s: "
                     f"{_check(c['met'])})" for name, c in data["cases"].items() if c["target_s"])


# ---------------------------------------------------------------- real frames

# ---------------------------------------------------------------- scale-out


def _scale_data(data: dict) -> str:
    d = data["data"]
    return (f"report data: {d['frames']} frames of {d['size_px']}² {d['dtype']} "
            f"({d['source']}); GPU worker: {data['gpu_worker']}.")


def _scale_body(data: dict, shipped: dict[str, ShippedModel]) -> list[str]:
    rows = [[name, arm, number(r["fps"], 1), number(r["startup_s"], 1),
             number(row["scaling_efficiency_2_workers"]), number(row["bit_identical"])]
            for name, row in data["models"].items() for arm, r in row["arms"].items()]
    return [*table(["model", "arm", "frames/s", "start-up s",
                    "efficiency, 2 workers", "bit-identical to one process"], rows), ""]


def _scale_headline(data: dict, shipped: dict[str, ShippedModel]) -> str:
    return "; ".join(
        f"{name}: {number(row['arms']['single_process']['fps'], 1)} → "
        f"{number(row['arms']['dask_2_workers']['fps'], 1)} frames/s on 2 workers "
        f"(efficiency {number(row['scaling_efficiency_2_workers'])})"
        for name, row in data["models"].items())


GENERIC = Renderer(
    title="Benchmark",
    measures="No renderer is registered for this JSON yet; its values as recorded.",
    data=lambda data: "report data: not described by a renderer.",
    body=lambda data, shipped: values_table(data),
    headline=lambda data, shipped: "see details",
)

#: (file-name pattern, renderer); the first pattern matching a JSON's stem draws it.
RENDERERS: list[tuple[str, Renderer]] = [
    ("axial", Renderer(
        "Axial inpainting on simulated z-stacks",
        "Z-stacks acquired every k-th plane, restored at every plane: PSNR (after the affine "
        "fit, over the volume) on the filled planes, the acquired planes and all, and the "
        "volume's SSIM, against the high-dose stack.",
        axial_data, axial_body, axial_headline)),
    ("restorers*", Renderer(
        "Restorers on simulated test data",
        "Quality and speed of each restorer on seeded simulated pairs: PSNR and PSNR-affine "
        "(after the affine fit to the target) and SSIM against the high-dose target; FRC (1/7 "
        "threshold) between the restorations of two noise realisations of each field (the "
        "`target` row: between two target realisations); ms per frame, median.",
        _restorer_data, _restorer_body, _restorer_headline)),
    ("dose_sweep*", Renderer(
        "Reduced-dose calibration",
        "Per arm, raw and restored frames at each laser dose scored against the noise-free "
        "truth, and the lowest dose whose restored frames meet raw frames at the reference dose.",
        _dose_data, _dose_body, _dose_headline)),
    ("adapt*", Renderer(
        "Adaptation to defects the base model never saw",
        "Whether CIN-GAN adaptation from a few unpaired defective frames rescues a restorer, "
        "against fine-tuning on true pairs.",
        _adapt_data, _adapt_body, _adapt_headline)),
    ("gan_sharing", Renderer(
        "One shared CIN-GAN against one GAN per task",
        "Fine-tuning each shipped model on a few true pairs plus synthetic pairs from a shared "
        "or a per-task CIN-GAN.",
        _gan_sharing_data, _gan_sharing_body, _gan_sharing_headline)),
    ("acquisition", Renderer(
        "Acquisition overhead",
        "Whether hooking live_restore into an MDA costs the acquisition frames or frame rate.",
        acquisition_data, acquisition_body, acquisition_headline)),
    ("acquisition_view", Renderer(
        "Acquisition with the viewer open",
        "Whether watching raw and restored frames live in the viewer window costs the "
        "acquisition frame rate.",
        view_data, view_body, view_headline)),
    ("real", Renderer(
        "Real microscope frames",
        "Restoration of real low-dose confocal frames against their long-average targets: the "
        "floors, every shipped model zero-shot (one draw, and `_avgK` the mean of K draws), the "
        "shipped `denoise` adapted from the noisy "
        "frames alone (Noise2Noise), and CAREamics' N2V2 trained on the same frames. "
        "PSNR-affine fits the restoration affinely to the target; the 8-bit column uses the "
        "data type's range (the FMD papers' convention), the percentile column the CARE one.",
        real_data, real_body, real_headline)),
    ("floor*", Renderer(
        "Frames restored below the floor, seen live",
        "Whether the live floor check, which judges each restored frame against the field's "
        "next exposure, flags the real fields a restorer leaves below a Gaussian blur.",
        floor_data, floor_body, floor_headline)),
    ("scale", Renderer(
        "Blockwise restoration on Dask",
        "Frames per second restoring one store's pending frames in one process (`resume`) "
        "and on a local Dask cluster of 1 and 2 single-threaded workers (`resume --dask`), "
        "once every process has loaded its model (that start-up beside it), and whether the "
        "frames match the single-process ones.",
        _scale_data, _scale_body, _scale_headline)),
    ("startup", Renderer(
        "CLI start-up time",
        "Wall time of a fresh process from spawn to exit: `--help`, the package import and a "
        "one-frame `restore` (the start-up before a restore's first frame).",
        _startup_data, _startup_body, _startup_headline)),
    ("simulator", Renderer(
        "Simulator speed",
        "Frame rate of the simulated camera in a real MDA, and paired-data generation time.",
        _simulator_data, _simulator_body, _simulator_headline)),
]


def renderer_for(stem: str) -> Renderer:
    """The renderer registered for ``docs/bench/STEM.json``, else :data:`GENERIC`."""
    return next((r for pattern, r in RENDERERS if fnmatch.fnmatch(stem, pattern)), GENERIC)
