"""Recognition and the alert decision on photos no model saw, beside the zero-training baseline.

Two photo sets, both in one run:

* COIL-100 (`../shared/data/coil100`, 100 real objects x 72 turntable views): 20% of the
  objects are left out of the catalogue (the listings a correct system must not alert on); of
  the others a quarter each get 1, 2, 3 or 4 catalogue photos (views spread around the
  turntable); the remaining views are new photos, each used as it is ("studio") and through
  the marketplace simulator at a random web size ("listing": new background, light, crop,
  watermark, JPEG) and as a phone photo ("phone": the object 12-30% of the height of a
  900-1400-pixel photo of a cluttered table, tilted; `PHONE_IN_CLUTTER`); with
  `--museum-objects N` its catalogue also holds N generated single-photo museum objects (the
  deployment's composition, a few objects with several photos among thousands with one; the
  recognition issue's catalogue had 3,500), set "COIL-100-museum", where COIL-100's
  collections are named "COIL-100 <collection>" as a second museum's would be (the generated
  museum also has ceramics and figurines);
* a generated catalogue (`artwatch demo catalogue`, photos per object as the paper's Table 2)
  with new renders of its objects from unseen viewpoints (studio), as listing photos and as
  phone photos, and generated objects in no catalogue.

The whole product path, in a PostgreSQL database of its own (created on the local server and
dropped at the end): the catalogue is imported (`artwatch catalogue import`), trained on from
the database with `artwatch train`'s default recipe (`training.deploy`), indexed and activated;
every new photo is stored as a listing of one photo and decided by the matcher's own code
(`matcher.recognise.Recogniser`: embedding, catalogue index with its distractor background,
geometric verification, calibrated score, the listing decision at the bundle's thresholds);
then listings of 1-4 listing photos are decided the same way. Figures are read back from the
rows the matcher wrote: `predictions` (the ranking), `listing_decisions` and `matches` (the
first candidate a reviewer sees). The baseline is the pretrained backbone with no training at
all: cosine kNN over the same catalogue photos, its acceptance threshold set on the same
negative photos.

Printed per photo set and kind (studio, listing-style, phone): top-1/5/10, AUROC (catalogued vs
uncatalogued photos by the best score), accepted and correct-and-accepted at 1% false alerts
(threshold at the 99th percentile of the uncatalogued photos' best score), by photos per
object; the first candidate stored in `matches` against the ranking's top-1; then the listing
decision on listings of 1-4 listing photos at the bundle's operating points: promised false
alerts per 1,000 negative listings (and interval) vs measured, precision and recall, per
calibration cell and per collection with cells of its own, and the uncatalogued objects
that alerted with the candidates they alerted as (`alerting_objects`); and, on
the same listings, the rules that decided before the calibrated score (`before_table`: a pHash
within 6 bits or a cosine of 0.92 alerts). A listing shows one object; a measured false-alert
rate comes with a 95% interval from a bootstrap over the uncatalogued objects (`measured_rate`:
one object's listings are not independent draws), and the generated set has many uncatalogued
objects with a few photos each.

    .venv/bin/python benchmarks/recognition.py                  # both sets, ~30-50 min on 2 cores
    .venv/bin/python benchmarks/recognition.py --sets coil --queries 4   # quicker
    .venv/bin/python benchmarks/recognition.py --sets coil --museum-objects 3500  # ~1 h

The database server is ARTWATCH_TEST_ADMIN_URL (default postgresql://postgres@127.0.0.1:5432/
test, as the tests'; `artwatch.db.scratch`); Redis is not needed.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from sklearn.metrics import roc_auc_score

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from artwatch.demo.marketplace import PHONE_IN_CLUTTER, simulate_listing_photo  # noqa: E402
from matcher.bundle import Bundle  # noqa: E402
from matcher.model import build_model  # noqa: E402
from matcher.pooling import CHOICES as POOLINGS  # noqa: E402
from matcher.scoring import (  # noqa: E402
    PHOTO_MODELS,
    cell_of,
    operating_point,
    split_cell,
    threshold_for,
)
from training.ablation import ablation_lines  # noqa: E402
from training.catalogue import Catalogue, Photo, load_manifest  # noqa: E402
from training.deploy import DeployRequest, train_deploy  # noqa: E402

COIL = ROOT.parent / "shared" / "data" / "coil100"
POINTS = ("precision_0.95", "precision_0.99", "alerts_per_1000_5")
KINDS = ("studio", "listing", "phone")


@dataclass
class NewPhoto:
    image: Image.Image
    object_id: str | None  # None: the object is in no catalogue
    kind: str  # studio | listing | phone
    ppo: int  # catalogue photos of its object (0 when uncatalogued)
    shows: str = ""  # the object it shows, catalogued or not (listings show one object)


@dataclass
class PhotoSet:
    name: str
    catalogue_dir: Path  # manifest.csv + photos, as `artwatch catalogue import` reads them
    catalogue: Catalogue
    new: list[NewPhoto]
    notes: dict = field(default_factory=dict)


def _listing(image: Image.Image, seed: int) -> Image.Image:
    return simulate_listing_photo([image], np.random.default_rng([seed, 991])).convert("RGB")


def _phone(image: Image.Image, seed: int, mask: Image.Image | None = None) -> Image.Image:
    return simulate_listing_photo([image], np.random.default_rng([seed, 577]),
                                  masks=[mask] if mask is not None else None,
                                  config=PHONE_IN_CLUTTER).convert("RGB")


def _write_catalogue(out: Path, parts: Sequence[tuple[Sequence[Photo], Path]]) -> None:
    """The chosen photos as a catalogue directory (copies, in a temporary directory); `parts`:
    photos with the catalogue directory their manifest paths are relative to."""
    (out / "images").mkdir(parents=True, exist_ok=True)
    with (out / "manifest.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["object_id", "image", "collection"])
        for part, (photos, root) in enumerate(parts):
            for p in photos:
                name = f"images/{part}-{Path(p.source).name}"
                shutil.copyfile(root / p.source, out / name)
                writer.writerow([p.object_id, name, p.collection])


def museum_photos(count: int, seed: int, workdir: Path) -> tuple[list[Photo], Path]:
    """`count` generated single-photo museum objects (`artwatch.demo`, rendered once into
    `workdir` and kept, as `benchmarks/training_time.py` renders its catalogue) and their
    catalogue directory."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from training_time import catalogue

    directory = catalogue(workdir, 0, count, seed, workers=2)
    return load_manifest(directory).photos, directory


