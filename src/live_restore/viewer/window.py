"""The viewer window: raw, restored and uncertainty side by side, following a store.

Every panel is an ndv ``ArrayViewer`` over one series of the store (:class:`StoreSeries`);
their sliders are linked, so the panels always show the same frame. The window reads the store
read-only beside its writer, whether that writer is this process's acquisition or another
process: the journal is the one source of truth, and :meth:`AcquisitionStore.follow` takes in
what was appended. A hook's psygnal signals (:meth:`RestoreWindow.watch`) only wake the window;
they run on the acquisition and worker threads, so they set a flag and nothing more. The window
looks at that flag (and, with no hook, at the journal) from the GUI thread ten times a second,
so however fast frames arrive the GUI redraws at most ten times a second and the acquisition
never waits for it. Drawing costs CPU the acquisition and the restorer share (on a small
machine without a GPU, OpenGL itself runs on the CPU), so the window also keeps its own thread
under :data:`GUI_CPU_BUDGET` of one core: after each redraw it waits in proportion to what the
last one cost, ten redraws a second where drawing is cheap, fewer where it is not.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ndv
from qtpy.QtCore import Qt, QTimer
from qtpy.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from live_restore.acquisition.layout import image_kinds
from live_restore.acquisition.ledger import FrameStatus
from live_restore.acquisition.store import AcquisitionStore
from live_restore.viewer.data import StoreSeries

if TYPE_CHECKING:
    from live_restore.acquisition.hook import LiveRestorer

__all__ = ["TICK_MS", "RestoreWindow"]

log = logging.getLogger(__name__)

TICK_MS = 100
"""How often the GUI thread looks for new frames: the redraw rate's ceiling."""

GUI_CPU_BUDGET = 0.03
"""The share of one core the window's thread may take while frames arrive."""

OPEN_WAIT_S = 10.0
"""How long an acquisition waits for the window to build its panels before it starts."""

MAX_REDRAW_WAIT_S = 2.0
"""The longest the window waits between redraws, however costly the last one was."""

CHANNEL_COLOURS = ("green", "magenta", "cyan", "yellow", "red", "blue")
"""Lookup tables of the channels in store order, as ndv's composite mode colours them."""

PANEL_TITLES = {"raw": "raw", "restored": "restored", "uncertainty": "uncertainty (std)"}


