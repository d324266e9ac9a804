"""The root typer app, its console and logging, and the helpers the verbs share: the one-line
error exit, the summary table and the check that a restorer can be adapted from noisy frames."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table

if TYPE_CHECKING:
    from live_restore.models.mscgm import MSCGMRestorer
    from live_restore.models.restorer import Restorer

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Real-time restoration of low-dose confocal/STED frames.")
console = Console()


@app.callback()
def _main(verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False) -> None:
    level = logging.DEBUG if verbose else logging.WARNING
    # The level sits on the handler too: importing pymmcore-plus sets the root logger to DEBUG.
    handler = RichHandler(console=Console(stderr=True), show_path=False, level=level)
    logging.basicConfig(level=level, format="%(message)s", handlers=[handler])


def fail(exc: Exception) -> typer.Exit:
    """Print ``exc`` as one red line; the caller raises the returned exit (code 1)."""
    console.print(f"[red]error:[/red] {exc}")
    return typer.Exit(code=1)


def report_table(title: str, rows: dict[str, object]) -> Table:
    """A two-column key/value table; floats to three significant digits."""
    table = Table(title=title, show_header=False)
    for key, value in rows.items():
        table.add_row(key, f"{value:.3g}" if isinstance(value, float) else str(value))
    return table


def noisy_base(restorer: Restorer, option: str) -> MSCGMRestorer:
    """The restorer if Noise2Noise can adapt it: an MSCGM whose output is in its input's
    modality (the targets are frames like the inputs, so a confocal→STED model would unlearn
    its STED-like output)."""
    from live_restore.models.mscgm import MSCGMRestorer

    if not isinstance(restorer, MSCGMRestorer):
        raise ValueError(f"{option} adapts MSCGM models; {restorer.name!r} is not one "
                         "(e.g. denoise)")
    if restorer.config.forward_model != "identity":
        raise ValueError(f"{option} adapts denoisers; {restorer.name!r} ({restorer.config.task})"
                         " maps to another modality, which frames of one modality cannot teach")
    return restorer
