"""A virtual slide under a scanning confocal/STED microscope, with dose and bleaching.

The slide (200 × 200 µm by default) is never held as one array. It is cut into tiles of 256
scan pixels; a tile's labels are generated from (seed, tile index) alone, and its blurred
image for a given PSF and focus is rendered from the 3 × 3 tile neighbourhood and cached, so
a stage can roam freely and revisiting a field costs a copy.

Every frame is fully described by a JSON-able *frame truth* dict (slide, stage position, ROI,
modality, dose, detector, bleaching state). :func:`expected_frame` turns that dict into the
noise-free expected frame, and the camera adds noise to exactly that array, so evaluation can
regenerate the truth of any recorded frame without the camera's help.

Photon budget: photons per label-equivalent = 0.02 × laser power (%) × exposure (ms); with the
Dose presets (5 / 20 / 80 %) at 10 ms a labelled filament peaks at ≈ 25 / 100 / 400 photons
in confocal and ≈ 6 / 25 / 100 in STED (the narrower STED PSF collects fewer photons per
label). Bleaching multiplies the surviving label fraction of every scanned 1 µm cell by
exp(−κ·D·(1 + c·I/I_sat)) per frame, D = laser power × exposure / 100, κ = 0.005, c = 0.05, so
STED bleaches faster than confocal and repeated frames of one field fade.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from live_restore.sim import optics, render
from live_restore.sim.detector import Detector
from live_restore.sim.specimens import SPECIMENS, Points, generate

MODALITIES: tuple[str, ...] = ("Confocal", "STED")
TILE_PX = 256
PHOTONS_PER_LABEL_PER_DOSE = 0.02  # photons per label-equivalent per (% laser · ms)
SATURATION_PER_PERCENT = 0.4  # I/I_sat per % depletion power: 50 % → 20 → FWHM ≈ 51 nm
BACKGROUND_PER_LABEL_PHOTON = 0.01  # autofluorescence, relative to photons per label
STED_BACKGROUND_PER_SATURATION = 0.02  # anti-Stokes / re-excitation background growth
DARK_COUNTS_PER_MS = 0.005
BLEACH_KAPPA = 0.005
BLEACH_STED_FACTOR = 0.05
BLEACH_CELL_UM = 1.0
TRUTH_VERSION = 1

_CACHE_TILES = 96
_TRUTHS_KEPT = 4096
_truths: OrderedDict[bytes, str] = OrderedDict()
_tile_cache: OrderedDict[tuple, np.ndarray] = OrderedDict()
_cache_lock = threading.Lock()


@dataclass(frozen=True)
class Optics:
    """Shared optical parameters of the simulated scope."""

    wavelength_nm: float = 640.0
    na: float = 1.4
    pinhole_au: float = 1.0
    sted_residual: float = 0.02
    axial_fwhm_nm: float = 600.0

    def psf(self, modality: str, depletion_power: float) -> optics.PSF:
        """The PSF for a modality; ``depletion_power`` (%) only matters for STED."""
        check_modality(modality)
        if modality == "Confocal":
            return optics.confocal(self.wavelength_nm, self.na, self.pinhole_au, self.axial_fwhm_nm)
        return optics.sted(
            saturation(depletion_power),
            self.wavelength_nm,
            self.na,
            self.pinhole_au,
            self.sted_residual,
            self.axial_fwhm_nm,
        )


def check_modality(modality: str) -> str:
    if modality not in MODALITIES:
        raise ValueError(f"unknown modality {modality!r}; expected one of {MODALITIES}")
    return modality


def saturation(depletion_power: float) -> float:
    """I/I_sat of the depletion beam for a depletion power in percent."""
    if depletion_power < 0:
        raise ValueError(f"depletion power must be >= 0 %, got {depletion_power!r}")
    return SATURATION_PER_PERCENT * depletion_power


def photons_per_label(laser_power: float, exposure_ms: float) -> float:
    """Photon budget ∝ excitation power × dwell (exposure is the dwell-time proxy)."""
    if laser_power < 0:
        raise ValueError(f"laser power (dose) must be >= 0 %, got {laser_power!r}")
    if exposure_ms < 0:
        raise ValueError(f"exposure must be >= 0 ms, got {exposure_ms!r}")
    return PHOTONS_PER_LABEL_PER_DOSE * laser_power * exposure_ms


class Slide:
    """Lazily generated specimen on a square slide centred at (0, 0) µm."""

    def __init__(
        self, seed: int, specimen: str = "mixture", pixel_um: float = 0.025, size_um: float = 200.0
    ) -> None:
        if specimen not in SPECIMENS:
            raise ValueError(f"unknown specimen {specimen!r}; expected one of {SPECIMENS}")
        if pixel_um <= 0:
            raise ValueError(f"pixel size must be > 0 µm, got {pixel_um!r}")
        self.seed, self.specimen, self.pixel_um, self.size_um = (
            int(seed),
            specimen,
            pixel_um,
            size_um,
        )
        self.tile_um = TILE_PX * pixel_um
        self._half_tiles = int(np.ceil(size_um / 2 / self.tile_um))
        self._points: dict[tuple[int, int], Points] = {}

    @property
    def key(self) -> tuple:
        return (self.seed, self.specimen, self.pixel_um, self.size_um)

    def tile_points(self, tx: int, ty: int) -> Points:
        """Labels of the structures anchored in tile (tx, ty); a pure function of the seed."""
        if (tx, ty) not in self._points:
            if max(abs(tx + 0.5), abs(ty + 0.5)) > self._half_tiles:
                pts = Points.empty()
            else:
                rng = np.random.default_rng(
                    [self.seed, SPECIMENS.index(self.specimen), tx + 2**20, ty + 2**20]
                )
                t = self.tile_um
                pts = generate(self.specimen, rng, (tx * t, ty * t, (tx + 1) * t, (ty + 1) * t), t)
            self._points[(tx, ty)] = pts
        return self._points[(tx, ty)]

    def neighbourhood(self, tx: int, ty: int) -> Points:
        return Points.concat(
            [self.tile_points(tx + i, ty + j) for j in (-1, 0, 1) for i in (-1, 0, 1)]
        )

    def tile(self, tx: int, ty: int, psf: optics.PSF | None, z_um: float) -> np.ndarray:
        """Blurred labels per pixel of one tile (or the unblurred density when psf is None)."""
        key = (*self.key, tx, ty, psf, round(z_um, 4))
        with _cache_lock:
            hit = _tile_cache.get(key)
            if hit is not None:
                _tile_cache.move_to_end(key)
                return hit
        origin = (tx * self.tile_um, ty * self.tile_um)
        pts = self.neighbourhood(tx, ty)
        shape = (TILE_PX, TILE_PX)
        if psf is None:
            img = render.density(pts, origin, shape, self.pixel_um, optics.confocal(), z_um)
        else:
            img = render.render(pts, origin, shape, self.pixel_um, [psf], [z_um])[0, 0]
        img.setflags(write=False)
        with _cache_lock:
            _tile_cache[key] = img
            while len(_tile_cache) > _CACHE_TILES:
                _tile_cache.popitem(last=False)
        return img

    def region(
        self, gx0: int, gy0: int, shape: tuple[int, int], tile_fn: Callable[[int, int], np.ndarray]
    ) -> np.ndarray:
        """Assemble global pixels [gy0, gy0+h) × [gx0, gx0+w) from cached tiles."""
        h, w = shape
        out = np.empty(shape, np.float32)
        for ty in range(gy0 // TILE_PX, (gy0 + h - 1) // TILE_PX + 1):
            for tx in range(gx0 // TILE_PX, (gx0 + w - 1) // TILE_PX + 1):
                t = tile_fn(tx, ty)
                y0, x0 = max(gy0, ty * TILE_PX), max(gx0, tx * TILE_PX)
                y1, x1 = min(gy0 + h, (ty + 1) * TILE_PX), min(gx0 + w, (tx + 1) * TILE_PX)
                out[y0 - gy0 : y1 - gy0, x0 - gx0 : x1 - gx0] = t[
                    y0 - ty * TILE_PX : y1 - ty * TILE_PX, x0 - tx * TILE_PX : x1 - tx * TILE_PX
                ]
        return out


@lru_cache(maxsize=8)
def get_slide(seed: int, specimen: str, pixel_um: float, size_um: float) -> Slide:
    """Shared Slide instances, so the camera and ground_truth() reuse one tile cache."""
    return Slide(seed, specimen, pixel_um, size_um)


class Bleaching:
    """Surviving label fraction on a coarse grid (1 µm cells) covering the slide."""

    def __init__(self, size_um: float, cell_um: float = BLEACH_CELL_UM) -> None:
        self.cell_um = cell_um
        self.half_um = size_um / 2
        n = int(np.ceil(size_um / cell_um))
        self.survival = np.ones((n, n))

    def cells(self, x0: float, x1: float) -> tuple[int, int]:
        """Range of cells [c0, c1) whose centres bracket the interval [x0, x1] µm."""
        n = self.survival.shape[0]
        c0 = int(np.floor((x0 + self.half_um) / self.cell_um - 0.5))
        c1 = int(np.floor((x1 + self.half_um) / self.cell_um - 0.5)) + 2
        return max(0, min(c0, n - 1)), max(1, min(c1, n))

    def crop(self, box: tuple[float, float, float, float]) -> dict:
        """JSON-able bleach state over a field (x0, y0, x1, y1) µm, rounded as recorded."""
        cx0, cx1 = self.cells(box[0], box[2])
        cy0, cy1 = self.cells(box[1], box[3])
        vals = np.round(self.survival[cy0:cy1, cx0:cx1], 6)
        return {
            "cell_um": self.cell_um,
            "half_um": self.half_um,
            "origin_cell": [cx0, cy0],
            "survival": vals.tolist(),
        }

    def expose(self, box: tuple[float, float, float, float], rate: float) -> None:
        """Bleach the cells under a scanned field; ``rate`` = κ·D·(1 + c·I/I_sat)."""
        n = self.survival.shape[0]
        edges = np.arange(n + 1) * self.cell_um - self.half_um
        fx = np.clip(np.minimum(edges[1:], box[2]) - np.maximum(edges[:-1], box[0]), 0, None)
        fy = np.clip(np.minimum(edges[1:], box[3]) - np.maximum(edges[:-1], box[1]), 0, None)
        frac = np.outer(fy, fx) / self.cell_um**2
        nz = frac > 0
        self.survival[nz] *= np.exp(-rate * frac[nz])


def bleach_map(
    state: dict, origin_um: tuple[float, float], shape: tuple[int, int], pixel_um: float
) -> np.ndarray:
    """Bilinear interpolation of a recorded bleach crop onto the frame's pixel centres."""
    vals = np.asarray(state["survival"], np.float32)
    if vals.min() == vals.max():  # unbleached or uniformly bleached: skip the interpolation
        return np.full(shape, vals.flat[0], np.float32)
    cx0, cy0 = state["origin_cell"]
    cell, half = state["cell_um"], state["half_um"]

    def interp(x0: float, n: int, c0: int, m: int) -> np.ndarray:
        u = (x0 + np.arange(n) * pixel_um + half) / cell - 0.5 - c0
        u = np.clip(u, 0, m - 1)
        i = np.minimum(np.floor(u).astype(int), max(m - 2, 0))
        f = (u - i).astype(np.float32)
        mat = np.zeros((n, m), np.float32)
        mat[np.arange(n), i] = 1 - f
        if m > 1:
            mat[np.arange(n), i + 1] += f
        return mat

    ry = interp(origin_um[1], shape[0], cy0, vals.shape[0])
    rx = interp(origin_um[0], shape[1], cx0, vals.shape[1])
    return ry @ vals @ rx.T


