"""Offline restoration of files: a TIFF (2-D or N-D) or an OME-Zarr image, frame by frame."""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import tifffile

from live_restore.acquisition.restore_loop import FrameSink, batched, restore_frames
from live_restore.acquisition.store_files import read_image_array
from live_restore.models.restorer import Restorer

TIFF_SUFFIXES = (".tif", ".tiff")

PLANES_PER_CALL = 1
"""Planes per restorer call: one, so memory stays that of a single plane however large the
file (a model tiles a large plane itself)."""


def check_grey(tif: tifffile.TiffFile, path: Path) -> None:
    """Refuse a TIFF of several samples per pixel (RGB): it is not a stack of frames."""
    page = tif.pages.first
    if page.samplesperpixel > 1:
        raise ValueError(
            f"{path} has {page.samplesperpixel} samples per pixel ({page.photometric.name}"
            "): live_restore restores single-channel fluorescence frames; save each "
            "channel as its own grey-scale TIFF"
        )


def load_image(path: str | Path) -> np.ndarray:
    """Read a TIFF or an OME-Zarr image (the ``raw`` series of a live_restore store)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"input not found: {path}")
    if path.suffix.lower() in TIFF_SUFFIXES:
        with tifffile.TiffFile(path) as tif:
            check_grey(tif, path)
            return tif.asarray()
    if path.is_dir():
        return read_image_array(path)
    raise ValueError(f"cannot read {path}: expected a .tif/.tiff file or an OME-Zarr directory")


class _PlaneSink(FrameSink[int]):
    """Restored planes into an array; a failure stops the whole restore (a file has no ledger
    to record it in, and a partly restored file would look complete)."""

    def __init__(self, out: np.ndarray) -> None:
        self.out = out

    def write(self, key: int, mean: np.ndarray, std: np.ndarray | None,
              restorer: Restorer) -> None:
        self.out[key] = mean

    def fail(self, key: int, reason: str, error: Exception) -> None:
        raise error


def restore_options(restorer: Restorer, *, samples: int = 1,
                    steps: int | None = None) -> dict[str, int]:
    """The keyword arguments of ``restorer.restore`` for ``samples`` draws and ``steps``
    sampling steps (diffusion restorers only: ValueError for any other)."""
    options = {"samples": samples}
    if steps is not None:
        if "steps" not in inspect.signature(restorer.restore).parameters:
            raise ValueError(f"restorer {restorer.name!r} has no sampling steps to set")
        options["steps"] = steps
    return options


def restore_stack(
    image: np.ndarray,
    restorer: Restorer,
    *,
    samples: int = 1,
    steps: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Restore every (Y, X) plane of an N-D array; float32 out, same shape.

    ``steps`` (sampling steps) only applies to diffusion restorers such as MSCGM.
    """
    arr = np.asarray(image)
    if arr.ndim < 2:
        raise ValueError(f"expected an image with at least 2 dimensions, got shape {arr.shape}")
    if arr.dtype.kind not in "uif":
        raise TypeError(f"cannot restore an image of dtype {arr.dtype}")
    options = restore_options(restorer, samples=samples, steps=steps)
    planes = arr.reshape(-1, *arr.shape[-2:])
    out = np.empty(planes.shape, dtype=np.float32)
    restore_frames(
        batched(range(len(planes)), PLANES_PER_CALL), read=planes.__getitem__,
        restorer_for=lambda _: restorer, sink=_PlaneSink(out), options=options,
        progress=(lambda n: progress(n, len(planes))) if progress else None,
    )
    return out.reshape(arr.shape)


def check_output(path: str | Path, *, overwrite: bool = False) -> Path:
    """``path`` if a float32 TIFF can be written there: call it before the work, so a typo in
    the output costs nothing. A .tif/.tiff name, in an existing writable folder, not an
    existing file unless ``overwrite``."""
    path = Path(path)
    if path.suffix.lower() not in TIFF_SUFFIXES:
        raise ValueError(f"output must be a .tif/.tiff file, got {path}")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass --overwrite to replace it")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise FileNotFoundError(f"cannot write {path}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise PermissionError(f"cannot write {path}: folder {folder} is not writable")
    return path


def save_image(path: str | Path, image: np.ndarray, *, overwrite: bool = False) -> Path:
    """Write a float32 TIFF, refusing to replace an existing file unless ``overwrite``."""
    path = check_output(path, overwrite=overwrite)
    tifffile.imwrite(path, np.asarray(image, dtype=np.float32), photometric="minisblack")
    return path
