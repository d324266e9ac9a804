"""``live-restore bench floor``: does the floor check see which real frames a restorer leaves
below a Gaussian blur?

The live worker judges each restored frame against the next (or previous) exposure of the same
field (:mod:`live_restore.models.floor`) and flags it in the ledger when it is estimated to be
more than 0.2 dB below a Gaussian blur of its raw frame. Here that estimate meets the truth: on
every field of a real-data folder (laid out as for ``bench real``) with at least two noisy
frames, the first frame is restored by each restorer, its true PSNR-affine gain over the
Gaussian floor is measured against ``target.tif``, and the check's estimate is made exactly as
live, against the second frame (and, for the spread, against each later frame). Per part and
restorer: how many fields truly lose more than the tolerance, how many the check flags, the
hits, misses and false alarms, and the mean absolute error of the estimate. The estimator was
chosen on the selection part; the report part never chose anything.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.ndimage import gaussian_filter

from live_restore import metrics
from live_restore.experiments.bench_real import PARTS, RealField, load_fields
from live_restore.experiments.environment import machine, software_versions
from live_restore.models.floor import (
    FLOOR_SIGMA_PX,
    LOSS_TOLERANCE_DB,
    check_against_floor,
    judges_restorer,
)
from live_restore.models.restorer import get_restorer

__all__ = ["DEFAULT_RESTORERS", "bench_floor"]

DEFAULT_RESTORERS = ("classical", "denoise", "sted_denoise")
"""The shipped restorers whose output is their input's modality (the check applies)."""

MAX_OTHER_FRAMES = 3
"""Later frames each estimate is repeated against (the spread of the estimate)."""


def _field_row(field: RealField, restored: np.ndarray) -> dict[str, Any]:
    raw = field.noisy[0]
    true = metrics.psnr(restored, field.target) - metrics.psnr(
        gaussian_filter(raw, FLOOR_SIGMA_PX), field.target)
    checks = [check_against_floor(restored, raw, field.noisy[k], f"frame {k}")
              for k in range(1, min(len(field.noisy), MAX_OTHER_FRAMES + 1))]
    estimates = [c.gain_db if c is not None else None for c in checks]
    live = checks[0]
    return {
        "part": field.part,
        "true_gain_db": true,
        "estimated_gain_db": None if live is None else live.gain_db,
        "estimates_db": estimates,
        "truly_below": bool(true < -LOSS_TOLERANCE_DB),
        "flagged": bool(live is not None and live.below_floor),
    }


def _summary(rows: dict[str, dict[str, Any]]) -> dict[str, Any]:
    below = [r["truly_below"] for r in rows.values()]
    flagged = [r["flagged"] for r in rows.values()]
    errors = [abs(r["estimated_gain_db"] - r["true_gain_db"]) for r in rows.values()
              if r["estimated_gain_db"] is not None]
    return {
        "fields": len(rows),
        "truly_below": sum(below),
        "flagged": sum(flagged),
        "hits": sum(b and f for b, f in zip(below, flagged, strict=True)),
        "misses": sum(b and not f for b, f in zip(below, flagged, strict=True)),
        "false_alarms": sum(f and not b for b, f in zip(below, flagged, strict=True)),
        "mean_abs_error_db": float(np.mean(errors)) if errors else None,
    }


def bench_floor(
    data: str | Path,
    restorers: Sequence[str] = DEFAULT_RESTORERS,
    *,
    device: str | None = None,
    threads: int = 1,
    command: str | None = None,
    say: Callable[[str], None] = lambda _msg: None,
) -> dict[str, Any]:
    """Score the floor check (module docstring) on the fields under ``data``."""
    fields, _ = load_fields(Path(data))
    fields = [f for f in fields if len(f.noisy) >= 2]
    if not fields:
        raise ValueError(f"no field under {str(data)!r} has two noisy frames to judge against")
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    results: dict[str, Any] = {}
    try:
        for name in restorers:
            restorer = get_restorer(name, device=device)
            if not judges_restorer(restorer):
                results[name] = {"skipped": f"{name} changes modality; the check does not apply"}
                continue
            say(f"floor check: {name} on {len(fields)} fields")
            rows = {f.name: _field_row(f, restorer.restore(f.noisy[0], seed=1).mean[0])
                    for f in fields}
            results[name] = {
                "version": restorer.version,
                "fields": rows,
                "summary": {part: _summary({k: r for k, r in rows.items() if r["part"] == part})
                            for part in PARTS},
            }
    finally:
        torch.set_num_threads(previous_threads)
    return {
        "benchmark": "floor",
        "command": command,
        "data": {
            "root": str(Path(data).resolve()),
            **{part: [f.name for f in fields if f.part == part] for part in PARTS},
            "judged": "the first noisy frame of each field; estimate against the second frame "
                      "(as live: the next time point), spread against the next "
                      f"{MAX_OTHER_FRAMES}; truth against target.tif",
            "chosen_on": "selection (the estimator's noise term); report part never used",
        },
        "config": {"floor_sigma_px": FLOOR_SIGMA_PX, "tolerance_db": LOSS_TOLERANCE_DB,
                   "threads": threads},
        "machine": machine(),
        "software": software_versions(),
        "restorers": results,
    }
