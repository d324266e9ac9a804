"""Adapting live on the first frames (acquire --adapt-first) and from noisy stacks (adapt
--from-noisy): recorded frames played through the real MDA by the replay camera."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
import useq
import yaozarrs
from typer.testing import CliRunner

from live_restore.acquisition.adapt_first import AdaptFirst, field_stacks
from live_restore.acquisition.core import managed_core
from live_restore.acquisition.hook import LiveRestorer
from live_restore.acquisition.run import run_acquisition
from live_restore.acquisition.store import AcquisitionStore, FrameStatus
from live_restore.adapt.noisy import NoisyAdaptConfig, adapt_from_noisy
from live_restore.cli import app
from live_restore.models.classical import ClassicalRestorer
from live_restore.models.mscgm import MSCGM, MSCGMConfig, MSCGMRestorer
from live_restore.models.restorer import get_restorer
from live_restore.sim.replay import replay_stack
from tiny_models import SMALL_MSCGM

REPLAY_CFG = Path(__file__).parents[1] / "hardware_configs" / "replay.cfg"
FRAMES = 10
FIRST = 4
TINY_ADAPT = NoisyAdaptConfig(steps=2, batch_size=1, patch_size=32)
runner = CliRunner()


def noisy_stack(frames: int = FRAMES, side: int = 32, seed: int = 0) -> np.ndarray:
    """Poisson frames of one field of a few bright spots, in camera counts."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:side, :side]
    clean = np.full((side, side), 8.0)
    for cy, cx in rng.uniform(6, side - 6, size=(4, 2)):
        clean += 80.0 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 8.0)
    return (rng.poisson(clean, (frames, side, side)) + 100).astype(np.uint16)


@pytest.fixture
def tiny_model(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    path = MSCGMRestorer(MSCGM(MSCGMConfig.for_task("denoise", **SMALL_MSCGM))).save(
        tmp_path / "tiny")
    return path


@pytest.fixture
def recording(tmp_path: Path) -> tuple[np.ndarray, Path]:
    """``noisy_stack()`` and the TIFF holding it."""
    stack = noisy_stack()
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, stack, photometric="minisblack")
    return stack, path


@pytest.fixture
def replay(recording):
    """A replay core playing the recording; yields (core, stack, tiff path)."""
    stack, path = recording
    with managed_core(REPLAY_CFG) as core:
        replay_stack(core, path)
        yield core, stack, path


def timelapse(n: int = FRAMES) -> useq.MDASequence:
    return useq.MDASequence(time_plan={"interval": 0, "loops": n})


def tiny_adapter(base, stacks):
    return adapt_from_noisy(base, stacks, TINY_ADAPT)


