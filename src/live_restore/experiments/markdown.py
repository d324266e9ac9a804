"""Markdown pieces shared by the generated pages: tables, number formats, generated blocks.

Tables are formatted by code so that every page reads the same way and a figure is written
with the precision its metric deserves (dB to 0.01, SSIM to 0.001), never retyped.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

#: Row order of the floors every learned method must beat, shown first where present.
FLOORS = ("raw", "gaussian", "classical")

#: Decimal places per metric; metrics not listed fall back to :func:`number`'s default.
DECIMALS: dict[str, int] = {
    "psnr": 2,
    "psnr_affine": 2,
    "ssim": 3,
    "frc_resolution_nm": 1,
    "ms_per_frame": 0,
    "fps": 0,
    "minutes": 1,
}


def number(value: object, decimals: int = 2) -> str:
    """A JSON value as table text: floats rounded, None as an en dash, booleans as words."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{decimals}f}"
    return str(value)


def metric(name: str, value: object) -> str:
    """``value`` formatted with the precision :data:`DECIMALS` gives metric ``name``."""
    return number(value, DECIMALS.get(name, 2))


def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    """A GitHub markdown table; cells are ``str()``-ed, pipes in them escaped."""

    def line(cells: Sequence[object]) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    body = []
    for row in rows:
        if len(row) != len(headers):
            raise ValueError(
                f"table row {list(row)!r} has {len(row)} cells for {len(headers)} headers"
            )
        body.append(line(row))
    return [line(headers), "|" + "---|" * len(headers), *body]


def begin_marker(name: str) -> str:
    return f"<!-- generated: {name} (live-restore docs; do not edit by hand) -->"


def end_marker(name: str) -> str:
    return f"<!-- end generated: {name} -->"


def replace_block(text: str, name: str, content: str) -> str:
    """``text`` with the lines between block ``name``'s markers replaced by ``content``.

    Raises ``ValueError`` when the markers are missing or out of order, so a page that lost
    its markers fails loudly instead of silently keeping stale numbers.
    """
    begin, end = begin_marker(name), end_marker(name)
    pattern = re.compile(re.escape(begin) + r"\n.*?" + re.escape(end), re.DOTALL)
    if not pattern.search(text):
        raise ValueError(f"generated block {name!r} not found: expected {begin!r} … {end!r}")
    return pattern.sub(lambda _: f"{begin}\n{content.rstrip()}\n{end}", text, count=1)


def _flatten(value: object, prefix: str = "") -> list[tuple[str, object]]:
    if isinstance(value, dict):
        return [kv for k, v in value.items() for kv in _flatten(v, f"{prefix}{k}.")]
    if isinstance(value, list) and any(isinstance(v, dict | list) for v in value):
        return [kv for i, v in enumerate(value) for kv in _flatten(v, f"{prefix}{i}.")]
    return [(prefix.rstrip("."), value)]


def values_table(data: dict) -> list[str]:
    """Every value of a JSON as a ``key | value`` table (dotted keys): how a benchmark without
    its own renderer is shown."""
    def cell(value: object) -> str:
        if isinstance(value, list):
            return ", ".join(number(v, 3) for v in value)
        return number(value, 3)

    return [*table(["key", "value"], [[f"`{k}`", cell(v)] for k, v in _flatten(data)]), ""]
