"""Split invariants on a generated catalogue."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest

from artwatch.images.decode import hamming
from training.catalogue import CatalogueError, load_manifest
from training.splits import make_split, near_duplicate_groups


def _by_object(photos):
    out = defaultdict(list)
    for p in photos:
        out[p.object_id].append(p)
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_split_invariants(small_catalogue: Path, seed: int) -> None:
    cat = load_manifest(small_catalogue)
    split = make_split(cat.photos, seed=seed, min_photos=5, holdout_fraction=0.2)
    by_obj = _by_object(cat.photos)
    # objects with fewer than min_photos are left out, with a reason
    for obj, photos in by_obj.items():
        if len(photos) < 5:
            assert obj in split.excluded
            assert all(p.key not in split.assignment for p in photos)
    assert split.holdout_objects and not set(split.holdout_objects) & set(split.objects)
    for obj in split.holdout_objects:
        assert {split.assignment[p.key] for p in by_obj[obj]} == {"holdout"}
    train_objects = {p.object_id for p in cat.photos if split.assignment.get(p.key) == "train"}
    assert not train_objects & set(split.holdout_objects)
    for obj in split.objects:
        names = [split.assignment[p.key] for p in by_obj[obj]]
        assert "train" in names and "test" in names
        if len(names) >= 3:
            assert "val" in names
        # near-duplicate groups never straddle two splits
        for group in near_duplicate_groups(by_obj[obj], split.dup_distance):
            assert len({split.assignment[p.key] for p in group}) == 1
    # the planted near-duplicates were found and kept together
    dup_pairs = 0
    for obj in split.objects:
        photos = by_obj[obj]
        for i, a in enumerate(photos):
            for b in photos[i + 1 :]:
                if hamming(a.phash, b.phash) <= split.dup_distance:
                    dup_pairs += 1
                    assert split.assignment[a.key] == split.assignment[b.key]
    assert dup_pairs >= 1


def test_split_is_seeded_and_saved(small_catalogue: Path, tmp_path: Path) -> None:
    cat = load_manifest(small_catalogue)
    a = make_split(cat.photos, seed=3)
    b = make_split(list(reversed(cat.photos)), seed=3)
    assert a.assignment == b.assignment
    assert make_split(cat.photos, seed=4).assignment != a.assignment
    a.save(tmp_path / "splits.json")
    from training.splits import Split

    assert Split.load(tmp_path / "splits.json") == a


def test_all_duplicates_object_is_excluded(small_catalogue: Path) -> None:
    cat = load_manifest(small_catalogue)
    photos = list(cat.photos)
    first = photos[0]
    clones = [
        type(first)(
            key=f"clone{i}",
            object_id="CLONES",
            collection="x",
            phash=first.phash,
            source="x",
            loader=first.loader,
        )
        for i in range(4)
    ]
    split = make_split(photos + clones, seed=0, holdout_fraction=0.0)
    assert "CLONES" in split.excluded and "near-duplicates" in split.excluded["CLONES"]


def test_bad_manifest_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CatalogueError, match="manifest.csv"):
        load_manifest(tmp_path)
    (tmp_path / "manifest.csv").write_text("object_id,picture\nA,x.jpg\n")
    with pytest.raises(CatalogueError, match="missing column"):
        load_manifest(tmp_path)


def test_broken_and_escaping_photos_are_skipped(small_catalogue: Path, tmp_path: Path) -> None:
    import shutil

    cat_dir = tmp_path / "cat"
    shutil.copytree(small_catalogue, cat_dir)
    (cat_dir / "images" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    with (cat_dir / "manifest.csv").open("a") as handle:
        handle.write("OBJ-900,images/broken.jpg,ceramics,x\n")
        handle.write("OBJ-901,../../etc/passwd,ceramics,x\n")
        handle.write("OBJ-902,images/missing.jpg,ceramics,x\n")
    cat = load_manifest(cat_dir)
    reasons = {s["source"]: s["reason"] for s in cat.skipped}
    assert (
        "not_an_image" in reasons["images/broken.jpg"] or "corrupt" in reasons["images/broken.jpg"]
    )
    assert "outside" in reasons["../../etc/passwd"]
    assert "unreadable" in reasons["images/missing.jpg"]
    assert len(cat.photos) == len(load_manifest(small_catalogue).photos)
