"""One writer per store: an OS lock held for as long as a store is open for writing.

Two processes writing one store lose data without a word: ``acquire --overwrite`` deletes the
files under a running acquisition, and two ``resume`` runs restore the same frames with
perhaps different models. So every store opened for writing (a new acquisition, ``resume``,
adapt-first) holds an exclusive lock on ``STORE/ledger/writer.lock`` until it is closed, and
the file names the holder (pid, host, command, since when) so a refusal can say who it is.

The lock is ``flock``: the OS drops it when its holder dies, however it dies, so a killed
acquisition never leaves a store locked. Where ``flock`` is unavailable (no ``fcntl``, or a
network file system that refuses it) the holder record itself decides: a holder on this host
whose pid is gone is stale and is taken over; a holder on another host cannot be checked from
here, so the refusal says which file to delete once that process is known to be gone.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from live_restore.acquisition.layout import prepare_path

try:
    import fcntl
except ImportError:  # Windows: the holder record alone decides
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "LOCK_FILE",
    "Holder",
    "StoreBusyError",
    "StoreLock",
    "lock_new_store",
    "released_on_error",
]

log = logging.getLogger(__name__)

LOCK_FILE = Path("ledger") / "writer.lock"
"""The lock file, relative to the store root (beside the journal, outside every image)."""

_NO_FLOCK = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL}
"""``flock`` errors meaning "not supported here" rather than "held by someone"."""


class StoreBusyError(OSError):
    """Another process (or another open handle in this one) is writing the store."""


@dataclass(frozen=True)
class Holder:
    """Who holds a store's lock, as written into the lock file."""

    pid: int
    host: str
    command: str
    since: str

    @classmethod
    def me(cls) -> Holder:
        command = " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv else "python"
        return cls(os.getpid(), socket.gethostname(), command[:300],
                   time.strftime("%Y-%m-%d %H:%M:%S"))

    @classmethod
    def read(cls, path: Path) -> Holder | None:
        """The holder recorded in ``path``; None when it is empty or unreadable."""
        try:
            return cls(**json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            return None

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host} ({self.command!r}, since {self.since})"

    def is_alive(self) -> bool:
        """False only when the holder is known to be gone: on this host, with no such pid."""
        if self.host != socket.gethostname():
            return True
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # exists, owned by another user
            return True
        return True


class StoreLock:
    """An exclusive lock on one store; :meth:`acquire` it, :meth:`release` it when done."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, store: Path) -> StoreLock:
        """Lock ``store`` for writing, or raise :class:`StoreBusyError` naming the holder."""
        path = Path(store) / LOCK_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            cls._lock(fd, path, store)
            record = json.dumps(asdict(Holder.me())).encode()
            os.ftruncate(fd, 0)
            os.pwrite(fd, record, 0)
        except BaseException:
            os.close(fd)
            raise
        return cls(path, fd)

    @staticmethod
    def _lock(fd: int, path: Path, store: Path) -> None:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                holder = Holder.read(path)
                who = holder.describe() if holder else "another process"
                raise StoreBusyError(
                    f"store {str(store)!r} is being written by {who}; wait for it to finish "
                    "or stop it first") from None
            except OSError as exc:
                if exc.errno not in _NO_FLOCK:
                    raise
                log.debug("flock unsupported on %s (%s); using the holder record", path, exc)
        holder = Holder.read(path)
        if holder is None:  # never held, or released
            return
        if holder.is_alive():
            raise StoreBusyError(
                f"store {str(store)!r} is being written by {holder.describe()}; if that "
                f"process is gone, delete {str(path)!r}")
        log.warning("taking over the lock of %s from %s, which is no longer running",
                    store, holder.describe())

    def release(self) -> None:
        """Clear the holder record and unlock; safe to call twice."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)
        except OSError:  # the store was deleted under us (overwrite) or the disk is gone
            pass
        os.close(fd)  # closing the descriptor drops the flock

    @property
    def held(self) -> bool:
        return self._fd is not None


def lock_new_store(path: Path, *, overwrite: bool) -> StoreLock:
    """Clear ``path`` for a new store (``prepare_path``) and lock it before it exists.

    An old store is locked before it is deleted, so a store another process is writing is
    refused, never deleted under that process."""
    previous = StoreLock.acquire(path) if overwrite and (path / "zarr.json").is_file() else None
    try:
        prepare_path(path, overwrite=overwrite)
        lock = StoreLock.acquire(path)
    finally:
        if previous is not None:
            previous.release()
    if (path / "zarr.json").exists():  # created by another process since prepare_path
        lock.release()
        raise FileExistsError(f"store {str(path)!r} exists; pass --overwrite to replace it")
    return lock


@contextmanager
def released_on_error(lock: StoreLock) -> Iterator[None]:
    """Release ``lock`` if the block raises (the store it guards was not made or opened)."""
    try:
        yield
    except BaseException:
        lock.release()
        raise
