"""Make docs/sim_figure.png: one field per specimen as ground truth, high-dose STED,
low-dose STED and low-dose confocal, straight from the simulated microscope.

Run: python demos/make_sim_figure.py [OUT.png]
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from live_restore.sim import Microscope, structure

SPECIMENS = ("mixture", "mitochondria")
PANELS = (  # title, modality, laser power (%): the Dose presets High / Low at 10 ms
    ("high-dose STED", "STED", 80.0),
    ("low-dose STED", "STED", 5.0),
    ("low-dose confocal", "Confocal", 5.0),
)


def main(out: Path) -> None:
    fig, axes = plt.subplots(len(SPECIMENS), 4, figsize=(16, 4.5 * len(SPECIMENS)))
    for row, specimen in zip(axes, SPECIMENS, strict=True):
        frames = []
        for _, modality, power in PANELS:
            scope = Microscope(seed=1, specimen=specimen, modality=modality, laser_power=power)
            scope.set_roi(128, 128, 256, 256)  # a fresh scope per panel: nothing bleached
            frames.append(scope.acquire())
        truth = structure(frames[0][1])
        row[0].imshow(truth, cmap="magma", vmax=float(truth.max()) * 0.5)
        row[0].set_title(f"{specimen}: ground truth (labels)")
        for ax, (title, _, _), (img, t) in zip(row[1:], PANELS, frames, strict=True):
            ax.imshow(img, cmap="magma")
            ax.set_title(f"{title}  (peak {img.max() - t['detector']['offset']:.0f} photons)")
        for ax in row:
            ax.set_axis_off()
    fig.suptitle("Simulated confocal/STED, 640 nm, NA 1.4, 25 nm pixels, 6.4 µm fields")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=80)


if __name__ == "__main__":
    main(
        Path(sys.argv[1])
        if len(sys.argv) > 1
        else Path(__file__).parents[1] / "docs" / "sim_figure.png"
    )
