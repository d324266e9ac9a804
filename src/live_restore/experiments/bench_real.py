"""``live-restore bench real``: the floors, every shipped model and a peer on real noisy frames.

Data: a folder laid out like the project's real-data folder. A *field* is any folder holding
``noisy.tif`` (1–N frames of one field of view) and ``target.tif`` (its long average). Other
``.tif`` files (time-lapse series without a target) are listed as adaptation-only and never
scored. Each field belongs to one *part*: ``report`` when its name (its path relative to the
data folder) matches one of ``config.report_fields`` (names or glob patterns; by default the
real-data folder's split, :data:`DEFAULT_REPORT_FIELDS`), ``selection`` otherwise. Settings are
chosen on the selection part and numbers are reported on the report part, so the JSON keeps
the two apart: every field row names its part, and every row has a mean per part.

Scoring: the first noisy frame of each field is restored and compared with ``target.tif``:

- ``psnr``: both images normalised by their own 0.1/99.9 percentiles, no fit (as in
  ``bench restorers``);
- ``psnr_affine``, ``ssim``: :func:`live_restore.metrics.psnr` / :func:`~.metrics.ssim` (the
  prediction affinely fitted to the percentile-normalised target, CARE convention);
- ``psnr_affine_bitdepth`` (integer targets only): the prediction affinely fitted to the target
  in its own units, data range the full range of the target's integer type (255 for 8-bit), the
  convention of the FMD data set's papers. Per field it differs from ``psnr_affine`` by a
  constant, so differences between rows agree;
- ``ms_per_frame``: wall time of that restoration, after one untimed warm-up per restorer;
- for rows that train (``n2v2``, ``adapted``): ``adapt_cpu_minutes``, the CPU time of the
  training that made the restorer of that field. They train on noisy frames only, the scored
  one included, as self-supervised methods are used in practice (no target is ever seen):
  with ``config.training_unit`` ``"part"`` (the default) one network per part on every noisy
  frame of the part's fields, as a microscopist adapts once to a session's frames; with
  ``"field"`` one network per field on that field's frames.

Rows: ``raw``; ``gaussian`` (σ ``config.gaussian_sigma_px``, on float input: on 8-bit input
the filter would round); ``classical``; every shipped model zero-shot (``confocal2sted`` is a
resolution-transfer model, not a denoiser, scored as-is), and for the sampling ones
``NAME_avgK``, the mean of ``config.zero_shot_draws`` draws (each draw on another offset and
orientation of the Haar grid); ``n2v2``: CAREamics N2V2 with its
default settings, each network trained for ``config.n2v_cpu_minutes`` of CPU on the fields of
``config.n2v_parts``, in the peer environment (:mod:`live_restore.experiments.peers`);
``adapted``: ``adapt(base, stacks)`` on the fields of ``config.adapt_parts``, one ``(T, Y, X)``
stack per field, with ``base`` a fresh ``config.adapt_base`` restorer.

Two rows say how far a target lies from what these frames allow; neither is a result:
``gaussian_4x_light`` (kind ``reference``), the Gaussian on the mean of a field's first
:data:`MORE_LIGHT_FRAMES` frames, what four times the light gives the floor (fields with fewer
frames are not scored); ``supervised`` (kind ``ceiling``), the ``adapted`` fine-tune with the same
settings and frames but each field's target in place of its other frames, when ``adapt`` takes
``targets`` (:func:`live_restore.adapt.noisy.adapt_from_noisy` does). A row that
cannot run is ``{"skipped": reason}``. The floors stay beside every learned row: each of its
part means carries ``psnr_affine_vs_gaussian_db`` and ``psnr_affine_vs_classical_db``.
"""

from __future__ import annotations

import fnmatch
import inspect
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import tifffile
import torch
from pydantic import BaseModel, ConfigDict, Field
from scipy.ndimage import gaussian_filter
from skimage.metrics import peak_signal_noise_ratio

from live_restore import metrics
from live_restore.experiments import peers
from live_restore.experiments.bench_restorers import _plain_psnr
from live_restore.experiments.environment import machine, software_versions
from live_restore.models.calibration import Calibration
from live_restore.models.restorer import Averaged, Restorer, get_restorer, list_models

