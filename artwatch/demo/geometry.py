"""Parametric surfaces for generated artefacts, and the triangle meshes the renderer draws.

Every artefact is a few parametric patches (u, v in [0, 1]): lathe-turned bodies (pots, plates,
coins), superquadrics (figurine limbs, plinths, tablets) and tube arcs (handles). One function
gives positions for any (u, v), so the same surface is evaluated coarsely for the mesh and
finely for the texture painter: patterns are painted from object-space positions and stay
seamless and undistorted without any UV unwrapping.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .noise import matvec

# Regions let the texture painter treat the parts of a lathe body differently.
OUTER, LIP, INNER, BASE = 0, 1, 2, 3

SurfaceFn = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


@dataclass
class Material:
    """How a surface reflects light; painted albedo and gloss live in the texture."""

    shininess: float = 40.0  # Blinn-Phong exponent of the sharp highlight
    specular: float = 0.4  # strength of highlights and reflections
    metal: float = 0.0  # 0 = dielectric (white highlights), 1 = metal (tinted by albedo)
    bump: float = 1.0  # scale of the relief's effect on shading
    sheen: float = 0.0  # broad soft lobe, for satin glazes and worn metal


@dataclass
class Surface:
    """A parametric patch: `fn(u, v) -> (positions (..., 3), region (...))`."""

    fn: SurfaceFn
    nu: int  # mesh columns (around)
    nv: int  # mesh rows (along)
    wrap_u: bool = True  # periodic in u (closed around), so the texture wraps too
    # Ambient occlusion per vertex from (positions, normals, region): crevices and interiors.
    ao: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray] | None = None


@dataclass
class Part:
    """A surface and its baked texture (linear RGB albedo, gloss, metal, height slopes in u, v)."""

    surface: Surface
    texture: np.ndarray  # (Ht, Wt, 6) float32
    material: Material = field(default_factory=Material)


@dataclass
class Mesh:
    """All parts of one object as a single indexed triangle mesh with per-vertex attributes."""

    verts: np.ndarray  # (N, 3)
    normals: np.ndarray  # (N, 3), unit, outward
    uv: np.ndarray  # (N, 2)
    tan_u: np.ndarray  # (N, 3) dP/du
    tan_v: np.ndarray  # (N, 3) dP/dv
    ao: np.ndarray  # (N,)
    faces: np.ndarray  # (F, 3) int32, counter-clockwise seen from outside
    face_part: np.ndarray  # (F,) int16
    parts: list[Part]


def spow(x: np.ndarray, e: float) -> np.ndarray:
    """Signed power, the heart of superquadrics (boxy for e < 1, pinched for e > 1)."""
    return np.sign(x) * np.abs(x) ** e


def lathe(
    r: np.ndarray,
    y: np.ndarray,
    region: np.ndarray,
    flan: Callable[[np.ndarray], np.ndarray] | None = None,
) -> SurfaceFn:
    """Surface of revolution about the y axis from a profile polyline (r_k, y_k).

    The profile is re-parameterised by arc length so texture rows are evenly spaced on the
    object. `flan(theta)` scales the radius round the circumference: hand-thrown wobble, an
    irregular coin flan.
    """
    seg = np.hypot(np.diff(r), np.diff(y))
    s = np.concatenate([[0.0], np.cumsum(seg)])
    s /= s[-1]
    if flan is not None:  # tabulated once: evaluating the harmonics per texel is costly
        table_t = np.linspace(0.0, 2.0 * np.pi, 2049)
        table_f = flan(table_t)

    def fn(u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rr = np.interp(v, s, r)
        yy = np.interp(v, s, y)
        idx = np.clip(np.searchsorted(s, v, side="right") - 1, 0, len(region) - 1)
        theta = 2.0 * np.pi * u
        if flan is not None:
            rr = rr * np.interp(np.mod(theta, 2.0 * np.pi), table_t, table_f)
        pos = np.stack([rr * np.cos(theta), yy, rr * np.sin(theta)], axis=-1)
        return pos.astype(np.float32), region[idx]

    return fn


def superquadric(
    radii: tuple[float, float, float],
    e_lat: float,
    e_lon: float,
    matrix: np.ndarray | None = None,
    centre: tuple[float, float, float] = (0.0, 0.0, 0.0),
    deform: Callable[[np.ndarray], np.ndarray] | None = None,
) -> SurfaceFn:
    """Superellipsoid: ellipsoid (e = 1), rounded box (e ~ 0.2), cylinder (e_lat small, e_lon 1).

    `deform` bends the local shape (taper, bulge, noise) before the affine `matrix` places it.
    """
    a, b, c = radii
    m = np.eye(3) if matrix is None else np.asarray(matrix, dtype=np.float64)
    t = np.asarray(centre, dtype=np.float64)

    def fn(u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        lon = 2.0 * np.pi * u - np.pi
        lat = np.pi * v - np.pi / 2.0
        cl = spow(np.cos(lat), e_lat)
        p = np.stack(
            [
                a * cl * spow(np.cos(lon), e_lon),
                b * spow(np.sin(lat), e_lat),
                c * cl * spow(np.sin(lon), e_lon),
            ],
            axis=-1,
        )
        if deform is not None:
            p = deform(p)
        p = matvec(p, m) + t
        return p.astype(np.float32), np.zeros(np.shape(u), dtype=np.int16)

    return fn


def tube_arc(
    centre: np.ndarray,
    e1: np.ndarray,
    e2: np.ndarray,
    radius: float | tuple[float, float],
    tube: float,
    angles: tuple[float, float],
    squash: float = 1.0,
) -> SurfaceFn:
    """A tube bent along an elliptical arc in the plane (e1, e2): handles and loop ears."""
    r1, r2 = (radius, radius) if np.isscalar(radius) else radius
    centre = np.asarray(centre, dtype=np.float64)
    e1 = np.asarray(e1, dtype=np.float64)
    e2 = np.asarray(e2, dtype=np.float64)
    e3 = np.cross(e1, e2)

    def fn(u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        alpha = 2.0 * np.pi * u
        beta = angles[0] + (angles[1] - angles[0]) * v
        cb = np.cos(beta)[..., None]
        sb = np.sin(beta)[..., None]
        n1 = cb * e1 + sb * e2
        p = (
            centre
            + r1 * cb * e1
            + r2 * sb * e2
            + tube * (np.cos(alpha)[..., None] * n1 + squash * np.sin(alpha)[..., None] * e3)
        )
        return p.astype(np.float32), np.zeros(np.shape(u), dtype=np.int16)

    return fn


def grid_uv(nu: int, nv: int) -> tuple[np.ndarray, np.ndarray]:
    """Parameter grid (nv x nu), u across, v down, both ends included."""
    u = np.linspace(0.0, 1.0, nu, dtype=np.float64)
    v = np.linspace(0.0, 1.0, nv, dtype=np.float64)
    return np.meshgrid(u, v)


def _grid_frames(p: np.ndarray, wrap_u: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tangents and unit normals on a vertex grid (nv x nu x 3) by central differences."""
    nv, nu, _ = p.shape
    if wrap_u:
        jp = np.r_[1:nu, 1]  # last column duplicates the first (texture seam)
        jm = np.r_[nu - 2, 0 : nu - 1]
        du = np.full(nu, 2.0 / (nu - 1))
    else:
        jp = np.r_[1:nu, nu - 1]
        jm = np.r_[0, 0 : nu - 1]
        du = np.where((np.arange(nu) == 0) | (np.arange(nu) == nu - 1), 1.0, 2.0) / (nu - 1)
    tan_u = (p[:, jp] - p[:, jm]) / du[None, :, None]
    ip = np.r_[1:nv, nv - 1]
    im = np.r_[0, 0 : nv - 1]
    dv = np.where((np.arange(nv) == 0) | (np.arange(nv) == nv - 1), 1.0, 2.0) / (nv - 1)
    tan_v = (p[ip] - p[im]) / dv[:, None, None]
    n = np.cross(tan_u, tan_v)
    length = np.linalg.norm(n, axis=-1)
    scale = np.median(length[length > 0]) if np.any(length > 0) else 1.0
    # Poles (a whole row collapsed to one point): use the mean normal of the next ring.
    for row in range(nv):
        if np.all(length[row] < 1e-6 * scale):
            nb = row + 1 if row + 1 < nv and not np.all(length[row + 1] < 1e-6 * scale) else row - 1
            mean = n[nb].sum(axis=0)
            n[row] = mean
            length[row] = np.linalg.norm(mean)
    n = n / np.maximum(length, 1e-12)[..., None]
    bad = ~np.isfinite(n).all(axis=-1) | (np.linalg.norm(n, axis=-1) < 0.5)
    n[bad] = (0.0, 1.0, 0.0)
    return tan_u, tan_v, n


