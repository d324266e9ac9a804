"""Nothing lost, nothing silent: a full disk, Ctrl-C / SIGTERM and a sequence too big for the
disk, on a live acquisition with a Python test camera."""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections import namedtuple
from pathlib import Path

import pytest
import useq

from live_restore.acquisition import store_files
from live_restore.acquisition.run import resume, run_acquisition
from live_restore.acquisition.space import space_needed
from live_restore.acquisition.store import AcquisitionStore, FrameStatus
from live_restore.experiments.bench_acquisition import SlowRestorer
from live_restore.models.classical import ClassicalRestorer

Usage = namedtuple("Usage", "total used free")


def _timelapse(n: int, interval: float = 0.0) -> useq.MDASequence:
    return useq.MDASequence(time_plan={"interval": interval, "loops": n})


def _disk_full_after(monkeypatch: pytest.MonkeyPatch, frames: int) -> None:
    """Raw chunk files fail to land after ``frames`` frames, as on a full disk: the temporary
    file is written, its rename raises ENOSPC."""
    real_replace = os.replace
    landed = []

    def replace(src, dst, *args, **kwargs):
        if str(src).endswith(".tmp") and f"{os.sep}raw{os.sep}" in str(dst):
            if len(landed) >= frames:
                raise OSError(errno.ENOSPC, "No space left on device")
            landed.append(dst)
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(store_files.os, "replace", replace)


def test_a_full_disk_stops_the_acquisition_and_journals_the_lost_frame(
        pycam_core, tmp_path, monkeypatch):
    core = pycam_core(shape=(32, 32))
    _disk_full_after(monkeypatch, 5)
    said: list[str] = []
    path = tmp_path / "full.zarr"
    report = run_acquisition(core, _timelapse(30), path, ClassicalRestorer(), notify=said.append)
    assert report.raw_frames_written == 5
    assert report.frames_emitted <= 7  # the MDA was cancelled: no light for unsaved frames
    assert report.lost == report.frames_emitted - 5 >= 1
    assert report.stopped.startswith("raw frames could not be saved: OSError")
    assert not report.complete
    assert any("No space left" in line for line in said)
    assert not list(path.rglob("*.tmp"))  # no partial files left behind
    with AcquisitionStore.open(path, mode="r") as store:
        assert "No space left on device" in store.lost()["t=5"]
        assert store.status({"t": 5}) == FrameStatus.LOST
        assert len(store.indices(FrameStatus.RESTORED)) == 5  # what was saved is restored
        assert store.pending() == []


def test_a_refused_frame_is_recorded_not_silent(tmp_path):
    with AcquisitionStore.create(tmp_path / "s.zarr", sizes={"t": 3}, frame_shape=(8, 8),
                                 dtype="uint16") as store:
        store.mark_lost({"t": 1}, "ValueError: raw frame has shape (4, 4)")
    with AcquisitionStore.open(tmp_path / "s.zarr", mode="r") as store:
        assert store.status({"t": 1}) == FrameStatus.LOST
        assert store.lost() == {"t=1": "ValueError: raw frame has shape (4, 4)"}
        summary = store._group.attrs["live_restore"]["ledger"]
        assert summary["counts"]["lost"] == 1 and "t=1" in summary["lost"]


def _interrupt_after(frames_written: int, path: Path, signals: int = 1, gap: float = 0.3,
                     signum: int = signal.SIGINT) -> threading.Thread:
    """Send ``signals`` signals to this process once ``frames_written`` raw frames are in the
    store's journal, ``gap`` seconds apart."""
    journal = path / "ledger" / "journal.jsonl"

    def send() -> None:
        while not journal.exists() or journal.read_text().count('"s":"raw"') < frames_written:
            threading.Event().wait(0.01)
        for _ in range(signals):
            os.kill(os.getpid(), signum)
            threading.Event().wait(gap)

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


@pytest.mark.skipif(os.name == "nt", reason="POSIX signals")
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_first_interrupt_stops_the_light_and_finishes_the_backlog(pycam_core, tmp_path, signum):
    core = pycam_core(shape=(32, 32))
    path = tmp_path / "i.zarr"
    said: list[str] = []
    sender = _interrupt_after(4, path, signum=signum)
    report = run_acquisition(core, _timelapse(200, 0.02), path,
                             SlowRestorer(ClassicalRestorer(), 0.05), notify=said.append)
    sender.join(10)
    assert 4 <= report.frames_emitted < 200
    assert report.stopped == f"interrupted ({signal.Signals(signum).name})"
    assert report.backlog == "restored" and report.pending == 0 and report.lost == 0
    assert report.restored == report.raw_frames_written == report.frames_emitted
    assert "stopping the acquisition" in said[0]
    assert signal.getsignal(signum) is not None  # handlers handed back
    with AcquisitionStore.open(path, mode="r") as store:
        assert len(store.indices(FrameStatus.RESTORED)) == report.frames_emitted


