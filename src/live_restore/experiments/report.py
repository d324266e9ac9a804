"""``live-restore docs``: docs/benchmarks.md, the model cards and the README's generated tables,
written from ``docs/bench/*.json`` and the shipped model JSONs.

Why generated: a figure typed into a page by hand drifts from the run that measured it. Every
number on these pages is read from a JSON when the page is written, and ``tests/test_docs.py``
regenerates the pages and fails on any difference.

A benchmark JSON does not record the command that wrote it, so :data:`RUNS` holds that (and
a line of context) per file. How a JSON is drawn is chosen by its file name in
``bench_renderers.RENDERERS``; a JSON that matches none gets a generic table of its values, so
adding a benchmark is one entry in each (a command, and optionally a renderer).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from live_restore.experiments.bench_renderers import renderer_for
from live_restore.experiments.markdown import replace_block, table
from live_restore.experiments.model_cards import (
    ShippedModel,
    model_card,
    model_table,
    shipped_models,
)

BENCH_DIR = Path("docs/bench")
BENCHMARKS_PAGE = Path("docs/benchmarks.md")
MODEL_CARDS_DIR = Path("docs/models")
README = Path("README.md")


@dataclass(frozen=True)
class Run:
    """What a benchmark JSON does not say about itself: the command and a line of context."""

    command: str
    context: str = ""
    in_summary: bool = True
    """False for a run kept as history (an earlier budget or model file): it stays on the
    benchmarks page and leaves the README's summary to the runs of what ships."""


