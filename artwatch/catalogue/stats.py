"""Catalogue summary in the shape of the paper's Table 2: photos-per-object and collections."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

BINS = ("<3", "3", "4", "5", "6", "7", "8", "9", "10+")


def bin_for(count: int) -> str:
    """The paper's photos-per-object bin (objects with under 3 photos are counted apart)."""
    if count < 3:
        return "<3"
    return "10+" if count >= 10 else str(count)


@dataclass(frozen=True)
class CatalogueStats:
    objects: int
    photos: int
    per_object: dict[str, int]  # bin -> objects
    collections: dict[str, tuple[int, int]]  # collection -> (objects, photos)


def catalogue_stats(conn: psycopg.Connection) -> CatalogueStats:
    rows = conn.execute(
        """
        SELECT o.collection, o.id, count(oi.id) AS photos
          FROM objects o LEFT JOIN object_images oi ON oi.object_id = o.id
         GROUP BY o.collection, o.id
        """
    ).fetchall()
    per_object = dict.fromkeys(BINS, 0)
    collections: dict[str, tuple[int, int]] = {}
    for row in rows:
        per_object[bin_for(int(row["photos"]))] += 1
        objs, photos = collections.get(row["collection"], (0, 0))
        collections[row["collection"]] = (objs + 1, photos + int(row["photos"]))
    return CatalogueStats(
        objects=len(rows),
        photos=sum(int(r["photos"]) for r in rows),
        per_object=per_object,
        collections=dict(sorted(collections.items())),
    )
