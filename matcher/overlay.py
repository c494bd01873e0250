"""The picture a reviewer checks: the listing photo and the catalogue photo side by side, with
lines between the local features that the geometric verification kept (`matcher.verify`).

Drawn once per alerted candidate whose best photo was verified, stored in the content store like
any photo, and referenced from `matches.evidence.keypoints_image_id`.
"""

from __future__ import annotations

import io

from PIL import Image, ImageDraw

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
    draw.text((6, 6), f"{result.h_inliers} matching keypoints", fill=(0, 0, 0))
    buf = io.BytesIO()
    canvas.save(buf, "PNG", optimize=True)
    return buf.getvalue(), result.h_inliers
