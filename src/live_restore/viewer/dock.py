"""Restoration inside a Micro-Manager GUI: a dock to pick a model per channel, start and stop a
restored acquisition and see the restorer's backlog and latency, in a small app made of
pymmcore-widgets' MDA widget, the dock and the viewer window.

pymmcore-gui (0.0.1rc0, the newest release) pins pymmcore 11 and zarr 2, which cannot live
beside this package's pymmcore 12.5.1.75 / zarr 3; :class:`RestoreDock` is a plain QWidget, so
it docks into pymmcore-gui's main window as it is once their pins meet. The MDA widget keeps
its sequence editor and buttons; its Run starts the restored acquisition
(:func:`~live_restore.acquisition.run.run_acquisition` on a thread, exactly what
``live-restore acquire --view`` runs) instead of a plain MDA.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pymmcore_widgets import MDAWidget
from qtpy.QtCore import Qt, QTimer
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDockWidget,
    QFormLayout,
    QLabel,
    QLineEdit,
    QMainWindow,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from live_restore.acquisition.run import AcquisitionReport, model_record, run_acquisition
from live_restore.models.restorer import AUTO, Restorer, list_models, restorers_by_channel
from live_restore.viewer.window import TICK_MS, RestoreWindow

if TYPE_CHECKING:
    import useq
    from pymmcore_plus import CMMCorePlus

    from live_restore.acquisition.hook import LiveRestorer

__all__ = ["RAW_ONLY", "RestoreApp", "RestoreDock", "chosen_restorers"]

RAW_ONLY = "raw only"
"""The model choice that saves a channel raw and does not restore it."""


def chosen_restorers(choices: Mapping[str, str], device: str | None = None
                     ) -> dict[str, Restorer | None]:
    """The dock's choices (``auto``, a model, or :data:`RAW_ONLY`) per channel as restorers,
    one instance per model; None for a channel left raw."""
    return restorers_by_channel(
        {c: None if name == RAW_ONLY else name for c, name in choices.items()}, device=device)


class RestoreDock(QWidget):
    """Model per channel, the store to write, start/stop, backlog and latency.

    :meth:`start` runs one restored acquisition of a sequence on a thread; the viewer window
    (if given) follows it. ``finished`` holds the last run's report, ``error`` its failure.
    """

    def __init__(self, core: CMMCorePlus, window: RestoreWindow | None = None,
                 output: str | Path = "live-restore.ome.zarr") -> None:
        super().__init__()
        self.core = core
        self.window = window
        self.live: LiveRestorer | None = None
        self.finished: AcquisitionReport | None = None
        self.error: BaseException | None = None
        self._thread: threading.Thread | None = None

        self.output = QLineEdit(str(output))
        self.overwrite = QCheckBox("replace an existing store")
        self.models: dict[str, QComboBox] = {}
        form = QFormLayout()
        form.addRow("store", self.output)
        form.addRow("", self.overwrite)
        choices = [AUTO, *[row["name"] for row in list_models()], RAW_ONLY]
        for channel in self.channels():
            box = QComboBox()
            box.addItems(choices)
            form.addRow(f"{channel or 'frames'}", box)
            self.models[channel] = box
        self.start_button = QPushButton("Acquire and restore")
        self.stop_button = QPushButton("Stop")
        self.stop_button.setEnabled(False)
        self.status = QLabel("idle")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.start_button)
        layout.addWidget(self.stop_button)
        layout.addWidget(self.status)
        layout.addStretch(1)
        self.stop_button.clicked.connect(self.stop)

        self._timer = QTimer(self)
        self._timer.timeout.connect(self.update_status)
        self._timer.start(TICK_MS)

    def channels(self) -> list[str]:
        """The presets of the core's channel group (``[""]`` when it has none)."""
        group = self.core.getChannelGroup()
        return list(self.core.getAvailableConfigs(group)) if group else [""]

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, sequence: useq.MDASequence) -> None:
        """Run ``sequence`` restored into the store named in the dock (on a thread)."""
        if self.running:
            raise RuntimeError("a restored acquisition is already running")
        restorers = chosen_restorers({c: box.currentText() for c, box in self.models.items()})
        restorer: Any = restorers[""] if list(restorers) == [""] else restorers
        self.finished, self.error, self.live = None, None, None
        output, overwrite = Path(self.output.text()), self.overwrite.isChecked()

        def run() -> None:
            try:
                self.finished = run_acquisition(
                    self.core, sequence, output, restorer, overwrite=overwrite,
                    model_info=model_record(restorer), watch=self._watch)
            except BaseException as exc:  # shown in the dock, never lost in a thread
                self.error = exc

        self._thread = threading.Thread(target=run, name="restored-acquisition", daemon=True)
        self._thread.start()
        self.start_button.setEnabled(False)
        self.stop_button.setEnabled(True)
        self.status.setText("starting")

    def _watch(self, live: LiveRestorer) -> None:
        self.live = live
        if self.window is not None:
            self.window.watch(live)

    def stop(self) -> None:
        """Stop the light now; the frames waiting are still restored."""
        if self.live is not None:
            self.live.stop("stopped from the dock")

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the run (tests, scripts); True when it has ended."""
        if self._thread is not None:
            self._thread.join(timeout)
        return not self.running

    def update_status(self) -> None:
        """The status line (the timer calls this): progress while running, the outcome after."""
        live = self.live
        if self.running:
            if live is not None:
                p50 = live.stats.percentile(50)
                latency = f" · latency p50 {p50:.0f} ms" if p50 == p50 else ""
                self.status.setText(f"frames {live.raw_frames_written} · restored "
                                    f"{live.stats.restored} · backlog {live.backlog}{latency}")
            return
        if self._thread is None:
            return
        self._thread = None
        self.start_button.setEnabled(True)
        self.stop_button.setEnabled(False)
        if self.error is not None:
            self.status.setText(f"error: {self.error}")
        elif self.finished is not None:
            r = self.finished
            self.status.setText(f"done: {r.raw_frames_written} saved, {r.restored} restored, "
                                f"{r.pending} left for resume" + (f" ({r.stopped})"
                                                                   if r.stopped else ""))


class _RestoringMDAWidget(MDAWidget):
    """pymmcore-widgets' MDA widget whose Run starts a restored acquisition."""

    def __init__(self, core: CMMCorePlus, dock: RestoreDock) -> None:
        super().__init__(mmcore=core)
        self.dock = dock
        self.save_info.hide()  # the dock names the store: raw and restored go there together

    def execute_mda(self, output: object = None) -> None:
        try:
            self.dock.start(self.value())
        except (RuntimeError, ValueError, OSError) as exc:
            self.dock.status.setText(f"error: {exc}")


class RestoreApp(QMainWindow):
    """The MDA widget and the restoration dock beside the viewer window."""

    def __init__(self, core: CMMCorePlus, output: str | Path = "live-restore.ome.zarr") -> None:
        super().__init__()
        self.setWindowTitle("live_restore: acquire and restore")
        self.viewer = RestoreWindow()
        self.dock = RestoreDock(core, self.viewer, output)
        self.mda = _RestoringMDAWidget(core, self.dock)
        self.dock.start_button.clicked.connect(self.mda.run_mda)
        self.setCentralWidget(self.viewer)
        for title, widget, side in (("MDA", self.mda, Qt.DockWidgetArea.LeftDockWidgetArea),
                                    ("restoration", self.dock,
                                     Qt.DockWidgetArea.RightDockWidgetArea)):
            holder = QDockWidget(title, self)
            holder.setWidget(widget)
            self.addDockWidget(side, holder)
