"""Tests for the OME-Zarr acquisition store: layout validity, ledger and crash safety."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import useq
import yaozarrs

from live_restore.acquisition.store import AcquisitionStore, FrameStatus

SHAPE = (24, 32)
SIZES = {"t": 2, "c": 2, "z": 3}


def _frame(seed: int, dtype: str = "uint16") -> np.ndarray:
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "f":
        return rng.normal(size=SHAPE).astype(dtype)
    return rng.integers(0, np.iinfo(dtype).max, size=SHAPE, dtype=dtype)


def _all(sizes: dict[str, int]) -> list[dict[str, int]]:
    return [dict(zip(sizes, k, strict=True)) for k in np.ndindex(*sizes.values())]


@pytest.fixture
def store(tmp_path: Path):
    with AcquisitionStore.create(
        tmp_path / "acq.zarr",
        sizes=SIZES,
        frame_shape=SHAPE,
        dtype="uint16",
        channel_names=["Confocal", "STED"],
        pixel_size_um=0.02,
        uncertainty=True,
    ) as s:
        yield s


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "float32"])
def test_round_trip(tmp_path: Path, dtype: str) -> None:
    path = tmp_path / "acq.zarr"
    with AcquisitionStore.create(
        path, sizes=SIZES, frame_shape=SHAPE, dtype=dtype, uncertainty=True
    ) as s:
        for n, idx in enumerate(_all(SIZES)):
            s.write_raw(idx, _frame(n, dtype))
        mean = _frame(99, "float32")
        s.write_restored({"t": 1, "c": 1, "z": 2}, mean, mean * 0 + 0.5, model="m")
    s = AcquisitionStore.open(path, mode="r")
    assert s.raw_dtype == np.dtype(dtype)
    for n, idx in enumerate(_all(SIZES)):
        np.testing.assert_array_equal(s.read_raw(idx), _frame(n, dtype))
    out = s.read_restored({"t": 1, "c": 1, "z": 2})
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, mean)
    np.testing.assert_array_equal(s.read_uncertainty({"t": 1, "c": 1, "z": 2}), 0.5)
    with pytest.raises(KeyError, match="RAW, not RESTORED"):
        s.read_restored({"t": 0})


def test_float_raw_keeps_nan_and_refuses_lossy_casts(tmp_path: Path) -> None:
    with AcquisitionStore.create(
        tmp_path / "f.zarr", sizes={"t": 2}, frame_shape=SHAPE, dtype="float32"
    ) as s:
        s.write_raw({"t": 0}, np.full(SHAPE, np.nan))
        assert np.isnan(s.read_raw({"t": 0})).all()
    with AcquisitionStore.create(
        tmp_path / "i.zarr", sizes={"t": 3}, frame_shape=SHAPE, dtype="uint16"
    ) as s:
        with pytest.raises(TypeError, match="lossy"):
            s.write_raw({"t": 0}, np.ones(SHAPE, np.float32))
        with pytest.raises(ValueError, match="do not fit"):
            s.write_raw({"t": 0}, np.full(SHAPE, -1, np.int32))
        s.write_raw({"t": 1}, np.full(SHAPE, 7, np.int64))  # integers that fit are fine
        assert s.read_raw({"t": 1}).dtype == np.uint16
        assert s.status({"t": 0}) == FrameStatus.EMPTY


def test_wrong_shape_and_index(store: AcquisitionStore) -> None:
    with pytest.raises(ValueError, match=r"\(24, 31\)"):
        store.write_raw({"t": 0}, np.zeros((24, 31), np.uint16))
    with pytest.raises(ValueError, match="outside"):
        store.write_raw({"t": 5}, _frame(0))
    with pytest.raises(ValueError, match="not in"):
        store.write_raw({"q": 1}, _frame(0))


def test_raw_is_never_overwritten(store: AcquisitionStore) -> None:
    store.write_raw({"t": 0}, _frame(1))
    with pytest.raises(ValueError, match="already written"):
        store.write_raw({"t": 0}, _frame(2))
    np.testing.assert_array_equal(store.read_raw({"t": 0}), _frame(1))


def test_root_validates_and_checks_inside(store: AcquisitionStore) -> None:
    store.write_raw({"t": 0}, _frame(0))
    store.flush()
    yaozarrs.validate_zarr_store(str(store.path))
    series = json.loads((store.path / "OME" / "zarr.json").read_text())["attributes"]["ome"]
    assert series["series"] == ["raw", "restored", "uncertainty"]
    meta_file = store.path / "restored" / "zarr.json"
    meta = json.loads(meta_file.read_text())
    meta["attributes"]["ome"]["multiscales"][0]["axes"].pop(0)  # 5 axes for a 6-D array
    meta_file.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="restored"):
        yaozarrs.validate_zarr_store(str(store.path))


def test_ome_zarr_py_reads_both_images(store: AcquisitionStore) -> None:
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    store.write_raw({"t": 0}, _frame(0))
    store.write_restored({"t": 0}, _frame(0, "float32"))
    store.flush()
    for name, dtype in [("raw", np.uint16), ("restored", np.float32)]:
        nodes = list(Reader(parse_url(str(store.path / name)))())
        data = nodes[0].data[0]
        assert data.shape == (2, 2, 3, *SHAPE)
        assert data.dtype == dtype
    node = next(iter(Reader(parse_url(str(store.path / "raw")))()))
    raw = np.asarray(node.data[0][0, 0, 0])
    np.testing.assert_array_equal(raw, _frame(0))


def test_existing_path(tmp_path: Path) -> None:
    path = tmp_path / "acq.zarr"
    AcquisitionStore.create(path, sizes={"t": 1}, frame_shape=SHAPE, dtype="uint8").close()
    with pytest.raises(FileExistsError, match="overwrite=True"):
        AcquisitionStore.create(path, sizes={"t": 1}, frame_shape=SHAPE, dtype="uint8")
    s = AcquisitionStore.create(
        path, sizes={"t": 4}, frame_shape=SHAPE, dtype="uint8", overwrite=True
    )
    assert s.sizes == {"t": 4}
    s.close()
    other = tmp_path / "photos"
    other.mkdir()
    (other / "holiday.jpg").write_bytes(b"x")
    with pytest.raises(FileExistsError, match="not a zarr store"):
        AcquisitionStore.create(other, sizes={}, frame_shape=SHAPE, dtype="uint8", overwrite=True)
    assert (other / "holiday.jpg").exists()


def test_unwritable_path_under_a_file(tmp_path: Path) -> None:
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    with pytest.raises(OSError, match="is a file"):
        AcquisitionStore.create(blocker / "sub" / "a.zarr", sizes={}, frame_shape=SHAPE, dtype="u2")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt"]


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root ignores permissions")
def test_unwritable_read_only_directory(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        with pytest.raises(PermissionError, match="not writable"):
            AcquisitionStore.create(locked / "a.zarr", sizes={}, frame_shape=SHAPE, dtype="u2")
        assert not any(locked.iterdir())
    finally:
        locked.chmod(0o755)


def test_unwritable_directory_reported_before_writing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "access", lambda *_: False)  # what a read-only dir reports (non-root)
    with pytest.raises(PermissionError, match="not writable"):
        AcquisitionStore.create(tmp_path / "a.zarr", sizes={}, frame_shape=SHAPE, dtype="u2")
    assert not any(tmp_path.iterdir())


def test_open_rejects_other_stores(tmp_path: Path) -> None:
    import zarr

    zarr.open_group(tmp_path / "plain.zarr", mode="w", zarr_format=3)
    with pytest.raises(ValueError, match="not a live_restore store"):
        AcquisitionStore.open(tmp_path / "plain.zarr")
    with pytest.raises(FileNotFoundError):
        AcquisitionStore.open(tmp_path / "missing.zarr")


def test_ledger_round_trip(store: AcquisitionStore) -> None:
    for n, idx in enumerate(_all(SIZES)[:8]):
        store.write_raw(idx, _frame(n), {"runner_time_ms": 10.0 * n, "position": {"x": 1.5}})
    store.write_restored({"t": 0, "c": 0, "z": 0}, _frame(0, "float32"), model="mscgm")
    store.write_restored({"t": 0, "c": 0, "z": 1}, _frame(1, "float32"), model="mscgm")
    store.mark_failed({"t": 0, "c": 0, "z": 2}, "CUDA out of memory")
    store.mark_skipped({"t": 0, "c": 1, "z": 0}, "channel STED not restored")
    store.set_model_info("mscgm", "sha256:abc", steps=4, task="sted")
    path = store.path
    store.close()
    store.close()  # idempotent

    s = AcquisitionStore.open(path)
    assert s.pending() == [
        {"t": 0, "c": 1, "z": 1},
        {"t": 0, "c": 1, "z": 2},
        {"t": 1, "c": 0, "z": 0},
        {"t": 1, "c": 0, "z": 1},
    ]
    assert s.indices(FrameStatus.RESTORED) == [{"t": 0, "c": 0, "z": 0}, {"t": 0, "c": 0, "z": 1}]
    assert s.indices(FrameStatus.SKIPPED) == [{"t": 0, "c": 1, "z": 0}]
    assert s.failures() == {"t=0,c=0,z=2": "CUDA out of memory"}
    meta = s.frame_metadata({"t": 0, "c": 0, "z": 1})
    assert meta["time_ms"] == 10.0 and meta["x_um"] == 1.5 and meta["model"] == "mscgm"
    # a failed frame can be retried on resume
    s.write_restored({"t": 0, "c": 0, "z": 2}, _frame(2, "float32"), model="mscgm")
    assert s.failures() == {}
    s.close()

    import zarr

    attrs = zarr.open_group(path, mode="r").attrs
    info = attrs["live_restore"]
    assert info["model"] == {"name": "mscgm", "checksum": "sha256:abc", "steps": 4, "task": "sted"}
    assert {"live-restore", "zarr", "numpy"} <= info["software"].keys()
    ledger = info["ledger"]
    assert ledger["restored"] == {"mscgm": [[0, 3]]}
    assert ledger["skipped"] == {"channel STED not restored": [[3, 4]]}
    assert ledger["counts"]["raw"] == 4
    status = np.asarray(zarr.open_group(path, mode="r")["ledger/status"][...])
    assert status[0, 0, 0] == FrameStatus.RESTORED and status[1, 1, 2] == FrameStatus.EMPTY
    with AcquisitionStore.open(path, mode="r") as ro, pytest.raises(OSError, match="read-only"):
        ro.mark_failed({"t": 1}, "x")


CRASH_SCRIPT = """
import os, signal, sys
import numpy as np
from live_restore.acquisition.store import AcquisitionStore
sizes = {"t": 5, "c": 2}
s = AcquisitionStore.create(sys.argv[1], sizes=sizes, frame_shape=(24, 32), dtype="uint16")
for t in range(4):
    for c in range(2):
        s.write_raw({"t": t, "c": c}, np.full((24, 32), 10 * t + c, np.uint16))