@pytest.mark.skipif(os.name == "nt", reason="POSIX signals")
def test_interrupt_can_leave_the_backlog_for_resume(pycam_core, tmp_path):
    core = pycam_core(shape=(32, 32))
    path = tmp_path / "l.zarr"
    sender = _interrupt_after(6, path)
    report = run_acquisition(core, _timelapse(200, 0.01), path,
                             SlowRestorer(ClassicalRestorer(), 0.3), on_interrupt="leave")
    sender.join(10)
    assert report.backlog == "left for resume" and report.pending > 0
    assert report.restored + report.pending == report.raw_frames_written
    assert resume(path, ClassicalRestorer()) == report.pending


@pytest.mark.skipif(os.name == "nt", reason="POSIX signals")
def test_second_interrupt_leaves_at_once_with_the_store_consistent(pycam_core, tmp_path):
    core = pycam_core(shape=(32, 32))
    path = tmp_path / "t.zarr"
    previous = signal.getsignal(signal.SIGINT)
    sender = _interrupt_after(8, path, signals=2, gap=0.5)
    report = run_acquisition(core, _timelapse(200, 0.01), path,
                             SlowRestorer(ClassicalRestorer(), 0.4))
    sender.join(10)
    assert signal.getsignal(signal.SIGINT) is previous
    assert report.stopped.startswith("interrupted")
    assert report.backlog == "left for resume" and report.pending > 0
    with AcquisitionStore.open(path) as store:  # closed after the worker's last write
        restored = store.indices(FrameStatus.RESTORED)
        assert len(restored) + len(store.pending()) == report.raw_frames_written
        for index in restored:
            store.read_restored(index)


def test_a_sequence_the_disk_cannot_hold_is_refused_before_any_light(pycam_core, tmp_path,
                                                                    monkeypatch):
    core = pycam_core(shape=(64, 64))
    need = space_needed({"t": 100}, (64, 64), "uint16")
    assert need.raw_bytes == 100 * 64 * 64 * 2 and need.restored_bytes == 100 * 64 * 64 * 4
    free = int(need.total_bytes * 0.8)  # raw fits, raw + restored does not
    monkeypatch.setattr(shutil, "disk_usage", lambda path: Usage(free, 0, free))
    emitted = []
    core.mda.events.frameReady.connect(lambda *a: emitted.append(1))
    with pytest.raises(OSError, match=r"GB free; the 100 frames .* need .* raw"):
        run_acquisition(core, _timelapse(100), tmp_path / "big.zarr", ClassicalRestorer())
    assert not emitted and not (tmp_path / "big.zarr").exists()


def test_resume_retry_failed_restores_the_frames_that_failed(pycam_core, fail_on_frame,
                                                             tmp_path):
    core = pycam_core(shape=(32, 32))
    path = tmp_path / "f.zarr"
    report = run_acquisition(core, _timelapse(6), path, fail_on_frame({1, 4}), batch_size=1)
    assert report.failed == 2 and report.pending == 0
    assert resume(path, ClassicalRestorer()) == 0  # plain resume leaves failures alone
    assert resume(path, ClassicalRestorer(), retry_failed=True) == 2
    with AcquisitionStore.open(path, mode="r") as store:
        assert store.failures() == {}
        assert len(store.indices(FrameStatus.RESTORED)) == 6


_CRASH = """
import os, sys
import numpy as np
from live_restore.acquisition.store import AcquisitionStore
store = AcquisitionStore.create(sys.argv[1], sizes={"t": 6}, frame_shape=(8, 8), dtype="uint16")
for t in range(5):
    store.write_raw({"t": t}, np.full((8, 8), t, np.uint16))
store.write_restored({"t": 0}, np.zeros((8, 8)), model="m@1")
os._exit(0)  # a crash: no close, no last flush
"""


def test_the_summary_is_derived_from_the_journal_after_a_crash(tmp_path):
    path = tmp_path / "c.zarr"
    subprocess.run([sys.executable, "-c", _CRASH, str(path)], check=True, timeout=120)
    with AcquisitionStore.open(path, mode="r") as store:
        assert store.summary_is_stale
        assert (store._group.attrs["live_restore"]["ledger"] or {}).get("counts") is None
        assert len(store.pending()) == 4  # the API reads the journal itself
    with AcquisitionStore.open(path) as store:  # a writer derives the snapshots again
        assert not store.summary_is_stale
        summary = store._group.attrs["live_restore"]["ledger"]
        assert summary["counts"]["raw"] == 4 and summary["counts"]["restored"] == 1
        assert store._group["ledger/status"][:].tolist() == [2, 1, 1, 1, 1, 0]
