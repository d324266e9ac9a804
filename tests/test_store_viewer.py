"""A store opens right in viewers: display windows from the data, axes with units, the
restoring model in the image groups, a pixel size or a clear warning, and the image groups
that ome-zarr-py (napari's OME-Zarr reader) opens."""

from __future__ import annotations

import json
import logging
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import useq
import yaozarrs

from live_restore.acquisition.core import core_pixel_size_um
from live_restore.acquisition.display import frame_range, image_paths
from live_restore.acquisition.layout import axis_steps
from live_restore.acquisition.store import AcquisitionStore

SHAPE = (24, 32)
GAIN = 3.7  # restored frames are in camera units, not 0-1
RANGES = {0: (7, 180), 1: (100, 1000)}  # per channel


def _raw(t: int, c: int) -> np.ndarray:
    """A frame spanning exactly the channel's range (both ends present)."""
    lo, hi = RANGES[c]
    frame = np.random.default_rng(10 * t + c).integers(lo, hi + 1, SHAPE).astype(np.uint16)
    frame.flat[:2] = lo, hi
    return frame


def _attrs(path: Path, name: str) -> dict[str, Any]:
    return json.loads((path / name / "zarr.json").read_text())["attributes"]


def _windows(path: Path, name: str) -> list[dict[str, float]]:
    return [ch["window"] for ch in _attrs(path, name)["ome"]["omero"]["channels"]]


def _axes(path: Path, name: str) -> dict[str, tuple[str | None, float]]:
    """``axis -> (unit, scale)`` of an image group."""
    multiscale = _attrs(path, name)["ome"]["multiscales"][0]
    scale = multiscale["datasets"][0]["coordinateTransformations"][0]["scale"]
    return {a["name"]: (a.get("unit"), s) for a, s in zip(multiscale["axes"], scale, strict=True)}


@pytest.fixture
def written(tmp_path: Path) -> Path:
    """A closed two-channel store whose raw frames span 7-180 and 100-1000 counts."""
    path = tmp_path / "acq.zarr"
    with AcquisitionStore.create(
        path, sizes={"t": 3, "c": 2}, frame_shape=SHAPE, dtype="uint16",
        channel_names=["Confocal", "STED"], pixel_size_um=0.025, uncertainty=True,
    ) as store:
        for t in range(3):
            for c in range(2):
                raw = _raw(t, c)
                store.write_raw({"t": t, "c": c}, raw)
                store.write_restored({"t": t, "c": c}, raw * GAIN, np.sqrt(raw) * 1.0)
    return path


def test_windows_cover_the_data_not_the_dtype(written: Path) -> None:
    for c, (lo, hi) in RANGES.items():
        raw = _windows(written, "raw")[c]
        assert (raw["start"], raw["end"]) == (lo, hi)  # not 0-65535: raw was black
        assert (raw["min"], raw["max"]) == (0, 65535)  # the integer dtype's range
        restored = _windows(written, "restored")[c]
        assert restored["start"] == pytest.approx(lo * GAIN, rel=1e-6)  # not 0-1: was white
        assert restored["end"] == pytest.approx(hi * GAIN, rel=1e-6)
        assert restored["min"] <= restored["start"] < restored["end"] <= restored["max"]
        uncertainty = _windows(written, "uncertainty")[c]
        assert uncertainty["end"] == pytest.approx(np.sqrt(hi), rel=1e-6)
    yaozarrs.validate_zarr_store(str(written))


def test_windows_are_written_with_the_first_frames(tmp_path: Path) -> None:
    """A viewer opening the store during the acquisition already gets data windows."""
    with AcquisitionStore.create(
        tmp_path / "acq.zarr", sizes={"t": 5}, frame_shape=SHAPE, dtype="uint16"
    ) as store:
        store.write_raw({"t": 0}, _raw(0, 0))
        store.flush()
        window = _windows(store.path, "raw")[0]  # one channel even without a c axis
        assert (window["start"], window["end"]) == RANGES[0]


