"""Ctrl-C and SIGTERM during a restored acquisition: stop the light first, then decide.

A plain KeyboardInterrupt lands wherever the main thread happens to be: inside the MDA (no
one is told the acquisition stopped, and the backlog is then restored without a word) or in
the middle of closing the store while the worker still writes. So while an acquisition runs,
the first SIGINT or SIGTERM only *asks*: it cancels the MDA (no more exposures) and is
remembered, and the caller finishes the backlog or leaves it for ``resume``. The second one
raises KeyboardInterrupt, and the caller leaves at once with the store consistent; after it
the default handlers are back, so a third really interrupts.

Signal handlers can only be installed from the main thread; elsewhere (a GUI worker thread,
a notebook executor) :class:`Interrupts` installs nothing and the caller's own handling stays.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

__all__ = ["Interrupts"]

log = logging.getLogger(__name__)

_SIGNALS = tuple(s for s in (signal.SIGINT, getattr(signal, "SIGTERM", None)) if s is not None)


class Interrupts:
    """Counts SIGINT/SIGTERM while :meth:`installed`; ``on_first(signal_name)`` runs on the
    first (from the signal handler: keep it short and thread-safe, e.g. ``mda.cancel``)."""

    def __init__(self, on_first: Callable[[str], None]) -> None:
        self.on_first = on_first
        self.count = 0
        self.signal_name = ""
        self._previous: dict[int, object] = {}

    @property
    def requested(self) -> bool:
        """True once a stop was asked for."""
        return self.count > 0

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.count += 1
        if self.count == 1:
            self.signal_name = signal.Signals(signum).name
            self.on_first(self.signal_name)
            return
        self._restore()
        raise KeyboardInterrupt

    def _restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]
        self._previous.clear()

    @contextmanager
    def installed(self) -> Iterator[Interrupts]:
        """Handle SIGINT and SIGTERM inside the block (main thread only)."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        for signum in _SIGNALS:
            self._previous[signum] = signal.signal(signum, self._handle)
        try:
            yield self
        finally:
            self._restore()
