"""Everything the deployment recipe learns and calibrates from, computed once per catalogue photo.

For each catalogue photo:

* the original, as the model sees it (a studio photo; a reference and an out-of-fold query);
* `n_views` synthetic listing photos of it (`artwatch.demo.simulate_listing_photo`: cut out,
  new background and light, perspective, crop, a phone camera, a website's JPEG; mirrored
  half the time). All of them teach the whitening what does not identify an object; the first
  `query_views` are also the listing-style out-of-fold queries that calibration measures. A
  quarter of those are *phone views* instead (`phone_view`, in the slot `phone_slot` picks:
  the object 12-35% of a busy table photo, at the verifier's working size). Without them the
  calibrated score never sees a right object with low global similarity and many inliers (a
  coin photographed small in clutter), and rejects exactly those listings;
* one re-used copy (`reuse_copy`: the museum's own photo cropped, mirrored, watermarked,
  re-saved), the positive example of photo re-use;
* one hash twin (`hash_twin`: its coarse layout with another object's detail, a different
  picture with the same perceptual hash), the negative example of photo re-use: museum photos
  of different objects on one plain backdrop collide on a hash;
* one colour variant (`colour_variant`: its hues turned by 90-270 degrees, half the time
  re-photographed as a listing view), the negative example of colour: an object of the same
  shape in another colour (a second glaze, another casting). Without it no out-of-fold
  negative is both as close as the object's own photos and unlike them in colour (a
  catalogued pair of colour variants only ever stand in for each other when both are
  catalogued), and the photo score barely weighs the colour gap: on COIL-100 an uncatalogued
  blue torus alerted on its red twin in all 24 of its listings (docs/recognition.md). Only a
  photo whose variant differs from it in colour (`VARIANT_MIN_GAP`) is such a query: turning
  the hue of a grey object changes nothing, and that "negative" would be a positive.

  The re-use examples are made for the photos `examples` picks (`reuse_examples`: all of a
  catalogue up to `REUSE_EXAMPLES` photos; above, the photos of objects with several photos
  first, then a seeded choice): they are a third of the views step's work. On the 3,740-photo
  benchmark catalogue on an AVX2-only CPU the cap saved 7.6 of 34.0 minutes and cost 1-3
  points of out-of-fold correct-and-accepted (docs/recognition.md).

Rendering runs in worker processes (the simulator is numpy/Pillow code), each photo's images
seeded by (seed, photo sha256, index) so a re-run gives the same pixels. The parent turns the
model inputs into pooled backbone features as they arrive, so a batch never holds more than a
few photos' pixels; from 2,000 images up its forward is compiled (`matcher.compiled`: the
views step of a 3,740-photo catalogue 23% shorter in float32). The local features
(`matcher.verify`) of the original and of every query image are extracted in the workers too.

Every query image is also embedded as the matcher will embed a listing photo
(`ViewSet.queried`): where the backbone's own activations put the object in a box clearly
smaller than the picture (`matcher.crop`), from that crop, in one more backbone pass over the
batch's crops. How many that is depends on the photos: on the 3,740-photo generated
catalogue 83% of the query images (the museum renders show the object smaller than the
frame), on COIL-100's 40-92% by kind; `training.deploy` logs the counts. The calibrated score
thus learns from the features it will be served.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image

from artwatch.demo.catalogue import pool_context, worker_init
from artwatch.demo.marketplace import (
    MarketplaceConfig,
    colour_variant,
    hash_twin,
    reuse_copy,
    simulate_listing_photo,
)
from artwatch.images.decode import perceptual_hash_pair
from matcher.compiled import BackboneForward, compile_wanted
from matcher.crop import cropped_features
from matcher.preprocess import Preprocess
from matcher.verify import (
    QUERY_SIDE,
    LocalFeatures,
    colour_gap,
    colour_signature,
    extract_both,
    extract_query,
)
from training.catalogue import Photo

# Query image kinds, in the order `ViewSet.queries[i]` lists them (a phone view is a listing
# view of kind PHONE: it teaches the photo score, it never sets a promise, `training.calibrate`).
STUDIO, LISTING, PHONE, REUSE, TWIN, VARIANT = (
    "studio", "listing", "phone", "reuse", "twin", "variant")

# A phone photo of a small object on a busy surface: what a flat object (coin, tablet, print)
# looks like in many listings. The object is 12-35% of the photo's height, so a global
# embedding mostly describes the table, while local features still match the object.
PHONE_PHOTO = MarketplaceConfig(backgrounds=("clutter", "tabletop", "wood", "cloth"),
                                object_height=(0.12, 0.35), rotation_deg=20.0, perspective=0.12)
PHONE_SHARE = 0.25  # of the listing-style query views
REUSE_EXAMPLES = 1_500  # photos with a re-used copy and a hash twin, at most (`reuse_examples`)
# A colour variant is a query only where its colour signature is at least this far from the
# photo's (`matcher.verify.colour_gap`, 0-1): a one-hue object turned 90 degrees or more is
# near 1, a grey one 0 (nothing turned), a many-coloured one in between.
VARIANT_MIN_GAP = 0.5


@dataclass
class QueryImage:
    """One out-of-fold query image of a catalogue photo: what it is and its cheap evidence."""

    kind: str  # studio | listing | phone | reuse | twin | variant
    phash: int
    phash_mirror: int
    local: LocalFeatures | None


@dataclass
class ViewSet:
    """Pooled backbone features of every catalogue photo and its synthetic images.

    `originals` (n x d), `views` (n x n_views x d), `reuse`, `twin` and `variant` (n x d):
    float32, not normalised. `queries[i]` describes photo i's query images: the original, the
    first `query_views` listing views, and where `examples[i]` the re-used copy, the hash twin
    and the colour variant (features: originals[i], views[i, j], reuse[i], twin[i],
    variant[i]; zeros for a photo without re-use examples). `phone[i]`: the view of photo i
    that is a phone view (`phone_slot`), -1 for none. `coloured[i]`: photo i's colour variant
    differs from it in colour (`VARIANT_MIN_GAP`), so it is a negative query.
    """

    originals: np.ndarray
    views: np.ndarray
    reuse: np.ndarray
    twin: np.ndarray
    variant: np.ndarray = field(default_factory=lambda: np.zeros((0, 1), np.float32))
    queries: list[list[QueryImage]] = field(default_factory=list)
    reference_local: list[LocalFeatures | None] = field(default_factory=list)
    phone: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    # (n x len(queries[i]) x d): each query image's features as the matcher serves them (its
    # object crop's where `matcher.crop` cuts one, else its own), and (n x len) which were.
    queried: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 1), np.float32))
    cropped: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), bool))
    # (n,) bool: photos with a re-used copy and a hash twin (`reuse_examples`); empty: all.
    examples: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    coloured: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))

    def has_examples(self, i: int) -> bool:
        """Whether photo i has a re-used copy, a hash twin and a colour variant (rows -3, -2
        and -1 of its `queried`, the last three of `queries[i]`)."""
        return len(self.examples) != len(self.originals) or bool(self.examples[i])

    def has_variant(self, i: int) -> bool:
        """Whether photo i's colour variant is a negative query (`coloured`)."""
        return (self.has_examples(i) and len(self.coloured) == len(self.originals)
                and bool(self.coloured[i]))

    def whitening_rows(self, j: int) -> np.ndarray:
        """(n,) bool: photos whose view j may train a whitening. A phone view never does: it is
        mostly the table, and pairing it with the object's studio photo would teach the
        whitening that backgrounds are within-object variation (it also never does in
        cross-fitting, whose calibration the served model must match)."""
        if len(self.phone) != len(self.originals):
            return np.ones(len(self.originals), bool)
        return self.phone != j


