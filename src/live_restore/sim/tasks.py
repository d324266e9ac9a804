"""Paired (degraded, target) datasets for training and adaptation tests.

Every pair is a pure function of (task, seed, size). Specimens are drawn from all specimen
kinds; physical parameters are sampled per pair and returned in a JSON-able dict. Targets are
themselves *measurements* (high dose, or the same dose without the defect, with independent
noise), as real paired data would be; the noise-free expectation is in ``params`` only by
recipe, not as an array.

Tasks (2-D tasks return (Y, X), ``axial_inpaint`` and ``axial`` return (Z, Y, X)):

- ``confocal2sted``: low-dose confocal (0.15–20 photons per label, log-uniform, i.e. filament
  peaks ≈ 4–500) → high-dose STED (60–300 photons per label; STED FWHM 40–80 nm), 25 nm
  pixels, 640 nm, NA 1.4, 1 AU; detector gain 1, offset 10 ADU, read noise 0.5 ADU (the
  simulated scope's detector).
- ``sted_denoise``: the same field in STED at low (0.15–20) and high (60–300) photons per
  label.
- ``denoise``: half camera-like, half point-scanner-like: pixel 25–100 nm, Gaussian PSF
  σ 0.7–4.5 px, peak 1–3000 photons, large smooth cytoplasm-like structures, out-of-focus
  haze (σ 1–2 µm). Camera: gain 0.5–5 ADU/photon, offset 0–500 ADU, read noise
  0–3 ADU·gain, per-pixel gain (PRNU, sd 0–5 %), column offsets and temporal row noise.
  Point scanner (PMT, HyD): gain 0.5–20 ADU/photon, offset 0–50 ADU, read noise
  0–1 ADU·gain, no fixed pattern. Target: 20–50× the dose, same fixed patterns (as a long
  average would contain), no read or row noise, same ADU scale. Half the pairs have
  correlated noise (a scanner's line low-pass or a camera's resampling) and half are 8-bit
  with a black level and clipping (``_readout``).
- ``axial_inpaint``: confocal z-stack, 16 planes 100 nm apart (50 nm pixels, specimens in
  three layers over ±0.7 µm). Degraded: only every k-th plane (k ∈ {2, 3, 4}) is measured;
  planes in between are linearly interpolated from the measured neighbours (held constant
  past the last one). Target: the full measured stack (same noise realisation on the
  measured planes).
- ``axial``: a z-stack of a cell-thick field (four specimen layers spread over ±1.4 µm, each
  tilted so its structures cross planes; 50 nm pixels, 17 planes 200 nm apart: Nyquist for the
  600 nm axial FWHM), confocal or STED (2-D depletion: the axial extent stays confocal's).
  Degraded: every plane at low dose (2–20 photons per label); target: every plane at 15–40×
  that dose, rescaled to the degraded stack's photons so both are in one unit. Axial
  inpainting takes every k-th degraded plane (``AXIAL_SPARSITY``) and restores the whole
  target stack; which planes are "acquired" is the experiment's choice, not the pair's.
- ``haze``: 50 nm pixels, 250 nm Gaussian PSF; degraded adds out-of-focus haze (the specimen
  plus a second, out-of-focus specimen layer, blurred with σ 1–2 µm, 0.5–3× the mean signal).
- ``stripes``: resonant-scanner line artefacts (per-row gain sd 5–20 %, bidirectional shift
  of odd rows by 1–3 px, mains-hum modulation 5–30 %) plus sCMOS column offsets.
- ``detector``: a different detector: gain 2–8 ADU/photon, offset 20–100 ADU, read noise
  2–8 ADU, 8-bit quantisation with clipping, hot pixels (0.01–0.1 %). Target: an ideal
  photon counter (gain 1, offset 0) at the same dose.

The defect tasks (``haze``, ``stripes``, ``detector``) image the same confocal-like field at
the same dose in both members of the pair, so only the defect differs.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import scipy.ndimage
import tifffile

from live_restore.sim import detector as det
from live_restore.sim import optics, render
from live_restore.sim.microscope import Optics, saturation
from live_restore.sim.specimens import SPECIMENS, Points, generate, smooth_field

TASKS: tuple[str, ...] = (
    "confocal2sted",
    "sted_denoise",
    "denoise",
    "axial_inpaint",
    "haze",
    "stripes",
    "detector",
    "axial",
)
STACK_TASKS = ("axial_inpaint", "axial")
"""The tasks whose pairs are z-stacks (Z, Y, X) rather than frames."""

AXIAL_PLANES, AXIAL_SPACING_UM = 17, 0.2
AXIAL_SPARSITY = (2, 4)
"""Every k-th plane acquired: 17 planes hold planes 0, k, 2k, ... 16 for k = 2 and 4."""
AXIAL_LOW_PHOTONS = (2.0, 20.0)
AXIAL_DOSE_RATIO = (15.0, 40.0)

_SCOPE_DETECTOR = det.Detector(gain=1.0, offset=10.0, read_noise=0.5)

#: Photons per label of the confocal/STED tasks, log-uniform. The low range spans the
#: simulated scope's whole 1–100 % laser power at 10 ms (0.2 photons per label per 1 %), so
#: every dose of a dose sweep is inside the training distribution (a model trained to 30 %
#: degraded the brighter frames); the high range is a long, averaged acquisition (3–15× the
#: 100 % dose), clean enough that the restorer is not taught the target's own shot noise.
LOW_PHOTONS_PER_LABEL = (0.15, 20.0)
HIGH_PHOTONS_PER_LABEL = (60.0, 300.0)
#: Peak photons per pixel of ``denoise``, log-uniform: from photon-starved live imaging to a
#: bright confocal frame (the simulated scope's confocal filaments peak near 2 000 at 100 %),
#: so the generic model never sees an input brighter than it was taught.
DENOISE_PEAK_PHOTONS = (1.0, 3000.0)
_REACH_UM = 3.0


def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def check_task(task: str) -> str:
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {TASKS}")
    return task


def _field_points(rng: np.random.Generator, size: int, pixel_um: float, kind: str) -> Points:
    """Structures anchored in the field plus a margin, so they also enter from outside."""
    extent = size * pixel_um
    box = (-1.0, -1.0, extent + 1.0, extent + 1.0)
    return generate(kind, rng, box, _REACH_UM)


def _common(rng: np.random.Generator, task: str, seed: int, size: int, pixel_um: float) -> dict:
    return {
        "task": task,
        "seed": int(seed),
        "size": int(size),
        "pixel_size_um": pixel_um,
        "specimen": str(rng.choice(SPECIMENS)),
    }


def _confocal_sted(
    rng: np.random.Generator, noise: np.random.Generator, params: dict, confocal_low: bool
) -> tuple:
    size, p = params["size"], params["pixel_size_um"]
    pts = _field_points(rng, size, p, params["specimen"])
    sat = float(rng.uniform(7.5, 32.5))  # STED FWHM 80 … 40 nm at 640 nm, NA 1.4
    depletion = sat / saturation(1.0)
    scope = Optics()
    conf, sted = scope.psf("Confocal", 0.0), scope.psf("STED", depletion)
    imgs = render.render(pts, (0.0, 0.0), (size, size), p, [conf, sted])[:, 0]
    low = _log_uniform(rng, *LOW_PHOTONS_PER_LABEL)
    high = _log_uniform(rng, *HIGH_PHOTONS_PER_LABEL)
    bg_conf, bg_sted = 0.01, 0.01 * (1 + 0.02 * sat)
    degraded_img, bg_low = (imgs[0], bg_conf) if confocal_low else (imgs[1], bg_sted)
    degraded = _SCOPE_DETECTOR.sample(degraded_img * low + bg_low * low + 0.05, noise)
    target = _SCOPE_DETECTOR.sample(imgs[1] * high + bg_sted * high + 0.05, noise)
    params |= {
        "optics": scope.__dict__.copy(),
        "sted_saturation": sat,
        "confocal_fwhm_nm": conf.fwhm_nm,
        "sted_fwhm_nm": sted.fwhm_nm,
        "degraded_modality": "Confocal" if confocal_low else "STED",
        "degraded_photons_per_label": low,
        "target_modality": "STED",
        "target_photons_per_label": high,
        "detector": _SCOPE_DETECTOR.to_dict(),
    }
    return degraded, target, params


def _confocal2sted(rng: np.random.Generator, noise: np.random.Generator, params: dict) -> tuple:
    return _confocal_sted(rng, noise, params, confocal_low=True)


def _sted_denoise(rng: np.random.Generator, noise: np.random.Generator, params: dict) -> tuple:
    return _confocal_sted(rng, noise, params, confocal_low=False)


def _denoise(rng: np.random.Generator, noise: np.random.Generator, params: dict) -> tuple:
    size = params["size"]
    scanner = bool(rng.random() < 0.5)
    p = params["pixel_size_um"] = float(rng.uniform(0.025, 0.1))
    sigma_px = float(rng.uniform(0.7, 4.5))
    psf = optics.gaussian(sigma_px * p * 1000.0 * optics.FWHM_PER_SIGMA)
    pts = _field_points(rng, size, p, params["specimen"])
    img = render.render(pts, (0.0, 0.0), (size, size), p, [psf])[0, 0].astype(np.float64)
    ref = max(np.percentile(img, 99.9), 1e-6)
    img /= ref
    smooth_amp, smooth_scale = float(rng.uniform(0.0, 0.6)), float(rng.uniform(8.0, 40.0))
    img += smooth_amp * smooth_field(rng, (size, size), smooth_scale)
    haze_amp, haze_um = float(rng.uniform(0.0, 1.0)), float(rng.uniform(1.0, 2.0))
    img += haze_amp * scipy.ndimage.gaussian_filter(img, haze_um / p, mode="reflect")
    peak = _log_uniform(rng, *DENOISE_PEAK_PHOTONS)
    bg = float(rng.uniform(0.0, 0.1)) * peak
    if scanner:  # PMT or hybrid detector: one detector for every pixel, no fixed pattern
        gain, offset = _log_uniform(rng, 0.5, 20.0), float(rng.uniform(0.0, 50.0))
        read = float(rng.uniform(0.0, 1.0)) * gain
        prnu = np.ones((size, size), np.float32)
        cols = np.zeros((size, size), np.float32)
        rows_sd = 0.0
    else:  # camera: per-pixel gain, column offsets, temporal row noise
        gain, offset = float(rng.uniform(0.5, 5.0)), float(rng.uniform(0.0, 500.0))
        read = float(rng.uniform(0.0, 3.0)) * gain
        prnu = det.pixel_gain_map(rng, (size, size), float(rng.uniform(0.0, 0.05)))
        cols = det.column_offsets(rng, (size, size), float(rng.uniform(0.0, 2.0)) * gain)
        rows_sd = float(rng.uniform(0.0, 1.5)) * gain
    dose_ratio = float(rng.uniform(20.0, 50.0))
    photons = (img * peak + bg) * prnu
    camera = det.Detector(gain=gain, offset=offset, read_noise=read)
    degraded = camera.sample(photons, noise) + cols + det.row_noise(noise, (size, size), rows_sd)
    target = offset + cols + gain * noise.poisson(photons * dose_ratio) / dose_ratio
    signal_peak = float(np.percentile(photons, 99.9)) * gain
    degraded, target, readout = _readout(rng, scanner, degraded, target, offset, signal_peak)
    params |= {
        "detector_kind": "point_scanner" if scanner else "camera",
        "psf_sigma_px": sigma_px,
        "psf_fwhm_nm": psf.fwhm_nm,
        "peak_photons": peak,
        "background_photons": bg,
        "smooth_amplitude": smooth_amp,
        "smooth_scale_px": smooth_scale,
        "haze_amplitude": haze_amp,
        "haze_sigma_um": haze_um,
        "detector": camera.to_dict(),
        "prnu_sd": float(prnu.std()),
        "row_noise_sd_adu": rows_sd,
        "target_dose_ratio": dose_ratio,
        "readout": readout,
    }
    return degraded.astype(np.float32), target.astype(np.float32), params


def _readout(
    rng: np.random.Generator,
    scanner: bool,
    degraded: np.ndarray,
    target: np.ndarray,
    offset: float,
    signal_peak: float,
) -> tuple[np.ndarray, np.ndarray, dict]:
    """What real detectors do after the photons are counted, each in half of the pairs.

    - Correlated noise: a scanner's amplifier low-pass along the line (pole 0.1–0.6), or a
      camera pipeline's resampling (Gaussian σ 0.3–1 px). The target is a long average through
      the same electronics, so it is filtered the same way.
    - 8-bit data: the frame (less its offset) is scaled so that the 99.9th percentile of its
      expected signal (``signal_peak``, ADU above the offset: an instrument setting, the same
      for every realisation) lands at 100–300 DN (the top ones saturate at 255), a black
      level of −5…15 DN is added (a negative one clips the darkest pixels at 0), and it is
      rounded. The target gets the same
      scale and black level, unrounded and clipped to the same range.

    The draws come after every other draw of the pair, so the pairs' other parameters are
    those of the same seed without these effects.
    """
    correlated, quantised = bool(rng.random() < 0.5), bool(rng.random() < 0.5)
    pole, sigma_px = float(rng.uniform(0.1, 0.6)), float(rng.uniform(0.3, 1.0))
    peak_dn, black = float(rng.uniform(100.0, 300.0)), float(rng.uniform(-5.0, 15.0))
    info: dict = {"lowpass": None, "eight_bit": None}
    if correlated:
        if scanner:
            degraded, target = (det.analogue_lowpass(a, pole) for a in (degraded, target))
            info["lowpass"] = {"kind": "line", "pole": pole}
        else:
            degraded, target = (det.spatial_lowpass(a, sigma_px) for a in (degraded, target))
            info["lowpass"] = {"kind": "gaussian", "sigma_px": sigma_px}
    if quantised:
        scale = peak_dn / max(signal_peak, 1e-6)
        degraded = det.eight_bit(degraded - offset, scale, black)
        target = np.clip((target - offset) * scale + black, 0.0, 255.0)
        info["eight_bit"] = {"scale": scale, "black_level_dn": black}
    return degraded, target, info


def _axial_inpaint(rng: np.random.Generator, noise: np.random.Generator, params: dict) -> tuple:
    size = params["size"]
    p = params["pixel_size_um"] = 0.05
    n_z, dz = 16, 0.1
    zs = (np.arange(n_z) - (n_z - 1) / 2) * dz
    layers = []
    for _ in range(3):
        pts = _field_points(rng, size, p, params["specimen"])
        layers.append(Points(pts.x, pts.y, pts.z + rng.uniform(-0.7, 0.7), pts.w))
    psf = Optics().psf("Confocal", 0.0)
    stack = render.render(Points.concat(layers), (0.0, 0.0), (size, size), p, [psf], zs)[0]
    ppl = float(rng.uniform(2.0, 10.0))
    target = _SCOPE_DETECTOR.sample(stack * ppl + 0.01 * ppl + 0.05, noise)
    k = int(rng.choice([2, 3, 4]))
    measured = np.arange(0, n_z, k)
    idx = np.arange(n_z)
    lo = measured[np.clip(np.searchsorted(measured, idx, side="right") - 1, 0, None)]
    hi = measured[np.clip(np.searchsorted(measured, idx), None, len(measured) - 1)]
    frac = np.where(hi > lo, (idx - lo) / np.maximum(hi - lo, 1), 0.0)[:, None, None]
    degraded = ((1 - frac) * target[lo] + frac * target[hi]).astype(np.float32)
    params |= {
        "plane_spacing_um": dz,
        "z_um": zs.tolist(),
        "k": k,
        "measured_planes": measured.tolist(),
        "fill": "linear interpolation between measured planes, constant past the last",
        "photons_per_label": ppl,
        "psf_fwhm_nm": psf.fwhm_nm,
        "axial_fwhm_nm": psf.axial_fwhm_nm,
        "detector": _SCOPE_DETECTOR.to_dict(),
    }
    return degraded, target, params


def _axial(rng: np.random.Generator, noise: np.random.Generator, params: dict) -> tuple:
    size = params["size"]
    p = params["pixel_size_um"] = 0.05
    zs = (np.arange(AXIAL_PLANES) - (AXIAL_PLANES - 1) / 2) * AXIAL_SPACING_UM
    layers = []
    for _ in range(4):
        pts = _field_points(rng, size, p, str(rng.choice(SPECIMENS)))
        tilt_x, tilt_y = rng.uniform(-0.3, 0.3, 2)  # µm of depth per µm across the field
        centre = size * p / 2
        z = pts.z + rng.uniform(-1.4, 1.4) + tilt_x * (pts.x - centre) + tilt_y * (pts.y - centre)
        layers.append(Points(pts.x, pts.y, z, pts.w))
    modality = str(rng.choice(["Confocal", "STED"]))
    sat = float(rng.uniform(7.5, 32.5))
    psf = Optics().psf(modality, sat / saturation(1.0))
    stack = render.render(Points.concat(layers), (0.0, 0.0), (size, size), p, [psf], zs)[0]
    low = _log_uniform(rng, *AXIAL_LOW_PHOTONS) * params["dose"]
    ratio = float(rng.uniform(*AXIAL_DOSE_RATIO)) / params["dose"]
    background = 0.01 * stack.mean() + 0.05 / low  # out-of-focus and dark counts per label
    offset = _SCOPE_DETECTOR.offset
    degraded = _SCOPE_DETECTOR.sample((stack + background) * low, noise)
    high = _SCOPE_DETECTOR.sample((stack + background) * low * ratio, noise)
    target = (high - offset) / ratio + offset  # the high-dose stack in the degraded's photons
    params |= {
        "modality": modality,
        "z_um": zs.tolist(),
        "plane_spacing_um": AXIAL_SPACING_UM,
        "photons_per_label": low,
        "target_dose_ratio": ratio,
        "psf_fwhm_nm": psf.fwhm_nm,
        "axial_fwhm_nm": psf.axial_fwhm_nm,
        "detector": _SCOPE_DETECTOR.to_dict(),
    }
    return degraded, target, params


def _base_field(rng: np.random.Generator, params: dict, pixel_um: float) -> np.ndarray:
    """Confocal-like expected photons for the defect tasks (peak 20–200 photons)."""
    size = params["size"]
    params["pixel_size_um"] = pixel_um
    psf = optics.gaussian(250.0)
    pts = _field_points(rng, size, pixel_um, params["specimen"])
    img = render.render(pts, (0.0, 0.0), (size, size), pixel_um, [psf])[0, 0]
    peak = float(rng.uniform(20.0, 200.0))
    params |= {"psf_fwhm_nm": psf.fwhm_nm, "peak_photons": peak, "background_photons": 0.2}
    return img / max(float(np.percentile(img, 99.9)), 1e-6) * peak + 0.2


def _haze(rng: np.random.Generator, noise: np.random.Generator, params: dict) -> tuple:
    clean = _base_field(rng, params, 0.05)
    size, p = params["size"], params["pixel_size_um"]
    other = _field_points(rng, size, p, params["specimen"])
    far = render.density(other, (0.0, 0.0), (size, size), p, optics.gaussian(250.0), 0.0)
    sigma_um, amp = float(rng.uniform(1.0, 2.0)), float(rng.uniform(0.5, 3.0))
    haze = scipy.ndimage.gaussian_filter(clean + far, sigma_um / p, mode="reflect")
    haze *= amp * clean.mean() / max(float(haze.mean()), 1e-6)
    degraded = _SCOPE_DETECTOR.sample(clean + haze, noise)
    target = _SCOPE_DETECTOR.sample(clean, noise)
    params |= {
        "haze_sigma_um": sigma_um,
        "haze_to_signal": amp,
        "detector": _SCOPE_DETECTOR.to_dict(),
    }
    return degraded, target, params


def _stripes(rng: np.random.Generator, noise: np.random.Generator, params: dict) -> tuple:
    clean = _base_field(rng, params, 0.025)
    size = params["size"]
    row_sd, shift = float(rng.uniform(0.05, 0.2)), int(rng.integers(1, 4))
    hum = float(rng.uniform(0.05, 0.3))
    col_sd = float(rng.uniform(0.5, 3.0))
    striped = det.scanner_stripes(rng, clean.astype(np.float32), row_sd, shift, hum)
    columns = det.column_offsets(rng, (size, size), col_sd)
    degraded = _SCOPE_DETECTOR.sample(striped, noise) + columns
    target = _SCOPE_DETECTOR.sample(clean, noise)
    params |= {
        "row_gain_sd": row_sd,
        "odd_row_shift_px": shift,
        "hum_amplitude": hum,
        "column_offset_sd_adu": col_sd,
        "detector": _SCOPE_DETECTOR.to_dict(),
    }
    return degraded.astype(np.float32), target, params


def _detector(rng: np.random.Generator, noise: np.random.Generator, params: dict) -> tuple:
    clean = _base_field(rng, params, 0.025)
    size = params["size"]
    changed = det.Detector(
        gain=float(rng.uniform(2.0, 8.0)),
        offset=float(rng.uniform(20.0, 100.0)),
        read_noise=float(rng.uniform(2.0, 8.0)),
        bit_depth=8,
    )
    ideal = det.Detector(gain=1.0, offset=0.0, read_noise=0.0)
    hot_fraction = float(rng.uniform(1e-4, 1e-3))
    raw = changed.sample(clean, noise) + det.hot_pixels(rng, (size, size), hot_fraction, 200.0)
    degraded = changed.quantise(raw)
    target = ideal.sample(clean, noise)
    params |= {
        "detector": changed.to_dict(),
        "target_detector": ideal.to_dict(),
        "hot_pixel_fraction": hot_fraction,
    }
    return degraded, target, params


_MAKERS: dict[str, Callable[[np.random.Generator, np.random.Generator, dict], tuple]] = {
    "confocal2sted": _confocal2sted,
    "sted_denoise": _sted_denoise,
    "denoise": _denoise,
    "axial_inpaint": _axial_inpaint,
    "haze": _haze,
    "stripes": _stripes,
    "detector": _detector,
    "axial": _axial,
}


def make_pair(
    task: str, seed: int, size: int = 256, realisation: int = 0, dose: float = 1.0
) -> tuple[np.ndarray, np.ndarray, dict]:
    """One (degraded, target, params) triple; float32 arrays in detector units (ADU).

    The field, its physical parameters and the fixed detector patterns come from ``seed``;
    the shot, read and row noise from ``(seed, realisation)``. Two realisations of one seed
    are therefore the same field measured twice, which FRC needs. ``dose`` (the ``axial``
    task only) scales the degraded stack's photons, the target's staying as they are: the
    same stack acquired at another dose, for a sweep of photons per stack.
    """
    check_task(task)
    if dose != 1.0 and task != "axial":
        raise ValueError(f"dose scaling is defined for the axial task, not {task!r}")
    if not dose > 0:
        raise ValueError(f"dose must be > 0, got {dose!r}")
    if int(size) < 1:
        raise ValueError(f"size must be >= 1 pixel, got {size!r}")
    if int(realisation) < 0:
        raise ValueError(f"realisation must be >= 0, got {realisation!r}")
    rng = np.random.default_rng([TASKS.index(task), int(seed)])
    noise = np.random.default_rng([TASKS.index(task), int(seed), int(realisation), 1])
    params = _common(rng, task, seed, int(size), 0.025)
    if task == "axial":
        params["dose"] = float(dose)
    degraded, target, params = _MAKERS[task](rng, noise, params)
    params["realisation"] = int(realisation)
    return degraded.astype(np.float32), target.astype(np.float32), params


def pair_seed(seed: int, i: int) -> int:
    """Seed of the i-th pair of a dataset drawn with ``seed``."""
    return int(np.random.SeedSequence([int(seed), int(i)]).generate_state(1)[0])


def make_pairs(
    task: str, n: int, seed: int, size: int = 256, realisation: int = 0, dose: float = 1.0
) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """N pairs stacked along a new first axis; pair i is
    ``make_pair(task, pair_seed(seed, i), size, realisation, dose)``."""
    check_task(task)
    if int(n) < 1:
        raise ValueError(f"n must be >= 1, got {n!r}")
    triples = [make_pair(task, pair_seed(seed, i), size, realisation, dose)
               for i in range(int(n))]
    return (
        np.stack([t[0] for t in triples]),
        np.stack([t[1] for t in triples]),
        [t[2] for t in triples],
    )


def write_dataset(task: str, n: int, out: str | Path, seed: int = 0, size: int = 256) -> Path:
    """Write ``out/degraded.tif``, ``out/target.tif`` and ``out/params.json``; returns ``out``."""
    check_task(task)
    if int(n) < 1:
        raise ValueError(f"n must be >= 1, got {n!r}")
    out = Path(out)
    degraded, target, params = make_pairs(task, n, seed, size)
    out.mkdir(parents=True, exist_ok=True)
    axes = "QZYX" if degraded.ndim == 4 else "QYX"
    tifffile.imwrite(out / "degraded.tif", degraded, metadata={"axes": axes})
    tifffile.imwrite(out / "target.tif", target, metadata={"axes": axes})
    sidecar = {
        "task": task,
        "n": int(n),
        "seed": int(seed),
        "size": int(size),
        "axes": axes,
        "units": "detector ADU (float32)",
        "pair_seed": "SeedSequence([seed, i])",
        "description": __doc__,
        "pairs": params,
    }
    (out / "params.json").write_text(json.dumps(sidecar, indent=1))
    return out
