"""The demo acquisition: a low-dose time-lapse on the simulated confocal/STED microscope.

It exercises the whole product (MDA → raw → worker → restored, in one OME-Zarr store) and,
because the microscope is simulated, scores raw and restored frames against the noise-free
truth that the simulated camera records with every frame.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import useq

from live_restore import sim
from live_restore.acquisition.adapt_first import AdaptFirst
from live_restore.acquisition.core import managed_core
from live_restore.acquisition.hook import LiveRestorer
from live_restore.acquisition.run import AcquisitionReport, model_record, run_acquisition
from live_restore.acquisition.store import AcquisitionStore, FrameStatus
from live_restore.metrics import psnr, ssim
from live_restore.models.restorer import Restorer, get_restorer, list_models

SIM_CONFIG_NAME = "sim_confocal_sted.cfg"
REPLAY_CONFIG_NAME = "replay.cfg"
DEMO_CHANNELS = ("Confocal", "STED")
CHANNEL_MODELS = {"Confocal": "confocal2sted", "STED": "sted_denoise"}
"""With ``model="auto"``: the shipped model per channel, or ``classical`` where it is missing."""


def channel_restorers(model: str = "auto", device: str | None = None) -> dict[str, Restorer]:
    """One restorer per demo channel: ``auto`` picks the shipped model of each channel."""
    if model != "auto":
        restorer = get_restorer(model, device=device)
        return dict.fromkeys(DEMO_CHANNELS, restorer)
    shipped = {row["name"] for row in list_models()}
    return {
        channel: get_restorer(name if name in shipped else "classical", device=device)
        for channel, name in CHANNEL_MODELS.items()
    }


def reference_channels(restorers: dict[str, Restorer]) -> dict[str, str]:
    """A channel restored towards another modality is scored against that modality's truth."""
    refs = {}
    for channel, restorer in restorers.items():
        task = getattr(getattr(restorer, "config", None), "task", None)
        refs[channel] = "STED" if task == "confocal2sted" else channel
    return refs


