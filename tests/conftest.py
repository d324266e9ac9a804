"""Shared fixtures: cores that always tear down cleanly (notes/pymmcore.md §4)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from pymmcore_plus.experimental.unicore import UniMMCore

from cameras import RampCamera
from live_restore.acquisition.core import managed_core, shutdown_core
from live_restore.models.protocol import RestoreResult, check_batch


@pytest.fixture
def democore() -> Iterator[UniMMCore]:
    """Micro-Manager's genuine DemoCamera config (mm-test-adapters), small frames."""
    with managed_core(None) as core:
        core.setProperty("Camera", "OnCameraCCDXSize", 96)
        core.setProperty("Camera", "OnCameraCCDYSize", 80)
        core.setExposure(1)
        yield core


@pytest.fixture
def pycam_core() -> Iterator[Callable[..., UniMMCore]]:
    """Factory: a UniMMCore whose only camera is a :class:`RampCamera`."""
    cores = []

    def make(**camera_kwargs) -> UniMMCore:
        core = UniMMCore()
        cores.append(core)
        core.loadPyDevice("Cam", RampCamera(**camera_kwargs))
        core.initializeDevice("Cam")
        core.setCameraDevice("Cam")
        core.setAutoShutter(False)  # there is no shutter device to open
        return core

    yield make
    for core in cores:
        shutdown_core(core)


class FailOnFrame:
    """A restorer that raises on frames whose pixel (0, 0) is in ``bad``: a model bug."""

    name = "fail-on-frame"
    version = "test"

    def __init__(self, bad: set[int]) -> None:
        self.bad = bad

    def restore(self, batch, *, samples=1, seed=None) -> RestoreResult:
        frames = check_batch(batch)
        hit = sorted(int(f[0, 0]) for f in frames if int(f[0, 0]) in self.bad)
        if hit:
            raise RuntimeError(f"model crashed on frame {hit}")
        return RestoreResult(mean=frames * 0.5)


@pytest.fixture
def fail_on_frame() -> type[FailOnFrame]:
    return FailOnFrame


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """Run a torch-heavy test on one thread (and restore the setting after)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