s.write_restored({"t": 0, "c": 0}, np.ones((24, 32)), model="m")
s.mark_skipped({"t": 0, "c": 1}, "by design")
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_crash_leaves_every_raw_frame_readable(tmp_path: Path) -> None:
    path = tmp_path / "crash.zarr"
    proc = subprocess.run([sys.executable, "-c", CRASH_SCRIPT, str(path)], check=False)
    assert proc.returncode == -signal.SIGKILL
    s = AcquisitionStore.open(path)
    for t in range(4):
        for c in range(2):
            np.testing.assert_array_equal(s.read_raw({"t": t, "c": c}), 10 * t + c)
    assert s.status({"t": 0, "c": 0}) == FrameStatus.RESTORED
    assert s.status({"t": 0, "c": 1}) == FrameStatus.SKIPPED
    assert len(s.pending()) == 6 and {"t": 4, "c": 0} not in s.pending()
    s.write_raw({"t": 4, "c": 0}, np.zeros((24, 32), np.uint16))  # resume keeps acquiring
    s.close()
    yaozarrs.validate_zarr_store(str(path))


KILLED_MID_RUN_SCRIPT = """
import sys
import numpy as np
from live_restore.acquisition.store import AcquisitionStore
s = AcquisitionStore.create(sys.argv[1], sizes={"t": 100000}, frame_shape=(64, 64), dtype="uint16")
for t in range(100000):
    s.write_raw({"t": t}, np.full((64, 64), t % 60000, np.uint16))
    print(t, flush=True)
"""


