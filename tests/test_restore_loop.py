"""The one restore loop under the worker, resume, batch restoration and the live view."""

from __future__ import annotations

import numpy as np
import pytest

from live_restore.acquisition.restore_loop import (
    FrameSink,
    LoopCounts,
    batched,
    channel_restorer,
    restore_frames,
)
from live_restore.models.restorer import RestoreResult


class _Halver:
    """Restores by halving; raises on any frame whose pixel (0, 0) is in ``bad``."""

    name = "halver"
    version = "test"

    def __init__(self, bad: frozenset[int] = frozenset()) -> None:
        self.bad = bad
        self.calls: list[int] = []

    def restore(self, batch, *, samples=1, seed=None) -> RestoreResult:
        self.calls.append(len(batch))
        if any(int(f[0, 0]) in self.bad for f in batch):
            raise RuntimeError("model crashed")
        return RestoreResult(mean=batch * 0.5, std=np.full_like(batch, samples))


class _Recorder(FrameSink[int]):
    def __init__(self, refuse_write: frozenset[int] = frozenset()) -> None:
        self.written: dict[int, tuple[np.ndarray, np.ndarray | None, str]] = {}
        self.failed: dict[int, str] = {}
        self.refuse_write = refuse_write

    def write(self, key, mean, std, restorer) -> None:
        if key in self.refuse_write:
            raise OSError("disk full")
        self.written[key] = (mean, std, restorer.name)

    def fail(self, key, reason, error) -> None:
        self.failed[key] = reason


def _frames(n: int) -> list[np.ndarray]:
    return [np.full((4, 6), i, dtype=np.uint16) for i in range(n)]


def test_every_frame_is_restored_in_the_batches_given_and_options_reach_the_restorer():
    frames, restorer, sink = _frames(7), _Halver(), _Recorder()
    seen: list[int] = []
    counts = restore_frames(batched(range(7), 3), read=frames.__getitem__,
                            restorer_for=lambda _: restorer, sink=sink, options={"samples": 5},
                            progress=seen.append)
    assert restorer.calls == [3, 3, 1]
    assert seen == [3, 6, 7]
    assert (counts.restored, counts.failed, counts.skipped) == (7, 0, 0)
    for i in range(7):
        mean, std, name = sink.written[i]
        assert mean.dtype == np.float32 and mean[0, 0] == i * 0.5 and std[0, 0] == 5
        assert name == "halver"


def test_a_bad_frame_costs_only_itself():
    frames, restorer, sink = _frames(4), _Halver(bad=frozenset({2})), _Recorder()
    counts = restore_frames([[0, 1, 2, 3]], read=frames.__getitem__,
                            restorer_for=lambda _: restorer, sink=sink)
    assert restorer.calls == [4, 1, 1, 1, 1]  # the batch, then one by one
    assert sorted(sink.written) == [0, 1, 3]
    assert sink.failed == {2: "RuntimeError: model crashed"}
    assert (counts.restored, counts.failed) == (3, 1)


def test_read_and_write_failures_are_reported_per_frame():
    frames = _frames(3)

    def read(i: int) -> np.ndarray:
        if i == 0:
            raise KeyError("raw frame t=0 was not written")
        return frames[i]

    sink = _Recorder(refuse_write=frozenset({2}))
    counts = restore_frames([[0, 1, 2]], read=read, restorer_for=lambda _: _Halver(), sink=sink)
    assert list(sink.written) == [1]
    assert sink.failed[0].startswith("reading the frame failed: KeyError")
    assert sink.failed[2] == "writing restored frame failed: OSError: disk full"
    assert counts.failed == 2


def test_frames_are_grouped_by_restorer_and_unrestored_channels_are_skipped():
    frames = _frames(4)
    a, b = _Halver(), _Halver()
    channel = {0: "A", 1: "A", 2: "B", 3: "C"}
    restorers = {"A": a, "B": b, "C": None}

    skipped: list[int] = []

    class Skipping(_Recorder):
        def skip(self, key) -> None:
            skipped.append(key)

    sink = Skipping()
    counts = restore_frames([[0, 1, 2, 3]], read=frames.__getitem__,
                            restorer_for=lambda i: channel_restorer(restorers, channel[i]),
                            sink=sink)
    assert a.calls == [2] and b.calls == [1]
    assert skipped == [3] and counts.skipped == 1 and counts.handled == 4
    with pytest.raises(ValueError, match="no restorer for frame 3"):
        restore_frames([[3]], read=frames.__getitem__, restorer_for=lambda _: None,
                       sink=_Recorder())


def test_a_sink_that_raises_stops_the_loop_and_counts_accumulate():
    class Strict(_Recorder):
        def fail(self, key, reason, error) -> None:
            raise error

    frames, counts = _frames(3), LoopCounts(restored=10)
    with pytest.raises(RuntimeError, match="model crashed"):
        restore_frames(batched(range(3), 1), read=frames.__getitem__,
                       restorer_for=lambda _: _Halver(bad=frozenset({1})), sink=Strict(),
                       counts=counts)
    assert counts.restored == 11 and counts.failed == 1


def test_batched_refuses_a_size_below_one():
    assert list(batched("abcde", 2)) == [["a", "b"], ["c", "d"], ["e"]]
    with pytest.raises(ValueError, match="0"):
        list(batched("abc", 0))
