"""The reduced-dose sweep on the simulated microscope: tiny ROIs, few frames, classical restorer."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import useq
from pymmcore_plus.experimental.unicore import UniMMCore

from live_restore.acquisition.core import managed_core
from live_restore.acquisition.store import AcquisitionStore
from live_restore.experiments.demo import default_config
from live_restore.experiments.dose import (
    DoseSweepReport,
    Target,
    dose_control,
    parse_doses,
    parse_target,
    plot_strip,
    plot_sweep,
    recommend,
    run_dose_sweep,
)

DOSES = (5.0, 20.0, 100.0)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> DoseSweepReport:
    out = tmp_path_factory.mktemp("dose") / "sweep"
    return run_dose_sweep(out, doses="100,5,20", frames_per_dose=2, fields_per_dose=2, roi=64,
                          modality="STED", model="classical", bleach_frames=50)


@pytest.fixture
def simcore() -> Iterator[UniMMCore]:
    with managed_core(default_config()) as core:
        yield core


PARSE_DOSES = {
    "sorted unique": ("20, 1,5,20", (1.0, 5.0, 20.0)),
    "fractions": ("0.5,2", (0.5, 2.0)),
}
BAD_DOSES = {"zero": ("1,0,5", "'0'"), "negative": ("-2", "'-2'"),
             "not a number": ("1,lots", "'lots'"), "empty item": ("1,,5", "''")}


@pytest.mark.parametrize(("text", "expected"), PARSE_DOSES.values(), ids=PARSE_DOSES.keys())
def test_parse_doses(text: str, expected: tuple[float, ...]) -> None:
    assert parse_doses(text) == expected


@pytest.mark.parametrize(("text", "quoted"), BAD_DOSES.values(), ids=BAD_DOSES.keys())
def test_bad_doses_are_refused_quoting_the_value(text: str, quoted: str) -> None:
    with pytest.raises(ValueError, match=f"--doses.*{quoted}"):
        parse_doses(text)


def test_sweep_refuses_non_positive_dose_before_acquiring(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'0'"):
        run_dose_sweep(tmp_path / "s", doses="0,5")
    assert not (tmp_path / "s").exists()


TARGETS = {
    "ssim": ("ssim>=0.90", Target("ssim", ">=", 0.9)),
    "psnr spaced, upper case": ("PSNR >= 30", Target("psnr", ">=", 30.0)),
    "resolution": ("frc_um<=0.08", Target("frc_um", "<=", 0.08)),
}
BAD_TARGETS = {"no operator": "ssim 0.9", "unknown metric": "sharpness>=2",
               "wrong direction": "ssim<=0.9"}


@pytest.mark.parametrize(("text", "expected"), TARGETS.values(), ids=TARGETS.keys())
def test_parse_target(text: str, expected: Target) -> None:
    assert parse_target(text) == expected


@pytest.mark.parametrize("text", BAD_TARGETS.values(), ids=BAD_TARGETS.keys())
def test_bad_target_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="--target"):
        parse_target(text)


def test_recommendation_needs_every_higher_dose_to_pass() -> None:
    target = Target("ssim", ">=", 0.8)
    # dose 1 passes by luck of its field, dose 2 fails: 1 must not be recommended
    assert recommend([1, 2, 5, 10], [0.85, 0.7, 0.82, 0.9], target)[0] == 5
    dose, note = recommend([1, 2], [0.1, 0.2], target)
    assert dose is None and "no dose meets" in note


def test_unknown_dose_property_is_a_clear_error(simcore: UniMMCore) -> None:
    with pytest.raises(ValueError, match="unknown dose property or config group 'SimCam-Nope'"):
        dose_control(simcore, "SimCam-Nope")


def test_unknown_dose_property_fails_before_any_store(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'Laser-Power'"):
        run_dose_sweep(tmp_path / "s", doses="5,20", roi=32, dose_property="Laser-Power")
    assert not list(tmp_path.rglob("*.ome.zarr"))


def test_config_without_dose_control_is_refused(democore: UniMMCore) -> None:
    with pytest.raises(ValueError, match="no dose control"):
        dose_control(democore)


def test_dose_outside_property_limits_is_refused(simcore: UniMMCore) -> None:
    with pytest.raises(ValueError, match="150 outside the limits"):
        dose_control(simcore).check(simcore, [5, 150])


def test_dose_group_maps_doses_to_presets(simcore: UniMMCore) -> None:
    control = dose_control(simcore, "Dose")
    assert dict(control.presets) == {5.0: "Low", 20.0: "Medium", 80.0: "High"}
    channel = control.setup_event(20).channel
    assert channel is not None and (channel.group, channel.config) == ("Dose", "Medium")
    with pytest.raises(ValueError, match="dose 7 is not a preset of group 'Dose'"):
        control.setup_event(7)


def test_sweep_doses_change_the_photon_counts(sweep: DoseSweepReport) -> None:
    """The same (strip) field at each dose: the signal above the offset scales with dose."""
    arm = sweep.primary
    assert arm.doses == list(DOSES)
    signal = []
    for dose in DOSES:
        with AcquisitionStore.open(arm.stores[f"{dose:g}"], mode="r") as store:
            truths = [json.loads(store.frame_metadata({"t": t, "p": p})["sim_truth"])
                      for t in range(2) for p in range(3)]
            assert {t["laser_power"] for t in truths} == {dose}
            offset = truths[0]["detector"]["offset"]
            signal.append(float(store.read_raw({"t": 0, "p": 2}).mean()) - offset)
    per_dose = np.array(signal) / np.array(DOSES)
    assert per_dose.min() > 0
    assert per_dose.max() / per_dose.min() < 1.5  # 20× dose range, bleaching aside
    assert arm.raw["mean_adu"][0] < arm.raw["mean_adu"][-1]


def test_every_dose_gets_its_own_fresh_fields(sweep: DoseSweepReport) -> None:
    arm = sweep.primary
    seen = []
    for dose in DOSES:
        with AcquisitionStore.open(arm.stores[f"{dose:g}"], mode="r") as store:
            assert store.sizes["p"] == 3  # two test fields and the strip field
            seen += [tuple(json.loads(store.frame_metadata({"t": 0, "p": p})["sim_truth"])
                           ["stage_um"]) for p in range(2)]
    assert len(set(seen)) == 2 * len(DOSES)  # no field is used twice
    with AcquisitionStore.open(arm.reference_store, mode="r") as ref:
        assert ref.sizes["p"] == 2 * len(DOSES)  # a reference frame on every test field
    assert len(arm.reference["ssim"]) == len(DOSES)  # reported as the mean per dose
    assert arm.target.value == pytest.approx(np.mean(arm.reference["ssim"]))
    assert all(v is not None for v in arm.raw["frc_um"])  # two frames on each field


def test_recommended_dose_meets_its_target(sweep: DoseSweepReport) -> None:
    report = sweep.to_dict()
    target = report["target"]
    assert target["metric"] == "ssim" and target["op"] == ">="
    assert "reference-dose frames on the fields" in target["source"]
    rec = report["recommended_dose"]
    assert rec is not None, report["note"]
    i = report["doses"].index(rec)
    assert all(v >= target["value"] for v in report["restored"]["ssim"][i:])
    assert report["dose_reduction_factor"] == pytest.approx(report["reference_dose"] / rec)
    bleach = report["bleaching"]
    assert bleach["frames"] == 50
    assert bleach["recommended"]["signal_left"] >= bleach["reference"]["signal_left"]


def test_report_json_sequence_and_figures(sweep: DoseSweepReport, tmp_path: Path) -> None:
    report = json.loads(sweep.to_json(tmp_path / "sweep.json"))
    for key in ("doses", "raw", "restored", "recommended_dose", "reference_dose",
                "dose_reduction_factor", "target", "per_modality"):
        assert key in report
    assert set(report["raw"]) >= {"psnr", "ssim", "frc_um", "ssim_vs_reference"}
    assert report["restored"]["consistency"] == [None] * len(DOSES)  # classical has none
    assert report["model"] == "classical" and list(report["per_modality"]) == ["STED"]
    seq = useq.MDASequence.from_file(report["sequence"])
    assert seq.setup is not None
    assert seq.setup.properties == [("SimCam", "LaserPower", report["recommended_dose"])]
    assert seq.channels[0].config == "STED"
    for png in (plot_sweep(sweep, tmp_path / "s.png"), plot_strip(sweep, tmp_path / "t.png")):
        assert png.stat().st_size > 1000


def test_sweep_through_a_dose_group_one_frame_per_dose(tmp_path: Path) -> None:
    report = run_dose_sweep(tmp_path / "g", doses="5,20", reference_dose=80, frames_per_dose=1,
                            fields_per_dose=1, roi=48, modality="Confocal", model="classical",
                            dose_property="Dose", target="ssim>=0.0")
    arm = report.primary
    assert report.dose_control == "Dose" and arm.doses == [5.0, 20.0, 80.0]
    assert arm.raw["frc_um"] == [None, None, None]  # FRC needs two frames of a field
    assert arm.recommended_dose == 5.0 and arm.target.source == "user"
    with AcquisitionStore.open(arm.stores["20"], mode="r") as store:
        assert json.loads(store.frame_metadata({"p": 0})["sim_truth"])["laser_power"] == 20.0
