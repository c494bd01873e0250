"""A contact sheet: generated catalogue objects (several views each) and simulated listings.

One PNG that lets a person judge at a glance whether the generator looks like museum
photography and the simulator like auction photography -- the acceptance check for both.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from .artefacts import CATALOGUE_STREAM, COLLECTIONS, build_artefact, object_spec, plan_views
from .distractors import distractor_spec, render_with_mask
from .marketplace import load_font, simulate_listing
from .render import render

PAPER = (250, 249, 246)
INK = (30, 30, 30)
GREY = (110, 110, 110)


def _pick_objects(seed: int, count: int) -> list[int]:
    """Indices of catalogue objects covering every collection and shape family first."""
    seen: set[tuple[str, str]] = set()
    first, rest = [], []
    for i in range(count * 40):
        s = object_spec(seed, i, CATALOGUE_STREAM)
        key = (s.collection, s.family if s.family != "vessel" else s.kind)
        (rest if key in seen else first).append(i)
        seen.add(key)
        if len(first) >= count:
            break
    order = {c.name: k for k, c in enumerate(COLLECTIONS)}
    chosen = (first + rest)[:count]
    return sorted(chosen, key=lambda i: (order[object_spec(seed, i).collection], i))


def _fit(img: Image.Image, tile: int, fill: tuple[int, int, int] = PAPER) -> Image.Image:
    im = img.copy()
    im.thumbnail((tile, tile), Image.LANCZOS)
    out = Image.new("RGB", (tile, tile), fill)
    out.paste(im, ((tile - im.width) // 2, (tile - im.height) // 2))
    return out


def make_contact_sheet(
    out_png: str | Path,
    seed: int = 0,
    objects: int = 10,
    views: int = 5,
    listings: int = 15,
    tile: int = 176,
) -> Path:
    """Render `objects` catalogue objects x `views` photos, then `listings` simulated listing
    photos (about a third of uncatalogued distractors), labelled, into one PNG."""
    pad, label_w = 10, 250
    head = load_font(26)
    small = load_font(13)
    body = load_font(15)
    idx = _pick_objects(seed, objects)
    rows = []
    for i in idx:
        spec = object_spec(seed, i)
        art = build_artefact(spec)
        vs = plan_views(spec)[:views]
        rows.append((spec, [render(art, v, tile, 2, shade_samples=True) for v in vs]))
    rng = np.random.default_rng([seed, 4242])
    shots = []
    for k in range(listings):
        if k % 3 == 2:
            spec = distractor_spec(seed, k)
            caption = "not catalogued"
        else:
            spec = object_spec(seed, idx[(k * 7) % len(idx)])
            caption = spec.object_id
        img, mask = render_with_mask(spec, rng)
        others, other_masks = [], []
        if k % 5 == 4:  # a dealer's group photo
            o_img, o_mask = render_with_mask(distractor_spec(seed, 10_000 + k), rng)
            others, other_masks = [o_img], [o_mask]
        photo = simulate_listing([img], rng, masks=[mask], others=others, other_masks=other_masks)
        shots.append((caption, photo.image))

    cols = 5
    sheet_w = pad * 2 + label_w + views * (tile + pad)
    list_tile = (sheet_w - pad * (cols + 1)) // cols
    list_rows = (len(shots) + cols - 1) // cols
    sheet_h = 60 + len(rows) * (tile + pad) + 70 + list_rows * (list_tile + 28 + pad) + pad
    sheet = Image.new("RGB", (sheet_w, sheet_h), PAPER)
    d = ImageDraw.Draw(sheet)
    d.text((pad, 14), f"Generated museum catalogue (seed {seed})", font=head, fill=INK)
    y = 60
    for spec, imgs in rows:
        d.text((pad, y + 8), spec.object_id, font=body, fill=INK)
        d.text((pad, y + 30), f"{spec.collection} / {spec.kind}", font=small, fill=GREY)
        words, line, ly = spec.title.split(), "", y + 50
        for w in words:  # wrap the title into the label column
            trial = f"{line} {w}".strip()
            if d.textlength(trial, font=small) > label_w - 20 and line:
                d.text((pad, ly), line, font=small, fill=GREY)
                ly, line = ly + 16, w
            else:
                line = trial
        d.text((pad, ly), line, font=small, fill=GREY)
        d.text((pad, ly + 20), f"{spec.n_photos} photos in catalogue", font=small, fill=GREY)
        for k, im in enumerate(imgs):
            sheet.paste(im, (pad + label_w + k * (tile + pad), y))
        y += tile + pad
    y += 20
    d.text((pad, y), "Simulated auction-listing photos", font=head, fill=INK)
    y += 50
    for k, (caption, im) in enumerate(shots):
        r, c = divmod(k, cols)
        x0 = pad + c * (list_tile + pad)
        y0 = y + r * (list_tile + 28 + pad)
        sheet.paste(_fit(im, list_tile), (x0, y0))
        colour = (160, 30, 30) if caption == "not catalogued" else INK
        d.text((x0, y0 + list_tile + 6), caption, font=small, fill=colour)
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out, "PNG")
    return out
