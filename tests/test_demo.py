"""The demo end to end on the simulated microscope, and the package's import boundaries."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaozarrs
from typer.testing import CliRunner

from live_restore.cli import app
from live_restore.experiments.demo import demo_sequence, run_demo


def test_demo_restores_and_beats_raw_against_ground_truth(tmp_path):
    result = run_demo(tmp_path / "demo.zarr", frames=4, roi=128)
    r = result.report
    assert r.frames_emitted == r.raw_frames_written == r.restored == 4 and r.pending == 0
    yaozarrs.validate_zarr_store(str(tmp_path / "demo.zarr"))
    assert set(result.quality) == {"Confocal", "STED"}
    for q in result.quality.values():
        assert q["restored_psnr"] > q["raw_psnr"] + 2
        assert q["restored_ssim"] > q["raw_ssim"]
    assert result.figure is not None and result.figure.stat().st_size > 10_000


def test_demo_cli_refuses_existing_output_and_bad_frames(tmp_path):
    runner = CliRunner()
    out = tmp_path / "d.zarr"
    out.mkdir()
    result = runner.invoke(app, ["demo", "--frames", "2", "--output", str(out)])
    assert result.exit_code == 1 and "overwrite" in result.output
    with pytest.raises(ValueError, match="at least 1"):
        demo_sequence(0)


@pytest.mark.parametrize(
    ("module", "forbidden"),
    [
        ("live_restore.sim", "pymmcore_plus"),
        ("live_restore.models.wavelets", "pymmcore_plus"),
        ("live_restore.models.bridge", "zarr"),
        ("live_restore.models.restorer", "pymmcore_plus"),
        ("live_restore.metrics", "torch"),
    ],
)
def test_module_boundaries(module, forbidden):
    """Maths and simulation never pull in the acquisition stack (style rule 1)."""
    code = f"import sys, {module}; sys.exit({forbidden!r} in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 0
