"""``live-restore``: a thin typer app; every verb is a few lines over the library."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import numpy as np
import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import Progress
from rich.table import Table

if TYPE_CHECKING:
    from live_restore.acquisition.adapt_first import AdaptFirst
    from live_restore.acquisition.run import AcquisitionReport
    from live_restore.models.mscgm import MSCGMRestorer
    from live_restore.models.restorer import Restorer

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Real-time restoration of low-dose confocal/STED frames.")
bench_app = typer.Typer(no_args_is_help=True, help="Benchmarks with JSON output.")
app.add_typer(bench_app, name="bench")
console = Console()


@app.callback()
def _main(verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False) -> None:
    level = logging.DEBUG if verbose else logging.WARNING
    # The level sits on the handler too: importing pymmcore-plus sets the root logger to DEBUG.
    handler = RichHandler(console=Console(stderr=True), show_path=False, level=level)
    logging.basicConfig(level=level, format="%(message)s", handlers=[handler])


def _fail(exc: Exception) -> typer.Exit:
    console.print(f"[red]error:[/red] {exc}")
    return typer.Exit(code=1)


def _report_table(title: str, rows: dict[str, object]) -> Table:
    table = Table(title=title, show_header=False)
    for key, value in rows.items():
        table.add_row(key, f"{value:.3g}" if isinstance(value, float) else str(value))
    return table


def _noisy_base(restorer: Restorer, option: str) -> MSCGMRestorer:
    """The restorer if Noise2Noise can adapt it: an MSCGM whose output is in its input's
    modality (the targets are frames like the inputs, so a confocal→STED model would unlearn
    its STED-like output)."""
    from live_restore.models.mscgm import MSCGMRestorer

    if not isinstance(restorer, MSCGMRestorer):
        raise ValueError(f"{option} adapts MSCGM models; {restorer.name!r} is not one "
                         "(e.g. denoise)")
    if restorer.config.forward_model != "identity":
        raise ValueError(f"{option} adapts denoisers; {restorer.name!r} ({restorer.config.task})"
                         " maps to another modality, which frames of one modality cannot teach")
    return restorer


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
        _noisy_base(base, "--adapt-first")
    return AdaptFirst(frames, lambda restorer, stacks: adapt_from_noisy(
        _noisy_base(restorer, "--adapt-first"), stacks, config))


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
        raise _fail(exc) from exc
    r = result.report
    console.print(_report_table("live_restore demo", {
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
) -> None:
    """Run a useq sequence on any Micro-Manager config and restore it live."""
    import useq

    from live_restore.acquisition.core import managed_core
    from live_restore.acquisition.run import run_acquisition
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
        seq = useq.MDASequence.from_file(sequence)
        restorer = get_restorer(model, device=device)
        plan = _adapt_first_plan(adapt_first, adapt_steps, base=restorer)
        info = {"name": restorer.name, "checksum": restorer.version}
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
        raise _fail(exc) from exc
    console.print(_report_table("acquisition", {
        k: v for k, v in report.to_dict().items() if k != "adaptations"}))
    _print_adaptations(report)


@app.command()
def resume(
    store: Annotated[Path, typer.Argument(help="store written by demo/acquire")],
    model: Annotated[str, typer.Option(help="restorer")] = "classical",
    device: Annotated[str | None, typer.Option(help="torch device")] = None,
) -> None:
    """Restore the frames the store's ledger does not mark done."""
    from live_restore.acquisition.run import resume as resume_store
    from live_restore.models.restorer import get_restorer

    try:
        restorer = get_restorer(model, device=device)
        with Progress(console=console) as progress:
            task = progress.add_task("restoring", total=None)
            done = resume_store(store, restorer,
                                progress=lambda i, n: progress.update(task, completed=i, total=n))
    except (ValueError, OSError) as exc:
        raise _fail(exc) from exc
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
) -> None:
    """Restore a file frame by frame; float32 out, same shape."""
    from live_restore.acquisition.batch import load_image, restore_stack, save_image
    from live_restore.models.restorer import get_restorer

    try:
        if output.exists() and not overwrite:
            raise FileExistsError(f"{output} exists; pass --overwrite to replace it")
        restorer = get_restorer(model, device=device)
        image = load_image(input)
        with Progress(console=console) as progress:
            task = progress.add_task("restoring", total=None)
            out = restore_stack(image, restorer, samples=samples, steps=steps,
                                progress=lambda i, n: progress.update(task, completed=i, total=n))
        save_image(output, out, overwrite=overwrite)
    except (ValueError, TypeError, OSError) as exc:
        raise _fail(exc) from exc
    console.print(f"wrote {output} {out.shape} float32")