def journal_models(store_path: Path) -> dict[int, list[str]]:
    """Frame t -> every model that restored it, in journal order."""
    models: dict[int, list[str]] = {}
    for line in (store_path / "ledger" / "journal.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record["s"] == "restored":
            models.setdefault(record["i"][0], []).append(record["model"])
    return models


def test_adapted_model_restores_every_frame_the_first_ones_again(
    replay, tiny_model, tmp_path, one_torch_thread
):
    core, stack, _ = replay
    base = get_restorer(str(tiny_model), device="cpu")
    base_label = f"{base.name}@{base.version}"
    four_restored = threading.Event()
    adapted_on: list[list[np.ndarray]] = []

    def adapter(restorer, stacks):
        adapted_on.append(stacks)
        assert four_restored.wait(30)  # the base model has restored the first frames
        return tiny_adapter(restorer, stacks)

    store_path = tmp_path / "live.ome.zarr"
    store = AcquisitionStore.from_sequence(store_path, timelapse(), frame_shape=(32, 32),
                                           dtype="uint16")
    with LiveRestorer(core, base, store, adapt_first=AdaptFirst(FIRST, adapter)) as live:
        live.signals.frameRestored.connect(
            lambda img, event, meta: event.index["t"] == FIRST - 1 and four_restored.set())
        core.mda.run(timelapse())
    record = live.adaptation.records[""]
    assert record["status"] == "adapted", record
    adapted_label = record["model"]
    with AcquisitionStore.open(store_path, mode="r") as reopened:
        raw = np.stack([reopened.read_raw({"t": t}) for t in range(FRAMES)])
        final = [reopened.frame_metadata({"t": t})["model"] for t in range(FRAMES)]
        stored = json.loads((store_path / "zarr.json").read_text())["attributes"]
    store.close()

    np.testing.assert_array_equal(raw, stack)  # every raw frame saved, none lost
    np.testing.assert_array_equal(adapted_on[0][0], stack[:FIRST])  # one field, first frames
    assert adapted_label != base_label and final == [adapted_label] * FRAMES
    history = journal_models(store_path)
    assert all(history[t] == [base_label, adapted_label] for t in range(FIRST))
    assert live.re_restored >= FIRST and live.stats.failed == 0
    info = stored["live_restore"]
    assert info["adaptations"][""]["model"] == adapted_label
    assert info["ledger"]["restored"] == {adapted_label: [[0, FRAMES]]}
    saved = get_restorer(str(store_path / record["file"]), device="cpu")
    assert f"{saved.name}@{saved.version}" == adapted_label
    assert json.loads((store_path / record["file"]).read_text())["adaptation"]["live"][
        "frames"] == [{"t": t} for t in range(FIRST)]
    yaozarrs.validate_zarr_store(str(store_path))


def test_a_failing_adapter_keeps_the_base_model_and_loses_nothing(
    replay, tiny_model, tmp_path, one_torch_thread
):
    core, stack, _ = replay
    base = get_restorer(str(tiny_model), device="cpu")

    def broken(restorer, stacks):
        raise RuntimeError("out of memory while adapting")

    store_path = tmp_path / "failed.ome.zarr"
    report = run_acquisition(core, timelapse(), store_path, base,
                             adapt_first=AdaptFirst(FIRST, broken))
    assert report.raw_frames_written == report.restored == FRAMES
    assert report.failed == report.pending == report.re_restored == 0
    assert report.adaptations[""]["status"] == "failed"
    assert "RuntimeError: out of memory while adapting" in report.adaptations[""]["reason"]
    with AcquisitionStore.open(store_path, mode="r") as store:
        np.testing.assert_array_equal(
            np.stack([store.read_raw({"t": t}) for t in range(FRAMES)]), stack)
        assert {store.frame_metadata({"t": t})["model"] for t in range(FRAMES)} == {
            f"{base.name}@{base.version}"}
    info = json.loads((store_path / "zarr.json").read_text())["attributes"]["live_restore"]
    assert info["adaptations"][""]["status"] == "failed"


def test_an_interrupted_run_does_not_wait_for_the_adaptation(replay, tiny_model, tmp_path):
    core, _, _ = replay
    base = get_restorer(str(tiny_model), device="cpu")
    release = threading.Event()

    def slow(restorer, stacks):
        release.wait(30)
        return restorer

    store = AcquisitionStore.from_sequence(tmp_path / "cut.zarr", timelapse(),
                                           frame_shape=(32, 32), dtype="uint16")
    live = LiveRestorer(core, base, store, adapt_first=AdaptFirst(FIRST, slow))
    with pytest.raises(KeyboardInterrupt), live:
        core.mda.run(timelapse())
        raise KeyboardInterrupt
    release.set()
    assert live.adaptation.records[""]["status"] == "cancelled"
    assert live.re_restored == 0  # the backlog is left for resume, not restored silently
    assert len(store.indices(FrameStatus.RESTORED)) + len(store.pending()) == FRAMES
    store.close()


def test_a_channel_short_of_frames_keeps_its_model_and_says_why(replay, tmp_path):
    core, _, _ = replay
    report = run_acquisition(core, timelapse(), tmp_path / "short.zarr", ClassicalRestorer(),
                             adapt_first=AdaptFirst(FRAMES + 1, tiny_adapter))
    assert report.restored == FRAMES
    assert report.adaptations[""]["status"] == "waiting"
    assert "10 of the 11 frames" in report.adaptations[""]["reason"]


def test_adapt_first_refuses_one_frame_and_a_deferred_backlog(replay, tmp_path):
    core, _, _ = replay
    with pytest.raises(ValueError, match="at least 2 frames"):
        AdaptFirst(1, tiny_adapter)
    store = AcquisitionStore.create(tmp_path / "s.zarr", sizes={"t": 2}, frame_shape=(32, 32),
                                    dtype="uint16")
    with pytest.raises(ValueError, match="drain=False"):
        LiveRestorer(core, ClassicalRestorer(), store, drain=False,
                     adapt_first=AdaptFirst(2, tiny_adapter))
    store.close()


def test_field_stacks_group_frames_by_position_in_time_order(tmp_path):
    frames = noisy_stack(frames=6, side=16)
    with AcquisitionStore.create(tmp_path / "p.zarr", sizes={"t": 3, "p": 2},
                                 frame_shape=(16, 16), dtype="uint16") as store:
        order = [{"t": t, "p": p} for t in range(3) for p in range(2)]
        for index, frame in zip(order, frames, strict=True):
            store.write_raw(index, frame)
        stacks = field_stacks(store, order)
    assert len(stacks) == 2
    np.testing.assert_array_equal(stacks[0], frames[0::2])
    np.testing.assert_array_equal(stacks[1], frames[1::2])


def test_cli_acquire_replays_a_stack_and_adapts_on_its_first_frames(
    recording, tiny_model, tmp_path, one_torch_thread
):
    stack, tiff = recording
    (tmp_path / "seq.json").write_text(timelapse().model_dump_json())
    out = tmp_path / "cli.ome.zarr"
    args = ["acquire", "--replay", str(tiff), "--sequence", str(tmp_path / "seq.json"),
            "--output", str(out), "--model", str(tiny_model)]
    result = runner.invoke(app, [*args, "--adapt-first", str(FIRST), "--adapt-steps", "1"])
    assert result.exit_code == 0, result.output
    assert "adapt-first" in result.output and "adapted" in result.output
    with AcquisitionStore.open(out, mode="r") as store:
        np.testing.assert_array_equal(
            np.stack([store.read_raw({"t": t}) for t in range(FRAMES)]), stack)
        models = {store.frame_metadata({"t": t})["model"] for t in range(FRAMES)}
    assert len(models) == 1 and models.pop().startswith("tiny+n2n@")
    refused = runner.invoke(app, [*args[:-1], "classical", "--adapt-first", "4"])
    assert refused.exit_code == 1 and "adapts MSCGM models; 'classical'" in refused.output
    no_config = runner.invoke(app, ["acquire", *args[3:7]])
    assert no_config.exit_code == 1 and "--config is required unless --replay" in (
        no_config.output)


def test_cli_adapt_from_noisy_writes_the_adapted_model_and_its_record(tiny_model, tmp_path):
    tifffile.imwrite(tmp_path / "a.tif", noisy_stack(frames=3), photometric="minisblack")
    tifffile.imwrite(tmp_path / "b.tif", noisy_stack(frames=2, seed=1), photometric="minisblack")
    out = tmp_path / "adapted"
    args = ["adapt", "--from-noisy", str(tmp_path / "a.tif"), "--from-noisy",
            str(tmp_path / "b.tif"), "--base", str(tiny_model), "--out", str(out)]
    result = runner.invoke(app, [*args, "--steps", "2"])
    assert result.exit_code == 0, result.output
    record = json.loads(out.with_suffix(".json").read_text())["adaptation"]
    assert record["method"] == "noise2noise" and record["settings"]["steps"] == 2
    assert (record["frames"], record["stacks"]) == (5, 2) and len(record["frames_sha256"]) == 16
    assert record["sources"] == [str(tmp_path / "a.tif"), str(tmp_path / "b.tif")]
    assert isinstance(get_restorer(str(out.with_suffix(".json"))), MSCGMRestorer)
    summary = f"on 5 frame(s) of 2 field(s) ({record['pairs']} pairs)"
    assert summary in " ".join(result.output.split())


@pytest.mark.parametrize(
    ("frames", "extra", "message"),
    [
        (np.zeros((1, 32, 32), np.uint16), [], "holds 1 frame; --from-noisy needs at least 2"),
        (np.zeros((3, 32, 32), np.complex64), [], "complex64 values; --from-noisy needs"),
        (np.zeros((3, 32, 32), np.uint16), ["--base", "classical"],
         "'classical' restorer; adaptation needs MSCGM"),
        (np.zeros((3, 32, 32), np.uint16), ["--base", "confocal2sted"],
         "adapts denoisers; 'confocal2sted' (confocal2sted) maps to another modality"),
        (np.zeros((3, 32, 32), np.uint16), ["--defect", "x"], "drop --defect"),
    ],
    ids=["single-frame", "dtype", "base", "modality", "mixed-modes"],
)
def test_cli_adapt_from_noisy_refuses_with_one_line(tmp_path, tiny_model, frames, extra,
                                                    message):
    tifffile.imwrite(tmp_path / "s.tif", frames, photometric="minisblack")
    args = ["adapt", "--from-noisy", str(tmp_path / "s.tif"), "--base", str(tiny_model),
            "--out", str(tmp_path / "m"), *extra]
    result = runner.invoke(app, args)
    assert result.exit_code == 1 and message in " ".join(result.output.split())
    assert not (tmp_path / "m.json").exists()
