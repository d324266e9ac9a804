"""The viewer from the command line: ``view STORE``, and ``--view`` for the verbs that acquire."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from live_restore.cli.root import app, fail

if TYPE_CHECKING:
    from live_restore.acquisition.hook import LiveRestorer

T = TypeVar("T")

ViewOption = Annotated[bool, typer.Option(
    "--view", help="watch raw, restored and uncertainty side by side as frames arrive (needs "
                   "the `viewer` extra and a display)")]
ScreenshotOption = Annotated[Path | None, typer.Option(
    help="save the viewer's window as this PNG once everything is shown, then close "
         "(implies --view; headless: run under `xvfb-run -a`)")]

VIEWER_MISSING = ("the viewer is not installed: pip install 'live-restore[viewer]' "
                  "(ndv with its Qt front end)")


def viewer_module() -> ModuleType:
    """``live_restore.viewer``, or a one-line error saying how to install it."""
    try:
        import live_restore.viewer as viewer
    except ImportError as exc:
        raise OSError(f"{VIEWER_MISSING} ({exc})") from exc
    return viewer


def watched(job: Callable[[Callable[[LiveRestorer], None] | None], T], *, view: bool,
            screenshot: Path | None, on_interrupt: str = "finish") -> T:
    """``job(watch)`` as it is, or beside the viewer window with ``--view`` / ``--screenshot``."""
    if not view and screenshot is None:
        return job(None)
    viewer = viewer_module()
    viewer.check_display()  # before any light reaches the sample
    return viewer.run_with_viewer(job, screenshot=screenshot, on_interrupt=on_interrupt)


@app.command()
def view(
    store: Annotated[Path, typer.Argument(help="a live_restore OME-Zarr store")],
    screenshot: ScreenshotOption = None,
) -> None:
    """Open a store in the viewer: raw, restored and uncertainty side by side, following new
    frames while another process still writes it."""
    try:
        viewer_module().view_store(store, screenshot=screenshot)
    except (ValueError, OSError) as exc:
        raise fail(exc) from exc
    if screenshot is not None:
        typer.echo(f"screenshot: {screenshot}")


@app.command()
def gui(
    config: Annotated[str | None, typer.Option(
        help="Micro-Manager config (.cfg), or 'demo' for the genuine MMConfig_demo.cfg "
             "(default: the simulated confocal/STED microscope)")] = None,
    output: Annotated[Path, typer.Option(help="OME-Zarr store each run writes")] = Path(
        "live-restore.ome.zarr"),
    screenshot: ScreenshotOption = None,
) -> None:
    """A small Micro-Manager app: pymmcore-widgets' MDA widget, a dock to pick a model per
    channel and start/stop live restoration, and the viewer."""
    from live_restore.acquisition.core import managed_core
    from live_restore.experiments.demo import default_config

    try:
        viewer = viewer_module()
        viewer.check_display()
        cfg = default_config() if config is None else None if config == "demo" else Path(config)
        with managed_core(cfg) as core:
            viewer.run_app(core, output=output, screenshot=screenshot)
    except (ValueError, OSError) as exc:
        raise fail(exc) from exc
