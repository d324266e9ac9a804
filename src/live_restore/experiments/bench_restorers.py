"""``live-restore bench restorers``: MSCGM against its baselines on a fixed simulated test set.

Per task, ``frames`` pairs are drawn with :func:`live_restore.sim.make_pairs` and seed
:data:`REPORT_SEED`. The report pairs share none with the pairs the shipped models were trained
on (:data:`TRAINING_SEEDS`) or their settings were chosen on (:data:`SELECTION_SEEDS`); the run
refuses a seed that does (:func:`live_restore.experiments.seeds.check_disjoint`) and names all
of them in its JSON. The reference is the simulator's high-dose target. Per method, averaged
over frames:

- ``psnr``: both frames normalised by their own 0.1/99.9 percentiles, then PSNR with data
  range 1, no fit: intensity errors count;
- ``psnr_affine``, ``ssim``: :func:`live_restore.metrics.psnr` / :func:`~.metrics.ssim`
  (CARE convention: the prediction affinely fitted to the normalised reference);
- ``frc_resolution_nm``: FRC (1/7) between the restorations of two independent noise
  realisations of one field, in nm via the pair's pixel size; the ``target`` row gives the
  same for two target realisations (``sim.make_pairs(..., realisation=1)``: same fields,
  fresh noise);
- ``ms_per_frame``: median wall time per frame after one warm-up frame (``samples`` draws
  for the ``_avg4`` rows, one otherwise);
- ``steps`` (sampling steps per draw; 1 for CARE), ``params`` (inference parameters, 0 for
  classical and raw), ``train_steps`` (optimiser steps the model file was trained for).

Learned methods need a model file per task (``models[task][name]``, name ``mscgm``, ``care``
or ``ddpm``; the ``_avg4`` rows reuse them); a method without one is reported as
``{"skipped": "no model file: ..."}``. ``targets_check`` evaluates the issue's targets per
task (true/false, or null where a number is missing); the comparisons with CARE are only fair
when ``mscgm_care_same_training_steps`` is true ("same training budget", the issue's rule).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from skimage.metrics import peak_signal_noise_ratio

from live_restore import metrics, sim
from live_restore.experiments.seeds import SeedSet, check_disjoint
from live_restore.models.restorer import Restorer, get_restorer

__all__ = ["METHODS", "REPORT_SEED", "SELECTION_SEEDS", "TRAINING_SEEDS", "bench_restorers"]

#: Dataset seed of the pairs the benchmark reports on.
REPORT_SEED = 30_000

#: Pairs on which the shipped models' settings were chosen (``MSCGMConfig.for_task``).
SELECTION_SEEDS: tuple[SeedSet, ...] = (
    SeedSet(seed=5_000, pairs=10, use="validation frames of the shipped settings"),
    SeedSet(seed=10_000, pairs=16,
            use="held-out pairs of the settings' A/B runs and this benchmark's former test set"),
)

#: Pairs the shipped models were trained on (``live-restore train``, seed 0, default preset).
TRAINING_SEEDS: tuple[SeedSet, ...] = (
    SeedSet(seed=0, pairs=128, use="training pairs of the shipped models"),
)

#: Row name → (model file key, or None for a built-in; samples per frame).
METHODS: dict[str, tuple[str | None, int]] = {
    "classical": (None, 1),
    "mscgm": ("mscgm", 1),
    "mscgm_avg4": ("mscgm", 4),
    "care": ("care", 1),
    "ddpm": ("ddpm", 1),
    "ddpm_avg4": ("ddpm", 4),
}

Restore = Callable[[np.ndarray, int], np.ndarray]
"""``restore(frame, index) -> restored``: one ``(Y, X)`` float32 frame in camera units."""


def _plain_psnr(pred: np.ndarray, ref: np.ndarray) -> float:
    p, _, _ = metrics.normalize_percentile(pred)
    r, _, _ = metrics.normalize_percentile(ref)
    return float(peak_signal_noise_ratio(r, p, data_range=1.0))


def _frc_nm(a: Sequence[np.ndarray], b: Sequence[np.ndarray], pixel_nm: list[float]) -> float:
    return float(
        np.mean([metrics.frc_resolution(x, y, p) for x, y, p in zip(a, b, pixel_nm, strict=True)])
    )


def _evaluate(
    restore: Restore,
    degraded: np.ndarray,
    target: np.ndarray,
    second: np.ndarray,
    pixel_nm: list[float],
) -> dict[str, Any]:
    """Restore every frame (timed, after one warm-up) and the second realisations; score."""
    restore(degraded[0], 0)
    restored, times = [], []
    for i, frame in enumerate(degraded):
        t0 = time.perf_counter()
        restored.append(restore(frame, i))
        times.append(time.perf_counter() - t0)
    again = [restore(frame, len(degraded) + i) for i, frame in enumerate(second)]
    return {
        "psnr": float(np.mean([_plain_psnr(p, r) for p, r in zip(restored, target, strict=True)])),
        "psnr_affine": float(
            np.mean([metrics.psnr(p, r) for p, r in zip(restored, target, strict=True)])
        ),
        "ssim": float(np.mean([metrics.ssim(p, r) for p, r in zip(restored, target, strict=True)])),
        "frc_resolution_nm": _frc_nm(restored, again, pixel_nm),
        "ms_per_frame": 1000.0 * float(np.median(times)),
    }


def _params(restorer: Restorer) -> int:
    """Parameters used at inference (MSCGM's critics are training-time only)."""
    model = getattr(restorer, "model", None)
    if not isinstance(model, torch.nn.Module):
        return 0
    return sum(
        p.numel() for n, p in model.named_parameters() if not n.startswith("discriminators.")
    )


def _steps(restorer: Restorer) -> int | None:
    """Network sampling steps per draw: the config's ``steps``, 1 for a one-pass model."""
    if not isinstance(getattr(restorer, "model", None), torch.nn.Module):
        return None
    return int(getattr(getattr(restorer, "config", None), "steps", 1))


def _train_steps(restorer: Restorer) -> int | None:
    """Optimiser steps recorded in the model file (None for a built-in or an old file)."""
    steps = getattr(getattr(restorer, "config", None), "steps_trained", None)
    return int(steps) if steps else None


def _targets(rows: Mapping[str, Mapping[str, Any]], frame_shape: Sequence[int]) -> dict:
    """The issue's targets for one task: True/False, None where a number is missing."""

    def get(method: str, key: str) -> float | None:
        value = rows.get(method, {}).get(key)
        return float(value) if isinstance(value, (int, float)) else None

    def check(*values: float | None, test: Callable[..., bool]) -> bool | None:
        return None if any(v is None for v in values) else bool(test(*values))

    mscgm_ms, ddpm_ms = get("mscgm", "ms_per_frame"), get("ddpm", "ms_per_frame")
    mscgm_psnr, care_psnr = get("mscgm", "psnr"), get("care", "psnr")
    frc = {m: get(m, "frc_resolution_nm") for m in ("mscgm", "care", "target")}
    return {
        "mscgm_30x_faster_than_ddpm": check(mscgm_ms, ddpm_ms, test=lambda m, d: d >= 30 * m),
        "mscgm_psnr_ge_ddpm_minus_0.3dB": check(
            mscgm_psnr, get("ddpm", "psnr"), test=lambda m, d: m >= d - 0.3
        ),
        "mscgm_psnr_ge_care_minus_0.5dB": check(
            mscgm_psnr, care_psnr, test=lambda m, c: m >= c - 0.5
        ),
        "mscgm_avg4_psnr_ge_care": check(
            get("mscgm_avg4", "psnr"), care_psnr, test=lambda m, c: m >= c
        ),
        "mscgm_frc_closer_to_target_than_care": check(
            frc["mscgm"], frc["care"], frc["target"], test=lambda m, c, t: abs(m - t) < abs(c - t)
        ),
        "mscgm_care_same_training_steps": check(
            get("mscgm", "train_steps"), get("care", "train_steps"), test=lambda m, c: m == c
        ),
        "mscgm_512_single_sample_le_250ms": (
            check(mscgm_ms, test=lambda m: m <= 250.0) if list(frame_shape) == [512, 512] else None
        ),
    }


def _bench_task(
    task: str,
    paths: Mapping[str, str],
    frames: int,
    size: int,
    seed: int,
    device: str | None,
) -> dict[str, Any]:
    degraded, target, params = sim.make_pairs(task, frames, seed, size)
    second_degraded, second_target, _ = sim.make_pairs(task, frames, seed, size, realisation=1)
    pixel_nm = [1000.0 * p["pixel_size_um"] for p in params]
    rows: dict[str, dict[str, Any]] = {
        "target": {"frc_resolution_nm": _frc_nm(target, second_target, pixel_nm)},
        "raw": _evaluate(lambda f, i: f, degraded, target, second_degraded, pixel_nm)
        | {"steps": None, "params": 0},
    }
    loaded: dict[str, Restorer] = {}
    for method, (key, samples) in METHODS.items():
        if key is None:
            restorer = get_restorer(method, device=device)
        elif key in loaded:
            restorer = loaded[key]
        else:
            path = paths.get(key)
            if path is None or not Path(path).is_file():
                rows[method] = {"skipped": f"no model file: {path or f'none given for {key!r}'}"}
                continue
            restorer = loaded[key] = get_restorer(str(path), device=device)

        def restore(frame: np.ndarray, i: int, r: Restorer = restorer, k: int = samples):
            return r.restore(frame, samples=k, seed=i).mean[0]

        rows[method] = _evaluate(restore, degraded, target, second_degraded, pixel_nm) | {
            "samples": samples,
            "steps": _steps(restorer),
            "params": _params(restorer),
            "train_steps": _train_steps(restorer),
            "version": restorer.version,
        }
        if key is not None:
            rows[method]["model"] = str(paths[key])
    return {
        "frame_shape": [size, size],
        "frames": frames,
        "seed": seed,
        "device": device or ("cuda" if torch.cuda.is_available() else "cpu"),
        "threads": torch.get_num_threads(),
        "methods": rows,
    }


def bench_restorers(
    tasks: Sequence[str] = ("confocal2sted", "denoise"),
    models: Mapping[str, Mapping[str, str]] | None = None,
    quick: bool = False,
    *,
    frames: int | None = None,
    size: int | None = None,
    seed: int = REPORT_SEED,
    device: str | None = None,
) -> dict[str, Any]:
    """Score every method on every task (module docstring); return the JSON-able result.

    Parameters
    ----------
    tasks
        Simulator tasks, each with its own test set.
    models
        ``{task: {"mscgm" | "care" | "ddpm": path to NAME.json}}``; missing entries or files
        are reported as skipped.
    quick
        4 frames of 256² instead of 16 frames of 512²; ``frames``/``size`` override either.
    seed
        Dataset seed of the report pairs; ``ValueError`` if they share a pair with
        :data:`SELECTION_SEEDS` or :data:`TRAINING_SEEDS`.
    device
        Passed to every restorer (None: CUDA when present).
    """
    frames = frames if frames is not None else (4 if quick else 16)
    size = size if size is not None else (256 if quick else 512)
    if isinstance(frames, bool) or not isinstance(frames, int) or frames < 1:
        raise ValueError(f"frames must be an integer >= 1, got {frames!r}")
    if isinstance(size, bool) or not isinstance(size, int) or size < 8:
        raise ValueError(f"size must be an integer >= 8 pixels, got {size!r}")
    for task in tasks:
        if task not in sim.TASKS or task in sim.tasks.STACK_TASKS:
            raise ValueError(f"task must be a 2-D simulator task, got {task!r}")
    report = SeedSet(seed=seed, pairs=frames, use="report pairs of bench restorers")
    check_disjoint(report, (*SELECTION_SEEDS, *TRAINING_SEEDS))
    models = models or {}
    unknown = sorted(set(models) - set(tasks))
    if unknown:
        raise ValueError(f"models given for task(s) {unknown} not benchmarked; tasks: {tasks}")
    keys = {key for key, _ in METHODS.values() if key is not None}
    for task, paths in models.items():
        if set(paths) - keys:
            raise ValueError(
                f"unknown method(s) {sorted(set(paths) - keys)} in models[{task!r}]; "
                f"expected some of {sorted(keys)}"
            )
    out: dict[str, Any] = {
        "tasks": {},
        "targets_check": {},
        "quick": quick,
        "selection_seeds": [s.model_dump() for s in SELECTION_SEEDS],
        "training_seeds": [s.model_dump() for s in TRAINING_SEEDS],
        "report_seeds": report.model_dump(),
    }
    for task in tasks:
        result = _bench_task(task, models.get(task, {}), frames, size, seed, device)
        out["tasks"][task] = result
        out["targets_check"][task] = _targets(result["methods"], result["frame_shape"])
    out["cpu_count"] = os.cpu_count()
    return out