_QUICK_C2S = "--task confocal2sted --preset quick"
#: One entry per ``docs/bench/NAME.json``, in page order; NAME.json's own ``command`` key, when
#: a benchmark writes one, takes precedence.
RUNS: dict[str, Run] = {
    "restorers_full": Run(
        "live-restore bench restorers --task confocal2sted --model "
        "confocal2sted:care=runs/s21/care_default.json --json docs/bench/restorers_full.json",
        "Default training budget: the shipped `confocal2sted` against a CARE trained by "
        "`live-restore train --task confocal2sted --method care --out runs/s21/care_default` "
        "(same data, preset and seed; not shipped). No DDPM rows here: the default-budget DDPM "
        "is compared on the quick test set (`restorers_quick_default_budget`).",
    ),
    "restorers_quick_default_budget": Run(
        "live-restore bench restorers --quick --task confocal2sted --model "
        "confocal2sted:care=runs/s21/care_default.json --model "
        "confocal2sted:ddpm=runs/s21/ddpm_default.json "
        "--json docs/bench/restorers_quick_default_budget.json",
        "The default-budget models of `restorers_full` plus a DDPM trained by `live-restore "
        "train --task confocal2sted --method ddpm --out runs/s21/ddpm_default`.",
        in_summary=False,
    ),
    "restorers_quick_denoise": Run(
        "live-restore bench restorers --quick --task sted_denoise --task denoise --model "
        "denoise:care=runs/v4q/denoise_care.json --model denoise:ddpm=runs/v6/denoise_ddpm.json "
        "--json docs/bench/restorers_quick_denoise.json",
        "The shipped `sted_denoise` and `denoise`; the `denoise` CARE and DDPM were trained at "
        "the quick preset (`live-restore train --task denoise --method care|ddpm --preset "
        "quick`), fewer steps than the shipped MSCGM (see the train-steps column).",
    ),
    "restorers_512": Run(
        "live-restore bench restorers --task confocal2sted --task denoise --frames 4 --size 512 "
        "--json docs/bench/restorers_512.json",
        "Time and quality of one 512² frame with the shipped models (and the shipped "
        "quick-budget CARE and DDPM baselines), on report seed 30 000.",
    ),
    "restorers_full_quick_budget": Run(
        "live-restore bench restorers --task confocal2sted --task denoise --model "
        "confocal2sted:care=runs/v5/confocal2sted_care.json --model "
        "denoise:care=runs/v5/denoise_care.json --json docs/bench/restorers_full_quick_budget.json",
        "Quick training budget on the full test set: CARE trained by `live-restore train "
        f"{_QUICK_C2S} --method care` (and the same for `denoise`); the `confocal2sted` MSCGM "
        "is the quick-preset model shipped at the time.",
        in_summary=False,
    ),
    "restorers_quick": Run(
        "live-restore bench restorers --quick --json docs/bench/restorers_quick.json",
        "Reproducible from a fresh clone: the shipped MSCGM models (default budget, 7 000 steps) "
        "against the shipped quick-budget baselines `confocal2sted_care` and "
        "`confocal2sted_ddpm` (2 500 steps, see their model cards), so the comparison favours "
        "MSCGM by its training budget. Report seed 30 000, disjoint from the training (0) and "
        "selection (5 000, 10 000) seeds.",
    ),
    "restorers_quick_denoise_mscgm_quick": Run(
        "live-restore bench restorers --quick --task denoise --model "
        "denoise:mscgm=runs/s7/dn_smooth/model.json "
        "--json docs/bench/restorers_quick_denoise_mscgm_quick.json",
        "The shipped `denoise` settings trained at the quick preset, the budget of the "
        "baselines in `restorers_quick_denoise`.",
        in_summary=False,
    ),
    "axial": Run(
        "live-restore bench restorers --task axial --model "
        "axial:mscgm_fill=runs/axial_default/axial_mscgm.json --model "
        "axial:care_fill=runs/axial_default/axial_care.json --model "
        "axial:axial_unet_quick=runs/axial_quick/axial.json --model "
        "axial:mscgm_fill_quick=runs/axial_quick/axial_mscgm.json --model "
        "axial:care_fill_quick=runs/axial_quick/axial_care.json --json docs/bench/axial.json",
        "`axial` is the shipped model: the U-Net that reads the acquired planes around each "
        "plane, trained on 128 simulated stacks of 128² (seed 0, default preset, 7 000 steps; "
        "its card has the command). `mscgm_fill` and `care_fill` were trained on the same "
        "stacks at the same budget (`live-restore train --task axial --method mscgm|care "
        "--preset default --out runs/axial_default/axial_mscgm|axial_care`) to restore the "
        "plane linearly interpolated from the acquired ones. The `_quick` rows are the three "
        "at the quick preset (48 stacks, 2 500 steps, `--preset quick --out "
        "runs/axial_quick/...`). The dose arm runs the shipped `axial`.",
    ),
    "dose_sweep": Run(
        "live-restore dose-sweep --json docs/bench/dose_sweep.json",
        "One restoration per frame. `denoise`'s smooth-detail prior was chosen partly on "
        "frames of the Confocal arm at 10 % dose, so that arm is not held-out data for it.",
    ),
    "dose_sweep_avg4": Run(
        "live-restore dose-sweep --samples 4 --json docs/bench/dose_sweep_avg4.json",
        "As `dose_sweep`, every frame restored as the mean of 4 draws.",
    ),
    "adapt_quick": Run(
        "live-restore bench adapt --quick --json docs/bench/adapt_quick.json",
        "The fine-tuning scope rule (`auto`) was chosen on probes on these test frames, so the "
        "scope column is not a held-out choice.",
    ),
    "adapt_quick_seed1": Run(
        "live-restore bench adapt --quick --seed 1 --json docs/bench/adapt_quick_seed1.json",
        "As `adapt_quick` with new defective frames, clean library, true pairs and GAN draws; "
        "the same test set.",
    ),
    "gan_sharing": Run(
        "live-restore bench adapt --gan-sharing --json docs/bench/gan_sharing.json",
        "Each shipped model fine-tuned on n true pairs mixed with synthetic pairs from one "
        "CIN-GAN pre-trained on both tasks (shared) or from a GAN per task (separate), same "
        "steps per task. The `base` column is the shipped model without fine-tuning.",
    ),
    "acquisition": Run(
        "live-restore bench acquisition --json docs/bench/acquisition.json",
        "Baseline (pymmcore-plus writing its own OME-Zarr) and hooked (live_restore writing "
        "raw and restored frames) runs interleaved on the genuine DemoCamera.",
    ),
    "acquisition_view": Run(
        "live-restore bench acquisition --view --json docs/bench/acquisition_view.json "
        "--screenshot docs/viewer_democam.png",
        "Run under `xvfb-run -a` (this machine has no screen). Both arms hooked; the viewed "
        "arm with the viewer window open on the virtual display (Mesa's software OpenGL, on "
        "the same 2 cores), in the same process as the acquisition.",
    ),
    "simulator": Run("live-restore bench simulator --json docs/bench/simulator.json"),
    "floor_check": Run(
        "live-restore bench floor --data ../shared/realdata --json docs/bench/floor_check.json",
        "The fields of the real-data folder with at least two noisy frames (the mouse brain "
        "has one). The check's noise term was chosen on the selection part.",
    ),
    "scale": Run(
        "live-restore bench scale --json docs/bench/scale.json",
        "Two cores here: two workers are all the machine has, and the client that writes the "
        "store shares them.",
    ),
    "startup": Run(
        "live-restore bench startup --json docs/bench/startup.json",
        "Targets from issue #23. The restore case includes its one frame, so it counts the "
        "libraries the classical restorer loads on first use (scikit-image, scipy).",
    ),
    "real": Run(
        "live-restore bench real --data ../shared/realdata --json docs/bench/real.json "
        "--calibration docs/calibrations/fmd_confocal_fov02.json",
        "Real frames from the FMD data set (confocal BPAE nuclei, mouse brain; 8-bit). The "
        "`adapted` rows adapt the shipped `denoise` once per part on all of the part's noisy "
        "frames; `adapted_avg4` is the same restorer with the mean of 4 draws. The "
        "`_calibrated` rows take the detector's noise from a calibration fitted to the 50 "
        "frames of fov02 (selection part; `live-restore calibrate --stack "
        "../shared/realdata/confocal_bpae_nuclei/fov02/noisy.tif`) instead of each frame. "
        "Two rows are yardsticks, not results: `gaussian_4x_light` filters the mean of a "
        "field's 4 frames (4× the light; the mouse brain has one frame), `supervised` is the "
        "`adapted` fine-tune (same settings, frames and budget) learning from the targets.",
    ),
}


