"""The listing-level alert decision with a bundle trained by the default recipe.

Against the real PostgreSQL: the catalogue imported and indexed, listings stored as the
crawler stores them, the matcher's own code deciding. What a reviewer lives with: a re-used
museum photo alerts (cropped, mirrored, re-compressed), other objects on the same plain
backdrop do not, printed photos of coins on a cluttered table are found by their local
features (cached by `artwatch index`), weak photos that agree add up while a repeated photo
does not, false alerts stay within what the bundle promised, the best candidate's collection
chooses its own cell where calibrated, a wrong operating point stops
the worker, and an object catalogued after training is found in new listings and, by
retro-hunt, in old ones."""

from __future__ import annotations

import copy
import csv
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import psycopg
import pytest
import torch
from PIL import Image
from recognition_support import OBJECTS, REPO, SEED, decide, jpeg, listing, matches, view
from safetensors.torch import save_file

from artwatch.catalogue.importer import import_catalogue
from artwatch.demo import distractor_listing_photos, distractor_spec, object_spec
from artwatch.demo.distractors import render_with_mask
from artwatch.demo.marketplace import colour_variant, hash_twin, make_background
from artwatch.images.decode import hamming, perceptual_hash
from matcher.bundle import VLAD_FILE, Bundle, BundleError
from matcher.catalogue_index import CatalogueIndex, local_cache_path
from matcher.indexing import index_catalogue
from matcher.precision import inference_precision
from matcher.retrohunt import run_hunt, start_hunt
from matcher.scoring import (
    LOOKS,
    bucket_of,
    cell_of,
    collection_cell,
    operating_point,
    split_cell,
)
from matcher.verify import colour_gap, colour_signature
from training.calibrate import listings_from_rows, operating_points
from training.report import CALIBRATION_LISTINGS


def test_the_calibration_listings_derive_the_bundles_points_again(deploy_bundle: Path) -> None:
    """report/calibration_listings.csv holds the simulated listings every threshold was set
    on: from it alone `operating_points` gives the bundle's cuts and promises again (an
    auditor's check), and a precision point that the promises cannot certify says so."""
    bundle = Bundle.load(deploy_bundle)
    with (deploy_bundle / "report" / CALIBRATION_LISTINGS).open(newline="") as f:
        rows = list(csv.DictReader(f))
    listings, scores, which = listings_from_rows(rows)
    assert (listings.label < 0).any() and (listings.label >= 0).any()
    assert {r["best"] for r in rows} - {""} <= set(bundle.info["objects"])
    config = bundle.info["train_config"]
    again = operating_points(scores, which, listings, precisions=config["precisions"],
                             budgets=config["budgets"])
    stored = bundle.thresholds["operating_points"]
    assert set(again) == set(stored)
    for name, point in stored.items():
        assert again[name]["buckets"] == pytest.approx(point["buckets"])
        assert {c: p["per_1000"] for c, p in again[name]["promise"].items()} == pytest.approx(
            {c: p["per_1000"] for c, p in point["promise"].items()})
        if point["target"] == "precision":
            expected = point["calibration"]["expected_precision"]
            assert point["reached"] == (expected >= point["value"])


