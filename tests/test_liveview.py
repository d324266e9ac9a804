"""Live view keeps up with a fast camera by restoring only the newest frame."""

from __future__ import annotations

import time

from live_restore.acquisition.liveview import LiveView
from live_restore.experiments.bench_acquisition import SlowRestorer
from live_restore.models.classical import ClassicalRestorer


def test_live_view_skips_stale_frames_with_a_slow_restorer(democore):
    shown = []
    view = LiveView(democore, SlowRestorer(ClassicalRestorer(), 0.05))
    view.signals.frameRestored.connect(lambda restored, raw, meta: shown.append(restored.shape))
    with view:
        time.sleep(0.8)
    assert not democore.isSequenceRunning()
    assert view.shown >= 3 and view.skipped > view.shown  # camera ~ms, restorer 50 ms
    assert set(shown) == {(80, 96)}
