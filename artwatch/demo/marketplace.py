"""Turn a museum photograph into a plausible auction-listing photograph.

Dealers photograph the same objects very differently from museums: on a velvet cloth, a
kitchen table or a shelf, with a phone, under warm room light, slightly tilted, cropped,
watermarked, recompressed by the site. A recogniser trained only on museum photos fails on
exactly that shift, so one implementation serves both purposes:

* `simulate_listing_photo(images, rng)` builds listing photos for the demo and for tests;
* `MarketplaceTransform` is the same thing as a torchvision-style callable for training.

Pipeline: segment the object from its plain backdrop (fit a smooth backdrop model to the border,
threshold the difference, fill holes, keep the main components, soft anti-aliased alpha with
colour decontamination), then re-light it, scale, rotate, warp in perspective, drop it with a
shadow onto a generated background (cloth, wood, tabletop, gradient, clutter), possibly next
to other objects, and pass the result through a "camera and website": white balance, exposure,
vignette, blur, sensor noise, crop, resize, watermark or dealer caption, JPEG recompression.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont
from scipy import ndimage

from .noise import Noise3, smoothstep

BACKGROUNDS = ("cloth", "wood", "tabletop", "gradient", "clutter", "plain")


# ---------------------------------------------------------------------------------------------
# Segmentation
# ---------------------------------------------------------------------------------------------


def _backdrop_model(arr: np.ndarray, border: int) -> tuple[np.ndarray, float]:
    """Fit a smooth (quadratic) backdrop to the border pixels; robust to objects touching it.

    Returns the modelled backdrop (H, W, 3) and the residual noise level of the border.
    """
    h, w, _ = arr.shape
    xs = (np.arange(w, dtype=np.float32) / max(w - 1, 1) - 0.5)[None, :]
    ys = (np.arange(h, dtype=np.float32) / max(h - 1, 1) - 0.5)[:, None]
    ring = np.zeros((h, w), bool)
    ring[:border], ring[-border:], ring[:, :border], ring[:, -border:] = True, True, True, True
    yy, xx = np.nonzero(ring)
    xn, yn = xs[0, xx], ys[yy, 0]
    f_ring = np.stack([np.ones_like(xn), xn, yn, xn * xn, yn * yn, xn * yn], axis=1).astype(
        np.float64
    )
    c_ring = arr[yy, xx].astype(np.float64)
    use = np.ones(len(c_ring), bool)
    coef = np.zeros((6, 3))
    for _ in range(3):  # least squares, then again without outliers (object, shadow)
        f = f_ring[use]
        coef = np.linalg.solve(
            np.einsum("ni,nj->ij", f, f) + 1e-6 * np.eye(6), np.einsum("ni,nc->ic", f, c_ring[use])
        )
        res = np.linalg.norm(np.einsum("ni,ic->nc", f_ring, coef) - c_ring, axis=1)
        use = res < max(np.percentile(res, 70) * 2.5, 0.02)
    c = coef.astype(np.float32)
    model = (
        c[0]
        + xs[..., None] * c[1]
        + ys[..., None] * c[2]
        + (xs * xs)[..., None] * c[3]
        + (ys * ys)[..., None] * c[4]
        + (xs * ys)[..., None] * c[5]
    )
    noise = float(np.percentile(res[use], 90)) if np.any(use) else 0.02
    return model, noise


def segment_object(
    image: Image.Image, sensitivity: float = 1.0, work_size: int = 192
) -> Image.Image:
    """Soft object mask ("L", 0..255) of a photo taken on a plain (possibly graded) backdrop.

    Works for museum-style photos (generated catalogue: grey/white/black sweeps with soft
    shadows) and turntable datasets (COIL-100: black). Shadows -- darker, same hue -- count
    less than colour differences, so most of a soft shadow stays behind with the backdrop.
    Large photos are segmented at `work_size` and the soft mask enlarged: it is the costly
    step of the training augmentation, and listing photos are rarely sharper than that.
    """
    rgba = image.convert("RGBA") if image.mode in ("RGBA", "LA", "PA") else None
    if rgba is not None and np.asarray(rgba)[..., 3].min() < 250:
        return rgba.getchannel("A")
    if max(image.size) > work_size * 1.25:
        scale = work_size / max(image.size)
        small = image.convert("RGB").resize(
            (max(8, round(image.width * scale)), max(8, round(image.height * scale))), Image.BOX
        )
        return segment_object(small, sensitivity, work_size).resize(image.size, Image.BILINEAR)
    arr = np.asarray(image.convert("RGB"), np.float32) / 255.0
    h, w, _ = arr.shape
    border = max(2, int(round(min(h, w) * 0.03)))
    model, noise = _backdrop_model(arr, border)
    diff = arr - model
    lum = diff.mean(axis=-1)
    chroma = diff - lum[..., None]
    bg_lum = model.mean(axis=-1)
    # Darkening on a light backdrop is mostly shadow; on a dark backdrop nothing is.
    shadow_weight = np.where(lum < 0, 0.25 + 0.75 * (1.0 - np.clip(bg_lum * 1.6, 0, 1)), 1.0)
    d = np.sqrt(np.sum(chroma * chroma, axis=-1) * 2.0 + (lum * shadow_weight) ** 2)
    thr = max(0.06, 3.0 * noise) / sensitivity
    hard = d > thr
    hard = ndimage.binary_opening(hard, iterations=1)
    # A white pot on a white sweep shows only its outline and painted parts: close gaps in the
    # outline generously and fill the inside (narrow concavities get filled too: a fair price).
    reach = max(2, int(round(min(h, w) * 0.025)))
    padded = np.pad(hard, reach)
    closed = ndimage.binary_closing(padded, iterations=reach)[reach:-reach, reach:-reach]
    hard = ndimage.binary_fill_holes(closed)
    labels, n = ndimage.label(hard)
    if n > 1:  # keep the main part and anything large beside it (a lid, a second piece)
        sizes = ndimage.sum_labels(hard, labels, index=np.arange(1, n + 1))
        keep = np.nonzero(sizes >= max(sizes.max() * 0.08, 20))[0] + 1
        hard = np.isin(labels, keep)
    if not hard.any():
        return Image.new("L", image.size, 0)
    soft = smoothstep(thr * 0.5, thr * 1.5, d)
    near = ndimage.binary_dilation(hard, iterations=2)
    alpha = np.where(hard, 1.0, np.where(near, soft, 0.0))
    alpha = ndimage.uniform_filter(alpha, 2)  # remove stair-steps, keeps the core opaque
    alpha = np.maximum(alpha, ndimage.binary_erosion(hard, iterations=1))
    return Image.fromarray(np.clip(np.rint(alpha * 255), 0, 255).astype(np.uint8), "L")


def cut_out(image: Image.Image, mask: Image.Image | None = None) -> Image.Image:
    """RGBA cut-out of the object, cropped to it, with the backdrop's colour removed from edges."""
    rgb = image.convert("RGB")
    mask = segment_object(image) if mask is None else mask.convert("L").resize(rgb.size)
    a = np.asarray(mask, np.float32) / 255.0
    arr = np.asarray(rgb, np.float32) / 255.0
    if a.max() <= 0.0:  # nothing found: treat the whole picture as the object
        a = np.ones_like(a)
    model, _ = _backdrop_model(arr, max(2, int(round(min(a.shape) * 0.03))))
    edge = (a > 0.15) & (a < 0.98)
    fixed = (arr - (1.0 - a[..., None]) * model) / np.maximum(a[..., None], 0.15)
    arr = np.where(edge[..., None], np.clip(fixed, 0, 1), arr)
    out = np.dstack([arr, a])
    ys, xs = np.nonzero(a > 0.05)
    if len(ys) == 0:
        ys, xs = np.array([0, a.shape[0] - 1]), np.array([0, a.shape[1] - 1])
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    return Image.fromarray(
        np.clip(np.rint(out[y0:y1, x0:x1] * 255), 0, 255).astype(np.uint8), "RGBA"
    )


