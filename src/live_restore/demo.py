"""The demo acquisition: a low-dose time-lapse on the simulated confocal/STED microscope.

It exercises the whole product (MDA → raw → worker → restored, in one OME-Zarr store) and,
because the microscope is simulated, scores raw and restored frames against the noise-free
truth that the simulated camera records with every frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import useq

from live_restore import sim
from live_restore.acquisition import AcquisitionReport, managed_core, run_acquisition
from live_restore.metrics import psnr, ssim
from live_restore.restorer import get_restorer
from live_restore.store import AcquisitionStore, FrameStatus

SIM_CONFIG_NAME = "sim_confocal_sted.cfg"
DEMO_CHANNELS = ("Confocal", "STED")


def default_config() -> Path:
    """The simulated confocal/STED config: packaged with the wheel, or in the source tree."""
    here = Path(__file__).resolve().parent
    for folder in (here / "hardware_configs", here.parents[1] / "hardware_configs"):
        if (folder / SIM_CONFIG_NAME).is_file():
            return folder / SIM_CONFIG_NAME
    raise FileNotFoundError(f"{SIM_CONFIG_NAME} is missing from this installation")


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


def evaluate_store(path: str | Path) -> dict[str, dict[str, float]]:
    """Score every restored frame of a simulated acquisition against its noise-free truth."""
    scores: dict[str, dict[str, list[float]]] = {}
    with AcquisitionStore.open(path, mode="r") as store:
        names = store.channel_names or [""]
        for index in store.indices(FrameStatus.RESTORED):
            truth_json = store.frame_metadata(index).get("sim_truth")
            if truth_json is None:
                continue
            truth = sim.ground_truth(truth_json)
            raw = store.read_raw(index).astype(np.float32)
            restored = store.read_restored(index)
            row = scores.setdefault(names[index.get("c", 0)], {})
            for label, img in (("raw", raw), ("restored", restored)):
                row.setdefault(f"{label}_psnr", []).append(psnr(img, truth))
                row.setdefault(f"{label}_ssim", []).append(ssim(img, truth))
    return {ch: {k: float(np.mean(v)) for k, v in row.items()} for ch, row in scores.items()}


def save_figure(path: str | Path, out_png: str | Path) -> Path:
    """Side-by-side PNG of the last restored frame per channel: raw | restored | truth [| std]."""
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
            truth_json = store.frame_metadata(index).get("sim_truth")
            if truth_json is not None:
                panels["ground truth"] = sim.ground_truth(truth_json)
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
    model: str = "classical",
    device: str | None = None,
    seed: int = 0,
    roi: int = 256,
    overwrite: bool = False,
) -> DemoResult:
    """Run the demo acquisition, score it, and write ``<store>.png`` beside the store."""
    restorer = get_restorer(model, device=device)
    sequence = demo_sequence(frames)
    output = Path(output)
    with managed_core(config or default_config()) as core:
        core.setXYPosition(*field_of_view(seed))
        core.setConfig("Dose", "Low")
        width, height = core.getImageWidth(), core.getImageHeight()
        if roi and roi < min(width, height):
            core.setROI((width - roi) // 2, (height - roi) // 2, roi, roi)
        report = run_acquisition(
            core, sequence, output, restorer, overwrite=overwrite,
            model_info={"name": restorer.name, "checksum": restorer.version},
            annotate=lambda img, meta: {"sim_truth": sim.frame_truth(img, meta)},
        )
    quality = evaluate_store(output)
    figure = save_figure(output, output.with_suffix(".png"))
    return DemoResult(report=report, quality=quality, figure=figure)
