"""Blockwise restoration on a Dask cluster: archives too big for one process.

The field's pattern (cellpose's ``distributed_eval``, bioimage.io's dask inference): the
frames are split into blocks of a few frames, each block is one task, the workers read their
frames straight from the shared files, restore them and send the restored frames back. Tasks
run on a ``distributed.LocalCluster`` (worker processes with one thread each, so CPU torch does
not oversubscribe the cores) or on a scheduler the facility already runs; with ``--device
cuda`` on a machine with several GPUs, worker ``i`` takes GPU ``i`` (:func:`worker_device`),
so ``--workers`` equal to the GPU count gives one worker per GPU. Each worker loads a
model once, on its first block or in :func:`warm_up` (:func:`_cached_restorer`). Planes larger
than the model's tile are tiled with overlap inside the restorer (the one tiled inferer), so a
block is always whole frames.

One writer: the client is the only process that writes. For a live_restore store it holds the
store's lock and writes each returned frame with its journal line as the block arrives, so a
killed worker costs only its unfinished block (Dask reruns it elsewhere), and a killed client
leaves every returned frame recorded and the rest pending for ``resume``. Raw data are only
ever read. For a file, the client writes the restored planes into a memory-mapped float32
TIFF.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import tifffile

from live_restore.acquisition.batch import check_grey
from live_restore.acquisition.restore_loop import LoopCounts, batched, channel_restorer
from live_restore.acquisition.store import AcquisitionStore, FrameIndex
from live_restore.acquisition.store_files import array_location, image_array
from live_restore.acquisition.worker import DEFAULT_BATCH_SIZE, StoreSink
from live_restore.models.restorer import Restorer, get_restorer, restores_stacks

if TYPE_CHECKING:
    from distributed import Client

__all__ = [
    "FrameRef",
    "dask_client",
    "restore_block",
    "restore_file",
    "restore_store",
    "warm_up",
    "worker_device",
]

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class FrameRef:
    """Where a worker reads one (Y, X) frame: a Zarr array and the frame's index in it, or a
    TIFF page."""

    path: str
    where: tuple[int, ...]
    tiff: bool = False


@functools.lru_cache(maxsize=4)
def _cached_restorer(model: str, device: str | None) -> Restorer:
    """A process's instance of ``model``: loaded on a worker's first block (or by
    :func:`warm_up`), then reused; the client keeps one too, for names and the floor check."""
    return get_restorer(model, device=device)


def warm_up(client: Client, model: str, device: str | None = None) -> None:
    """Load ``model`` on every worker and in this client now, rather than on first use."""
    client.run(_load, model, device, True)
    _load(model, "cpu")


def _load(model: str, device: str | None, on_worker: bool = False) -> None:
    """Load ``model`` into this process's cache; nothing travels back to the client."""
    _cached_restorer(model, worker_device(device) if on_worker else device)


@functools.lru_cache(maxsize=64)
def _zarr_array(path: str) -> Any:
    import zarr

    return zarr.open_array(path, mode="r")


def _read(ref: FrameRef) -> np.ndarray:
    if ref.tiff:
        return tifffile.imread(ref.path, key=ref.where[0])
    return np.asarray(_zarr_array(ref.path)[ref.where])


def worker_device(device: str | None) -> str | None:
    """``device`` for this worker: plain ``cuda`` on a machine with several GPUs becomes the
    GPU of the worker's number (``cuda:i`` for LocalCluster worker ``i``, modulo the count),
    so one worker per GPU uses every GPU; anything else is kept."""
    if device != "cuda":
        return device
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count < 2:
        return device
    from distributed import get_worker

    name = get_worker().name
    return f"cuda:{int(name) % count}" if isinstance(name, int) or str(name).isdigit() \
        else device


def restore_block(model: str, device: str | None, refs: Sequence[FrameRef],
                  options: Mapping[str, Any]) -> np.ndarray:
    """Runs on a worker: read ``refs``, restore them together, return ``(B, Y, X)`` float32."""
    frames = np.stack([_read(ref) for ref in refs]).astype(np.float32)
    result = _cached_restorer(model, worker_device(device)).restore(frames, **options)
    return np.asarray(result.mean, dtype=np.float32)


@contextmanager
def dask_client(workers: int = 2, scheduler: str | None = None) -> Iterator[Client]:
    """A client of the scheduler at ``scheduler``, else of a new ``LocalCluster`` of
    ``workers`` processes with one thread each; both closed on leaving."""
    from distributed import Client, LocalCluster

    if scheduler:
        with Client(scheduler) as client:
            yield client
        return
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                      dashboard_address=":0") as cluster, Client(cluster) as client:
        yield client


Block = tuple[str, list[Any], list[FrameRef]]
"""A task: the model, the keys its frames are written under, where the worker reads them."""


def _run(client: Client, blocks: Sequence[Block], device: str | None,
         options: Mapping[str, Any]) -> Iterator[tuple[Block, np.ndarray | BaseException]]:
    """Submit every block; yield each block with its restored frames (or its error) as it
    finishes."""
    from distributed import as_completed

    futures = {
        client.submit(restore_block, model, device, refs, dict(options), pure=False,
                      retries=2): (model, keys, refs)
        for model, keys, refs in blocks
    }
    for future in as_completed(futures):
        block = futures.pop(future)
        try:
            yield block, future.result()
        except Exception as exc:  # the block failed on every worker that tried it
            yield block, exc
        finally:
            future.release()