def test_kill_during_acquisition_loses_no_returned_frame(tmp_path: Path) -> None:
    path = tmp_path / "killed.zarr"
    with subprocess.Popen(
        [sys.executable, "-c", KILLED_MID_RUN_SCRIPT, str(path)], stdout=subprocess.PIPE, text=True
    ) as proc:
        assert proc.stdout is not None
        returned = [int(proc.stdout.readline()) for _ in range(30)]
        proc.kill()  # SIGKILL while it is writing frame 30 or later
    s = AcquisitionStore.open(path)
    pending = s.pending()
    assert pending[: len(returned)] == [{"t": t} for t in returned]
    for index in pending:  # including any frame written after the last one we heard of
        np.testing.assert_array_equal(s.read_raw(index), index["t"])
    s.close()


def test_torn_journal_falls_back_to_raw_chunks(tmp_path: Path) -> None:
    path = tmp_path / "torn.zarr"
    with AcquisitionStore.create(path, sizes={"t": 3}, frame_shape=SHAPE, dtype="uint16") as s:
        for t in range(3):
            s.write_raw({"t": t}, np.zeros(SHAPE, np.uint16))  # all-zero frames still get a file
    journal = path / "ledger" / "journal.jsonl"
    lines = journal.read_text().splitlines(keepends=True)
    journal.write_text(lines[0] + lines[1][:7])  # t=2 lost its line, t=1's line is torn
    s = AcquisitionStore.open(path)
    assert s.pending() == [{"t": 0}, {"t": 1}, {"t": 2}]
    s.mark_failed({"t": 1}, "retry later")
    s.close()
    assert AcquisitionStore.open(path, mode="r").failures() == {"t=1": "retry later"}


