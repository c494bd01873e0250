"""Small numpy building blocks for procedural pictures: value noise, blurs, sampling, colour.

Everything in the demo generator is drawn from these few functions so it stays deterministic
(no global random state, no platform-dependent library filters on float data) and needs only
numpy: the same seed gives byte-identical photos on any machine.
"""

from __future__ import annotations

import numpy as np

FloatArray = np.ndarray


def smoothstep(edge0: float, edge1: float, x: FloatArray) -> FloatArray:
    """Hermite step from 0 at `edge0` to 1 at `edge1`; soft edges keep motifs anti-aliased."""
    t = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


class Noise3:
    """Periodic 3-D value noise with fractal octaves, evaluated on object-space points.

    Textures are painted from object-space positions, so noise is seamless across texture seams
    and consistent between the parts of one object (a glaze splash runs from the torso onto the
    arm). The lattice is drawn from the caller's generator, so it is part of the object's seed.
    """

    def __init__(self, rng: np.random.Generator, size: int = 32) -> None:
        if size & (size - 1):
            raise ValueError("lattice size must be a power of two")
        self.size = size
        self.lattice = rng.random((size, size, size), dtype=np.float32)
        self.flat = self.lattice.ravel()
        self.offset = (rng.random(3) * size).astype(np.float32)

    def value(self, p: FloatArray) -> FloatArray:
        """Single-octave noise in [0, 1] at points `p` (..., 3)."""
        size, mask = self.size, self.size - 1
        q = np.asarray(p, dtype=np.float32) + self.offset
        base = np.floor(q)
        f = q - base
        f = f * f * (3.0 - 2.0 * f)
        i = base.astype(np.int32)
        x0 = (i[..., 0] & mask) * (size * size)
        x1 = ((i[..., 0] + 1) & mask) * (size * size)
        y0 = (i[..., 1] & mask) * size
        y1 = ((i[..., 1] + 1) & mask) * size
        z0 = i[..., 2] & mask
        z1 = (i[..., 2] + 1) & mask
        lat = self.flat
        fx, fy, fz = f[..., 0], f[..., 1], f[..., 2]
        a = x0 + y0
        b = x1 + y0
        c = x0 + y1
        d = x1 + y1
        c00 = lat[a + z0]
        c00 += (lat[b + z0] - c00) * fx
        c10 = lat[c + z0]
        c10 += (lat[d + z0] - c10) * fx
        c01 = lat[a + z1]
        c01 += (lat[b + z1] - c01) * fx
        c11 = lat[c + z1]
        c11 += (lat[d + z1] - c11) * fx
        c00 += (c10 - c00) * fy
        c01 += (c11 - c01) * fy
        c00 += (c01 - c00) * fz
        return c00

    def fbm(self, p: FloatArray, freq: float, octaves: int = 3, gain: float = 0.5) -> FloatArray:
        """Fractal sum normalised to roughly [0, 1]: blotches, patina, stains, grain.

        On a large texel grid (H x W x 3) the low-frequency octaves are evaluated on every
        other texel and upsampled: they cannot change faster than that, and texture painting
        is where the generator spends its time.
        """
        p = np.asarray(p, dtype=np.float32)
        total = np.zeros(p.shape[:-1], dtype=np.float32)
        amp, norm = 1.0, 0.0
        grid = p.ndim == 3 and min(p.shape[:2]) >= 128
        for octave in range(octaves):
            f = freq * 2.0**octave
            shift = 7.31 * octave
            if grid and f <= 6.0:
                half = p[::2, ::2]
                total += amp * _upsample2(
                    _upsample2(self.value(p[::4, ::4] * f + shift), half.shape[:2]), total.shape
                )
            elif grid and f <= 16.0:
                total += amp * _upsample2(self.value(p[::2, ::2] * f + shift), total.shape)
            else:
                total += amp * self.value(p * f + shift)
            norm += amp
            amp *= gain
        return total / norm


def _upsample2(a: FloatArray, shape: tuple[int, ...]) -> FloatArray:
    """Bilinear 2x upsampling of a grid sampled at even indices, cropped to `shape`."""
    h, w = shape
    out = np.empty((a.shape[0] * 2, a.shape[1] * 2), np.float32)
    out[0::2, 0::2] = a
    out[0::2, 1:-1:2] = (a[:, :-1] + a[:, 1:]) * 0.5
    out[0::2, -1] = a[:, -1]
    out[1:-1:2] = (out[0:-2:2] + out[2::2]) * 0.5
    out[-1] = out[-2]
    return out[:h, :w]


