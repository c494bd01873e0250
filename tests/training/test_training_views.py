"""The deploy recipe's synthetic views: large catalogues get fewer, never too few, and a share
of the listing-style queries are phone photos of the object small on a busy surface."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from matcher.verify import QUERY_SIDE
from training.crossfit import whitening_views
from training.deploy import query_views_for, views_per_photo
from training.views import (
    ViewSet,
    listing_view,
    phone_slot,
    phone_view,
    photo_seed,
    reuse_examples,
)


@pytest.mark.parametrize(
    ("photos", "asked", "budget", "expected"),
    [
        (200, 4, 20_000, 4),  # a small catalogue gets every view asked for
        (2_857, 4, 20_000, 4),  # 2,857 x 7 = 19,999 images: still inside the budget
        (3_740, 4, 20_000, 2),  # the 4,000-photo catalogue: 5 images per photo
        (50_000, 4, 20_000, 2),  # never below 2 however large
        (3_740, 1, 20_000, 1),  # never more than asked, even when 2 is the floor
        (0, 4, 20_000, 4),
    ],
)
def test_views_per_photo(photos: int, asked: int, budget: int, expected: int) -> None:
    assert views_per_photo(photos, asked, budget) == expected


def test_budget_is_kept_where_the_floor_allows() -> None:
    for photos in range(1, 6_000, 97):
        views = views_per_photo(photos, 4, 20_000)
        assert views == 2 or photos * (views + 3) <= 20_000


@pytest.mark.parametrize("photos", [100, 3_740, 50_000])
def test_query_views_never_train_the_whitening(photos: int) -> None:
    views = views_per_photo(photos, 4, 20_000)
    query = query_views_for(views, 2)
    assert set(whitening_views(views, query)).isdisjoint(range(query))
    assert whitening_views(views, query), "at least one view trains the whitening"
    assert whitening_views(2, 2) == []  # every view a query: none trains


def test_a_quarter_of_listing_queries_are_phone_views() -> None:
    keys = [f"{i:064x}" for i in range(800)]
    for query_views, n_views in [(2, 4), (1, 2)]:
        slots = [phone_slot(0, k, n_views, query_views) for k in keys]
        picked = [s for s in slots if s is not None]
        assert set(picked) == {query_views - 1}, "the last query view, never a whitening view"
        assert 0.2 < len(picked) / (len(keys) * query_views) < 0.3
    assert all(phone_slot(0, k, 4, 0) is None for k in keys[:50]), "no query views: none"
    assert phone_slot(0, keys[0], 4, 2) == phone_slot(0, keys[0], 4, 2), "seeded"


def test_a_phone_view_shows_the_object_small_at_the_verifiers_size() -> None:
    photo = Image.new("RGB", (300, 300), (235, 235, 235))
    ImageDraw.Draw(photo).ellipse((40, 40, 260, 260), fill=(200, 20, 20))

    def red_share(image: Image.Image) -> float:
        rgb = np.asarray(image.convert("RGB"), np.int16)
        red = (rgb[..., 0] > 120) & (rgb[..., 0] - rgb[..., 1] > 60)
        return float(red.mean())

    phone = [phone_view(photo, photo_seed(0, "disc", j)) for j in range(6)]
    listing = [listing_view(photo, photo_seed(0, "disc", j), 336) for j in range(6)]
    assert all(im.size == (QUERY_SIDE, QUERY_SIDE) for im in phone)
    assert all(0 < red_share(im) < 0.12 for im in phone), [red_share(im) for im in phone]
    assert np.median([red_share(im) for im in listing]) > 2 * np.median(
        [red_share(im) for im in phone])


def test_a_phone_view_never_trains_the_served_whitening() -> None:
    feats = np.zeros((3, 8), np.float32)
    views = ViewSet(originals=feats, views=np.zeros((3, 2, 8), np.float32), reuse=feats,
                    twin=feats, phone=np.array([-1, 1, 0]))
    assert views.whitening_rows(0).tolist() == [True, True, False]
    assert views.whitening_rows(1).tolist() == [True, False, True]
    legacy = ViewSet(originals=feats, views=np.zeros((3, 2, 8), np.float32), reuse=feats,
                     twin=feats)
    assert legacy.whitening_rows(1).all(), "no phone record: every view trains"


def test_reuse_examples_cap_a_large_catalogue_with_a_seeded_choice() -> None:
    keys = [f"{i:064x}" for i in range(400)]
    assert reuse_examples(keys, 0, 400).all(), "a catalogue within the cap: every photo"
    picked = reuse_examples(keys, 0, 150)
    assert picked.sum() == 150
    order = np.random.default_rng(1).permutation(len(keys))
    shuffled = reuse_examples([keys[i] for i in order], 0, 150)
    assert {keys[i] for i in order[shuffled]} == {keys[i] for i in np.flatnonzero(picked)}, \
        "the same photos whatever the catalogue's order"
    assert not np.array_equal(reuse_examples(keys, 1, 150), picked), "seeded"
    assert reuse_examples(keys, 0, 0).sum() == 0
    first = np.arange(400) % 5 == 0  # photos of objects with several photos: picked first
    assert (reuse_examples(keys, 0, 80, first=first) == first).all()  # 80 of them
    assert (reuse_examples(keys, 0, 150, first=first) >= first).all()
    assert reuse_examples(keys, 0, 50, first=first).sum() == 50
    assert not (reuse_examples(keys, 0, 50, first=first) & ~first).any()
    with pytest.raises(ValueError, match="reuse examples"):
        reuse_examples(keys, 0, -1)


@pytest.fixture(scope="module")
def small_catalogue(tmp_path_factory: pytest.TempPathFactory) -> list:
    from artwatch.demo import generate_catalogue
    from training.catalogue import load_manifest

    out = tmp_path_factory.mktemp("views-catalogue")
    generate_catalogue(out, 3, seed=5, size=96, workers=1, supersample=1)
    return list(load_manifest(out).photos)


def test_query_features_are_served_features_crops_or_the_image_itself(small_catalogue) -> None:
    """Each query image's served features are its own pooled features, or (where the crop rule
    cut one) its crop's; without cropping they are exactly the image's own."""
    import timm
    import torch

    from matcher.preprocess import Preprocess
    from training.views import render_views

    torch.manual_seed(0)
    backbone = timm.create_model("test_efficientnet", pretrained=False, num_classes=0)
    pre = Preprocess(64, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    kwargs = {"n_views": 3, "query_views": 2, "seed": 0, "device": torch.device("cpu"),
              "local": False, "workers": 1}
    plain = render_views(small_catalogue, backbone, pre, crop=False, **kwargs)
    served = render_views(small_catalogue, backbone, pre, crop=True, **kwargs)
    n = len(small_catalogue)
    own = np.stack([plain.originals, plain.views[:, 0], plain.views[:, 1], plain.reuse,
                    plain.twin, plain.variant], axis=1)
    assert plain.queried.shape == (n, 6, own.shape[2]) and len(plain.queries[0]) == 6
    assert np.array_equal(plain.queried, own) and not plain.cropped.any()
    assert np.allclose(served.originals, plain.originals)  # references are never cropped
    same = ~served.cropped
    assert np.allclose(served.queried[same], own[same], atol=1e-5)
    assert not np.allclose(served.queried[served.cropped], own[served.cropped], atol=1e-3)


def test_photos_without_reuse_examples_have_no_reuse_twin_or_variant_queries(
        small_catalogue) -> None:
    """A photo the cap leaves out renders no re-used copy, hash twin or colour variant, has
    no such query images, and never becomes such a query of a cross-fitting world; the other
    photos' features are exactly those of a run without the cap."""
    import timm
    import torch

    from matcher.preprocess import Preprocess
    from training.crossfit import Distractors, _world_queries, plan_worlds
    from training.views import REUSE, TWIN, VARIANT, render_views

    torch.manual_seed(0)
    backbone = timm.create_model("test_efficientnet", pretrained=False, num_classes=0)
    pre = Preprocess(64, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    n = len(small_catalogue)
    examples = np.arange(n) % 2 == 0
    kwargs = {"n_views": 3, "query_views": 2, "seed": 0, "device": torch.device("cpu"),
              "local": False, "workers": 1}
    full = render_views(small_catalogue, backbone, pre, **kwargs)
    capped = render_views(small_catalogue, backbone, pre, examples=examples, **kwargs)
    assert [len(q) for q in capped.queries] == [6 if e else 3 for e in examples]
    assert all(q.kind not in (REUSE, TWIN, VARIANT) for i in np.flatnonzero(~examples)
               for q in capped.queries[i])
    assert np.allclose(capped.originals, full.originals, atol=1e-5)
    assert np.allclose(capped.views, full.views, atol=1e-5)
    assert np.allclose(capped.queried[:, :3], full.queried[:, :3], atol=1e-5)
    assert np.allclose(capped.queried[examples], full.queried[examples], atol=1e-5)
    assert np.allclose(capped.reuse[examples], full.reuse[examples], atol=1e-5)
    assert not capped.reuse[~examples].any() and not capped.queried[~examples, 3:].any()
    assert [capped.has_examples(i) for i in range(n)] == examples.tolist()
    assert np.array_equal(capped.coloured, full.coloured & examples)
    assert full.coloured.any(), "the demo's objects are coloured"

    plan = plan_worlds(small_catalogue, 3, 0)
    objects = sorted({p.object_id for p in small_catalogue})
    photo_obj = np.array([objects.index(p.object_id) for p in small_catalogue])
    empty = np.zeros((0, full.originals.shape[1]), np.float32)
    none = Distractors(bank=empty, queries=empty, query_images=[], whole=empty)
    def reuse_queries(views: ViewSet) -> set[tuple[int, str]]:
        seen = set()
        for world in range(3):
            out = plan.left_out(world, small_catalogue)
            _, _, info = _world_queries(world, small_catalogue, views, none, plan, out, 2,
                                        photo_obj, set(photo_obj[~out].tolist()))
            seen |= {(i["photo"], i["kind"]) for i in info
                     if i["kind"] in (REUSE, TWIN, VARIANT)}
            # a colour variant: a negative, of a left-out photo whose variant is coloured
            assert all(i["label"] == -1 and not i["positive"] and out[i["photo"]]
                       and views.coloured[i["photo"]]
                       for i in info if i["kind"] == VARIANT)
        return seen

    everyone, some = reuse_queries(full), reuse_queries(capped)
    assert some == {(i, kind) for i, kind in everyone if examples[i]}
    assert {kind for _, kind in some} == {REUSE, TWIN, VARIANT}


def test_the_views_step_passes_the_images_it_counts(small_catalogue) -> None:
    """`backbone_images` (what decides compiling and what training logs) is the number of
    images `render_views` passes through the backbone when no crop needs a second pass."""
    import timm
    import torch

    from matcher.preprocess import Preprocess
    from training.views import backbone_images, render_views

    torch.manual_seed(0)
    backbone = timm.create_model("test_efficientnet", pretrained=False, num_classes=0)
    passed: list[int] = []
    backbone.conv_stem.register_forward_hook(lambda _m, args, _out: passed.append(len(args[0])))
    examples = np.arange(len(small_catalogue)) % 3 == 0
    render_views(small_catalogue, backbone, Preprocess(64, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)),
                 n_views=3, query_views=2, seed=0, device=torch.device("cpu"), local=False,
                 crop=False, examples=examples, workers=1)
    assert sum(passed) == backbone_images(3, examples) == 4 * len(examples) + 3 * examples.sum()


def test_the_cli_and_the_recipe_cap_reuse_examples_alike() -> None:
    """`artwatch train` keeps its defaults as literals (its module loads without torch); the
    re-use cap must be the recipe's."""
    import inspect

    from training.cli import train
    from training.deploy import DeployRequest
    from training.views import REUSE_EXAMPLES

    option = inspect.signature(train).parameters["reuse_examples"].default
    assert option.default == REUSE_EXAMPLES == DeployRequest.reuse_examples
    model = inspect.signature(train).parameters["verified_model"].default
    assert model.default == DeployRequest.verified_model == "auto"
    nominees = inspect.signature(train).parameters["local_candidates"].default
    assert nominees.default == DeployRequest.local_candidates
    from matcher.evidence import MAX_LOCAL_CANDIDATES

    assert (nominees.min, nominees.max) == (1, MAX_LOCAL_CANDIDATES)
