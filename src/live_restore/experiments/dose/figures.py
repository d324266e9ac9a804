"""The sweep's figures: quality against dose, and one field at every dose."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from live_restore import sim
from live_restore.acquisition.store import AcquisitionStore
from live_restore.experiments.dose.report import DoseSweepReport


def plot_sweep(report: DoseSweepReport, png: str | Path) -> Path:
    """Quality against dose, one row per arm: raw and restored, the target, the recommendation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = ("ssim", "psnr", "frc_um")
    fig, axes = plt.subplots(len(report.arms), len(metrics),
                             figsize=(4.2 * len(metrics), 3.3 * len(report.arms)), squeeze=False)
    for row, arm in zip(axes, report.arms, strict=True):
        for ax, metric in zip(row, metrics, strict=True):
            for kind, series, style in (("raw", arm.raw, "o--"), ("restored", arm.restored, "s-")):
                ys = [np.nan if v is None else v for v in series.get(metric, [])]
                if ys:
                    ax.plot(arm.doses, ys, style, label=kind if kind == "raw"
                            else f"restored ({arm.model})")
            if metric in arm.reference:
                ax.plot(arm.doses, arm.reference[metric], "x", color="0.5",
                        label=f"raw at dose {report.reference_dose:g}, same field")
            if metric == arm.target.metric:
                ax.axhline(arm.target.value, color="k", lw=0.8, ls=":",
                           label=f"target {arm.target}")
            if arm.recommended_dose is not None:
                ax.axvline(arm.recommended_dose, color="tab:green", lw=1,
                           label=f"recommended {arm.recommended_dose:g}")
            ax.set_xscale("log")
            ax.set_xlabel(f"dose ({report.dose_control})")
            unit = " (µm)" if metric == "frc_um" and report.pixel_size_um else ""
            basis = "" if metric == "frc_um" else f" vs {arm.basis.replace('_', ' ')}"
            ax.set_ylabel(f"{metric.removesuffix('_um').upper()}{unit}")
            ax.set_title(f"{arm.label}: {metric.removesuffix('_um')}{basis}", fontsize=9)
            ax.grid(alpha=0.3)
        row[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return Path(png)


def plot_strip(report: DoseSweepReport, png: str | Path, crop: int = 96) -> Path:
    """The same detail (strip field, centre crop) at each dose: raw over restored [over truth]."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arm = report.primary
    panels: list[dict[str, np.ndarray]] = []
    for dose in arm.doses:
        with AcquisitionStore.open(arm.stores[f"{dose:g}"], mode="r") as store:
            index = {"t": 0, "p": report.fields_per_dose}  # the strip field
            y0, x0 = (max(0, (n - crop) // 2) for n in store.frame_shape)
            sl = np.s_[y0:y0 + crop, x0:x0 + crop]
            frame = {"raw": store.read_raw(index)[sl], "restored": store.read_restored(index)[sl]}
            meta = store.frame_metadata(index)
            if "sim_truth" in meta:
                frame["truth"] = sim.ground_truth(meta["sim_truth"])[sl]
            panels.append(frame)
    kinds = list(panels[0])
    fig, axes = plt.subplots(len(kinds), len(panels), squeeze=False,
                             figsize=(1.8 * len(panels), 1.9 * len(kinds)))
    for c, (dose, frame) in enumerate(zip(arm.doses, panels, strict=True)):
        for r, kind in enumerate(kinds):
            img = frame[kind]
            lo, hi = np.percentile(img, [0.5, 99.8])
            ax = axes[r, c]
            ax.imshow(img, cmap="magma", vmin=lo, vmax=hi)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                star = " ★" if dose == arm.recommended_dose else ""
                ax.set_title(f"{dose:g}{star}", fontsize=9)
            if c == 0:
                ax.set_ylabel(kind if kind != "restored" else f"restored\n{arm.model}", fontsize=8)
    fig.suptitle(f"{arm.label}: same detail at each dose ({report.dose_control}); "
                 "★ recommended", fontsize=9)
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return Path(png)