def build_mesh(parts: list[Part]) -> Mesh:
    """Triangulate every part's grid and orient all faces outward (needed for culling)."""
    verts, normals, uvs, tus, tvs, aos, faces, face_part = [], [], [], [], [], [], [], []
    offset = 0
    for k, part in enumerate(parts):
        s = part.surface
        u, v = grid_uv(s.nu, s.nv)
        p, region = s.fn(u, v)
        p = p.astype(np.float64)
        tan_u, tan_v, n = _grid_frames(p, s.wrap_u)
        idx = np.arange(s.nv * s.nu).reshape(s.nv, s.nu)
        a = idx[:-1, :-1].ravel()
        b = idx[:-1, 1:].ravel()
        c = idx[1:, 1:].ravel()
        d = idx[1:, :-1].ravel()
        f = np.concatenate([np.stack([a, b, c], 1), np.stack([a, c, d], 1)])
        flat = p.reshape(-1, 3)
        # Signed volume says whether (u, v) order runs clockwise seen from outside.
        q = flat - flat.mean(axis=0)
        vol = np.einsum("ij,ij->i", q[f[:, 0]], np.cross(q[f[:, 1]], q[f[:, 2]])).sum()
        if vol < 0:
            f = f[:, [0, 2, 1]]
            n = -n
        ao = np.ones((s.nv, s.nu)) if s.ao is None else s.ao(p, n, region)
        verts.append(flat)
        normals.append(n.reshape(-1, 3))
        uvs.append(np.stack([u.ravel(), v.ravel()], 1))
        tus.append(tan_u.reshape(-1, 3))
        tvs.append(tan_v.reshape(-1, 3))
        aos.append(np.asarray(ao).ravel())
        faces.append(f + offset)
        face_part.append(np.full(len(f), k, dtype=np.int16))
        offset += len(flat)
    return Mesh(
        verts=np.concatenate(verts).astype(np.float32),
        normals=np.concatenate(normals).astype(np.float32),
        uv=np.concatenate(uvs).astype(np.float32),
        tan_u=np.concatenate(tus).astype(np.float32),
        tan_v=np.concatenate(tvs).astype(np.float32),
        ao=np.concatenate(aos).astype(np.float32),
        faces=np.concatenate(faces).astype(np.int32),
        face_part=np.concatenate(face_part),
        parts=parts,
    )


