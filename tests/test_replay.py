"""The replay camera: a recorded stack played through the real MDA engine, in order."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile
import useq

from live_restore import run_acquisition
from live_restore.acquisition.core import managed_core
from live_restore.acquisition.store import AcquisitionStore
from live_restore.models.classical import ClassicalRestorer
from live_restore.sim.replay import load_stack, replay_stack

CFG = Path(__file__).parents[1] / "hardware_configs" / "replay.cfg"
PLANES = 5


def _stack(n: int = PLANES, shape=(12, 16), dtype="uint16") -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 4000, size=(n, *shape)).astype(dtype)


def _tiff(tmp_path: Path, image: np.ndarray, name: str = "stack.tif") -> Path:
    path = tmp_path / name
    tifffile.imwrite(path, image, photometric="minisblack")
    return path


def _cfg_with_path(tmp_path: Path, stack: Path) -> Path:
    """The documented route: a copy of replay.cfg with the Path line added."""
    cfg = tmp_path / "replay.cfg"
    cfg.write_text(CFG.read_text() + f"#py Property,Replay,Path,{stack}\n")
    return cfg


def _run(core, loops: int, interval_s: float) -> list[np.ndarray]:
    """Run a time-lapse MDA (interval 0: one hardware sequence; > 0: one snap per frame)."""
    frames: list[np.ndarray] = []

    def keep(img, event, meta):
        frames.append(img.copy())

    core.mda.events.frameReady.connect(keep)
    try:
        core.mda.run(useq.MDASequence(time_plan={"interval": interval_s, "loops": loops}))
    finally:
        core.mda.events.frameReady.disconnect(keep)
    return frames


@pytest.mark.parametrize("interval_s", [0, 0.001], ids=["sequence", "snaps"])
def test_mda_plays_the_planes_in_order(tmp_path, interval_s):
    stack = _stack()
    with managed_core(_cfg_with_path(tmp_path, _tiff(tmp_path, stack))) as core:
        assert (core.getImageHeight(), core.getImageWidth()) == stack.shape[1:]
        assert core.getImageBitDepth() == 16
        frames = _run(core, PLANES, interval_s)
    np.testing.assert_array_equal(np.stack(frames), stack)


@pytest.mark.parametrize("interval_s", [0, 0.001], ids=["sequence", "snaps"])
def test_end_of_stack_stops_the_frames_and_the_mda_finishes(tmp_path, interval_s):
    stack = _stack()
    with managed_core(_cfg_with_path(tmp_path, _tiff(tmp_path, stack))) as core:
        frames = _run(core, PLANES + 3, interval_s)
        assert not core.mda.is_running()
        assert core.mda.status.finish_reason.value == "completed"
        with pytest.raises(RuntimeError, match="ended after 5 planes and Loop is 'no'"):
            core.snapImage()
        core.setProperty("Replay", "NextPlane", 3)  # rewind part-way
        again = _run(core, 2, interval_s)
    np.testing.assert_array_equal(np.stack(frames), stack)
    np.testing.assert_array_equal(np.stack(again), stack[3:])


def test_loop_yes_starts_over_and_interval_paces_the_frames(tmp_path):
    stack = _stack(n=3)
    with managed_core(_cfg_with_path(tmp_path, _tiff(tmp_path, stack))) as core:
        core.setProperty("Replay", "Loop", "yes")
        core.setProperty("Replay", "FrameIntervalMs", 20)
        start = time.perf_counter()
        frames = _run(core, 7, 0)
        elapsed = time.perf_counter() - start
    np.testing.assert_array_equal(np.stack(frames), stack[[0, 1, 2, 0, 1, 2, 0]])
    assert elapsed >= 6 * 0.020  # six intervals between seven frames


def test_more_axes_play_in_file_order(tmp_path):
    image = _stack(n=6, dtype="uint8").reshape(2, 3, 12, 16)
    np.testing.assert_array_equal(load_stack(_tiff(tmp_path, image)), image.reshape(6, 12, 16))
    single = load_stack(_tiff(tmp_path, image[0, 0], "plane.tif"))
    assert single.shape == (1, 12, 16) and single.dtype == np.uint8


def test_ome_zarr_store_is_replayed(tmp_path):
    stack = _stack()
    source = tmp_path / "source.ome.zarr"
    with AcquisitionStore.create(source, sizes={"t": PLANES}, frame_shape=stack.shape[1:],
                                 dtype="uint16") as store:
        for t, plane in enumerate(stack):
            store.write_raw({"t": t}, plane)
    with managed_core(CFG) as core:
        assert replay_stack(core, source, pixel_size_um=0.25) == PLANES
        assert core.getPixelSizeUm() == pytest.approx(0.25)
        frames = _run(core, PLANES, 0)
    np.testing.assert_array_equal(np.stack(frames), stack)


@pytest.mark.parametrize(
    ("content", "error", "match"),
    [
        (None, FileNotFoundError, "not found"),
        (b"not a tiff at all", ValueError, "cannot replay"),
        (np.zeros((3, 8, 8), np.float32), ValueError, "float32; a camera delivers uint8 or uint16"),
        (np.zeros((3, 8, 8), np.int16), ValueError, "int16"),
    ],
    ids=["missing", "corrupt", "float", "signed"],
)
def test_bad_stacks_are_refused_when_the_path_is_set(tmp_path, content, error, match):
    path = tmp_path / "bad.tif"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        tifffile.imwrite(path, content, photometric="minisblack")
    good = _tiff(tmp_path, _stack())
    with managed_core(_cfg_with_path(tmp_path, good)) as core:
        with pytest.raises(error, match=match):
            core.setProperty("Replay", "Path", str(path))
        assert core.getProperty("Replay", "Path") == str(good)  # the old stack stays


def test_camera_without_a_stack_says_how_to_set_one():
    with managed_core(CFG) as core:
        with pytest.raises(ValueError, match="set its Path property"):
            core.getImageHeight()
        with pytest.raises(ValueError, match=r"NextPlane must be in \[0, 0\)"):
            core.setProperty("Replay", "NextPlane", 2)


def test_run_acquisition_stores_the_replayed_planes(tmp_path):
    stack = _stack()
    out = tmp_path / "acq.ome.zarr"
    with managed_core(_cfg_with_path(tmp_path, _tiff(tmp_path, stack))) as core:
        report = run_acquisition(core, useq.MDASequence(time_plan={"interval": 0, "loops": 5}),
                                 out, ClassicalRestorer())
    assert report.raw_frames_written == report.restored == PLANES
    with AcquisitionStore.open(out, mode="r") as store:
        for t, plane in enumerate(stack):
            np.testing.assert_array_equal(store.read_raw({"t": t}), plane)
            assert store.read_restored({"t": t}).shape == plane.shape
    info = json.loads((out / "zarr.json").read_text())["attributes"]["live_restore"]
    assert info["pixel_size_um"] == pytest.approx(1.0)  # replay.cfg's PixelSize_um