def photo_seed(seed: int, key: str, index: int) -> np.random.Generator:
    """Deterministic generator for image `index` of the photo with sha256 `key`."""
    digest = int.from_bytes(hashlib.sha256(f"{seed}:{key}:{index}".encode()).digest()[:8], "big")
    return np.random.default_rng(digest)


def reuse_examples(keys: Sequence[str], seed: int, limit: int = REUSE_EXAMPLES,
                   first: np.ndarray | None = None) -> np.ndarray:
    """(n,) bool: the photos (by sha256 `keys`) that get a re-used copy, a hash twin and a
    colour variant: all when there are at most `limit`, else the `limit` with the lowest
    seeded draw (the same photos whatever the catalogue's order), those `first` marks ((n,)
    bool) before any other.

    `first`: the photos of objects with two or more photos (`training.deploy`). Only their
    colour variants meet their own object in cross-fitting (a left-out photo's variant
    against its object's other photos), so in a museum-sized catalogue of mostly one-photo
    objects a seeded choice alone would leave the score a few dozen such negatives.

    Why a cap: the two images, their local features, backbone passes and crops cost ~0.27
    core-seconds a photo on an AVX2-only CPU, a third of the views step, and their queries a
    quarter of cross-fitting's; the photo-reuse evidence they teach is one of the score's
    inputs (its ablation moved correct-and-accepted by at most 0.001 with every photo's).

    Raises ValueError for a negative `limit`.
    """
    n = len(keys)
    if limit < 0:
        raise ValueError(f"reuse examples: {limit} (expected 0 or more)")
    if n <= limit:
        return np.ones(n, bool)
    draws = np.array([photo_seed(seed, key, 30_000).random() for key in keys])
    if first is not None:
        draws = draws - np.asarray(first, bool)  # draws are in [0, 1): `first` goes first
    picked = np.zeros(n, bool)
    picked[np.argsort(draws, kind="stable")[:limit]] = True
    return picked


