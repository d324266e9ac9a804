"""Fluorescent specimens as clouds of labelled points (µm coordinates, per-label brightness).

Specimens are point clouds rather than images so that one description serves any pixel size,
focal plane and PSF, and so that structures crossing a tile border render identically from
either side. Each generator places structures whose *anchor* lies inside a box; a structure
extends at most ``reach_um`` from its anchor, which is what lets the lazy slide render a tile
from its 3 × 3 neighbourhood only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SPECIMENS: tuple[str, ...] = (
    "filaments",
    "beads",
    "vesicles",
    "mitochondria",
    "nuclear_envelope",
    "mixture",
)

_LABEL_RADIUS_UM = 0.02  # microtubule radius (12.5 nm) plus antibody label offset


@dataclass(frozen=True)
class Points:
    """Labels: x, y, z in µm (z = 0 is the nominal focal plane) and relative brightness w."""

    x: np.ndarray
    y: np.ndarray
    z: np.ndarray
    w: np.ndarray

    @staticmethod
    def empty() -> Points:
        e = np.zeros(0)
        return Points(e, e, e, e)

    @staticmethod
    def concat(parts: list[Points]) -> Points:
        if not parts:
            return Points.empty()
        return Points(*(np.concatenate([getattr(p, a) for p in parts]) for a in "xyzw"))

    def shifted(self, dx: float, dy: float) -> Points:
        return Points(self.x + dx, self.y + dy, self.z, self.w)

    def __len__(self) -> int:
        return len(self.x)


Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in µm


def _modulation(rng: np.random.Generator, s: np.ndarray, length: float, sd: float) -> np.ndarray:
    """Smooth log-normal brightness modulation along a structure (labelling density varies)."""
    knots = np.arange(0.0, length + 0.5, 0.5)
    vals = rng.normal(0.0, sd, knots.size)
    return np.exp(np.interp(s, knots, vals) - sd**2 / 2)


def _chain(
    rng: np.random.Generator, start: np.ndarray, angle: float, length: float, lp_um: float
) -> np.ndarray:
    """Worm-like chain in the plane: tangent angle diffuses with variance ds / Lp per step."""
    ds = 0.02
    n = max(2, int(length / ds))
    theta = angle + np.cumsum(rng.normal(0.0, np.sqrt(ds / lp_um), n))
    steps = ds * np.stack([np.cos(theta), np.sin(theta)], axis=1)
    return start + np.concatenate([np.zeros((1, 2)), np.cumsum(steps, axis=0)])


def _sample_along(
    rng: np.random.Generator, path: np.ndarray, density_per_um: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Poisson labels along a polyline: positions, unit tangents, arc length, total length."""
    seg = np.diff(path, axis=0)
    seg_len = np.hypot(seg[:, 0], seg[:, 1])
    cum = np.concatenate([[0.0], np.cumsum(seg_len)])
    total = float(cum[-1])
    s = np.sort(rng.uniform(0.0, total, rng.poisson(density_per_um * total)))
    idx = np.clip(np.searchsorted(cum, s, side="right") - 1, 0, len(seg) - 1)
    frac = (s - cum[idx]) / np.maximum(seg_len[idx], 1e-12)
    pos = path[idx] + seg[idx] * frac[:, None]
    tang = seg[idx] / np.maximum(seg_len[idx], 1e-12)[:, None]
    return pos, tang, s, total


def filaments(rng: np.random.Generator, box: Box, reach_um: float, per_um2: float = 0.1) -> Points:
    """Microtubule-like worm-like chains (effective Lp 5–30 µm), crossing one another."""
    parts = []
    for _ in range(rng.poisson(per_um2 * _area(box))):
        anchor = _uniform_in(rng, box)
        angle = rng.uniform(0, 2 * np.pi)
        lp = rng.uniform(5.0, 30.0)
        z0, tilt = rng.uniform(-0.25, 0.25), rng.normal(0.0, 0.03)  # gently tilted in z
        halves = [
            _chain(rng, anchor, angle + k * np.pi, rng.uniform(0.5, 1.0) * reach_um, lp)[::-1]
            for k in (0, 1)
        ]
        path = np.concatenate([halves[0], halves[1][::-1][1:]])
        pos, tang, s, total = _sample_along(rng, path, 120.0)
        phi = rng.uniform(0, 2 * np.pi, len(s))
        normal = np.stack([-tang[:, 1], tang[:, 0]], axis=1)
        xy = pos + _LABEL_RADIUS_UM * np.cos(phi)[:, None] * normal
        z = z0 + tilt * (s - total / 2) + _LABEL_RADIUS_UM * np.sin(phi)
        parts.append(Points(xy[:, 0], xy[:, 1], z, _modulation(rng, s, total, 0.5)))
    return Points.concat(parts)


