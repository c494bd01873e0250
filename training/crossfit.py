"""Cross-fitting: every catalogue photo is an out-of-fold query once, and every object is
"not in the catalogue" once, so calibration uses every photo without grading a model on photos
it learned from.

There are K worlds. Each object is assigned to one world in which it is left out entirely (its
photos are then queries of an object the catalogue does not have: open-set negatives), and its
photos are dealt round-robin over the folds (photo fold g: left out of world g, a query there).
In world f the references (and the whitening's training photos) are every photo not left out;
the queries are

* the left-out photos (`studio`) and their first `query_views` synthetic listing views
  (`listing`) and their re-used copy (`reuse`): positives when their object still has a
  reference photo in world f, negatives otherwise (objects with one photo are negatives in
  the world that holds their photo out);
* the listing views and re-used copy of the reference photos of fold f + 2 (`listing` /
  `reuse` of a photo the catalogue has: the "same photo, re-photographed or re-used" case,
  each photo in one world only; the query views are never whitening training data), and
  their hash twins (`twin`: another picture with the same perceptual hash, a negative);
* the colour variants of the left-out photos (`variant`: the photo with its hues turned, an
  object of the same shape in another colour; a negative, never a promise's), where the
  variant differs in colour (`training.views.VARIANT_MIN_GAP`). Left out, the photo's object
  keeps its other photos as references, so the variant meets what a real colour variant
  does: the catalogued object's other views, close in shape, far in colour;
  re-used copies, twins and variants exist for the photos `training.views.reuse_examples`
  picks;
* a share of the distractor photos (ordinary listings), negatives in exactly one world.

`world_evidence` computes every query's candidate objects and evidence rows
(`matcher.evidence`), verifying the best candidates with local features, and its look
(`matcher.scoring.fit_look`: the world's reference photos against its whitening's synthetic
listing views and the distractor bank), so that `training.calibrate` can fit the score and
set thresholds on out-of-fold rows only.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np

from artwatch.demo.catalogue import pool_context
from matcher.evidence import (
    LOCAL_CANDIDATES,
    SEARCH_DEPTH,
    Candidates,
    ReferenceSet,
    as_hash_array,
    backgrounds,
    candidate_evidence,
    local_nominated,
    nearest,
    set_verification,
)
from matcher.scoring import fit_look, photo_looks, verifiable
from matcher.verify import FEATURE_NAMES as VERIFY_FEATURES
from matcher.verify import LocalFeatures, verify
from matcher.vlad import encode_all, fit_codebook
from training.catalogue import Photo
from training.views import REUSE, STUDIO, TWIN, VARIANT, QueryImage, ViewSet
from training.whitening import default_dim, default_shrink, fit_whitening

DISTRACTOR = "distractor"
TEMPERATURE = 0.05  # of the retrieval softmax; the fitted score absorbs its scale


@dataclass(frozen=True)
class WorldPlan:
    """Which photos each world leaves out and which objects it leaves out entirely."""

    k: int
    photo_fold: np.ndarray  # (n_photos,) world in which the photo is a left-out query
    object_world: dict[str, int]  # world in which the object is left out entirely

    def left_out(self, world: int, photos: Sequence[Photo]) -> np.ndarray:
        return np.array(
            [self.photo_fold[i] == world or self.object_world[p.object_id] == world
             for i, p in enumerate(photos)], bool)

    def same_photo_queries(self, world: int) -> np.ndarray:
        """Photos whose synthetic images are same-photo queries in `world` (fold world + 2)."""
        return self.photo_fold == (world + 2) % self.k


def plan_worlds(photos: Sequence[Photo], k: int, seed: int) -> WorldPlan:
    """Seeded assignment; needs k >= 3 (so a same-photo world differs from both left-outs)."""
    if k < 3:
        raise ValueError("cross-fitting needs at least 3 folds")
    rng = random.Random(seed)
    objects = sorted({p.object_id for p in photos})
    rng.shuffle(objects)
    object_world = {o: i % k for i, o in enumerate(objects)}
    fold = np.zeros(len(photos), np.int64)
    by_object: dict[str, list[int]] = {}
    for i, p in enumerate(photos):
        by_object.setdefault(p.object_id, []).append(i)
    for obj, idx in sorted(by_object.items()):
        idx = sorted(idx, key=lambda i: photos[i].key)
        rng.shuffle(idx)
        offset = object_world[obj] + 1  # never pile an object's photos into its own world
        for j, i in enumerate(idx):
            fold[i] = (offset + j) % k
    return WorldPlan(k, fold, object_world)


@dataclass
class QuerySet:
    """Out-of-fold query images of all worlds, flat, with their evidence rows.

    Per query: `world`, `photo` (catalogue photo index, or -1 for a distractor), `kind`,
    `label` (true object index into `objects`, -1 for a distractor), `positive` (its object
    has a reference in that world). `candidates` holds `matcher.evidence.Candidates` rows with
    object indices into `objects`.
    """

    objects: list[str]
    world: np.ndarray
    photo: np.ndarray
    kind: np.ndarray
    label: np.ndarray
    positive: np.ndarray
    candidates: Candidates
    image_key: list[str]  # distinct picture: "<photo>:<kind>:<n>" or "d:<n>"
    ranked: np.ndarray  # (queries x 10) objects by similarity in the learned embedding
    ranked_sim: np.ndarray  # their similarities
    baseline: np.ndarray  # (queries x 10) objects by the pretrained backbone's kNN
    baseline_sim: np.ndarray
    look: np.ndarray | None = None  # (queries,) P(catalogue look), from the world's look model
    local_candidates: int = LOCAL_CANDIDATES  # objects the local first stage nominated a query


@dataclass
class Distractors:
    """Pooled features of ordinary listing photos: a background bank and negative queries."""

    bank: np.ndarray  # (b x d)
    queries: np.ndarray  # (q x d), as the matcher serves them (`training.views.query_features`)
    query_images: list[QueryImage]
    whole: np.ndarray  # (q x d), the queries' whole photos (the pretrained kNN baseline's)


_verify_state: dict[str, object] = {}


def _verify_one(task: tuple[int, int]) -> tuple[int, np.ndarray]:
    """Worker: verification features of query image `q` against reference photo `r`."""
    q, r = task
    query_local: Sequence[LocalFeatures | None] = _verify_state["query"]  # type: ignore[assignment]
    ref_local: Sequence[LocalFeatures | None] = _verify_state["ref"]  # type: ignore[assignment]
    a, b = query_local[q], ref_local[r]
    if a is None or b is None:
        return q, np.zeros(len(VERIFY_FEATURES))
    return q, verify(a, b).features()


def rank_objects(queries: np.ndarray, references: np.ndarray, ref_objects: np.ndarray,
                 k: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """(objects, similarities) of the k most similar objects (best photo each), -1 padded."""
    sims, idx = nearest(queries, references, SEARCH_DEPTH)
    objs = np.full((len(queries), k), -1, np.int64)
    vals = np.full((len(queries), k), -1.0, np.float32)
    for qi in range(len(queries)):
        seen: list[int] = []
        for s, r in zip(sims[qi], idx[qi], strict=True):
            o = int(ref_objects[r])
            if o not in seen:
                vals[qi, len(seen)] = s
                seen.append(o)
                if len(seen) == k:
                    break
        objs[qi, : len(seen)] = seen
    return objs, vals


def _l2(x: np.ndarray) -> np.ndarray:
    return (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def verify_tasks(
    tasks: list[tuple[int, int]],
    query_local: Sequence[LocalFeatures | None],
    ref_local: Sequence[LocalFeatures | None],
    workers: int,
) -> list[np.ndarray]:
    """Verification features for (query index, reference index) pairs, in task order."""
    _verify_state.update(query=query_local, ref=ref_local)
    try:
        if workers <= 1 or len(tasks) < 64:
            return [_verify_one(t)[1] for t in tasks]
        with ProcessPoolExecutor(workers, mp_context=pool_context()) as pool:
            return [f for _, f in pool.map(_verify_one, tasks, chunksize=64)]
    finally:
        _verify_state.clear()


def world_evidence(
    photos: Sequence[Photo],
    views: ViewSet,
    distractors: Distractors,
    plan: WorldPlan,
    *,
    query_views: int,
    shrink: float | None,
    dim_cap: int,
    local: bool,
    vlad_words: int = 0,
    local_candidates: int = LOCAL_CANDIDATES,
    workers: int = 2,
    log: Callable[[str], None] = print,
) -> QuerySet:
    """Evidence rows of every out-of-fold query of every world (see the module docstring).

    `vlad_words` > 0 (with `local`): the local first stage (`matcher.vlad`) with a codebook of
    that many words, fitted per world on its reference photos only, nominating
    `local_candidates` objects per query (as the bundle's matcher will).
    """
    objects = sorted({p.object_id for p in photos})
    obj_index = {o: i for i, o in enumerate(objects)}
    photo_obj = np.array([obj_index[p.object_id] for p in photos], np.int64)
    photo_hash = as_hash_array([p.phash for p in photos])
    n_views = views.views.shape[1]
    train_views = whitening_views(n_views, query_views)
    dq = len(distractors.queries)
    parts: list[dict] = []
    for world in range(plan.k):
        out = plan.left_out(world, photos)
        ref = np.flatnonzero(~out)
        fit_x = [views.originals[ref]] + [views.views[ref, j] for j in train_views]
        fit_g = np.concatenate([photo_obj[ref]] * (1 + len(train_views)))
        n_obj = len(np.unique(photo_obj[ref]))
        fit = fit_whitening(np.concatenate(fit_x), fit_g,
                            dim=default_dim(n_obj, views.originals.shape[1], dim_cap),
                            shrink=default_shrink(n_obj) if shrink is None else shrink)
        bank = fit.apply(distractors.bank)
        refs = ReferenceSet(
            embeddings=fit.apply(views.originals[ref]),
            objects=photo_obj[ref],
            background=backgrounds(fit.apply(views.originals[ref]), bank),
            phash=photo_hash[ref],
        )
        ref_has = set(photo_obj[ref].tolist())
        q_raw, q_whole, q_info = _world_queries(world, photos, views, distractors, plan, out,
                                                query_views, photo_obj, ref_has)
        q_feats = fit.apply(q_raw) if len(q_raw) else np.zeros((0, fit.dim), np.float32)
        marketplace = np.concatenate([fit.apply(views.views[ref, j]) for j in train_views]
                                     + [bank])
        q_look = (photo_looks({"look": fit_look(refs.embeddings, marketplace)}, q_feats)
                  if len(marketplace) else None)
        ranked, ranked_sim = rank_objects(q_feats, refs.embeddings, refs.objects)
        baseline, baseline_sim = rank_objects(_l2(q_whole), _l2(views.originals[ref]),
                                              refs.objects)
        qimages = [info["image"] for info in q_info]
        q_local = None
        if local and vlad_words:  # the local first stage, its codebook from this world's refs
            ref_local = [views.reference_local[i] for i in ref]
            codebook = fit_codebook(ref_local, vlad_words, seed=world)
            refs.local = encode_all(ref_local, codebook)
            q_local = encode_all([im.local for im in qimages], codebook)
        cands = candidate_evidence(
            q_feats, refs,
            as_hash_array([im.phash for im in qimages]),
            as_hash_array([im.phash_mirror for im in qimages]),
            temperature=TEMPERATURE, query_local=q_local, local_candidates=local_candidates,
        )
        if local:  # as the matcher does (`matcher.verify.best_verification`): each row
            # verification tries, the most homography then fundamental inliers count
            tasks, where = [], []
            nominated = local_nominated(cands.objects, cands.features, local_candidates)
            for qi, ci in zip(*np.nonzero(verifiable(cands.objects, cands.features, nominated)),
                              strict=True):
                for row in cands.verification_rows(int(qi), int(ci)):
                    tasks.append((int(qi), int(ref[row])))
                    where.append((int(qi), int(ci)))
            results = verify_tasks(tasks, [im.local for im in qimages],
                                   views.reference_local, workers)
            best: dict[tuple[int, int], np.ndarray] = {}
            for key, values in zip(where, results, strict=True):
                if key not in best or tuple(values[:2]) > tuple(best[key][:2]):
                    best[key] = values
            for (qi, ci), values in best.items():
                set_verification(cands, qi, ci, values)
        positives = sum(1 for i in q_info if i["positive"])
        log(f"world {world + 1}/{plan.k}: {len(ref)} reference photos of {n_obj} objects, "
            f"{len(q_info)} queries ({positives} of catalogued objects), "
            f"{distractors.bank.shape[0]} bank photos, whitening to {fit.dim} dims")
        parts.append({"info": q_info, "cands": cands, "world": world, "ranked": ranked,
                      "ranked_sim": ranked_sim, "baseline": baseline,
                      "baseline_sim": baseline_sim, "look": q_look})
    return _concatenate(objects, parts, dq, local_candidates)


def whitening_views(n_views: int, query_views: int) -> list[int]:
    """Indices of the synthetic views that train a world's whitening: the views after the
    first `query_views`, which are queries. A query view never trains the whitening it is
    scored with; with every view a query, the worlds' whitening sees the originals only."""
    return list(range(query_views, n_views))


def _world_queries(
    world: int,
    photos: Sequence[Photo],
    views: ViewSet,
    distractors: Distractors,
    plan: WorldPlan,
    out: np.ndarray,
    query_views: int,
    photo_obj: np.ndarray,
    ref_has: set[int],
) -> tuple[np.ndarray, list[dict]]:
    """The world's query images (see the module docstring): pooled features as the matcher
    serves them (`ViewSet.queried`: object crops where `matcher.crop` cuts one), the whole
    photos' pooled features (the pretrained kNN baseline's), and what they are."""
    feats: list[np.ndarray] = []
    wholes: list[np.ndarray] = []
    info: list[dict] = []

    def add(feature: np.ndarray, whole: np.ndarray, photo: int, kind: str, image: QueryImage,
            key: str, label: int | None = None) -> None:
        label = (int(photo_obj[photo]) if photo >= 0 else -1) if label is None else label
        feats.append(feature)
        wholes.append(whole)
        info.append({"photo": photo, "kind": kind, "image": image, "key": key, "label": label,
                     "positive": label >= 0 and label in ref_has})

    same = plan.same_photo_queries(world) & ~out
    served = views.queried
    for i in range(len(photos)):
        images = views.queries[i]
        if out[i]:
            add(served[i, 0], views.originals[i], i, STUDIO, images[0], f"{i}:studio")
        if out[i] or same[i]:
            for j in range(query_views):
                add(served[i, 1 + j], views.views[i, j], i, images[1 + j].kind, images[1 + j],
                    f"{i}:listing:{j}")
            if views.has_examples(i):
                add(served[i, -3], views.reuse[i], i, REUSE, images[-3], f"{i}:reuse")
        if out[i] and views.has_variant(i):  # another object of the same shape: no object
            add(served[i, -1], views.variant[i], i, VARIANT, images[-1], f"{i}:variant",
                label=-1)
        if same[i] and views.has_examples(i):  # a different picture with this reference
            # photo's hash: no object
            add(served[i, -2], views.twin[i], i, TWIN, images[-2], f"{i}:twin", label=-1)
    for d in range(world, len(distractors.queries), plan.k):
        add(distractors.queries[d], distractors.whole[d], -1, DISTRACTOR,
            distractors.query_images[d], f"d:{d}")
    empty = np.zeros((0, views.originals.shape[1]), np.float32)
    return ((np.stack(feats) if feats else empty), (np.stack(wholes) if wholes else empty),
            info)


def _concatenate(objects: list[str], parts: list[dict], n_distractors: int,
                 local_candidates: int) -> QuerySet:
    infos = [i for p in parts for i in p["info"]]
    world = np.concatenate([[p["world"]] * len(p["info"]) for p in parts]).astype(np.int64)
    width = max(p["cands"].objects.shape[1] for p in parts)
    cands = Candidates(
        objects=np.concatenate([p["cands"].objects for p in parts]),
        ref_rows=np.concatenate([p["cands"].ref_rows for p in parts]),
        features=np.concatenate([p["cands"].features for p in parts]),
    )
    assert cands.objects.shape[1] == width
    return QuerySet(
        objects=objects,
        world=world,
        photo=np.array([i["photo"] for i in infos], np.int64),
        kind=np.array([i["kind"] for i in infos]),
        label=np.array([i["label"] for i in infos], np.int64),
        positive=np.array([i["positive"] for i in infos], bool),
        candidates=cands,
        image_key=[i["key"] for i in infos],
        ranked=np.concatenate([p["ranked"] for p in parts]),
        ranked_sim=np.concatenate([p["ranked_sim"] for p in parts]),
        baseline=np.concatenate([p["baseline"] for p in parts]),
        baseline_sim=np.concatenate([p["baseline_sim"] for p in parts]),
        look=(None if any(p["look"] is None for p in parts)
              else np.concatenate([p["look"] for p in parts])),
        local_candidates=local_candidates,
    )
