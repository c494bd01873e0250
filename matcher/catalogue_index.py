"""Exact nearest-neighbour search over the catalogue's photo embeddings, held in memory.

PostgreSQL stores every catalogue photo's embedding (the source of truth); the matcher loads
them for its bundle as one L2-normalised matrix (on the model's device), so a batch of listing
photos is a matrix product against the whole catalogue, then a max per object. Objects added
after training are covered as soon as their photos are indexed.

The product runs in chunks of `chunk` catalogue rows (`ARTWATCH_MATCHER_RETRIEVAL_CHUNK`):
a batch of 256 photos against a million catalogue photos is a 256 x 1M similarity matrix
(1 GB in float32) if made at once; chunked, only 256 x chunk exists at a time, and each chunk
feeds both answers (`query`): the running top photos and the running best per object. Both
reductions are maxima, so the answer is the unchunked one (similarities up to float rounding
of the product, ~1e-7). The matrix may be held in
bfloat16 or float16 (`ARTWATCH_MATCHER_CATALOGUE_DTYPE`): half the memory, and on a GPU or
a CPU with bf16 instructions faster, at ~1e-3 error in a cosine.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import psycopg
import torch

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass(frozen=True)
class RetrievalHit:
    """The best catalogue photo of one object for one query photo."""

    object_id: int
    image_id: int
    similarity: float


class CatalogueIndex:
    """Catalogue embeddings of one bundle: rows are photos, each belonging to an object."""

    def __init__(self, matrix: torch.Tensor, object_ids: np.ndarray, image_ids: np.ndarray,
                 chunk: int = 65_536):
        self.matrix = matrix  # (N, d) L2-normalised, float32 unless a smaller dtype was asked
        self.object_ids = object_ids  # (N,) objects.id per row
        self.image_ids = image_ids  # (N,) images.id per row
        self.chunk = max(1, int(chunk))
        self._columns: tuple[tuple, torch.Tensor] | None = None  # per_object's row -> column

    def __len__(self) -> int:
        return int(self.matrix.shape[0])

    @classmethod
    def load(cls, conn: psycopg.Connection, bundle_id: int,
             device: str | torch.device = "cpu", *, dtype: str = "float32",
             chunk: int = 65_536) -> CatalogueIndex:
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
            return cls(torch.zeros((0, 0)), np.zeros(0, np.int64), np.zeros(0, np.int64), chunk)
        matrix = np.stack([np.frombuffer(r["vector"], dtype="<f4") for r in rows])
        return cls(
            torch.from_numpy(matrix).to(device=device, dtype=DTYPES[dtype]),
            np.array([r["object_id"] for r in rows], dtype=np.int64),
            np.array([r["image_id"] for r in rows], dtype=np.int64),
            chunk,
        )

    def _object_columns(self, objects: list[int | None]) -> torch.Tensor:
        """Per catalogue row, the column of its object in `objects` (len(objects) if none)."""
        key = tuple(objects)
        if self._columns is None or self._columns[0] != key:
            column = {o: i for i, o in enumerate(objects) if o is not None}
            rows = np.array([column.get(int(o), len(objects)) for o in self.object_ids],
                            np.int64)
            self._columns = (key, torch.from_numpy(rows).to(self.matrix.device))
        return self._columns[1]

    def query(self, queries: np.ndarray, k: int = 10, objects: list[int | None] | None = None
              ) -> tuple[list[list[RetrievalHit]], np.ndarray | None]:
        """(`search(queries, k)`, `per_object(queries, objects)`) from one chunked pass.

        `per_object` is None when `objects` is None. Shapes: queries (M, d) float; the second
        answer (M, len(objects)) float32.
        """
        m = len(queries)
        if len(self) == 0 or m == 0:
            return ([[] for _ in range(m)],
                    None if objects is None else np.zeros((m, len(objects)), np.float32))
        device = self.matrix.device
        q = torch.from_numpy(np.array(queries, dtype=np.float32)).to(device)
        q = q.to(self.matrix.dtype)
        # Enough nearest photos to find k distinct objects in all but pathological cases.
        depth = min(len(self), max(4 * k, 32))
        top_values = torch.empty((m, 0), dtype=torch.float32, device=device)
        top_rows = torch.empty((m, 0), dtype=torch.int64, device=device)
        best = columns = None
        if objects is not None:
            columns = self._object_columns(objects)
            best = torch.full((m, len(objects) + 1), -torch.inf, device=device)
        for start in range(0, len(self), self.chunk):
            sims = (q @ self.matrix[start:start + self.chunk].T).float()  # (M, chunk) cosines
            values, rows = torch.topk(sims, min(depth, sims.shape[1]), dim=1)
            top_values, order = torch.topk(torch.cat([top_values, values], 1),
                                           min(depth, top_values.shape[1] + values.shape[1]),
                                           dim=1)
            top_rows = torch.gather(torch.cat([top_rows, rows + start], 1), 1, order)
            if best is not None:
                index = columns[start:start + sims.shape[1]][None, :].expand(m, -1)
                best.scatter_reduce_(1, index, sims, reduce="amax")
        per_object = None
        if best is not None:
            best = best[:, : len(objects)]  # type: ignore[arg-type]
            # an object without an indexed photo gets 0, as matcher.scoring.best_per_object
            per_object = torch.where(torch.isfinite(best), best, 0.0).cpu().numpy()
        return self._hits(top_values.cpu().numpy(), top_rows.cpu().numpy(), k), per_object

    def search(self, queries: np.ndarray, k: int = 10) -> list[list[RetrievalHit]]:
        """For each query embedding, the k most similar objects (best photo per object)."""
        return self.query(queries, k)[0]

    def _hits(self, values: np.ndarray, rows: np.ndarray, k: int) -> list[list[RetrievalHit]]:
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
        per_object = self.query(queries, 1, objects)[1]
        assert per_object is not None
        return per_object

    def best_photo(self, query: np.ndarray, object_id: int) -> int | None:
        """images.id of the object's indexed photo most similar to one query embedding."""
        rows = np.flatnonzero(self.object_ids == object_id)
        if len(rows) == 0:
            return None
        q = torch.from_numpy(np.array(query, dtype=np.float32)).to(self.matrix.device)
        sims = self.matrix[torch.from_numpy(rows).to(self.matrix.device)].float() @ q
        return int(self.image_ids[rows[int(torch.argmax(sims))]])