# ---------------------------------------------------------------- pages


def load_benchmarks(root: Path) -> dict[str, dict]:
    """Every ``docs/bench/*.json`` under ``root``, in :data:`RUNS` order, then the rest by name."""
    paths = {p.stem: p for p in sorted((root / BENCH_DIR).glob("*.json"))}
    order = [s for s in RUNS if s in paths] + [s for s in paths if s not in RUNS]
    loaded = {}
    for stem in order:
        try:
            loaded[stem] = json.loads(paths[stem].read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{paths[stem]} is not valid JSON: {err}") from err
    return loaded


def _command(stem: str, data: dict) -> str:
    if isinstance(data.get("command"), str):
        return data["command"]
    return RUNS[stem].command if stem in RUNS else "not recorded"


def _section(stem: str, data: dict, shipped: dict[str, ShippedModel]) -> list[str]:
    renderer = renderer_for(stem)
    try:
        head = [renderer.data(data), *renderer.body(data, shipped)]
    except (AttributeError, KeyError, TypeError, IndexError, ValueError) as err:
        raise ValueError(f"docs/bench/{stem}.json does not fit its renderer "
                         f"{renderer.title!r}: {err!r}") from err
    context = RUNS[stem].context if stem in RUNS else ""
    return [
        f'<a id="{stem}"></a>', "", f"## {renderer.title}: `{stem}.json`", "",
        renderer.measures, "",
        f"- command: `{_command(stem, data)}`",
        f"- {head[0]}",
        *([f"- {context}"] if context else []),
        "", *head[1:],
    ]


def benchmarks_page(benchmarks: dict[str, dict], shipped: dict[str, ShippedModel]) -> str:
    lines = [
        "# Benchmarks",
        "",
        "Generated by `live-restore docs` from `docs/bench/*.json`; do not edit by hand "
        "(`tests/test_docs.py` fails when this page and its JSON disagree). CPU timings come "
        "from a small, shared machine and are noisy: compare rows of one run, not runs. Rows in "
        "**bold** are floors (the input and untrained restorers) that a learned model must beat.",
        "",
        *(f"- [{renderer_for(s).title}: `{s}.json`](#{s})" for s in benchmarks),
        "",
    ]
    for stem, data in benchmarks.items():
        lines += _section(stem, data, shipped)
    return "\n".join(lines).rstrip() + "\n"


def benchmark_summary(benchmarks: dict[str, dict], shipped: dict[str, ShippedModel]) -> str:
    """The README's table: one line per benchmark JSON (but the runs kept as history),
    linking to its section."""
    rows = [[f"[`{stem}`](docs/benchmarks.md#{stem})", renderer_for(stem).headline(data, shipped)]
            for stem, data in benchmarks.items() if stem not in RUNS or RUNS[stem].in_summary]
    return "\n".join(table(["benchmark", "result"], rows))


def render_docs(root: Path) -> dict[Path, str]:
    """Every generated file under ``root`` (relative path → text): benchmarks page, model cards
    and the README with its generated blocks replaced. Raises ``ValueError`` on a JSON that does
    not fit its renderer or a README without its markers."""
    root = Path(root)
    benchmarks = load_benchmarks(root)
    shipped = shipped_models()
    pages = {BENCHMARKS_PAGE: benchmarks_page(benchmarks, shipped)}
    for model in shipped.values():
        pages[MODEL_CARDS_DIR / f"{model.name}.md"] = model_card(model, benchmarks)
    readme = (root / README).read_text()
    readme = replace_block(readme, "benchmark-summary", benchmark_summary(benchmarks, shipped))
    pages[README] = replace_block(readme, "models", model_table(shipped))
    return pages


def stale_docs(root: Path) -> list[Path]:
    """Generated files under ``root`` whose text differs from what their JSON gives."""
    root = Path(root)
    return [path for path, text in render_docs(root).items()
            if not (root / path).is_file() or (root / path).read_text() != text]


def write_docs(root: Path) -> list[Path]:
    """Regenerate the pages under ``root``; return the ones that changed."""
    root = Path(root)
    changed = []
    for path, text in render_docs(root).items():
        target = root / path
        if not target.is_file() or target.read_text() != text:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
            changed.append(path)
    return changed