def backbone_images(n_views: int, examples: np.ndarray) -> int:
    """Images the views step passes through the backbone for photos with `examples` ((n,)
    bool, `reuse_examples`): each photo's original and `n_views` listing views, and a re-used
    copy, a hash twin and a colour variant where it has examples (not counting the crops'
    second passes). It decides whether the backbone is compiled (`matcher.compiled`) and is
    what training logs."""
    return int(len(examples) * (n_views + 1) + EXAMPLE_IMAGES * np.count_nonzero(examples))


EXAMPLE_IMAGES = 3  # re-used copy, hash twin, colour variant


def variant_view(image: Image.Image, rng: np.random.Generator,
                 size: int) -> tuple[Image.Image, bool]:
    """A colour variant of `image` (`colour_variant`), half the time re-photographed as a
    listing view of `size` pixels, and whether it differs from `image` in colour
    (`VARIANT_MIN_GAP`, measured on the two studio photos)."""
    turned = colour_variant(image, rng)
    coloured = colour_gap(colour_signature(image), colour_signature(turned)) >= VARIANT_MIN_GAP
    if rng.random() < 0.5:
        turned = listing_view(turned, rng, size)
    return turned, coloured


def _simulated(image: Image.Image, rng: np.random.Generator, size: int, max_source: int,
               config: MarketplaceConfig | None = None) -> Image.Image:
    """`simulate_listing_photo` of `image` at `size` x `size` pixels, mirrored half the time;
    the source first shrunk to `max_source` pixels (the simulator's cost grows with the
    source; detail beyond the output does not survive it)."""
    source = image.convert("RGB")
    if max(source.size) > max_source:
        scale = max_source / max(source.size)
        source = source.resize(
            (max(8, round(source.width * scale)), max(8, round(source.height * scale))),
            Image.Resampling.BICUBIC,
            reducing_gap=2.0,
        )
    if rng.random() < 0.5:
        source = source.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return simulate_listing_photo([source], rng, output_size=size, config=config)


def listing_view(image: Image.Image, rng: np.random.Generator, size: int) -> Image.Image:
    """A synthetic listing photo of `image` at `size` x `size` pixels (mirrored half the time)."""
    return _simulated(image, rng, size, 2 * size)