# ---------------------------------------------------------------------------------------------
# Backgrounds
# ---------------------------------------------------------------------------------------------


def _noise2(rng: np.random.Generator, w: int, h: int, freq: float, octaves: int = 3) -> np.ndarray:
    n = Noise3(rng)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    s = 1.0 / max(w, h)
    p = np.stack([xx * s, yy * s, np.full_like(xx, 0.37)], axis=-1)
    return n.fbm(p, freq, octaves)


def _colour(
    rng: np.random.Generator, choices: Sequence[tuple[float, float, float]], jitter: float = 0.06
) -> np.ndarray:
    c = np.asarray(choices[int(rng.integers(0, len(choices)))], np.float32)
    return np.clip(c * (1.0 + rng.normal(0, jitter)) + rng.normal(0, jitter * 0.4, 3), 0, 1).astype(
        np.float32
    )


def make_background(kind: str, width: int, height: int, rng: np.random.Generator) -> Image.Image:
    """A generated listing backdrop. Built at <= 400 px and enlarged (dealers' backgrounds are
    rarely in focus) so that it costs little even inside a training loop."""
    scale = min(1.0, 400.0 / max(width, height))
    w, h = max(8, int(width * scale)), max(8, int(height * scale))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    xn, yn = xx / w, yy / h
    if kind == "cloth":
        base = _colour(
            rng,
            [
                (0.45, 0.05, 0.08),
                (0.08, 0.1, 0.3),
                (0.05, 0.25, 0.12),
                (0.05, 0.05, 0.05),
                (0.75, 0.7, 0.6),
                (0.55, 0.45, 0.3),
                (0.3, 0.3, 0.32),
            ],
        )
        fold = np.zeros((h, w), np.float32)
        for _ in range(int(rng.integers(2, 5))):
            ang = rng.uniform(0, np.pi)
            f = rng.uniform(2, 7)
            fold += (
                np.sin((xn * np.cos(ang) + yn * np.sin(ang)) * f * np.pi * 2 + rng.uniform(0, 6.3))
                / 4
            )
        fold += (_noise2(rng, w, h, 3.0) - 0.5) * 0.8
        weave = 1.0 + 0.04 * np.sin(xx * 2.1) * np.sin(yy * 2.1)
        shade = np.clip(0.85 + 0.3 * fold, 0.4, 1.3) * weave
        img = base * shade[..., None]
    elif kind == "wood":
        base = _colour(
            rng,
            [(0.62, 0.42, 0.25), (0.47, 0.31, 0.18), (0.76, 0.6, 0.42), (0.38, 0.24, 0.14)],
            0.04,
        )
        planks = int(rng.integers(2, 6))
        along_x = rng.random() < 0.7  # boards usually run across the picture
        u, v = (yn, xn) if along_x else (xn, yn)  # u across the boards, v along them
        k = np.floor(u * planks)
        tone = 1.0 + 0.1 * np.sin(k * 12.9898 + rng.uniform(0, 6.3))
        noise = Noise3(rng)
        wander = noise.fbm(np.stack([u * 3.0, v * 0.7, k], axis=-1), 1.0, 3) - 0.5
        rings = u * planks * rng.uniform(5, 9) + wander * 4.0 + k * 0.37
        late = smoothstep(0.55, 0.95, 0.5 + 0.5 * np.sin(rings * 2 * np.pi))
        streak = noise.fbm(np.stack([u * 90.0, v * 4.0, k + 0.5], axis=-1), 1.0, 2)
        seam = 1.0 - 0.55 * np.exp(
            -(((np.mod(u * planks + 0.5, 1.0) - 0.5) * h / planks * 2.5) ** 2)
        )
        shade = tone * (1.0 - 0.28 * late) * (0.88 + 0.24 * streak) * seam
        img = base * shade[..., None] * (0.85 + 0.3 * (1 - yn))[..., None]
    elif kind == "tabletop":
        style = rng.integers(0, 3)
        if style == 0:  # marble
            base = _colour(rng, [(0.9, 0.89, 0.86), (0.8, 0.8, 0.8), (0.25, 0.25, 0.27)])
            n = _noise2(rng, w, h, 3.0, 4)
            veins = np.exp(-(((n - 0.5) * 28.0) ** 2))
            img = base * (1.0 - 0.35 * veins)[..., None]
        elif style == 1:  # granite / speckled laminate
            base = _colour(rng, [(0.6, 0.6, 0.58), (0.4, 0.38, 0.35), (0.85, 0.83, 0.78)])
            speck = rng.random((h, w)).astype(np.float32)
            img = base * (0.9 + 0.2 * speck)[..., None]
        else:  # plain painted or laminated surface
            base = _colour(rng, [(0.95, 0.95, 0.93), (0.6, 0.7, 0.75), (0.8, 0.75, 0.65)])
            img = base * (0.95 + 0.1 * _noise2(rng, w, h, 2.0))[..., None]
        img *= (0.8 + 0.35 * (1 - yn))[..., None]
    elif kind == "gradient":
        top = _colour(
            rng,
            [
                (0.9, 0.9, 0.9),
                (0.3, 0.35, 0.45),
                (0.15, 0.15, 0.15),
                (0.75, 0.8, 0.9),
                (0.6, 0.5, 0.4),
            ],
        )
        bottom = top * rng.uniform(0.4, 1.1)
        t = yn if rng.random() < 0.8 else np.hypot(xn - 0.5, yn - 0.5) * 1.4
        img = top * (1 - t[..., None]) + bottom * t[..., None]
    elif kind == "clutter":
        wall = _colour(
            rng, [(0.85, 0.82, 0.75), (0.7, 0.72, 0.7), (0.6, 0.5, 0.45), (0.9, 0.9, 0.88)]
        )
        table = _colour(
            rng, [(0.45, 0.3, 0.18), (0.7, 0.65, 0.6), (0.3, 0.3, 0.3), (0.6, 0.45, 0.3)]
        )
        horizon = rng.uniform(0.45, 0.7)
        img = np.where(
            (yn < horizon)[..., None],
            wall * (0.9 + 0.15 * xn[..., None]),
            table * (0.8 + 0.3 * yn[..., None]),
        )
        pil = Image.fromarray(np.clip(np.rint(img * 255), 0, 255).astype(np.uint8), "RGB")
        draw = ImageDraw.Draw(pil)
        for _ in range(int(rng.integers(3, 9))):
            c = tuple(
                int(v * 255)
                for v in _colour(
                    rng,
                    [
                        (0.6, 0.2, 0.15),
                        (0.2, 0.3, 0.5),
                        (0.8, 0.7, 0.3),
                        (0.3, 0.5, 0.3),
                        (0.9, 0.9, 0.85),
                        (0.2, 0.15, 0.1),
                    ],
                    0.2,
                )
            )
            bw, bh = rng.uniform(0.05, 0.25) * w, rng.uniform(0.1, 0.45) * h
            x0 = rng.uniform(-0.1, 1.0) * w
            y1 = horizon * h + rng.uniform(-0.02, 0.05) * h
            if rng.random() < 0.6:
                draw.rectangle([x0, y1 - bh, x0 + bw, y1], fill=c)
            else:
                draw.ellipse([x0, y1 - bh, x0 + bw, y1 + bh * 0.1], fill=c)
        pil = pil.filter(ImageFilter.GaussianBlur(max(w, h) / 120))
        img = np.asarray(pil, np.float32) / 255.0
    else:  # plain: white or grey sheet, as many dealers use
        base = _colour(rng, [(0.95, 0.95, 0.95), (0.85, 0.85, 0.85), (0.92, 0.9, 0.86)], 0.03)
        img = base * (1.0 - 0.15 * ((xn - 0.5) ** 2 + (yn - 0.4) ** 2))[..., None]
    img = np.clip(img, 0, 1)
    pil = Image.fromarray(np.rint(img * 255).astype(np.uint8), "RGB")
    return pil.resize((width, height), Image.BILINEAR) if (w, h) != (width, height) else pil


