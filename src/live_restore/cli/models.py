"""Verbs that make, list and adapt models: simulated training pairs, training, the model
list, detector calibration and adaptation (CIN-GAN or Noise2Noise)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import Progress
from rich.table import Table

from live_restore.cli.root import app, console, fail, noisy_base, report_table

if TYPE_CHECKING:
    import numpy as np


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
        raise fail(exc) from exc
    console.print(f"wrote {n} {task} pair(s) to {path}")


@app.command()
def train(
    task: Annotated[str, typer.Option(help="simulator task, e.g. sted_denoise")],
    out: Annotated[Path, typer.Option(help="model stem: writes OUT.safetensors + OUT.json")],
    method: Annotated[str, typer.Option(
        help="mscgm | care | ddpm; axial (with --task axial): the z-stack inpainting U-Net; "
             "mscgm / care on --task axial restore linearly interpolated planes")
    ] = "mscgm",
    preset: Annotated[str, typer.Option(help="tiny | quick | default")] = "default",
    seed: Annotated[int, typer.Option(help="seed for data and initialisation")] = 0,
    workdir: Annotated[Path | None, typer.Option(
        help="checkpoints and cached pairs (default: runs/<name>); rerun to resume")] = None,
    half: Annotated[bool, typer.Option(
        help="store the weights as float16 (half the file; the shipped models)")] = False,
) -> None:
    """Train MSCGM (or a baseline) on simulated pairs; same data and budget for every method."""
    from live_restore import sim
    from live_restore.experiments.sources import AXIAL_STACK_PX, axial_fill_pairs, simulator_pairs
    from live_restore.models.axial import AxialNet, AxialRestorer
    from live_restore.models.care import CARE, CARERestorer
    from live_restore.models.configs import AxialConfig, CAREConfig, DDPMConfig, MSCGMConfig
    from live_restore.models.ddpm import ConditionalDDPM, DDPMRestorer
    from live_restore.models.mscgm import MSCGM, MSCGMRestorer
    from live_restore.training.axial import axial_dataset
    from live_restore.training.data import PairDataset
    from live_restore.training.loop import preset as training_preset
    from live_restore.training.loop import train as run_training

    kinds = {"mscgm": (MSCGMConfig, MSCGM, MSCGMRestorer),
             "care": (CAREConfig, CARE, CARERestorer),
             "ddpm": (DDPMConfig, ConditionalDDPM, DDPMRestorer),
             "axial": (AxialConfig, AxialNet, AxialRestorer)}
    try:
        if task not in sim.TASKS:
            raise ValueError(f"unknown task {task!r}; expected one of {list(sim.TASKS)}")
        if method not in kinds:
            raise ValueError(f"unknown method {method!r}; expected one of {sorted(kinds)}")
        if method == "axial" and task != "axial":
            raise ValueError("--method axial trains on --task axial (z-stacks), and only it")
        config_cls, model_cls, restorer_cls = kinds[method]
        config = training_preset(preset, seed=seed)
        model_config = config_cls.for_task(task)
        workdir = workdir or Path("runs") / out.name
        # --task axial: n_pairs stacks of AXIAL_STACK_PX, every plane (and k) one pair; a frame
        # restorer learns to restore planes linearly interpolated from the acquired ones
        size = min(config.pair_size, AXIAL_STACK_PX) if task == "axial" else config.pair_size
        if method == "axial":
            degraded, target, _ = sim.make_pairs(task, config.n_pairs, seed, size)
            data = axial_dataset(degraded, target, model_config)
        else:
            data_config = model_config if method == "mscgm" else model_config.data_config()
            source = axial_fill_pairs() if task == "axial" else simulator_pairs(task)
            data = PairDataset.for_model(data_config, config.n_pairs, seed, size,
                                         cache_dir=workdir, make_pairs=source)
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
        raise fail(exc) from exc
    console.print(f"wrote {path}")


@app.command()
def models() -> None:
    """List the built-in, shipped and user models."""
    from live_restore.models.restorer import list_models

    table = Table("name", "kind", "restores", "path")
    for row in list_models():
        table.add_row(row["name"], row["kind"], row["restores"], row["path"])
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
    import numpy as np
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
        raise fail(exc) from exc
    console.print(report_table("calibration", {
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
        restorer = noisy_base(load_base(base), "--from-noisy")
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
        raise fail(exc) from exc
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
            raise fail(ValueError(f"--from-noisy adapts from noisy frames alone; drop "
                                   f"{', '.join(mixed)} (options of the CIN-GAN mode)"))
        _adapt_from_noisy(from_noisy, base, out, steps=steps, seed=seed)
        return
    missing = [name for name in ("--defect", "--defective", "--clean")
               if cingan_mode[name] is None]
    if missing:
        raise fail(ValueError(f"missing {', '.join(missing)} (or adapt from noisy frames "
                               "alone with --from-noisy STACK.tif)"))
    if steps is not None:
        raise fail(ValueError("--steps sets the --from-noisy adaptation; the CIN-GAN mode's "
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
        raise fail(exc) from exc
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
