"""Blockwise restoration on a 2-worker LocalCluster: the same frames as one process, a killed
worker costs nothing, a killed client leaves the rest for resume."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile

pytest.importorskip("distributed")

from live_restore.acquisition.batch import restore_stack
from live_restore.acquisition.run import resume
from live_restore.acquisition.store import AcquisitionStore, FrameStatus
from live_restore.distributed.blockwise import (
    dask_client,
    restore_file,
    restore_store,
)
from live_restore.models.classical import ClassicalRestorer

FRAMES = 12


def _store(path: Path, frames: int = FRAMES, shape: tuple[int, int] = (48, 40)) -> Path:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    clean = 30 + 20 * np.sin(xx / 4.0) ** 2 + 10 * np.cos(yy / 6.0) ** 2
    with AcquisitionStore.create(path, sizes={"t": frames // 2, "c": 2}, frame_shape=shape,
                                 dtype="uint16", channel_names=["A", "B"]) as store:
        for t in range(frames // 2):
            for c in range(2):
                store.write_raw({"t": t, "c": c}, rng.poisson(clean).astype(np.uint16))
    return path


@pytest.fixture(scope="module")
def client():
    with dask_client(workers=2) as c:
        yield c


def test_a_cluster_restores_the_same_frames_as_one_process(tmp_path, client):
    single, spread = _store(tmp_path / "one.zarr"), tmp_path / "two.zarr"
    shutil.copytree(single, spread)
    resume(single, ClassicalRestorer())
    done = []
    counts = restore_store(spread, "classical", client, progress=lambda n, total: done.append(n))
    assert counts.restored == FRAMES and counts.failed == 0 and done[-1] == FRAMES
    with AcquisitionStore.open(single, mode="r") as a, AcquisitionStore.open(spread, mode="r") as b:
        assert b.pending() == [] and len(b.indices(FrameStatus.RESTORED)) == FRAMES
        for index in a.indices(FrameStatus.RESTORED):
            np.testing.assert_array_equal(a.read_restored(index), b.read_restored(index))
            assert b.frame_metadata(index)["model"] == a.frame_metadata(index)["model"]
        assert "gain_db" in b.frame_metadata({"t": 2, "c": 1})["floor"]  # the live floor check


def test_per_channel_models_and_skipped_channels(tmp_path, client):
    path = _store(tmp_path / "c.zarr")
    counts = restore_store(path, {"B": "classical"}, client)
    assert counts.restored == FRAMES // 2 and counts.skipped == FRAMES // 2
    with AcquisitionStore.open(path, mode="r") as store:
        assert store.status({"t": 0, "c": 0}) == FrameStatus.SKIPPED


def test_a_file_restored_on_the_cluster_matches_restore_stack(tmp_path, client):
    rng = np.random.default_rng(1)
    stack = rng.poisson(25, (2, 3, 40, 36)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "in.tif", stack, photometric="minisblack")
    shape = restore_file(tmp_path / "in.tif", tmp_path / "out.tif", "classical", client)
    assert shape == stack.shape
    expected = restore_stack(stack, ClassicalRestorer())
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "out.tif"), expected)
    restore_file(_store(tmp_path / "s.zarr"), tmp_path / "from_store.tif", "classical", client)
    assert tifffile.imread(tmp_path / "from_store.tif").shape == (FRAMES // 2, 2, 48, 40)


def test_a_killed_worker_costs_no_frame(tmp_path):
    path = _store(tmp_path / "k.zarr", frames=24, shape=(64, 64))
    with dask_client(workers=2) as client:
        victim = next(iter(client.run(os.getpid).values()))

        def kill_after_two(done: int, total: int) -> None:
            if done == 2:  # 22 frames still to go, some of them on the victim
                os.kill(victim, signal.SIGKILL)

        counts = restore_store(path, "denoise", client, block_size=1, progress=kill_after_two)
        assert victim not in client.run(os.getpid).values()  # it died mid-run
    assert counts.restored == 24 and counts.failed == 0
    with AcquisitionStore.open(path, mode="r") as store:
        assert store.pending() == []


_CLIENT = """
import sys
from live_restore.distributed.blockwise import dask_client, restore_store
with dask_client(workers=1) as client:
    restore_store(sys.argv[1], "denoise", client, block_size=1,
                  progress=lambda n, total: print(n, flush=True))
"""


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_a_killed_client_leaves_the_rest_for_resume(tmp_path):
    path = _store(tmp_path / "c.zarr", frames=24, shape=(64, 64))
    proc = subprocess.Popen([sys.executable, "-c", _CLIENT, str(path)], stdout=subprocess.PIPE,
                            text=True, start_new_session=True)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and int(proc.stdout.readline() or 0) < 3:
        pass
    os.killpg(proc.pid, signal.SIGKILL)  # the client and its cluster
    proc.wait(timeout=60)
    with AcquisitionStore.open(path, mode="r") as store:
        restored = len(store.indices(FrameStatus.RESTORED))
        assert 3 <= restored < 24 and len(store.pending()) == 24 - restored
    assert resume(path, ClassicalRestorer()) == 24 - restored


def test_the_cli_restores_on_a_cluster(tmp_path):
    from typer.testing import CliRunner

    from live_restore.cli import app

    runner = CliRunner()
    path = _store(tmp_path / "s.zarr")
    result = runner.invoke(app, ["resume", str(path), "--model", "classical", "--dask",
                                 "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert "Dask dashboard:" in result.output and f"restored {FRAMES} frame(s)" in result.output
    tifffile.imwrite(tmp_path / "in.tif", np.ones((3, 32, 32), np.uint16) * 7,
                     photometric="minisblack")
    result = runner.invoke(app, ["restore", str(tmp_path / "in.tif"), str(tmp_path / "o.tif"),
                                 "--model", "classical", "--dask", "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert tifffile.imread(tmp_path / "o.tif").shape == (3, 32, 32)
    lone = runner.invoke(app, ["restore", str(tmp_path / "in.tif"), str(tmp_path / "p.tif"),
                               "--scheduler", "tcp://127.0.0.1:1"])
    assert lone.exit_code == 1 and "--scheduler needs --dask" in lone.output


def test_bench_scale_reports_every_arm_and_identical_frames():
    from live_restore.experiments.bench_scale import bench_scale

    result = bench_scale(("classical",), frames=4, size=32)
    row = result["models"]["classical"]
    assert set(row["arms"]) == {"single_process", "dask_1_worker", "dask_2_workers"}
    assert all(arm["frames"] == 4 and arm["fps"] > 0 for arm in row["arms"].values())
    assert row["bit_identical"] and row["scaling_efficiency_2_workers"] > 0


def test_each_worker_takes_its_own_gpu(monkeypatch):
    import distributed
    import torch

    from live_restore.distributed.blockwise import worker_device

    assert worker_device(None) is None and worker_device("cpu") == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    for name, expected in ((0, "cuda:0"), (1, "cuda:1"), (2, "cuda:0")):
        monkeypatch.setattr(distributed, "get_worker", lambda n=name: type("W", (), {"name": n}))
        assert worker_device("cuda") == expected
    assert worker_device("cuda:1") == "cuda:1"  # an explicit GPU is kept
