"""The one per-frame restore loop under the live worker, ``resume``, batch restoration and the
live view.

Each of those reads frames from its own place (the hook's queue or the raw array, a file's
planes, the camera's circular buffer) and puts results in its own place (the store, an array,
a signal). What they share lives here: frames go to the restorer in micro-batches of frames
that share a restorer; a batch that fails is retried one frame at a time so one bad frame
costs only itself; and every failure is handed to the sink with a one-line reason, so the sink
decides whether it stops the loop (batch restoration of a file) or is recorded and passed over
(an acquisition, where a failure must never stop the microscope).
"""

from __future__ import annotations

import itertools
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import numpy as np

from live_restore.models.restorer import Restorer

__all__ = [
    "ChannelRestorers",
    "FrameSink",
    "LoopCounts",
    "batched",
    "channel_restorer",
    "restore_frames",
]

K = TypeVar("K")

ChannelRestorers = Restorer | Mapping[str, Restorer | None]
"""One restorer for every channel, or a map from channel config name to restorer (or None:
that channel is stored raw only and marked skipped)."""


def channel_restorer(restorers: ChannelRestorers, channel: str) -> Restorer | None:
    """The restorer for ``channel``: the only one, or the map's entry (None when absent)."""
    if isinstance(restorers, Mapping):
        return restorers.get(channel)
    return restorers


class FrameSink(ABC, Generic[K]):
    """Where the loop puts what happened to each frame, named by the caller's key ``K``."""

    @abstractmethod
    def write(self, key: K, mean: np.ndarray, std: np.ndarray | None, restorer: Restorer) -> None:
        """Keep one restored frame: ``mean`` (and ``std`` when sampled) (Y, X) float32 in camera
        units. An exception here is passed to :meth:`fail` as a write failure."""

    @abstractmethod
    def fail(self, key: K, reason: str, error: Exception) -> None:
        """Reading, restoring or writing this frame raised ``error``; ``reason`` is one line.
        Raise to stop the loop, return to go on with the next frame."""

    def skip(self, key: K) -> None:
        """No restorer is meant for this frame; a sink that never expects one refuses it."""
        raise ValueError(f"no restorer for frame {key!r}")


@dataclass
class LoopCounts:
    """What the loop did; ``busy_seconds`` is the time spent reading, restoring and writing."""

    restored: int = 0
    failed: int = 0
    skipped: int = 0
    busy_seconds: float = 0.0

    @property
    def handled(self) -> int:
        return self.restored + self.failed + self.skipped


def batched(keys: Iterable[K], size: int) -> Iterator[list[K]]:
    """Consecutive micro-batches of at most ``size`` keys."""
    if size < 1:
        raise ValueError(f"batch size must be >= 1, got {size!r}")
    it = iter(keys)
    while batch := list(itertools.islice(it, size)):
        yield batch


def restore_frames(
    batches: Iterable[Sequence[K]],
    *,
    read: Callable[[K], np.ndarray],
    restorer_for: Callable[[K], Restorer | None],
    sink: FrameSink[K],
    options: Mapping[str, Any] | None = None,
    counts: LoopCounts | None = None,
    progress: Callable[[int], None] | None = None,
) -> LoopCounts:
    """Restore every frame of every batch and hand each outcome to ``sink``.

    ``read(key)`` gives the (Y, X) frame in camera units; ``restorer_for(key)`` its restorer
    (None: ``sink.skip``). Within a batch, consecutive frames with the same restorer are
    restored together; ``options`` (e.g. ``samples``, ``steps``) go to every ``restore`` call.
    ``counts`` is updated as the loop goes, so another thread may read it; ``progress`` is told
    how many frames are handled after each batch.
    """
    counts = counts if counts is not None else LoopCounts()
    kwargs = dict(options or {})
    for batch in batches:
        for restorer, run in itertools.groupby(batch, key=restorer_for):
            keys = list(run)
            if restorer is None:
                for key in keys:
                    sink.skip(key)
                    counts.skipped += 1
                continue
            t0 = time.perf_counter()
            loaded = []
            for key in keys:
                try:
                    loaded.append((key, read(key)))
                except Exception as exc:
                    _fail(sink, counts, key, f"reading the frame failed: {_one_line(exc)}", exc)
            _restore_loaded(loaded, restorer, sink, kwargs, counts)
            counts.busy_seconds += time.perf_counter() - t0
        if progress is not None:
            progress(counts.handled)
    return counts


def _restore_loaded(
    loaded: list[tuple[K, np.ndarray]],
    restorer: Restorer,
    sink: FrameSink[K],
    kwargs: Mapping[str, Any],
    counts: LoopCounts,
) -> None:
    if not loaded:
        return
    try:
        stack = np.stack([frame for _, frame in loaded]).astype(np.float32)
        result = restorer.restore(stack, **kwargs)
    except Exception as exc:
        if len(loaded) == 1:
            _fail(sink, counts, loaded[0][0], _one_line(exc), exc)
        else:  # isolate the bad frame: retry one by one
            for item in loaded:
                _restore_loaded([item], restorer, sink, kwargs, counts)
        return
    for i, (key, _) in enumerate(loaded):
        std = None if result.std is None else result.std[i]
        try:
            sink.write(key, result.mean[i], std, restorer)
        except Exception as exc:  # e.g. a full disk: the raw frame is already safe
            _fail(sink, counts, key, f"writing restored frame failed: {_one_line(exc)}", exc)
        else:
            counts.restored += 1


def _fail(sink: FrameSink[K], counts: LoopCounts, key: K, reason: str, exc: Exception) -> None:
    counts.failed += 1
    sink.fail(key, reason, exc)


def _one_line(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"