def box_blur_axis(a: FloatArray, radius: int, axis: int, wrap: bool = False) -> FloatArray:
    """Running-mean blur along one axis (edge-clamped or wrapped) via cumulative sums."""
    if radius <= 0:
        return a
    a = np.moveaxis(a, axis, 0)
    n = a.shape[0]
    if wrap:
        padded = np.concatenate([a[-radius - 1 :], a, a[:radius]], axis=0)
    else:
        padded = np.concatenate(
            [np.repeat(a[:1], radius + 1, axis=0), a, np.repeat(a[-1:], radius, axis=0)], axis=0
        )
    c = np.cumsum(padded, axis=0, dtype=np.float64)
    out = (c[2 * radius + 1 : 2 * radius + 1 + n] - c[:n]) / (2 * radius + 1)
    return np.moveaxis(out.astype(np.float32), 0, axis)


def blur(a: FloatArray, sigma: float, wrap_x: bool = False) -> FloatArray:
    """Approximate Gaussian blur of a 2-D (or H x W x C) array: three box passes per axis."""
    if sigma <= 0.3:
        return a.astype(np.float32)
    radius = max(1, int(round((np.sqrt(4.0 * sigma * sigma + 1.0) - 1.0) / 2.0)))
    out = a.astype(np.float32)
    for _ in range(3):
        out = box_blur_axis(out, radius, 0)
        out = box_blur_axis(out, radius, 1, wrap=wrap_x)
    return out


def sample_bilinear(
    img: FloatArray, x: FloatArray, y: FloatArray, wrap_x: bool = False
) -> FloatArray:
    """Sample `img` (H x W [x C]) at continuous texel coordinates (x right, y down).

    `wrap_x` makes the horizontal axis periodic, for textures that go round a lathe-turned pot.
    """
    h, w = img.shape[:2]
    x = np.asarray(x, dtype=np.float32) - 0.5
    y = np.clip(np.asarray(y, dtype=np.float32) - 0.5, 0.0, h - 1.0)
    x0 = np.floor(x)
    y0 = np.floor(y)
    fx = x - x0
    fy = y - y0
    x0i = x0.astype(np.int64)
    y0i = y0.astype(np.int64)
    if wrap_x:
        x0i %= w
        x1i = (x0i + 1) % w
    else:
        x0i = np.clip(x0i, 0, w - 1)
        x1i = np.clip(x0i + 1, 0, w - 1)
        fx = np.where(x < 0, 0.0, np.where(x > w - 1, 1.0, fx)).astype(np.float32)
    y1i = np.clip(y0i + 1, 0, h - 1)
    if img.ndim == 3:
        fx = fx[..., None]
        fy = fy[..., None]
    top = img[y0i, x0i] * (1 - fx) + img[y0i, x1i] * fx
    bottom = img[y1i, x0i] * (1 - fx) + img[y1i, x1i] * fx
    return top * (1 - fy) + bottom * fy


def srgb_to_linear(c: FloatArray) -> FloatArray:
    """Palettes are chosen in sRGB (what a person sees); shading happens in linear light."""
    c = np.asarray(c, dtype=np.float32)
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4).astype(np.float32)


def linear_to_srgb(c: FloatArray) -> FloatArray:
    """Inverse of `srgb_to_linear`, clipped to [0, 1]."""
    c = np.clip(np.asarray(c, dtype=np.float32), 0.0, 1.0)
    return np.where(c <= 0.0031308, c * 12.92, 1.055 * c ** (1 / 2.4) - 0.055).astype(np.float32)


def jitter_colour(
    rng: np.random.Generator, rgb: tuple[float, float, float], amount: float
) -> FloatArray:
    """A colour near `rgb` (sRGB): collections share a palette, objects differ slightly."""
    c = np.asarray(rgb, dtype=np.float32)
    lum = rng.normal(0.0, amount)
    tint = rng.normal(0.0, amount * 0.5, 3)
    return np.clip(c * (1.0 + lum) + tint, 0.0, 1.0).astype(np.float32)


def to_uint8(rgb01: FloatArray) -> np.ndarray:
    """Quantise [0, 1] floats to bytes with rounding (deterministic on every platform)."""
    return np.clip(np.rint(np.asarray(rgb01) * 255.0), 0, 255).astype(np.uint8)


def matvec(points: FloatArray, matrix: FloatArray) -> FloatArray:
    """`points @ matrix.T` without BLAS: numpy's threaded BLAS spins on every core for these
    tall-skinny products, which costs more than it saves and fights the worker processes."""
    return np.einsum("...j,ij->...i", points, np.asarray(matrix, dtype=points.dtype))


def dotv(points: FloatArray, vector: FloatArray) -> FloatArray:
    """`points @ vector` (last axis) without BLAS."""
    return np.einsum("...j,j->...", points, np.asarray(vector, dtype=points.dtype))
