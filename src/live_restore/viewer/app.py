"""Running the viewer: beside an acquisition (``--view``) or on a store (``live-restore view``).

Qt wants the main thread, so with ``--view`` the acquisition runs on a thread of its own and the
main thread runs the window. Ctrl-C / SIGTERM in the terminal still stop the light first: the
first cancels the MDA (the frames waiting are restored), the second leaves them for
``resume``. ``screenshot``: once everything is shown the window is saved as a PNG and closed
(headless checks, tests, the docs' pictures).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from pymmcore_plus import CMMCorePlus
    from qtpy.QtWidgets import QApplication, QWidget

    from live_restore.acquisition.hook import LiveRestorer
    from live_restore.viewer.window import RestoreWindow

__all__ = ["check_display", "run_app", "run_with_viewer", "view_store"]

log = logging.getLogger(__name__)

T = TypeVar("T")

ICON_SERVER = "api.iconify.design"
"""Where ndv's widgets fetch their button icons the first time (superqt -> pyconify)."""

_KEEP: list[QApplication] = []

SETTLE_S = 0.5
"""Time given to the panels to draw their last frame before a screenshot."""


def check_display() -> None:
    """Raise a one-line error before anything starts when no window can be opened (Qt would
    abort the whole process instead, acquisition and all)."""
    if sys.platform != "linux" or os.environ.get("QT_QPA_PLATFORM"):
        return
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise OSError("the viewer needs a display and none is set (DISPLAY is empty); run under "
                      "`xvfb-run -a` for a headless --screenshot, or drop --view")


def _icons_offline_if_unreachable() -> None:
    """Microscope PCs are often offline: without a network each of ndv's button icons waits
    for a failed download on every panel (tens of seconds). When the icon server's name does
    not resolve within a second, the icons take superqt's built-in fallback at once."""
    found: list[bool] = []
    lookup = threading.Thread(target=lambda: found.append(_resolves(ICON_SERVER)), daemon=True)
    lookup.start()
    lookup.join(1.0)
    if found == [True]:
        return
    import pyconify.api

    def offline(*args: Any, **kwargs: Any) -> Any:
        raise OSError(f"{ICON_SERVER} is unreachable: icons are not fetched")

    pyconify.api.svg = offline  # the download
    pyconify.api.last_modified = offline  # the freshness check before even the cache is read
    pyconify.api.svg_path.cache_clear()
    warnings.filterwarnings("ignore", message="Error fetching icon")
    log.debug("%s unreachable: viewer icons use their fallback", ICON_SERVER)


def _resolves(host: str) -> bool:
    try:
        socket.getaddrinfo(host, 443)
    except OSError:
        return False
    return True


def qt_application() -> QApplication:
    """The process's QApplication (made once), icons settled for an offline machine."""
    check_display()
    from qtpy.QtWidgets import QApplication

    # ndv reads the frame shown on the GUI thread: a local store's frame is quick to read, and
    # the window's CPU budget then counts the reading too (live_restore.viewer.window)
    os.environ["NDV_SYNCHRONOUS"] = "1"
    app = QApplication.instance()
    if app is None:
        _icons_offline_if_unreachable()
        app = QApplication([sys.argv[0]])
        _KEEP.append(app)  # Qt aborts on the next widget if Python collects the application
    return app  # type: ignore[return-value]


def save_screenshot(window: QWidget, path: Path) -> Path:
    """Let the panels render their last state and save ``window`` as ``path`` (PNG)."""
    from qtpy.QtWidgets import QApplication

    deadline = time.monotonic() + SETTLE_S
    while time.monotonic() < deadline:
        QApplication.processEvents()
        time.sleep(0.02)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not window.grab().save(str(path)):
        raise OSError(f"could not write the screenshot {path}")
    return path


def run_with_viewer(job: Callable[[Callable[[LiveRestorer], None]], T], *,
                    screenshot: Path | None = None, on_interrupt: str = "finish",
                    window: RestoreWindow | None = None) -> T:
    """Run ``job(watch)`` (an acquisition that calls ``watch(live)`` once its hook exists) on a
    thread while the window shows its store; return what ``job`` returned.

    Without ``screenshot`` the window stays open after the run until the user closes it;
    closing it earlier only hides it (the acquisition goes on to its end). ``on_interrupt``:
    what the first Ctrl-C does with the frames waiting (``finish`` or ``leave``); ``window``:
    a window made by the caller (to look at it after the run), else a new one.
    """
    app = qt_application()
    from live_restore.viewer.window import RestoreWindow

    window = window or RestoreWindow()
    window.resize(1400, 600)
    window.show()
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = job(window.watch)
        except BaseException as exc:  # re-raised on the main thread
            outcome["error"] = exc

    worker = threading.Thread(target=run, name="acquisition", daemon=True)
    interrupts = [0]

    def interrupted(signum: int, frame: object) -> None:
        interrupts[0] += 1
        live = window.live
        if live is None:
            return
        if interrupts[0] == 1:
            live.stop(f"interrupted ({signal.Signals(signum).name})")
            if on_interrupt == "leave":
                live.leave_backlog()
        else:
            live.leave_backlog()

    previous = {s: signal.signal(s, interrupted) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        worker.start()
        while worker.is_alive():
            app.processEvents()
            worker.join(0.02)
        if "error" not in outcome and window.isVisible():  # else the user closed it early
            window.update_now()
            if screenshot is not None:
                save_screenshot(window, screenshot)
            else:
                window.setWindowTitle(window.windowTitle() + " (finished)")
                app.exec()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        window.close()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


def view_store(path: str | Path, *, screenshot: Path | None = None) -> None:
    """Open ``path`` in the window and follow it while another process writes it; with
    ``screenshot``, save what is there now and close."""
    from live_restore.acquisition.store import AcquisitionStore

    # a clear error for a bad path, before Qt
    AcquisitionStore.open(path, mode="r", following=True).close()
    app = qt_application()
    from live_restore.viewer.window import RestoreWindow

    window = RestoreWindow(path)
    _show(app, window, screenshot, (1400, 600))


def run_app(core: CMMCorePlus, *, output: str | Path = "live-restore.ome.zarr",
            screenshot: Path | None = None) -> None:
    """The MDA widget, the restoration dock and the viewer on ``core``
    (:class:`~live_restore.viewer.dock.RestoreApp`) until the user closes it; with
    ``screenshot``, save the window as it opens and close."""
    app = qt_application()
    from live_restore.viewer.dock import RestoreApp

    _show(app, RestoreApp(core, output), screenshot, (1600, 900))


def _show(app: QApplication, window: QWidget, screenshot: Path | None,
          size: tuple[int, int]) -> None:
    """Show ``window``; save it and close (``screenshot``) or run until the user closes it."""
    window.resize(*size)
    window.show()
    if screenshot is not None:
        save_screenshot(window, screenshot)
        window.close()
        return
    app.exec()