__all__ = [
    "BENCH_REAL_PRESETS",
    "DEFAULT_REPORT_FIELDS",
    "AdaptFn",
    "BenchRealConfig",
    "RealField",
    "bench_real",
    "load_fields",
]

logger = logging.getLogger(__name__)

Part = Literal["selection", "report"]
PARTS: tuple[Part, ...] = ("selection", "report")

DEFAULT_REPORT_FIELDS: tuple[str, ...] = (
    "confocal_bpae_nuclei/fov1[1-9]",
    "confocal_bpae_nuclei/fov20",
    "confocal_mouse_brain",
)
"""The real-data folder's report part: FMD fields fov11–fov20 and the mouse-brain frame."""

#: Draws averaged in the ``adapted_avg4`` row.
AVERAGED_DRAWS = 4

#: Frames averaged in the ``gaussian_4x_light`` reference row: four times one frame's light.
MORE_LIGHT_FRAMES = 4

#: Model-file formats of the baselines shipped for ``bench restorers`` (not scored here).
BASELINE_FORMATS = ("live_restore.care", "live_restore.ddpm")

AdaptFn = Callable[..., Restorer]
"""``adapt(base, stacks) -> restorer``: ``stacks`` one float32 ``(T, Y, X)`` per field, its
noisy frames in camera units, no target. An ``adapt`` with a ``targets`` keyword (one
``(Y, X)`` target per stack) also gets the ``supervised`` ceiling row."""

#: Rows that get the floors' gaps beside their means.
GAP_KINDS = ("model", "peer", "adapted", "reference", "ceiling")

_METRICS = (
    "psnr",
    "psnr_affine",
    "psnr_affine_bitdepth",
    "ssim",
    "ms_per_frame",
    "adapt_cpu_minutes",
    "steps",
)


class BenchRealConfig(BaseModel):
    """What ``bench real`` scores and the training budgets of its trained rows."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    report_fields: tuple[str, ...] = Field(
        DEFAULT_REPORT_FIELDS, description="field names or glob patterns of the report part"
    )
    fields_per_part: int | None = Field(None, ge=1, description="first N fields of each part")
    crop_px: int | None = Field(None, ge=16, description="centre crop of every frame, pixels")
    gaussian_sigma_px: float = Field(1.5, gt=0)
    n2v_cpu_minutes: float = Field(10.0, gt=0, description="N2V2 training CPU per network")
    n2v_parts: tuple[Part, ...] = Field(("report",), description="parts N2V2 is trained on")
    n2v_batch_size: int = Field(16, ge=1)
    adapt_parts: tuple[Part, ...] = ("selection", "report")
    training_unit: Literal["part", "field"] = Field(
        "part", description="trained rows: one network per part, or one per field"
    )
    adapt_base: str = "denoise"
    zero_shot_draws: int = Field(
        8, ge=2, description="draws averaged in the NAME_avgK rows of the sampling models "
        "(chosen on the selection part: denoise vs Gaussian +0.13 / +0.27 / +0.31 / +0.35 dB "
        "for 2 / 4 / 8 / 16 draws)")
    threads: int = Field(1, ge=1, description="torch threads here and in the peer")
    seed: int = Field(1, ge=1, description="seed of every restorer and of N2V2")


BENCH_REAL_PRESETS: dict[str, BenchRealConfig] = {
    "full": BenchRealConfig(),
    "quick": BenchRealConfig(fields_per_part=2, crop_px=128, n2v_cpu_minutes=1.0),
}


@dataclass(frozen=True)
class RealField:
    """One scored field: ``noisy`` float32 ``(T, Y, X)``, ``target`` float32 ``(Y, X)``."""

    name: str
    part: Part
    noisy: np.ndarray
    target: np.ndarray
    bitdepth_range: float | None
    """The full range of ``target.tif``'s integer type; None for a float target."""