@app.command()
def simulate(
    task: Annotated[str, typer.Option(help="simulator task")],
    n: Annotated[int, typer.Option(help="number of pairs")],
    out: Annotated[Path, typer.Option(help="output directory")],
    seed: Annotated[int, typer.Option(help="random seed")] = 0,
    size: Annotated[int, typer.Option(help="patch size in pixels")] = 256,
) -> None:
    """Write a paired (degraded, target) dataset from the simulator."""
    from live_restore import sim

    try:
        path = sim.write_dataset(task, n, out, seed=seed, size=size)
    except (ValueError, OSError) as exc:
        raise _fail(exc) from exc
    console.print(f"wrote {n} {task} pair(s) to {path}")


@app.command()
def train(
    task: Annotated[str, typer.Option(help="simulator task, e.g. sted_denoise")],
    out: Annotated[Path, typer.Option(help="model stem: writes OUT.safetensors + OUT.json")],
    method: Annotated[str, typer.Option(help="mscgm | care | ddpm")] = "mscgm",
    preset: Annotated[str, typer.Option(help="tiny | quick | default")] = "default",
    seed: Annotated[int, typer.Option(help="seed for data and initialisation")] = 0,
    workdir: Annotated[Path | None, typer.Option(
        help="checkpoints and cached pairs (default: runs/<name>); rerun to resume")] = None,
    half: Annotated[bool, typer.Option(
        help="store the weights as float16 (half the file; the shipped models)")] = False,
) -> None:
    """Train MSCGM (or a baseline) on simulated pairs; same data and budget for every method."""
    from live_restore import sim
    from live_restore.experiments.sources import simulator_pairs
    from live_restore.models.care import CARE, CARERestorer
    from live_restore.models.configs import CAREConfig, DDPMConfig, MSCGMConfig
    from live_restore.models.ddpm import ConditionalDDPM, DDPMRestorer
    from live_restore.models.mscgm import MSCGM, MSCGMRestorer
    from live_restore.training.data import PairDataset
    from live_restore.training.loop import preset as training_preset
    from live_restore.training.loop import train as run_training

    kinds = {"mscgm": (MSCGMConfig, MSCGM, MSCGMRestorer),
             "care": (CAREConfig, CARE, CARERestorer),
             "ddpm": (DDPMConfig, ConditionalDDPM, DDPMRestorer)}
    try:
        if task not in sim.TASKS:
            raise ValueError(f"unknown task {task!r}; expected one of {list(sim.TASKS)}")
        if method not in kinds:
            raise ValueError(f"unknown method {method!r}; expected one of {sorted(kinds)}")
        config_cls, model_cls, restorer_cls = kinds[method]
        config = training_preset(preset, seed=seed)
        model_config = config_cls.for_task(task)
        data_config = model_config if method == "mscgm" else model_config.data_config()
        workdir = workdir or Path("runs") / out.name
        data = PairDataset.for_model(data_config, config.n_pairs, seed, config.pair_size,
                                     cache_dir=workdir, make_pairs=simulator_pairs(task))
        with Progress(console=console) as progress:
            bar = progress.add_task(f"training {method} on {task} ({preset})",
                                    total=config.steps)
            exported = run_training(
                model_cls(model_config), data, config, workdir,
                progress=lambda step, total, logs: progress.update(
                    bar, completed=step, description=f"{task} loss {logs['loss']:.4f}"),
            )
        path = restorer_cls.load(exported).save(out, half=half)
    except (ValueError, OSError) as exc:
        raise _fail(exc) from exc
    console.print(f"wrote {path}")


