"""Per-object, seeded train / validation / test splits plus held-out objects.

The paper's reference code split by photo, so some test objects had no training photo. Here
every kept object gets at least one training and one test photo (and a validation photo when it
has three or more), the rest about 80/10/10. Near-duplicate photos (perceptual hashes within
`dup_distance` bits) form one group that is never split, so a test photo is never a re-save of a
training photo. A fraction of objects is held out of training entirely: their photos are the
"not in the catalogue" negatives that open-set thresholds are calibrated on.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from artwatch.images.decode import hamming
from training.catalogue import Photo

SPLITS = ("train", "val", "test", "holdout")


@dataclass
class Split:
    """Photo keys per split, the class order, and why objects were left out."""

    seed: int
    min_photos: int
    dup_distance: int
    holdout_fraction: float
    assignment: dict[str, str]  # photo key -> train / val / test / holdout
    objects: list[str]  # classes (kept, not held out), sorted
    holdout_objects: list[str]
    excluded: dict[str, str] = field(default_factory=dict)  # object -> reason

    def keys(self, name: str) -> list[str]:
        return sorted(k for k, s in self.assignment.items() if s == name)

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(SPLITS, 0)
        for name in self.assignment.values():
            out[name] += 1
        return out

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=1, sort_keys=True), encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> Split:
        return cls(**json.loads(path.read_text(encoding="utf-8")))


def near_duplicate_groups(photos: Sequence[Photo], max_distance: int) -> list[list[Photo]]:
    """Connected components of photos whose perceptual hashes differ by <= max_distance bits."""
    parent = list(range(len(photos)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(len(photos)):
        for j in range(i + 1, len(photos)):
            if hamming(photos[i].phash, photos[j].phash) <= max_distance:
                parent[find(i)] = find(j)
    groups: dict[int, list[Photo]] = defaultdict(list)
    for i, photo in enumerate(photos):
        groups[find(i)].append(photo)
    return [sorted(g, key=lambda p: p.key) for g in groups.values()]


def _split_object(groups: list[list[Photo]], rng: random.Random) -> dict[str, str] | str:
    """Assign one object's groups; a string return is the reason it cannot be split."""
    if len(groups) < 2:
        return "all photos are near-duplicates of one another (no independent test photo)"
    rng.shuffle(groups)
    n = sum(len(g) for g in groups)
    want_test = max(1, round(0.1 * n))
    want_val = max(1, round(0.1 * n)) if n >= 3 and len(groups) >= 3 else 0
    out: dict[str, str] = {}
    remaining = list(groups)
    for name, want in (("test", want_test), ("val", want_val)):
        got = 0
        while got < want and len(remaining) > 1:
            group = remaining.pop()
            out.update({p.key: name for p in group})
            got += len(group)
    for group in remaining:  # at least one group is always left for training
        out.update({p.key: "train" for p in group})
    return out


def make_split(
    photos: Sequence[Photo],
    *,
    seed: int = 0,
    min_photos: int = 3,
    dup_distance: int = 4,
    holdout_fraction: float = 0.1,
) -> Split:
    """Split `photos` per object (deterministic for a seed and a set of photos)."""
    if not 0.0 <= holdout_fraction < 1.0:
        raise ValueError("holdout fraction must be in [0, 1)")
    by_object: dict[str, list[Photo]] = defaultdict(list)
    for photo in photos:
        by_object[photo.object_id].append(photo)
    excluded: dict[str, str] = {}
    kept = []
    for obj in sorted(by_object):
        if len(by_object[obj]) < min_photos:
            excluded[obj] = f"{len(by_object[obj])} photo(s) < min_photos={min_photos}"
        else:
            kept.append(obj)
    rng = random.Random(seed)
    n_holdout = round(holdout_fraction * len(kept))
    if holdout_fraction > 0 and n_holdout == 0 and len(kept) >= 3:
        n_holdout = 1
    holdout = sorted(rng.sample(kept, n_holdout)) if n_holdout else []
    assignment: dict[str, str] = {}
    classes: list[str] = []
    for obj in kept:
        if obj in holdout:
            assignment.update({p.key: "holdout" for p in by_object[obj]})
            continue
        groups = near_duplicate_groups(sorted(by_object[obj], key=lambda p: p.key), dup_distance)
        result = _split_object(groups, random.Random(f"{seed}:{obj}"))
        if isinstance(result, str):
            excluded[obj] = result
            continue
        assignment.update(result)
        classes.append(obj)
    if len(classes) < 2:
        raise ValueError(f"only {len(classes)} object(s) can be trained on; need at least 2")
    return Split(
        seed=seed,
        min_photos=min_photos,
        dup_distance=dup_distance,
        holdout_fraction=holdout_fraction,
        assignment=assignment,
        objects=classes,
        holdout_objects=holdout,
        excluded=excluded,
    )