@dataclass
class Microscope:
    """Mutable scope state (stage, modality, dose, ROI, bleaching) that renders frames."""

    seed: int = 0
    specimen: str = "mixture"
    pixel_um: float = 0.025
    sensor: tuple[int, int] = (512, 512)
    slide_um: float = 200.0
    optics: Optics = field(default_factory=Optics)
    detector: Detector = field(default_factory=lambda: Detector(1.0, 10.0, 0.5, 12))
    stage_um: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    modality: str = "Confocal"
    laser_power: float = 5.0
    depletion_power: float = 50.0
    exposure_ms: float = 10.0
    roi: tuple[int, int, int, int] | None = None
    frame: int = 0

    def __post_init__(self) -> None:
        self.slide = get_slide(self.seed, self.specimen, self.pixel_um, self.slide_um)
        self.bleaching = Bleaching(self.slide_um)

    def set_roi(self, x: int, y: int, w: int, h: int) -> None:
        if w <= 0 or h <= 0 or x < 0 or y < 0 or x + w > self.sensor[1] or y + h > self.sensor[0]:
            raise ValueError(
                f"invalid ROI (x={x}, y={y}, w={w}, h={h}) for a {self.sensor[1]}x{self.sensor[0]}"
                " sensor: width and height must be > 0 and the ROI inside the sensor"
            )
        self.roi = (int(x), int(y), int(w), int(h))

    def get_roi(self) -> tuple[int, int, int, int]:
        return self.roi or (0, 0, self.sensor[1], self.sensor[0])

    def truth(self) -> dict:
        """The JSON-able description of the next frame (see module docstring)."""
        check_modality(self.modality)
        x, y, w, h = self.get_roi()
        p = self.pixel_um
        gx0 = round(self.stage_um[0] / p) - self.sensor[1] // 2 + x
        gy0 = round(self.stage_um[1] / p) - self.sensor[0] // 2 + y
        box = ((gx0 - 0.5) * p, (gy0 - 0.5) * p, (gx0 + w - 0.5) * p, (gy0 + h - 0.5) * p)
        sat = saturation(self.depletion_power)  # validates even when unused
        sat = sat if self.modality == "STED" else 0.0
        ppl = photons_per_label(self.laser_power, self.exposure_ms)
        bg = ppl * BACKGROUND_PER_LABEL_PHOTON * (1 + STED_BACKGROUND_PER_SATURATION * sat)
        psf = self.optics.psf(self.modality, self.depletion_power)
        return {
            "version": TRUTH_VERSION,
            "slide": {
                "seed": self.slide.seed,
                "specimen": self.specimen,
                "pixel_size_um": p,
                "size_um": self.slide_um,
            },
            "optics": self.optics.__dict__.copy(),
            "stage_um": [float(v) for v in self.stage_um],
            "origin_px": [int(gx0), int(gy0)],
            "shape": [int(h), int(w)],
            "modality": self.modality,
            "depletion_power": float(self.depletion_power),
            "sted_saturation": sat,
            "psf_fwhm_nm": psf.fwhm_nm,
            "laser_power": float(self.laser_power),
            "exposure_ms": float(self.exposure_ms),
            "photons_per_label": ppl,
            "background_photons": bg + DARK_COUNTS_PER_MS * self.exposure_ms,
            "detector": self.detector.to_dict(),
            "bleach": self.bleaching.crop(box),
            "frame": self.frame,
            "noise_seed": [self.slide.seed, self.frame],
        }

    def acquire(self) -> tuple[np.ndarray, dict]:
        """Render one noisy frame (float32 ADU, quantised) and advance bleaching."""
        truth = self.truth()
        photons = expected_photons(truth)
        img = self.detector.sample(photons, np.random.default_rng(truth["noise_seed"]))
        p = self.pixel_um
        gx0, gy0 = truth["origin_px"]
        h, w = truth["shape"]
        dose = self.laser_power * self.exposure_ms / 100.0
        rate = BLEACH_KAPPA * dose * (1 + BLEACH_STED_FACTOR * truth["sted_saturation"])
        self.bleaching.expose(
            ((gx0 - 0.5) * p, (gy0 - 0.5) * p, (gx0 + w - 0.5) * p, (gy0 + h - 0.5) * p), rate
        )
        self.frame += 1
        return img, truth


