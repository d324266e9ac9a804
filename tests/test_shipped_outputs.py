"""Every shipped model restores a fixed frame exactly as it did when the reference was taken.

Refactors of the model code must not change what a user gets. The reference arrays in
``tests/data/shipped_outputs.npz`` were written by ``python tests/test_shipped_outputs.py``;
rewrite them only when a change of output is intended (and say so in the commit).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from live_restore.models.restorer import get_restorer

REFERENCE = Path(__file__).parent / "data" / "shipped_outputs.npz"
MODELS = ("classical", "denoise", "sted_denoise", "confocal2sted")


def fixed_frame() -> np.ndarray:
    """A 72×88 frame of Poisson-noisy blobs on an offset (odd tiles, not a power of two)."""
    rng = np.random.default_rng(20261206)
    yy, xx = np.mgrid[:72, :88]
    clean = 40.0 + sum(
        300.0 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2.0 * s**2))
        for cy, cx, s in ((20, 30, 3.0), (50, 60, 5.0), (35, 15, 2.0))
    )
    return (rng.poisson(clean) + 100.0).astype(np.float32)


def restore(name: str) -> np.ndarray:
    return get_restorer(name, device="cpu").restore(fixed_frame(), seed=7).mean[0]


def fill_fixed_stack() -> np.ndarray:
    """The shipped z-stack model on three planes of the fixed frame (shifted and dimmed from
    plane to plane), filled to every 2nd plane: (5, 72, 88)."""
    frame = fixed_frame()
    stack = np.stack([frame, np.roll(frame, 3, axis=1) * 0.8, np.roll(frame, 6, axis=0) * 0.6])
    return get_restorer("axial", device="cpu").fill(stack, 2)


@pytest.mark.parametrize("name", MODELS)
def test_shipped_model_output_is_unchanged(name: str, one_torch_thread: None) -> None:
    expected = np.load(REFERENCE)[name]
    restored = restore(name)
    assert restored.shape == expected.shape and restored.dtype == np.float32
    # Bit-identical on the machine that wrote the reference; a CPU with other vector units
    # may round the last bits of a convolution differently.
    np.testing.assert_allclose(restored, expected, rtol=0, atol=1e-4 * float(np.ptp(expected)))


def test_shipped_stack_model_output_is_unchanged(one_torch_thread: None) -> None:
    expected = np.load(REFERENCE)["axial"]
    filled = fill_fixed_stack()
    assert filled.shape == expected.shape == (5, 72, 88) and filled.dtype == np.float32
    np.testing.assert_allclose(filled, expected, rtol=0, atol=1e-4 * float(np.ptp(expected)))


if __name__ == "__main__":
    import torch

    torch.set_num_threads(1)
    REFERENCE.parent.mkdir(exist_ok=True)
    np.savez_compressed(REFERENCE, **{name: restore(name) for name in MODELS},
                        axial=fill_fixed_stack())
    sys.exit(0)
