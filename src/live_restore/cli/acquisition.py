"""Verbs that acquire or restore frames: the simulated demo, a useq sequence on any
Micro-Manager config (live, optionally adapting first), resuming a store's backlog and
restoring a file."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import Progress
from rich.table import Table

from live_restore.cli.root import app, console, fail, noisy_base, report_table
from live_restore.cli.viewer import ScreenshotOption, ViewOption, watched

if TYPE_CHECKING:
    from live_restore.acquisition.adapt_first import AdaptFirst
    from live_restore.acquisition.hook import LiveRestorer
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


def _channel_restorers(model: str, channels: list[str], *, every_channel: bool,
                       device: str | None, calibration: Calibration | None, samples: int = 1
                       ) -> Restorer | dict[str, Restorer]:
    """``--model`` for each of ``channels`` (``auto``: the shipped model that fits each), one
    instance per model, averaging ``samples`` draws per frame; a single restorer when every
    channel of the run gets the same one."""
    from live_restore.models.restorer import restorers_by_channel

    per_channel = restorers_by_channel(dict.fromkeys(channels or [""], model), device=device,
                                       calibration=calibration, samples=samples)
    instances = list({id(r): r for r in per_channel.values()}.values())
    if every_channel and len(instances) == 1:
        return instances[0]
    return per_channel  # type: ignore[return-value]  (no channel is left raw here)


def _adapt_first_plan(frames: int, steps: int | None, bases: Iterable[Restorer] = ()
                      ) -> AdaptFirst | None:
    """``--adapt-first N``: Noise2Noise on each channel's first N frames (0: off). ``bases``
    known before the run are checked before any light reaches the sample; any other base is
    checked by the adapter, whose error the store records (the channel keeps its model)."""
    if frames == 0:
        return None
    from live_restore.acquisition.adapt_first import AdaptFirst
    from live_restore.adapt.noisy import NoisyAdaptConfig, adapt_from_noisy

    config = NoisyAdaptConfig() if steps is None else NoisyAdaptConfig(steps=steps)
    for base in bases:
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
    view: ViewOption = False,
    screenshot: ScreenshotOption = None,
) -> None:
    """Low-dose time-lapse on the simulated confocal/STED microscope, restored live."""
    from live_restore.experiments.demo import run_demo

    try:
        plan = _adapt_first_plan(adapt_first, adapt_steps)
        result = watched(lambda watch: run_demo(
            output, frames=frames, config=config, model=model, device=device, seed=seed,
            overwrite=overwrite, adapt_first=plan, watch=watch,
            notify=lambda message: console.print(f"[yellow]{message}[/yellow]")),
            view=view, screenshot=screenshot)
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
    model: Annotated[str, typer.Option(
        help="restorer for every restored channel; 'auto': sted_denoise for STED channels, "
             "denoise for the others (classical where not installed)")] = "auto",
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
    samples: Annotated[int, typer.Option(
        min=1, help="draws averaged per frame by sampling models (MSCGM: each on another "
                    "Haar-grid offset and turn; their spread is kept as the uncertainty "
                    "series); K times the restore time")] = 1,
    on_interrupt: Annotated[str, typer.Option(
        help="after the first Ctrl-C / SIGTERM stops the acquisition: 'finish' restoring the "
             "frames waiting, or 'leave' them for `resume` (a second Ctrl-C always leaves)")
    ] = "finish",
    fill_planes: Annotated[int, typer.Option(
        min=1, help="the z plan acquires every K-th plane: a z-stack model (--model axial) "
                    "restores each stack at K times finer z spacing as soon as its planes "
                    "are in (K = 1: the stack model denoises the acquired planes)")] = 1,
    view: ViewOption = False,
    screenshot: ScreenshotOption = None,
) -> None:
    """Run a useq sequence on any Micro-Manager config and restore it live.

    Exit status: 0 when every frame was saved, 1 when raw frames were lost (a full disk: the
    acquisition stops at once) or on an error before the first frame, 130 when interrupted."""
    from live_restore.acquisition.core import managed_core
    from live_restore.acquisition.run import model_record, run_acquisition
    from live_restore.acquisition.sequence import load_sequence
    from live_restore.experiments.demo import REPLAY_CONFIG_NAME, default_config
    from live_restore.sim.replay import replay_stack

    try:
        if config is None and replay is None:
            raise ValueError("--config is required unless --replay STACK is given")
        if adapt_first and defer:
            raise ValueError("--adapt-first restores the first frames again at the end of the "
                             "run; it cannot be combined with --defer")
        if on_interrupt not in ("finish", "leave"):
            raise ValueError(f"--on-interrupt must be 'finish' or 'leave', got {on_interrupt!r}")
        cfg = default_config(REPLAY_CONFIG_NAME) if config is None else (
            None if config == "demo" else Path(config))
        seq = load_sequence(sequence)
        noise = _calibration(calibration)
        chosen = [c.strip() for c in channels.split(",")] if channels else None
        per_channel = _channel_restorers(model, chosen or [c.config for c in seq.channels],
                                         every_channel=chosen is None, device=device,
                                         calibration=noise, samples=samples)
        plan = _adapt_first_plan(adapt_first, adapt_steps, bases=(
            per_channel.values() if isinstance(per_channel, dict) else [per_channel]))
        info = {**model_record(per_channel), **_calibration_info(calibration, noise)}

        def run(watch: Callable[[LiveRestorer], None] | None) -> AcquisitionReport:
            with managed_core(cfg) as core:
                if replay is not None:
                    if "Replay" not in core.getLoadedDevices():
                        raise ValueError(f"--replay needs the replay camera 'Replay'; {cfg} has "
                                         "none (omit --config to use the packaged replay.cfg)")
                    replay_stack(core, replay)
                with _progress_bar("restoring the frames waiting", until_used=True) as progress:
                    return run_acquisition(
                        core, seq, output, per_channel, overwrite=overwrite, drain=not defer,
                        model_info=info, adapt_first=plan, on_interrupt=on_interrupt,
                        uncertainty=samples > 1, fill_planes=fill_planes,
                        notify=lambda message: console.print(f"[yellow]{message}[/yellow]"),
                        progress=progress, watch=watch)

        report = watched(run, view=view, screenshot=screenshot, on_interrupt=on_interrupt)
    except (ValueError, OSError) as exc:
        raise fail(exc) from exc
    console.print(report_table("acquisition", {
        k: v for k, v in report.to_dict().items() if k != "adaptations"}))
    _print_adaptations(report)
    _exit_status(report)


def _fill_planes(input: Path, output: Path, model: str, every: int, device: str | None,
                 overwrite: bool) -> None:
    """``restore --fill-planes K``: a z-stack model fills the planes of a sparse z-stack."""
    from live_restore.acquisition.batch import load_image, save_image
    from live_restore.models.restorer import AUTO, get_restorer, restores_stacks

    axial = get_restorer("axial" if model == AUTO else model, device=device)
    if not restores_stacks(axial):
        raise ValueError(f"--fill-planes needs a z-stack model such as axial; {model!r} "
                         "restores frames")
    stack = load_image(input)
    if stack.ndim != 3 or len(stack) < 2:
        raise ValueError(f"--fill-planes needs a z-stack of ≥ 2 planes (Z×Y×X), got {stack.shape}")
    out = axial.fill(stack, every)
    save_image(output, out, overwrite=overwrite)
    console.print(f"wrote {output} {out.shape} float32: {len(stack)} planes filled to "
                  f"{len(out)} by {axial.name}@{axial.version}")


@contextmanager
def _progress_bar(label: str, *, until_used: bool = False) -> Iterator[Callable[[int, int], None]]:
    """A progress bar as a ``progress(done, total)`` callback; ``until_used``: hidden until its
    first call and gone after (the restoration that follows an acquisition, if any)."""
    with Progress(console=console, transient=until_used) as bar:
        task = bar.add_task(label, total=None, visible=not until_used)
        yield lambda done, total: bar.update(task, completed=done, total=total, visible=True)


def _exit_status(report: AcquisitionReport) -> None:
    """Say what a run that did not end normally left behind, and exit non-zero."""
    if report.lost:
        console.print(f"[red]{report.lost} raw frame(s) lost[/red] ({report.stopped}); the "
                      f"store's journal names each; {report.raw_frames_written} saved")
        raise typer.Exit(code=1)
    if report.stopped:
        left = (f"; {report.pending} frame(s) left: `live-restore resume {report.store}`"
                if report.pending else "")
        console.print(f"[yellow]{report.stopped}[/yellow]: {report.raw_frames_written} "
                      f"frame(s) saved{left}")
        raise typer.Exit(code=130)


DaskOption = Annotated[bool, typer.Option(
    "--dask", help="restore blockwise on a Dask cluster (the `dask` extra): a local cluster of "
                   "--workers processes, or the scheduler at --scheduler")]
SchedulerOption = Annotated[str | None, typer.Option(
    help="address of a running Dask scheduler, e.g. tcp://host:8786 (with --dask)")]
WorkersOption = Annotated[int, typer.Option(
    min=1, help="worker processes of the local cluster (with --dask; one thread each)")]


@contextmanager
def _cluster(dask: bool, scheduler: str | None, workers: int,
             calibration: Path | None) -> Iterator[object | None]:
    """The Dask client of ``--dask`` (its dashboard link printed), or None without it."""
    if dask and calibration is not None:
        raise ValueError("--calibration is not available with --dask: the workers estimate "
                         "the noise of each frame")
    if not dask:
        if scheduler is not None:
            raise ValueError("--scheduler needs --dask")
        yield None
        return
    try:
        from live_restore.distributed.blockwise import dask_client
    except ImportError as err:
        raise ValueError("--dask needs the dask extra: pip install 'live-restore[dask]'"
                         ) from err
    with dask_client(workers, scheduler) as client:
        console.print(f"Dask dashboard: {client.dashboard_link}")
        yield client


@app.command()
def resume(
    store: Annotated[Path, typer.Argument(help="store written by demo/acquire")],
    model: Annotated[str | None, typer.Option(
        help="restorer (default: the one the store records, if it is still installed)")] = None,
    device: Annotated[str | None, typer.Option(help="torch device")] = None,
    calibration: CalibrationOption = None,
    retry_failed: Annotated[bool, typer.Option(
        help="also restore the frames whose restoration failed (e.g. on a full disk)")] = False,
    dask: DaskOption = False,
    scheduler: SchedulerOption = None,
    workers: WorkersOption = 2,
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
        with (_cluster(dask, scheduler, workers, calibration) as client,
              _progress_bar("restoring") as progress):
            if client is None:
                done = resume_store(store, restorer, retry_failed=retry_failed,
                                    progress=progress)
            else:
                from live_restore.distributed.blockwise import restore_store

                spec = model or (
                    {c: r.name for c, r in restorer.items()} if isinstance(restorer, dict)
                    else restorer.name)
                done = restore_store(store, spec, client, device=device,
                                     retry_failed=retry_failed, progress=progress).restored
    except (ValueError, OSError) as exc:
        raise fail(exc) from exc
    console.print(f"restored {done} frame(s) in {store}")
    _report_store(store)


def _report_store(path: Path) -> None:
    """What the store holds now: frames left, failed or lost, and a mix of models."""
    from live_restore.acquisition.store import AcquisitionStore

    with AcquisitionStore.open(path, mode="r") as store:
        pending, failed, lost = len(store.pending()), store.failures(), store.lost()
        models = store.models_used()
    if len(models) > 1:
        mix = ", ".join(f"{m} ({n})" for m, n in models.items())
        console.print(f"[yellow]the store's frames are restored by {len(models)} models:"
                      f"[/yellow] {mix}")
    if failed:
        console.print(f"[yellow]{len(failed)} frame(s) failed to restore[/yellow] (e.g. "
                      f"{next(iter(failed.items()))}); `--retry-failed` tries them again")
    if lost:
        console.print(f"[red]{len(lost)} raw frame(s) were lost[/red] during the acquisition "
                      f"(e.g. {next(iter(lost.items()))})")
    if pending:
        console.print(f"{pending} frame(s) still wait to be restored")


@app.command()
def restore(
    input: Annotated[Path, typer.Argument(help="TIFF or OME-Zarr")],
    output: Annotated[Path, typer.Argument(help="float32 TIFF to write")],
    model: Annotated[str, typer.Option(
        help="restorer; 'auto': denoise (classical where not installed)")] = "auto",
    samples: Annotated[int, typer.Option(help="samples per frame (stochastic models)")] = 1,
    steps: Annotated[int | None, typer.Option(help="sampling steps (diffusion models)")] = None,
    device: Annotated[str | None, typer.Option(help="torch device")] = None,
    overwrite: Annotated[bool, typer.Option(help="replace an existing output")] = False,
    calibration: CalibrationOption = None,
    dask: DaskOption = False,
    scheduler: SchedulerOption = None,
    workers: WorkersOption = 2,
    fill_planes: Annotated[int, typer.Option(
        min=0, help="the input is a z-stack (Z×Y×X) acquired every K-th plane: restore every "
                    "plane at the finer spacing with a z-stack model (--model axial, the "
                    "default here; K = 1 denoises the planes; 0: off)")
    ] = 0,
) -> None:
    """Restore a file frame by frame; float32 out, same shape (with --fill-planes K, a
    z-stack with the planes between the acquired ones filled: (Z − 1)·K + 1 planes)."""
    from live_restore.acquisition.batch import (
        check_output,
        load_image,
        restore_options,
        restore_stack,
        save_image,
    )
    from live_restore.models.restorer import AUTO, auto_model_name, get_restorer, restores_stacks

    try:
        check_output(output, overwrite=overwrite)
        if fill_planes:
            _fill_planes(input, output, model, fill_planes, device, overwrite)
            return
        name = auto_model_name() if model == AUTO else model
        restorer = get_restorer(name, device=device, calibration=_calibration(calibration))
        if restores_stacks(restorer):
            raise ValueError(f"model {name!r} restores z-stacks, not frames: pass "
                             "--fill-planes K (1 to denoise the planes only)")
        options = restore_options(restorer, samples=samples, steps=steps)
        with (_cluster(dask, scheduler, workers, calibration) as client,
              _progress_bar("restoring") as progress):
            if client is None:
                out = restore_stack(load_image(input), restorer, samples=samples,
                                    steps=steps, progress=progress)
                save_image(output, out, overwrite=overwrite)
                shape = out.shape
            else:
                from live_restore.distributed.blockwise import restore_file

                output.unlink(missing_ok=True)  # check_output allowed it (--overwrite)
                shape = restore_file(input, output, name, client, device=device,
                                     options=options, progress=progress)
    except (ValueError, TypeError, OSError, RuntimeError) as exc:
        raise fail(exc) from exc
    console.print(f"wrote {output} {shape} float32, restored by "
                  f"{restorer.name}@{restorer.version}")