def beads(
    rng: np.random.Generator, box: Box, per_um2: float = 0.05, diameter_um: float | None = None
) -> Points:
    """Fluorescent beads, 20–200 nm (fixed diameter for the nanobead calibration sample)."""
    n = rng.poisson(per_um2 * _area(box))
    xy = _uniform_in(rng, box, n)
    d = np.full(n, diameter_um) if diameter_um else rng.uniform(0.02, 0.2, n)
    z0 = rng.uniform(-0.2, 0.2, n)
    k = 8  # labels per bead: enough to shape a 200 nm sphere, cheap for a 40 nm one
    off = rng.normal(size=(n, k, 3))
    off /= np.linalg.norm(off, axis=2, keepdims=True) + 1e-12
    off *= (d[:, None, None] / 2) * rng.uniform(0, 1, (n, k, 1)) ** (1 / 3)
    brightness = 40.0 * (d / 0.04) ** 1.5 * rng.lognormal(0.0, 0.2, n)  # dye-loaded, not solid
    w = np.repeat(brightness / k, k)
    return Points(
        (xy[:, 0, None] + off[..., 0]).ravel(),
        (xy[:, 1, None] + off[..., 1]).ravel(),
        (z0[:, None] + off[..., 2]).ravel(),
        w,
    )


def vesicles(rng: np.random.Generator, box: Box, per_um2: float = 0.25) -> Points:
    """Membrane-labelled hollow shells, 50–200 nm in diameter (rings under STED)."""
    parts = []
    for _ in range(rng.poisson(per_um2 * _area(box))):
        c = _uniform_in(rng, box)
        r = rng.uniform(0.025, 0.1)
        n = rng.poisson(1500.0 * 4 * np.pi * r**2) + 1
        v = rng.normal(size=(n, 3))
        v *= r / np.linalg.norm(v, axis=1, keepdims=True)
        z0 = rng.uniform(-0.3, 0.3)
        parts.append(Points(c[0] + v[:, 0], c[1] + v[:, 1], z0 + v[:, 2], np.ones(n)))
    return Points.concat(parts)


def mitochondria(
    rng: np.random.Generator, box: Box, reach_um: float, per_um2: float = 0.04
) -> Points:
    """Outer-membrane-labelled tubes 250–500 nm wide: hollow cross-sections, two rims in STED."""
    parts = []
    for _ in range(rng.poisson(per_um2 * _area(box))):
        anchor = _uniform_in(rng, box)
        length = min(rng.uniform(1.0, 5.0), reach_um)
        path = _chain(rng, anchor, rng.uniform(0, 2 * np.pi), length, 3.0)
        r = rng.uniform(0.125, 0.25)
        pos, tang, s, total = _sample_along(rng, path, 300.0 * 2 * np.pi * r)
        phi = rng.uniform(0, 2 * np.pi, len(s))
        normal = np.stack([-tang[:, 1], tang[:, 0]], axis=1)
        xy = pos + r * np.cos(phi)[:, None] * normal
        z = rng.uniform(-0.1, 0.1) + r * np.sin(phi)
        parts.append(Points(xy[:, 0], xy[:, 1], z, _modulation(rng, s, total, 0.3)))
    return Points.concat(parts)


