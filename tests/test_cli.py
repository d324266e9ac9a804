"""Every CLI verb, through typer's runner, plus one run of the installed entry point."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile
import useq
from typer.testing import CliRunner

from live_restore.acquisition.store import AcquisitionStore, FrameStatus
from live_restore.cli import app
from live_restore.models.restorer import auto_model_name

runner = CliRunner()


def _entry_point() -> str:
    """The installed console script, beside this interpreter (the venv need not be on PATH)."""
    beside = Path(sys.executable).parent / "live-restore"
    exe = str(beside) if beside.exists() else shutil.which("live-restore")
    assert exe is not None, "the console script is not installed"
    return exe


def test_installed_entry_point_runs():
    exe = _entry_point()
    out = subprocess.run([exe, "models"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "classical" in out.stdout


def test_restore_tiff_stack_keeps_shape_and_writes_float32(tmp_path):
    rng = np.random.default_rng(0)
    stack = rng.poisson(20, (2, 3, 40, 44)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "in.tif", stack, photometric="minisblack")
    result = runner.invoke(app, ["restore", str(tmp_path / "in.tif"), str(tmp_path / "out.tif")])
    assert result.exit_code == 0, result.output
    out = tifffile.imread(tmp_path / "out.tif")
    assert out.shape == stack.shape and out.dtype == np.float32
    assert out.std() < stack.std()
    again = runner.invoke(app, ["restore", str(tmp_path / "in.tif"), str(tmp_path / "out.tif")])
    assert again.exit_code == 1 and "overwrite" in again.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["restore", "missing.tif", "out.tif"], "not found"),
        (["restore", "in.tif", "out.tif", "--model", "nope"], "unknown model"),
        (["restore", "rgb.tif", "out.tif"], "3 samples per pixel (RGB)"),
        (["restore", "in.tif", "no/such/folder/out.tif"], "folder no/such/folder does not exist"),
        (["restore", "in.tif", "out.png"], "must be a .tif/.tiff file"),
    ],
)
def test_restore_bad_input_gives_clear_error(tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    tifffile.imwrite(tmp_path / "in.tif", np.zeros((8, 8), np.uint16))
    tifffile.imwrite(tmp_path / "rgb.tif", np.zeros((128, 128, 3), np.uint8), photometric="rgb")
    result = runner.invoke(app, args)
    assert result.exit_code == 1 and message in result.output


def test_acquire_on_democam_then_resume(tmp_path):
    seq = useq.MDASequence(time_plan={"interval": 0, "loops": 3})
    (tmp_path / "seq.json").write_text(seq.model_dump_json())
    store = tmp_path / "acq.zarr"
    args = ["acquire", "--config", "demo", "--sequence", str(tmp_path / "seq.json"),
            "--output", str(store), "--defer"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    with AcquisitionStore.open(store, mode="r") as s:
        assert len(s.indices(FrameStatus.RAW)) + len(s.indices(FrameStatus.RESTORED)) == 3
    again = runner.invoke(app, args)
    assert again.exit_code == 1 and "overwrite" in again.output
    result = runner.invoke(app, ["resume", str(store)])
    assert result.exit_code == 0, result.output
    with AcquisitionStore.open(store, mode="r") as s:
        assert s.pending() == [] and len(s.indices(FrameStatus.RESTORED)) == 3


def test_models_lists_classical():
    result = runner.invoke(app, ["models"])
    assert result.exit_code == 0 and "classical" in result.output


def test_bench_acquisition_json_keys(tmp_path, monkeypatch):
    """The JSON contract of `bench acquisition`, on a tiny run (real DemoCamera)."""
    import live_restore.experiments.bench_acquisition as bench

    real = bench.bench_acquisition
    monkeypatch.setattr(bench, "bench_acquisition",
                        lambda **kw: real(frames=20, repeats=1, size=64, slow_factor=2.0))
    result = runner.invoke(app, ["bench", "acquisition", "--json", str(tmp_path / "b.json")])
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "b.json").read_text())
    for key in ("frames", "baseline_fps", "hooked_fps", "overhead_ratio", "raw_frames_written",
                "frames_emitted", "restored_frames", "restore_fps", "latency_ms_p50",
                "latency_ms_p95", "peak_rss_mb"):
        assert key in data
    assert data["raw_frames_written"] == data["frames_emitted"] == 20
    assert data["slow_restorer"]["pending_after_drain"] == 0


def test_simulate_writes_dataset_with_sidecar(tmp_path):
    result = runner.invoke(app, ["simulate", "--task", "sted_denoise", "--n", "2", "--size", "64",
                                 "--out", str(tmp_path / "ds")])
    assert result.exit_code == 0, result.output
    degraded = tifffile.imread(tmp_path / "ds" / "degraded.tif")
    target = tifffile.imread(tmp_path / "ds" / "target.tif")
    assert degraded.shape == target.shape == (2, 64, 64)
    params = json.loads((tmp_path / "ds" / "params.json").read_text())
    assert "sted_denoise" in json.dumps(params)
    bad = runner.invoke(app, ["simulate", "--task", "nope", "--n", "1", "--out", str(tmp_path)])
    assert bad.exit_code == 1 and "nope" in bad.output


def test_bench_simulator_json(tmp_path, monkeypatch):
    import live_restore.experiments.bench_acquisition as bench

    real = bench.bench_simulator
    monkeypatch.setattr(bench, "bench_simulator",
                        lambda **kw: real(frames=6, pairs=1, size=128))
    result = runner.invoke(app, ["bench", "simulator", "--json", str(tmp_path / "s.json")])
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "s.json").read_text())
    assert data["mda"]["sequenced_confocal"]["fps"] > 0
    assert set(data["pairs"]) == {"denoise", "confocal2sted"}


def test_entry_point_acquisition_exits_cleanly_every_time(tmp_path):
    """A process that loaded a config must not abort at exit (exit 134, notes §4)."""
    seq = useq.MDASequence(time_plan={"interval": 0, "loops": 5})
    (tmp_path / "seq.json").write_text(seq.model_dump_json())
    exe = _entry_point()
    for i in range(3):
        out = subprocess.run(
            [exe, "acquire", "--config", "demo", "--sequence", str(tmp_path / "seq.json"),
             "--output", str(tmp_path / f"a{i}.zarr"), "--model", "classical"],
            capture_output=True, text=True, timeout=120,
        )
        assert out.returncode == 0, (out.returncode, out.stderr[-2000:])


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize(("signum", "flag", "backlog"), [
    (signal.SIGINT, "finish", "restored"), (signal.SIGTERM, "leave", "left for resume")])
def test_acquire_stops_on_the_first_signal_and_says_what_it_left(tmp_path, signum, flag,
                                                                 backlog):
    seq = useq.MDASequence(time_plan={"interval": 0.05, "loops": 400})
    (tmp_path / "seq.json").write_text(seq.model_dump_json())
    store = tmp_path / "i.zarr"
    proc = subprocess.Popen(
        [_entry_point(), "acquire", "--config", "demo", "--sequence", str(tmp_path / "seq.json"),
         "--output", str(store), "--model", "denoise", "--on-interrupt", flag],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    journal = store / "ledger" / "journal.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (
            not journal.exists() or journal.read_text().count('"s":"raw"') < 5):
        time.sleep(0.05)
    proc.send_signal(signum)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 130, out[-3000:]
    assert f"{signal.Signals(signum).name}: stopping the acquisition" in out
    with AcquisitionStore.open(store, mode="r") as s:
        raw = len(s.pending()) + len(s.indices(FrameStatus.RESTORED))
        assert 5 <= raw < 400 and s.lost() == {}
        assert (s.pending() == []) == (backlog == "restored")
    if backlog != "restored":
        assert "live-restore resume" in out


def test_train_tiny_then_restore_and_list_with_the_new_model(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["train", "--task", "sted_denoise", "--preset", "tiny",
                                 "--half", "--out", str(tmp_path / "mymodel")])
    assert result.exit_code == 0, result.output
    meta = json.loads((tmp_path / "mymodel.json").read_text())
    assert meta["name"] == "mymodel" and meta["task"] == "sted_denoise"
    assert meta["weights_dtype"] == "float16"
    tifffile.imwrite(tmp_path / "in.tif", np.random.default_rng(0).poisson(5, (2, 40, 40)),
                     photometric="minisblack")
    result = runner.invoke(app, ["restore", "in.tif", "out.tif", "--model",
                                 str(tmp_path / "mymodel.json")])
    assert result.exit_code == 0, result.output
    assert tifffile.imread(tmp_path / "out.tif").shape == (2, 40, 40)
    bad = runner.invoke(app, ["train", "--task", "nope", "--preset", "tiny", "--out", "x"])
    assert bad.exit_code == 1 and "unknown task" in bad.output


def test_auto_picks_the_shipped_model_that_fits_each_channel():
    from live_restore.cli.acquisition import _channel_restorers

    assert auto_model_name("STED") == "sted_denoise"
    assert auto_model_name("DAPI") == auto_model_name() == "denoise"
    chosen = _channel_restorers("auto", ["Confocal", "STED", "FITC"], every_channel=True,
                                device="cpu", calibration=None)
    assert {c: r.name for c, r in chosen.items()} == {
        "Confocal": "denoise", "STED": "sted_denoise", "FITC": "denoise"}
    assert chosen["Confocal"] is chosen["FITC"]  # one instance per model
    one = _channel_restorers("auto", ["DAPI", "FITC"], every_channel=True, device="cpu",
                             calibration=None)
    assert one.name == "denoise"  # every channel the same: a single restorer
    only = _channel_restorers("classical", ["DAPI"], every_channel=False, device="cpu",
                              calibration=None)
    assert list(only) == ["DAPI"]  # --channels: the rest stay raw
    drawn = _channel_restorers("auto", ["STED", "DAPI"], every_channel=True, device="cpu",
                               calibration=None, samples=8)
    assert {c: r.name for c, r in drawn.items()} == {"STED": "sted_denoise_avg8",
                                                    "DAPI": "denoise_avg8"}
    same = _channel_restorers("classical", [], every_channel=True, device="cpu",
                              calibration=None, samples=8)
    assert same.name == "classical"  # a deterministic restorer is not averaged


def test_restore_reads_an_acquisition_store(tmp_path):
    store = AcquisitionStore.create(tmp_path / "s.zarr", sizes={"t": 2}, frame_shape=(32, 40),
                                    dtype="uint16")
    rng = np.random.default_rng(0)
    for t in range(2):
        store.write_raw({"t": t}, rng.poisson(9, (32, 40)).astype(np.uint16))
    store.close()
    result = runner.invoke(app, ["restore", str(tmp_path / "s.zarr"), str(tmp_path / "o.tif")])
    assert result.exit_code == 0, result.output
    assert "restored by denoise@" in result.output  # the learned default, named
    assert tifffile.imread(tmp_path / "o.tif").shape == (2, 32, 40)
    steps = runner.invoke(app, ["restore", str(tmp_path / "s.zarr"), str(tmp_path / "p.tif"),
                                "--model", "classical", "--steps", "2"])
    assert steps.exit_code == 1 and "no sampling steps" in steps.output


def test_dose_sweep_cli_writes_report_and_refuses_bad_doses(tmp_path):
    out = tmp_path / "sweep"
    result = runner.invoke(app, ["dose-sweep", "--doses", "5,20,80", "--frames-per-dose", "1",
                                 "--modality", "STED", "--model", "classical", "--roi", "64",
                                 "--bleach-frames", "10", "--output", str(out),
                                 "--json", str(tmp_path / "d.json")])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "d.json").read_text())
    assert report["doses"] == [5, 20, 80] and report["reference_dose"] == 80
    assert (out / "dose_sweep.png").is_file() and (out / "dose_strip.png").is_file()
    bad = runner.invoke(app, ["dose-sweep", "--doses", "1,-5", "--output", str(tmp_path / "b")])
    assert bad.exit_code == 1 and "-5" in bad.output


@pytest.mark.parametrize(("flag", "result", "scope"), [
    ([], {"defects": {}, "targets_check": {"haze": {"adapted_closes_70pct_of_gap": False}}},
     "auto"),
    (["--gan-sharing", "--scope", "heads"], {"tasks": {"denoise": {}}}, "heads"),
])
def test_bench_adapt_writes_its_json_and_prints_the_summary(
    monkeypatch, tmp_path, flag, result, scope
):
    import live_restore.experiments.bench_adapt as bench_adapt

    seen = {}

    def fake(*args, **kwargs):
        seen.update(kwargs)
        return result

    monkeypatch.setattr(bench_adapt, "bench_adapt", fake)
    monkeypatch.setattr(bench_adapt, "bench_gan_sharing", fake)
    out = tmp_path / "a.json"
    run = runner.invoke(app, ["bench", "adapt", "--json", str(out), *flag])
    assert run.exit_code == 0, run.output
    assert json.loads(out.read_text()) == result
    assert seen["config"].adapt.scope == scope
    bad = runner.invoke(app, ["bench", "adapt", "--json", str(out), "--scope", "bridge"])
    assert bad.exit_code == 1 and "scope" in bad.output


def test_adapt_tiny_writes_an_adapted_model_and_refuses_a_known_defect(tmp_path):
    from live_restore import sim
    from live_restore.models.configs import MSCGMConfig
    from live_restore.models.mscgm import MSCGM, MSCGMRestorer
    from tiny_models import SMALL_MSCGM

    base = MSCGMRestorer(MSCGM(MSCGMConfig.for_task("denoise", **SMALL_MSCGM)), device="cpu")
    base.save(tmp_path / "base")
    defective, _, _ = sim.make_pairs("stripes", 3, seed=5, size=64)
    clean, _, _ = sim.make_pairs("sted_denoise", 4, seed=6, size=64)
    tifffile.imwrite(tmp_path / "defective.tif", defective, photometric="minisblack")
    tifffile.imwrite(tmp_path / "clean.tif", clean, photometric="minisblack")
    sim.write_dataset("stripes", 2, tmp_path / "check", seed=7, size=48)
    args = ["adapt", "--defect", "my-stripes", "--defective", str(tmp_path / "defective.tif"),
            "--clean", str(tmp_path / "clean.tif"), "--base", str(tmp_path / "base.json"),
            "--preset", "tiny", "--out", str(tmp_path / "adapted")]
    result = runner.invoke(app, [*args, "--check", str(tmp_path / "check")])
    assert result.exit_code == 0, result.output
    meta = json.loads((tmp_path / "adapted.json").read_text())
    assert meta["adaptation"]["defect"] == "my-stripes"
    scores = meta["adaptation"]["check"]
    assert scores["n"] == 2
    assert f"adapted {scores['adapted_psnr']:.2f} dB, base {scores['base_psnr']:.2f} dB" in (
        result.output)
    assert meta["adaptation"]["defective_frames"]["n"] == 3
    light = meta["adaptation"]["cingan"]["calibration"]["out_of_focus_light"]
    assert f"learned out-of-focus light {light:.2f}×" in result.output
    taken = runner.invoke(app, [args[0], "--defect", "stripes", *args[3:]])
    assert taken.exit_code == 1 and "stripes" in taken.output


def test_a_calibration_reaches_the_restorer_and_the_store(tmp_path):
    from live_restore.models.calibration import Calibration

    calibration = Calibration(gain=1.0, floor=4.0, correlation=[[1.0]], frames=8,
                              shape=(512, 512), source="test")
    cal = calibration.save(tmp_path / "cal.json")
    seq = useq.MDASequence(time_plan={"interval": 0, "loops": 2})
    (tmp_path / "seq.json").write_text(seq.model_dump_json())
    store = tmp_path / "acq.zarr"
    result = runner.invoke(app, [
        "acquire", "--config", "demo", "--sequence", str(tmp_path / "seq.json"), "--output",
        str(store), "--model", "denoise", "--calibration", str(cal)])
    assert result.exit_code == 0, result.output
    with AcquisitionStore.open(store, mode="r") as s:
        restored = s.indices(FrameStatus.RESTORED)
        assert len(restored) == 2
        assert s.frame_metadata(restored[0])["model"].endswith(f"+cal-{calibration.digest()}")
    attrs = json.loads((store / "zarr.json").read_text())["attributes"]["live_restore"]
    assert attrs["model"]["calibration"]["digest"] == calibration.digest()

    tifffile.imwrite(tmp_path / "in.tif", np.zeros((16, 16), np.uint16))
    (tmp_path / "broken.json").write_text('{"format": "live_restore.calibration", "gain": -1}')
    for calibration_file, message in ((tmp_path / "broken.json", "gain"),
                                      (tmp_path / "missing.json", "cannot read")):
        bad = runner.invoke(app, ["restore", str(tmp_path / "in.tif"), str(tmp_path / "o.tif"),
                                  "--model", "denoise", "--calibration", str(calibration_file)])
        assert bad.exit_code == 1 and message in bad.output
    care = runner.invoke(app, ["restore", str(tmp_path / "in.tif"), str(tmp_path / "o.tif"),
                               "--model", "confocal2sted_care", "--calibration", str(cal)])
    assert care.exit_code == 1 and "reads no noise level" in care.output


@pytest.mark.parametrize(
    ("content", "suffix", "message"),
    [
        ('{"time_plann": {"interval": 0, "loops": 3}}', ".json", "misspelt?): time_plann"),
        ('{"time_plan": {"interval": 0, "loops": 3}, "channels": [{"config": "DAPI", '
         '"exposur": 5}]}', ".json", "channels[0].exposur"),
        ("time_plan: {interval: 0, loops: 3\n  x: [", ".yaml", "is not valid YAML"),
        ('{"time_plan": {"interval": 0, "loops": -3}}', ".json", "is not valid: time_plan"),
    ],
)
def test_acquire_refuses_a_sequence_file_useq_would_misread(tmp_path, content, suffix, message):
    sequence = tmp_path / f"seq{suffix}"
    sequence.write_text(content)
    result = runner.invoke(app, ["acquire", "--config", "demo", "--sequence", str(sequence),
                                 "--output", str(tmp_path / "s.zarr")])
    assert result.exit_code == 1 and message in " ".join(result.output.split())
    assert not (tmp_path / "s.zarr").exists()


def test_a_cuda_device_without_cuda_is_one_clear_error(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    tifffile.imwrite(tmp_path / "in.tif", np.zeros((16, 16), np.uint16))
    result = runner.invoke(app, ["restore", str(tmp_path / "in.tif"), str(tmp_path / "o.tif"),
                                 "--model", "denoise", "--device", "cuda"])
    assert result.exit_code == 1 and "sees no CUDA GPU" in result.output


def test_resume_goes_on_with_the_restorers_the_store_records(tmp_path):
    from live_restore.acquisition.run import recorded_restorers
    from live_restore.models.restorer import get_restorer

    def store_with(**info) -> Path:
        path = tmp_path / f"s{len(list(tmp_path.iterdir()))}.zarr"
        store = AcquisitionStore.create(path, sizes={"t": 1}, frame_shape=(16, 16),
                                        dtype="uint16")
        if info:
            store.set_model_info(**info)
        store.close()
        return path

    denoise = get_restorer("denoise")
    one = store_with(name="denoise", checksum=denoise.version)
    assert recorded_restorers(one).version == denoise.version
    classical = get_restorer("classical")
    per_channel = store_with(name="Confocal=classical,STED=denoise",
                             checksum=f"{classical.version},{denoise.version}")
    chosen = recorded_restorers(per_channel)
    assert {c: r.name for c, r in chosen.items()} == {"Confocal": "classical", "STED": "denoise"}
    averaged = recorded_restorers(store_with(name="denoise_avg8", checksum=denoise.version))
    assert averaged.name == "denoise_avg8" and averaged.samples == 8  # acquire --samples 8
    assert averaged.version == denoise.version
    stale = store_with(name="denoise", checksum="0123456789abcdef")
    with pytest.raises(ValueError, match="pass --model"):
        recorded_restorers(stale)
    result = runner.invoke(app, ["resume", str(stale)])
    assert result.exit_code == 1 and "denoise@0123456789abcdef" in result.output
    result = runner.invoke(app, ["resume", str(store_with())])
    assert result.exit_code == 1 and "records no restorer" in result.output


def test_resume_reports_a_store_restored_by_several_models_and_retries_failures(tmp_path):
    path = tmp_path / "m.zarr"
    with AcquisitionStore.create(path, sizes={"t": 4}, frame_shape=(16, 16),
                                 dtype="uint16") as store:
        for t in range(4):
            store.write_raw({"t": t}, np.full((16, 16), 5 + t, np.uint16))
        store.write_restored({"t": 0}, np.zeros((16, 16)), model="old@1")
        store.mark_failed({"t": 1}, "RuntimeError: out of memory")
    result = runner.invoke(app, ["resume", str(path), "--model", "classical"])
    assert result.exit_code == 0, result.output
    assert "restored 2 frame(s)" in result.output
    assert "restored by 2 models" in result.output and "old@1 (1)" in result.output
    assert "1 frame(s) failed" in result.output and "--retry-failed" in result.output
    again = runner.invoke(app, ["resume", str(path), "--model", "classical", "--retry-failed"])
    assert again.exit_code == 0 and "restored 1 frame(s)" in again.output
    assert "failed" not in again.output