@app.command()
def models() -> None:
    """List the built-in, shipped and user models."""
    from live_restore.models.restorer import list_models

    table = Table("name", "kind", "path")
    for row in list_models():
        table.add_row(row["name"], row["kind"], row["path"])
    console.print(table)


@app.command()
def calibrate(
    out: Annotated[Path, typer.Option(help="calibration JSON to write (CAL.json)")],
    config: Annotated[Path | None, typer.Option(
        help="Micro-Manager config to snap from (default: the simulated microscope)")] = None,
    frames: Annotated[int, typer.Option(help="frames to snap of a static scene")] = 32,
    stack: Annotated[Path | None, typer.Option(
        help="calibrate from a recorded (N, Y, X) TIFF stack instead of a camera")] = None,
    dark: Annotated[Path | None, typer.Option(
        help="(M, Y, X) TIFF stack taken with the shutter closed: offset and read noise")] = None,
) -> None:
    """Detector calibration (gain, offset, read noise, correlation) from a static burst."""
    import tifffile

    from live_restore.models.calibration import calibrate_burst

    try:
        if stack is not None:
            burst, source = tifffile.imread(stack), f"stack:{stack.name}"
        else:
            from live_restore.acquisition.core import managed_core
            from live_restore.experiments.demo import default_config

            with managed_core(config or default_config()) as core:
                burst = np.stack([core.snap() for _ in range(frames)])
                source = f"camera:{core.getCameraDevice()}"
        calibration, maps = calibrate_burst(
            burst, None if dark is None else tifffile.imread(dark), source=source
        )
        path = calibration.save(out, maps)
    except (ValueError, OSError) as exc:
        raise _fail(exc) from exc
    console.print(_report_table("calibration", {
        "gain (ADU per e-)": calibration.gain,
        "floor (ADU²)": calibration.floor,
        "offset (ADU)": calibration.offset_adu,
        "read noise (ADU)": calibration.read_noise_adu,
        "neighbour correlation (x, y)":
            f"{calibration.correlation[2][3]:.3f}, {calibration.correlation[3][2]:.3f}",
        "file": path,
    }))


def _adapt_from_noisy(paths: list[Path], base: str, out: Path, *, steps: int | None,
                      seed: int) -> None:
    """``adapt --from-noisy``: Noise2Noise on the stacks' frames, one stack per field."""
    from live_restore.acquisition.batch import load_image
    from live_restore.adapt.finetune import load_base
    from live_restore.adapt.noisy import NoisyAdaptConfig, adapt_from_noisy

    try:
        restorer = _noisy_base(load_base(base), "--from-noisy")
        stacks = []
        for path in paths:
            image = load_image(path)
            if image.dtype.kind not in "uif":
                raise TypeError(f"{path} holds {image.dtype} values; --from-noisy needs the "
                                "camera's numeric frames")
            stack = image.reshape(-1, *image.shape[-2:])
            if image.ndim < 3 or len(stack) < 2:
                raise ValueError(f"{path} holds {len(stack) if image.ndim >= 3 else 1} frame; "
                                 "--from-noisy needs at least 2 frames of one field (T, Y, X)")
            stacks.append(stack)
        config = NoisyAdaptConfig(seed=seed, **({} if steps is None else {"steps": steps}))
        with Progress(console=console) as progress:
            bar = progress.add_task("Noise2Noise", total=config.steps)
            adapted = adapt_from_noisy(
                restorer, stacks, config,
                progress=lambda step, total, logs: progress.update(
                    bar, completed=step, description=f"Noise2Noise loss {logs['loss']:.4f}"),
            )
        record = {**adapted.adaptation, "sources": [str(path) for path in paths]}
        path = adapted.save(out, extra={"adaptation": record})
    except (ValueError, TypeError, OSError) as exc:
        raise _fail(exc) from exc
    console.print(f"wrote {path}")
    console.print(f"adapted {base!r} on {record['frames']} frame(s) of {record['stacks']} "
                  f"field(s) ({record['pairs']} pairs) in {record['minutes']:.2f} min")


