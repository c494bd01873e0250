"""The catalogue as the matcher searches it: every indexed photo's embedding, in memory.

PostgreSQL stores every catalogue photo's embedding and distractor background under a bundle
(the source of truth, written by `artwatch index`); the matcher loads them as one
L2-normalised matrix (`matcher.evidence.ReferenceSet`) on the model's device, so a batch of
listing photos is one chunked matrix product against the whole catalogue (a million photos is
still one pass; `ARTWATCH_MATCHER_RETRIEVAL_CHUNK` rows at a time bound the memory). The matrix
may be held in bfloat16 or float16 (`ARTWATCH_MATCHER_CATALOGUE_DTYPE`): half the memory, and
on a GPU or a CPU with bf16 instructions faster, at ~1e-3 error in a cosine. Objects added
after training are covered as soon as their photos are indexed.

Local features of catalogue photos (for geometric verification, and aggregated as VLADs for
the local first stage when the bundle has one, `matcher.vlad`) are cached as files beside the
image store (`<data dir>/local-features/<sha256>-...npz`): extracted by `artwatch index` when
the bundle has a local first stage (a worker loading the index then needs all of them), else
on first use.
"""

from __future__ import annotations

import io
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import psycopg
import torch
from PIL import Image

from artwatch.files import write_atomic
from artwatch.images import ImageStore
from matcher.bundle import Bundle
from matcher.evidence import CHUNK, ReferenceSet, as_hash_array, backgrounds
from matcher.verify import MAX_KEYPOINTS, MAX_SIDE, LocalFeatures, extract
from matcher.vlad import encode_all

log = logging.getLogger(__name__)
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
# np.load parses each array's header with ast.literal_eval, which is not thread-safe on CPython
# 3.11 (gh-106905: a spurious "SystemError: AST constructor recursion depth mismatch"), and
# `artwatch index` reads the cache from a thread pool. Reading is quick; extracting, the slow
# part, stays parallel.
_CACHE_READ = threading.Lock()


def local_cache_path(cache_dir: Path, sha: str) -> Path:
    """Where a catalogue photo's local features are cached (keyed by the extractor's limits,
    so a changed MAX_SIDE or MAX_KEYPOINTS never reads stale features)."""
    return cache_dir / f"{sha}-{MAX_SIDE}-{MAX_KEYPOINTS}.npz"


def cached_local_features(cache_dir: Path | None, sha: str,
                          open_image: Callable[[], Image.Image] | None) -> LocalFeatures | None:
    """A catalogue photo's local features: read from the cache, else extracted from
    `open_image()` and written to it. None when neither works (no cache and no image, or an
    unreadable photo: logged; the photo is still found by its embedding)."""
    path = local_cache_path(cache_dir, sha) if cache_dir else None
    if path is not None and path.is_file():
        try:
            with _CACHE_READ, np.load(path) as data:
                arrays = dict(data)
            return LocalFeatures.from_arrays(arrays)
        except (OSError, ValueError, KeyError):
            pass  # damaged, or written before colour signatures: extract again
    if open_image is None:
        return None
    try:
        features = extract(open_image())
    except (OSError, ValueError) as exc:
        log.warning("catalogue photo %s unreadable for verification: %s", sha, exc)
        return None
    if path is not None:
        buffer = io.BytesIO()
        np.savez(buffer, **features.to_arrays())
        write_atomic(path, buffer.getvalue(), durable=False)
    return features


class NotIndexed(RuntimeError):
    """The active bundle has no indexed catalogue photo: nothing could ever be recognised."""


