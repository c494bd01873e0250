"""A small numpy rasteriser that photographs generated artefacts the way museums do.

Museum catalogue photography is a narrow genre: one object, centred, on a seamless paper or
velvet sweep, soft key light from above one side, a fill, a soft shadow on the backdrop. That
is what a recogniser is trained on, so that is what this renders: perspective camera, z-buffered
triangles with interpolated normals, textures painted in parameter space with bump-mapped
relief, Blinn-Phong plus a studio environment reflection for glazes and metals, a projected
soft ground shadow, and supersampled anti-aliasing. Pure numpy + Pillow, deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

from .artefacts import BACKDROPS, Artefact, ObjectSpec, View, build_artefact, plan_views
from .geometry import Mesh
from .noise import (
    dotv,
    linear_to_srgb,
    matvec,
    sample_bilinear,
    smoothstep,
    srgb_to_linear,
    to_uint8,
)

_BUCKETS = (
    1,
    2,
    3,
    4,
    6,
    8,
    12,
    16,
    24,
    32,
    48,
    64,
    96,
    128,
    192,
    256,
    384,
    512,
    768,
    1024,
    2048,
    4096,
)


@dataclass
class Fragments:
    """Visible surface per covered pixel: pixel index, face id and barycentric weights."""

    pix: np.ndarray
    face: np.ndarray
    w: np.ndarray  # (n, 3)


def rasterize(
    sx: np.ndarray, sy: np.ndarray, depth: np.ndarray, faces: np.ndarray, width: int, height: int
) -> Fragments:
    """Z-buffered triangle rasterisation, vectorised by bucketing triangles by screen size.

    Small triangles (the vast majority) are tested against a tiny pixel stencil, large ones
    against a larger one, so the work is close to proportional to covered pixels. Back faces
    (wound clockwise on screen) are culled; the meshes are closed and oriented outward.
    """
    x = sx[faces]
    y = sy[faces]
    z = depth[faces]
    x0, x1, x2 = x[:, 0], x[:, 1], x[:, 2]
    y0, y1, y2 = y[:, 0], y[:, 1], y[:, 2]
    area = (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)
    xmin = np.ceil(np.min(x, axis=1) - 0.5).astype(np.int64)
    xmax = np.floor(np.max(x, axis=1) - 0.5).astype(np.int64)
    ymin = np.ceil(np.min(y, axis=1) - 0.5).astype(np.int64)
    ymax = np.floor(np.max(y, axis=1) - 0.5).astype(np.int64)
    xmin = np.maximum(xmin, 0)
    ymin = np.maximum(ymin, 0)
    xmax = np.minimum(xmax, width - 1)
    ymax = np.minimum(ymax, height - 1)
    size = np.maximum(xmax - xmin + 1, ymax - ymin + 1)
    keep = (area < -1e-12) & (xmax >= xmin) & (ymax >= ymin) & (np.min(z, axis=1) > 0)
    inv = np.zeros_like(area)
    inv[keep] = 1.0 / area[keep]
    a0, b0, c0 = (y1 - y2) * inv, (x2 - x1) * inv, (x1 * y2 - x2 * y1) * inv
    a1, b1, c1 = (y2 - y0) * inv, (x0 - x2) * inv, (x2 * y0 - x0 * y2) * inv
    out_pix, out_face, out_w0, out_w1, out_z = [], [], [], [], []
    lo = 0
    for hi in _BUCKETS:
        sel = np.nonzero(keep & (size > lo) & (size <= hi))[0]
        lo = hi
        if sel.size == 0:
            continue
        oy, ox = np.divmod(np.arange(hi * hi), hi)
        step = max(1, 4_000_000 // (hi * hi))
        for start in range(0, sel.size, step):
            t = sel[start : start + step]
            px = xmin[t, None] + ox[None, :]
            py = ymin[t, None] + oy[None, :]
            cx = px + 0.5
            cy = py + 0.5
            w0 = a0[t, None] * cx + b0[t, None] * cy + c0[t, None]
            w1 = a1[t, None] * cx + b1[t, None] * cy + c1[t, None]
            w2 = 1.0 - w0 - w1
            eps = -1e-7
            inside = (
                (w0 >= eps)
                & (w1 >= eps)
                & (w2 >= eps)
                & (px <= xmax[t, None])
                & (py <= ymax[t, None])
            )
            ti, si = np.nonzero(inside)
            if ti.size == 0:
                continue
            ww0, ww1, ww2 = w0[ti, si], w1[ti, si], w2[ti, si]
            tt = t[ti]
            out_pix.append(py[ti, si] * width + px[ti, si])
            out_face.append(tt)
            out_w0.append(ww0)
            out_w1.append(ww1)
            out_z.append(ww0 * z[tt, 0] + ww1 * z[tt, 1] + ww2 * z[tt, 2])
    if not out_pix:
        return Fragments(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 3), np.float32))
    pix = np.concatenate(out_pix)
    face = np.concatenate(out_face)
    w0 = np.concatenate(out_w0)
    w1 = np.concatenate(out_w1)
    zz = np.concatenate(out_z)
    zbuf = np.full(width * height, np.inf)
    np.minimum.at(zbuf, pix, zz)
    win = np.nonzero(zz <= zbuf[pix])[0]
    owner = np.full(width * height, -1, dtype=np.int64)
    owner[pix[win]] = win
    idx = owner[owner >= 0]
    w = np.stack([w0[idx], w1[idx], 1.0 - w0[idx] - w1[idx]], axis=1).astype(np.float32)
    return Fragments(pix[idx], face[idx], w)


def _dir(az_deg: float, el_deg: float) -> np.ndarray:
    az, el = np.radians(az_deg), np.radians(el_deg)
    return np.array([np.cos(el) * np.sin(az), np.sin(el), np.cos(el) * np.cos(az)])


def _normalize(v: np.ndarray) -> np.ndarray:
    return v * (1.0 / np.sqrt(np.maximum(np.einsum("ij,ij->i", v, v), 1e-24)))[:, None]


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", a, b)


def _posed(mesh: Mesh, flipped: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Vertices etc. turned over (180 degrees about x) to show the back; resting on the ground."""
    v, n, tu, tv = mesh.verts, mesh.normals, mesh.tan_u, mesh.tan_v
    if flipped:
        flip = np.array([1.0, -1.0, -1.0], np.float32)
        v, n, tu, tv = v * flip, n * flip, tu * flip, tv * flip
    v = v - np.array([0.0, v[:, 1].min(), 0.0], np.float32)
    return v, n, tu, tv


