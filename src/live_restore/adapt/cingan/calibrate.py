"""Calibrating a learned row's heads on the whole set of frames.

Each training batch of :func:`~live_restore.adapt.cingan.fit.fit_cingan` sees a few patches;
the heads are a handful of global numbers that whole frames judge better. Two of them a batch
cannot judge at all: out-of-focus light wider than a quarter patch (a patch sees it as a
near-constant offset, which standardisation removes), and the row and column jitter of a few
lines, whose batch gradients are too noisy to move them far from their start.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from live_restore.adapt.cingan.fit import random_crops
from live_restore.adapt.cingan.layers import OUT_OF_FOCUS_SIGMAS_PX, out_of_focus
from live_restore.adapt.cingan.losses import (
    floor_slope,
    standardise,
    style_distance,
    style_statistics,
)
from live_restore.adapt.cingan.model import CINGAN

__all__ = ["calibrate_row"]

#: Frames and crops that :func:`calibrate_row` measures (bounded cost for any library).
CALIBRATION_FRAMES = 16
CALIBRATION_CROP = 128
#: Out-of-focus light from blurs at least this fraction of the patch side is set here.
WIDE_BLUR_FRACTION_OF_PATCH = 1 / 4
#: Bisection on the wide out-of-focus amplitude: the bracket's upper end and the halvings.
MAX_OUT_OF_FOCUS_AMPLITUDE = 8.0
BISECTION_STEPS = 12
#: Light is added only when the defective frames' floor slope exceeds the synthetic frames'
#: without it by this many standard errors, so a defect without haze gets none.
HAZE_SIGNIFICANCE_SE = 2.0
#: Full-batch Adam learning rate for the line and noise heads' log-parameters.
HEAD_REFIT_LR = 0.1
_MIN_WEIGHT = 1e-8


@torch.no_grad()
def _synthetic_slope(
    model: CINGAN, defect: str, stacks: Sequence[np.ndarray], seed: int
) -> float:
    """Mean :func:`floor_slope` of one fixed-seed synthetic draw of each whole clean stack."""
    generator = torch.Generator().manual_seed(seed)
    slopes = [
        floor_slope(model.synthesise(torch.from_numpy(s)[None], defect, generator))
        for s in stacks
    ]
    return float(torch.cat(slopes).mean())


def _even(frame: np.ndarray) -> np.ndarray:
    return frame[..., : frame.shape[-2] // 2 * 2, : frame.shape[-1] // 2 * 2]


def calibrate_row(
    model: CINGAN,
    defect: str,
    clean: Sequence[np.ndarray],
    defective: Sequence[np.ndarray],
    patch_size: int,
    steps: int = 60,
    seed: int = 0,
) -> dict[str, float]:
    """Refit a learned row's heads on the whole set of frames (normalised, as for
    :func:`~live_restore.adapt.cingan.fit.fit_cingan`).

    1. **Out-of-focus light wider than a quarter patch** (σ ≥ ``patch_size`` / 4). Its
       amplitude (spread evenly over those blurs) is set by bisection so that the synthetic
       frames' mean :func:`floor_slope` equals the defective frames'; it stays 0 unless the
       defective frames' slope exceeds the synthetic frames' without it by
       :data:`HAZE_SIGNIFICANCE_SE` standard errors.
    2. **Line and noise heads**: ``steps`` full-batch Adam steps on the style distance over
       fixed crops of the frames with fixed noise draws, a deterministic objective.

    Every other parameter is left untouched and keeps its ``requires_grad``. Returns
    ``{"out_of_focus_light", "style_loss_before", "style_loss_after"}``.
    """
    d = model.defect_index(defect)
    pick = np.linspace(0, len(clean) - 1, min(len(clean), CALIBRATION_FRAMES)).round()
    stacks = [out_of_focus(_even(clean[int(i)])) for i in np.unique(pick)]
    real = [np.asarray(_even(f), np.float32)[None] for f in defective]
    amplitude = _calibrate_out_of_focus(model, defect, stacks, real, patch_size, seed)
    before, after = _refit_line_and_noise_heads(model, d, stacks, real, steps, seed)
    return {"out_of_focus_light": amplitude, "style_loss_before": before,
            "style_loss_after": after}


def _calibrate_out_of_focus(
    model: CINGAN,
    defect: str,
    stacks: Sequence[np.ndarray],
    real: Sequence[np.ndarray],
    patch_size: int,
    seed: int,
) -> float:
    """Set the row's wide out-of-focus light by bisection on :func:`floor_slope` (step 1 of
    :func:`calibrate_row`); return its amplitude."""
    wide = torch.tensor(
        [s >= patch_size * WIDE_BLUR_FRACTION_OF_PATCH for s in OUT_OF_FOCUS_SIGMAS_PX]
    )
    if not bool(wide.any()):
        return 0.0
    row = model.generator.haze.log_coeff[model.defect_index(defect)]

    def slope_with(amplitude: float) -> float:
        with torch.no_grad():
            row[wide] = math.log(max(amplitude / int(wide.sum()), _MIN_WEIGHT))
        return _synthetic_slope(model, defect, stacks, seed)

    real_slopes = torch.cat([floor_slope(torch.from_numpy(f)[None]) for f in real])
    target = float(real_slopes.mean())
    spread = float(real_slopes.std()) / math.sqrt(len(real)) if len(real) > 1 else 0.0
    amplitude = 0.0
    if slope_with(0.0) + HAZE_SIGNIFICANCE_SE * spread < target:
        low, high = 0.0, MAX_OUT_OF_FOCUS_AMPLITUDE
        if slope_with(high) < target:
            low = high
        for _ in range(BISECTION_STEPS):
            mid = (low + high) / 2
            low, high = (mid, high) if slope_with(mid) < target else (low, mid)
        amplitude = (low + high) / 2
    slope_with(amplitude)
    return amplitude


def _refit_line_and_noise_heads(
    model: CINGAN,
    d: int,
    stacks: Sequence[np.ndarray],
    real: Sequence[np.ndarray],
    steps: int,
    seed: int,
) -> tuple[float, float]:
    """Full-batch Adam on row ``d``'s line and noise heads (step 2 of :func:`calibrate_row`);
    return the style distance before and after."""
    gen = model.generator
    rng = torch.Generator().manual_seed(seed)
    side = min(CALIBRATION_CROP, *(min(f.shape[-2:]) for f in [*stacks, *real]))
    side -= side % model.multiple
    clean_crops = random_crops(stacks, CALIBRATION_FRAMES, side, rng)
    real_crops = random_crops(real, CALIBRATION_FRAMES, side, rng, turn=False)
    real_stats = style_statistics(standardise(real_crops))
    idx = model.rows_for(d, len(clean_crops), clean_crops.device)

    def loss() -> Tensor:
        fake, _ = gen(clean_crops, idx, torch.Generator().manual_seed(seed))
        return style_distance(style_statistics(standardise(fake)), real_stats)

    heads = [gen.lines.log_row_sd[d], gen.lines.log_column_sd[d],
             gen.noise.log_gain[d], gen.noise.log_floor[d]]
    trainable = {p: p.requires_grad for p in gen.parameters()}
    gen.requires_grad_(False)
    for p in heads:
        p.requires_grad_(True)
    opt = torch.optim.Adam(heads, lr=HEAD_REFIT_LR)
    with torch.no_grad():
        before = float(loss())
    for _ in range(steps):
        value = loss()
        opt.zero_grad(set_to_none=True)
        value.backward()
        opt.step()
    with torch.no_grad():
        after = float(loss())
    for p, flag in trainable.items():
        p.requires_grad_(flag)
    return before, after
