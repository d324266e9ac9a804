"""Model files: ``NAME.safetensors`` (weights) + ``NAME.json`` (everything to rebuild them).

Shared by every trained restorer (MSCGM, CARE, DDPM) so the checks — format, version,
config, checksum, key and shape match — and their error messages are the same everywhere.
Nothing is ever unpickled.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import torch
from pydantic import BaseModel, ValidationError
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from live_restore.models.configs import validation_problems
from live_restore.models.protocol import file_checksum

ConfigT = TypeVar("ConfigT", bound=BaseModel)
ModelT = TypeVar("ModelT", bound=nn.Module)


def save_model_files(
    stem: Path,
    weights: dict[str, Tensor],
    fmt: str,
    format_version: int,
    fields: dict,
    half: bool = False,
) -> tuple[Path, str]:
    """Write ``stem.safetensors`` and ``stem.json``; return the JSON path and the checksum.

    The JSON holds ``format``, ``format_version``, ``name``, ``weights``, ``weights_dtype``,
    ``weights_checksum`` and then ``fields`` (task, normalisation, config, …), so any reader
    can check the pair. ``half`` stores floating-point weights as float16, half the size (the
    shipped models: 25 MB budget); loading casts them back to the model's float32.
    """
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    weights_path = stem.with_name(stem.name + ".safetensors")
    weights = {k: v.detach().contiguous().cpu() for k, v in weights.items()}
    if half:
        weights = {k: v.half() if v.is_floating_point() else v for k, v in weights.items()}
    save_file(weights, str(weights_path))
    checksum = file_checksum(weights_path)
    meta = {
        "format": fmt,
        "format_version": format_version,
        "name": stem.name,
        "weights": weights_path.name,
        "weights_dtype": "float16" if half else "float32",
        "weights_checksum": checksum,
        **fields,
    }
    path = stem.with_name(stem.name + ".json")
    path.write_text(json.dumps(meta, indent=2))
    return path, checksum


def _article(kind: str) -> str:
    return "an" if kind[:1].upper() in "AEFHILMNORSX" else "a"


def load_model_files(
    path: Path | str,
    fmt: str,
    format_version: int,
    config_type: type[ConfigT],
    kind: str,
    build: Callable[[ConfigT], ModelT],
    weights_of: Callable[[ModelT], dict[str, Tensor]],
) -> tuple[ModelT, dict, str]:
    """Read ``NAME.json`` + ``NAME.safetensors`` (``path`` is either, or the stem).

    Checks the format, its version, the config (``config_type``), the weights' checksum and
    that the weights fit ``build(config)`` key for key and shape for shape (``weights_of``
    names the tensors a saved model holds; the shapes are compared before anything is
    allocated, so a file that describes a huge model is refused at no cost). Returns the
    model with the weights loaded, the JSON metadata and the checksum. Raises ``ValueError``
    naming the file and the problem; never unpickles.
    """
    path = Path(path)
    stem = path.with_suffix("") if path.suffix in (".json", ".safetensors") else path
    meta_path = stem.with_name(stem.name + ".json")
    if not meta_path.is_file():
        raise ValueError(f"model description {meta_path} does not exist")
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"model description {meta_path} is not valid JSON: {err}") from err
    if not isinstance(meta, dict) or meta.get("format") != fmt:
        found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise ValueError(f"{meta_path} is not {_article(kind)} {kind} model (format {found!r})")
    if meta.get("format_version") != format_version:
        raise ValueError(
            f"{meta_path} has format_version {meta.get('format_version')!r}; this version "
            f"of live_restore reads {format_version}"
        )
    try:
        config = config_type.model_validate(meta.get("config"))
    except ValidationError as err:
        raise ValueError(
            f"{meta_path} holds an invalid {kind} config: {validation_problems(err)}"
        ) from err
    weights = meta_path.with_name(str(meta.get("weights", stem.name + ".safetensors")))
    if not weights.is_file():
        raise ValueError(f"weights file {weights} (named in {meta_path}) does not exist")
    checksum = file_checksum(weights)
    if checksum != meta.get("weights_checksum"):
        raise ValueError(
            f"weights {weights} have checksum {checksum} but {meta_path} expects "
            f"{meta.get('weights_checksum')!r}: the pair does not belong together or a "
            "file is corrupt"
        )
    _check_shapes(weights, meta_path, config, build, weights_of)
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError) as err:
        raise ValueError(f"weights file {weights} is corrupt: {err}") from err
    model = build(config)
    model.load_state_dict(state, strict=False)
    return model, meta, checksum


def _check_shapes(
    weights: Path,
    meta_path: Path,
    config: ConfigT,
    build: Callable[[ConfigT], ModelT],
    weights_of: Callable[[ModelT], dict[str, Tensor]],
) -> None:
    """Compare the file's tensor names and shapes with the model the config describes before
    anything is allocated: the model is built on the ``meta`` device (shapes, no memory) and
    the file's header is read without its data."""
    try:
        with safe_open(str(weights), framework="pt") as f:
            stored = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except (SafetensorError, OSError) as err:
        raise ValueError(f"weights file {weights} is corrupt: {err}") from err
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in weights_of(build(config)).items()}
    missing = sorted(set(expected) - set(stored))
    unexpected = sorted(set(stored) - set(expected))
    wrong = [k for k in expected if k in stored and stored[k] != expected[k]]
    if missing or unexpected or wrong:
        raise ValueError(
            f"weights {weights} do not match the config in {meta_path}: missing "
            f"{missing[:5]}, unexpected {unexpected[:5]}, wrong shape {wrong[:5]}"
        )


def prepare_model(
    model: ModelT,
    config_type: type[BaseModel],
    device: str | None = None,
    provenance: dict[str, object] | None = None,
) -> tuple[ModelT, torch.device]:
    """Ready a trained model for restoring: provenance merged into its (validated) config,
    moved to ``device`` (CUDA when available and None), in eval mode.

    Convolution weights go channels-last: oneDNN's convolutions on CPU (and cuDNN's with bf16)
    are faster in that layout. Outputs are unchanged up to float rounding.
    """
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        placed = torch.device(device)
    except RuntimeError as err:
        raise ValueError(f"unknown torch device {device!r}: {err}") from err
    if placed.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for, but this torch ({torch.__version__}) "
                         "sees no CUDA GPU; use --device cpu or install a CUDA build")
    if provenance:
        model.config = config_type.model_validate(model.config.model_dump() | provenance)
    return model.to(placed, memory_format=torch.channels_last).eval(), placed
