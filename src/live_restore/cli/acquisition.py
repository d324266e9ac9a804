"""Verbs that acquire or restore frames: the simulated demo, a useq sequence on any
Micro-Manager config (live, optionally adapting first), resuming a store's backlog and
restoring a file."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import Progress
from rich.table import Table

from live_restore.cli.root import app, console, fail, noisy_base, report_table

if TYPE_CHECKING:
    from live_restore.acquisition.adapt_first import AdaptFirst
    from live_restore.acquisition.run import AcquisitionReport
    from live_restore.models.calibration import Calibration
    from live_restore.models.restorer import Restorer

CalibrationOption = Annotated[Path | None, typer.Option(
    help="detector calibration JSON (`live-restore calibrate`): the restorer takes the "
         "noise from it instead of estimating it from each frame")]


def _calibration(path: Path | None) -> Calibration | None:
    """The ``--calibration`` file, validated, or None."""
    if path is None:
        return None
    from live_restore.models.calibration import Calibration

    return Calibration.load(path)


def _calibration_info(path: Path | None, calibration: Calibration | None) -> dict:
    """What the store's model record says of the calibration (nothing without one)."""
    if calibration is None:
        return {}
    return {"calibration": {"file": str(path), **calibration.summary()}}


def _adapt_first_plan(frames: int, steps: int | None, base: Restorer | None = None
                      ) -> AdaptFirst | None:
    """``--adapt-first N``: Noise2Noise on each channel's first N frames (0: off). A ``base``
    known before the run is checked before any light reaches the sample; any other base is
    checked by the adapter, whose error the store records (the channel keeps its model)."""
    if frames == 0:
        return None
    from live_restore.acquisition.adapt_first import AdaptFirst
    from live_restore.adapt.noisy import NoisyAdaptConfig, adapt_from_noisy

    config = NoisyAdaptConfig() if steps is None else NoisyAdaptConfig(steps=steps)
    if base is not None:
        noisy_base(base, "--adapt-first")
    return AdaptFirst(frames, lambda restorer, stacks: adapt_from_noisy(
        noisy_base(restorer, "--adapt-first"), stacks, config))


def _print_adaptations(report: AcquisitionReport) -> None:
    """One row per channel that adapt-first adapted (or tried to)."""
    if not report.adaptations:
        return
    table = Table("channel", "outcome", "model", "minutes", title="adapt-first")
    for channel, record in report.adaptations.items():
        outcome = record["status"] + (f": {record['reason']}" if "reason" in record else "")
        minutes = record.get("minutes")
        table.add_row(channel or "(all)", outcome, str(record.get("model", record.get("base"))),
                      "" if minutes is None else f"{minutes:.2f}")
    console.print(table)
    console.print(f"frames restored again with the adapted model: {report.re_restored}")


@app.command()
def demo(
    frames: Annotated[int, typer.Option(help="frames to acquire (all channels)")] = 20,
    output: Annotated[Path, typer.Option(help="OME-Zarr store to write")] = Path(
        "live-restore-demo.ome.zarr"
    ),
    config: Annotated[Path | None, typer.Option(help="Micro-Manager config")] = None,
    model: Annotated[str, typer.Option(
        help="restorer for both channels, or 'auto': confocal2sted / sted_denoise when shipped"
    )] = "auto",
    device: Annotated[str | None, typer.Option(help="torch device, e.g. cuda")] = None,
    seed: Annotated[int, typer.Option(help="picks the field of view on the simulated slide")] = 0,
    overwrite: Annotated[bool, typer.Option(help="replace an existing store")] = False,
    adapt_first: Annotated[int, typer.Option(
        help="adapt each channel's model (Noise2Noise) on its first N frames, then restore "
             "the channel with it (0: off)")] = 0,
    adapt_steps: Annotated[int | None, typer.Option(
        min=1, help="optimiser steps of that adaptation (default: as `adapt --from-noisy`)")
    ] = None,
) -> None:
    """Low-dose time-lapse on the simulated confocal/STED microscope, restored live."""
    from live_restore.experiments.demo import run_demo

    try:
        result = run_demo(output, frames=frames, config=config, model=model, device=device,
                          seed=seed, overwrite=overwrite,
                          adapt_first=_adapt_first_plan(adapt_first, adapt_steps))
    except (ValueError, OSError) as exc:
        raise fail(exc) from exc
    r = result.report
    console.print(report_table("live_restore demo", {
        "store": r.store,
        "frames (emitted / raw written / restored)":
            f"{r.frames_emitted} / {r.raw_frames_written} / {r.restored}",
        "failed / still pending": f"{r.failed} / {r.pending}",
        "acquisition fps": r.acquisition_fps,
        "restore fps (worker busy time)": r.restore_fps,
        "latency p50 / p95 (ms)": f"{r.latency_ms_p50:.1f} / {r.latency_ms_p95:.1f}",
    }))
    quality = Table(title="quality against the simulator's noise-free truth")
    for col in ("channel", "reference", "raw PSNR", "restored PSNR", "raw SSIM",
                "restored SSIM"):
        quality.add_column(col)
    for channel, q in result.quality.items():
        quality.add_row(channel, f"{q['reference']} truth", f"{q['raw_psnr']:.2f}",
                        f"{q['restored_psnr']:.2f}", f"{q['raw_ssim']:.3f}",
                        f"{q['restored_ssim']:.3f}")
    console.print(quality)
    _print_adaptations(r)
    console.print(f"figure: {result.figure}")


