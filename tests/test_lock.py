"""One writer per store: the writer lock refuses a second writer and never lets --overwrite
delete a store that is being written."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from live_restore.acquisition import lock as lock_module
from live_restore.acquisition.lock import LOCK_FILE, StoreBusyError, StoreLock
from live_restore.acquisition.store import AcquisitionStore


def _new_store(path: Path, frames: int = 3, **kw) -> AcquisitionStore:
    store = AcquisitionStore.create(path, sizes={"t": frames}, frame_shape=(8, 8),
                                    dtype="uint16", **kw)
    for t in range(frames):
        store.write_raw({"t": t}, np.full((8, 8), t, np.uint16))
    return store


def test_second_writer_in_this_process_is_refused_until_close(tmp_path: Path) -> None:
    store = _new_store(tmp_path / "s.zarr")
    with pytest.raises(StoreBusyError, match=f"pid {os.getpid()}"):
        AcquisitionStore.open(tmp_path / "s.zarr")
    with AcquisitionStore.open(tmp_path / "s.zarr", mode="r") as reader:  # readers are welcome
        assert len(reader.pending()) == 3
    store.close()
    with AcquisitionStore.open(tmp_path / "s.zarr") as again:
        assert len(again.pending()) == 3
    assert (tmp_path / "s.zarr" / LOCK_FILE).read_text() == ""  # the holder record is cleared


_HOLD = textwrap.dedent("""
    import sys, time
    from live_restore.acquisition.store import AcquisitionStore
    store = AcquisitionStore.open(sys.argv[1])
    print("holding", flush=True)
    sys.stdin.readline()
    store.close()
""")


def test_overwrite_never_deletes_a_store_another_process_writes(tmp_path: Path) -> None:
    path = tmp_path / "s.zarr"
    _new_store(path).close()
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        with pytest.raises(StoreBusyError, match=f"pid {holder.pid} on {socket.gethostname()}"):
            AcquisitionStore.create(path, sizes={"t": 1}, frame_shape=(8, 8), dtype="uint16",
                                    overwrite=True)
        with pytest.raises(StoreBusyError, match="being written by"):
            AcquisitionStore.open(path)
        with AcquisitionStore.open(path, mode="r") as reader:  # untouched
            assert reader.sizes == {"t": 3}
            assert reader.read_raw({"t": 2})[0, 0] == 2
    finally:
        holder.communicate("\n", timeout=60)
    assert holder.returncode == 0
    _new_store(path, frames=1, overwrite=True).close()  # free again: replaced
    with AcquisitionStore.open(path, mode="r") as reader:
        assert reader.sizes == {"t": 1}


def test_a_killed_writer_leaves_no_lock(tmp_path: Path) -> None:
    path = tmp_path / "s.zarr"
    _new_store(path).close()
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "holding"
    holder.kill()
    holder.wait(timeout=60)
    assert json.loads((path / LOCK_FILE).read_text())["pid"] == holder.pid  # record left
    with AcquisitionStore.open(path) as store:  # but the OS dropped the lock
        assert len(store.pending()) == 3


def _record(path: Path, pid: int, host: str) -> None:
    (path / LOCK_FILE).write_text(json.dumps(
        {"pid": pid, "host": host, "command": "live-restore acquire", "since": "earlier"}))


def test_without_flock_the_holder_record_decides(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lock_module, "fcntl", None)
    path = tmp_path / "s.zarr"
    _new_store(path).close()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait(timeout=60)
    _record(path, dead.pid, socket.gethostname())  # a stale record: taken over
    StoreLock.acquire(path).release()
    _record(path, os.getppid(), socket.gethostname())  # a live process: refused
    with pytest.raises(StoreBusyError, match=f"pid {os.getppid()}"):
        StoreLock.acquire(path)
    _record(path, 1, "another-host")  # cannot be checked from here: refused, file named
    with pytest.raises(StoreBusyError, match=r"writer\.lock"):
        StoreLock.acquire(path)
    (path / LOCK_FILE).unlink()
    held = StoreLock.acquire(path)
    with pytest.raises(StoreBusyError, match=f"pid {os.getpid()}"):
        StoreLock.acquire(path)
    held.release()
