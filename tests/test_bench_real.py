"""``bench real``: field discovery and parts, every row, the floors, skipped peers, the CLI."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
from typer.testing import CliRunner

from live_restore.cli import app
from live_restore.experiments import peers
from live_restore.experiments.bench_real import (
    BASELINE_FORMATS,
    BENCH_REAL_PRESETS,
    BenchRealConfig,
    bench_real,
    load_fields,
)
from live_restore.experiments.real_renderers import real_body
from live_restore.models.restorer import get_restorer, list_models

QUICK = BENCH_REAL_PRESETS["quick"]
#: Shipped restorers for users; the simulator benchmark's baselines are not scored.
SHIPPED = {
    m["name"]
    for m in list_models()
    if m["kind"] == "shipped" and m["restores"] == "frames"
    and json.loads(Path(m["path"]).read_text())["format"] not in BASELINE_FORMATS
}
FLOORS = {"raw", "gaussian", "classical"}


def _write_field(folder: Path, seed: int, frames: int = 3, size: int = 64) -> None:
    """Poisson frames of a smooth blob image (8-bit, offset 2) and their noise-free target."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size].astype(np.float64)
    clean = np.zeros((size, size))
    for cy, cx, r in rng.uniform((8, 8, 3), (size - 8, size - 8, 8), size=(6, 3)):
        clean += np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r**2))
    photons = 2.0 + 30.0 * clean / clean.max()
    folder.mkdir(parents=True)
    noisy = np.clip(rng.poisson(photons, size=(frames, size, size)), 0, 255).astype(np.uint8)
    tifffile.imwrite(folder / "noisy.tif", noisy, photometric="minisblack")
    tifffile.imwrite(folder / "target.tif", np.round(photons).astype(np.uint8))


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """A real-data-like folder: one selection field, one report field, one target-less series."""
    root = tmp_path_factory.mktemp("realdata")
    _write_field(root / "confocal_bpae_nuclei" / "fov02", seed=0)
    _write_field(root / "confocal_bpae_nuclei" / "fov11", seed=1)
    (root / "live_lysosomes").mkdir()
    tifffile.imwrite(root / "live_lysosomes" / "series1.tif", np.ones((4, 32, 32), np.uint16),
                     photometric="minisblack")
    return root


@pytest.fixture(scope="module")
def adapt_calls() -> list[tuple[str, tuple[int, ...]]]:
    return []


@pytest.fixture(scope="module")
def result(data, adapt_calls, tmp_path_factory) -> dict:
    def adapt(base, stacks):
        adapt_calls.append((base.name, [stack.shape for stack in stacks]))
        return get_restorer("classical")

    missing = tmp_path_factory.mktemp("nopeers") / "bin" / "python"
    return bench_real(data, QUICK, adapt=adapt, peers_python=missing, command="test")


def test_fields_and_parts_follow_the_default_split(result):
    d = result["data"]
    assert d["selection"] == ["confocal_bpae_nuclei/fov02"]
    assert d["report"] == ["confocal_bpae_nuclei/fov11"]
    assert d["adaptation_only"] == ["live_lysosomes/series1.tif"]
    assert d["split"].startswith("default") and d["frames"]["confocal_bpae_nuclei/fov11"] == [
        3, 64, 64
    ]
    assert result["command"] == "test" and result["machine"]["threads"] == 1
    assert result["budgets"]["n2v_cpu_minutes_per_network"] == QUICK.n2v_cpu_minutes
    assert result["budgets"]["training_unit"] == "part"
    assert result["software"]["live_restore"] and result["software"]["n2v2_peer"] is None


def test_every_row_is_scored_per_field_and_per_part(result):
    rows = result["rows"]
    averaged = {f"{name}_avg{QUICK.zero_shot_draws}" for name in SHIPPED}  # all sample
    assert set(rows) == FLOORS | SHIPPED | averaged | {
        "adapted", "adapted_avg4", "n2v2", "gaussian_4x_light", "supervised"}
    assert SHIPPED >= {"denoise", "sted_denoise", "confocal2sted"}
    assert rows["denoise_avg8"]["draws"] == 8
    assert rows["denoise_avg8"]["version"] == rows["denoise"]["version"]
    for name in FLOORS | SHIPPED | {"adapted"}:
        fields = rows[name]["fields"]
        assert {f["part"] for f in fields.values()} == {"selection", "report"}, name
        for part in ("selection", "report"):
            mean = rows[name]["mean"][part]
            assert mean["fields"] == 1 and np.isfinite(mean["psnr_affine"]), name
            assert 0 < mean["ssim"] <= 1 and mean["ms_per_frame"] >= 0, name
            assert result["summary"][part][name] == mean


