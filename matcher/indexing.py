"""`artwatch index`: embed every catalogue photo under a bundle and store the vectors.

Embeddings are rows keyed by (bundle, image), written with an upsert, so indexing resumes
where it stopped and a re-run only embeds photos added since. A catalogue photo's row also
carries its distractor background under the bundle (`matcher.evidence.backgrounds`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np
import psycopg
from PIL import Image

from artwatch.images import ImageStore
from matcher.bundle import Bundle
from matcher.catalogue_index import cached_local_features
from matcher.evidence import backgrounds

UPSERT_EMBEDDINGS = """
INSERT INTO embeddings (bundle_id, image_id, vector, background, whole)
SELECT %s, u.image_id, u.vector, u.background, u.whole
  FROM unnest(%s::bigint[], %s::bytea[], %s::real[], %s::bytea[])
       AS u(image_id, vector, background, whole)
ON CONFLICT (bundle_id, image_id) DO UPDATE
   SET vector = EXCLUDED.vector, background = EXCLUDED.background, whole = EXCLUDED.whole
"""


def store_embeddings(conn: psycopg.Connection, bundle_id: int, image_ids: Sequence[int],
                     vectors: np.ndarray, background: Sequence[float] | None = None,
                     wholes: Sequence[np.ndarray | None] | None = None) -> None:
    """Upsert float32 little-endian vectors (and catalogue backgrounds) under `bundle_id`;
    `wholes[i]`: the whole picture's embedding of a photo whose vector is its object crop's
    (None where the vector is the whole picture's)."""
    blobs = [np.asarray(v, dtype="<f4").tobytes() for v in vectors]
    bg = [None] * len(blobs) if background is None else [float(b) for b in background]
    whole = [None if w is None else np.asarray(w, dtype="<f4").tobytes()
             for w in (wholes if wholes is not None else [None] * len(blobs))]
    conn.execute(UPSERT_EMBEDDINGS, (bundle_id, list(image_ids), blobs, bg, whole))


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


def _cache_local(cache: Path, sha: str, image: Image.Image) -> None:
    cached_local_features(cache, sha, lambda: image)


def index_catalogue(conn: psycopg.Connection, bundle: Bundle, bundle_id: int,
                    store: ImageStore, *, batch_size: int = 64,
                    local_cache: Path | None = None,
                    progress: Callable[[int], None] | None = None) -> tuple[int, list[str]]:
    """Embed catalogue photos that have no vector under this bundle yet.

    With `local_cache` and a bundle with a local first stage (`Bundle.codebook`), each photo's
    local features are extracted into that cache too (`catalogue_index.cached_local_features`,
    ~40 ms a photo), while the photo is open: a matcher worker loading the index needs every
    photo's, and would otherwise extract them all at its first start.

    Returns (photos indexed, problems); a photo whose file is missing is reported, not fatal.
    """
    warm = local_cache is not None and bundle.codebook is not None
    todo = unindexed_catalogue_photos(conn, bundle_id)
    done, problems = 0, []
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        for start in range(0, len(todo), batch_size):
            chunk = todo[start : start + batch_size]
            ids, images, shas = [], [], []
            for row in chunk:
                try:
                    images.append(store.open_rgb(row["sha256"]))
                except (OSError, ValueError) as exc:
                    problems.append(f"image {row['id']} ({row['sha256'][:12]}): {exc}")
                    continue
                ids.append(int(row["id"]))
                shas.append(row["sha256"].strip())
            if warm:  # OpenCV releases the GIL: threads extract in parallel
                list(pool.map(partial(_cache_local, local_cache), shas, images))
            if images:
                vectors = bundle.embed(images)
                store_embeddings(conn, bundle_id, ids, vectors,
                                 backgrounds(vectors, bundle.bank))
                done += len(ids)
            if progress:
                progress(len(chunk))
    return done, problems
