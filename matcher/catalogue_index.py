"""Exact nearest-neighbour search over the catalogue's photo embeddings, held in memory.

PostgreSQL stores every catalogue photo's embedding (the source of truth); the matcher loads
them for its bundle as one L2-normalised matrix, so a batch of listing photos is one matrix
product against the whole catalogue (a million photos is still one matmul), then a max per
object. Objects added after training are covered as soon as their photos are indexed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import psycopg
import torch

from matcher.scoring import best_per_object


@dataclass(frozen=True)
class RetrievalHit:
    """The best catalogue photo of one object for one query photo."""

    object_id: int
    image_id: int
    similarity: float


class CatalogueIndex:
    """Catalogue embeddings of one bundle: rows are photos, each belonging to an object."""

    def __init__(self, matrix: torch.Tensor, object_ids: np.ndarray, image_ids: np.ndarray):
        self.matrix = matrix  # (N, d) float32, L2-normalised
        self.object_ids = object_ids  # (N,) objects.id per row
        self.image_ids = image_ids  # (N,) images.id per row
        self._columns: tuple[tuple, np.ndarray] | None = None  # per_object's row -> column

    def __len__(self) -> int:
        return int(self.matrix.shape[0])

    @classmethod
    def load(cls, conn: psycopg.Connection, bundle_id: int,
             device: str | torch.device = "cpu") -> CatalogueIndex:
        rows = conn.execute(
            """
            SELECT oi.object_id, e.image_id, e.vector
              FROM embeddings e
              JOIN object_images oi ON oi.image_id = e.image_id
             WHERE e.bundle_id = %s
             ORDER BY e.image_id
            """,
            (bundle_id,),
        ).fetchall()
        if not rows:
            return cls(torch.zeros((0, 0)), np.zeros(0, np.int64), np.zeros(0, np.int64))
        matrix = np.stack([np.frombuffer(r["vector"], dtype="<f4") for r in rows])
        return cls(
            torch.from_numpy(matrix.copy()).to(device),
            np.array([r["object_id"] for r in rows], dtype=np.int64),
            np.array([r["image_id"] for r in rows], dtype=np.int64),
        )

    def search(self, queries: np.ndarray, k: int = 10) -> list[list[RetrievalHit]]:
        """For each query embedding, the k most similar objects (best photo per object)."""
        if len(self) == 0 or len(queries) == 0:
            return [[] for _ in range(len(queries))]
        q = torch.from_numpy(np.array(queries, dtype=np.float32)).to(self.matrix.device)
        sims = q @ self.matrix.T  # (M, N) cosine similarities
        # Enough nearest photos to find k distinct objects in all but pathological cases.
        depth = min(len(self), max(4 * k, 32))
        values, rows = torch.topk(sims, depth, dim=1)
        values, rows = values.cpu().numpy(), rows.cpu().numpy()
        out = []
        for vals, idx in zip(values, rows, strict=True):
            hits: dict[int, RetrievalHit] = {}
            for sim, row in zip(vals, idx, strict=True):
                obj = int(self.object_ids[row])
                if obj not in hits:
                    hits[obj] = RetrievalHit(obj, int(self.image_ids[row]), float(sim))
                    if len(hits) == k:
                        break
            out.append(list(hits.values()))
        return out

    def per_object(self, queries: np.ndarray, objects: list[int | None]) -> np.ndarray:
        """(queries x len(objects)) best cosine to any indexed photo of each object.

        `objects` are objects.id in the caller's order (a bundle's classes; None for a class
        that left the catalogue); an object without an indexed photo gets 0.
        """
        if len(self) == 0 or len(queries) == 0:
            return np.zeros((len(queries), len(objects)), np.float32)
        key = tuple(objects)
        if self._columns is None or self._columns[0] != key:
            column = {o: i for i, o in enumerate(objects) if o is not None}
            rows = np.array([column.get(int(o), -1) for o in self.object_ids], np.int64)
            self._columns = (key, rows)
        ref_objects = self._columns[1]
        q = torch.from_numpy(np.array(queries, dtype=np.float32)).to(self.matrix.device)
        return best_per_object(q @ self.matrix.T, ref_objects, len(objects))

    def best_photo(self, query: np.ndarray, object_id: int) -> int | None:
        """images.id of the object's indexed photo most similar to one query embedding."""
        rows = np.flatnonzero(self.object_ids == object_id)
        if len(rows) == 0:
            return None
        q = torch.from_numpy(np.array(query, dtype=np.float32)).to(self.matrix.device)
        sims = self.matrix[torch.from_numpy(rows).to(self.matrix.device)] @ q
        return int(self.image_ids[rows[int(torch.argmax(sims))]])