def test_gaussian_beats_raw_and_floors_stand_beside_models(result):
    rows = result["rows"]
    for field in rows["raw"]["fields"]:
        raw, gauss = rows["raw"]["fields"][field], rows["gaussian"]["fields"][field]
        assert gauss["psnr_affine"] > raw["psnr_affine"] + 3.0
        assert gauss["ssim"] > raw["ssim"]
    assert rows["gaussian"]["sigma_px"] == 1.5
    for field in rows["raw"]["fields"]:  # 8-bit PSNR: the same rows, shifted per field
        offsets = [rows[name]["fields"][field]["psnr_affine_bitdepth"]
                   - rows[name]["fields"][field]["psnr_affine"] for name in FLOORS | SHIPPED]
        assert np.ptp(offsets) < 1e-6 and offsets[0] != 0
    for name in SHIPPED | {"adapted"}:
        for part, mean in rows[name]["mean"].items():
            gap = mean["psnr_affine"] - rows["gaussian"]["mean"][part]["psnr_affine"]
            assert mean["psnr_affine_vs_gaussian_db"] == pytest.approx(gap)
            assert "psnr_affine_vs_classical_db" in mean
    assert "psnr_affine_vs_gaussian_db" not in rows["classical"]["mean"]["report"]


def test_adapted_row_trains_once_per_part_on_all_its_noisy_frames(result, adapt_calls):
    assert adapt_calls == [("denoise", [(3, 64, 64)])] * 2
    adapted, classical = result["rows"]["adapted"], result["rows"]["classical"]
    assert adapted["base"] == "denoise"
    for field, row in adapted["fields"].items():
        assert row["adapt_cpu_minutes"] >= 0
        assert row["psnr_affine"] == pytest.approx(classical["fields"][field]["psnr_affine"])
        averaged = result["rows"]["adapted_avg4"]["fields"][field]
        assert averaged["psnr_affine"] == pytest.approx(row["psnr_affine"])  # deterministic


def test_n2v2_is_skipped_cleanly_without_the_peer_environment(result):
    reason = result["rows"]["n2v2"]["skipped"]
    assert "no peer environment" in reason and "make peers" in reason


@pytest.mark.skipif(importlib.util.find_spec("careamics") is not None,
                    reason="CAREamics is installed in this environment")
def test_n2v2_is_skipped_when_the_peer_python_lacks_careamics():
    reason = peers.careamics_unavailable(Path(sys.executable))
    assert reason is not None and "not importable" in reason


def test_peer_python_comes_from_argument_then_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(peers.PEERS_PYTHON_ENV, str(tmp_path / "env-python"))
    assert peers.peers_python() == tmp_path / "env-python"
    assert peers.peers_python(tmp_path / "arg") == tmp_path / "arg"
    monkeypatch.delenv(peers.PEERS_PYTHON_ENV)
    assert peers.peers_python() == peers.DEFAULT_PEERS_PYTHON


def test_given_report_fields_and_bad_folders_are_checked(data, tmp_path):
    config = BenchRealConfig(report_fields=("confocal_bpae_nuclei/fov02",))
    fields, _ = load_fields(data, config)
    assert {f.name: f.part for f in fields} == {
        "confocal_bpae_nuclei/fov02": "report",
        "confocal_bpae_nuclei/fov11": "selection",
    }
    with pytest.raises(ValueError, match="match no field"):
        load_fields(data, BenchRealConfig(report_fields=("nothing*",)))
    with pytest.raises(ValueError, match="no field"):
        load_fields(tmp_path)
    (tmp_path / "f").mkdir()
    tifffile.imwrite(tmp_path / "f" / "noisy.tif", np.zeros((2, 16, 16), np.uint8))
    with pytest.raises(ValueError, match=r"no target\.tif"):
        load_fields(tmp_path)
    tifffile.imwrite(tmp_path / "f" / "target.tif", np.zeros((8, 8), np.uint8))
    with pytest.raises(ValueError, match="must be"):
        load_fields(tmp_path)


def test_cli_writes_the_json_and_rejects_a_bad_adapt_spec(data, tmp_path):
    out = tmp_path / "real.json"
    missing = str(tmp_path / "none" / "python")
    args = ["bench", "real", "--data", str(data), "--json", str(out), "--quick",
            "--peers-python", missing, "--report-field", "confocal_bpae_nuclei/fov02",
            "--adapt", "none"]
    run = CliRunner().invoke(app, args)
    assert run.exit_code == 0, run.output
    written = json.loads(out.read_text())
    assert written["data"]["report"] == ["confocal_bpae_nuclei/fov02"]
    assert written["data"]["split"] == "given"
    assert written["command"].startswith("live-restore")
    assert "--adapt" in written["rows"]["adapted"]["skipped"]
    bad = CliRunner().invoke(app, [*args[:-1], "no_colon"])
    assert bad.exit_code == 1 and "MODULE:FUNCTION" in bad.output