def test_bundle_promises_and_reports_the_baseline(deploy_bundle: Path) -> None:
    bundle = Bundle.load(deploy_bundle)
    assert bundle.info["recipe"] == "deploy" and bundle.bank.shape[1] == bundle.embedding_dim
    # calibrated on features in the format this machine serves (`matcher.precision`)
    assert bundle.info["inference_precision"] == inference_precision(bundle.device)
    for name in ("precision_0.95", "precision_0.99", "alerts_per_1000_5"):
        point = operating_point(bundle.thresholds, name)
        cells = {f"{size}/{look}" for size in ("1", "2", "3-4", "5-8") for look in LOOKS}
        pooled = {key for key in point["buckets"] if split_cell(key)[2] is None}
        assert pooled <= cells and pooled
        # A catalogue of several collections: its collections' cells (where calibration had
        # enough of their negatives), never below the pooled
        own = set(point["buckets"]) - pooled
        assert {split_cell(key)[2] for key in own} <= set(bundle.info["collections"])
        for key in own:
            size, look, _ = split_cell(key)
            assert point["buckets"][key] >= point["buckets"][bucket_of(int(size[0]), look)]
        for promised in point["promise"].values():
            lo, hi = promised["interval"]
            assert lo <= promised["per_1000"] <= hi and promised["negatives"] > 0
    report = (deploy_bundle / "report" / "report.md").read_text()
    assert "pretrained" in report and "promised" in report
    by_kind = bundle.info["metrics"]["by_kind"]
    assert {"learned_top1", "baseline_top1", "first_candidate_top1"} <= set(by_kind["listing"])
    # What each kind of evidence buys, beside the baseline; the served row ("all evidence",
    # or "without colour" where the colour gap did not pay) is the bundle's own out-of-fold
    # score, the same first candidates the retrieval summary counts.
    metrics = json.loads((deploy_bundle / "report" / "metrics.json").read_text())
    ablation = metrics["evidence_ablation"]
    served_row = metrics["colour_gap"]["served"]
    assert served_row == ("all evidence" if metrics["colour_gap"]["used"] else "without colour")
    assert set(ablation) == {"pretrained kNN", "all evidence", "without distractor normalisation",
                             "without photo reuse", "without colour",
                             "without verification"}
    for kind in ("studio", "listing"):
        assert ablation[served_row][kind]["top1"] == pytest.approx(
            metrics["retrieval"][kind]["first_candidate_top1"])
        for row in ablation.values():
            assert 0.0 <= row[kind]["correct_accepted"] <= row[kind]["accepted"] <= 1.0
    assert "without distractor normalisation" in report
    # The colour gap is served exactly when it was the better score out of fold.
    colour = metrics["colour_gap"]
    assert colour["used"] == (colour["correct_accepted_with"] > colour["correct_accepted_without"])
    served = bundle.score["verified"]["features"]
    assert ("colour_gap" in served) == colour["used"]
    assert "log_h_inliers" in served
    assert ("The colour gap is used" in report) == colour["used"]
    assert f'the "{served_row}" row' in report


def test_a_broken_local_stage_codebook_is_a_clear_bundle_error(deploy_bundle: Path,
                                                               tmp_path: Path) -> None:
    broken = tmp_path / "bundle"
    shutil.copytree(deploy_bundle, broken)
    assert Bundle.load(broken).codebook.shape == (64, 128)
    (broken / VLAD_FILE).write_bytes(b"not a safetensors file")
    with pytest.raises(BundleError, match="unreadable local first stage codebook"):
        Bundle.load(broken)
    save_file({"codebook": torch.zeros(64, 5)}, str(broken / VLAD_FILE))
    with pytest.raises(BundleError, match=r"codebook shape \(64, 5\) is not \(k x 128\)"):
        Bundle.load(broken)