def _centre_crop(image: np.ndarray, size: int | None) -> np.ndarray:
    if size is None:
        return image
    y0 = max(0, (image.shape[-2] - size) // 2)
    x0 = max(0, (image.shape[-1] - size) // 2)
    return image[..., y0 : y0 + size, x0 : x0 + size]


def _read_field(folder: Path, name: str, part: Part, crop: int | None) -> RealField:
    noisy = tifffile.imread(folder / "noisy.tif").astype(np.float32)
    noisy = noisy[None] if noisy.ndim == 2 else noisy
    target_path = folder / "target.tif"
    if not target_path.is_file():
        raise ValueError(f"field {name!r} has noisy.tif but no target.tif in {folder}")
    target = tifffile.imread(target_path)
    bitdepth_range = float(np.iinfo(target.dtype).max) if target.dtype.kind in "ui" else None
    target = target.astype(np.float32)
    if noisy.ndim != 3 or target.shape != noisy.shape[1:]:
        raise ValueError(
            f"field {name!r}: noisy.tif {noisy.shape} must be (T, Y, X) frames of "
            f"target.tif's shape {target.shape}"
        )
    noisy, target = _centre_crop(noisy, crop), _centre_crop(target, crop)
    return RealField(name, part, noisy, target, bitdepth_range)


def load_fields(
    data: Path, config: BenchRealConfig = BENCH_REAL_PRESETS["full"]
) -> tuple[list[RealField], list[str]]:
    """Every field under ``data`` with its part, and the adaptation-only series (names).

    Raises ValueError when ``data`` holds no field, or when report patterns that were given
    (not the defaults) match none of its fields.
    """
    data = Path(data)
    if not data.is_dir():
        raise ValueError(f"data folder {str(data)!r} does not exist")
    folders = sorted({p.parent for p in data.rglob("noisy.tif")})
    if not folders:
        raise ValueError(f"no field (a folder with noisy.tif and target.tif) under {str(data)!r}")

    def name_of(folder: Path) -> str:
        rel = folder.relative_to(data).as_posix()
        return folder.name if rel == "." else rel

    def part_of(name: str) -> Part:
        report = any(fnmatch.fnmatchcase(name, pat) for pat in config.report_fields)
        return "report" if report else "selection"

    names = {folder: name_of(folder) for folder in folders}
    parts = {folder: part_of(name) for folder, name in names.items()}
    if "report" not in parts.values():
        if config.report_fields != DEFAULT_REPORT_FIELDS:
            raise ValueError(
                f"report fields {list(config.report_fields)} match no field; fields: "
                f"{sorted(names.values())}"
            )
        logger.warning("no field matches the default report part; every field is selection")
    chosen: list[Path] = []
    for part in PARTS:
        in_part = [folder for folder in folders if parts[folder] == part]
        chosen += in_part[: config.fields_per_part]
    fields = [_read_field(f, names[f], parts[f], config.crop_px) for f in chosen]
    series = sorted(
        p.relative_to(data).as_posix()
        for p in data.rglob("*.tif")
        if p.parent not in names and p.name not in ("noisy.tif", "target.tif")
    )
    return fields, series


def _score(prediction: np.ndarray, field: RealField) -> dict[str, float]:
    target = field.target
    scores = {
        "psnr": _plain_psnr(prediction, target),
        "psnr_affine": metrics.psnr(prediction, target),
        "ssim": metrics.ssim(prediction, target),
    }
    if field.bitdepth_range is not None:
        fitted = metrics.fit_affine(prediction, target)
        scores["psnr_affine_bitdepth"] = float(
            peak_signal_noise_ratio(target, fitted, data_range=field.bitdepth_range)
        )
    return scores


def _timed(restore: Callable[[np.ndarray], np.ndarray], frame: np.ndarray) -> tuple[Any, float]:
    t0 = time.perf_counter()
    out = restore(frame)
    return out, 1000.0 * (time.perf_counter() - t0)


def _restore_fn(restorer: Restorer, seed: int) -> Callable[[np.ndarray], np.ndarray]:
    return lambda frame: restorer.restore(frame, seed=seed).mean[0]


def _fixed_row(
    fields: Sequence[RealField], restore: Callable[[np.ndarray], np.ndarray]
) -> dict[str, dict[str, Any]]:
    """Score a restorer that does not train: one warm-up, then each field's first frame."""
    restore(fields[0].noisy[0])
    out = {}
    for field in fields:
        prediction, ms = _timed(restore, field.noisy[0])
        out[field.name] = {"part": field.part, **_score(prediction, field)}
        out[field.name]["ms_per_frame"] = ms
    return out


def _training_groups(
    fields: Sequence[RealField], unit: Literal["part", "field"]
) -> dict[str, list[RealField]]:
    """The fields each trained network learns from: one group per part, or per field."""
    groups: dict[str, list[RealField]] = {}
    for field in fields:
        groups.setdefault(field.part if unit == "part" else field.name, []).append(field)
    return groups


def _adapted_rows(
    fields: Sequence[RealField],
    adapt: AdaptFn,
    config: BenchRealConfig,
    device: str | None,
    row: str = "adapted",
    supervised: bool = False,
) -> dict[str, dict[str, dict[str, Any]]]:
    """Per field, the adapted restorer with one draw (what the live worker runs) and with the
    mean of ``AVERAGED_DRAWS`` draws: rows ``row`` and ``row_avg4``. ``supervised``: ``adapt``
    is also given the fields' targets."""
    names = {row: 1, f"{row}_avg{AVERAGED_DRAWS}": AVERAGED_DRAWS}
    out: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in names}
    for group in _training_groups(fields, config.training_unit).values():
        base = get_restorer(config.adapt_base, device=device)
        stacks = [field.noisy for field in group]
        cpu0 = time.process_time()
        adapted = (adapt(base, stacks, targets=[field.target for field in group]) if supervised
                   else adapt(base, stacks))
        cpu_minutes = (time.process_time() - cpu0) / 60.0
        for name, draws in names.items():
            restore = _restore_fn(Averaged(adapted, draws), config.seed)
            restore(group[0].noisy[0])
            for field in group:
                prediction, ms = _timed(restore, field.noisy[0])
                out[name][field.name] = {"part": field.part, **_score(prediction, field)}
                out[name][field.name] |= {"ms_per_frame": ms, "adapt_cpu_minutes": cpu_minutes}
    return out


def _more_light_row(fields: Sequence[RealField], sigma: float) -> dict[str, Any]:
    """The ``gaussian_4x_light`` reference: the floor given :data:`MORE_LIGHT_FRAMES` times
    the light (the mean of as many frames), scored like the rest."""
    scored = [f for f in fields if len(f.noisy) >= MORE_LIGHT_FRAMES]
    if not scored:
        return {"skipped": f"no field has {MORE_LIGHT_FRAMES} noisy frames"}
    per_field = {
        f.name: {"part": f.part, **_score(
            gaussian_filter(f.noisy[:MORE_LIGHT_FRAMES].mean(axis=0), sigma), f)}
        for f in scored
    }
    return {"kind": "reference", "frames": MORE_LIGHT_FRAMES, "sigma_px": sigma,
            "fields": per_field, "mean": _part_means(per_field)}


def _takes_targets(adapt: AdaptFn) -> bool:
    try:
        return "targets" in inspect.signature(adapt).parameters
    except (TypeError, ValueError):  # a callable without a signature
        return False


def _n2v2_row(
    fields: Sequence[RealField], python: Path, config: BenchRealConfig
) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    groups = {}
    for name, group in _training_groups(fields, config.training_unit).items():
        shapes = {f.noisy.shape[-2:] for f in group}
        if len(shapes) > 1:
            raise ValueError(
                f"N2V2 trains one network on the frames of {name!r}, whose fields differ in "
                f"size {sorted(shapes)}: use training_unit 'field'"
            )
        frames = np.concatenate([f.noisy for f in group])
        groups[name] = (frames, {f.name: f.noisy[0] for f in group})
    results, versions = peers.run_n2v2(
        python,
        groups,
        cpu_seconds_per_group=60.0 * config.n2v_cpu_minutes,
        batch_size=config.n2v_batch_size,
        seed=config.seed,
        threads=config.threads,
    )
    out = {}
    for field in fields:
        r = results[field.name]
        out[field.name] = {"part": field.part, **_score(r.prediction, field)}
        out[field.name] |= {
            "ms_per_frame": r.ms_per_frame,
            "adapt_cpu_minutes": r.train_cpu_s / 60.0,
            "steps": r.steps,
        }
    return out, versions


def _part_means(per_field: Mapping[str, Mapping[str, Any]]) -> dict[str, dict | None]:
    means: dict[str, dict | None] = {}
    for part in PARTS:
        rows = [r for r in per_field.values() if r["part"] == part]
        keys = [k for k in _METRICS if rows and k in rows[0]]
        means[part] = (
            {"fields": len(rows)} | {k: float(np.mean([r[k] for r in rows])) for k in keys}
            if rows
            else None
        )
    return means


def _add_floor_gaps(rows: dict[str, dict[str, Any]]) -> None:
    """Put the Gaussian and classical floors beside every learned, reference and ceiling
    row's part means: the mean over the row's fields of its PSNR-affine minus the floor's on
    the same field (the difference of the means where a row scores every field)."""
    for row in rows.values():
        if row.get("kind") not in GAP_KINDS or "mean" not in row:
            continue
        for part, mean in row["mean"].items():
            if mean is None:
                continue
            names = [name for name, f in row["fields"].items() if f["part"] == part]
            for floor in ("gaussian", "classical"):
                floor_fields = rows[floor]["fields"]
                mean[f"psnr_affine_vs_{floor}_db"] = float(np.mean([
                    row["fields"][n]["psnr_affine"] - floor_fields[n]["psnr_affine"]
                    for n in names]))


def _trained_fields(fields: Sequence[RealField], parts: Sequence[Part]) -> list[RealField]:
    return [f for f in fields if f.part in parts]


def bench_real(
    data: str | Path,
    config: BenchRealConfig = BENCH_REAL_PRESETS["full"],
    *,
    adapt: AdaptFn | None = None,
    peers_python: str | Path | None = None,
    device: str | None = None,
    calibration: Calibration | None = None,
    command: str | None = None,
    say: Callable[[str], None] = lambda _msg: None,
) -> dict[str, Any]:
    """Score every row (module docstring) on the fields under ``data``; return the JSON-able
    result. ``adapt`` enables the ``adapted`` row; ``peers_python`` overrides the peer
    environment (:func:`live_restore.experiments.peers.peers_python`); ``calibration`` adds a
    ``NAME_calibrated`` row for ``classical`` and every model that reads a noise level, each
    given the calibration's noise instead of its per-frame estimate; ``command`` is recorded
    as given; ``say`` receives progress lines."""
    fields, series = load_fields(Path(data), config)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        rows = _run_rows(fields, config, adapt, peers.peers_python(peers_python), device,
                         calibration, say)
    finally:
        torch.set_num_threads(previous_threads)
    _add_floor_gaps(rows)
    summary = {
        part: {
            name: row["mean"][part]
            for name, row in rows.items()
            if "mean" in row and row["mean"][part] is not None
        }
        for part in PARTS
    }
    return {
        "benchmark": "real",
        "command": command,
        "data": {
            "root": str(Path(data).resolve()),
            **{part: [f.name for f in fields if f.part == part] for part in PARTS},
            "adaptation_only": series,
            "report_fields": list(config.report_fields),
            "split": "default (real-data folder)"
            if config.report_fields == DEFAULT_REPORT_FIELDS
            else "given",
            "frames": {f.name: list(f.noisy.shape) for f in fields},
            "scored_frame": "the first noisy frame of each field, against target.tif",
            "training_frames": (
                "all noisy frames of the part's fields, one network per part (n2v2, adapted)"
                if config.training_unit == "part"
                else "all noisy frames of the field, one network per field (n2v2, adapted)"
            ),
        },
        "config": config.model_dump(mode="json"),
        "calibration": None if calibration is None else calibration.summary(),
        "budgets": {
            "n2v_cpu_minutes_per_network": config.n2v_cpu_minutes,
            "training_unit": config.training_unit,
            "n2v_parts": list(config.n2v_parts),
            "adapt_parts": list(config.adapt_parts),
        },
        "machine": machine() | {
            "threads": config.threads,
            "device": device or ("cuda" if torch.cuda.is_available() else "cpu"),
        },
        "software": software_versions() | {"n2v2_peer": rows["n2v2"].get("versions")},
        "rows": rows,
        "summary": summary,
    }


def _run_rows(
    fields: Sequence[RealField],
    config: BenchRealConfig,
    adapt: AdaptFn | None,
    python: Path,
    device: str | None,
    calibration: Calibration | None,
    say: Callable[[str], None],
) -> dict[str, dict[str, Any]]:
    sigma = config.gaussian_sigma_px
    fixed: dict[str, tuple[dict[str, Any], Callable[[np.ndarray], np.ndarray]]] = {
        "raw": ({"kind": "floor"}, lambda frame: frame),
        "gaussian": ({"kind": "floor", "sigma_px": sigma}, lambda f: gaussian_filter(f, sigma)),
    }
    sources = {"classical": ("floor", "classical")} | {
        model["name"]: ("model", model["path"])
        for model in list_models()
        if model["kind"] == "shipped" and model["restores"] == "frames"
        # the simulator benchmark's CARE and DDPM are not restorers for users
        and json.loads(Path(model["path"]).read_text())["format"] not in BASELINE_FORMATS
    }
    for name, (kind, source) in sources.items():
        restorer = get_restorer(source, device=device)
        info: dict[str, Any] = {"kind": kind}
        if kind == "model":
            info["version"] = restorer.version
        if name == "confocal2sted":
            info["note"] = "resolution-transfer model (confocal to STED), not a denoiser"
        fixed[name] = (info, _restore_fn(restorer, config.seed))
        if getattr(restorer, "stochastic", False):  # draws differ: their mean is a row too
            draws = config.zero_shot_draws
            fixed[f"{name}_avg{draws}"] = (info | {"draws": draws}, _restore_fn(
                Averaged(restorer, draws), config.seed))
    for name, (kind, source) in sources.items() if calibration is not None else ():
        try:
            restorer = get_restorer(source, device=device, calibration=calibration)
        except ValueError:
            continue  # the model reads no noise level: a calibration changes nothing
        info = {"kind": kind, "version": restorer.version, "calibration": calibration.digest()}
        fixed[f"{name}_calibrated"] = (info, _restore_fn(restorer, config.seed))
    rows: dict[str, dict[str, Any]] = {}
    for name, (info, restore) in fixed.items():
        say(f"{name}: {len(fields)} fields")
        per_field = _fixed_row(fields, restore)
        rows[name] = info | {"fields": per_field, "mean": _part_means(per_field)}

    adapt_fields = _trained_fields(fields, config.adapt_parts)
    if adapt is None:
        rows["adapted"] = {"skipped": "no adaptation function given (--adapt none)"}
    elif not adapt_fields:
        rows["adapted"] = {"skipped": f"no field in adapt_parts {list(config.adapt_parts)}"}
    else:
        say(f"adapted: {config.adapt_base} adapted on {len(adapt_fields)} fields")
        for name, per_field in _adapted_rows(adapt_fields, adapt, config, device).items():
            rows[name] = {"kind": "adapted", "base": config.adapt_base, "fields": per_field,
                          "mean": _part_means(per_field)}
    rows["gaussian_4x_light"] = _more_light_row(fields, sigma)
    if adapt is None or not adapt_fields:
        rows["supervised"] = {"skipped": "no adapted row"}
    elif not _takes_targets(adapt):
        rows["supervised"] = {"skipped": "the adaptation function takes no targets"}
    else:
        say(f"supervised: the adapted row's fine-tune on {len(adapt_fields)} fields' targets")
        ceiling = _adapted_rows(adapt_fields, adapt, config, device, "supervised", True)
        for name, per_field in ceiling.items():
            rows[name] = {"kind": "ceiling", "base": config.adapt_base, "fields": per_field,
                          "mean": _part_means(per_field),
                          "note": "learns from the targets: a ceiling, not a result"}

    n2v_fields = _trained_fields(fields, config.n2v_parts)
    reason = peers.careamics_unavailable(python)
    if reason is None and not n2v_fields:
        reason = f"no field in n2v_parts {list(config.n2v_parts)}"
    if reason is not None:
        rows["n2v2"] = {"skipped": reason}
        return rows
    say(f"n2v2: {len(n2v_fields)} fields, {config.n2v_cpu_minutes:g} CPU min per network")
    try:
        per_field, versions = _n2v2_row(n2v_fields, python, config)
    except (RuntimeError, ValueError) as err:
        rows["n2v2"] = {"skipped": str(err)}
        return rows
    rows["n2v2"] = {
        "kind": "peer",
        "method": f"CAREamics N2V2, default settings, one network per {config.training_unit}",
        "python": str(python),
        "versions": versions,
        "fields": per_field,
        "mean": _part_means(per_field),
    }
    return rows