class CatalogueIndex:
    """Catalogue embeddings of one bundle: rows are photos, each belonging to an object."""

    def __init__(self, refs: ReferenceSet, image_ids: np.ndarray, shas: list[str],
                 cache_dir: Path | None = None, store: ImageStore | None = None) -> None:
        self.refs = refs
        self.image_ids = image_ids  # (N,) images.id per row
        self.shas = shas
        self.cache_dir = cache_dir
        self.store = store
        self._local: dict[int, LocalFeatures | None] = {}

    def __len__(self) -> int:
        return len(self.refs)

    @property
    def object_ids(self) -> np.ndarray:
        return self.refs.objects

    @classmethod
    def load(cls, conn: psycopg.Connection, bundle_id: int, bundle: Bundle,
             device: str | torch.device = "cpu", *, store: ImageStore | None = None,
             cache_dir: Path | None = None, dtype: str = "float32",
             chunk: int = CHUNK) -> CatalogueIndex:
        """Every indexed catalogue photo of `bundle_id` (background computed if missing)."""
        rows = conn.execute(
            """
            SELECT oi.object_id, e.image_id, e.vector, e.background, i.phash, i.sha256
              FROM embeddings e
              JOIN object_images oi ON oi.image_id = e.image_id
              JOIN images i ON i.id = e.image_id
             WHERE e.bundle_id = %s
             ORDER BY e.image_id
            """,
            (bundle_id,),
        ).fetchall()
        dim = bundle.embedding_dim
        matrix = (np.stack([np.frombuffer(r["vector"], dtype="<f4") for r in rows])
                  if rows else np.zeros((0, dim), np.float32))
        if matrix.shape[1] != dim:
            raise ValueError(f"indexed vectors have {matrix.shape[1]} dims, the bundle {dim}")
        background = np.array([np.nan if r["background"] is None else r["background"]
                               for r in rows], np.float32)
        missing = np.isnan(background)
        if missing.any():  # indexed before backgrounds were stored: same formula, now
            background[missing] = backgrounds(matrix[missing], bundle.bank)
        tensor = torch.from_numpy(matrix.copy()).to(device=device, dtype=DTYPES[dtype])
        refs = ReferenceSet(
            embeddings=tensor,
            objects=np.array([r["object_id"] for r in rows], np.int64),
            background=background,
            phash=as_hash_array([r["phash"] for r in rows]),
            chunk=chunk,
        )
        index = cls(refs, np.array([r["image_id"] for r in rows], np.int64),
                    [r["sha256"].strip() for r in rows], cache_dir, store)
        if bundle.codebook is not None:
            index.add_local_stage(bundle.codebook)
        return index

    def add_local_stage(self, codebook: np.ndarray) -> None:
        """VLADs of every catalogue photo (`matcher.vlad`), for the local first stage.

        Needs every photo's local features: read from the cache, or extracted into it (~40 ms
        a photo on one core, once per photo). An unreadable photo gets a zero VLAD: it is
        still found by the global embedding.
        """
        started = time.perf_counter()
        self.refs.local = encode_all([self.local_features(r) for r in range(len(self))],
                                     codebook)
        self._local.clear()  # ~70 kB a photo: verification reads the few it needs again
        log.info("local first stage: VLADs of %d catalogue photos in %.1fs", len(self),
                 time.perf_counter() - started)

    def require(self, bundle_name: str) -> None:
        """NotIndexed when empty, naming the command that fixes it."""
        if len(self) == 0:
            raise NotIndexed(
                f"bundle {bundle_name!r} has no indexed catalogue photo; run `artwatch index`"
            )

    def local_features(self, row: int) -> LocalFeatures | None:
        """The catalogue photo's local features (cached on disk), None if unreadable."""
        if row in self._local:
            return self._local[row]
        sha = self.shas[row]
        store = self.store
        features = cached_local_features(
            self.cache_dir, sha, (lambda: store.open_rgb(sha)) if store is not None else None)
        self._local[row] = features
        return features

    def best_photo(self, query: np.ndarray, object_id: int) -> int | None:
        """images.id of the object's indexed photo most similar to one query embedding."""
        rows = self.refs.rows_of(object_id)
        if len(rows) == 0:
            return None
        sims = self.refs.similarities(query, rows)
        return int(self.image_ids[rows[int(np.argmax(sims))]])
