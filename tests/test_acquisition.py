"""The live hook and worker against real MMCore machinery (DemoCamera and Python cameras)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import useq
import yaozarrs
from pymmcore_plus.mda import MDAEngine

from live_restore.acquisition.engine import DrainingEngine
from live_restore.acquisition.hook import LiveRestorer
from live_restore.acquisition.run import resume, run_acquisition
from live_restore.acquisition.store import AcquisitionStore, FrameStatus
from live_restore.experiments.bench_acquisition import SlowRestorer
from live_restore.models.classical import ClassicalRestorer
from live_restore.models.restorer import RestoreResult


def _timelapse(n: int) -> useq.MDASequence:
    return useq.MDASequence(time_plan={"interval": 0, "loops": n})


def _capture_frames(core) -> list[np.ndarray]:
    """Keep a copy of what the camera emitted, to compare with what the store holds."""
    frames: list[np.ndarray] = []
    core.mda.events.frameReady.connect(lambda img, event, meta: frames.append(img.copy()))
    return frames


def test_democam_acquisition_writes_raw_and_restored(democore, tmp_path):
    democore.setProperty("Camera", "Mode", "Noise")
    emitted = _capture_frames(democore)
    store_path = tmp_path / "acq.zarr"
    report = run_acquisition(democore, _timelapse(12), store_path, ClassicalRestorer())
    assert report.frames_emitted == report.raw_frames_written == report.restored == 12
    assert report.pending == 0 and report.failed == 0
    yaozarrs.validate_zarr_store(str(store_path))
    with AcquisitionStore.open(store_path, mode="r") as store:
        for t, frame in enumerate(emitted):
            np.testing.assert_array_equal(store.read_raw({"t": t}), frame)
            restored = store.read_restored({"t": t})
            assert restored.dtype == np.float32 and restored.shape == frame.shape
            assert np.std(restored) < np.std(frame.astype(np.float32))  # noise went down
        assert store.pending() == []


class _SpreadRestorer(ClassicalRestorer):
    """Classical, plus a std map as a restorer that averages draws returns."""

    def restore(self, batch, *, samples=1, seed=None):
        result = super().restore(batch)
        return RestoreResult(result.mean, np.ones_like(result.mean))


@pytest.mark.parametrize("uncertainty", [False, True])
def test_std_maps_are_kept_when_asked_and_never_fail_a_frame(democore, tmp_path, uncertainty):
    path = tmp_path / "acq.zarr"
    report = run_acquisition(democore, _timelapse(3), path, _SpreadRestorer(),
                             uncertainty=uncertainty)
    assert report.restored == 3 and report.failed == 0
    with AcquisitionStore.open(path, mode="r") as store:
        assert store.has_uncertainty is uncertainty
        if uncertainty:
            np.testing.assert_array_equal(store.read_uncertainty({"t": 2}), 1.0)


def test_frame_restored_signal_carries_restored_frame_and_event(democore, tmp_path):
    store = AcquisitionStore.create(tmp_path / "s.zarr", sizes={"t": 4}, frame_shape=(80, 96),
                                    dtype="uint16")
    got = []
    with LiveRestorer(democore, ClassicalRestorer(), store) as live:
        live.signals.frameRestored.connect(lambda img, event, meta: got.append((img, event)))
        democore.mda.run(_timelapse(4))
    store.close()
    assert sorted(event.index["t"] for _, event in got) == [0, 1, 2, 3]
    assert all(img.shape == (80, 96) and img.dtype == np.float32 for img, _ in got)


def test_live_restorer_as_an_mda_output_handler_restores_every_frame(pycam_core, tmp_path):
    """``core.mda.run(seq, output=live)``: pymmcore-plus drives the hook through its handler
    methods (on its relay thread); the engine is left as the caller set it."""
    core = pycam_core(shape=(40, 48))
    emitted = _capture_frames(core)
    seq = _timelapse(9)
    store = AcquisitionStore.from_sequence(tmp_path / "h.zarr", seq, (40, 48), "uint16")
    live = LiveRestorer(core, ClassicalRestorer(), store, batch_size=2)
    core.mda.run(seq, output=live)
    assert type(core.mda.engine) is MDAEngine
    assert live.raw_frames_written == 9  # the relay has delivered every frame before run returns
    assert live.wait(timeout=30)
    assert live.stats.restored == 9 and live.stats.failed == 0
    restored = ClassicalRestorer().restore(np.stack(emitted).astype(np.float32)).mean
    for t, frame in enumerate(emitted):
        np.testing.assert_array_equal(store.read_raw({"t": t}), frame)
        np.testing.assert_allclose(store.read_restored({"t": t}), restored[t], rtol=1e-5)
    assert store.pending() == []
    store.close()


def test_the_draining_engine_refuses_another_pymmcore_plus(democore, tmp_path, monkeypatch):
    import pymmcore_plus

    monkeypatch.setattr(pymmcore_plus, "__version__", "0.19.0")
    with pytest.raises(RuntimeError, match=r"pymmcore-plus==0\.18\.1, found '0\.19\.0'"):
        DrainingEngine.replacing(democore.mda.engine)
    with pytest.raises(RuntimeError, match=r"0\.19\.0"):
        run_acquisition(democore, _timelapse(1), tmp_path / "v.zarr", ClassicalRestorer())
    assert not (tmp_path / "v.zarr").exists()  # refused before the store was created
    assert type(democore.mda.engine) is MDAEngine


def test_failing_restorer_flags_frame_and_acquisition_continues(pycam_core, fail_on_frame,
                                                                tmp_path):
    core = pycam_core(shape=(40, 48))
    report = run_acquisition(core, _timelapse(8), tmp_path / "f.zarr", fail_on_frame({3}),
                             batch_size=4)
    assert report.frames_emitted == report.raw_frames_written == 8
    assert report.restored == 7 and report.failed == 1
    with AcquisitionStore.open(tmp_path / "f.zarr", mode="r") as store:
        assert store.status({"t": 3}) == FrameStatus.FAILED
        assert "model crashed" in store.failures()["t=3"]
        assert store.read_raw({"t": 3})[0, 0] == 3  # the raw frame is intact
        assert all(store.status({"t": t}) == FrameStatus.RESTORED for t in (0, 1, 2, 4, 7))


def test_nan_frame_is_kept_raw_and_flagged(pycam_core, tmp_path):
    core = pycam_core(shape=(32, 32), dtype="float32", nan_frames={2})
    report = run_acquisition(core, _timelapse(5), tmp_path / "n.zarr", ClassicalRestorer())
    assert report.raw_frames_written == 5 and report.restored == 4
    with AcquisitionStore.open(tmp_path / "n.zarr", mode="r") as store:
        assert np.isnan(store.read_raw({"t": 2})[1:, 1:]).all()
        assert store.status({"t": 2}) == FrameStatus.FAILED
        assert "NaN" in store.failures()["t=2"]


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "float32"])
@pytest.mark.parametrize("shape", [(37, 53), (64, 64)])
def test_camera_dtypes_and_odd_sizes_round_trip(pycam_core, tmp_path, dtype, shape):
    core = pycam_core(shape=shape, dtype=dtype)
    emitted = _capture_frames(core)
    run_acquisition(core, _timelapse(3), tmp_path / "d.zarr", ClassicalRestorer())
    with AcquisitionStore.open(tmp_path / "d.zarr", mode="r") as store:
        assert store.raw_dtype == np.dtype(dtype)
        for t in range(3):
            np.testing.assert_array_equal(store.read_raw({"t": t}), emitted[t])
            assert store.read_restored({"t": t}).shape == shape


def test_one_pixel_wide_roi(pycam_core, tmp_path):
    core = pycam_core(shape=(64, 64))
    core.setROI(10, 0, 1, 64)
    report = run_acquisition(core, _timelapse(3), tmp_path / "roi.zarr", ClassicalRestorer())
    assert report.raw_frames_written == 3 and report.restored == 3
    with AcquisitionStore.open(tmp_path / "roi.zarr", mode="r") as store:
        assert store.read_raw({"t": 0}).shape == (64, 1)


def test_ram_budget_evicts_pixels_and_every_frame_is_still_restored(pycam_core, tmp_path):
    core = pycam_core(shape=(64, 64))
    slow = SlowRestorer(ClassicalRestorer(), 0.02)
    store = AcquisitionStore.create(tmp_path / "e.zarr", sizes={"t": 20}, frame_shape=(64, 64),
                                    dtype="uint16")
    with LiveRestorer(core, slow, store, ram_budget_mb=3 * 64 * 64 * 2 / 2**20) as live:
        core.mda.run(_timelapse(20))
    store.close()
    assert live.stats.evicted > 0
    assert live.stats.restored == 20
    with AcquisitionStore.open(tmp_path / "e.zarr", mode="r") as done:
        assert done.pending() == []


def test_deferred_backlog_is_completed_by_resume(pycam_core, tmp_path):
    core = pycam_core(shape=(32, 32))
    slow = SlowRestorer(ClassicalRestorer(), 0.05)
    report = run_acquisition(core, _timelapse(10), tmp_path / "r.zarr", slow, drain=False)
    assert report.raw_frames_written == 10 and report.pending > 0
    assert resume(tmp_path / "r.zarr", ClassicalRestorer()) == report.pending
    with AcquisitionStore.open(tmp_path / "r.zarr", mode="r") as store:
        assert store.pending() == []
        assert len(store.indices(FrameStatus.RESTORED)) == 10


def test_swapped_restorer_takes_over_and_the_store_records_which_model_restored_each_frame(
    pycam_core, tmp_path
):
    core = pycam_core(shape=(32, 32))
    before, after = ClassicalRestorer(levels=2), ClassicalRestorer(levels=3)
    assert before.version != after.version
    store = AcquisitionStore.create(tmp_path / "w.zarr", sizes={"t": 6}, frame_shape=(32, 32),
                                    dtype="uint16")
    with LiveRestorer(core, before, store) as live:
        core.mda.events.frameReady.connect(
            lambda img, event, meta: live.swap(after) if event.index["t"] == 2 else None
        )
        core.mda.run(_timelapse(6))
    models = [store.frame_metadata({"t": t})["model"] for t in range(6)]
    store.close()
    assert models == [f"classical@{before.version}"] * 3 + [f"classical@{after.version}"] * 3


def test_channel_map_restores_some_channels_and_marks_the_rest(democore, tmp_path):
    seq = useq.MDASequence(
        channels=[{"group": "Channel", "config": "DAPI"}, {"group": "Channel", "config": "FITC"}],
        time_plan={"interval": 0, "loops": 2},
    )
    report = run_acquisition(democore, seq, tmp_path / "c.zarr", {"DAPI": ClassicalRestorer()})
    assert report.restored == 2 and report.skipped == 2
    with AcquisitionStore.open(tmp_path / "c.zarr", mode="r") as store:
        assert store.status({"t": 1, "c": 0}) == FrameStatus.RESTORED
        assert store.status({"t": 1, "c": 1}) == FrameStatus.SKIPPED


def test_existing_output_is_refused_unless_overwrite(democore, tmp_path):
    path = tmp_path / "x.zarr"
    run_acquisition(democore, _timelapse(1), path, ClassicalRestorer())
    with pytest.raises(FileExistsError, match="overwrite"):
        run_acquisition(democore, _timelapse(1), path, ClassicalRestorer())
    report = run_acquisition(democore, _timelapse(2), path, ClassicalRestorer(), overwrite=True)
    assert report.raw_frames_written == 2


def test_frames_a_sequence_leaves_in_the_camera_buffer_are_still_saved(
    democore, tmp_path, monkeypatch, caplog
):
    """pymmcore-plus stops popping when the buffer reads empty and then the camera reads
    stopped; a frame inserted between the two reads was lost. Here the camera reads stopped
    only once it is done, after the first empty read: every frame is left behind."""
    running = democore.isSequenceRunning

    def stopped_once_done() -> bool:
        while running():
            time.sleep(0.001)
        return False

    monkeypatch.setattr(democore, "isSequenceRunning", stopped_once_done)
    democore.setExposure(10)
    emitted = _capture_frames(democore)
    democore.mda.run(_timelapse(5))  # the stock engine loses them
    assert len(emitted) < 5
    emitted.clear()
    report = run_acquisition(democore, _timelapse(5), tmp_path / "s.zarr", ClassicalRestorer())
    assert report.raw_frames_written == report.frames_emitted == len(emitted) == 5
    assert report.restored == 5
    assert "recovered frame" in caplog.text
    with AcquisitionStore.open(tmp_path / "s.zarr", mode="r") as store:
        for t, frame in enumerate(emitted):  # in order: event t holds frame t
            np.testing.assert_array_equal(store.read_raw({"t": t}), frame)
        assert store.pending() == []
    assert type(democore.mda.engine) is MDAEngine  # the caller's engine is put back


def test_the_draining_engine_keeps_the_engine_settings_and_spares_custom_engines(
    democore, tmp_path
):
    store = AcquisitionStore.create(tmp_path / "s.zarr", sizes={"t": 1}, frame_shape=(80, 96),
                                    dtype="uint16")
    democore.mda.engine.timeout_base = 7.5
    with LiveRestorer(democore, ClassicalRestorer(), store):
        engine = democore.mda.engine
        assert isinstance(engine, DrainingEngine) and engine.timeout_base == 7.5
        assert engine.mmcore is democore

    class Custom(MDAEngine):
        pass

    custom = Custom(democore)
    democore.mda.set_engine(custom)
    with LiveRestorer(democore, ClassicalRestorer(), store):
        assert democore.mda.engine is custom
    store.close()


def test_unwritable_output_fails_before_any_frame(pycam_core, tmp_path):
    core = pycam_core(shape=(16, 16))
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    emitted = _capture_frames(core)
    with pytest.raises(OSError):
        run_acquisition(core, _timelapse(3), blocker / "store.zarr", ClassicalRestorer())
    assert emitted == []


def _rss_mb() -> float:
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) / 1024 for line in fh if line.startswith("VmRSS:"))


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_memory_stays_flat_over_2000_frames_with_a_slow_restorer(pycam_core, tmp_path):
    """2 000 frames of 256² uint16 are 250 MiB; a 4 MiB budget must keep RSS far below."""
    core = pycam_core(shape=(256, 256))
    # Snaps, not a hardware sequence: the camera's own ring buffer (250 MB under pytest) would
    # otherwise be touched slot by slot and hide what this test measures.
    core.mda.engine.use_hardware_sequencing = False
    slow = SlowRestorer(ClassicalRestorer(), 0.05)
    before = _rss_mb()
    report = run_acquisition(core, _timelapse(2000), tmp_path / "m.zarr", slow, drain=False,
                             ram_budget_mb=4)
    growth = _rss_mb() - before
    assert report.raw_frames_written == 2000
    assert growth < 100, f"RSS grew by {growth:.0f} MB"


KILL_SCRIPT = textwrap.dedent(
    """
    import sys, useq
    from cameras import RampCamera
    from pymmcore_plus.experimental.unicore import UniMMCore
    from live_restore.acquisition.hook import LiveRestorer
    from live_restore.experiments.bench_acquisition import SlowRestorer
    from live_restore.models.classical import ClassicalRestorer
    from live_restore.acquisition.store import AcquisitionStore

    core = UniMMCore()
    core.loadPyDevice("Cam", RampCamera(shape=(48, 48)))
    core.initializeDevice("Cam")
    core.setCameraDevice("Cam")
    core.setAutoShutter(False)  # no shutter device in this core
    seq = useq.MDASequence(time_plan={"interval": 0.02, "loops": 1000})
    store = AcquisitionStore.from_sequence(sys.argv[1], seq, (48, 48), "uint16")
    live = LiveRestorer(core, SlowRestorer(ClassicalRestorer(), 0.3), store)
    live.attach()
    # connected after the hook, so an announced frame has been written raw
    core.mda.events.frameReady.connect(lambda img, event, meta: print(event.index["t"], flush=True))
    core.mda.run(seq)
    """
)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_kill_9_keeps_every_announced_raw_frame_and_resume_completes(tmp_path):
    path = tmp_path / "k.zarr"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent)}
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(path)],
                            stdout=subprocess.PIPE, text=True, env=env)
    announced = []
    deadline = time.monotonic() + 60
    assert proc.stdout is not None
    while len(announced) < 15 and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        announced.append(int(line))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert len(announced) >= 15, "the acquisition subprocess did not start"
    with AcquisitionStore.open(path) as store:
        for t in announced:
            assert store.read_raw({"t": t})[0, 0] == t  # RampCamera stamps the frame number
            assert store.status({"t": t}) in (FrameStatus.RAW, FrameStatus.RESTORED)
        assert len(store.pending()) > 0  # the slow restorer was behind
    resume(path, ClassicalRestorer())
    with AcquisitionStore.open(path, mode="r") as store:
        assert store.pending() == []
        assert {i["t"] for i in store.indices(FrameStatus.RESTORED)} >= set(announced)


def test_multi_position_acquisition_writes_one_series_per_position(democore, tmp_path):
    seq = useq.MDASequence(stage_positions=[(0, 0, 0), (100, 50, 0)],
                           time_plan={"interval": 0, "loops": 2})
    path = tmp_path / "mp.zarr"
    report = run_acquisition(democore, seq, path, ClassicalRestorer())
    assert report.raw_frames_written == report.restored == 4
    yaozarrs.validate_zarr_store(str(path))
    with AcquisitionStore.open(path, mode="r") as store:
        assert store.sizes == {"t": 2, "p": 2}
        assert store.frame_metadata({"t": 1, "p": 1})["x_um"] == pytest.approx(100, abs=0.1)
        assert store.status({"t": 1, "p": 1}) == FrameStatus.RESTORED
