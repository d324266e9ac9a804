"""The simulated confocal/STED microscope inside UniMMCore, driven by the real MDA engine."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pymmcore_plus import CMMCorePlus
from pymmcore_plus.experimental.unicore import UniMMCore
from useq import MDASequence

from live_restore.sim import frame_truth, ground_truth

CFG = Path(__file__).parents[1] / "hardware_configs" / "sim_confocal_sted.cfg"


def shutdown_core(core: CMMCorePlus) -> None:
    if core.mda.is_running():
        core.mda.cancel()
    super(CMMCorePlus, core).registerCallback(None)
    core.unloadAllDevices()


@pytest.fixture
def core():
    c = UniMMCore()
    c.loadSystemConfiguration(str(CFG))
    yield c
    shutdown_core(c)


def _sharpness(img: np.ndarray) -> float:
    """Mean squared gradient relative to mean squared signal: higher = finer detail."""
    f = img.astype(np.float64) - np.median(img)
    return float(np.mean(np.diff(f, axis=1) ** 2) / np.mean(f**2))


def test_config_loads_with_groups_and_pixel_size(core: UniMMCore) -> None:
    assert core.getPixelSizeUm() == pytest.approx(0.025)
    assert core.getChannelGroup() == "Modality"
    assert set(core.getAvailableConfigs("Dose")) == {"Low", "Medium", "High"}
    assert core.getProperty("SimCam", "BitDepth") == 12
    core.setConfig("Modality", "STED")
    assert core.getCurrentConfig("Modality") == "STED"
    with pytest.raises(Exception, match=r"BitDepth|read"):
        core.setProperty("SimCam", "BitDepth", 8)


def test_mda_two_channels_five_timepoints(core: UniMMCore) -> None:
    core.setConfig("Dose", "High")
    core.setROI(0, 0, 256, 256)
    frames: list = []
    core.mda.events.frameReady.connect(lambda img, ev, meta: frames.append((img, ev, meta)))
    seq = MDASequence(
        channels=[
            {"group": "Modality", "config": "Confocal"},
            {"group": "Modality", "config": "STED"},
        ],
        time_plan={"interval": 0, "loops": 5},
    )
    core.mda.run(seq)
    assert len(frames) == 10
    assert all(f[0].shape == (256, 256) and f[0].dtype == np.uint16 for f in frames)
    truths = [json.loads(frame_truth(img, meta)) for img, _, meta in frames]
    mods = [t["modality"] for t in truths]
    assert mods.count("Confocal") == 5 and mods.count("STED") == 5
    for (img, ev, _), t in zip(frames, truths, strict=True):
        assert t["modality"] == ("Confocal" if ev.index["c"] == 0 else "STED")
        assert t["shape"] == [256, 256]
        expected = ground_truth(t)
        assert abs(float(img.mean()) - float(expected.mean())) < 0.02 * float(expected.mean())
    conf = np.mean([_sharpness(ground_truth(t)) for t in truths if t["modality"] == "Confocal"])
    sted = np.mean([_sharpness(ground_truth(t)) for t in truths if t["modality"] == "STED"])
    assert sted > 3 * conf
    # the raw frames themselves: STED high-dose frames show finer detail than confocal
    raw_c = np.mean(
        [
            _sharpness(f[0])
            for f, t in zip(frames, truths, strict=True)
            if t["modality"] == "Confocal"
        ]
    )
    raw_s = np.mean(
        [_sharpness(f[0]) for f, t in zip(frames, truths, strict=True) if t["modality"] == "STED"]
    )
    assert raw_s > raw_c


def test_sequenced_mda_carries_truth_in_camera_metadata(core: UniMMCore) -> None:
    metas: list = []
    core.mda.events.frameReady.connect(lambda img, ev, meta: metas.append((img, meta)))
    core.mda.run(MDASequence(time_plan={"interval": 0, "loops": 4}))
    assert len(metas) == 4
    for img, meta in metas:
        truth = meta["camera_metadata"]["sim_truth"]
        expected = ground_truth(truth)
        assert expected.shape == img.shape
        # the frame is noise around its recorded expectation
        assert abs(float(img.mean()) - float(expected.mean())) < 0.02 * float(expected.mean())


def test_roi_one_pixel_and_zero_size(core: UniMMCore) -> None:
    core.setROI(100, 200, 1, 1)
    core.snapImage()
    assert core.getImage().shape == (1, 1)
    core.clearROI()
    with pytest.raises(Exception, match="0"):
        core.setROI(0, 0, 0, 10)


def test_stage_moves_change_field(core: UniMMCore) -> None:
    core.setROI(0, 0, 64, 64)
    core.snapImage()
    a = core.getImage()
    core.setXYPosition(20.0, -15.0)
    core.snapImage()
    b = core.getImage()
    truth = json.loads(frame_truth(b))
    assert truth["stage_um"][:2] == [20.0, -15.0]
    assert not np.array_equal(a, b)