def test_training_groups_are_parts_or_fields():
    from live_restore.experiments.bench_real import RealField, _training_groups

    frame = np.zeros((2, 16, 16), np.float32)
    fields = [
        RealField(name, part, frame, frame[0], 255.0)
        for name, part in (("a", "selection"), ("b", "report"), ("c", "report"))
    ]
    by_part = _training_groups(fields, "part")
    assert {k: [f.name for f in v] for k, v in by_part.items()} == {
        "selection": ["a"], "report": ["b", "c"]
    }
    assert list(_training_groups(fields, "field")) == ["a", "b", "c"]


def test_a_calibration_adds_calibrated_rows_for_restorers_that_read_noise(data, tmp_path):
    from live_restore.models.calibration import Calibration

    calibration = Calibration(gain=1.0, floor=0.0, correlation=[[1.0]], frames=8,
                              shape=(64, 64), source="test")
    missing = tmp_path / "none" / "python"
    result = bench_real(data, QUICK, peers_python=missing, calibration=calibration)
    noise_readers = {name for name in SHIPPED
                     if getattr(get_restorer(name), "takes_calibration", False)}
    calibrated = {
        name.removesuffix("_calibrated") for name in result["rows"] if name.endswith("_calibrated")
    }
    assert calibrated == {"classical"} | noise_readers
    assert result["calibration"]["digest"] == calibration.digest()
    for name in calibrated:
        row = result["rows"][f"{name}_calibrated"]
        assert row["version"].endswith(calibration.digest()) or name == "classical"
        plain = result["rows"][name]["mean"]["report"]["psnr_affine"]
        assert row["mean"]["report"]["psnr_affine"] != plain  # the noise it was given differs


def test_reference_and_ceiling_rows_stand_beside_the_adapted_one(tmp_path):
    """4× the light: the Gaussian on the mean of 4 frames (fields with fewer skipped, gaps taken
    on the same fields); the supervised ceiling calls ``adapt`` with each field's target."""
    _write_field(tmp_path / "confocal_bpae_nuclei" / "fov02", seed=0, frames=4)
    _write_field(tmp_path / "confocal_bpae_nuclei" / "fov11", seed=1, frames=4)
    _write_field(tmp_path / "confocal_mouse_brain", seed=2, frames=1)
    calls = []

    def adapt(base, stacks, targets=None):
        calls.append(None if targets is None else [t.shape for t in targets])
        return get_restorer("classical")

    config = QUICK.model_copy(update={"zero_shot_draws": 2})
    result = bench_real(tmp_path, config, adapt=adapt, peers_python=tmp_path / "no" / "python")
    rows = result["rows"]
    assert calls == [None, None, [(64, 64)], [(64, 64)] * 2]  # adapted, then ceiling, per part
    more = rows["gaussian_4x_light"]
    assert more["kind"] == "reference" and more["frames"] == 4
    assert set(more["fields"]) == {"confocal_bpae_nuclei/fov02", "confocal_bpae_nuclei/fov11"}
    report = more["mean"]["report"]
    field = "confocal_bpae_nuclei/fov11"
    assert report["fields"] == 1
    gain = more["fields"][field]["psnr_affine"] - rows["gaussian"]["fields"][field]["psnr_affine"]
    assert report["psnr_affine_vs_gaussian_db"] == pytest.approx(gain) and gain > 1.0
    assert rows["gaussian"]["mean"]["report"]["fields"] == 2  # the mouse brain too
    ceiling = rows["supervised"]
    assert ceiling["kind"] == "ceiling" and "not a result" in ceiling["note"]
    assert set(ceiling["fields"]) == set(rows["adapted"]["fields"]) and "supervised_avg4" in rows
    page = "\n".join(real_body(result, {}))
    assert "gaussian_4x_light (reference, 1 field)" in page
    assert "supervised (ceiling)" in page


def test_ceiling_is_skipped_when_the_adaptation_takes_no_targets(result):
    assert result["rows"]["supervised"] == {"skipped": "the adaptation function takes no targets"}
    assert result["rows"]["gaussian_4x_light"] == {"skipped": "no field has 4 noisy frames"}
