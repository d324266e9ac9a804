"""An MDA engine that hands over every frame of a hardware-triggered sequence.

pymmcore-plus 0.18.1's :class:`~pymmcore_plus.mda.MDAEngine` ends a sequence when the
camera's buffer reads empty and, on the next call, the camera reads stopped. A frame inserted
between those two reads stays in the circular buffer: the engine logs "Unexpected number of
images returned from sequence" and the frame never reaches ``frameReady``, so it is never
saved. :class:`DrainingEngine` pops such frames and emits them in their place.

The fix leans on that engine's internals (the ``None`` it yields per missing frame, the
private ``_create_seqimg_payload_from_popped``, the ``runner_t0`` event metadata), so this
module is the one place that touches them and it refuses any other pymmcore-plus version
(:func:`check_pymmcore_plus_version`) instead of silently misbehaving.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import pymmcore_plus
from pymmcore_plus.mda import MDAEngine

if TYPE_CHECKING:
    from pymmcore_plus import CMMCorePlus
    from pymmcore_plus.core._sequencing import SequencedEvent
    from pymmcore_plus.mda._engine import EventPayloadGenerator

__all__ = [
    "PINNED_PYMMCORE_PLUS",
    "DrainingEngine",
    "check_pymmcore_plus_version",
    "draining_engine",
]

log = logging.getLogger(__name__)

PINNED_PYMMCORE_PLUS = "0.18.1"
"""The pymmcore-plus whose engine internals :class:`DrainingEngine` was written against."""


def check_pymmcore_plus_version() -> None:
    """Raise unless the installed pymmcore-plus is the one the draining engine was written for."""
    found = pymmcore_plus.__version__
    if found != PINNED_PYMMCORE_PLUS:
        raise RuntimeError(
            f"live_restore's DrainingEngine needs pymmcore-plus=={PINNED_PYMMCORE_PLUS}, "
            f"found {found!r}; install pymmcore-plus=={PINNED_PYMMCORE_PLUS}"
        )


class DrainingEngine(MDAEngine):
    """:class:`~pymmcore_plus.mda.MDAEngine` that recovers frames a sequence left behind.

    Only single-camera sequences are patched: there the upstream engine yields one ``None``
    per missing frame, in event order, after the frames it did pop.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        check_pymmcore_plus_version()
        super().__init__(*args, **kwargs)

    @classmethod
    def replacing(cls, engine: MDAEngine) -> DrainingEngine:
        """A draining copy of ``engine`` that keeps all its settings and state."""
        check_pymmcore_plus_version()
        new = cls.__new__(cls)
        new.__dict__.update(vars(engine))
        return new

    def exec_sequenced_event(self, event: SequencedEvent) -> EventPayloadGenerator:
        core = self.mmcore
        t0 = event.metadata.get("runner_t0")
        t0_ms = (time.perf_counter() - t0) * 1000 if t0 else 0.0  # as the upstream engine
        single_camera = core.getNumberOfCameraChannels() == 1
        frames = super().exec_sequenced_event(event)
        signal = None
        try:
            for index in itertools.count():
                try:
                    payload = frames.send(signal)
                except StopIteration:
                    return
                if payload is None and single_camera and core.getRemainingImageCount():
                    img, meta = core.popNextImageAndMD()
                    payload = self._create_seqimg_payload_from_popped(
                        img,
                        meta,
                        event=event.events[index],
                        channel=0,
                        event_t0=t0_ms,
                        remaining=core.getRemainingImageCount(),
                    )
                    log.warning(
                        "recovered frame %d of %d that the sequence left in the camera buffer",
                        index + 1,
                        len(event.events),
                    )
                signal = yield payload
        finally:
            frames.close()


@contextmanager
def draining_engine(core: CMMCorePlus) -> Iterator[None]:
    """Run with a :class:`DrainingEngine` in place of the core's stock engine, keeping its
    settings, and put the stock engine back after; a custom engine (any other type) is left
    alone, and so is an engine that is running."""
    engine = core.mda.engine
    if type(engine) is not MDAEngine or core.mda.is_running():
        yield
        return
    core.mda.set_engine(DrainingEngine.replacing(engine))
    try:
        yield
    finally:
        if not core.mda.is_running():
            core.mda.set_engine(engine)