def restore_store(
    store_path: str | Path,
    restorers: Mapping[str, str] | str,
    client: Client,
    *,
    device: str | None = None,
    retry_failed: bool = False,
    block_size: int = DEFAULT_BATCH_SIZE,
    progress: Progress | None = None,
) -> LoopCounts:
    """Restore a store's pending frames (and failed ones, with ``retry_failed``) on ``client``.

    ``restorers``: the model every frame gets (a name or ``NAME.json`` path each worker can
    load), or one per channel (``channel -> model``; other channels are skipped as in
    ``resume``). Blocks hold frames of one model, in storage order, like the single-process
    path, so a deterministic model gives bit-identical frames."""
    loaded = {m: _cached_restorer(m, "cpu") for m in (
        {restorers} if isinstance(restorers, str) else set(restorers.values()))}
    stacks = [m for m, r in loaded.items() if restores_stacks(r)]
    if stacks:
        raise ValueError(f"{stacks[0]!r} restores z-stacks, a stack at a time: run resume "
                         "without --dask")
    counts = LoopCounts()
    with AcquisitionStore.open(store_path) as store:
        todo = store.pending(retry_failed)
        sink = StoreSink(store)

        def model_of(index: FrameIndex) -> str | None:
            if isinstance(restorers, str):
                return restorers
            return channel_restorer(dict(restorers), store.channel_name(index))

        by_model: dict[str, list[FrameIndex]] = {}
        for index in todo:
            model = model_of(index)
            if model is None:
                sink.skip(index)
                counts.skipped += 1
            else:
                by_model.setdefault(model, []).append(index)
        blocks = [(model, keys, [FrameRef(*store.frame_location("raw", k)) for k in keys])
                  for model, frames in by_model.items() for keys in batched(frames, block_size)]
        total = sum(len(keys) for _, keys, _ in blocks)
        for (model, keys, _), result in _run(client, blocks, device, {}):
            restorer = loaded[model]
            if isinstance(result, BaseException):
                reason = f"{type(result).__name__}: {result}"
                for key in keys:
                    sink.fail(key, f"restoring on the cluster failed: {reason}", result)
                counts.failed += len(keys)
            else:
                for key, mean in zip(keys, result, strict=True):
                    sink.write(key, mean, None, restorer)
                counts.restored += len(keys)
            if progress is not None:
                progress(counts.restored + counts.failed, total)
    return counts


def _tiff_refs(path: Path) -> tuple[tuple[int, ...], list[FrameRef]]:
    """The image's shape and one reference per plane (one plane per page)."""
    with tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        shape = tuple(series.shape)
        pages = len(series.pages)
        check_grey(tif, path)
    planes = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
    if pages != planes:
        raise ValueError(f"{path}: {pages} pages for {planes} planes; --dask reads one plane "
                         "per page (save the TIFF uncompressed, one page per plane)")
    return shape, [FrameRef(str(path), (k,), tiff=True) for k in range(planes)]


def _zarr_refs(path: Path) -> tuple[tuple[int, ...], list[FrameRef]]:
    """The image's shape and one reference per plane, for a plain OME-Zarr image or a live_restore
    store (its first raw series, as :func:`~live_restore.acquisition.store_files.image_array`
    chooses)."""
    array = image_array(path)
    shape = tuple(array.shape)
    planes = np.ndindex(*shape[:-2]) if len(shape) > 2 else iter([()])
    return shape, [FrameRef(array_location(array), where) for where in planes]


def restore_file(
    input_path: str | Path,
    output: str | Path,
    model: str,
    client: Client,
    *,
    device: str | None = None,
    options: Mapping[str, Any] | None = None,
    block_size: int = DEFAULT_BATCH_SIZE,
    progress: Progress | None = None,
) -> tuple[int, ...]:
    """Restore every plane of a TIFF or OME-Zarr image on ``client`` into a float32 TIFF of the
    same shape (``output``, which must not exist); the shape. A failed block fails the whole
    file, as in the single-process path, and the partial output is removed."""
    path, output = Path(input_path), Path(output)
    shape, refs = _tiff_refs(path) if path.is_file() else _zarr_refs(path)
    out = tifffile.memmap(output, shape=shape, dtype=np.float32, photometric="minisblack")
    planes = out.reshape(-1, *shape[-2:])
    blocks = [(model, list(keys), [refs[k] for k in keys])
              for keys in batched(range(len(refs)), block_size)]
    done = 0
    try:
        for (_, keys, _), result in _run(client, blocks, device, options or {}):
            if isinstance(result, BaseException):
                raise RuntimeError(f"restoring planes {keys[0]}..{keys[-1]} failed: "
                                   f"{type(result).__name__}: {result}") from result
            planes[keys[0]:keys[-1] + 1] = result
            done += len(keys)
            if progress is not None:
                progress(done, len(refs))
        out.flush()
    except BaseException:
        del planes, out
        output.unlink(missing_ok=True)
        raise
    del planes, out
    return shape