def phone_view(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A phone photo of `image`'s object small on a busy surface (`PHONE_PHOTO`), QUERY_SIDE
    pixels square: the verifier's working size for a large listing photo, so its local
    features are those a real phone photo gives (a model-sized view would hold a few dozen
    pixels of the object)."""
    return _simulated(image, rng, QUERY_SIDE, QUERY_SIDE, PHONE_PHOTO)


def phone_slot(seed: int, key: str, n_views: int, query_views: int) -> int | None:
    """The view index that is a phone view for the photo with sha256 `key`, or None: the last
    query view of a seeded share of photos, so that PHONE_SHARE of all query views are."""
    q = min(query_views, n_views)
    if q <= 0 or photo_seed(seed, key, 20_000).random() >= min(1.0, PHONE_SHARE * q):
        return None
    return q - 1


@dataclass(frozen=True)
class _Job:
    seed: int
    n_views: int
    query_views: int
    view_size: int
    local: bool
    crop: bool


_photos: Sequence[Photo] = ()
_preprocess: Preprocess | None = None


# index, model inputs, query images' evidence, the reference's local features, the phone
# slot, the query images themselves (what their object crop is cut from), and whether the
# colour variant differs in colour.
_Rendered = tuple[int, np.ndarray, list[QueryImage], LocalFeatures | None, int,
                  list[Image.Image], bool]


def _partner(index: int) -> Photo:
    """Another object's photo (deterministic), whose detail makes photo `index`'s hash twin."""
    photo = _photos[index]
    n = len(_photos)
    step = 1 + int(photo.key[:8], 16) % max(1, n - 1)
    for k in range(n):
        other = _photos[(index + step + k) % n]
        if other.object_id != photo.object_id:
            return other
    return photo  # a one-object catalogue: no twin possible, the photo itself stands in


def _render(args: tuple[int, _Job, bool]) -> _Rendered:
    """Worker: pixels of [original, views..., reuse copy, twin, colour variant] (the last
    three where `examples`) and the query images' evidence."""
    index, job, examples = args
    photo = _photos[index]
    assert _preprocess is not None
    original = photo.load().convert("RGB")
    images = [original]
    phone = phone_slot(job.seed, photo.key, job.n_views, job.query_views)
    images += [
        phone_view(original, photo_seed(job.seed, photo.key, j)) if j == phone
        else listing_view(original, photo_seed(job.seed, photo.key, j), job.view_size)
        for j in range(job.n_views)
    ]
    kinds = [(STUDIO, images[0])]
    kinds += [(PHONE if j == phone else LISTING, images[1 + j])
              for j in range(min(job.query_views, job.n_views))]
    coloured = False
    if examples:
        images.append(reuse_copy(original, photo_seed(job.seed, photo.key, 10_000)))
        images.append(hash_twin(original, _partner(index).load()))
        variant, coloured = variant_view(original, photo_seed(job.seed, photo.key, 40_000),
                                         job.view_size)
        images.append(variant)
        kinds += [(REUSE, images[-3]), (TWIN, images[-2]), (VARIANT, images[-1])]
    pixels = np.stack([_preprocess.fit(im) for im in images])
    # The original is a query and the reference photo: both its local features at once.
    original_query, reference_local = extract_both(original) if job.local else (None, None)
    queries = []
    for kind, im in kinds:
        h, m = perceptual_hash_pair(im)
        local = None
        if job.local:
            local = original_query if im is original else extract_query(im)
        queries.append(QueryImage(kind, h, m, local))
    sources = [im for _, im in kinds] if job.crop else []
    return (index, pixels, queries, reference_local, -1 if phone is None else phone, sources,
            coloured)


def _input(pixels: np.ndarray, preprocess: Preprocess, device: torch.device) -> torch.Tensor:
    x = preprocess.normalise(torch.from_numpy(pixels)).to(device)
    return x.contiguous(memory_format=torch.channels_last)


@torch.inference_mode()
def _maps(forward: BackboneForward, pixels: np.ndarray,
          preprocess: Preprocess) -> tuple[np.ndarray, np.ndarray]:
    """(feature maps, pooled features) of model inputs, in the matcher's number format."""
    maps, pooled = forward.maps(_input(pixels, preprocess, forward.device))
    return maps.cpu().numpy(), pooled.cpu().numpy()


@torch.inference_mode()
def _pooled(forward: BackboneForward, pixels: np.ndarray, preprocess: Preprocess) -> np.ndarray:
    """Pooled features alone (no maps to keep: the crops' pass, the bank, the baseline)."""
    return forward.pooled(_input(pixels, preprocess, forward.device)).cpu().numpy()


def _forward(backbone: torch.nn.Module, device: torch.device, n_images: int) -> BackboneForward:
    """The backbone's inference forward for `n_images` images: compiled where that pays
    (`matcher.compiled`)."""
    backbone = backbone.to(device).eval().to(memory_format=torch.channels_last)
    return BackboneForward(backbone, device, compiled=compile_wanted(n_images))


def query_features(
    images: Sequence[Image.Image],
    backbone: torch.nn.Module,
    preprocess: Preprocess,
    device: torch.device,
    batch_size: int = 64,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pooled features of query photos as the matcher serves them (`matcher.crop`: from the
    object's crop where the photo has one), the whole photos' own from the same first pass,
    and which were cropped: (n x d float32, n x d float32, (n,) bool)."""
    forward = _forward(backbone, device, len(images))
    feats, wholes, crops = [], [], []
    for i in range(0, len(images), batch_size):
        chunk = images[i : i + batch_size]
        maps, pooled = _maps(forward, np.stack([preprocess.fit(im) for im in chunk]), preprocess)
        f, boxes = cropped_features(pooled, maps, [im.size for im in chunk], chunk.__getitem__,
                                    preprocess, lambda px: _pooled(forward, px, preprocess))
        feats.append(f)
        wholes.append(pooled)
        crops.append(np.array([b is not None for b in boxes], bool))
    if not feats:
        empty = np.zeros((0, 1), np.float32)
        return empty, empty, np.zeros(0, bool)
    return np.concatenate(feats), np.concatenate(wholes), np.concatenate(crops)


def render_views(
    photos: Sequence[Photo],
    backbone: torch.nn.Module,
    preprocess: Preprocess,
    *,
    n_views: int,
    query_views: int,
    seed: int,
    device: torch.device,
    local: bool = True,
    crop: bool = True,
    examples: np.ndarray | None = None,
    workers: int = 2,
    batch_size: int = 64,
    progress: Callable[[int], None] | None = None,
) -> ViewSet:
    """Features of every photo's original, `n_views` listing views, and (where `examples`,
    (n,) bool, default all) its re-used copy, hash twin and colour variant; `crop`: the query
    images' served features from their object crops (`matcher.crop`)."""
    global _photos, _preprocess
    n = len(photos)
    examples = np.ones(n, bool) if examples is None else np.asarray(examples, bool)
    if examples.shape != (n,):
        raise ValueError(f"examples: shape {examples.shape}, expected ({n},)")
    per_photo = n_views + 1 + EXAMPLE_IMAGES
    q_views = min(query_views, n_views)
    # Rows of a photo's stack that are query images, in `queries[i]` order; a photo without
    # re-use examples has the first 1 + q_views of them.
    query_rows = [0, *range(1, 1 + q_views), *range(per_photo - EXAMPLE_IMAGES, per_photo)]
    out: np.ndarray | None = None
    queried: np.ndarray | None = None
    cropped = np.zeros((n, len(query_rows)), bool)
    queries: list[list[QueryImage]] = [[] for _ in range(n)]
    reference_local: list[LocalFeatures | None] = [None] * n
    phone = np.full(n, -1, np.int64)
    coloured = np.zeros(n, bool)
    job = _Job(seed, n_views, query_views, int(round(1.5 * preprocess.resolution)), local, crop)
    forward = _forward(backbone, device, backbone_images(n_views, examples))
    pending: list[tuple[int, np.ndarray, list[Image.Image]]] = []

    def flush() -> None:
        nonlocal out, queried
        if not pending:
            return
        maps, feats = _maps(forward, np.concatenate([p for _, p, _ in pending]), preprocess)
        if out is None or queried is None:
            out = np.zeros((n, per_photo, feats.shape[1]), np.float32)
            queried = np.zeros((n, len(query_rows), feats.shape[1]), np.float32)
        starts = np.cumsum([0] + [len(p) for _, p, _ in pending])
        # Each photo's query rows in its stack; it has the first `k` of `queried`'s columns.
        rows, slots = [], []
        for (index, _, _), start in zip(pending, starts[:-1], strict=True):
            k = len(query_rows) if examples[index] else 1 + q_views
            rows += [start + r for r in query_rows[:k]]
            slots.append(k)
        sources = [im for _, _, photo_sources in pending for im in photo_sources]
        if crop:
            served, boxes = cropped_features(
                feats[rows], maps[rows], [im.size for im in sources], sources.__getitem__,
                preprocess, lambda px: _pooled(forward, px, preprocess))
            was_cropped = np.array([b is not None for b in boxes], bool)
        else:
            served, was_cropped = feats[rows], np.zeros(len(rows), bool)
        at = 0
        for (index, _, _), start, stop, k in zip(pending, starts[:-1], starts[1:], slots,
                                                 strict=True):
            stack = feats[start:stop]
            out[index, : 1 + n_views] = stack[: 1 + n_views]
            if examples[index]:
                out[index, -EXAMPLE_IMAGES:] = stack[-EXAMPLE_IMAGES:]
            queried[index, :k] = served[at : at + k]
            cropped[index, :k] = was_cropped[at : at + k]
            at += k
        if progress:
            progress(len(pending))
        pending.clear()

    _photos, _preprocess = photos, preprocess
    threads = torch.get_num_threads()
    if device.type == "cpu" and workers > 1:
        # The workers keep `workers` cores busy; a backbone with more threads than the cores
        # left only contends with them (2 cores, 2 workers: 21.4 -> 23.2 images/s with 1).
        torch.set_num_threads(max(1, min(threads, (os.cpu_count() or 1) - workers)))
    try:
        tasks = [(i, job, bool(examples[i])) for i in range(n)]
        if workers <= 1:
            results = map(_render, tasks)
            pool = None
        else:
            pool = ProcessPoolExecutor(workers, mp_context=pool_context(), initializer=worker_init)
            results = pool.map(_render, tasks, chunksize=1)
        try:
            for index, pixels, photo_queries, ref_local, slot, sources, colour in results:
                queries[index] = photo_queries
                coloured[index] = colour
                reference_local[index] = ref_local
                phone[index] = slot
                pending.append((index, pixels, sources))
                if sum(len(p) for _, p, _ in pending) >= batch_size:
                    flush()
            flush()
        finally:
            if pool is not None:
                pool.shutdown(cancel_futures=True)
    finally:
        _photos, _preprocess = (), None
        torch.set_num_threads(threads)
    if out is None or queried is None:
        out = np.zeros((0, per_photo, 1), np.float32)
        queried = np.zeros((0, len(query_rows), 1), np.float32)
    return ViewSet(
        originals=out[:, 0],
        views=out[:, 1 : 1 + n_views],
        reuse=out[:, -3],
        twin=out[:, -2],
        variant=out[:, -1],
        queries=queries,
        reference_local=reference_local,
        phone=phone,
        queried=queried,
        cropped=cropped,
        examples=examples,
        coloured=coloured,
    )


def pooled_features(
    images: Sequence[Image.Image],
    backbone: torch.nn.Module,
    preprocess: Preprocess,
    device: torch.device,
    batch_size: int = 64,
) -> np.ndarray:
    """Pooled backbone features (n x d) of photos already in memory (e.g. distractors)."""
    forward = _forward(backbone, device, len(images))
    chunks = [
        _pooled(forward, np.stack([preprocess.fit(im) for im in images[i : i + batch_size]]),
                preprocess)
        for i in range(0, len(images), batch_size)
    ]
    return np.concatenate(chunks) if chunks else np.zeros((0, 1), np.float32)
