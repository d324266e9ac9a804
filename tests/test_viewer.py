"""The viewer: store series as ndv data, a read-only store following its writer, the window
beside a live demo run and on a store another process writes, ``view`` from the command line,
and napari's reader on a store.

Window tests need a display: pytest-xvfb starts Xvfb when it is installed (`.ci/run` installs
it); without one they skip, saying so, except where LIVE_RESTORE_REQUIRE_DISPLAY is set (CI).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

pytest.importorskip("ndv", reason="the viewer extra is not installed")

from live_restore.acquisition.ledger import FrameStatus
from live_restore.acquisition.store import AcquisitionStore
from live_restore.cli import app
from live_restore.viewer.data import StoreSeries

SHAPE = (16, 24)
if os.environ.get("LIVE_RESTORE_REQUIRE_DISPLAY") and not os.environ.get("DISPLAY"):
    raise RuntimeError("the viewer tests must run here, and no display was started: is Xvfb "
                       "installed (pytest-xvfb starts it)?")
needs_display = pytest.mark.skipif(
    not os.environ.get("DISPLAY"), reason="no display: install Xvfb (pytest-xvfb starts it)")


def _frame(t: int, c: int) -> np.ndarray:
    return np.full(SHAPE, 100 * t + 10 * c + 1, np.uint16)


def _store(path: Path, *, uncertainty: bool = False) -> AcquisitionStore:
    return AcquisitionStore.create(path, sizes={"t": 3, "c": 2}, frame_shape=SHAPE,
                                   dtype="uint16", channel_names=["Confocal", "STED"],
                                   uncertainty=uncertainty)


@pytest.fixture(autouse=True)
def synchronous_ndv(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each panel redraw finishes before the next line of the test."""
    monkeypatch.setenv("NDV_SYNCHRONOUS", "1")


def test_store_series_slices_and_shows_missing_frames_as_zeros(tmp_path: Path) -> None:
    with _store(tmp_path / "s.zarr", uncertainty=True) as store:
        store.write_raw({"t": 0, "c": 1}, _frame(0, 1))
        store.write_raw({"t": 1, "c": 1}, _frame(1, 1))
        store.write_restored({"t": 1, "c": 1}, _frame(1, 1) * 2.0, None)  # NaN spread
        raw, restored = StoreSeries(store, "raw"), StoreSeries(store, "restored")
        spread = StoreSeries(store, "uncertainty")
        assert raw.dims == ("t", "c", "y", "x") and raw.dtype == np.uint16
        assert restored.dtype == np.float32
        assert raw.sizes() == {"t": 3, "c": 2, "y": 16, "x": 24}
        np.testing.assert_array_equal(raw.isel({0: 0, 1: 1}), _frame(0, 1))
        both = raw.isel({0: 1, 2: slice(2, 5)})  # every channel, rows 2-4
        assert both.shape == (2, 3, 24)
        assert (both[0] == 0).all() and (both[1] == 111).all()  # c=0 never written: zeros
        assert (restored.isel({0: 0, 1: 1}) == 0).all()  # raw only, not restored yet
        np.testing.assert_array_equal(restored.isel({0: 1, 1: 1}), _frame(1, 1) * 2.0)
        assert [at for at, _ in restored.last_served] == [{"t": 1, "c": 1}]
        assert (spread.isel({0: 1, 1: 1}) == 0).all()  # NaN spread shown as none


def test_a_reader_follows_the_writer_and_waits_for_a_torn_line(tmp_path: Path) -> None:
    path = tmp_path / "s.zarr"
    with _store(path) as writer:
        writer.write_raw({"t": 0, "c": 0}, _frame(0, 0))
        reader = AcquisitionStore.open(path, mode="r")
        assert reader.counts()["raw"] == 1 and reader.follow() == 0
        writer.write_raw({"t": 0, "c": 1}, _frame(0, 1))
        writer.write_restored({"t": 0, "c": 1}, _frame(0, 1) * 1.5, model="m@1")
        assert reader.follow() == 2
        assert reader.latest(FrameStatus.RESTORED) == {"t": 0, "c": 1}
        assert reader.latest(FrameStatus.RAW) == {"t": 0, "c": 1}
        assert reader.frame_record({"t": 0, "c": 1}) == {"status": "restored", "model": "m@1"}
        np.testing.assert_array_equal(reader.read_restored({"t": 0, "c": 1}), _frame(0, 1) * 1.5)
        journal = path / "ledger" / "journal.jsonl"
        line = journal.read_bytes().splitlines(keepends=True)[0]
        with journal.open("ab") as fh:  # half a line: the writer is in the middle of it
            fh.write(line[:10])
        assert reader.follow() == 0
        with journal.open("ab") as fh:
            fh.write(line[10:])
        assert reader.follow() == 1
        with pytest.raises(OSError, match="open for writing"):
            writer.follow()
        reader.close()


