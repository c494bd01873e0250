"""`artwatch index`: embed every catalogue photo under a bundle and store the vectors.

Embeddings are rows keyed by (bundle, image), written with an upsert, so indexing resumes
where it stopped and a re-run only embeds photos added since. A catalogue photo's row also
carries its distractor background under the bundle (`matcher.evidence.backgrounds`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import psycopg

from artwatch.images import ImageStore
from matcher.bundle import Bundle
from matcher.evidence import backgrounds

UPSERT_EMBEDDINGS = """
INSERT INTO embeddings (bundle_id, image_id, vector, background)
SELECT %s, u.image_id, u.vector, u.background
  FROM unnest(%s::bigint[], %s::bytea[], %s::real[]) AS u(image_id, vector, background)
ON CONFLICT (bundle_id, image_id) DO UPDATE
   SET vector = EXCLUDED.vector, background = EXCLUDED.background
"""


def store_embeddings(conn: psycopg.Connection, bundle_id: int, image_ids: Sequence[int],
                     vectors: np.ndarray, background: Sequence[float] | None = None) -> None:
    """Upsert float32 little-endian vectors (and catalogue backgrounds) under `bundle_id`."""
    blobs = [np.asarray(v, dtype="<f4").tobytes() for v in vectors]
    bg = [None] * len(blobs) if background is None else [float(b) for b in background]
    conn.execute(UPSERT_EMBEDDINGS, (bundle_id, list(image_ids), blobs, bg))


def unindexed_catalogue_photos(conn: psycopg.Connection, bundle_id: int) -> list[dict]:
    return conn.execute(
        """
        SELECT i.id, i.sha256 FROM object_images oi JOIN images i ON i.id = oi.image_id
         WHERE NOT EXISTS (SELECT 1 FROM embeddings e
                            WHERE e.bundle_id = %s AND e.image_id = i.id)
         ORDER BY i.id
        """,
        (bundle_id,),
    ).fetchall()


def index_catalogue(conn: psycopg.Connection, bundle: Bundle, bundle_id: int,
                    store: ImageStore, *, batch_size: int = 64,
                    progress: Callable[[int], None] | None = None) -> tuple[int, list[str]]:
    """Embed catalogue photos that have no vector under this bundle yet.

    Returns (photos indexed, problems); a photo whose file is missing is reported, not fatal.
    """
    todo = unindexed_catalogue_photos(conn, bundle_id)
    done, problems = 0, []
    for start in range(0, len(todo), batch_size):
        chunk = todo[start : start + batch_size]
        ids, images = [], []
        for row in chunk:
            try:
                images.append(store.open_rgb(row["sha256"]))
                ids.append(int(row["id"]))
            except (OSError, ValueError) as exc:
                problems.append(f"image {row['id']} ({row['sha256'][:12]}): {exc}")
        if images:
            vectors = bundle.embed(images)
            store_embeddings(conn, bundle_id, ids, vectors, backgrounds(vectors, bundle.bank))
            done += len(ids)
        if progress:
            progress(len(chunk))
    return done, problems