def coil_set(seed: int, queries: int, workdir: Path, negatives: int, museum: int = 0,
             museum_dir: Path | None = None) -> PhotoSet:
    """COIL-100's split (module docstring); `museum` > 0 adds that many generated
    single-photo museum objects to the catalogue (`museum_photos`, cached in `museum_dir`):
    the deployment's catalogue, a few objects with several photos among thousands with one,
    whose photos the new ones are also ranked against."""
    full = load_manifest(COIL)
    rng = np.random.default_rng(seed)
    by_object: dict[str, list[Photo]] = {}
    for p in full.photos:
        by_object.setdefault(p.object_id, []).append(p)
    objects = sorted(by_object)
    rng.shuffle(objects)
    n_out = len(objects) // 5
    catalogue, new = [], []
    for i, obj in enumerate(objects):
        photos = sorted(by_object[obj], key=lambda p: p.source)
        n = 0 if i < n_out else 1 + (i - n_out) % 4
        start = int(rng.integers(0, len(photos)))
        chosen = {(start + j * len(photos) // n) % len(photos) for j in range(n)} if n else set()
        catalogue += [photos[j] for j in sorted(chosen)]
        rest = [j for j in range(len(photos)) if j not in chosen]
        count = queries if n else negatives  # many uncatalogued photos: the 1% point is a tail
        for j in rng.choice(rest, min(count, len(rest)), replace=False):
            img = photos[int(j)].load()
            ident = obj if n else None
            new.append(NewPhoto(img, ident, "studio", n, obj))
            new.append(NewPhoto(_listing(img, seed * 100_003 + int(j) + 7 * i), ident,
                                "listing", n, obj))
            new.append(NewPhoto(_phone(img, seed * 100_003 + int(j) + 7 * i), ident,
                                "phone", n, obj))
    parts = [(catalogue, COIL)]
    if museum:  # two museums' catalogues in one: COIL-100's collections keep their own names
        catalogue = [replace(p, collection=f"COIL-100 {p.collection}") for p in catalogue]
        parts = [(catalogue, COIL)]
        extra, directory = museum_photos(museum, seed, museum_dir or workdir / "museum")
        parts.append((extra, directory))
        catalogue = catalogue + extra
    _write_catalogue(workdir, parts)
    cat = Catalogue(catalogue, {"kind": "coil100-subset", "seed": str(seed)})
    return PhotoSet("COIL-100-museum" if museum else "COIL-100", workdir, cat, new,
                    {"objects": len(objects), "uncatalogued": n_out, "museum_objects": museum})


def generated_set(seed: int, n_objects: int, queries: int, workdir: Path,
                  negatives: int, uncatalogued: int) -> PhotoSet:
    """`uncatalogued` generated objects in no catalogue share the photos of 15 objects with
    `negatives` photos each (at least 2 each): a false-alert rate measured on many objects
    with a few photos is measured on independent listings, not on a few objects' quirks."""
    from artwatch.demo import distractor_spec, generate_catalogue, object_spec
    from artwatch.demo.distractors import render_with_mask
    from artwatch.demo.marketplace import simulate_listing

    generate_catalogue(workdir, n_objects, seed=seed)
    cat = load_manifest(workdir)
    counts: dict[str, int] = {}
    for p in cat.photos:
        counts[p.object_id] = counts.get(p.object_id, 0) + 1
    new = []
    n_out = max(4, uncatalogued)
    per_out = max(2, negatives * 15 // n_out)
    for i in range(n_objects + n_out):
        spec = object_spec(seed, i) if i < n_objects else distractor_spec(seed, 50_000 + i)
        ident = spec.object_id if i < n_objects else None
        for q in range(queries if i < n_objects else per_out):
            rng = np.random.default_rng([seed, 4242, i, q])
            img, mask = render_with_mask(spec, rng, size=256)
            ppo = counts.get(spec.object_id, 0)
            new.append(NewPhoto(img, ident, "studio", ppo, spec.object_id))
            lst = simulate_listing([img], rng, masks=[mask]).image
            new.append(NewPhoto(lst, ident, "listing", ppo, spec.object_id))
            new.append(NewPhoto(_phone(img, seed * 100_003 + 97 * i + q, mask), ident, "phone",
                                ppo, spec.object_id))
    return PhotoSet("generated", workdir, cat, new,
                    {"objects": n_objects, "uncatalogued": n_out})


# --- scoring -----------------------------------------------------------------------------------


@dataclass
class Ranked:
    """Per new photo: ranked object ids (best first) and the best score."""

    ranked: list[list[str]]
    best: np.ndarray
    per_object: np.ndarray | None = None  # (photos, objects) scores, columns as `objects`
    objects: list[str] = field(default_factory=list)


def baseline_ranking(ps: PhotoSet, device: torch.device) -> Ranked:
    """Pretrained backbone, no training: cosine kNN over the catalogue photos."""
    from training.views import pooled_features

    model, _ = build_model("tf_efficientnet_lite0", 0, pretrained="pypi")
    from matcher.model import backbone_config
    from matcher.preprocess import Preprocess

    cfg = backbone_config("tf_efficientnet_lite0")
    pre = Preprocess(cfg.resolution, cfg.mean, cfg.std)

    def l2(x: np.ndarray) -> np.ndarray:
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    refs = l2(pooled_features([p.load() for p in ps.catalogue.photos], model.backbone, pre,
                              device))
    queries = l2(pooled_features([n.image for n in ps.new], model.backbone, pre, device))
    return rank_by_similarity(queries @ refs.T, [p.object_id for p in ps.catalogue.photos])


def rank_by_similarity(sims: np.ndarray, ref_objects: Sequence[str]) -> Ranked:
    """Cosine kNN: (photos x catalogue photos) similarities -> each photo's objects ranked by
    their most similar catalogue photo, and that best similarity (the acceptance score)."""
    objs = np.asarray(ref_objects)
    uniq = sorted(set(objs))
    per_obj = np.stack([sims[:, objs == o].max(1) for o in uniq], 1)
    order = np.argsort(-per_obj, 1)[:, :10]
    return Ranked([[uniq[j] for j in row] for row in order], per_obj.max(1), per_obj, uniq)


@dataclass
class Product:
    """What the product wrote for the new photos (one listing each)."""

    ranked: Ranked
    first_candidate: list[str | None]  # rank-1 match of the photo's listing (None: no alert)
    image_ids: list[int]
    listings: list[int]  # the one-photo listing of each new photo
    conn: object
    recogniser: object
    source: int
    seconds: float


def _jpeg(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.convert("RGB").save(buf, "JPEG", quality=92)
    return buf.getvalue()


def _new_listing(conn, source: int, key: str, image_ids: Sequence[int]) -> int:  # noqa: ANN001
    listing = conn.execute(
        "INSERT INTO listings (source_id, external_id, url) VALUES (%s, %s, %s) RETURNING id",
        (source, key, f"http://127.0.0.1/bench/{key}")).fetchone()["id"]
    for pos, image_id in enumerate(image_ids):
        conn.execute("INSERT INTO listing_images (listing_id, url, position, image_id, status) "
                     "VALUES (%s, %s, %s, %s, 'stored')", (listing, f"u{pos}", pos, image_id))
    return int(listing)


def product_run(ps: PhotoSet, conn, store, bundle_id: int, settings,  # noqa: ANN001
                args: argparse.Namespace) -> Product:
    """Every new photo as a one-photo listing through the matcher's own code."""
    from artwatch.images.records import record_image
    from matcher.recognise import MatchPolicy, Recogniser

    t0 = time.perf_counter()
    rec = Recogniser.load(conn, store, MatchPolicy(top_k=10), device=args.device,
                          cache_dir=settings.local_features_dir)
    source = conn.execute(
        "INSERT INTO sources (name, spider, start_urls) VALUES ('bench', 'html', "
        "ARRAY['http://127.0.0.1/']) RETURNING id").fetchone()["id"]
    image_ids, listings = [], []
    for i, n in enumerate(ps.new):
        image_id = record_image(conn, store.put(_jpeg(n.image)))
        image_ids.append(image_id)
        listings.append(_new_listing(conn, source, f"photo-{i}", [image_id]))
    for start in range(0, len(listings), 64):
        rec.handle(conn, [([image_ids[i]], listings[i], "live")
                          for i in range(start, min(start + 64, len(listings)))])
    accession = {int(r["id"]): r["accession"] for r in conn.execute(
        "SELECT id, accession FROM objects")}
    topk = {int(r["image_id"]): r["topk"] for r in conn.execute(
        "SELECT image_id, topk FROM predictions WHERE bundle_id = %s", (bundle_id,))}
    first = {int(r["listing_id"]): accession[int(r["object_id"])] for r in conn.execute(
        "SELECT listing_id, object_id FROM matches WHERE rank = 1 AND bundle_id = %s",
        (bundle_id,))}
    ranked, best = [], []
    for image_id in image_ids:
        cands = (topk.get(image_id) or {}).get("candidates", [])
        ranked.append([accession[int(c["object_id"])] for c in cands])
        best.append(cands[0]["p"] if cands else 0.0)
    return Product(Ranked(ranked, np.array(best)), [first.get(lid) for lid in listings],
                   image_ids, listings, conn, rec, int(source), time.perf_counter() - t0)


def photo_table(ps: PhotoSet, r: Ranked) -> dict:
    """top-k, AUROC, accepted / correct-and-accepted at 1% false alerts, by kind and ppo."""
    out: dict = {}
    for kind in KINDS:
        idx = [i for i, n in enumerate(ps.new) if n.kind == kind]
        if not idx:  # a set measured on some kinds only (`benchmarks/pooling_tta.py`)
            continue
        pos = [i for i in idx if ps.new[i].object_id is not None]
        neg = [i for i in idx if ps.new[i].object_id is None]
        cut = float(np.quantile(r.best[neg], 0.99)) if neg else np.inf
        row: dict = {"photos": len(pos), "negatives": len(neg)}
        for k in (1, 5, 10):
            row[f"top{k}"] = float(np.mean([ps.new[i].object_id in r.ranked[i][:k] for i in pos]))
        row["auroc"] = float(roc_auc_score([1] * len(pos) + [0] * len(neg),
                                           np.r_[r.best[pos], r.best[neg]]))
        row["accepted@1%"] = float(np.mean([r.best[i] > cut for i in pos]))
        row["correct_accepted@1%"] = float(np.mean(
            [r.best[i] > cut and r.ranked[i][0] == ps.new[i].object_id for i in pos]))
        by = {}
        for b in (1, 2, 3, 4):
            sel = [i for i in pos if min(ps.new[i].ppo, 4) == b]
            if sel:
                by[str(b) if b < 4 else "4+"] = {
                    "photos": len(sel),
                    "top1": float(np.mean([r.ranked[i][0] == ps.new[i].object_id for i in sel])),
                }
        row["by_photos_per_object"] = by
        out[kind] = row
    return out


def first_candidate_table(ps: PhotoSet, product: Product) -> dict:
    """Among alerted one-photo listings: is the first stored match the ranking's top-1, and
    is it right?"""
    out = {}
    cells = {int(r["listing_id"]): r["cell"] for r in product.conn.execute(
        "SELECT listing_id, cell FROM listing_decisions WHERE listing_id = ANY(%s)",
        (product.listings,))}
    for kind in KINDS:
        idx = [i for i, n in enumerate(ps.new) if n.kind == kind]
        alerted = [i for i in idx if product.first_candidate[i] is not None]
        pos = [i for i in alerted if ps.new[i].object_id is not None]
        out[kind] = {
            "alerted": len(alerted),
            "alerted_uncatalogued": sum(ps.new[i].object_id is None for i in alerted),
            "uncatalogued": sum(ps.new[i].object_id is None for i in idx),
            "catalogued": sum(ps.new[i].object_id is not None for i in idx),
            "first_is_ranking_top1": float(np.mean(
                [product.first_candidate[i] == (product.ranked.ranked[i] or [None])[0]
                 for i in alerted])) if alerted else float("nan"),
            "first_right": float(np.mean([product.first_candidate[i] == ps.new[i].object_id
                                          for i in pos])) if pos else float("nan"),
            "ranking_top1_right": float(np.mean(
                [(product.ranked.ranked[i] or [None])[0] == ps.new[i].object_id
                 for i in pos])) if pos else float("nan"),
        }
        neg = [i for i in idx if ps.new[i].object_id is None]
        out[kind]["measured"] = measured_rate([product.first_candidate[i] is not None
                                               for i in neg], [ps.new[i].shows for i in neg])
        promise = product.recogniser.point.get("promise") or {}
        by_cell: dict[str, list[int]] = {}
        for i in neg:
            by_cell.setdefault(str(cells.get(product.listings[i])), []).append(i)
        out[kind]["by_cell"] = {
            c: {"negatives": len(sel), "promised": promise.get(c, {}),
                "measured": measured_rate([product.first_candidate[i] is not None for i in sel],
                                          [ps.new[i].shows for i in sel])}
            for c, sel in sorted(by_cell.items())}
        out[kind]["by_collection"] = by_collection(
            [str(cells.get(product.listings[i])) for i in neg],
            [product.first_candidate[i] is not None for i in neg],
            [ps.new[i].shows for i in neg], promise)
        out[kind]["alerting_objects"] = alerting_objects(
            [product.first_candidate[i] is not None for i in neg], [ps.new[i].shows for i in neg],
            [product.first_candidate[i] for i in neg])
        out[kind]["operating_point"] = product.recogniser.policy.operating_point
    return out


def decision_rows(conn, listings: Sequence[int], truths: Sequence[str | None],  # noqa: ANN001
                  shows: Sequence[str], kinds: Sequence[str]) -> list[dict]:
    """Each listing's decision as the matcher wrote it (`listing_decisions`): its truth, the
    object it shows, its best candidate, score, photos, look and collection; in `--json`, so
    that other cuts can be measured on the same listings."""
    decided = {int(r["listing_id"]): r for r in conn.execute(
        "SELECT d.listing_id, d.score, d.photos, d.cell, o.accession, o.collection "
        "FROM listing_decisions d LEFT JOIN objects o ON o.id = d.object_id "
        "WHERE d.listing_id = ANY(%s)", (list(listings),))}
    rows = []
    for lid, truth, obj, kind in zip(listings, truths, shows, kinds, strict=True):
        d = decided[int(lid)]
        rows.append({"kind": kind, "truth": truth, "shows": obj, "best": d["accession"],
                     "score": float(d["score"]), "photos": int(d["photos"]),
                     "look": split_cell(d["cell"])[1] if d["cell"] else None,
                     "collection": d["collection"]})
    return rows


def alerting_objects(flags: Sequence[bool], shows: Sequence[str],
                     candidates: Sequence[str | None]) -> dict:
    """The uncatalogued objects that alerted, most alerts first: {object: {"alerts",
    "listings", "candidates": {first candidate: alerts}}}. A collection's measured rate is
    often a few objects' (a colour variant of a catalogued shape alerts in most of its
    listings); this says which."""
    out: dict[str, dict] = {}
    for flag, obj, cand in zip(flags, shows, candidates, strict=True):
        row = out.setdefault(obj, {"alerts": 0, "listings": 0, "candidates": {}})
        row["listings"] += 1
        if flag:
            row["alerts"] += 1
            row["candidates"][str(cand)] = row["candidates"].get(str(cand), 0) + 1
    return dict(sorted(((k, v) for k, v in out.items() if v["alerts"]),
                       key=lambda kv: (-kv[1]["alerts"], kv[0])))


def alerting_lines(objects: dict, limit: int = 8) -> list[str]:
    """`alerting_objects` as lines: the `limit` objects with most alerts."""
    lines = [f"{obj}: {v['alerts']} of {v['listings']} listings, as "
             + ", ".join(f"{c} ({n})" for c, n in sorted(v["candidates"].items(),
                                                        key=lambda kv: -kv[1]))
             for obj, v in list(objects.items())[:limit]]
    if len(objects) > limit:
        lines.append(f"... {len(objects) - limit} more objects alerted")
    return lines


def by_collection(cells: Sequence[str], flags: Sequence[bool], shows: Sequence[str],
                  promise: dict) -> dict:
    """Negative listings decided in a collection's own cells, per collection: measured false
    alerts beside the collection's promise, which counts its negatives of every cell
    (`training.calibrate.collection_level`) and is the same in each of its cells."""
    out = {}
    for name in sorted({split_cell(c)[2] for c in cells} - {None}):
        sel = [i for i, c in enumerate(cells) if split_cell(c)[2] == name]
        promised = next((promise[c] for c in (cells[i] for i in sel) if c in promise), {})
        out[name] = {"negatives": len(sel), "promised": promised,
                     "measured": measured_rate([flags[i] for i in sel], [shows[i] for i in sel])}
    return out


def promised_text(promised: dict) -> str:
    """A promise as "rate [low, high]" per 1,000, or "-" where none was calibrated."""
    if promised.get("per_1000") is None:
        return "-"
    lo, hi = promised["interval"]
    return f"{promised['per_1000']:.1f} [{lo:.1f}, {hi:.1f}]"


def listing_groups(ps: PhotoSet, seed: int) -> list[tuple[list[int], str | None]]:
    """The benchmark's listings: 1-4 listing-style photos of one object, catalogued or not, as
    (indices into `ps.new`, catalogued object id or None)."""
    rng = np.random.default_rng(seed)
    by_obj: dict[str, list[int]] = {}
    for i, n in enumerate(ps.new):
        if n.kind == "listing":
            by_obj.setdefault(n.shows, []).append(i)
    groups: list[tuple[list[int], str | None]] = []
    for _, idx in sorted(by_obj.items()):
        idx = [int(v) for v in rng.permutation(idx)]
        while idx:
            n = int(rng.integers(1, 5))
            groups.append((idx[:n], ps.new[idx[0]].object_id))
            idx = idx[n:]
    return groups


def measured_rate(flags: Sequence[bool], objects: Sequence[str], seed: int = 0,
                  rounds: int = 2000) -> dict:
    """False alerts per 1,000 negative listings and its 95% interval by a bootstrap over the
    *objects* the listings show (listings of one object are not independent draws: a
    rate measured on 20 objects' listings is uncertain as 20 draws are, not as 187)."""
    flags_a = np.asarray(flags, np.float64)
    if len(flags_a) == 0:
        return {"per_1000": float("nan"), "interval": [float("nan")] * 2, "objects": 0}
    keys = sorted(set(objects))
    where = {k: i for i, k in enumerate(keys)}
    obj = np.array([where[o] for o in objects])
    hits = np.bincount(obj, flags_a, len(keys))
    count = np.bincount(obj, None, len(keys))
    if hits.sum() == 0:  # no object alerted: a bootstrap would say [0, 0]; bound the share
        # of objects that would (all their listings alerting), Clopper-Pearson 97.5%
        lo, hi = 0.0, 1.0 - 0.025 ** (1.0 / len(keys))
    else:
        draws = np.random.default_rng(seed).integers(0, len(keys), (rounds, len(keys)))
        rates = hits[draws].sum(1) / count[draws].sum(1)
        lo, hi = np.quantile(rates, [0.025, 0.975])
    return {"per_1000": 1000.0 * flags_a.mean(), "interval": [1000.0 * lo, 1000.0 * hi],
            "objects": len(keys)}


def before_table(ps: PhotoSet, base: Ranked, seed: int) -> dict:
    """The alert rules this product had before the calibrated decision, on the same listings.

    Replicated: a listing alerts when any photo's pHash is within 6 bits of a catalogue photo
    (score 1.0, shown first) or any photo's cosine to an object's catalogue photo is at least
    0.92 (the fixed retrieval threshold, here on the pretrained embedding). Not replicated: the
    finetuned classifier's per-photo thresholds (`--recipe paper`), which could only add alerts,
    so the false alerts counted here are a lower bound of the old rules'.
    """
    from artwatch.images.decode import perceptual_hash
    from matcher.evidence import as_hash_array, phash_distance

    cat_objects = [p.object_id for p in ps.catalogue.photos]
    cat_hash = as_hash_array([p.phash for p in ps.catalogue.photos])  # as the import took it
    rows = []
    for members, truth in listing_groups(ps, seed):
        phash_hits, best = [], (0.0, None)
        for i in members:
            h = perceptual_hash(ps.new[i].image)
            near = np.flatnonzero(phash_distance(cat_hash, h, h) <= 6)
            phash_hits += [cat_objects[j] for j in near]
            j = int(np.argmax(base.per_object[i]))
            if base.per_object[i, j] > best[0]:
                best = (float(base.per_object[i, j]), base.objects[j])
        first = phash_hits[0] if phash_hits else best[1]
        alerted = bool(phash_hits) or best[0] >= 0.92
        rows.append((truth, first, alerted, bool(phash_hits)))
    neg = [r for r in rows if r[0] is None]
    pos = [r for r in rows if r[0] is not None]
    alerts = [r for r in rows if r[2]]
    right = sum(1 for t, f, a, _ in pos if a and f == t)
    return {
        "listings": len(rows), "positives": len(pos), "negatives": len(neg),
        "precision": right / len(alerts) if alerts else float("nan"),
        "recall": right / len(pos) if pos else float("nan"),
        "false_alerts_per_1000": 1000.0 * sum(r[2] for r in neg) / max(1, len(neg)),
        "phash_false_alerts_per_1000": 1000.0 * sum(r[3] for r in neg) / max(1, len(neg)),
    }


def listing_table(ps: PhotoSet, product: Product, bundle: Bundle, seed: int
                  ) -> tuple[dict, list[dict]]:
    """Listings of 1-4 listing photos decided by the matcher: the figures at every operating
    point, and the decisions' rows (`decision_rows`)."""
    conn, rec = product.conn, product.recogniser
    groups = listing_groups(ps, seed)
    ids = []
    for k, (members, _) in enumerate(groups):
        ids.append(_new_listing(conn, product.source, f"lot-{k}",
                                [product.image_ids[i] for i in members]))
    for start in range(0, len(ids), 64):
        rec.handle(conn, [([product.image_ids[i] for i in groups[k][0]], ids[k], "live")
                          for k in range(start, min(start + 64, len(ids)))])
    decisions = decision_rows(conn, ids, [truth for _, truth in groups],
                              [ps.new[members[0]].shows for members, _ in groups],
                              [ps.new[members[0]].kind for members, _ in groups])
    rows = [(d["truth"], d["best"], d["score"], d["photos"], d["shows"], d["look"],
             d["collection"]) for d in decisions]
    out = {}
    for name in POINTS:
        point = operating_point(bundle.thresholds, name)
        alerts = [(t, o, p >= threshold_for(point, n, look, coll),
                   cell_of(point, n, look, coll), shows)
                  for t, o, p, n, shows, look, coll in rows]
        negatives = [a for a in alerts if a[0] is None]
        positives = [a for a in alerts if a[0] is not None]
        right = sum(1 for t, o, a, _, _ in positives if a and o == t)
        n_alerts = sum(1 for a in alerts if a[2])
        by_bucket = {}
        for b in sorted({a[3] for a in alerts}, key=str):
            sel = [a for a in negatives if a[3] == b]
            hits = [a for a in positives if a[3] == b]
            promised = point["promise"].get(b, {})
            by_bucket[b] = {"negatives": len(sel),
                            "measured": measured_rate([a[2] for a in sel], [a[4] for a in sel]),
                            "promised_per_1000": promised.get("per_1000"),
                            "interval": promised.get("interval"),
                            "positives": len(hits),
                            "recall": (sum(1 for t, o, a, _, _ in hits if a and o == t)
                                       / len(hits) if hits else float("nan"))}
        total_promise = [point["promise"][b]["per_1000"] * v["negatives"]
                         for b, v in by_bucket.items()
                         if v["negatives"] and (point["promise"].get(b) or {}).get("per_1000")
                         is not None]
        out[name] = {
            "listings": len(alerts), "positives": len(positives), "negatives": len(negatives),
            "precision": right / n_alerts if n_alerts else float("nan"),
            "recall": right / len(positives) if positives else float("nan"),
            "measured": measured_rate([a[2] for a in negatives], [a[4] for a in negatives]),
            "promised_per_1000": sum(total_promise) / max(1, len(negatives)),
            "by_size": by_bucket,
            "by_collection": by_collection([a[3] for a in negatives], [a[2] for a in negatives],
                                           [a[4] for a in negatives], point["promise"]),
            "alerting_objects": alerting_objects([a[2] for a in negatives],
                                                 [a[4] for a in negatives],
                                                 [a[1] for a in negatives]),
            "calibration": point["calibration"],
            "reached": point.get("reached"),
        }
    return out, decisions


def run_set(ps: PhotoSet, args: argparse.Namespace, workdir: Path) -> dict:
    """The product path on one photo set, in a database of its own (dropped afterwards)."""
    from artwatch.catalogue.importer import import_catalogue
    from artwatch.db import connect, migrate
    from artwatch.db.scratch import scratch_database
    from artwatch.images import ImageStore
    from artwatch.settings import load_settings
    from matcher.indexing import index_catalogue
    from training.catalogue import load_database
    from training.registry import activate_bundle, register_bundle

    device = torch.device(args.device)
    print(f"\n=== {ps.name}: {len(ps.catalogue.photos)} catalogue photos, "
          f"{sum(n.object_id is not None for n in ps.new)} new photos of catalogued objects, "
          f"{sum(n.object_id is None for n in ps.new)} of uncatalogued ones ===", flush=True)
    with scratch_database(f"artwatch_bench_{ps.name.lower().replace('-', '')}") as url:
        settings = load_settings(database_url=url, data_dir=workdir / f"data-{ps.name}")
        try:
            migrate(url)
            with connect(url, autocommit=True) as conn:
                store = ImageStore(settings.images_dir, max_bytes=settings.max_image_bytes,
                                   max_pixels=settings.max_image_pixels,
                                   min_side=min(settings.min_image_side, 32))
                report = import_catalogue(conn, ps.catalogue_dir, store)
                print(f"  imported {report.photos_added} catalogue photos", flush=True)
                t0 = time.perf_counter()
                outcome = train_deploy(load_database(conn, store), DeployRequest(
                    out=workdir / f"bundle-{ps.name}", name=f"bench-{ps.name}", device=args.device,
                    seed=args.seed, progress=False, local_features=not args.no_local,
                    pooling=args.pooling, architecture=args.arch,
                    verified_model=args.verified_model, local_candidates=args.local_candidates,
                ), log=lambda m: print("  " + m, flush=True))
                train_s = time.perf_counter() - t0
                bundle_id = register_bundle(conn, outcome.path)
                bundle = Bundle.load(outcome.path, device=device)
                index_catalogue(conn, bundle, bundle_id, store,
                                local_cache=settings.local_features_dir)
                activate_bundle(conn, bundle.name)
                base = baseline_ranking(ps, device)
                product = product_run(ps, conn, store, bundle_id, settings, args)
                listings, listing_rows = listing_table(ps, product, bundle, args.seed)
                result = {
                    "training_seconds": train_s,
                    "matching_seconds": product.seconds,
                    "baseline": photo_table(ps, base),
                    "artwatch": photo_table(ps, product.ranked),
                    "first_candidate": first_candidate_table(ps, product),
                    "one_photo_rows": decision_rows(
                        conn, product.listings, [n.object_id for n in ps.new],
                        [n.shows for n in ps.new], [n.kind for n in ps.new]),
                    "listings": listings,
                    "listing_rows": listing_rows,
                    "before": before_table(ps, base, args.seed),
                    "bundle_report": outcome.metrics["retrieval"],
                    "evidence_ablation": outcome.metrics.get("evidence_ablation", {}),
                    "notes": ps.notes,
                }
        finally:
            from artwatch.db.connection import close_pools

            close_pools()
    print_set(ps.name, result)
    return result


def print_set(name: str, r: dict) -> None:
    """The set's tables, baseline beside artwatch."""
    print(f"\n{name}: training {r['training_seconds']:.0f}s, matching "
          f"{r['matching_seconds']:.0f}s")
    cols = ("top1", "top5", "top10", "auroc", "accepted@1%", "correct_accepted@1%")
    print(f"{'photos':9s} {'scorer':22s} " + " ".join(f"{c:>19s}" for c in cols))
    for kind in KINDS:
        for scorer in ("baseline", "artwatch"):
            row = r[scorer][kind]
            label = "pretrained kNN" if scorer == "baseline" else "artwatch"
            print(f"{kind:9s} {label:22s} " + " ".join(f"{row[c]:19.3f}" for c in cols))
        deltas = {c: r["artwatch"][kind][c] - r["baseline"][kind][c] for c in cols}
        print(f"{kind:9s} {'difference (points)':22s} "
              + " ".join(f"{100 * deltas[c]:+19.1f}" for c in cols))
    print("\ntop-1 by catalogue photos per object (baseline -> artwatch):")
    for kind in KINDS:
        b = r["baseline"][kind]["by_photos_per_object"]
        a = r["artwatch"][kind]["by_photos_per_object"]
        print(f"  {kind:8s} " + "  ".join(
            f"{k}: {b[k]['top1']:.3f} -> {a[k]['top1']:.3f} (n={a[k]['photos']})" for k in a))
    print("\nfirst candidate stored in `matches` (one-photo listings that alerted):")
    for kind, row in r["first_candidate"].items():
        print(f"  {kind:8s} alerted {row['alerted']} ({row['alerted_uncatalogued']} of "
              f"{row['uncatalogued']} uncatalogued); first candidate = ranking top-1 in "
              f"{row['first_is_ranking_top1']:.3f}; right {row['first_right']:.3f} "
              f"(ranking top-1 right {row['ranking_top1_right']:.3f})")
        for what, groups in (("cell", row["by_cell"]), ("collection", row["by_collection"])):
            for name, c in groups.items():
                m = c["measured"]
                print(f"  {'':8s} {what} {name}: false alerts {m['per_1000']:.1f}/1000 "
                      f"[{m['interval'][0]:.1f}, {m['interval'][1]:.1f}] of {c['negatives']} "
                      f"({m['objects']} objects), promised at {row['operating_point']} "
                      f"{promised_text(c['promised'])}")
        for line in alerting_lines(row["alerting_objects"]):
            print(f"  {'':8s} uncatalogued {line}")
    if r.get("evidence_ablation"):
        print("\nwhat each kind of evidence buys (training's out-of-fold queries, the photo "
              "score cross-fitted again without it; c&a: correct and accepted at 1% FA):")
        for line in ablation_lines(r["evidence_ablation"]):
            print("  " + line)
    print("\nlisting decision (listings of 1-4 listing photos):")
    b = r["before"]
    print(f"  before (pHash within 6 bits or cosine >= 0.92, no promise): precision "
          f"{b['precision']:.3f} recall {b['recall']:.3f} false alerts "
          f"{b['false_alerts_per_1000']:.1f}/1000 (pHash alone "
          f"{b['phash_false_alerts_per_1000']:.1f}) ({b['positives']} positive, "
          f"{b['negatives']} negative listings)")
    for point, row in r["listings"].items():
        m = row["measured"]
        print(f"  {point}: precision {row['precision']:.3f} recall {row['recall']:.3f} "
              f"false alerts {m['per_1000']:.1f}/1000 [{m['interval'][0]:.1f}, "
              f"{m['interval'][1]:.1f}] ({m['objects']} objects), promised "
              f"{row['promised_per_1000']:.1f} "
              f"({row['positives']} positive, {row['negatives']} negative listings)"
              + ("; target not reached in calibration: the strictest cuts"
                 if row.get("reached") is False else ""))
        for b, v in row["by_size"].items():
            m = v["measured"]
            promised = {"per_1000": v["promised_per_1000"], "interval": v["interval"]}
            print(f"      {b} photo(s): measured {m['per_1000']:.1f}/1000 "
                  f"[{m['interval'][0]:.1f}, {m['interval'][1]:.1f}] of "
                  f"{v['negatives']}; promised {promised_text(promised)}"
                  f"; recall {v['recall']:.3f} of {v['positives']}")
        for name, c in row["by_collection"].items():
            m = c["measured"]
            print(f"      collection {name}: measured {m['per_1000']:.1f}/1000 "
                  f"[{m['interval'][0]:.1f}, {m['interval'][1]:.1f}] of {c['negatives']}; "
                  f"promised {promised_text(c['promised'])}")
        for line in alerting_lines(row["alerting_objects"]):
            print(f"      uncatalogued {line}")


def add_set_arguments(parser: argparse.ArgumentParser) -> None:
    """The photo sets' options, with this benchmark's defaults: `benchmarks/object_crop.py` and
    `benchmarks/pooling_tta.py` measure on the same split and the same new photos."""
    parser.add_argument("--sets", default="coil,generated")
    parser.add_argument("--queries", type=int, default=6,
                        help="new photos per catalogued object and kind")
    parser.add_argument("--negatives", type=int, default=24,
                        help="new photos per uncatalogued object and kind")
    parser.add_argument("--generated-objects", type=int, default=60)
    parser.add_argument("--generated-uncatalogued", type=int, default=60,
                        help="generated objects in no catalogue (sharing 15 x --negatives photos)")
    parser.add_argument("--museum-objects", type=int, default=0,
                        help="generated single-photo museum objects added to the COIL-100 "
                        "catalogue (the deployment's size: 3500)")
    parser.add_argument("--museum-dir", type=Path,
                        default=Path("/tmp/artwatch-recognition-museum"),
                        help="where they are rendered once and kept")
    parser.add_argument("--seed", type=int, default=0)


def photo_sets(args: argparse.Namespace, work: Path) -> Iterator[PhotoSet]:
    """The sets `--sets` names, built under `work` (COIL-100 skipped, with a line, where
    `../shared/data/coil100` is absent). Raises SystemExit for an unknown set."""
    for name in args.sets.split(","):
        if name == "coil":
            if not COIL.is_dir():
                print(f"skipping COIL-100: {COIL} not found")
                continue
            yield coil_set(args.seed, args.queries, work / "coil", args.negatives,
                           args.museum_objects, args.museum_dir)
        elif name == "generated":
            yield generated_set(args.seed, args.generated_objects, args.queries,
                                work / "generated", args.negatives, args.generated_uncatalogued)
        else:
            raise SystemExit(f"unknown set {name!r} (coil, generated)")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_set_arguments(parser)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-local", action="store_true", help="skip local features")
    parser.add_argument("--pooling", default="gem", choices=POOLINGS,
                        help="the recipe's pooling (matcher.pooling; the baseline pools by "
                        "average whatever this says)")
    parser.add_argument("--arch", default=DeployRequest.architecture,
                        help="the recipe's backbone (a timm name; the baseline is Lite0's "
                        "average-pooled kNN whatever this says)")
    parser.add_argument("--local-candidates", type=int, default=DeployRequest.local_candidates,
                        help="objects the local first stage nominates per photo")
    parser.add_argument("--verified-model", default=DeployRequest.verified_model,
                        choices=("auto", *PHOTO_MODELS),
                        help="the recipe's verified photo score (auto: chosen out of fold)")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--keep", type=Path, help="keep bundles and photos here (analysis)")
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    results = {}
    with tempfile.TemporaryDirectory(prefix="artwatch-recognition-") as tmp:
        work = args.keep or Path(tmp)
        for ps in photo_sets(args, work):
            results[ps.name] = run_set(ps, args, work)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=float), encoding="utf-8")


if __name__ == "__main__":
    main()