def test_window_ignores_hot_pixels_and_nan() -> None:
    frame = _raw(0, 0).astype(np.float32)
    frame[3, 4] = 60000.0  # one hot pixel: above the 99.9th percentile
    frame[5, :] = np.nan  # a restored frame may hold NaN
    start, end, low, high = frame_range(frame)
    assert (start, end) == (7, 180)
    assert (low, high) == (7, 60000)
    assert frame_range(np.full(SHAPE, np.nan, np.float32)) is None


def test_windows_survive_resume(written: Path) -> None:
    """Reopening a store starts from its windows: a narrower frame does not shrink them."""
    with AcquisitionStore.open(written) as store:
        store.write_restored({"t": 0, "c": 0}, np.full(SHAPE, 50.0, np.float32))
    restored = _windows(written, "restored")[0]
    assert (restored["start"], restored["end"]) == pytest.approx((7 * GAIN, 180 * GAIN))


def test_time_axis_in_seconds_and_z_in_micrometres(tmp_path: Path) -> None:
    seq = useq.MDASequence(time_plan={"interval": 2.5, "loops": 2},
                           z_plan={"range": 1.0, "step": 0.5})
    with AcquisitionStore.from_sequence(
        tmp_path / "acq.zarr", seq, frame_shape=SHAPE, dtype="uint16", pixel_size_um=0.1
    ) as store:
        axes = _axes(store.path, "restored")
    assert axes["t"] == ("second", 2.5)
    assert axes["z"] == ("micrometer", 0.5)
    assert axes["x"] == ("micrometer", 0.1)


def test_time_scale_measured_when_the_plan_has_none(tmp_path: Path) -> None:
    """``interval: 0`` (as fast as possible) gets the interval the frames' times show."""
    seq = useq.MDASequence(time_plan={"interval": 0, "loops": 4})
    with AcquisitionStore.from_sequence(
        tmp_path / "acq.zarr", seq, frame_shape=SHAPE, dtype="uint16"
    ) as store:
        assert _axes(store.path, "raw")["t"] == (None, 1.0)  # unknown: no made-up unit
        for t in (0, 1, 3):  # t=2 missing: its gap counts as two intervals
            store.write_raw({"t": t}, _raw(t, 0), {"time_ms": 1000.0 + 125.0 * t})
    assert _axes(store.path, "raw")["t"] == ("second", 0.125)
    assert _axes(store.path, "restored")["t"] == ("second", 0.125)
    yaozarrs.validate_zarr_store(str(store.path))


def test_axis_steps_from_a_sequence() -> None:
    def steps(**plans: Any) -> dict[str, float]:
        return axis_steps(json.loads(useq.MDASequence(**plans).model_dump_json()))

    assert steps(time_plan={"duration": 10, "loops": 5}) == {"t": 2.5}
    assert steps(time_plan={"interval": 0, "loops": 5}) == {}
    assert steps(time_plan={"phases": [{"interval": 1, "loops": 2},
                                       {"interval": 3, "loops": 2}]}) == {}
    assert steps(z_plan={"absolute": [0.0, 0.3, 0.6]}) == {"z": pytest.approx(0.3)}
    assert steps(z_plan={"absolute": [0.0, 0.3, 1.0]}) == {}
    assert axis_steps(None) == {}


def test_restored_images_name_their_model(written: Path) -> None:
    with AcquisitionStore.open(written) as store:
        store.set_model_info("denoise", "abc123", steps=4)
    for name in ("restored", "uncertainty"):
        model = _attrs(written, name)["live_restore"]["model"]
        assert (model["name"], model["checksum"], model["steps"]) == ("denoise", "abc123", 4)
    assert "live_restore" not in _attrs(written, "raw")
    yaozarrs.validate_zarr_store(str(written))


class _Core:
    def __init__(self, pixel_size: float) -> None:
        self.pixel_size = pixel_size

    def getPixelSizeUm(self) -> float:
        return self.pixel_size


