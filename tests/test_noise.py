"""Noise estimation on correlated, clipped and quantised frames; detector calibration files."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage
from pydantic import ValidationError
from typer.testing import CliRunner

from live_restore.cli import app
from live_restore.models.calibration import Calibration, calibrate_burst
from live_restore.models.classical import ClassicalRestorer
from live_restore.models.noise import (
    NoiseModel,
    clipped_pixels,
    diagonal_band_attenuation,
    estimate_noise,
    quantisation_step,
)
from live_restore.sim.detector import Detector, analogue_lowpass
from live_restore.sim.microscope import Microscope


def _scene(size: int = 256) -> np.ndarray:
    """A blob and sharp-edged patches on a background seen through a PSF (σ 1.5 px), photons.

    Every microscope image is blurred by its PSF; the correlated estimator relies on that
    (unblurred step edges in most blocks read as noise).
    """
    yy, xx = np.mgrid[:size, :size]
    patches = 30.0 * (np.sin(xx / 7.0) * np.sin(yy / 9.0) > 0.6)
    blob = 60.0 * np.exp(-((xx - size / 2) ** 2 + (yy - size / 3) ** 2) / 800.0)
    return scipy.ndimage.gaussian_filter(20.0 + blob + patches, 1.5)


def _sd_ratio(noise, mean: np.ndarray, true_variance: np.ndarray) -> float:
    return float(np.sqrt(noise.variance(mean).mean() / true_variance.mean()))


CORRELATION_CASES = {
    "white": np.array([[1.0]]),
    "horizontal_pair": np.array([[0.3, 1.0, 0.3]]),
    "box_3x3": np.ones((3, 3)),
}


@pytest.mark.parametrize("kernel", CORRELATION_CASES.values(), ids=CORRELATION_CASES.keys())
def test_correlated_estimator_reads_correlated_noise_within_10_percent(kernel):
    rng = np.random.default_rng(0)
    kernel = kernel / np.sqrt(np.sum(kernel**2))  # unit pixel variance after filtering
    mean = 2.0 * _scene()
    true_variance = 2.0 * mean + 9.0
    white = rng.standard_normal(mean.shape)
    frame = mean + scipy.ndimage.convolve(white, kernel, mode="wrap") * np.sqrt(true_variance)
    new = estimate_noise(frame, method="correlated")
    assert _sd_ratio(new, mean, true_variance) == pytest.approx(1.0, abs=0.1)
    autocorrelation = scipy.ndimage.correlate(np.pad(kernel, 2), kernel, mode="constant")
    centre = np.array(autocorrelation.shape) // 2
    assert new.correlation_kernel()[2, 3] == pytest.approx(
        autocorrelation[centre[0], centre[1] + 1], abs=0.08
    )
    if kernel.size > 1:  # the diagonal band alone reads correlated noise low
        assert _sd_ratio(estimate_noise(frame), mean, true_variance) < 0.85


def test_correlated_estimator_on_8_bit_clipped_frame():
    rng = np.random.default_rng(1)
    photons = _scene() * 2.5  # the bright blob saturates the 8-bit range
    camera = Detector(gain=1.5, offset=5.0, read_noise=2.0, bit_depth=8)
    frame = camera.sample(photons, rng)
    assert (frame == 255).mean() > 0.01
    mask = clipped_pixels(frame)
    assert mask[frame == 255].all() and not mask[(frame > 0) & (frame < 255)].any()
    assert quantisation_step(frame) == 1.0
    unclipped = camera.expected(photons) < 200
    mean = camera.expected(photons)[unclipped]
    true_variance = 1.5 * (mean - 5.0) + 4.0 + 1 / 12
    noise = estimate_noise(frame, method="correlated")
    assert _sd_ratio(noise, mean, true_variance) == pytest.approx(1.0, abs=0.1)
    assert noise.quantisation_step == 1.0 and noise.source == "frame"


def test_quantisation_step_of_shifted_12_bit_data():
    frame = np.random.default_rng(2).integers(0, 4096, (32, 32)) * 16
    assert quantisation_step(frame) == 16.0
    assert quantisation_step(frame + 32) == 16.0 and quantisation_step(frame / 3.7) == 0.0


def _sim_burst(frames: int) -> tuple[np.ndarray, Microscope]:
    scope = Microscope(sensor=(128, 128), laser_power=20.0)
    return np.stack([scope.acquire()[0] for _ in range(frames)]), scope


def test_calibration_of_the_simulated_camera_within_10_percent():
    burst, scope = _sim_burst(12)
    calibration, maps = calibrate_burst(burst, source="sim")
    det = scope.detector
    levels = np.array([15.0, 40.0, 100.0])
    true_sd = np.sqrt(det.gain * (levels - det.offset) + det.read_noise**2 + 1 / 12)
    sd = np.sqrt(calibration.noise_model().variance(levels))
    np.testing.assert_allclose(sd / true_sd, 1.0, atol=0.1)
    assert calibration.gain == pytest.approx(det.gain, rel=0.1)
    assert abs(calibration.correlation[2][3]) < 0.05 and maps == {}
    assert calibration.offset_adu is None and calibration.noise_model().source == "calibration"
    # The single-frame estimate agrees with the burst on the same camera.
    single = estimate_noise(burst[0], method="correlated")
    np.testing.assert_allclose(np.sqrt(single.variance(levels)) / true_sd, 1.0, atol=0.1)


def test_calibration_with_dark_frames_round_trips_and_refuses_extra_keys(tmp_path):
    rng = np.random.default_rng(3)
    camera = Detector(gain=2.0, offset=100.0, read_noise=3.0, bit_depth=12)
    photons = _scene(64)
    burst = np.stack([camera.sample(photons, rng) for _ in range(8)])
    dark = np.stack([camera.sample(np.zeros_like(photons), rng) for _ in range(8)])
    calibration, maps = calibrate_burst(burst, dark, source="test")
    assert calibration.offset_adu == pytest.approx(100.0, abs=0.5)
    assert calibration.read_noise_adu == pytest.approx(3.0, rel=0.1)
    path = calibration.save(tmp_path / "CAL.json", maps)
    loaded = Calibration.load(path)
    assert loaded.gain == calibration.gain and loaded.maps_file == "CAL.safetensors"
    np.testing.assert_allclose(loaded.load_maps(path)["offset"], maps["offset"], rtol=1e-6)
    text = path.read_text().replace('"version": 1,', '"version": 1, "colour": "blue",')
    (tmp_path / "extra.json").write_text(text)
    with pytest.raises(ValueError, match="not valid: colour: Extra inputs"):
        Calibration.load(tmp_path / "extra.json")
    with pytest.raises(ValidationError, match="format"):
        Calibration.model_validate({**loaded.model_dump(), "format": "other"})


def test_classical_restorer_uses_a_calibration():
    burst, _ = _sim_burst(6)
    calibration, _ = calibrate_burst(burst)
    calibrated = ClassicalRestorer(calibration=calibration)
    assert calibrated.noise == calibration.noise_model()
    assert calibrated.version != ClassicalRestorer().version
    out = calibrated.restore(burst[:1].astype(np.float32)).mean
    assert out.shape == (1, 128, 128) and np.isfinite(out).all()


BAD_BURSTS = {
    "2-D": (np.zeros((8, 8)), "shape"),
    "too few frames": (np.zeros((3, 16, 16)), "at least 4"),
    "NaN": (np.full((4, 16, 16), np.nan), "NaN"),
    "flat scene": (np.random.default_rng(4).poisson(10.0, (6, 32, 32)), "single intensity"),
}


@pytest.mark.parametrize(("burst", "message"), BAD_BURSTS.values(), ids=BAD_BURSTS.keys())
def test_calibration_refuses_bad_bursts(burst, message):
    with pytest.raises(ValueError, match=message):
        calibrate_burst(burst)


def test_estimator_refuses_bad_frames():
    with pytest.raises(ValueError, match="2-D"):
        estimate_noise(np.zeros((2, 32, 32)), method="correlated")
    with pytest.raises(ValueError, match="NaN"):
        estimate_noise(np.full((64, 64), np.nan), method="correlated")
    with pytest.raises(ValueError, match="'sharp'"):
        estimate_noise(np.zeros((64, 64)), method="sharp")


def test_cli_calibrates_a_recorded_stack(tmp_path):
    import tifffile

    burst, _ = _sim_burst(8)
    tifffile.imwrite(tmp_path / "burst.tif", burst.astype(np.uint16))
    stack, out = str(tmp_path / "burst.tif"), str(tmp_path / "c.json")
    result = CliRunner().invoke(app, ["calibrate", "--stack", stack, "--out", out])
    assert result.exit_code == 0, result.output
    assert Calibration.load(tmp_path / "c.json").source == "stack:burst.tif"
    bad = CliRunner().invoke(
        app, ["calibrate", "--stack", str(tmp_path / "nope.tif"), "--out", str(tmp_path / "x.json")]
    )
    assert bad.exit_code == 1 and "error" in bad.output


def test_band_attenuation_of_white_and_line_correlated_noise():
    assert NoiseModel(gain=1.0, floor=0.0).band_attenuation() == 1.0
    window = np.zeros((5, 5))
    window[2, 2], window[2, 1], window[2, 3] = 1.0, 0.3, 0.3  # a scanner's line low-pass
    noise = NoiseModel(gain=1.0, floor=0.0, correlation=tuple(map(tuple, window)))
    assert noise.band_attenuation() == pytest.approx(0.7)
    # the finest diagonal Haar band of such noise keeps that fraction of its variance
    lowpassed = analogue_lowpass(np.random.default_rng(0).standard_normal((512, 512)), 0.3)
    band = (lowpassed[0::2, 0::2] - lowpassed[0::2, 1::2] - lowpassed[1::2, 0::2]
            + lowpassed[1::2, 1::2]) / 2
    assert band.var() / lowpassed.var() == pytest.approx(0.7, abs=0.03)
    assert diagonal_band_attenuation(np.ones((1, 1))) == 1.0