@app.command()
def adapt(
    out: Annotated[Path, typer.Option(help="model stem: writes OUT.safetensors + OUT.json")],
    defect: Annotated[str | None, typer.Option(
        help="name of the new defect, e.g. my-camera")] = None,
    defective: Annotated[Path | None, typer.Option(
        help="TIFF stack of ≤ 10 defective frames (Y, X)")] = None,
    clean: Annotated[Path | None, typer.Option(
        help="TIFF stack of clean (high-dose) frames")] = None,
    from_noisy: Annotated[list[Path] | None, typer.Option(
        help="instead: adapt from your noisy frames alone (Noise2Noise), a T×Y×X TIFF of one "
             "field; repeat for more fields")] = None,
    steps: Annotated[int | None, typer.Option(
        min=1, help="optimiser steps of the --from-noisy adaptation (default 400)")] = None,
    pairs: Annotated[Path | None, typer.Option(
        help="folder with real degraded.tif + target.tif pairs (as `simulate` writes)")] = None,
    check: Annotated[Path | None, typer.Option(
        help="folder with held-out degraded.tif + target.tif pairs, only to score base vs "
             "adapted")] = None,
    base: Annotated[str, typer.Option(help="MSCGM model to adapt (name or NAME.json)")] = "denoise",
    cingan: Annotated[Path | None, typer.Option(
        help="pre-trained CIN-GAN (NAME.json); default: pre-train one on the simulator")] = None,
    preset: Annotated[str | None, typer.Option(
        help="tiny | default (≤ 20 min on 2 CPU cores)")] = None,
    cingan_out: Annotated[Path | None, typer.Option(
        help="also save the CIN-GAN with the new row here (to add more defects later)")] = None,
    seed: Annotated[int, typer.Option(help="seed for every random draw")] = 0,
) -> None:
    """Learn a new defect from a few frames (CIN-GAN) and fine-tune a restorer for it; or,
    with --from-noisy, adapt a restorer to your microscope from its noisy frames alone."""
    from live_restore.acquisition.batch import load_image
    from live_restore.adapt.finetune import adapt as run_adapt
    from live_restore.adapt.finetune import adapt_preset, load_base
    from live_restore.experiments.sources import simulator_sources

    def frames(path: Path) -> np.ndarray:
        image = load_image(path)
        return image.reshape(-1, *image.shape[-2:])  # any (…, Y, X) stack → (N, Y, X)

    cingan_mode = {"--defect": defect, "--defective": defective, "--clean": clean,
                   "--pairs": pairs, "--check": check, "--cingan": cingan,
                   "--preset": preset, "--cingan-out": cingan_out}
    if from_noisy:
        mixed = [name for name, value in cingan_mode.items() if value is not None]
        if mixed:
            raise _fail(ValueError(f"--from-noisy adapts from noisy frames alone; drop "
                                   f"{', '.join(mixed)} (options of the CIN-GAN mode)"))
        _adapt_from_noisy(from_noisy, base, out, steps=steps, seed=seed)
        return
    missing = [name for name in ("--defect", "--defective", "--clean")
               if cingan_mode[name] is None]
    if missing:
        raise _fail(ValueError(f"missing {', '.join(missing)} (or adapt from noisy frames "
                               "alone with --from-noisy STACK.tif)"))
    if steps is not None:
        raise _fail(ValueError("--steps sets the --from-noisy adaptation; the CIN-GAN mode's "
                               "budget is --preset"))
    try:
        config = adapt_preset(preset or "default")
        restorer = load_base(base)
        real, held_out = None, None
        if pairs is not None:
            real = (frames(pairs / "degraded.tif"), frames(pairs / "target.tif"))
        if check is not None:
            held_out = (frames(check / "degraded.tif"), frames(check / "target.tif"))
        stages = {"pretrain": config.pretrain.steps, "defect": config.new_defect.steps,
                  "finetune": config.finetune.steps}
        if cingan is not None:
            del stages["pretrain"]
        with Progress(console=console) as progress:
            bars = {name: progress.add_task(name, total=total) for name, total in stages.items()}
            path = run_adapt(
                restorer, defect, frames(defective), frames(clean), real, out=out,
                check=held_out, preset=config, cingan=cingan,
                pretrain_sources=None if cingan is not None else simulator_sources(),
                cingan_out=cingan_out, seed=seed,
                progress=lambda stage, step, total: progress.update(bars[stage], completed=step),
            )
    except (ValueError, TypeError, OSError) as exc:
        raise _fail(exc) from exc
    console.print(f"wrote {path}")
    adaptation = json.loads(path.read_text())["adaptation"]
    light = adaptation["cingan"]["calibration"]["out_of_focus_light"]
    console.print(
        f"learned out-of-focus light {light:.2f}× the clean frame's blur; fine-tuned "
        f"{'every weight' if adaptation['fine_tuned'] == 'all' else 'the detail heads'}"
    )
    scores = adaptation["check"]
    if scores is not None:
        worse = scores["adapted_psnr"] < scores["base_psnr"]
        console.print(
            f"{'[yellow]worse than the base[/] ' if worse else ''}on {scores['n']} check "
            f"pair(s): adapted {scores['adapted_psnr']:.2f} dB, base {scores['base_psnr']:.2f} dB"
        )


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
        raise _fail(exc) from exc
    if json_out is not None:
        report.to_json(json_out)
    for arm in report.arms:
        factor = arm.dose_reduction_factor
        console.print(_report_table(f"dose sweep: {arm.label} ({arm.model})", {
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
) -> None:
    """Baseline vs hooked MDA on the genuine DemoCamera (512², 1 ms)."""
    from live_restore.experiments.bench_acquisition import bench_acquisition

    result = bench_acquisition(frames=200, repeats=1 if quick else 3, model=model)
    json_out.write_text(json.dumps(result, indent=2))
    console.print(_report_table("bench acquisition", {
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


@bench_app.command("restorers")
def bench_restorers_cmd(
    json_out: Annotated[Path, typer.Option("--json", help="where to write the JSON")],
    quick: Annotated[bool, typer.Option(help="4 frames of 256² instead of 16 of 512²")] = False,
    task: Annotated[list[str] | None, typer.Option(
        help="repeatable; default confocal2sted and denoise")] = None,
    model: Annotated[list[str] | None, typer.Option(
        help="TASK:METHOD=PATH (METHOD mscgm|care|ddpm), repeatable; default: shipped models")
    ] = None,
    device: Annotated[str | None, typer.Option(help="torch device")] = None,
    frames: Annotated[int | None, typer.Option(help="test frames per task (override)")] = None,
    size: Annotated[int | None, typer.Option(help="frame side in pixels (override)")] = None,
) -> None:
    """MSCGM vs CARE, DDPM(-avg), classical and raw on a seeded simulated test set."""
    from live_restore.experiments.bench_restorers import bench_restorers
    from live_restore.models.restorer import list_models

    try:
        tasks = tuple(task or ("confocal2sted", "denoise"))
        shipped = {row["name"]: row["path"] for row in list_models() if row["kind"] == "shipped"}
        # The shipped MSCGM model of each task, and the shipped baselines trained beside it.
        models: dict[str, dict[str, str]] = {
            t: {method: shipped[name] for method, name in
                (("mscgm", t), ("care", f"{t}_care"), ("ddpm", f"{t}_ddpm")) if name in shipped}
            for t in tasks
        }
        for spec in model or []:
            key, eq, path = spec.partition("=")
            name, colon, method = key.partition(":")
            if not (eq and colon):
                raise ValueError(f"--model must be TASK:METHOD=PATH, got {spec!r}")
            models.setdefault(name, {})[method] = path
        result = bench_restorers(tasks, models, quick, frames=frames, size=size, device=device)
    except ValueError as exc:
        raise _fail(exc) from exc
    json_out.write_text(json.dumps(result, indent=2))
    console.print_json(json.dumps(result["targets_check"]))


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
        raise _fail(exc) from exc
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
                            say=lambda msg: console.print(msg))
    except ValueError as exc:
        raise _fail(exc) from exc
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
        raise _fail(exc) from exc
    for path in paths:
        console.print(f"{'stale' if check else 'wrote'} {path}")
    if check and paths:
        raise typer.Exit(code=1)