def superellipse_flan(a: float, b: float, p: float) -> Callable[[np.ndarray], np.ndarray]:
    """Radius of a rounded rectangle (|x/a|^p + |y/b|^p = 1) by angle, for slab-like lathes."""

    def flan(theta: np.ndarray) -> np.ndarray:
        c, s = np.abs(np.cos(theta)), np.abs(np.sin(theta))
        return (np.maximum(c / a, 1e-9) ** p + np.maximum(s / b, 1e-9) ** p) ** (-1.0 / p)

    return flan


def slab_profile(
    thickness: float, bevel: float, dome: float = 0.0, steps: int = 9
) -> tuple[np.ndarray, ...]:
    """Profile (radius fraction, height) of a slab with rounded edges, bottom face to top face.

    Revolved with a `superellipse_flan` it gives plinths, tablets and plaques whose faces are
    sampled evenly (a superquadric crowds its samples into the edges and leaves long sliver
    triangles across flat faces). `dome` bulges both faces (clay tablets are pillow-shaped).
    """
    rho = np.linspace(0.0, 1.0 - bevel, 12)
    bottom = [(r, dome * thickness * (r / (1 - bevel)) ** 2) for r in rho]
    edge = [
        (
            1.0 - bevel + bevel * np.cos(a),
            thickness / 2 + (thickness / 2 - dome * thickness) * np.sin(a),
        )
        for a in np.linspace(-np.pi / 2, np.pi / 2, steps)[1:-1]
    ]
    top = [(r, thickness - dome * thickness * (r / (1 - bevel)) ** 2) for r in rho[::-1]]
    pts = np.array(bottom + edge + top)
    region = np.array(
        [BASE] * len(bottom) + [OUTER] * len(edge) + [INNER] * len(top), dtype=np.int16
    )
    return pts[:, 0], pts[:, 1], region


def transformed(fn: SurfaceFn, matrix: np.ndarray, offset: tuple[float, float, float]) -> SurfaceFn:
    """The same surface rotated/scaled by `matrix` and moved by `offset`."""
    m = np.asarray(matrix, dtype=np.float64)
    t = np.asarray(offset, dtype=np.float64)

    def out(u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        p, region = fn(u, v)
        return (matvec(p.astype(np.float64), m) + t).astype(np.float32), region

    return out
