"""Reading a useq sequence file strictly: a misspelt key is an error, not a default.

useq-schema's models ignore keys they do not know, so a sequence file with ``time_plann``
would run one frame instead of the time-lapse the user wrote, without a word. The file is
validated as useq reads it, then every key of the file is looked up in what useq kept
(:func:`unknown_keys`); any left over is refused, with its path in the file.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import useq
import yaml
from pydantic import ValidationError

from live_restore.models.configs import validation_problems

__all__ = ["load_sequence", "unknown_keys"]


def load_sequence(path: str | Path) -> useq.MDASequence:
    """The ``useq.MDASequence`` in a ``.json``, ``.yaml`` or ``.yml`` file.

    Raises ValueError (one line) for a missing or unreadable file, bad JSON/YAML, an invalid
    sequence, or a key useq would silently ignore.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"cannot read sequence file {path}: {err}") from err
    try:
        is_yaml = path.suffix.lower() in (".yaml", ".yml")
        data = yaml.safe_load(text) if is_yaml else json.loads(text)
    except (yaml.YAMLError, json.JSONDecodeError) as err:
        reason = " ".join(str(err).split())
        raise ValueError(f"sequence file {path} is not valid {path.suffix[1:].upper()}: {reason}"
                         ) from err
    if not isinstance(data, dict):
        raise ValueError(f"sequence file {path} must hold a mapping, got {type(data).__name__}")
    try:
        sequence = useq.MDASequence.model_validate(data)
    except ValidationError as err:
        raise ValueError(f"sequence file {path} is not valid: {validation_problems(err)}") from err
    unknown = list(unknown_keys(data, sequence.model_dump(mode="json", exclude_unset=True)))
    if unknown:
        raise ValueError(f"sequence file {path} has keys useq does not know (misspelt?): "
                         f"{', '.join(unknown)}")
    return sequence


def unknown_keys(given: Any, kept: Any, where: str = "") -> Iterator[str]:
    """Paths (``time_plan.loopz``) of the keys in ``given`` that are missing from ``kept``, the
    validated model dumped with only the fields that were set. Values written in a short form
    (a channel as a string) have no keys to check."""
    if isinstance(given, dict) and isinstance(kept, dict):
        for key, value in given.items():
            path = f"{where}.{key}" if where else str(key)
            if key not in kept:
                yield path
            else:
                yield from unknown_keys(value, kept[key], path)
    elif isinstance(given, list) and isinstance(kept, list) and len(given) == len(kept):
        for i, (value, dumped) in enumerate(zip(given, kept, strict=True)):
            yield from unknown_keys(value, dumped, f"{where}[{i}]")