def test_reused_museum_photo_alerts_and_other_objects_on_the_backdrop_do_not(
        conn: psycopg.Connection, served) -> None:
    rec = served["recogniser"]()
    row = conn.execute(
        "SELECT o.id, o.accession, i.sha256 FROM objects o JOIN object_images oi "
        "ON oi.object_id = o.id JOIN images i ON i.id = oi.image_id ORDER BY o.accession, i.id "
        "LIMIT 1").fetchone()
    museum = served["store"].open_rgb(row["sha256"].strip())
    w, h = museum.size
    reused = museum.crop((int(0.08 * w), int(0.1 * h), int(0.93 * w), int(0.95 * h)))
    reused = reused.transpose(Image.Transpose.FLIP_LEFT_RIGHT).resize((420, 420))
    lot, ids = listing(conn, served, [jpeg(reused, 60)])
    decision = decide(conn, rec, lot, ids)
    assert decision["alerted"], decision
    found = matches(conn, lot)
    assert found[0]["accession"] == row["accession"] and found[0]["origin"] == "live"
    assert found[0]["evidence"]["alerted"] is True

    # Other objects' photos whose perceptual hash collides with a catalogue photo's (what
    # museum photos on one plain backdrop do; each used to make an urgent alert): the
    # catalogue photo's coarse layout with a distractor object's detail. None alerts.
    photos = conn.execute(
        "SELECT i.sha256, i.phash FROM object_images oi JOIN images i ON i.id = oi.image_id "
        "ORDER BY i.id").fetchall()
    twins = []
    for k, photo in enumerate(photos[:: max(1, len(photos) // 10)][:10]):
        rng = np.random.default_rng([SEED, 31, k])
        detail, _ = render_with_mask(distractor_spec(SEED, 900 + k), rng, size=192)
        twin = hash_twin(served["store"].open_rgb(photo["sha256"].strip()), detail)
        if hamming(perceptual_hash(twin), photo["phash"]) <= 6:  # an old urgent "reuse" hit
            twins.append(twin)
    assert len(twins) >= 4
    for twin in twins:
        lid, lids = listing(conn, served, [jpeg(twin, 92)])
        assert not decide(conn, rec, lid, lids)["alerted"]
        assert matches(conn, lid) == []


def test_the_best_candidates_collection_chooses_the_cell_that_decides(
        conn: psycopg.Connection, served) -> None:
    """Where the operating point has a cell for the best candidate's collection, that cell's
    threshold decides and the decision names it; another collection's cell does not apply.
    (The cells are set here by hand, one above any score, so the test holds whichever
    collections the suite's small catalogue calibrated cells for,
    `training.calibrate.MIN_COLLECTION_OBJECTS`.)"""
    rec = served["recogniser"]()
    row = conn.execute(
        "SELECT o.accession, o.collection, i.sha256 FROM objects o JOIN object_images oi "
        "ON oi.object_id = o.id JOIN images i ON i.id = oi.image_id ORDER BY o.accession, i.id "
        "LIMIT 1").fetchone()
    photo = jpeg(served["store"].open_rgb(row["sha256"].strip()), 70)
    lot, ids = listing(conn, served, [photo])
    first = decide(conn, rec, lot, ids)
    assert first["alerted"], first
    pooled = cell_of(rec.point, 1, split_cell(first["cell"])[1])  # a one-photo listing's
    rec.point = copy.deepcopy(rec.point)
    other = collection_cell(pooled, row["collection"] + "-other")
    rec.point["buckets"][other] = 2.0  # no listing reaches it: it must not apply
    lot, ids = listing(conn, served, [photo])
    assert decide(conn, rec, lot, ids)["alerted"]
    own = collection_cell(pooled, row["collection"])
    rec.point["buckets"][own] = 2.0
    rec.point["promise"][own] = {"per_1000": 10.0, "interval": [1.0, 30.0], "negatives": 99,
                                 "at_or_above": 0}
    lot, ids = listing(conn, served, [photo])
    d = decide(conn, rec, lot, ids)
    assert d["cell"] == own and d["threshold"] == 2.0 and not d["alerted"]
    assert matches(conn, lot) == []


def test_prints_photographed_small_in_clutter_are_found_by_their_local_features(
        conn: psycopg.Connection, served) -> None:
    """A printed museum photo of a coin lying on a cluttered table, photographed with a phone
    (a third of the photo's width, turned, re-compressed): the local first stage (VLAD of the
    photo's RootSIFT) nominates the object and verification confirms it."""
    rec = served["recogniser"]()
    assert rec.bundle.codebook is not None and rec.index.refs.local is not None
    coins = [i for i in range(OBJECTS - 1) if object_spec(SEED, i).family == "coin"]
    assert len(coins) >= 3
    found = 0
    for k, index in enumerate(coins):
        accession = object_spec(SEED, index).object_id
        row = conn.execute(
            "SELECT o.id, i.sha256 FROM objects o JOIN object_images oi ON oi.object_id = o.id "
            "JOIN images i ON i.id = oi.image_id WHERE o.accession = %s ORDER BY i.id LIMIT 1",
            (accession,)).fetchone()
        rng = np.random.default_rng([SEED, 55, k])
        table = make_background("clutter", 800, 600, rng)
        side = int(rng.integers(340, 380))
        print_ = served["store"].open_rgb(row["sha256"].strip()).resize((side, side))
        print_ = print_.convert("RGBA").rotate(float(rng.uniform(-15, 15)), expand=True)
        table.paste(print_, (int(rng.integers(0, 800 - print_.width)),
                             int(rng.integers(0, 600 - print_.height))), print_)
        lot, ids = listing(conn, served, [jpeg(table, 80)])
        decide(conn, rec, lot, ids)
        candidates = conn.execute(
            "SELECT topk FROM predictions WHERE image_id = %s AND bundle_id = %s",
            (ids[0], served["bundle_id"])).fetchone()["topk"]["candidates"]
        nearest_locally = max(candidates, key=lambda c: c["local_similarity"])
        if (candidates[0]["object_id"] == row["id"] and nearest_locally is candidates[0]
                and (candidates[0]["inliers"] or 0) >= 8):
            found += 1
    assert found >= len(coins) - 1, found


def test_photos_that_agree_add_up_and_a_repeated_photo_does_not(
        conn: psycopg.Connection, served) -> None:
    rec = served["recogniser"]()
    target = object_spec(SEED, 2).object_id
    photos = [jpeg(view(2, q)) for q in range(3)]
    singles = []
    for data in photos:
        lid, ids = listing(conn, served, [data])
        d = decide(conn, rec, lid, ids)
        obj = conn.execute("SELECT accession FROM objects WHERE id = %s",
                           (d["object_id"],)).fetchone()
        singles.append(d["score"] if obj and obj["accession"] == target else 0.0)
    together, ids = listing(conn, served, photos)
    d = decide(conn, rec, together, ids)
    assert d["photos"] == 3
    best = conn.execute("SELECT accession FROM objects WHERE id = %s",
                        (d["object_id"],)).fetchone()["accession"]
    assert best == target
    assert d["score"] > max(singles)
    repeated, rids = listing(conn, served, [photos[0], jpeg(Image.open(io.BytesIO(photos[0])),
                                                              80)])
    r = decide(conn, rec, repeated, rids)
    assert r["photos"] == 1  # the same picture (re-saved) counts once
    assert r["score"] == pytest.approx(singles[0] if singles[0] else r["score"], abs=0.02)


def test_distractor_listings_of_1_and_8_photos_keep_the_promise(
        conn: psycopg.Connection, served) -> None:
    rec = served["recogniser"]()
    images = [jpeg(img) for _, img in distractor_listing_photos(48, seed=99)]
    point = rec.point
    outcomes: dict[str, list[bool]] = {}
    decisions = []
    for data in images[:24]:
        lid, ids = listing(conn, served, [data])
        decisions.append(decide(conn, rec, lid, ids))
    for start in range(24, 48, 8):
        lid, ids = listing(conn, served, images[start:start + 8])
        decisions.append(d := decide(conn, rec, lid, ids))
        assert d["photos"] >= 5 and d["cell"].startswith(bucket_of(8))
    for d in decisions:
        # Each decision names the cell whose threshold and promise applied; a collection's own
        # cell lies within a pooled one, whose promise holds over all its listings (a
        # collection's own promise counts its listings of every cell: too few here to judge).
        assert d["cell"] in point["buckets"]
        size, look, _ = split_cell(d["cell"])
        outcomes.setdefault(bucket_of(int(size[0]), look), []).append(d["alerted"])
    # Ordinary listing photos look like marketplace photos (most of them, to a look model
    # fitted on this small catalogue's few views)
    assert sum(len(v) for k, v in outcomes.items() if split_cell(k)[1] == "marketplace") >= 18
    for cell, alerts in outcomes.items():
        promise = point["promise"][cell]
        measured = 1000.0 * sum(alerts) / len(alerts)
        # Few listings: the measured rate may be 0; it must not exceed the promise's interval.
        assert measured <= promise["interval"][1], (cell, measured, promise)


def test_index_caches_local_features_so_a_worker_start_extracts_none(
        conn: psycopg.Connection, served) -> None:
    """`artwatch index` extracts every catalogue photo's local features into the cache (the
    bundle has a local first stage): an index loaded with no image store to extract from
    still has a VLAD for every photo."""
    bundle_row = conn.execute("SELECT path FROM bundles WHERE id = %s",
                              (served["bundle_id"],)).fetchone()
    bundle = Bundle.load(bundle_row["path"])
    assert bundle.codebook is not None
    cache = served["settings"].local_features_dir
    index = CatalogueIndex.load(conn, served["bundle_id"], bundle, cache_dir=cache, store=None)
    assert len(index) > 0
    # Every indexed photo's own cache file (the data directory is the session's: other tests
    # may have cached other photos there, so a count of files would depend on test order).
    shas = [r["sha256"].strip() for r in conn.execute(
        "SELECT i.sha256 FROM embeddings e JOIN images i ON i.id = e.image_id "
        "WHERE e.bundle_id = %s", (served["bundle_id"],)).fetchall()]
    assert len(shas) == len(index)
    assert all(local_cache_path(cache, sha).is_file() for sha in shas)
    assert np.all(np.linalg.norm(index.refs.local, axis=1) > 0.99), "every photo has a VLAD"
    bare = CatalogueIndex.load(conn, served["bundle_id"], bundle, cache_dir=None, store=None)
    assert np.all(np.linalg.norm(bare.refs.local, axis=1) == 0), "without the cache: none"


def test_unknown_operating_point_stops_the_worker(served, db_url: str) -> None:
    env = {**os.environ, "ARTWATCH_MATCH_OPERATING_POINT": "precision_0.42"}
    proc = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "artwatch.queue", "worker", "-Q", "matcher",
         "-I", "matcher.tasks", "--pool", "solo", "--without-heartbeat", "--without-gossip",
         "--without-mingle", "-l", "INFO"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "precision_0.42" in output and "valid:" in output and "precision_0.95" in output


def test_object_added_after_training_is_found_live_and_by_retro_hunt(
        conn: psycopg.Connection, served, catalogue_dirs) -> None:
    """A one-photo object catalogued after training: the retro-hunt re-decides an old listing
    of it against the new catalogue entry, and a dealer's new listing is decided live; both
    name it, and both score above every listing of ordinary objects of the same size that the
    same bundle decides. (Whether they clear the alert threshold is not asserted: this small
    bundle's 3-4-photo threshold is the highest of a few dozen negative listings' scores, and
    it moves with the CPU's arithmetic: 0.41 on one machine, 0.67 on another. The promise is
    the distractor test's above; `benchmarks/recognition.py` measures recall.)"""
    added = object_spec(SEED, 11)  # the object kept out of the training catalogue
    rec = served["recogniser"]()
    # An old listing: the museum's photo of the object re-used (cropped, re-saved) and two
    # new photos of it, crawled before anyone catalogued it.
    museum = Image.open(next((catalogue_dirs["added"] / "images").iterdir())).convert("RGB")
    w, h = museum.size
    reused = jpeg(museum.crop((w // 10, h // 12, w - w // 12, h - h // 10)).resize((300, 300)), 70)
    old, old_ids = listing(conn, served, [reused] + [jpeg(view(11, q, listing=False))
                                                     for q in range(2)])
    decide(conn, rec, old, old_ids)
    assert all(m["accession"] != added.object_id for m in matches(conn, old))

    report = import_catalogue(conn, catalogue_dirs["added"], served["store"], workers=1)
    assert report.photos_added > 0
    bundle = Bundle.load(conn.execute("SELECT path FROM bundles WHERE active").fetchone()["path"])
    done, _ = index_catalogue(conn, bundle, served["bundle_id"], served["store"])
    assert done == report.photos_added
    rec = served["recogniser"]()  # the matcher reloads when the catalogue changed
    ordinary = [jpeg(img) for _, img in distractor_listing_photos(14, seed=123)]
    bar = max(decide(conn, rec, *listing(conn, served, ordinary[i:i + n]))["score"]
              for i, n in ((0, 3), (3, 4), (7, 3), (10, 4)))

    hunt = start_hunt(conn, served["bundle_id"], "index")
    outcome = run_hunt(conn, rec, hunt)
    assert outcome["listings"] >= 1
    assert conn.execute("SELECT status FROM retrohunts WHERE id = %s",
                        (hunt,)).fetchone()["status"] == "finished"
    decision = conn.execute("SELECT d.*, o.accession FROM listing_decisions d LEFT JOIN objects o "
                            "ON o.id = d.object_id WHERE listing_id = %s", (old,)).fetchone()
    assert decision["accession"] == added.object_id and decision["score"] > bar, (decision, bar)
    found = [m for m in matches(conn, old) if m["accession"] == added.object_id]
    assert decision["alerted"] == bool(found)  # an alert is the retro-hunt's match, first
    assert all(m["rank"] == 1 and m["origin"] == "retro-hunt" for m in found)

    # A dealer's new listing of it: four marketplace photos, decided live.
    new, new_ids = listing(conn, served, [jpeg(view(11, q)) for q in range(3, 7)])
    live = decide(conn, rec, new, new_ids)
    named = conn.execute("SELECT accession FROM objects WHERE id = %s",
                         (live["object_id"],)).fetchone()
    assert named and named["accession"] == added.object_id and live["score"] > bar, (live, bar)


def test_the_matcher_embeds_a_query_from_its_object_crop_as_calibration_did(
        conn: psycopg.Connection, served) -> None:
    """A coin small on a plain table and the same coin on a cluttered one (PNGs, so the
    matcher's decode equals a plain fit): the bundle was calibrated on cropped queries, so
    the matcher embeds the first from its object crop, cut from the full photo, to the same
    vector training's views step computes for it. On a cluttered table whether a box is
    clearly smaller than the photo depends on the backbone's number format and the CPU's
    renders of the clutter (float32 on AVX2 crops it, bfloat16 did not): either way the
    matcher decides as training's views step does, and keeps the whole picture's embedding
    exactly for the photos it cropped."""
    from training.views import query_features

    rec = served["recogniser"]()
    assert rec.bundle.crops_queries
    coin = view(next(i for i in range(OBJECTS - 1) if object_spec(SEED, i).family == "coin"),
                5, listing=False).resize((220, 220))
    plain = Image.new("RGB", (900, 700), (200, 200, 200))
    clutter = make_background("clutter", 900, 700, np.random.default_rng([SEED, 91]))
    for table in (plain, clutter):
        table.paste(coin, (560, 90))
    buf = [io.BytesIO(), io.BytesIO()]
    plain.save(buf[0], "PNG")
    clutter.save(buf[1], "PNG")
    lot, ids = listing(conn, served, [b.getvalue() for b in buf])
    decide(conn, rec, lot, ids)
    rows = [conn.execute("SELECT vector, whole FROM embeddings WHERE image_id = %s AND "
                         "bundle_id = %s", (i, served["bundle_id"])).fetchone() for i in ids]
    stored = [np.frombuffer(r["vector"], dtype="<f4") for r in rows]
    bundle = rec.bundle
    feats, _, cropped = query_features([plain, clutter], bundle.model.backbone,
                                    bundle.preprocess, bundle.device)
    assert bool(cropped[0]), "a coin small on a plain table is cropped"
    expected = bundle.forward_pooled(torch.from_numpy(feats))[1].numpy()
    assert np.allclose(stored, expected, atol=1e-5)
    whole = bundle.forward_pixels(torch.from_numpy(bundle.preprocess.fit(plain)[None]))[1]
    assert float(whole.numpy()[0] @ stored[0]) < 0.999  # the crop's vector, not the photo's
    # the whole picture's embedding is kept beside it (same-picture checks), only for crops
    assert np.allclose(np.frombuffer(rows[0]["whole"], dtype="<f4"), whole.numpy()[0],
                       atol=1e-5)
    assert (rows[1]["whole"] is None) == (not bool(cropped[1]))


def test_a_colour_variant_of_a_catalogued_shape_is_not_alerted(
        conn: psycopg.Connection, served) -> None:
    """New studio photos of catalogued coloured objects alert (most of them: the suite's
    bundle is small); the same photos with their hues turned (another object of the same
    shape: a second glaze, another casting) do not. Training shows the photo score such
    variants as negatives (`training.views`); before it did, the score barely weighed the
    colour gap: some of these variants alerted, and on COIL-100 a blue torus alerted on
    its catalogued red twin in all 24 of its listings (docs/recognition.md)."""
    from training.views import VARIANT_MIN_GAP

    rec = served["recogniser"]()
    same, turned = [], []
    for index in range(OBJECTS - 1):
        photo = view(index, 60, listing=False)
        variant = colour_variant(photo, np.random.default_rng([SEED, 41, index]))
        if colour_gap(colour_signature(photo), colour_signature(variant)) < VARIANT_MIN_GAP:
            continue  # a grey object: turning its hue changes nothing
        for photos, out in ((photo, same), (variant, turned)):
            lot, ids = listing(conn, served, [jpeg(photos, 90)])
            decision = decide(conn, rec, lot, ids)
            out.append((index, bool(decision["alerted"]), decision["score"]))
    assert len(same) >= 5
    assert sum(a for _, a, _ in same) >= 3, same
    # None alerted on a CPU with native bfloat16 (stop 36); on an AVX2-only CPU (float32
    # backbone, stop 37) one of six did, at 0.186: at most one, and far fewer than the originals
    assert sum(a for _, a, _ in turned) <= 1, turned
    assert sum(a for _, a, _ in turned) < sum(a for _, a, _ in same) - 1, (same, turned)
