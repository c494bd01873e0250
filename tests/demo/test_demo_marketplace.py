"""Marketplace photo simulator: segmentation, object kept visible, background replaced."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from artwatch.demo.artefacts import build_artefact, object_spec, plan_views
from artwatch.demo.catalogue import generate_catalogue
from artwatch.demo.listings import NONE, generate_listings
from artwatch.demo.marketplace import (
    BACKGROUNDS,
    MarketplaceConfig,
    MarketplaceTransform,
    _camera,
    _drop,
    cut_out,
    make_background,
    segment_object,
    simulate_listing,
    simulate_listing_photo,
)
from artwatch.demo.render import render

COIL100 = Path(__file__).resolve().parents[3] / "shared" / "data" / "coil100"


def _rendered(index: int, size: int = 128) -> tuple[Image.Image, Image.Image]:
    spec = object_spec(31, index)
    return render(build_artefact(spec), plan_views(spec)[0], size, return_mask=True)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def test_segmentation_recovers_the_rendered_object() -> None:
    ious = []
    for i in range(6):
        img, mask = _rendered(i)
        seg = np.asarray(segment_object(img)) > 128
        ious.append(_iou(seg, np.asarray(mask) > 128))
    assert np.median(ious) > 0.85, ious
    assert min(ious) > 0.5, ious


@pytest.mark.skipif(not (COIL100 / "manifest.csv").exists(), reason="needs ../shared/data/coil100")
def test_segmentation_of_real_turntable_photos() -> None:
    with open(COIL100 / "manifest.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    areas = []
    for r in rows[200:2000:300]:
        img = Image.open(COIL100 / r["image"])
        m = np.asarray(segment_object(img)) > 128
        areas.append(m.mean())
        corners = [m[0, 0], m[0, -1], m[-1, 0], m[-1, -1]]
        assert sum(corners) <= 1  # the black turntable background stays background
    assert all(0.03 < a < 0.95 for a in areas), areas


def test_listing_keeps_the_object_visible_and_changes_the_background() -> None:
    changed = 0
    for k in range(8):
        img, mask = _rendered(k % 4, 128)
        rng = np.random.default_rng(100 + k)
        photo = simulate_listing([img], rng, masks=[mask])
        out = np.asarray(photo.image, np.float32)
        m = np.asarray(photo.object_mask) > 128
        assert photo.image.size == photo.object_mask.size
        assert photo.background in BACKGROUNDS
        assert 0.02 < m.mean() < 0.85, m.mean()  # visible, and not the whole photo
        ys, xs = np.nonzero(m)
        h, w = m.shape
        assert ys.min() >= 0 and ys.max() < h and xs.max() - xs.min() > 0.1 * w
        # The studio backdrop is gone: the new background differs from the old one.
        src = np.asarray(img.convert("RGB"), np.float32)
        src_bg = src[np.asarray(mask) < 10].mean(axis=0)
        new_bg = out[~m & (np.asarray(photo.all_mask) < 10)]
        if np.abs(new_bg.mean(axis=0) - src_bg).mean() > 12 or new_bg.std(axis=0).mean() > 12:
            changed += 1
    assert changed >= 6


def test_simulator_is_deterministic_given_the_generator_and_differs_otherwise() -> None:
    img, mask = _rendered(1, 96)
    a = simulate_listing_photo(img, np.random.default_rng(3))
    b = simulate_listing_photo(img, np.random.default_rng(3))
    c = simulate_listing_photo(img, np.random.default_rng(4))
    assert a.tobytes() == b.tobytes()
    assert a.size != c.size or a.tobytes() != c.tobytes()


def test_several_objects_in_one_photo() -> None:
    (a, ma), (b, mb) = _rendered(0, 96), _rendered(1, 96)
    photo = simulate_listing(a, np.random.default_rng(8), masks=[ma], others=[b], other_masks=[mb])
    assert photo.n_objects == 2
    assert (np.asarray(photo.all_mask) > 128).sum() > (np.asarray(photo.object_mask) > 128).sum()


def test_several_photos_of_one_object_give_one_view_or_two() -> None:
    spec = object_spec(31, 2)
    art = build_artefact(spec)
    views = [render(art, v, 96, return_mask=True) for v in plan_views(spec)[:3]]
    imgs, masks = [v[0] for v in views], [v[1] for v in views]
    counts = set()
    for k in range(12):
        photo = simulate_listing(
            imgs, np.random.default_rng(k), masks=masks, config=MarketplaceConfig(p_multi=0.5)
        )
        counts.add(photo.n_objects)
        assert ("two views" in photo.effects) == (photo.n_objects == 2)
    assert counts == {1, 2}  # usually one view; sometimes front and back side by side


def test_every_background_kind_is_a_picture() -> None:
    for kind in BACKGROUNDS:
        bg = np.asarray(make_background(kind, 160, 120, np.random.default_rng(1)), np.float32)
        assert bg.shape == (120, 160, 3)
        assert bg.mean() > 5  # not empty


def test_transform_is_a_seeded_torchvision_style_callable() -> None:
    img, _ = _rendered(2, 96)
    t1 = MarketplaceTransform(seed=5, output_size=64)
    t2 = MarketplaceTransform(seed=5, output_size=64)
    out1, out2 = t1(img), t2(img)
    assert isinstance(out1, Image.Image) and out1.size == (64, 64)
    assert out1.tobytes() == out2.tobytes()
    assert t1(img).tobytes() != out1.tobytes()  # the next call draws new effects
    assert MarketplaceTransform(seed=6, output_size=64)(img).tobytes() != out1.tobytes()
    untouched = MarketplaceTransform(seed=5, p=0.0)(img)
    assert untouched is img
    soft = MarketplaceTransform(
        seed=1, output_size=(80, 60), config=MarketplaceConfig(p_watermark=0.0, p_caption=0.0)
    )
    assert soft(img).size == (80, 60)


def test_transform_inside_a_torchvision_pipeline() -> None:
    transforms = pytest.importorskip("torchvision.transforms")
    img, _ = _rendered(3, 96)
    pipeline = transforms.Compose(
        [MarketplaceTransform(seed=0, output_size=72), transforms.ToTensor()]
    )
    x = pipeline(img)
    assert tuple(x.shape) == (3, 72, 72)


def test_listings_name_the_object_or_none(tmp_path: Path) -> None:
    cat = generate_catalogue(tmp_path / "cat", 3, seed=13, size=64, workers=1)
    ids = {r.object_id for r in cat}
    rows = generate_listings(tmp_path / "listings", tmp_path / "cat", 8, seed=2, workers=1)
    with open(tmp_path / "listings" / "listings.csv", newline="") as fh:
        written = list(csv.DictReader(fh))
    assert len(written) == len(rows) == 8
    assert {r["object_id"] for r in written} <= ids | {NONE}
    assert any(r["object_id"] == NONE for r in written) and any(
        r["object_id"] in ids for r in written
    )
    for r in written:
        assert (r["source"] == "distractor") == (r["object_id"] == NONE)
        with Image.open(tmp_path / "listings" / r["image"]) as im:
            assert im.format == "JPEG" and min(im.size) >= 200
    again = generate_listings(tmp_path / "again", tmp_path / "cat", 8, seed=2, workers=2)
    assert again == rows
    assert (tmp_path / "again" / rows[0].image).read_bytes() == (
        tmp_path / "listings" / rows[0].image
    ).read_bytes()
    reused = generate_listings(
        tmp_path / "reuse",
        tmp_path / "cat",
        4,
        seed=3,
        distractor_share=0.0,
        rerender=False,
        workers=1,
    )
    assert all(
        r.source == "catalogue-photo" and r.source_image.startswith("images/") for r in reused
    )


def _drop_on_whole_canvas(canvas: Image.Image, obj: Image.Image, x: int, y: int,
                          rng: np.random.Generator) -> None:
    """`_drop` as first written: both shadows drawn, blurred and applied over the whole canvas."""
    alpha = obj.getchannel("A")
    w, h = obj.size
    strength = rng.uniform(0.25, 0.6)
    dx, dy = int(rng.normal(0, 0.08) * w), int(abs(rng.normal(0.03, 0.04)) * h)
    shadow = Image.new("L", canvas.size, 0)
    shadow.paste(alpha, (x + dx, y + dy))
    shadow = shadow.filter(ImageFilter.GaussianBlur(max(2.0, 0.05 * h)))
    contact = Image.new("L", canvas.size, 0)
    ImageDraw.Draw(contact).ellipse([x + w * 0.15, y + h * 0.93, x + w * 0.85, y + h * 1.03],
                                    fill=255)
    contact = contact.filter(ImageFilter.GaussianBlur(max(1.5, 0.02 * h)))
    dark = np.maximum(np.asarray(shadow, np.float32) * strength,
                      np.asarray(contact, np.float32) * 0.35) / 255.0
    base = np.asarray(canvas, np.float32) * (1.0 - dark[..., None])
    canvas.paste(Image.fromarray(np.rint(base).astype(np.uint8), "RGB"))
    canvas.paste(obj.convert("RGB"), (x, y), alpha)


@pytest.mark.parametrize("seed", range(6))
def test_shadows_drawn_in_a_window_are_the_whole_canvas_shadows(seed: int) -> None:
    """The window `_drop` works in reaches past the blurs: not one pixel differs from drawing
    over the whole canvas, also for objects at and beyond the canvas's edges."""
    rng = np.random.default_rng(seed)
    canvas = make_background("wood", 500, 380, rng)
    obj = cut_out(*_rendered(seed, 160))
    x = int(rng.integers(-obj.width // 2, canvas.width - obj.width // 2))
    y = int(rng.integers(-obj.height // 2, canvas.height - obj.height // 2))
    windowed, whole = canvas.copy(), canvas.copy()
    _drop(windowed, obj, x, y, np.random.default_rng(seed + 100), Image.new("L", canvas.size, 0))
    _drop_on_whole_canvas(whole, obj, x, y, np.random.default_rng(seed + 100))
    assert np.array_equal(np.asarray(windowed), np.asarray(whole))
    assert not np.array_equal(np.asarray(windowed), np.asarray(canvas))  # a shadow was cast


def test_the_camera_tone_curve_looked_up_per_level_is_the_per_pixel_curve() -> None:
    """`_camera`'s white balance, exposure and gamma, looked up per level, give the pixels the
    per-pixel formula gives (the rest of the camera draws from the generator as before)."""
    cfg = MarketplaceConfig(p_noise=0.0, p_blur=0.0)
    img = make_background("clutter", 320, 240, np.random.default_rng(3))
    got = np.asarray(_camera(img, np.random.default_rng(9), cfg))
    rng = np.random.default_rng(9)
    arr = np.asarray(img, np.float32) / 255.0
    warm = rng.normal(0.0, 0.07)
    gains = np.array([1.0 + warm, 1.0 + rng.normal(0, 0.02), 1.0 - warm],
                     np.float32) * rng.uniform(0.85, 1.15)
    arr = np.clip(arr * gains, 0, 1) ** rng.uniform(0.8, 1.25)
    yy, xx = np.mgrid[0:240, 0:320].astype(np.float32)
    arr *= (1.0 - rng.uniform(0.0, 0.35) * ((xx / 320 - 0.5) ** 2 + (yy / 240 - 0.5) ** 2) * 2.0
            )[..., None]
    want = np.clip(np.rint(arr * 255), 0, 255).astype(np.uint8)
    assert np.abs(got.astype(int) - want.astype(int)).max() <= 1
    assert (got != want).mean() < 1e-3