def test_multi_position_sequence(tmp_path: Path) -> None:
    seq = useq.MDASequence(
        time_plan={"interval": 0, "loops": 2},
        stage_positions=[(0, 0, 0), (100, 50, 1)],
        channels=["Confocal", "STED"],
        z_plan={"range": 2, "step": 1},
    )
    path = tmp_path / "mp.zarr"
    s = AcquisitionStore.from_sequence(path, seq, SHAPE, "uint16", uncertainty=True)
    assert s.sizes == {"t": 2, "p": 2, "c": 2, "z": 3}
    for n, event in enumerate(seq):
        s.write_raw(event.index, _frame(n), {"position": {"x": event.x_pos, "y": event.y_pos}})
    s.write_restored({"t": 1, "p": 1, "c": 1, "z": 2}, np.ones(SHAPE), np.ones(SHAPE))
    s.close()
    yaozarrs.validate_zarr_store(str(path))
    ome = json.loads((path / "OME" / "zarr.json").read_text())["attributes"]["ome"]
    assert ome["series"] == [
        *("raw_p0", "raw_p1", "restored_p0", "restored_p1", "uncertainty_p0", "uncertainty_p1")
    ]
    s = AcquisitionStore.open(path, mode="r")
    last = len(list(seq)) - 1
    np.testing.assert_array_equal(s.read_raw({"t": 1, "p": 1, "c": 1, "z": 2}), _frame(last))
    assert s.frame_metadata({"p": 1})["x_um"] == 100.0
    assert s.read_restored({"t": 1, "p": 1, "c": 1, "z": 2}).mean() == 1.0
    root = json.loads((path / "zarr.json").read_text())["attributes"]
    assert root["useq_sequence"]["stage_positions"][1]["x"] == 100.0
    raw_p1 = json.loads((path / "raw_p1" / "0" / "zarr.json").read_text())
    assert raw_p1["shape"] == [2, 2, 3, *SHAPE]
    assert raw_p1["dimension_names"] == ["t", "c", "z", "y", "x"]


def test_concurrent_raw_and_restore_threads(tmp_path: Path) -> None:
    sizes = {"t": 40}
    s = AcquisitionStore.create(tmp_path / "c.zarr", sizes=sizes, frame_shape=SHAPE, dtype="u2")
    done: list[int] = []
    ready = threading.Semaphore(0)

    def restore() -> None:
        for t in range(40):
            ready.acquire()
            if t % 5 == 0:
                s.mark_failed({"t": t}, "x")
            else:
                s.write_restored({"t": t}, s.read_raw({"t": t}).astype(np.float32))
            done.append(t)

    worker = threading.Thread(target=restore)
    worker.start()
    for t in range(40):
        s.write_raw({"t": t}, _frame(t))
        ready.release()
    worker.join()
    s.close()
    s = AcquisitionStore.open(s.path, mode="r")
    assert len(s.indices(FrameStatus.RESTORED)) == 32 and len(s.failures()) == 8
    assert s.pending() == []