@needs_display
def test_demo_with_the_viewer_shows_the_last_restored_frame(tmp_path: Path) -> None:
    from live_restore.experiments.demo import run_demo
    from live_restore.viewer.app import qt_application, run_with_viewer
    from live_restore.viewer.window import RestoreWindow

    qt_application()
    window = RestoreWindow()
    png = tmp_path / "shot.png"
    result = run_with_viewer(lambda watch: run_demo(tmp_path / "demo.zarr", frames=6,
                                                    model="classical", roi=64, watch=watch),
                             screenshot=png, window=window)
    assert result.report.restored == 6 and window.redraws >= 1
    with AcquisitionStore.open(tmp_path / "demo.zarr", mode="r") as store:
        last = store.latest(FrameStatus.RESTORED)
        expected = store.read_restored(last)
    assert window.shown == last
    served = {tuple(at.items()): pixels for at, pixels in window.series["restored"].last_served}
    np.testing.assert_array_equal(served[tuple(last.items())], expected)  # what the panel got
    assert "RESTORED" in window.frame_label.text() and "restored 6" in window.totals_label.text()
    from qtpy.QtGui import QImage

    image = QImage(str(png))
    assert image.width() > 600 and image.height() > 300
    # the restored panel (right half) holds an image, not an empty canvas
    colours = {image.pixel(x, y) for x in range(image.width() // 2, image.width(), 7)
               for y in range(60, image.height() // 2, 7)}
    assert len(colours) > 50


WRITER = textwrap.dedent("""
    import sys
    import numpy as np
    from live_restore.acquisition.store import AcquisitionStore
    with AcquisitionStore.create(sys.argv[1], sizes={"t": 3}, frame_shape=(16, 24),
                                 dtype="uint16") as store:
        for t in range(3):
            sys.stdin.readline()
            frame = np.full((16, 24), 10 * (t + 1), np.uint16)
            store.write_raw({"t": t}, frame)
            store.write_restored({"t": t}, frame * 2.0, model="m@1")
            print("written", flush=True)
""")


@needs_display
def test_the_window_follows_a_store_another_process_writes(tmp_path: Path) -> None:
    from live_restore.viewer.app import qt_application
    from live_restore.viewer.window import RestoreWindow

    path = tmp_path / "other.zarr"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        qt_application()
        window = RestoreWindow(path)
        for t in range(3):
            writer.stdin.write("go\n")
            writer.stdin.flush()
            assert writer.stdout.readline().strip() == "written"
            assert window.update_now()
            assert window.shown == {"t": t}
            np.testing.assert_array_equal(window.series["restored"].isel({0: t}),
                                          np.full(SHAPE, 20.0 * (t + 1)))
        assert not window.update_now()  # nothing new: no redraw
        window.follow_box.setChecked(False)  # the user looks back at t=0 ...
        window.show_frame({"t": 0})
        assert window.panels["raw"].display_model.current_index["t"] == 0
        assert "t=0" in window.frame_label.text() and "by m@1" in window.frame_label.text()
        window.close()
    finally:
        writer.stdin.close()
        assert writer.wait(30) == 0


@needs_display
def test_linked_sliders_move_every_panel(tmp_path: Path) -> None:
    from live_restore.viewer.app import qt_application
    from live_restore.viewer.window import RestoreWindow

    with _store(tmp_path / "s.zarr", uncertainty=True) as store:
        for t in range(3):
            store.write_raw({"t": t, "c": 0}, _frame(t, 0))
    qt_application()
    window = RestoreWindow(tmp_path / "s.zarr")
    window.update_now()
    assert set(window.panels) == {"raw", "restored", "uncertainty"}
    assert window.follow_box.isChecked() and window.shown == {"t": 2, "c": 0}
    window.panels["restored"].display_model.current_index.update({"t": 1})  # the user
    assert not window.follow_box.isChecked()
    assert all(p.display_model.current_index["t"] == 1 for p in window.panels.values())
    assert window.shown["t"] == 1 and "RAW" in window.frame_label.text()
    window.close()


@needs_display
def test_view_saves_a_screenshot_of_a_finished_store(tmp_path: Path) -> None:
    with _store(tmp_path / "s.zarr") as store:
        store.write_raw({"t": 0, "c": 0}, _frame(0, 0))
        store.write_restored({"t": 0, "c": 0}, _frame(0, 0) * 1.0, model="m@1")
    png = tmp_path / "view.png"
    result = CliRunner().invoke(app, ["view", str(tmp_path / "s.zarr"), "--screenshot", str(png)])
    assert result.exit_code == 0, result.output
    assert png.stat().st_size > 1000


def test_no_display_is_one_line_before_any_light(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.delenv("QT_QPA_PLATFORM", raising=False)
    monkeypatch.setattr(sys, "platform", "linux")
    result = CliRunner().invoke(app, ["demo", "--frames", "2", "--model", "classical",
                                      "--output", str(tmp_path / "d.zarr"), "--view"])
    assert result.exit_code == 1
    assert "needs a display" in result.output and "xvfb-run" in result.output
    assert not (tmp_path / "d.zarr").exists()  # nothing acquired
    result = CliRunner().invoke(app, ["view", str(tmp_path / "missing.zarr")])
    assert result.exit_code == 1 and "not a zarr store" in result.output


def test_napari_opens_raw_and_restored_as_named_layers(tmp_path: Path) -> None:
    reader_plugin = pytest.importorskip("napari_ome_zarr", reason="napari-ome-zarr missing")
    path = tmp_path / "s.zarr"
    with AcquisitionStore.create(path, sizes={"t": 2, "c": 2}, frame_shape=SHAPE,
                                 dtype="uint16", channel_names=["Confocal", "STED"],
                                 pixel_size_um=0.05) as store:
        store.write_raw({"t": 0, "c": 1}, _frame(0, 1))
        store.write_restored({"t": 0, "c": 1}, _frame(0, 1) * 3.0, model="m@1")
    reader = reader_plugin.napari_get_reader(str(path))
    assert reader is not None
    layers = {tuple(kw["name"]): (data, kw) for data, kw, kind in reader(str(path))}
    assert set(layers) == {("raw: Confocal", "raw: STED"), ("restored: Confocal", "restored: STED")}
    data, kw = layers[("restored: Confocal", "restored: STED")]
    assert kw["channel_axis"] == 1 and list(kw["scale"])[-2:] == [0.05, 0.05]
    np.testing.assert_array_equal(np.asarray(data[0][0, 1]), _frame(0, 1) * 3.0)


@needs_display
def test_the_dock_runs_a_restored_acquisition_from_the_mda_widget(tmp_path: Path) -> None:
    import useq
    from qtpy.QtWidgets import QApplication

    from live_restore.acquisition.core import managed_core
    from live_restore.experiments.demo import default_config
    from live_restore.viewer.app import qt_application
    from live_restore.viewer.dock import RAW_ONLY, RestoreApp, chosen_restorers

    assert chosen_restorers({"STED": RAW_ONLY, "Confocal": "classical"})["STED"] is None
    qt_application()
    with managed_core(default_config()) as core:
        core.setROI(0, 0, 64, 64)
        window = RestoreApp(core, tmp_path / "dock.zarr")
        dock = window.dock
        assert list(dock.models) == ["Confocal", "STED"]
        dock.models["Confocal"].setCurrentText("classical")
        dock.models["STED"].setCurrentText(RAW_ONLY)
        window.mda.setValue(useq.MDASequence(
            time_plan={"interval": 0, "loops": 3},
            channels=[{"config": "Confocal", "group": "Modality"},
                      {"config": "STED", "group": "Modality"}]))
        dock.start_button.click()  # the MDA widget's Run, through the dock's button
        assert dock.running
        while not dock.join(0.02):
            QApplication.processEvents()
        QApplication.processEvents()
        dock.update_status()
        assert dock.error is None, dock.error
        report = dock.finished
        assert (report.raw_frames_written, report.restored, report.skipped) == (6, 3, 3)
        assert dock.status.text().startswith("done: 6 saved, 3 restored")
        window.viewer.update_now()
        shown = window.viewer.shown  # the newest restored frame (the widget adds a p axis)
        assert (shown["t"], shown["c"]) == (2, 0) and set(shown) <= {"t", "p", "c"}
        window.close()
    with AcquisitionStore.open(tmp_path / "dock.zarr", mode="r") as store:
        assert store.counts()["restored"] == 3 and store.counts()["skipped"] == 3
        assert store.model_info["name"] == "Confocal=classical"


@needs_display
def test_the_footer_flags_failures_frames_below_the_floor_and_mixed_models(
        tmp_path: Path) -> None:
    from live_restore.viewer.app import qt_application
    from live_restore.viewer.window import RestoreWindow

    with _store(tmp_path / "s.zarr") as store:
        for t in range(3):
            store.write_raw({"t": t, "c": 0}, _frame(t, 0))
        store.write_restored({"t": 0, "c": 0}, _frame(0, 0) * 1.0, model="a@1",
                             floor={"gain_db": -0.8, "against": "t=1,c=0", "below_floor": True})
        store.write_restored({"t": 1, "c": 0}, _frame(1, 0) * 1.0, model="b@2")
        store.mark_failed({"t": 2, "c": 0}, "CUDA out of memory")
    qt_application()
    window = RestoreWindow(tmp_path / "s.zarr")
    window.update_now()
    window.follow_box.setChecked(False)
    window.show_frame({"t": 0, "c": 0})
    assert "BELOW THE GAUSSIAN FLOOR -0.80 dB" in window.frame_label.text()
    assert "by a@1" in window.frame_label.text()
    window.show_frame({"t": 2, "c": 0})
    assert "FAILED · CUDA out of memory" in window.frame_label.text()
    totals = window.totals_label.text()
    assert "failed 1" in totals and "below floor 1" in totals
    assert "MIXED MODELS in Confocal: a@1 1, b@2 1" in totals
    window.close()


def test_models_are_counted_per_channel(tmp_path: Path) -> None:
    """Each channel restored by its own model is by design; two models in one channel is a
    mixed store."""
    with _store(tmp_path / "s.zarr") as store:
        for t in range(2):
            for c, model in ((0, f"a@{t}"), (1, "b@1")):
                store.write_raw({"t": t, "c": c}, _frame(t, c))
                store.write_restored({"t": t, "c": c}, _frame(t, c) * 1.0, model=model)
        assert store.models_per_channel() == {"Confocal": {"a@0": 1, "a@1": 1},
                                              "STED": {"b@1": 2}}
        assert store.models_used() == {"a@0": 1, "a@1": 1, "b@1": 2}


@needs_display
def test_acquire_with_view_keeps_the_uncertainty_and_saves_the_window(tmp_path: Path) -> None:
    """`acquire --samples 2 --screenshot` (on the genuine DemoCamera): the run goes through the
    viewer, the store keeps the draws' spread and the window is saved with three panels."""
    import useq

    (tmp_path / "seq.json").write_text(
        useq.MDASequence(time_plan={"interval": 0, "loops": 2}).model_dump_json())
    png = tmp_path / "acq.png"
    result = CliRunner().invoke(app, [
        "acquire", "--config", "demo", "--sequence", str(tmp_path / "seq.json"),
        "--output", str(tmp_path / "acq.zarr"), "--model", "sted_denoise", "--samples", "2",
        "--screenshot", str(png)])
    assert result.exit_code == 0, result.output
    with AcquisitionStore.open(tmp_path / "acq.zarr", mode="r") as store:
        assert store.has_uncertainty and store.counts()["restored"] == 2
        assert float(store.read_uncertainty({"t": 1}).max()) > 0  # two draws differ
    from qtpy.QtGui import QImage

    assert QImage(str(png)).width() >= 1400