def nuclear_envelope(
    rng: np.random.Generator, box: Box, reach_um: float, per_um2: float = 0.005
) -> Points:
    """Equatorial section of a nucleus: a membrane ring (radius 3–6 µm) with NPC puncta.

    NPCs are eightfold rings of 120 nm diameter, 1.5–3 per µm of envelope.
    """
    parts = []
    for _ in range(rng.poisson(per_um2 * _area(box))):
        c = _uniform_in(rng, box)
        radius = min(rng.uniform(3.0, 6.0), 0.95 * reach_um)
        ecc = rng.uniform(0.8, 1.0)
        rot = rng.uniform(0, np.pi)
        perim = 2 * np.pi * radius

        def ellipse(t: np.ndarray, c=c, radius=radius, ecc=ecc, rot=rot) -> tuple:
            ex, ey = radius * np.cos(t), ecc * radius * np.sin(t)
            return (
                c[0] + ex * np.cos(rot) - ey * np.sin(rot),
                c[1] + ex * np.sin(rot) + ey * np.cos(rot),
            )

        n_mem = rng.poisson(200.0 * perim)
        mx, my = ellipse(rng.uniform(0, 2 * np.pi, n_mem))
        n_npc = rng.poisson(rng.uniform(1.5, 3.0) * perim)
        t = np.repeat(rng.uniform(0, 2 * np.pi, n_npc), 8)
        nx, ny = ellipse(t)
        ang = np.tile(np.arange(8) * np.pi / 4, n_npc) + np.repeat(rng.uniform(0, 1, n_npc), 8)
        # NPC rings sit in the envelope, which is vertical at the equator: ring in the t-z plane
        tx, ty = -np.sin(rot), np.cos(rot)
        npc_z = 0.06 * np.sin(ang)
        parts.append(
            Points(
                np.concatenate([mx, nx + 0.06 * np.cos(ang) * tx]),
                np.concatenate([my, ny + 0.06 * np.cos(ang) * ty]),
                np.concatenate([rng.uniform(-0.5, 0.5, n_mem), npc_z]),
                np.concatenate([np.ones(n_mem), np.full(8 * n_npc, 3.0)]),
            )
        )
    return Points.concat(parts)


def generate(kind: str, rng: np.random.Generator, box: Box, reach_um: float) -> Points:
    """Labels of structures anchored inside ``box``; none reaches further than ``reach_um``."""
    if kind == "filaments":
        return filaments(rng, box, reach_um, per_um2=0.3)
    if kind == "beads":
        return beads(rng, box, per_um2=0.5, diameter_um=0.04)
    if kind == "vesicles":
        return vesicles(rng, box, per_um2=1.0)
    if kind == "mitochondria":
        return mitochondria(rng, box, reach_um, per_um2=0.12)
    if kind == "nuclear_envelope":
        return Points.concat(
            [nuclear_envelope(rng, box, reach_um, per_um2=0.02), vesicles(rng, box, 0.1)]
        )
    if kind == "mixture":
        return Points.concat(
            [
                filaments(rng, box, reach_um),
                beads(rng, box),
                vesicles(rng, box),
                mitochondria(rng, box, reach_um),
                nuclear_envelope(rng, box, reach_um),
            ]
        )
    raise ValueError(f"unknown specimen {kind!r}; expected one of {SPECIMENS}")


def smooth_field(rng: np.random.Generator, shape: tuple[int, int], scale_px: float) -> np.ndarray:
    """Non-negative random field smooth on ``scale_px``: cytoplasm-like large structures."""
    noise = rng.normal(size=shape)
    ky = np.fft.fftfreq(shape[0])[:, None]
    kx = np.fft.rfftfreq(shape[1])[None, :]
    f = np.fft.irfft2(
        np.fft.rfft2(noise) * np.exp(-2 * np.pi**2 * scale_px**2 * (kx**2 + ky**2)), s=shape
    )
    f = (f - f.mean()) / (f.std() + 1e-12)
    return np.clip(f + 0.5, 0.0, None)


def _area(box: Box) -> float:
    return (box[2] - box[0]) * (box[3] - box[1])


def _uniform_in(rng: np.random.Generator, box: Box, n: int | None = None) -> np.ndarray:
    size = (2,) if n is None else (n, 2)
    return rng.uniform((box[0], box[1]), (box[2], box[3]), size)