def test_pixel_size_from_the_core_or_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert core_pixel_size_um(_Core(0.025)) == 0.025  # type: ignore[arg-type]
    assert not caplog.records
    with caplog.at_level(logging.WARNING):
        assert core_pixel_size_um(_Core(0.0)) is None  # type: ignore[arg-type]
    [record] = caplog.records
    assert "no pixel size" in record.getMessage() and "\n" not in record.getMessage()
    with AcquisitionStore.create(
        tmp_path / "acq.zarr", sizes={"t": 1}, frame_shape=SHAPE, dtype="uint16",
        pixel_size_um=0.0,
    ) as store:
        root = json.loads((store.path / "zarr.json").read_text())["attributes"]
        assert root["live_restore"]["pixel_size_um"] is None
        assert _axes(store.path, "raw")["x"] == (None, 1.0)


def test_image_paths_open_in_ome_zarr_py(written: Path) -> None:
    """ome-zarr-py (napari's OME-Zarr reader) does not follow bioformats2raw.layout from the
    root; the image groups open as images, with contrast limits that cover the data."""
    reader = pytest.importorskip("ome_zarr.reader", reason="ome-zarr-py is not installed")
    from ome_zarr.io import parse_url

    paths = image_paths(written)
    assert [p.name for p in paths] == ["raw", "restored", "uncertainty"]
    nodes = {p.name: next(iter(reader.Reader(parse_url(str(p)))())) for p in paths}
    assert nodes["raw"].data[0].shape == (3, 2, *SHAPE)
    assert nodes["raw"].metadata["contrast_limits"] == [list(r) for r in RANGES.values()]
    limits = nodes["restored"].metadata["contrast_limits"]
    np.testing.assert_allclose(limits, [[lo * GAIN, hi * GAIN] for lo, hi in RANGES.values()],
                               rtol=1e-6)
    assert nodes["restored"].metadata["channel_names"] == ["Confocal", "STED"]


def test_root_names_its_images_for_napari(tmp_path: Path) -> None:
    """napari-ome-zarr opens a bioformats2raw root through the Image IDs of
    OME/METADATA.ome.xml (``Image:NAME`` -> group NAME); each image names its layers."""
    path = tmp_path / "acq.zarr"
    with AcquisitionStore.create(
        path, sizes={"t": 2, "p": 2, "c": 2}, frame_shape=SHAPE, dtype="uint16",
        channel_names=["Confocal", "STED"], pixel_size_um=0.025,
    ):
        pass
    ns = {"ome": "http://www.openmicroscopy.org/Schemas/OME/2016-06"}
    images = ET.parse(path / "OME" / "METADATA.ome.xml").getroot().findall("ome:Image", ns)
    ids = [image.get("ID") for image in images]
    assert ids == [f"Image:{p.name}" for p in image_paths(path)]
    assert ids == ["Image:raw_p0", "Image:raw_p1", "Image:restored_p0", "Image:restored_p1"]
    pixels = images[2].find("ome:Pixels", ns)
    assert (pixels.get("Type"), pixels.get("SizeC"), pixels.get("SizeT")) == ("float", "2", "2")
    assert [ch.get("Name") for ch in pixels.findall("ome:Channel", ns)] == ["Confocal", "STED"]
    assert pixels.find("ome:MetadataOnly", ns) is not None
    for p in image_paths(path):
        assert _attrs(path, p.name)["ome"]["multiscales"][0]["name"] == p.name
    yaozarrs.validate_zarr_store(str(path))


def test_ome_xml_is_valid_ome(written: Path) -> None:
    ome_types = pytest.importorskip("ome_types", reason="ome-types is not installed")
    ome = ome_types.from_xml((written / "OME" / "METADATA.ome.xml").read_text())
    assert [image.pixels.type.value for image in ome.images] == ["uint16", "float", "float"]
    assert ome.images[0].pixels.physical_size_x == 0.025
