"""Axial inpainting live: an MDA whose z plan skips planes writes the acquired planes to
``raw`` and every plane to ``restored`` (its z at the restored spacing), a stack at a time,
with the ledger tracking stacks; ``resume`` and ``restore`` do the same after the run."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import torch
import useq
import yaozarrs

from live_restore.acquisition.ledger import FrameStatus
from live_restore.acquisition.run import resume, run_acquisition
from live_restore.acquisition.store import AcquisitionStore
from live_restore.models.axial import AxialNet, AxialRestorer, interpolate_planes
from live_restore.models.classical import ClassicalRestorer
from live_restore.models.configs import AxialConfig
from live_restore.models.restorer import get_restorer, list_models

TINY = {"channels": 4, "channel_mults": (1, 2)}


def _axial() -> AxialRestorer:
    """Untrained: its U-Net's output layer starts at zero, so it is exactly linear
    interpolation between acquired planes (and returns an acquired plane as it went in)."""
    torch.manual_seed(0)
    return AxialRestorer(AxialNet(AxialConfig.for_task("axial", **TINY)), device="cpu")


def _stack_sequence(planes: int, step: float = 0.4, time_points: int = 1,
                    channels: tuple[str, ...] = ()) -> useq.MDASequence:
    return useq.MDASequence(
        z_plan={"range": step * (planes - 1), "step": step},
        time_plan={"interval": 0, "loops": time_points},
        channels=[{"group": "Channel", "config": c} for c in channels],
        axis_order="tpcz",
    )


def _z_scale(store: Path, series: str) -> float:
    attrs = json.loads((store / series / "zarr.json").read_text())["attributes"]
    multiscale = attrs["ome"]["multiscales"][0]
    names = [a["name"] for a in multiscale["axes"]]
    return multiscale["datasets"][0]["coordinateTransformations"][0]["scale"][names.index("z")]


@pytest.mark.parametrize("planes", [3, 4])  # an odd and an even number of acquired planes
def test_a_z_plan_acquired_every_second_plane_is_restored_at_every_plane(
        democore, tmp_path, planes):
    store_path = tmp_path / "z.zarr"
    report = run_acquisition(democore, _stack_sequence(planes, time_points=2), store_path,
                             _axial(), fill_planes=2)
    assert report.raw_frames_written == 2 * planes and report.restored == 2 * planes
    assert report.pending == 0 and report.failed == 0
    yaozarrs.validate_zarr_store(str(store_path))
    fine = 2 * planes - 1
    assert _z_scale(store_path, "raw") == pytest.approx(0.4)
    assert _z_scale(store_path, "restored") == pytest.approx(0.2)
    xml = ET.fromstring((store_path / "OME" / "METADATA.ome.xml").read_text())
    size_z = {image.get("Name"): int(image[0].get("SizeZ")) for image in xml}
    assert size_z == {"raw": planes, "restored": fine}
    with AcquisitionStore.open(store_path, mode="r") as store:
        assert store.fill_planes == 2
        assert store.stack_counts() == {"acquired": 2, "restored": 2, "pending": 0, "failed": 0}
        root = json.loads((store_path / "zarr.json").read_text())["attributes"]
        assert root["live_restore"]["ledger"]["stacks"] == store.stack_counts()
        for t in range(2):
            raw = np.stack([store.read_raw({"t": t, "z": z}) for z in range(planes)])
            restored = store.read_restored_stack({"t": t})
            assert restored.shape == (fine, *raw.shape[1:]) and restored.dtype == np.float32
            linear = interpolate_planes(raw, np.arange(planes) * 2, fine)
            np.testing.assert_allclose(restored, linear, rtol=1e-4, atol=1e-2)
            # raw plane z is restored plane 2z; the planes between are filled, not NaN
            np.testing.assert_allclose(store.read_restored({"t": t, "z": 1}), restored[2])
            assert np.isfinite(restored).all()
            assert {store.frame_record({"t": t, "z": z})["model"] for z in range(planes)} == {
                f"axial@{_axial().version}"}
        journal = (store_path / "ledger" / "journal.jsonl").read_text().splitlines()
        stack_lines = [json.loads(line) for line in journal if '"z":' in line]
        assert len(stack_lines) == 2 and stack_lines[0]["z"] == list(range(planes))


def test_a_z_plan_that_does_not_skip_planes_is_denoised_plane_by_plane(democore, tmp_path):
    store_path = tmp_path / "z1.zarr"
    report = run_acquisition(democore, _stack_sequence(3), store_path, _axial())
    assert report.restored == 3
    with AcquisitionStore.open(store_path, mode="r") as store:
        assert store.fill_planes == 1
        restored = store.read_restored_stack({})
        raw = np.stack([store.read_raw({"z": z}) for z in range(3)]).astype(np.float32)
        assert restored.shape == raw.shape  # no plane added
        np.testing.assert_allclose(restored, raw, rtol=1e-4, atol=1e-2)  # untrained: as in
    assert _z_scale(store_path, "restored") == pytest.approx(0.4)


def test_a_stack_model_and_a_frame_model_are_paired_with_z_plans_before_any_light(
        democore, tmp_path):
    seq = useq.MDASequence(time_plan={"interval": 0, "loops": 2})
    with pytest.raises(ValueError, match="restores z-stacks: the sequence needs a z plan"):
        run_acquisition(democore, seq, tmp_path / "a.zarr", _axial())
    with pytest.raises(ValueError, match="restores frames"):
        run_acquisition(democore, _stack_sequence(3), tmp_path / "b.zarr", ClassicalRestorer(),
                        fill_planes=2)
    with pytest.raises(ValueError, match="needs a z-stack"):
        AcquisitionStore.create(tmp_path / "c.zarr", sizes={"t": 2}, frame_shape=(8, 8),
                                dtype="uint16", fill_planes=2)
    assert not any((tmp_path / name).exists() for name in ("a.zarr", "b.zarr", "c.zarr"))


def test_channels_stacks_and_a_raw_only_channel_share_one_run(democore, tmp_path):
    """Two channels, z inside each channel: each channel's stack goes as soon as it is in;
    a channel left raw is skipped and its planes stay empty in ``restored``."""
    store_path = tmp_path / "c.zarr"
    seq = _stack_sequence(3, channels=("DAPI", "FITC"))
    restorers = {"DAPI": _axial(), "FITC": None}
    run_acquisition(democore, seq, store_path, restorers, fill_planes=2)
    with AcquisitionStore.open(store_path, mode="r") as store:
        assert store.read_restored_stack({"c": 0}).shape[0] == 5
        assert np.isfinite(store.read_restored_stack({"c": 0})).all()
        assert np.isnan(store.read_restored_stack({"c": 1})).all()
        assert store.status({"c": 1, "z": 2}) == FrameStatus.SKIPPED
        assert store.stack_counts()["restored"] == 1


def test_stacks_left_for_resume_and_an_unfinished_stack(democore, tmp_path):
    """``--defer`` leaves whole stacks for ``resume``; a stack cut short (a cancelled run)
    is restored over the planes it has, the rest of it left empty."""
    store_path = tmp_path / "d.zarr"
    report = run_acquisition(democore, _stack_sequence(3, time_points=2), store_path,
                             _axial(), fill_planes=2, drain=False)
    assert report.raw_frames_written == 6
    assert resume(store_path, _axial()) == report.pending
    with AcquisitionStore.open(store_path, mode="r") as store:
        assert store.stack_counts()["restored"] == 2 and store.pending() == []
    # a store whose second stack has two of its three planes: filled up to its last plane
    with AcquisitionStore.create(tmp_path / "e.zarr", sizes={"t": 2, "z": 3},
                                 frame_shape=(16, 16), dtype="uint16", fill_planes=2) as store:
        rng = np.random.default_rng(0)
        for t, planes in ((0, 3), (1, 2)):
            for z in range(planes):
                store.write_raw({"t": t, "z": z}, rng.integers(90, 110, (16, 16), np.uint16))
    assert resume(tmp_path / "e.zarr", _axial()) == 5
    with AcquisitionStore.open(tmp_path / "e.zarr", mode="r") as store:
        cut = store.read_restored_stack({"t": 1})
        assert np.isfinite(cut[:3]).all() and np.isnan(cut[3:]).all()
        assert store.status({"t": 1, "z": 2}) == FrameStatus.EMPTY


def test_the_simulated_microscope_z_stage_drives_a_sparse_stack(tmp_path):
    """A real MDA on the simulated confocal/STED config: the Z stage moves the focus, so the
    acquired planes differ, and each stack is filled at the finer spacing."""
    from live_restore.acquisition.core import managed_core
    from live_restore.experiments.demo import default_config

    store_path = tmp_path / "sim.zarr"
    with managed_core(default_config()) as core:
        core.setConfig("Dose", "Low")
        core.setROI(224, 224, 48, 48)
        seq = useq.MDASequence(z_plan={"range": 1.6, "step": 0.8},
                               channels=[{"group": "Modality", "config": "Confocal"}])
        run_acquisition(core, seq, store_path, _axial(), fill_planes=4)
    with AcquisitionStore.open(store_path, mode="r") as store:
        raw = np.stack([store.read_raw({"z": z}) for z in range(3)]).astype(np.float32)
        z_um = [store.frame_metadata({"z": z})["z_um"] for z in range(3)]
        restored = store.read_restored_stack({})
    assert np.allclose(np.diff(z_um), 0.8)
    assert np.corrcoef(raw[0].ravel(), raw[2].ravel())[0, 1] < 0.9  # another focal plane
    assert restored.shape == (9, 48, 48)
    assert _z_scale(store_path, "restored") == pytest.approx(0.2)


def test_the_axial_model_file_round_trips_and_is_kept_away_from_frames(tmp_path):
    model = _axial()
    path = model.save(tmp_path / "tiny_axial")
    loaded = get_restorer(str(path))
    assert isinstance(loaded, AxialRestorer) and loaded.version == model.version
    stack = np.random.default_rng(1).poisson(50, (3, 24, 24)).astype(np.float32)
    np.testing.assert_array_equal(loaded.fill(stack, 2), model.fill(stack, 2))
    with pytest.raises(ValueError, match=r"restores z-stacks \(B, Z, Y, X\)"):
        loaded.filling(2).restore(stack)  # a batch of frames, not of stacks
    with pytest.raises(ValueError, match="restores z-stacks, not frames"):
        loaded.restore(stack)
    rows = {row["name"]: row["restores"] for row in list_models()}
    assert rows["classical"] == "frames"
    assert all(kind in ("frames", "stacks") for kind in rows.values())


def test_a_stack_model_is_refused_by_frame_paths_before_any_work(tmp_path):
    """Blockwise (Dask) restoration and the dose sweep take frames: a z-stack model is named
    and refused before anything is read or exposed."""
    pytest.importorskip("dask.distributed")
    from live_restore.distributed.blockwise import restore_store

    path = _axial().save(tmp_path / "tiny_axial")
    with AcquisitionStore.create(tmp_path / "s.zarr", sizes={"z": 3}, frame_shape=(8, 8),
                                 dtype="uint16") as store:
        store.write_raw({"z": 0}, np.ones((8, 8), np.uint16))
    with pytest.raises(ValueError, match="restores z-stacks, a stack at a time"):
        restore_store(tmp_path / "s.zarr", str(path), client=None)
    with AcquisitionStore.open(tmp_path / "s.zarr", mode="r") as store:
        assert store.status({"z": 0}) == FrameStatus.RAW