def _parse(sim_truth: str | dict) -> dict:
    truth = json.loads(sim_truth) if isinstance(sim_truth, str) else sim_truth
    if truth.get("version") != TRUTH_VERSION:
        raise ValueError(f"unsupported sim_truth version {truth.get('version')!r}")
    return truth


def _slide_and_geometry(truth: dict) -> tuple[Slide, tuple[float, float], tuple[int, int]]:
    s = truth["slide"]
    slide = get_slide(s["seed"], s["specimen"], s["pixel_size_um"], s["size_um"])
    gx0, gy0 = truth["origin_px"]
    p = s["pixel_size_um"]
    return slide, (gx0 * p, gy0 * p), (truth["shape"][0], truth["shape"][1])


def expected_photons(sim_truth: str | dict) -> np.ndarray:
    """Expected detected photons per pixel of a frame (float32), background included."""
    truth = _parse(sim_truth)
    slide, origin, shape = _slide_and_geometry(truth)
    psf = Optics(**truth["optics"]).psf(truth["modality"], truth["depletion_power"])
    z = truth["stage_um"][2]
    gx0, gy0 = truth["origin_px"]
    labels = slide.region(gx0, gy0, shape, lambda tx, ty: slide.tile(tx, ty, psf, z))
    labels *= bleach_map(truth["bleach"], origin, shape, slide.pixel_um)
    labels *= np.float32(truth["photons_per_label"])
    labels += np.float32(truth["background_photons"])
    return labels