def default_config(name: str = SIM_CONFIG_NAME) -> Path:
    """A packaged Micro-Manager config (by default the simulated confocal/STED microscope's):
    packaged with the wheel, or in the source tree."""
    package = Path(__file__).resolve().parents[1]
    for folder in (package / "hardware_configs", package.parents[1] / "hardware_configs"):
        if (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(f"{name} is missing from this installation")


def field_of_view(seed: int) -> tuple[float, float]:
    """Stage position (µm) of the demo field: the seed picks a field on the simulated slide."""
    if seed == 0:
        return 0.0, 0.0
    rng = np.random.default_rng(seed)
    x, y = rng.uniform(-80.0, 80.0, size=2)
    return float(x), float(y)


def demo_sequence(frames: int, channels: tuple[str, ...] = DEMO_CHANNELS) -> useq.MDASequence:
    """A time-lapse with one frame per channel per time point, ``frames`` frames in all."""
    if frames < 1:
        raise ValueError(f"--frames must be at least 1, got {frames}")
    loops = math.ceil(frames / len(channels))
    return useq.MDASequence(
        channels=[{"group": "Modality", "config": c} for c in channels],
        time_plan={"interval": 0, "loops": loops},
        axis_order="tpcz",
    )


@dataclass
class DemoResult:
    report: AcquisitionReport
    quality: dict[str, dict[str, float]] = field(default_factory=dict)
    """Per channel: mean PSNR/SSIM of raw and restored frames against the simulator's truth."""
    figure: Path | None = None


def evaluate_store(
    path: str | Path, references: dict[str, str] | None = None
) -> dict[str, dict[str, float]]:
    """Score every restored frame of a simulated acquisition against noise-free truth.

    ``references`` maps a channel to the channel whose truth (same time point) is its
    reference, e.g. Confocal → STED for a confocal→STED model; by default a channel's own.
    """
    scores: dict[str, dict[str, list[float]]] = {}
    references = references or {}
    with AcquisitionStore.open(path, mode="r") as store:
        names = store.channel_names or [""]
        for index in store.indices(FrameStatus.RESTORED):
            ref_channel = references.get(names[index.get("c", 0)])
            ref_index = dict(index)
            if ref_channel in names:
                ref_index["c"] = names.index(ref_channel)
            truth_json = store.frame_metadata(ref_index).get("sim_truth")
            if truth_json is None:
                continue
            truth = sim.ground_truth(truth_json)
            raw = store.read_raw(index).astype(np.float32)
            restored = store.read_restored(index)
            name = names[index.get("c", 0)]
            row = scores.setdefault(name, {"reference": ref_channel or name})
            for label, img in (("raw", raw), ("restored", restored)):
                row.setdefault(f"{label}_psnr", []).append(psnr(img, truth))
                row.setdefault(f"{label}_ssim", []).append(ssim(img, truth))
    return {
        ch: {k: v if k == "reference" else float(np.mean(v)) for k, v in row.items()}
        for ch, row in scores.items()
    }


def save_figure(
    path: str | Path, out_png: str | Path, references: dict[str, str] | None = None
) -> Path:
    """Side-by-side PNG of the last restored frame per channel: raw | restored | truth [| std].

    The truth panel is that of the channel's reference (see :func:`evaluate_store`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with AcquisitionStore.open(path, mode="r") as store:
        names = store.channel_names or [""]
        last: dict[int, dict[str, int]] = {}
        for index in store.indices(FrameStatus.RESTORED):
            last[index.get("c", 0)] = index
        rows = []
        for c, index in sorted(last.items()):
            panels = {"raw": store.read_raw(index), "restored": store.read_restored(index)}
            ref = (references or {}).get(names[c], names[c])
            ref_index = {**index, "c": names.index(ref)} if ref in names else index
            truth_json = store.frame_metadata(ref_index).get("sim_truth")
            if truth_json is not None:
                panels[f"{ref} truth"] = sim.ground_truth(truth_json)
            if store.has_uncertainty:
                panels["uncertainty"] = store.read_uncertainty(index)
            rows.append((names[c], panels))
    if not rows:
        raise ValueError(f"{path} holds no restored frame to show")
    ncols = max(len(p) for _, p in rows)
    fig, axes = plt.subplots(len(rows), ncols, figsize=(3 * ncols, 3 * len(rows)), squeeze=False)
    for r, (channel, panels) in enumerate(rows):
        for c, ax in enumerate(axes[r]):
            ax.axis("off")
            if c < len(panels):
                title, img = list(panels.items())[c]
                lo, hi = np.percentile(img, [0.5, 99.8])
                ax.imshow(img, cmap="magma", vmin=lo, vmax=hi)
                ax.set_title(f"{channel} {title}".strip(), fontsize=9)
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)
    plt.close(fig)
    return Path(out_png)


def run_demo(
    output: str | Path = "live-restore-demo.ome.zarr",
    *,
    frames: int = 20,
    config: str | Path | None = None,
    model: str = "auto",
    device: str | None = None,
    seed: int = 0,
    roi: int = 256,
    overwrite: bool = False,
    adapt_first: AdaptFirst | None = None,
    notify: Callable[[str], None] | None = None,
    watch: Callable[[LiveRestorer], None] | None = None,
) -> DemoResult:
    """Run the demo acquisition, score it, and write ``<store>.png`` beside the store;
    ``adapt_first`` adapts each channel's model on its first frames during the run;
    ``notify`` hears of an interrupt or a frame that could not be saved; ``watch(live)``
    connects a viewer to the hook before the first frame."""
    restorers = channel_restorers(model, device)
    sequence = demo_sequence(frames)
    output = Path(output)
    with managed_core(config or default_config()) as core:
        core.setXYPosition(*field_of_view(seed))
        core.setConfig("Dose", "Low")
        width, height = core.getImageWidth(), core.getImageHeight()
        if roi and roi < min(width, height):
            core.setROI((width - roi) // 2, (height - roi) // 2, roi, roi)
        report = run_acquisition(
            core, sequence, output, restorers, overwrite=overwrite,
            model_info=model_record(restorers),
            annotate=lambda img, meta: {"sim_truth": sim.frame_truth(img, meta)},
            adapt_first=adapt_first,
            notify=notify,
            watch=watch,
        )
    references = reference_channels(restorers)
    quality = evaluate_store(output, references)
    figure = save_figure(output, output.with_suffix(".png"), references)
    return DemoResult(report=report, quality=quality, figure=figure)
