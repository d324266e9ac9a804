"""Confocal and STED point-spread functions as Gaussian mixtures with a defocus model.

Gaussians are used because their transfer functions are analytic: blurring a tile is one FFT
of the label density and a multiply, which is what makes a 512² frame cheap. The widths follow
the stated optics:

- confocal lateral FWHM = (0.37 + 0.14·min(P, 1))·λ/NA for a pinhole of P Airy units
  (0.51·λ/NA ≈ 233 nm at 640 nm, NA 1.4, 1 AU; 0.37·λ/NA for a closed pinhole);
- STED lateral FWHM = confocal FWHM / √(1 + I/I_sat) (the square-root law, Harke et al. 2008),
  plus a small residual confocal component (imperfect donut zero);
- axial: the in-plane integrated signal falls as a Gaussian of the stated axial FWHM (optical
  sectioning, shared by confocal and STED), while the lateral width grows with defocus as
  σ(Δz)² = σ₀² + σ_c²·(Δz / z_R)², σ_c being the confocal σ.

The PSF is normalised to a peak of 1 in focus: a label at the scan point contributes one
"label-equivalent"; STED therefore collects fewer photons per label than confocal.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))


@dataclass(frozen=True)
class PSF:
    """Lateral main lobe + residual lobe (both Gaussian), with Gaussian optical sectioning."""

    fwhm_nm: float
    residual_fwhm_nm: float
    residual: float = 0.0
    axial_fwhm_nm: float = 600.0
    z_rayleigh_nm: float = 300.0

    def lobes(self, dz_nm: float) -> list[tuple[float, float, float]]:
        """(peak amplitude in focus, σ in focus, σ at this defocus), σ in nm, for each lobe."""
        sc = self.residual_fwhm_nm / FWHM_PER_SIGMA
        grow = (sc * dz_nm / self.z_rayleigh_nm) ** 2
        out = [(1.0 - self.residual, self.fwhm_nm / FWHM_PER_SIGMA)]
        if self.residual > 0:
            out.append((self.residual, sc))
        return [(a, s, float(np.sqrt(s**2 + grow))) for a, s in out]

    def sectioning(self, dz_nm: float) -> float:
        """Fraction of the in-focus integrated signal collected from a plane at defocus dz."""
        sz = self.axial_fwhm_nm / FWHM_PER_SIGMA
        return float(np.exp(-0.5 * (dz_nm / sz) ** 2))

    def reach_nm(self) -> float:
        """Defocus beyond which a plane contributes < 1 % of the in-focus signal."""
        return 3.0 * self.axial_fwhm_nm / FWHM_PER_SIGMA

    def image(self, shape: tuple[int, int], spacing_nm: float, dz_nm: float = 0.0) -> np.ndarray:
        """The PSF sampled on a grid centred at pixel (shape // 2), peak 1 in focus."""
        yy, xx = (np.arange(n) - n // 2 for n in shape)
        r2 = (yy[:, None] ** 2 + xx[None, :] ** 2) * spacing_nm**2
        out = np.zeros(shape)
        for a, s0, s in self.lobes(dz_nm):
            out += a * (s0 / s) ** 2 * np.exp(-r2 / (2 * s**2))
        return out * self.sectioning(dz_nm)


def confocal_fwhm_nm(
    wavelength_nm: float = 640.0, na: float = 1.4, pinhole_au: float = 1.0
) -> float:
    """Lateral FWHM of a confocal PSF (see module docstring)."""
    _check_optics(wavelength_nm, na, pinhole_au)
    return (0.37 + 0.14 * min(pinhole_au, 1.0)) * wavelength_nm / na


def sted_fwhm_nm(
    saturation: float, wavelength_nm: float = 640.0, na: float = 1.4, pinhole_au: float = 1.0
) -> float:
    """STED lateral FWHM for depletion intensity I/I_sat = ``saturation``."""
    if saturation < 0:
        raise ValueError(f"STED saturation I/I_sat must be >= 0, got {saturation!r}")
    return confocal_fwhm_nm(wavelength_nm, na, pinhole_au) / np.sqrt(1.0 + saturation)


def confocal(
    wavelength_nm: float = 640.0,
    na: float = 1.4,
    pinhole_au: float = 1.0,
    axial_fwhm_nm: float = 600.0,
) -> PSF:
    """Confocal PSF at the stated wavelength, NA and pinhole."""
    f = confocal_fwhm_nm(wavelength_nm, na, pinhole_au)
    return PSF(f, f, 0.0, axial_fwhm_nm)


def sted(
    saturation: float,
    wavelength_nm: float = 640.0,
    na: float = 1.4,
    pinhole_au: float = 1.0,
    residual: float = 0.02,
    axial_fwhm_nm: float = 600.0,
) -> PSF:
    """STED PSF: narrowed main lobe plus ``residual`` of the confocal PSF."""
    conf = confocal_fwhm_nm(wavelength_nm, na, pinhole_au)
    fwhm = sted_fwhm_nm(saturation, wavelength_nm, na, pinhole_au)
    return PSF(fwhm, conf, residual if saturation > 0 else 0.0, axial_fwhm_nm)


def gaussian(fwhm_nm: float, axial_fwhm_nm: float = 600.0) -> PSF:
    """A plain Gaussian PSF (widefield-like or generic tasks)."""
    if fwhm_nm <= 0:
        raise ValueError(f"PSF FWHM must be > 0 nm, got {fwhm_nm!r}")
    return PSF(fwhm_nm, fwhm_nm, 0.0, axial_fwhm_nm)


@functools.lru_cache(maxsize=256)
def transfer(psf: PSF, shape: tuple[int, int], spacing_nm: float, dz_nm: float) -> np.ndarray:
    """rfft2-layout transfer function: multiplying a label-density FFT by it blurs the density
    so that a single in-focus label yields a peak of 1 (sectioning applied for ``dz_nm``)."""
    ky = np.fft.fftfreq(shape[0], d=spacing_nm)[:, None]
    kx = np.fft.rfftfreq(shape[1], d=spacing_nm)[None, :]
    k2 = kx**2 + ky**2
    out = np.zeros((shape[0], shape[1] // 2 + 1))
    for a, s0, s in psf.lobes(dz_nm):
        out += a * 2 * np.pi * s0**2 / spacing_nm**2 * np.exp(-2 * np.pi**2 * s**2 * k2)
    out *= psf.sectioning(dz_nm)
    out.setflags(write=False)
    return out


def _check_optics(wavelength_nm: float, na: float, pinhole_au: float) -> None:
    if wavelength_nm <= 0:
        raise ValueError(f"wavelength must be > 0 nm, got {wavelength_nm!r}")
    if not 0 < na < 1.7:
        raise ValueError(f"NA must be in (0, 1.7), got {na!r}")
    if pinhole_au < 0:
        raise ValueError(f"pinhole must be >= 0 AU, got {pinhole_au!r}")