def ground_truth(sim_truth: str | dict) -> np.ndarray:
    """Expected value of the raw frame (noise-free, in camera ADU incl. gain and offset).

    Quantisation and clipping at the bit depth are not applied: this is the mean of the
    un-clipped readout, which is what the camera's noise is drawn around.
    """
    truth = _parse(sim_truth)
    return Detector(**truth["detector"]).expected(expected_photons(truth))


def structure(sim_truth: str | dict) -> np.ndarray:
    """Unblurred surviving labels per pixel at the frame's focus (float32, (Y, X)).

    Labels are weighted by optical sectioning, i.e. this is the frame as an infinitely sharp
    lateral PSF would see it, before dose scaling.
    """
    truth = _parse(sim_truth)
    slide, origin, shape = _slide_and_geometry(truth)
    z = truth["stage_um"][2]
    gx0, gy0 = truth["origin_px"]
    dens = slide.region(gx0, gy0, shape, lambda tx, ty: slide.tile(tx, ty, None, z))
    return dens * bleach_map(truth["bleach"], origin, shape, slide.pixel_um)


def _fingerprint(frame: np.ndarray) -> bytes:
    a = np.ascontiguousarray(frame)
    return hashlib.blake2b(a.tobytes(), digest_size=16, person=str(a.shape).encode()[:16]).digest()


def register_frame(frame: np.ndarray, sim_truth: str) -> None:
    """Remember the truth of a frame as delivered (the camera calls this for every frame)."""
    key = _fingerprint(frame)
    with _cache_lock:
        _truths[key] = sim_truth
        _truths.move_to_end(key)
        while len(_truths) > _TRUTHS_KEPT:
            _truths.popitem(last=False)


def frame_truth(frame: np.ndarray, meta: dict | None = None) -> str:
    """The ``sim_truth`` JSON of a simulated frame.

    Sequenced acquisitions carry it in ``meta["camera_metadata"]["sim_truth"]``; pymmcore-plus
    drops camera metadata for snapped MDA frames, so otherwise the frame's pixels are looked up
    among the last 4096 frames the simulated camera produced in this process.
    """
    cam = (meta or {}).get("camera_metadata") or {}
    if "sim_truth" in cam:
        return str(cam["sim_truth"])
    with _cache_lock:
        hit = _truths.get(_fingerprint(frame))
    if hit is None:
        raise KeyError(
            "frame was not produced by the simulated camera in this process (or is"
            f" older than the last {_TRUTHS_KEPT} frames)"
        )
    return hit