class RestoreWindow(QWidget):
    """A store's raw, restored and uncertainty frames, side by side, following new frames.

    ``store``: a store to open now, or None to wait for the one a hook writes
    (:meth:`watch`). With "follow newest" ticked (the default) the panels jump to the frame
    restored last (the newest raw frame while none is); moving a slider unticks it.
    """

    def __init__(self, store: str | Path | None = None, *, follow: bool = True) -> None:
        super().__init__()
        self.setWindowTitle("live_restore")
        self.store: AcquisitionStore | None = None
        self.panels: dict[str, ndv.ArrayViewer] = {}
        self.series: dict[str, StoreSeries] = {}
        self.shown: dict[str, int] = {}
        """The frame index the panels show."""
        self._live: LiveRestorer | None = None
        self._store_to_open: Path | None = None if store is None else Path(store)
        self._woken = threading.Event()
        self._opened = threading.Event()
        self._setting_index = False
        self.redraws = 0
        """How many times the panels were redrawn for news (at most one per tick)."""
        self._next_redraw = 0.0  # time.monotonic() before which the timer does not redraw
        self._cpu_mark = time.thread_time()

        self._panel_row = QHBoxLayout()
        self.follow_box = QCheckBox("follow newest")
        self.follow_box.setChecked(follow)
        self.frame_label = QLabel("waiting for the first frame")
        self.totals_label = QLabel("")
        for label in (self.frame_label, self.totals_label):
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        footer = QHBoxLayout()
        footer.addWidget(self.follow_box)
        footer.addWidget(self.frame_label, stretch=1)
        layout = QVBoxLayout(self)
        layout.addLayout(self._panel_row, stretch=1)
        layout.addLayout(footer)
        layout.addWidget(self.totals_label)

        self._timer = QTimer(self)
        self._timer.timeout.connect(self._tick)
        self._timer.start(TICK_MS)
        self.update_now()

    # ------------------------------------------------------------------ sources

    @property
    def live(self) -> LiveRestorer | None:
        """The hook being watched, if any."""
        return self._live

    def watch(self, live: LiveRestorer) -> None:
        """Follow the store ``live`` writes (the ``watch`` callback of
        :func:`~live_restore.acquisition.run.run_acquisition`). Called from the acquisition's
        thread, it waits (up to :data:`OPEN_WAIT_S`) for the panels to be built, so they are
        there for the first frame and their building does not compete with the acquisition."""
        self._live = live
        self._store_to_open = Path(live.store.path)
        for signal in (live.signals.rawSaved, live.signals.frameRestored,
                       live.signals.stackRestored, live.signals.restoreFailed,
                       live.signals.rawWriteFailed):
            signal.connect(self._wake)
        self._woken.set()
        if threading.current_thread() is not threading.main_thread():
            self._opened.wait(OPEN_WAIT_S)

    def _wake(self, *args: Any) -> None:
        """A signal slot on the acquisition or worker thread: note that there is news."""
        self._woken.set()

    def _open(self, path: Path) -> None:
        """Open the store read-only and build one panel per series."""
        self.store = AcquisitionStore.open(path, mode="r", following=True)
        self.setWindowTitle(f"live_restore: {path.name}")
        sizes = self.store.sizes
        channels = "c" if sizes.get("c", 1) > 1 else None
        names = self.store.channel_names or [str(i) for i in range(sizes.get("c", 1))]
        luts = {i: {"name": name, "cmap": CHANNEL_COLOURS[i % len(CHANNEL_COLOURS)]}
                for i, name in enumerate(names)} if channels else {}
        for kind in image_kinds(self.store.has_uncertainty):
            series = StoreSeries(self.store, kind)
            viewer = ndv.ArrayViewer(series, channel_axis=channels, luts=luts,
                                     channel_mode="composite" if channels else "grayscale")
            viewer.display_model.current_index.value_changed.connect(
                lambda kind=kind: self._slider_moved(kind))
            column = QVBoxLayout()
            column.addWidget(QLabel(f"<b>{PANEL_TITLES[kind]}</b>"))
            column.addWidget(viewer.widget(), stretch=1)
            self._panel_row.addLayout(column, stretch=1)
            self.series[kind], self.panels[kind] = series, viewer

    # ------------------------------------------------------------------ updating

    def _tick(self) -> None:
        """The timer: redraw when there is news and the last redraw's cost has been waited
        out (:data:`GUI_CPU_BUDGET`)."""
        if time.monotonic() < self._next_redraw or not self.update_now():
            return
        cpu = time.thread_time()  # this thread's CPU since the last redraw: one redraw's cost
        spent, self._cpu_mark = cpu - self._cpu_mark, cpu
        self._next_redraw = time.monotonic() + min(spent / GUI_CPU_BUDGET, MAX_REDRAW_WAIT_S)

    def update_now(self) -> bool:
        """Take in new frames and redraw (the timer calls this); True when anything changed."""
        if self.store is None:
            if self._store_to_open is None or not (self._store_to_open / "zarr.json").exists():
                return False
            try:
                self._open(self._store_to_open)
            finally:
                self._opened.set()  # a store that cannot be opened must not hold the run up
            news = True
        else:
            news = self.store.follow() > 0
        news = self._woken.is_set() or news
        self._woken.clear()
        if not news:
            return False
        newest = (self.store.latest(FrameStatus.RESTORED) or self.store.latest(FrameStatus.RAW)
                  if self.follow_box.isChecked() else None)
        if newest is not None and self._full_index(newest) != self.shown:
            self.show_frame(newest)  # the panels read the frame they move to
        else:
            for series in self.series.values():
                series.data_changed.emit()  # the frame shown may have changed under the panel
            self._describe()
        self.redraws += 1
        return True

    def _full_index(self, index: dict[str, int]) -> dict[str, int]:
        """``index`` over every axis of the store (missing axes: 0)."""
        assert self.store is not None
        return {axis: int(index.get(axis, 0)) for axis in self.store.sizes}

    def show_frame(self, index: dict[str, int]) -> None:
        """Show frame ``index`` (missing axes: 0) in every panel."""
        self.shown = self._full_index(index)
        self._setting_index = True
        try:
            for viewer in self.panels.values():
                viewer.display_model.current_index.update(self.shown)
        finally:
            self._setting_index = False
        self._describe()

    def _slider_moved(self, kind: str) -> None:
        """One panel's index changed: the others follow; a user's move stops following."""
        if self._setting_index or self.store is None:
            return
        axes = list(self.store.sizes)
        moved = self.panels[kind].display_model.current_index
        index = {}
        for key, value in moved.items():
            axis = axes[key] if isinstance(key, int) and key < len(axes) else key
            if axis in self.store.sizes and isinstance(value, int):
                index[axis] = value
        self.follow_box.setChecked(False)
        self.show_frame({**self.shown, **index})

    def _describe(self) -> None:
        """The footer: the ledger's word on the frame shown, and the store's totals."""
        if self.store is None or not self.shown:
            return
        record = self.store.frame_record(self.shown)
        words = [self.store.label(self.shown), record["status"].upper()]
        if "model" in record:
            words.append(f"by {record['model']}")
        floor = record.get("floor")
        if floor:
            gain = floor["gain_db"]
            words.append(("BELOW THE GAUSSIAN FLOOR " if floor["below_floor"] else "floor ")
                         + f"{gain:+.2f} dB")
        if "reason" in record:
            words.append(record["reason"])
        self.frame_label.setText(" · ".join(words))
        counts = self.store.counts()
        written = sum(n for status, n in counts.items() if status not in ("empty", "lost"))
        totals = [f"raw {written}/{sum(counts.values())}", f"restored {counts['restored']}",
                  f"failed {counts['failed']}", f"lost {counts['lost']}",
                  f"below floor {len(self.store.below_floor())}"]
        for channel, models in self.store.models_per_channel().items():
            if len(models) > 1:  # a channel restored by several models (adapt-first, a resume)
                totals.append(f"MIXED MODELS{' in ' + channel if channel else ''}: "
                              + ", ".join(f"{m} {n}" for m, n in models.items()))
        if self._live is not None:
            totals.append(f"backlog {self._live.backlog}")
            p50 = self._live.stats.percentile(50)
            if p50 == p50:  # not NaN: something was restored
                totals.append(f"latency p50 {p50:.0f} ms")
        self.totals_label.setText(" · ".join(totals))

    def closeEvent(self, event: Any) -> None:  # Qt's name: called when the window closes
        self._timer.stop()
        for viewer in self.panels.values():
            viewer.close()
        if self.store is not None:
            self.store.close()
        super().closeEvent(event)
