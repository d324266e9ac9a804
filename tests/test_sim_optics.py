"""PSF widths of rendered beads match the stated confocal and STED resolution."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import curve_fit

from live_restore.sim import optics, render
from live_restore.sim.microscope import Optics
from live_restore.sim.specimens import Points

PIXEL_UM = 0.025


def _bead(rng: np.random.Generator, centre_um: float, diameter_um: float = 0.02) -> Points:
    v = rng.normal(size=(32, 3))
    v *= (
        diameter_um / 2 * rng.uniform(0, 1, (32, 1)) ** (1 / 3) / np.linalg.norm(v, axis=1)[:, None]
    )
    return Points(centre_um + v[:, 0], centre_um + v[:, 1], v[:, 2], np.full(32, 100 / 32))


def _fitted_fwhm_nm(img: np.ndarray) -> float:
    yy, xx = np.mgrid[: img.shape[0], : img.shape[1]]

    def gauss(c, a, x0, y0, s, b):
        return (a * np.exp(-((c[1] - x0) ** 2 + (c[0] - y0) ** 2) / (2 * s * s)) + b).ravel()

    c = img.shape[0] / 2
    popt, _ = curve_fit(gauss, (yy, xx), img.ravel(), p0=[img.max(), c, c, 2.0, 0.0])
    return abs(popt[3]) * optics.FWHM_PER_SIGMA * PIXEL_UM * 1000


@pytest.mark.parametrize(
    ("modality", "depletion"), [("Confocal", 0.0), ("STED", 50.0), ("STED", 20.0)]
)
def test_bead_fwhm_matches_stated(modality: str, depletion: float) -> None:
    psf = Optics().psf(modality, depletion)
    bead = _bead(np.random.default_rng(1), 32 * PIXEL_UM)
    img = render.render(bead, (0.0, 0.0), (64, 64), PIXEL_UM, [psf])[0, 0]
    assert _fitted_fwhm_nm(img) == pytest.approx(psf.fwhm_nm, rel=0.10)


def test_stated_values() -> None:
    assert optics.confocal_fwhm_nm(640, 1.4, 1.0) == pytest.approx(233, abs=2)
    for sat in (7.5, 20.0, 32.5):
        assert 40 <= optics.sted_fwhm_nm(sat, 640, 1.4, 1.0) <= 80
    assert Optics().psf("STED", 50.0).fwhm_nm == pytest.approx(233.1 / np.sqrt(21), rel=1e-3)


def test_defocus_spreads_and_dims() -> None:
    psf = optics.confocal()
    p = Points(np.array([0.8]), np.array([0.8]), np.array([0.0]), np.array([1.0]))
    imgs = render.render(p, (0.0, 0.0), (64, 64), PIXEL_UM, [psf], [0.0, 0.3, 0.6])[0]
    peaks = imgs.max(axis=(1, 2))
    assert peaks[0] == pytest.approx(1.0, rel=1e-3)
    assert peaks[0] > peaks[1] > peaks[2]
    assert imgs[2].sum() < imgs[0].sum()  # optical sectioning


@pytest.mark.parametrize(
    ("call", "bad"),
    [
        (lambda: optics.sted_fwhm_nm(-1.0), "-1.0"),
        (lambda: optics.confocal_fwhm_nm(na=0.0), "0.0"),
        (lambda: optics.gaussian(-5.0), "-5.0"),
        (lambda: Optics().psf("Widefield", 0.0), "Widefield"),
    ],
)
def test_bad_optics_raise(call, bad: str) -> None:
    with pytest.raises(ValueError, match=bad):
        call()