@app.command()
def acquire(
    sequence: Annotated[Path, typer.Option(help="useq sequence (.json or .yaml)")],
    output: Annotated[Path, typer.Option(help="OME-Zarr store to write")],
    config: Annotated[str | None, typer.Option(
        help="Micro-Manager config (.cfg), or 'demo' for the genuine MMConfig_demo.cfg; "
             "default with --replay: the packaged replay.cfg")] = None,
    replay: Annotated[Path | None, typer.Option(
        help="play this recorded stack (TIFF or OME-Zarr) through the MDA on the replay camera"
    )] = None,
    model: Annotated[str, typer.Option(help="restorer for every restored channel")] = "classical",
    channels: Annotated[str | None, typer.Option(
        help="comma-separated channels to restore, e.g. Confocal,STED (default: all)")] = None,
    device: Annotated[str | None, typer.Option(help="torch device")] = None,
    overwrite: Annotated[bool, typer.Option(help="replace an existing store")] = False,
    defer: Annotated[bool, typer.Option(help="leave the backlog for `resume`")] = False,
    adapt_first: Annotated[int, typer.Option(
        help="adapt the MSCGM model (Noise2Noise) on each channel's first N frames, then "
             "restore the channel with it, first frames included (0: off)")] = 0,
    adapt_steps: Annotated[int | None, typer.Option(
        min=1, help="optimiser steps of that adaptation (default: as `adapt --from-noisy`)")
    ] = None,
    calibration: CalibrationOption = None,
) -> None:
    """Run a useq sequence on any Micro-Manager config and restore it live."""
    from live_restore.acquisition.core import managed_core
    from live_restore.acquisition.run import run_acquisition
    from live_restore.acquisition.sequence import load_sequence
    from live_restore.experiments.demo import REPLAY_CONFIG_NAME, default_config
    from live_restore.models.restorer import get_restorer
    from live_restore.sim.replay import replay_stack

    try:
        if config is None and replay is None:
            raise ValueError("--config is required unless --replay STACK is given")
        if adapt_first and defer:
            raise ValueError("--adapt-first restores the first frames again at the end of the "
                             "run; it cannot be combined with --defer")
        cfg = default_config(REPLAY_CONFIG_NAME) if config is None else (
            None if config == "demo" else Path(config))
        seq = load_sequence(sequence)
        noise = _calibration(calibration)
        restorer = get_restorer(model, device=device, calibration=noise)
        plan = _adapt_first_plan(adapt_first, adapt_steps, base=restorer)
        info = {"name": restorer.name, "checksum": restorer.version,
                **_calibration_info(calibration, noise)}
        per_channel = {c.strip(): restorer for c in channels.split(",")} if channels else restorer
        with managed_core(cfg) as core:
            if replay is not None:
                if "Replay" not in core.getLoadedDevices():
                    raise ValueError(f"--replay needs the replay camera 'Replay'; {cfg} has none "
                                     "(omit --config to use the packaged replay.cfg)")
                replay_stack(core, replay)
            report = run_acquisition(core, seq, output, per_channel, overwrite=overwrite,
                                     drain=not defer, model_info=info, adapt_first=plan)
    except (ValueError, OSError) as exc:
        raise fail(exc) from exc
    console.print(report_table("acquisition", {
        k: v for k, v in report.to_dict().items() if k != "adaptations"}))
    _print_adaptations(report)


@app.command()
def resume(
    store: Annotated[Path, typer.Argument(help="store written by demo/acquire")],
    model: Annotated[str | None, typer.Option(
        help="restorer (default: the one the store records, if it is still installed)")] = None,
    device: Annotated[str | None, typer.Option(help="torch device")] = None,
    calibration: CalibrationOption = None,
) -> None:
    """Restore the frames the store's ledger does not mark done."""
    from live_restore.acquisition.run import recorded_restorers
    from live_restore.acquisition.run import resume as resume_store
    from live_restore.models.restorer import get_restorer

    try:
        if model is None and calibration is not None:
            raise ValueError("--calibration needs --model: the store's own restorer is "
                             "rebuilt exactly as it was recorded")
        restorer = (recorded_restorers(store, device) if model is None else
                    get_restorer(model, device=device, calibration=_calibration(calibration)))
        with Progress(console=console) as progress:
            task = progress.add_task("restoring", total=None)
            done = resume_store(store, restorer,
                                progress=lambda i, n: progress.update(task, completed=i, total=n))
    except (ValueError, OSError) as exc:
        raise fail(exc) from exc
    console.print(f"restored {done} frame(s) in {store}")


@app.command()
def restore(
    input: Annotated[Path, typer.Argument(help="TIFF or OME-Zarr")],
    output: Annotated[Path, typer.Argument(help="float32 TIFF to write")],
    model: Annotated[str, typer.Option(help="restorer")] = "classical",
    samples: Annotated[int, typer.Option(help="samples per frame (stochastic models)")] = 1,
    steps: Annotated[int | None, typer.Option(help="sampling steps (diffusion models)")] = None,
    device: Annotated[str | None, typer.Option(help="torch device")] = None,
    overwrite: Annotated[bool, typer.Option(help="replace an existing output")] = False,
    calibration: CalibrationOption = None,
) -> None:
    """Restore a file frame by frame; float32 out, same shape."""
    from live_restore.acquisition.batch import load_image, restore_stack, save_image
    from live_restore.models.restorer import get_restorer

    try:
        if output.exists() and not overwrite:
            raise FileExistsError(f"{output} exists; pass --overwrite to replace it")
        restorer = get_restorer(model, device=device, calibration=_calibration(calibration))
        image = load_image(input)
        with Progress(console=console) as progress:
            task = progress.add_task("restoring", total=None)
            out = restore_stack(image, restorer, samples=samples, steps=steps,
                                progress=lambda i, n: progress.update(task, completed=i, total=n))
        save_image(output, out, overwrite=overwrite)
    except (ValueError, TypeError, OSError) as exc:
        raise fail(exc) from exc
    console.print(f"wrote {output} {out.shape} float32")
