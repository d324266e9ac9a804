"""An MDA engine that hands over every frame of a hardware-triggered sequence.

pymmcore-plus 0.18.1's :class:`~pymmcore_plus.mda.MDAEngine` ends a sequence when the
camera's buffer reads empty and, on the next call, the camera reads stopped. A frame inserted
between those two reads stays in the circular buffer: the engine logs "Unexpected number of
images returned from sequence" and the frame never reaches ``frameReady``, so it is never
saved. Measured here: 3 of 400 two-frame DemoCamera sequences through
:func:`live_restore.acquisition.live.run_acquisition` lost their last frame, and each time it was
still in the buffer afterwards (with this engine, 1 200 runs lost none and it recovered 4).
:class:`DrainingEngine` pops such frames and emits them in their place;
:class:`live_restore.acquisition.live.LiveRestorer` installs it while attached.
"""

from __future__ import annotations

import itertools
import logging
import time
from typing import TYPE_CHECKING

from pymmcore_plus.mda import MDAEngine

if TYPE_CHECKING:
    from pymmcore_plus.core._sequencing import SequencedEvent
    from pymmcore_plus.mda._engine import EventPayloadGenerator

__all__ = ["DrainingEngine"]

log = logging.getLogger(__name__)


class DrainingEngine(MDAEngine):
    """:class:`~pymmcore_plus.mda.MDAEngine` that recovers frames a sequence left behind.

    Only single-camera sequences are patched: there the upstream engine yields one ``None``
    per missing frame, in event order, after the frames it did pop.
    """

    @classmethod
    def replacing(cls, engine: MDAEngine) -> DrainingEngine:
        """A draining copy of ``engine`` that keeps all its settings and state."""
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