# ---------------------------------------------------------------------------------------------
# Object and camera effects
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MarketplaceConfig:
    """Probabilities and ranges of the simulated effects (training can soften them)."""

    backgrounds: tuple[str, ...] = BACKGROUNDS
    object_height: tuple[float, float] = (0.35, 0.8)  # object height / photo height (single object)
    rotation_deg: float = 10.0
    perspective: float = 0.08
    p_multi: float = 0.15  # several objects in one photo (when several images are given)
    p_watermark: float = 0.25
    p_caption: float = 0.2
    p_blur: float = 0.35
    p_noise: float = 0.5
    jpeg_quality: tuple[int, int] = (35, 92)
    long_side: tuple[int, int] = (420, 1000)


PHONE_IN_CLUTTER = MarketplaceConfig(backgrounds=("clutter",), object_height=(0.12, 0.3),
                                    rotation_deg=20.0, perspective=0.12, long_side=(900, 1400))
"""A phone photo of an object small on a cluttered table, at a phone's size (the benchmarks'
phone photos; training's calibration makes its own, `training.views.PHONE_PHOTO`)."""


def _perspective_coeffs(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Coefficients for PIL's PERSPECTIVE transform mapping output points `dst` to input `src`."""
    rows = []
    rhs = []
    for (x, y), (u, v) in zip(dst, src, strict=True):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        rhs += [u, v]
    return np.linalg.solve(np.asarray(rows, float), np.asarray(rhs, float))


def _restyle_object(
    obj: Image.Image, rng: np.random.Generator, cfg: MarketplaceConfig
) -> Image.Image:
    """Different light on the object: brightness, contrast, saturation and a light gradient."""
    rgb = obj.convert("RGB")
    alpha = obj.getchannel("A")
    rgb = ImageEnhance.Brightness(rgb).enhance(rng.uniform(0.75, 1.2))
    rgb = ImageEnhance.Contrast(rgb).enhance(rng.uniform(0.8, 1.2))
    rgb = ImageEnhance.Color(rgb).enhance(rng.uniform(0.75, 1.25))
    arr = np.asarray(rgb, np.float32) / 255.0
    h, w, _ = arr.shape
    ang = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    ramp = (
        (xx / max(w, 1) - 0.5) * np.cos(ang) + (yy / max(h, 1) - 0.5) * np.sin(ang)
    ) * rng.uniform(0.0, 0.5)
    arr = np.clip(arr * (1.0 + ramp)[..., None], 0, 1)
    rgb = Image.fromarray(np.rint(arr * 255).astype(np.uint8), "RGB")
    rgb.putalpha(alpha)
    return rgb


def _geometric(
    obj: Image.Image, target_h: int, rng: np.random.Generator, cfg: MarketplaceConfig
) -> Image.Image:
    """Scale to `target_h`, warp slightly in perspective and rotate a little."""
    w, h = obj.size
    scale = target_h / max(h, 1)
    nw, nh = max(4, int(round(w * scale))), max(4, int(round(h * scale)))
    obj = obj.resize((nw, nh), Image.LANCZOS if scale < 1 else Image.BICUBIC)
    if cfg.perspective > 0:
        p = cfg.perspective
        pad = int(max(nw, nh) * p) + 2
        canvas = Image.new("RGBA", (nw + 2 * pad, nh + 2 * pad), (0, 0, 0, 0))
        canvas.paste(obj, (pad, pad))
        cw, ch = canvas.size
        src = np.array([[0, 0], [cw, 0], [cw, ch], [0, ch]], float)
        dst = src + rng.uniform(-p, p, (4, 2)) * np.array([nw, nh]) * 0.5
        coeffs = _perspective_coeffs(src, dst)
        obj = canvas.transform((cw, ch), Image.PERSPECTIVE, tuple(coeffs), Image.BICUBIC)
    if cfg.rotation_deg > 0:
        obj = obj.rotate(
            float(rng.uniform(-cfg.rotation_deg, cfg.rotation_deg)), Image.BICUBIC, expand=True
        )
    bbox = obj.getchannel("A").point(lambda v: 255 if v > 8 else 0).getbbox()
    return obj.crop(bbox) if bbox else obj


def _drop(
    canvas: Image.Image,
    obj: Image.Image,
    x: int,
    y: int,
    rng: np.random.Generator,
    mask: Image.Image,
) -> None:
    """Put `obj` at (x, y) with a soft cast shadow and a contact shadow; record it in `mask`."""
    alpha = obj.getchannel("A")
    w, h = obj.size
    strength = rng.uniform(0.25, 0.6)
    dx, dy = int(rng.normal(0, 0.08) * w), int(abs(rng.normal(0.03, 0.04)) * h)
    blur_cast, blur_contact = max(2.0, 0.05 * h), max(1.5, 0.02 * h)
    # The shadows are drawn, blurred and applied in a window around them, not over the whole
    # canvas (most of a phone-sized canvas is far from the object): the window reaches past
    # the blurs' support, so every pixel comes out as a whole-canvas pass would make it.
    reach = 4 * int(np.ceil(max(blur_cast, blur_contact))) + 8
    x0, y0 = max(0, min(x + dx, x) - reach), max(0, min(y + dy, y) - reach)
    x1 = min(canvas.width, max(x + dx + w, x + w) + reach)
    y1 = min(canvas.height, max(y + dy + h, int(np.ceil(y + h * 1.03)) + 1) + reach)
    if x1 > x0 and y1 > y0:
        size = (x1 - x0, y1 - y0)
        shadow = Image.new("L", size, 0)
        shadow.paste(alpha, (x + dx - x0, y + dy - y0))
        shadow = shadow.filter(ImageFilter.GaussianBlur(blur_cast))
        contact = Image.new("L", size, 0)
        ImageDraw.Draw(contact).ellipse(
            [x + w * 0.15 - x0, y + h * 0.93 - y0, x + w * 0.85 - x0, y + h * 1.03 - y0],
            fill=255,
        )
        contact = contact.filter(ImageFilter.GaussianBlur(blur_contact))
        dark = (
            np.maximum(
                np.asarray(shadow, np.float32) * strength, np.asarray(contact, np.float32) * 0.35
            )
            / 255.0
        )
        window = (x0, y0, x1, y1)
        base = np.asarray(canvas.crop(window), np.float32) * (1.0 - dark[..., None])
        canvas.paste(Image.fromarray(np.rint(base).astype(np.uint8), "RGB"), window[:2])
    canvas.paste(obj.convert("RGB"), (x, y), alpha)
    mask.paste(alpha, (x, y), alpha)


def load_font(size: int) -> ImageFont.ImageFont:
    """Pillow's built-in scalable font: same glyphs on every machine, no font files needed."""
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType: fixed bitmap font
        return ImageFont.load_default()


DEALERS = (
    "Antiquities Direct",
    "Orient Gallery",
    "Ancient Treasures Ltd",
    "Heritage Auctions Co",
    "Silk Road Finds",
    "Bazaar Antiques",
    "Imperial Estates",
    "Old World Coins",
)
CAPTIONS = (
    "Ancient bronze vessel",
    "Rare Chinese porcelain",
    "Antique figurine, provenance private collection",
    "Roman coin, nice patina",
    "Cuneiform tablet fragment",
    "Old jade carving",
    "Estate find - no reserve",
    "Tang dynasty style horse",
    "Antique celadon bowl",
    "Collection of antiquities",
)


def _overlay_text(img: Image.Image, rng: np.random.Generator, kind: str) -> Image.Image:
    """A dealer's watermark (semi-transparent, often diagonal) or a caption banner."""
    w, h = img.size
    layer = Image.new("RGBA", img.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    if kind == "watermark":
        text = ("© " if rng.random() < 0.6 else "") + str(rng.choice(DEALERS))
        size = max(10, int(w * rng.uniform(0.04, 0.08)))
        font = load_font(size)
        shade = 255 if rng.random() < 0.7 else 0
        opacity = int(rng.uniform(60, 140))
        if rng.random() < 0.5:  # big diagonal across the middle
            tile = Image.new("RGBA", (w, size * 2), (0, 0, 0, 0))
            ImageDraw.Draw(tile).text(
                (w // 2, size), text, font=font, fill=(shade, shade, shade, opacity), anchor="mm"
            )
            tile = tile.rotate(float(rng.uniform(15, 40)), expand=True)
            layer.paste(tile, ((w - tile.width) // 2, (h - tile.height) // 2), tile)
        else:  # corner mark
            x = w - 10 if rng.random() < 0.7 else 10
            anchor = "rb" if x > w / 2 else "lb"
            draw.text(
                (x, h - 10),
                text,
                font=font,
                fill=(shade, shade, shade, opacity + 60),
                anchor=anchor,
            )
    else:
        lot = f"LOT {int(rng.integers(1, 999))}"
        text = f"{lot}  {rng.choice(CAPTIONS)}" if rng.random() < 0.7 else lot
        size = max(10, int(h * rng.uniform(0.035, 0.06)))
        font = load_font(size)
        band = int(size * 1.8)
        top = rng.random() < 0.4
        y0 = 0 if top else h - band
        fill = (255, 255, 255, 200) if rng.random() < 0.5 else (20, 20, 20, 190)
        draw.rectangle([0, y0, w, y0 + band], fill=fill)
        ink = (0, 0, 0, 255) if fill[0] > 128 else (255, 255, 255, 255)
        draw.text((int(size * 0.6), y0 + band // 2), text, font=font, fill=ink, anchor="lm")
    return Image.alpha_composite(img.convert("RGBA"), layer).convert("RGB")


def _camera(img: Image.Image, rng: np.random.Generator, cfg: MarketplaceConfig) -> Image.Image:
    """Phone camera and room light: white balance, exposure, vignette, blur, noise."""
    pixels = np.asarray(img, np.uint8)
    h, w, _ = pixels.shape
    warm = rng.normal(0.0, 0.07)
    gains = np.array([1.0 + warm, 1.0 + rng.normal(0, 0.02), 1.0 - warm], np.float32) * rng.uniform(
        0.85, 1.15
    )
    # White balance, exposure and gamma act on each channel's 256 levels alone: computed once
    # per level and looked up (a phone-sized canvas has millions of pixels, 256 levels).
    levels = np.arange(256, dtype=np.float32)[:, None] / 255.0
    curve = (np.clip(levels * gains, 0, 1) ** rng.uniform(0.8, 1.25)).astype(np.float32)
    arr = cv2.LUT(pixels, curve.reshape(256, 1, 3))
    xs = (np.arange(w, dtype=np.float32) / w - 0.5) ** 2
    ys = (np.arange(h, dtype=np.float32) / h - 0.5) ** 2
    r2 = (xs[None, :] + ys[:, None]) * 2.0
    arr *= (1.0 - rng.uniform(0.0, 0.35) * r2)[..., None]
    if rng.random() < cfg.p_noise:
        arr += rng.normal(0, rng.uniform(0.005, 0.025), arr.shape).astype(np.float32)
    out = Image.fromarray(np.clip(np.rint(arr * 255), 0, 255).astype(np.uint8), "RGB")
    if rng.random() < cfg.p_blur:
        out = out.filter(ImageFilter.GaussianBlur(rng.uniform(0.4, 1.6) * max(w, h) / 600))
    return out


def _jpeg(img: Image.Image, quality: int) -> Image.Image:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=int(quality))
    buf.seek(0)
    return Image.open(buf).convert("RGB")


# ---------------------------------------------------------------------------------------------
# The simulator
# ---------------------------------------------------------------------------------------------


@dataclass
class ListingPhoto:
    """A simulated listing photo and where the objects ended up (for tests and diagnostics)."""

    image: Image.Image
    object_mask: Image.Image  # the first (main) object, "L"
    all_mask: Image.Image  # all objects, "L"
    background: str
    n_objects: int
    effects: list[str] = field(default_factory=list)


def simulate_listing(
    images: Sequence[Image.Image] | Image.Image,
    rng: np.random.Generator,
    masks: Sequence[Image.Image | None] | None = None,
    output_size: int | tuple[int, int] | None = None,
    config: MarketplaceConfig | None = None,
    others: Sequence[Image.Image] | None = None,
    other_masks: Sequence[Image.Image | None] | None = None,
) -> ListingPhoto:
    """Compose a listing photo of one object, given one or several photos of it.

    One of `images` is the dealer's view of the object; with probability `config.p_multi`
    (and two or more photos) a second view of the same object is shown beside it, as dealers
    show a coin's obverse and reverse. `others` are photos of *other* objects that share the
    photo (a group lot). `masks` / `other_masks` may give known object masks (e.g. from the
    renderer); otherwise each object is segmented from its plain backdrop. `output_size`
    (side, or (w, h)) fixes the final size, for training; otherwise a random web size.
    """
    cfg = config or MarketplaceConfig()
    views = [images] if isinstance(images, Image.Image) else list(images)
    if not views:
        raise ValueError("need at least one image")
    vmasks = list(masks) if masks is not None else [None] * len(views)
    if len(vmasks) != len(views):
        raise ValueError("masks must match images one to one")
    effects: list[str] = []
    pick = int(rng.integers(0, len(views))) if len(views) > 1 else 0
    imgs, mlist = [views[pick]], [vmasks[pick]]
    if len(views) > 1 and rng.random() < cfg.p_multi:
        second = (pick + 1 + int(rng.integers(0, len(views) - 1))) % len(views)
        imgs.append(views[second])
        mlist.append(vmasks[second])
        effects.append("two views")
    if others:
        omasks = list(other_masks) if other_masks is not None else [None] * len(others)
        imgs += list(others)
        mlist += omasks

    # Canvas: web photo proportions.
    aspect = [4 / 3, 1.0, 3 / 4, 3 / 2][int(rng.integers(0, 4))]
    long_side = int(rng.integers(cfg.long_side[0], cfg.long_side[1] + 1))
    if output_size is not None:
        target = (output_size, output_size) if isinstance(output_size, int) else tuple(output_size)
        long_side = int(max(target) * 1.6)
        aspect = target[0] / target[1]
    cw, ch = (
        (long_side, int(long_side / aspect))
        if aspect >= 1
        else (int(long_side * aspect), long_side)
    )
    bg_kind = str(rng.choice(cfg.backgrounds))
    canvas = make_background(bg_kind, cw, ch, rng)

    n_obj = len(imgs)
    cuts = [_restyle_object(cut_out(imgs[i], mlist[i]), rng, cfg) for i in range(n_obj)]
    if n_obj > 1:
        effects.append(f"{n_obj} objects")
    main_mask = Image.new("L", (cw, ch), 0)
    all_mask = Image.new("L", (cw, ch), 0)
    slot_w = cw / n_obj
    order = list(range(n_obj))
    rng.shuffle(order)
    for slot, k in enumerate(order):
        frac = rng.uniform(*cfg.object_height) * (1.0 if n_obj == 1 else rng.uniform(0.55, 0.8))
        obj = _geometric(cuts[k], int(ch * frac), rng, cfg)
        max_w = slot_w * (0.92 if n_obj > 1 else 0.85)
        if obj.width > max_w:
            obj = obj.resize(
                (int(max_w), max(4, int(obj.height * max_w / obj.width))), Image.LANCZOS
            )
        x = int(slot * slot_w + (slot_w - obj.width) * rng.uniform(0.2, 0.8))
        y = int((ch - obj.height) * rng.uniform(0.35, 0.75))
        layer = Image.new("L", (cw, ch), 0)
        _drop(canvas, obj, x, y, rng, layer)
        all_mask.paste(layer, (0, 0), layer)
        if k == 0:
            main_mask = layer
    effects.append(bg_kind)

    canvas = _camera(canvas, rng, cfg)
    # Crop (dealers crop loosely; keep the main object inside).
    bbox = main_mask.point(lambda v: 255 if v > 64 else 0).getbbox() or (0, 0, cw, ch)
    # never tighter than the main object (plus a little room), never larger than the canvas
    cw2 = min(cw, max(int(cw * rng.uniform(0.8, 1.0)), bbox[2] - bbox[0] + 8))
    ch2 = min(ch, max(int(ch * rng.uniform(0.8, 1.0)), bbox[3] - bbox[1] + 8))
    x_lo, x_hi = max(0, bbox[2] - cw2), min(bbox[0], cw - cw2)
    y_lo, y_hi = max(0, bbox[3] - ch2), min(bbox[1], ch - ch2)
    x0 = int(rng.integers(x_lo, x_hi + 1)) if x_hi >= x_lo else max(0, min(bbox[0], cw - cw2))
    y0 = int(rng.integers(y_lo, y_hi + 1)) if y_hi >= y_lo else max(0, min(bbox[1], ch - ch2))
    box = (x0, y0, x0 + cw2, y0 + ch2)
    canvas, main_mask, all_mask = canvas.crop(box), main_mask.crop(box), all_mask.crop(box)
    if rng.random() < cfg.p_watermark:
        canvas = _overlay_text(canvas, rng, "watermark")
        effects.append("watermark")
    if rng.random() < cfg.p_caption:
        canvas = _overlay_text(canvas, rng, "caption")
        effects.append("caption")
    # The website: resize (sometimes down and back up) and recompress.
    if output_size is not None:
        size = (output_size, output_size) if isinstance(output_size, int) else tuple(output_size)
    else:
        side = int(rng.choice([500, 640, 800, 1024]))
        size = (side, max(8, int(side * canvas.height / canvas.width)))
    if rng.random() < 0.3:
        small = (max(8, size[0] // 2), max(8, size[1] // 2))
        canvas = canvas.resize(small, Image.BILINEAR)
        effects.append("upscaled")
    canvas = canvas.resize(size, Image.BICUBIC)
    main_mask = main_mask.resize(size, Image.BILINEAR)
    all_mask = all_mask.resize(size, Image.BILINEAR)
    for _ in range(int(rng.integers(1, 3))):
        canvas = _jpeg(canvas, int(rng.integers(cfg.jpeg_quality[0], cfg.jpeg_quality[1] + 1)))
    return ListingPhoto(canvas, main_mask, all_mask, bg_kind, n_obj, effects)


def simulate_listing_photo(
    images: Sequence[Image.Image] | Image.Image,
    rng: np.random.Generator,
    masks: Sequence[Image.Image | None] | None = None,
    output_size: int | tuple[int, int] | None = None,
    config: MarketplaceConfig | None = None,
    others: Sequence[Image.Image] | None = None,
    other_masks: Sequence[Image.Image | None] | None = None,
) -> Image.Image:
    """A plausible auction-listing photo of an object from one or several of its photos
    (see `simulate_listing`; `others` are other objects sharing the photo)."""
    return simulate_listing(images, rng, masks, output_size, config, others, other_masks).image


def reuse_copy(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A dealer re-using a museum photograph: cropped, maybe mirrored, watermarked, re-saved.

    The museum's own photo, not a new one: crop 70-100% of each side, mirror (p 0.3),
    brightness/contrast tweak, a watermark or caption (p 0.3 each), a web size (360-900 px)
    and one or two JPEG re-compressions at quality 40-90. What photo-reuse evidence must still
    recognise (`matcher.scoring`).
    """
    img = image.convert("RGB")
    w, h = img.size
    cw, ch = int(w * rng.uniform(0.7, 1.0)), int(h * rng.uniform(0.7, 1.0))
    x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    img = img.crop((x0, y0, x0 + cw, y0 + ch))
    if rng.random() < 0.3:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    img = ImageEnhance.Brightness(img).enhance(rng.uniform(0.85, 1.15))
    img = ImageEnhance.Contrast(img).enhance(rng.uniform(0.85, 1.15))
    side = int(rng.integers(360, 901))
    scale = side / max(img.size)
    img = img.resize(
        (max(8, round(img.width * scale)), max(8, round(img.height * scale))), Image.BICUBIC
    )
    if rng.random() < 0.3:
        img = _overlay_text(img, rng, "watermark")
    if rng.random() < 0.3:
        img = _overlay_text(img, rng, "caption")
    for _ in range(int(rng.integers(1, 3))):
        img = _jpeg(img, int(rng.integers(40, 91)))
    return img


def hash_twin(layout: Image.Image, detail: Image.Image) -> Image.Image:
    """A picture of a *different* object with the same perceptual hash as `layout`.

    The coarse light/dark layout of `layout` (what a 64-bit pHash keeps: the lowest spatial
    frequencies) with the fine detail of `detail` (another object's photo): what two museum
    photos of different objects on one plain backdrop look like to a perceptual hash. The
    negative example photo-reuse evidence must not alert on (`training.views`).
    """
    base = layout.convert("RGB")
    radius = max(2.0, max(base.size) / 48.0)
    other = detail.convert("RGB").resize(base.size, Image.BICUBIC)
    low = np.asarray(base.filter(ImageFilter.GaussianBlur(radius)), np.float32)
    high = np.asarray(other, np.float32) - np.asarray(
        other.filter(ImageFilter.GaussianBlur(radius)), np.float32)
    return Image.fromarray(np.clip(np.rint(low + high), 0, 255).astype(np.uint8), "RGB")


def colour_variant(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """The same photo of a *different* object: one of the same shape in another colour.

    Every pixel's hue turned by 90-270 degrees (OpenCV's HSV, saturation and value kept), so
    a red bowl becomes a green or blue one and a grey backdrop stays grey; the grey levels
    change with the hue, as they do between real colour variants. What a workshop's second
    glaze, a mould's other casting or a toy in another colour look like next to the catalogued
    one: the negative example colour evidence must not alert on (`training.views`). A photo
    with no chromatic pixels comes back unchanged.
    """
    hsv = cv2.cvtColor(np.asarray(image.convert("RGB"), np.uint8), cv2.COLOR_RGB2HSV)
    turn = int(rng.integers(45, 136))  # OpenCV's 8-bit hue runs 0-179: 2 degrees a unit
    hsv[..., 0] = ((hsv[..., 0].astype(np.int16) + turn) % 180).astype(np.uint8)
    return Image.fromarray(cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB), "RGB")


class MarketplaceTransform:
    """torchvision-style augmentation: `transform(pil_image) -> pil_image` as a listing photo.

    Seeded and reproducible. Inside a torch DataLoader each worker re-seeds from
    (seed, worker id), so workers do not all produce the same augmentations. `companions`
    are other object photos that may appear beside the main object (photos of several
    objects are common in listings).
    """

    def __init__(
        self,
        seed: int | None = 0,
        output_size: int | tuple[int, int] | None = None,
        p: float = 1.0,
        companions: Sequence[Image.Image] | None = None,
        config: MarketplaceConfig | None = None,
    ) -> None:
        self.seed = seed
        self.output_size = output_size
        self.p = p
        self.companions = list(companions or [])
        self.config = config or MarketplaceConfig()
        self._rng = np.random.default_rng(seed)
        self._worker: int | None = None

    def _generator(self) -> np.random.Generator:
        data = sys.modules.get("torch.utils.data")
        info = data.get_worker_info() if data is not None else None
        if info is not None and self._worker != info.id:
            self._worker = info.id
            self._rng = np.random.default_rng(
                [0 if self.seed is None else self.seed, info.id, info.seed % 2**32]
            )
        return self._rng

    def __call__(self, img: Image.Image) -> Image.Image:
        rng = self._generator()
        if rng.random() >= self.p:
            if self.output_size is None:
                return img
            size = (
                (self.output_size,) * 2
                if isinstance(self.output_size, int)
                else tuple(self.output_size)
            )
            return img.convert("RGB").resize(size, Image.BICUBIC)
        others = []
        if self.companions and rng.random() < self.config.p_multi:
            for _ in range(int(rng.integers(1, 3))):
                others.append(self.companions[int(rng.integers(0, len(self.companions)))])
        return simulate_listing_photo(
            img, rng, output_size=self.output_size, config=self.config, others=others
        )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(seed={self.seed}, output_size={self.output_size}, p={self.p})"
        )
