"""Benchmarks with JSON output (the ``bench`` sub-app), the dose sweep, and the docs generated
from the benchmarks' JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from live_restore.cli.root import app, console, fail, report_table

bench_app = typer.Typer(no_args_is_help=True, help="Benchmarks with JSON output.")
app.add_typer(bench_app, name="bench")


@app.command("dose-sweep")
def dose_sweep(
    config: Annotated[Path | None, typer.Option(
        help="Micro-Manager config (default: the simulated confocal/STED microscope)")] = None,
    doses: Annotated[str, typer.Option(help="comma-separated doses, e.g. 1,2,5,10,20,50,100")
                     ] = "1,2,5,10,20,50,100",
    reference_dose: Annotated[float | None, typer.Option(
        help="the reference dose (default: the highest)")] = None,
    frames_per_dose: Annotated[int, typer.Option(help="frames K per field")] = 2,
    fields_per_dose: Annotated[int, typer.Option(help="fresh fields F per dose")] = 3,
    modality: Annotated[str | None, typer.Option(
        help="channel-group preset, e.g. Confocal or STED (default: every preset)")] = None,
    model: Annotated[str, typer.Option(
        help="restorer, or 'auto': sted_denoise / denoise when shipped, else classical")] = "auto",
    samples: Annotated[int, typer.Option(
        help="restore each frame as the mean of this many draws (MSCGM: offsets, turns)")] = 1,
    target: Annotated[str | None, typer.Option(
        help="e.g. 'ssim>=0.90' (default: raw SSIM at the reference dose)")] = None,
    dose_property: Annotated[str | None, typer.Option(
        help="'Device-Property' or config group that sets the dose (default: "
             "<camera>-LaserPower, else the 'Dose' group)")] = None,
    bleach_frames: Annotated[int, typer.Option(
        help="frames N for the bleaching estimate and the recommended sequence")] = 100,
    roi: Annotated[int, typer.Option(help="centred square ROI in pixels (0: full frame)")] = 256,
    output: Annotated[Path, typer.Option(help="folder for the per-dose stores and figures")
                      ] = Path("live-restore-dose-sweep"),
    json_out: Annotated[Path | None, typer.Option("--json", help="write the JSON report")] = None,
    device: Annotated[str | None, typer.Option(help="torch device")] = None,
    overwrite: Annotated[bool, typer.Option(help="replace an existing output")] = False,
) -> None:
    """Calibrate the lowest light dose whose restored frames still meet a quality target."""
    from live_restore.experiments.dose import plot_strip, plot_sweep, run_dose_sweep

    try:
        report = run_dose_sweep(
            output, config=config, doses=doses, reference_dose=reference_dose,
            frames_per_dose=frames_per_dose, fields_per_dose=fields_per_dose,
            modality=modality, model=model, samples=samples, target=target,
            dose_property=dose_property, roi=roi, bleach_frames=bleach_frames,
            device=device, overwrite=overwrite, progress=console.print,
        )
        plot_sweep(report, output / "dose_sweep.png")
        plot_strip(report, output / "dose_strip.png")
    except (ValueError, OSError) as exc:
        raise fail(exc) from exc
    if json_out is not None:
        report.to_json(json_out)
    for arm in report.arms:
        factor = arm.dose_reduction_factor
        console.print(report_table(f"dose sweep: {arm.label} ({arm.model})", {
            "target": f"{arm.target} ({arm.target.source})",
            "recommended dose": "none" if arm.recommended_dose is None
            else f"{arm.recommended_dose:g}",
            "dose reduction factor": "n/a" if factor is None else f"{factor:.3g}x",
            "note": arm.note,
        }))
    console.print(f"figures: {output / 'dose_sweep.png'}, {output / 'dose_strip.png'}")
    if report.sequence:
        console.print(f"sequence at the recommended dose: {report.sequence}")


@bench_app.command("acquisition")
def bench_acquisition_cmd(
    json_out: Annotated[Path, typer.Option("--json", help="where to write the JSON")],
    quick: Annotated[bool, typer.Option(help="fewer frames and repeats")] = False,
    model: Annotated[str, typer.Option(help="restorer")] = "classical",
    view: Annotated[bool, typer.Option(
        "--view", help="hooked MDA without and with the viewer window open (needs the "
                       "`viewer` extra and a display: `xvfb-run -a` headless)")] = False,
    screenshot: Annotated[Path | None, typer.Option(
        help="with --view: keep the last viewed run's window as this PNG")] = None,
) -> None:
    """Baseline vs hooked MDA on the genuine DemoCamera (512², 1 ms); with --view, hooked
    without vs with the viewer open."""
    if view:
        from live_restore.cli.viewer import viewer_module

        try:
            viewer_module().check_display()
        except OSError as exc:
            raise fail(exc) from exc
        from live_restore.experiments.bench_view import bench_acquisition_view

        result = bench_acquisition_view(model=model, screenshot=screenshot,
                                        **({"frames": 200, "repeats": 1} if quick else {}))
    else:
        from live_restore.experiments.bench_acquisition import bench_acquisition

        result = bench_acquisition(frames=200, repeats=1 if quick else 3, model=model)
    json_out.write_text(json.dumps(result, indent=2))
    console.print(report_table("bench acquisition", {
        k: v for k, v in result.items() if not isinstance(v, (list, dict))
    }))


@bench_app.command("simulator")
def bench_simulator_cmd(
    json_out: Annotated[Path, typer.Option("--json", help="where to write the JSON")],
    quick: Annotated[bool, typer.Option(help="fewer frames and pairs")] = False,
) -> None:
    """Simulated camera frame rate in a real MDA (512²) and paired-data generation speed."""
    from live_restore.experiments.bench_acquisition import bench_simulator

    result = bench_simulator(frames=60 if quick else 200, pairs=4 if quick else 16)
    json_out.write_text(json.dumps(result, indent=2))
    console.print_json(json.dumps(result))


@bench_app.command("startup")
def bench_startup_cmd(
    json_out: Annotated[Path, typer.Option("--json", help="where to write the JSON")],
    repeats: Annotated[int, typer.Option(min=1, help="timed runs of each case")] = 5,
) -> None:
    """Start-up time of `--help`, `import live_restore` and a one-frame restore, fresh processes."""
    from live_restore.experiments.bench_startup import bench_startup

    try:
        result = bench_startup(repeats, say=lambda msg: console.print(msg))
    except (ValueError, RuntimeError, OSError) as exc:
        raise fail(exc) from exc
    json_out.write_text(json.dumps(result, indent=2))
    table = Table("case", "median s", "min s", "target s", "met", title="bench startup")
    for name, case in result["cases"].items():
        target, met = case["target_s"], case["met"]
        table.add_row(name, f"{case['median_s']:.2f}", f"{case['min_s']:.2f}",
                      "" if target is None else f"{target:g}", "" if met is None else str(met))
    console.print(table)


@bench_app.command("restorers")
def bench_restorers_cmd(
    json_out: Annotated[Path, typer.Option("--json", help="where to write the JSON")],
    quick: Annotated[bool, typer.Option(help="4 frames of 256² instead of 16 of 512²")] = False,
    task: Annotated[list[str] | None, typer.Option(
        help="repeatable; default confocal2sted and denoise")] = None,
    model: Annotated[list[str] | None, typer.Option(
        help="TASK:METHOD=PATH (METHOD mscgm|care|ddpm; axial:NAME=PATH for --task axial), "
             "repeatable; default: shipped models")
    ] = None,
    device: Annotated[str | None, typer.Option(help="torch device")] = None,
    frames: Annotated[int | None, typer.Option(help="test frames per task (override)")] = None,
    size: Annotated[int | None, typer.Option(help="frame side in pixels (override)")] = None,
) -> None:
    """MSCGM vs CARE, DDPM(-avg), classical and raw on a seeded simulated test set; with
    --task axial, z-stacks acquired every k-th plane (axial models vs interpolation)."""
    from live_restore.experiments.bench_restorers import bench_restorers
    from live_restore.models.restorer import list_models

    try:
        tasks = tuple(task or ("confocal2sted", "denoise"))
        if "axial" in tasks:
            if tasks != ("axial",):
                raise ValueError("--task axial benchmarks z-stacks: run it on its own")
            result = _bench_axial(model or [], quick, frames, size)
            json_out.write_text(json.dumps(result, indent=2))
            console.print_json(json.dumps(result["targets_check"]))
            return
        shipped = {row["name"]: row["path"] for row in list_models() if row["kind"] == "shipped"}
        # The shipped MSCGM model of each task, and the shipped baselines trained beside it.
        models: dict[str, dict[str, str]] = {
            t: {method: shipped[name] for method, name in
                (("mscgm", t), ("care", f"{t}_care"), ("ddpm", f"{t}_ddpm")) if name in shipped}
            for t in tasks
        }
        for spec in model or []:
            name, method, path = _model_spec(spec)
            models.setdefault(name, {})[method] = path
        result = bench_restorers(tasks, models, quick, frames=frames, size=size, device=device)
    except ValueError as exc:
        raise fail(exc) from exc
    json_out.write_text(json.dumps(result, indent=2))
    console.print_json(json.dumps(result["targets_check"]))


def _model_spec(spec: str) -> tuple[str, str, str]:
    """``--model TASK:METHOD=PATH`` as its three parts."""
    key, eq, path = spec.partition("=")
    task, colon, method = key.partition(":")
    if not (eq and colon):
        raise ValueError(f"--model must be TASK:METHOD=PATH, got {spec!r}")
    return task, method, path


def _bench_axial(specs: list[str], quick: bool, stacks: int | None, size: int | None) -> dict:
    """``bench restorers --task axial``: the shipped ``axial`` model (if any) and every
    ``--model axial:NAME=PATH``, on 4 stacks of 128² (``--quick``) or 16 of 256²; the dose
    arm with the model named ``axial``."""
    from live_restore.experiments.bench_axial import bench_axial
    from live_restore.models.restorer import MODELS_DIR

    models = {"axial": MODELS_DIR / "axial.json"} if (MODELS_DIR / "axial.json").is_file() else {}
    for spec in specs:
        task, name, path = _model_spec(spec)
        if task != "axial":
            raise ValueError(f"--model must be axial:NAME=PATH with --task axial, got {spec!r}")
        models[name] = Path(path)
    return bench_axial(stacks=stacks or (4 if quick else 16), size=size or (128 if quick else 256),
                       models=models, dose_model="axial" if "axial" in models else None)


@bench_app.command("adapt")
def bench_adapt_cmd(
    json_out: Annotated[Path, typer.Option("--json", help="where to write the JSON")],
    quick: Annotated[bool, typer.Option(
        help="128² frames and shorter training (≤ 30 min on 2 CPU cores)")] = False,
    defect: Annotated[list[str] | None, typer.Option(
        help="repeatable; default haze, stripes, detector")] = None,
    base: Annotated[str, typer.Option(help="MSCGM model to adapt")] = "denoise",
    seed: Annotated[int, typer.Option(help="seed for every training draw")] = 0,
    scope: Annotated[str, typer.Option(
        help="weights fine-tuned: auto (heads on CIN-GAN pairs alone, all with true pairs) | "
             "all | heads")] = "auto",
    gan_sharing: Annotated[bool, typer.Option(
        help="instead: one shared CIN-GAN vs one GAN per task, 10 and 50 true pairs, on "
             "denoise and confocal2sted (seed 002's comparison)")] = False,
) -> None:
    """Base vs CIN-GAN-adapted vs oracle vs 10-pair restorers on defects the base never saw."""
    from live_restore.adapt.finetune import AdaptConfig
    from live_restore.experiments.bench_adapt import (
        BENCH_ADAPT_PRESETS,
        DEFECTS,
        bench_adapt,
        bench_gan_sharing,
    )

    try:
        config = BENCH_ADAPT_PRESETS["quick" if gan_sharing or quick else "full"]
        adapt_config = AdaptConfig.model_validate(config.adapt.model_dump() | {"scope": scope})
        config = config.model_copy(update={"adapt": adapt_config})
        if gan_sharing:
            result = bench_gan_sharing(config=config, seed=seed,
                                       say=lambda msg: console.print(msg))
        else:
            result = bench_adapt(tuple(defect or DEFECTS), base, quick, config=config, seed=seed,
                                 say=lambda msg: console.print(msg))
    except ValueError as exc:
        raise fail(exc) from exc
    json_out.write_text(json.dumps(result, indent=2))
    console.print_json(json.dumps(result["targets_check"] if "targets_check" in result
                                  else result["tasks"]))


@bench_app.command("real")
def bench_real_cmd(
    json_out: Annotated[Path, typer.Option("--json", help="where to write the JSON")],
    data: Annotated[Path, typer.Option(
        help="folder of fields (each a folder with noisy.tif and target.tif)")],
    quick: Annotated[bool, typer.Option(
        help="2 fields per part, 128² crops, 1 CPU minute of N2V2")] = False,
    report_field: Annotated[list[str] | None, typer.Option(
        help="field name or glob of the report part, repeatable; default: the real-data split")
    ] = None,
    n2v_minutes: Annotated[float | None, typer.Option(
        help="N2V2 training CPU minutes per network (override)")] = None,
    training_unit: Annotated[str, typer.Option(
        help="trained rows: one network per part (all its noisy frames) or per field")] = "part",
    peers_python: Annotated[Path | None, typer.Option(
        help="the CAREamics peer environment's python (default $LIVE_RESTORE_PEERS_PYTHON, "
             "else .venv-peers/bin/python)")] = None,
    adapt: Annotated[str, typer.Option(
        help="MODULE:FUNCTION called as f(base_restorer, stacks) -> restorer for the adapted "
             "row, or 'none' to skip it")] = "live_restore.adapt.noisy:adapt_from_noisy",
    device: Annotated[str | None, typer.Option(help="torch device")] = None,
    calibration: Annotated[Path | None, typer.Option(
        help="detector calibration JSON: adds a NAME_calibrated row for classical and every "
             "model that reads a noise level")] = None,
) -> None:
    """Floors, shipped models, N2V2 and an adapted restorer on real noisy frames."""
    import shlex
    import sys
    from importlib import import_module

    from live_restore.experiments.bench_real import (
        BENCH_REAL_PRESETS,
        BenchRealConfig,
        bench_real,
    )
    from live_restore.models.calibration import Calibration

    try:
        update: dict[str, object] = {"training_unit": training_unit}
        if report_field:
            update["report_fields"] = tuple(report_field)
        if n2v_minutes is not None:
            update["n2v_cpu_minutes"] = n2v_minutes
        preset = BENCH_REAL_PRESETS["quick" if quick else "full"]
        config = BenchRealConfig.model_validate(preset.model_dump() | update)
        adapt_fn = None
        if adapt != "none":
            module, colon, name = adapt.partition(":")
            if not (colon and module and name):
                raise ValueError(f"--adapt must be MODULE:FUNCTION, got {adapt!r}")
            try:
                adapt_fn = getattr(import_module(module), name)
            except (ImportError, AttributeError) as err:
                raise ValueError(f"cannot load --adapt {adapt!r}: {err}") from err
        result = bench_real(data, config, adapt=adapt_fn, peers_python=peers_python,
                            device=device, command=shlex.join(["live-restore", *sys.argv[1:]]),
                            calibration=None if calibration is None else Calibration.load(
                                calibration),
                            say=lambda msg: console.print(msg))
    except ValueError as exc:
        raise fail(exc) from exc
    json_out.write_text(json.dumps(result, indent=2))
    table = Table(title="bench real: PSNR-affine (dB), mean per part")
    for col in ("row", "report", "selection", "vs gaussian (report)"):
        table.add_column(col)
    for name, row in result["rows"].items():
        if "skipped" in row:
            table.add_row(name, f"skipped: {row['skipped']}", "", "")
            continue
        cells = [f"{m['psnr_affine']:.2f}" if m else "-" for m in
                 (row["mean"]["report"], row["mean"]["selection"])]
        gap = (row["mean"]["report"] or {}).get("psnr_affine_vs_gaussian_db")
        table.add_row(name, *cells, "" if gap is None else f"{gap:+.2f}")
    console.print(table)


@bench_app.command("scale")
def bench_scale_cmd(
    json_out: Annotated[Path, typer.Option("--json", help="where to write the JSON")],
    model: Annotated[list[str] | None, typer.Option(
        help="restorer, repeatable (default: classical and denoise)")] = None,
    frames: Annotated[int, typer.Option(min=2, help="frames in the store")] = 32,
    size: Annotated[int, typer.Option(min=16, help="frame side, pixels")] = 256,
) -> None:
    """Frames per second restoring a store in one process and on 1 and 2 Dask workers."""
    import shlex
    import sys

    try:
        from live_restore.experiments.bench_scale import bench_scale
    except ImportError as exc:
        raise fail(ValueError(f"bench scale needs the dask extra ({exc})")) from exc
    result = bench_scale(tuple(model or ("classical", "denoise")), frames=frames, size=size,
                         command=shlex.join(["live-restore", *sys.argv[1:]]),
                         say=lambda msg: console.print(msg))
    json_out.write_text(json.dumps(result, indent=2))
    table = Table(title="bench scale: frames per second")
    for col in ("model", "arm", "fps", "start-up s", "efficiency (2 workers)", "identical"):
        table.add_column(col)
    for name, row in result["models"].items():
        for arm, r in row["arms"].items():
            table.add_row(name, arm, f"{r['fps']:.1f}", f"{r['startup_s']:.1f}",
                          f"{row['scaling_efficiency_2_workers']:.2f}", str(row["bit_identical"]))
    console.print(table)


@bench_app.command("floor")
def bench_floor_cmd(
    json_out: Annotated[Path, typer.Option("--json", help="where to write the JSON")],
    data: Annotated[Path, typer.Option(
        help="folder of fields (each a folder with noisy.tif of >= 2 frames and target.tif)")],
    model: Annotated[list[str] | None, typer.Option(
        help="restorer to judge, repeatable (default: classical, denoise, sted_denoise)")
    ] = None,
    device: Annotated[str | None, typer.Option(help="torch device")] = None,
) -> None:
    """The floor check (flagging frames restored below a Gaussian blur) against the truth."""
    import shlex
    import sys

    from live_restore.experiments.bench_floor import DEFAULT_RESTORERS, bench_floor

    try:
        result = bench_floor(data, tuple(model or DEFAULT_RESTORERS), device=device,
                             command=shlex.join(["live-restore", *sys.argv[1:]]),
                             say=lambda msg: console.print(msg))
    except ValueError as exc:
        raise fail(exc) from exc
    json_out.write_text(json.dumps(result, indent=2))
    table = Table(title="bench floor: fields below the Gaussian floor, seen by the check")
    for col in ("restorer", "part", "fields", "truly below", "flagged", "hits", "misses",
                "false alarms", "mean |error| dB"):
        table.add_column(col)
    for name, row in result["restorers"].items():
        for part, s in row.get("summary", {}).items():
            error = s["mean_abs_error_db"]
            table.add_row(name, part, *(str(s[k]) for k in (
                "fields", "truly_below", "flagged", "hits", "misses", "false_alarms")),
                "-" if error is None else f"{error:.2f}")
    console.print(table)


@app.command()
def docs(
    root: Annotated[Path, typer.Option(help="repository root")] = Path("."),
    check: Annotated[bool, typer.Option(help="only list stale pages; exit 1 if any")] = False,
) -> None:
    """Regenerate docs/benchmarks.md, the model cards and the README's tables from their JSON."""
    from live_restore.experiments.report import stale_docs, write_docs

    try:
        paths = stale_docs(root) if check else write_docs(root)
    except (ValueError, OSError) as exc:
        raise fail(exc) from exc
    for path in paths:
        console.print(f"{'stale' if check else 'wrote'} {path}")
    if check and paths:
        raise typer.Exit(code=1)