def _splat(sx: np.ndarray, sy: np.ndarray, width: int, height: int, scale: int) -> Image.Image:
    """Points to a low-resolution coverage picture (used for soft shadows)."""
    w, h = max(1, width // scale), max(1, height // scale)
    ix = np.clip((sx / scale).astype(np.int64), 0, w - 1)
    iy = np.clip((sy / scale).astype(np.int64), 0, h - 1)
    ok = (sx >= 0) & (sx < width) & (sy >= 0) & (sy < height)
    buf = np.zeros((h, w), np.uint8)
    buf[iy[ok], ix[ok]] = 255
    return Image.fromarray(buf, "L")


def _backdrop(view: View, width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """Seamless studio sweep (linear RGB): brighter behind the object, darker to the corners."""
    base = srgb_to_linear(np.array(BACKDROPS[view.backdrop], np.float32))
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    xn = xx / width - 0.5
    yn = yy / height - 0.45
    r2 = xn * xn + yn * yn
    glow = 1.12 - 0.55 * r2 - 0.12 * (yy / height)
    grain = 1.0 + 0.012 * (rng.random((height, width), dtype=np.float32) - 0.5)
    return base[None, None, :] * (glow * grain)[..., None]


def _environment(r: np.ndarray, key_dir: np.ndarray) -> np.ndarray:
    """Studio surroundings seen in reflections: bright ceiling and a softbox at the key light."""
    ceiling = 0.25 + 0.9 * smoothstep(0.0, 0.9, r[:, 1])
    box = 2.2 * np.exp((dotv(r, key_dir) - 1.0) * 10.0)
    strip = 0.8 * np.exp(-((r[:, 0] * 4.0) ** 2)) * smoothstep(0.3, 0.8, r[:, 1])
    return (ceiling + box + strip).astype(np.float32)


def render(
    artefact: Artefact,
    view: View,
    size: int = 256,
    supersample: int = 2,
    return_mask: bool = False,
    shade_samples: bool = False,
):
    """Photograph `artefact` as `view` prescribes: a `size` x `size` RGB image (and object mask).

    Noise in the backdrop comes from a generator seeded by the object and view, so the same
    object and view always give byte-identical pixels.
    """
    n = size * supersample
    mesh = artefact.mesh
    verts, normals, tan_u, tan_v = _posed(mesh, view.flipped)
    lo, hi = verts.min(axis=0), verts.max(axis=0)
    target = (lo + hi) / 2.0
    radius = float(np.linalg.norm(hi - lo)) / 2.0
    d = _dir(view.azimuth, view.elevation)
    az, el = np.radians(view.azimuth), np.radians(view.elevation)
    up = np.array([-np.sin(el) * np.sin(az), np.cos(el), -np.sin(el) * np.cos(az)])
    fwd = -d
    right = np.cross(fwd, up)
    eye = target + d * radius * 4.5
    rel = verts - eye
    xc, yc, zc = dotv(rel, right), dotv(rel, up), dotv(rel, fwd)
    px, py = xc / zc, yc / zc
    span = max(px.max() - px.min(), py.max() - py.min())
    scale = view.fill_frame * n / span
    pcx, pcy = (px.max() + px.min()) / 2, (py.max() + py.min()) / 2
    ox, oy = view.offset[0] * n, view.offset[1] * n

    def project(p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        r = p - eye
        zz = dotv(r, fwd)
        return (
            n / 2 + (dotv(r, right) / zz - pcx) * scale + ox,
            n / 2 - (dotv(r, up) / zz - pcy) * scale + oy,
            zz,
        )

    sx, sy = n / 2 + (px - pcx) * scale + ox, n / 2 - (py - pcy) * scale + oy
    frags = rasterize(sx, sy, zc, mesh.faces, n, n)
    # Coverage is supersampled (smooth silhouettes); shading runs once per output pixel unless
    # `shade_samples` asks for every sample: four times the work for barely visible gain.
    coarse = (frags.pix // n // supersample) * size + (frags.pix % n) // supersample
    cover = np.bincount(coarse, minlength=size * size).astype(np.float32) / float(
        supersample * supersample
    )
    if supersample > 1 and not shade_samples:
        first = np.full(size * size, -1, dtype=np.int64)
        first[coarse[::-1]] = np.arange(len(coarse) - 1, -1, -1)
        keep = first[first >= 0]
        frags = Fragments(frags.pix[keep], frags.face[keep], frags.w[keep])
        coarse = coarse[keep]
    spec = artefact.spec
    seed_words = [
        spec.seed,
        spec.stream,
        spec.index,
        int(view.azimuth * 1000),
        int(view.elevation * 1000),
    ]
    rng = np.random.default_rng(seed_words)

    # --- background, ground shadow ---------------------------------------------------------
    img = _backdrop(view, size, size, rng)
    key_dir = _dir(view.azimuth + view.light_azimuth, view.light_elevation)
    shadow_dir = _dir(view.azimuth + view.light_azimuth, max(view.light_elevation, 55.0))
    ground = verts - shadow_dir[None, :] * (verts[:, 1:2] / shadow_dir[1])
    gx, gy, _ = project(ground)
    soft = (
        _splat(gx, gy, n, n, 4)
        .filter(ImageFilter.MaxFilter(3))
        .filter(ImageFilter.GaussianBlur(n / 70))
    )
    low = verts[:, 1] < (hi[1] - lo[1]) * 0.03 + 1e-3
    cx_, cy_, _ = project(verts[low] * np.array([1.0, 0.0, 1.0], np.float32))
    contact = _splat(cx_, cy_, n, n, 4).filter(ImageFilter.GaussianBlur(n / 160))
    shade = (
        0.42 * np.asarray(soft.resize((size, size), Image.BILINEAR), np.float32) / 255.0
        + 0.35 * np.asarray(contact.resize((size, size), Image.BILINEAR), np.float32) / 255.0
    )
    img *= (1.0 - np.clip(shade, 0, 0.8))[..., None]

    # --- surface attributes at visible pixels -----------------------------------------------
    # One gather of all per-vertex attributes: position, normal, tangents, uv, occlusion.
    attrs = np.concatenate([verts, normals, tan_u, tan_v, mesh.uv, mesh.ao[:, None]], axis=1)
    a = attrs[mesh.faces[frags.face]]
    att = np.einsum("nkc,nk->nc", a, frags.w)
    pos, nrm, tu, tv, uv, ao = (
        att[:, 0:3],
        _normalize(att[:, 3:6]),
        att[:, 6:9],
        att[:, 9:12],
        att[:, 12:14],
        att[:, 14],
    )
    part_of = mesh.face_part[frags.face]
    tex = np.zeros((len(pos), 7), np.float32)
    mat = np.zeros((len(pos), 5), np.float32)
    for k, part in enumerate(mesh.parts):
        sel = part_of == k
        if not np.any(sel):
            continue
        t = part.texture
        tex[sel] = sample_bilinear(
            t, uv[sel, 0] * t.shape[1], uv[sel, 1] * t.shape[0], wrap_x=part.surface.wrap_u
        )
        m = part.material
        mat[sel] = (m.shininess, m.specular, m.metal, m.bump, m.sheen)
    albedo = tex[:, 0:3]
    gloss = tex[:, 3]
    metal = tex[:, 4] * mat[:, 2]
    bump = mat[:, 3:4]
    gu = tex[:, 5:6] * tu / np.maximum(_dot(tu, tu), 1e-8)[:, None]
    gv = tex[:, 6:7] * tv / np.maximum(_dot(tv, tv), 1e-8)[:, None]
    nb = _normalize(nrm - bump * (gu + gv))
    vdir = _normalize(eye[None, :].astype(np.float32) - pos)
    facing = _dot(nb, vdir)[:, None]
    nb = np.where(facing < 0, _normalize(nb - 1.05 * facing * vdir), nb)

    # --- lighting ----------------------------------------------------------------------------
    fill_dir = _dir(view.azimuth - np.sign(view.light_azimuth + 1e-6) * 60.0, 15.0)
    rim_dir = _dir(view.azimuth + 180.0 + view.light_azimuth * 0.3, 50.0)
    lights = ((key_dir, view.key), (fill_dir, view.fill * view.key * 0.5), (rim_dir, 0.9))
    shin = mat[:, 0]
    ks = mat[:, 1] * gloss
    sheen = mat[:, 4] * 0.15 * gloss
    norm_spec = ks * (shin + 8) / 40.0
    diffuse = 0.28 * (0.65 + 0.35 * nb[:, 1]) * ao
    spec_acc = np.zeros(len(pos), np.float32)
    ndl_all = np.clip(matvec(nb, np.stack([ldir for ldir, _ in lights])), 0.0, 1.0)
    diffuse += dotv(ndl_all, np.array([i for _, i in lights])) * (0.55 + 0.45 * ao)
    for k in (0, 2):  # highlights from the key and the rim light; the fill is broad
        ldir, inten = lights[k]
        h = _normalize(ldir[None, :].astype(np.float32) + vdir)
        ndh = np.clip(_dot(nb, h), 0.0, 1.0)
        ndh2 = ndh * ndh
        spec_acc += (
            inten * ndl_all[:, k] * (norm_spec * np.power(ndh, shin) + sheen * ndh2 * ndh2 * ndh2)
        )
    ndv = np.clip(_dot(nb, vdir), 0.0, 1.0)
    refl = _normalize(2.0 * ndv[:, None] * nb - vdir)
    env = _environment(refl, key_dir.astype(np.float32)) * (0.5 + 0.5 * ao)
    fres = (0.04 + 0.96 * (1.0 - ndv) ** 5)[:, None]
    m1 = metal[:, None]
    f0 = (1.0 - m1) * fres + m1 * (albedo + (1 - albedo) * fres)
    colour = (
        albedo * ((1.0 - 0.85 * metal) * diffuse * 0.55)[:, None]
        + (spec_acc * 0.5)[:, None] * ((1.0 - m1) + m1 * albedo * 1.6)
        + f0 * (env * ks * 1.2)[:, None]
    )
    # --- compositing over the backdrop (linear light) -----------------------------------------
    if supersample > 1 and not shade_samples:
        obj = np.zeros((size * size, 3), np.float32)
        obj[coarse] = colour * cover[coarse, None]
    else:
        ss2 = float(supersample * supersample)
        obj = (
            np.stack(
                [np.bincount(coarse, colour[:, c], minlength=size * size) for c in range(3)], axis=1
            )
            / ss2
        )
    img = img.reshape(-1, 3) * (1.0 - cover)[:, None] + obj.astype(np.float32)
    img = img.reshape(size, size, 3)

    # --- camera: exposure, white balance, tone curve ----------------------------------------
    img = img * (view.exposure * np.array([1.0 + view.warmth, 1.0, 1.0 - view.warmth], np.float32))
    img = img * (1.0 + img / 9.0) / (1.0 + img)  # gentle highlight roll-off (white point 3)
    img = np.clip(img * 1.45, 0.0, 1.0)
    out = Image.fromarray(to_uint8(linear_to_srgb(img)), "RGB")
    if not return_mask:
        return out
    return out, Image.fromarray(to_uint8(cover.reshape(size, size)), "L")


def render_object_view(
    spec: ObjectSpec,
    view: View | int = 0,
    size: int = 256,
    supersample: int = 2,
    artefact: Artefact | None = None,
) -> Image.Image:
    """Render one photo of a generated object: `view` is a View or an index into its photo plan."""
    art = artefact if artefact is not None else build_artefact(spec)
    if isinstance(view, int):
        view = plan_views(spec)[view]
    return render(art, view, size, supersample)
