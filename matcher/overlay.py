"""The pictures a reviewer checks beside an alerted candidate: why the matcher said so.

* `keypoint_overlay`: the listing photo and the catalogue photo side by side, with lines
  between the local features that the geometric verification kept (`matcher.verify`); drawn
  for a candidate whose best photo was verified (`matches.evidence.keypoints_image_id`).
* `activation_overlay`: the listing photo with where the backbone's last feature map is strong
  (the channel sum `matcher.crop` selects the object by, SCDA) as a heat layer, and the box the
  photo was recognised from when the matcher embedded its object crop rather than the whole
  photo (`matches.evidence.saliency_image_id`). A reviewer sees at a glance whether the model
  looked at the object or at the table, the watermark or the neighbouring lot.

Both are drawn once per alerted candidate and stored in the content store like any photo.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from matcher.crop import activation_energy
from matcher.preprocess import Preprocess
from matcher.verify import QUERY_SIDE, LocalFeatures, extract, extract_query, verify

HEIGHT = 360
MAX_LINES = 80
COLOURS = ((230, 60, 50), (40, 150, 220), (250, 180, 30), (60, 180, 90), (170, 80, 200))


def _fit(image: Image.Image, features: LocalFeatures) -> tuple[Image.Image, float]:
    """The photo at the size its features were extracted at (their keypoints' coordinates)
    and its scale to HEIGHT."""
    img = image.convert("RGB").resize(features.size)
    return img, HEIGHT / img.height


def keypoint_overlay(listing_photo: Image.Image, catalogue_photo: Image.Image,
                     query_side: int = QUERY_SIDE) -> tuple[bytes, int] | None:
    """(PNG bytes, inliers) of the two photos joined by their homography inliers; None when
    verification keeps fewer than 4 correspondences. `query_side`: the bundle's
    (`Bundle.query_side`), so that the picture shows the verification that scored."""
    listing, catalogue = extract_query(listing_photo, query_side), extract(catalogue_photo)
    result = verify(listing, catalogue)
    if len(result.inlier_pairs) < 4:
        return None
    left, sl = _fit(listing_photo, listing)
    right, sr = _fit(catalogue_photo, catalogue)
    lw, rw = round(left.width * sl), round(right.width * sr)
    canvas = Image.new("RGB", (lw + 12 + rw, HEIGHT), (255, 255, 255))
    canvas.paste(left.resize((lw, HEIGHT)), (0, 0))
    canvas.paste(right.resize((rw, HEIGHT)), (lw + 12, 0))
    draw = ImageDraw.Draw(canvas)
    for k, (qx, qy, rx, ry) in enumerate(result.inlier_pairs[:MAX_LINES]):
        a = (qx * sl, qy * sl)
        b = (lw + 12 + rx * sr, ry * sr)
        colour = COLOURS[k % len(COLOURS)]
        draw.line([a, b], fill=colour, width=1)
        for x, y in (a, b):
            draw.ellipse((x - 2.5, y - 2.5, x + 2.5, y + 2.5), outline=colour, width=2)
    _label(draw, f"{result.h_inliers} matching keypoints")
    return _png(canvas), result.h_inliers


LABEL_PX = 16  # the pictures are shown 160-360 pixels high: a label must survive that


def _label(draw: ImageDraw.ImageDraw, text: str) -> None:
    """Black text on a white band in the picture's top-left corner."""
    font = ImageFont.load_default(size=LABEL_PX)
    left, top, right, bottom = draw.textbbox((6, 4), text, font=font)
    draw.rectangle((0, 0, right + 6, bottom + 4), fill=(255, 255, 255))
    draw.text((6, 4), text, fill=(0, 0, 0), font=font)


HEAT_OPACITY = 0.55  # of the heat colour where the activation is strongest
BOX_COLOUR = (40, 200, 90)


def _png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "PNG", optimize=True)
    return buf.getvalue()


def activation_overlay(photo: Image.Image, feature_map: np.ndarray, preprocess: Preprocess,
                       crop: Sequence[int] | None, cropped: bool | None) -> bytes:
    """PNG, HEIGHT pixels high, of `photo` under its activation heat and its recognition box.

    `feature_map`: (channels, h, w), the backbone's last map for `photo` fitted by
    `preprocess` (`Bundle.forward_maps`); its channel sum, scaled to 0..1 over the photo, is
    the heat (red to yellow, transparent where weakest). `crop`: the (left, top, right,
    bottom) box in `photo`'s pixels the photo was embedded from (`matcher.crop.Box`), drawn
    with its share of the photo; `cropped`: False when the matcher embedded the whole photo,
    None when it is not known (a photo scored before boxes were recorded). Raises ValueError
    for a map that is not 3-D.
    """
    energy = activation_energy(feature_map)
    image = photo.convert("RGB")
    scale = HEIGHT / image.height
    shown = image.resize((max(1, round(image.width * scale)), HEIGHT), Image.Resampling.BILINEAR)
    r = preprocess.resolution
    fitted_w, fitted_h = preprocess.fitted_size(*image.size)
    left, top = (r - fitted_w) // 2, (r - fitted_h) // 2  # where `Preprocess.fit` pastes it
    grid = Image.fromarray(energy.astype(np.float32), "F").resize((r, r), Image.Resampling.BILINEAR)
    heat = np.asarray(grid.crop((left, top, left + fitted_w, top + fitted_h))
                      .resize(shown.size, Image.Resampling.BILINEAR), np.float32)
    span = float(heat.max() - heat.min())
    heat = (heat - heat.min()) / span if span > 0 else np.zeros_like(heat)
    colour = np.stack([np.full_like(heat, 255.0), 255.0 * heat, np.zeros_like(heat)], axis=-1)
    alpha = (HEAT_OPACITY * heat)[..., None]
    blended = np.asarray(shown, np.float32) * (1.0 - alpha) + colour * alpha
    canvas = Image.fromarray(np.clip(np.rint(blended), 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(canvas)
    if crop is not None:
        x0, y0, x1, y1 = (float(v) * scale for v in crop)
        draw.rectangle((x0, y0, x1 - 1, y1 - 1), outline=BOX_COLOUR, width=3)
        share = (crop[2] - crop[0]) * (crop[3] - crop[1]) / (image.width * image.height)
        label = f"recognised from the box ({share:.0%})"
    elif cropped is False:
        label = "recognised from the whole photo"
    else:
        label = "model activation"
    _label(draw, label)
    return _png(canvas)
