"""Offline restoration of files: a TIFF (2-D or N-D) or an OME-Zarr image, frame by frame."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path

import numpy as np
import tifffile

from live_restore.acquisition.store import read_image_array
from live_restore.models.restorer import Restorer

TIFF_SUFFIXES = (".tif", ".tiff")


def load_image(path: str | Path) -> np.ndarray:
    """Read a TIFF or an OME-Zarr image (the ``raw`` series of a live_restore store)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"input not found: {path}")
    if path.suffix.lower() in TIFF_SUFFIXES:
        return tifffile.imread(path)
    if path.is_dir():
        return read_image_array(path)
    raise ValueError(f"cannot read {path}: expected a .tif/.tiff file or an OME-Zarr directory")


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
    options: dict[str, int] = {"samples": samples}
    if steps is not None:
        if "steps" not in inspect.signature(restorer.restore).parameters:
            raise ValueError(f"restorer {restorer.name!r} has no sampling steps to set")
        options["steps"] = steps
    planes = arr.reshape(-1, *arr.shape[-2:])
    out = np.empty(planes.shape, dtype=np.float32)
    for i, plane in enumerate(planes):
        out[i] = restorer.restore(plane[None].astype(np.float32), **options).mean[0]
        if progress:
            progress(i + 1, len(planes))
    return out.reshape(arr.shape)


def save_image(path: str | Path, image: np.ndarray, *, overwrite: bool = False) -> Path:
    """Write a float32 TIFF, refusing to replace an existing file unless ``overwrite``."""
    path = Path(path)
    if path.suffix.lower() not in TIFF_SUFFIXES:
        raise ValueError(f"output must be a .tif/.tiff file, got {path}")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass --overwrite to replace it")
    tifffile.imwrite(path, np.asarray(image, dtype=np.float32), photometric="minisblack")
    return path
