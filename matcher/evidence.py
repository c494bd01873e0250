"""Evidence that a photo shows a catalogued object: the same code for calibration and serving.

For a query photo (a listing photo, or an out-of-fold catalogue photo while training) and each
of its candidate objects, `candidate_evidence` gives one feature row (`FEATURES`):

* `sim`: cosine similarity of the photo's embedding to the object's most similar reference
  photo (exact nearest neighbours over every indexed photo, so an object added after training
  is a candidate like any other);
* `sim_norm`: `sim` minus that reference photo's *background*, its mean similarity to its
  `BACKGROUND_K` nearest photos in a bank of ordinary listing photos (the distractor
  background): a plain vase on a white backdrop that resembles many ordinary listings needs
  more evidence than a one-of-a-kind object (the distractor normalisation of GLDv2-era
  retrieval, e.g. Weyand et al., "Google Landmarks Dataset v2", CVPR 2020);
* `margin`: `sim` minus the best `sim` of any other object (the top object's lead, or a lower
  candidate's deficit);
* `log_prob`: log of the softmax over retrieved objects' `sim / temperature` (the temperature
  fitted on out-of-fold photos): a retrieval classifier over every catalogued object;
* `reuse`: how close the photo's perceptual hash (or its mirror image's) comes to any of the
  object's catalogue photos, `max(0, 1 - distance / PHASH_NEAR)`; a hash hit is one piece of
  evidence among the others, never a verdict (museum photos on one backdrop collide);
* `local_sim` (recorded, not a score input): cosine of the photo's VLAD (`matcher.vlad`: its
  RootSIFT descriptors aggregated) to the object's most similar catalogue photo's VLAD, when
  the bundle has a local first stage (0 otherwise). The `LOCAL_CANDIDATES` objects of highest
  `local_sim` over the whole catalogue are candidates too (added when the global embedding
  did not bring them) and are always verified, so their evidence is their inliers: a flat
  object shown small in clutter is found by its surface's local features when the global
  embedding mostly sees the clutter;
* five verification features for the best `VERIFIED` candidates (`matcher.verify`) and the
  local first stage's, zero with `verified = 0` for the others: four from geometric
  verification of local features, and the colour gap of the two photos.

`matcher.scoring` turns the rows into calibrated probabilities.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from matcher.verify import FEATURE_NAMES as VERIFY_FEATURES

CANDIDATES = 5  # objects per photo that get a calibrated score
VERIFIED = 3  # of these, the best this many are verified with local features
PHASH_CANDIDATES = 2  # objects added as candidates by a perceptual-hash hit alone
# Objects nominated by the local first stage (VLAD), always verified (`artwatch train
# --local-candidates`; a bundle records its own, `Bundle.local_candidates`; the trade is
# measured in docs/recognition.md, "The local first stage").
LOCAL_CANDIDATES = 2
MAX_LOCAL_CANDIDATES = 64  # more would verify most of a small catalogue for every photo
PHASH_NEAR = 12  # bits: beyond this a hash says nothing
NEAR_ROWS = 1024  # hash-near rows looked at per photo, nearest first
BACKGROUND_K = 10
SEARCH_DEPTH = 256  # nearest reference photos kept per query (enough for CANDIDATES objects)
LOCAL_DEPTH = 64  # nearest reference VLADs kept per query (enough for LOCAL_CANDIDATES objects)
CHUNK = 65_536  # reference photos per matrix product (bounds memory for 1M-photo catalogues)

GLOBAL_FEATURES = ("sim", "sim_norm", "margin", "log_prob", "reuse")
# Recorded, not a score input: which objects the local stage nominated (`local_nominated`).
# Its evidence reaches the score through the nominees' verification; as an input of its own
# it penalised a mirrored re-used photo (SIFT is not mirror-invariant, a pHash is).
LOCAL_FEATURES = ("local_sim",)
FEATURES = GLOBAL_FEATURES + LOCAL_FEATURES + ("verified",) + VERIFY_FEATURES


def _device_of(matrix: torch.Tensor | np.ndarray) -> torch.device:
    return matrix.device if isinstance(matrix, torch.Tensor) else torch.device("cpu")


def nearest(
    queries: np.ndarray, references: torch.Tensor | np.ndarray, depth: int,
    chunk: int = CHUNK,
) -> tuple[np.ndarray, np.ndarray]:
    """(similarities, reference rows) of the `depth` nearest references per query.

    Exact search: one matrix product per `chunk` references (in the references' dtype and on
    their device) and a running top-`depth`; the answer equals the unchunked one up to float
    rounding (and the order of exact ties). Once a query holds `depth` rows, a later chunk
    is only scanned for similarities above its current `depth`-th best (`_above`), not put
    through a `topk` of its own: in a large catalogue a few entries per row qualify (256
    queries x 1M x 256 in bfloat16 on 2 cores: 1.18 s with a `topk` per chunk).
    Shapes: queries (n x d), references (m x d), both L2-normalised; outputs
    (n x min(depth, m)), best first.
    """
    device = _device_of(references)
    refs = torch.as_tensor(references, device=device)
    if not refs.is_floating_point():
        refs = refs.float()
    q = torch.as_tensor(np.asarray(queries, np.float32), device=device).to(refs.dtype)
    n, m = q.shape[0], refs.shape[0]
    depth = min(depth, m)
    if n == 0 or depth == 0:
        return np.zeros((n, 0), np.float32), np.zeros((n, 0), np.int64)
    step = max(1, chunk)
    best_v = torch.full((n, 0), -2.0, device=device)
    best_i = torch.zeros((n, 0), dtype=torch.long, device=device)
    for start in range(0, m, step):
        sims = q @ refs[start : start + step].T
        if best_v.shape[1] < depth:  # not `depth` rows yet: the chunk's own top rows
            v, i = torch.topk(sims.float(), min(depth, sims.shape[1]), dim=1)
            v_new, i_new = v, i + start
        else:  # only what beats the current depth-th best (exactly representable: it came
            # from an earlier chunk's product in the same dtype)
            rows, cols, values = _above(sims, best_v[:, -1:].to(sims.dtype))
            if len(rows) == 0:
                continue
            counts = torch.bincount(rows, minlength=n)
            offsets = torch.cumsum(counts, 0) - counts
            pos = torch.arange(len(rows), device=device) - offsets[rows]
            width = int(counts.max())
            v_new = torch.full((n, width), -2.0, device=device)
            i_new = torch.zeros((n, width), dtype=torch.long, device=device)
            v_new[rows, pos] = values.float()
            i_new[rows, pos] = cols + start
        best_v = torch.cat([best_v, v_new], 1)
        best_i = torch.cat([best_i, i_new], 1)
        if best_v.shape[1] >= depth:
            best_v, keep = torch.topk(best_v, depth, dim=1)
            best_i = torch.gather(best_i, 1, keep)
    return best_v.cpu().numpy(), best_i.cpu().numpy()


def _above(sims: torch.Tensor, kth: torch.Tensor, block: int = 64
           ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(rows, columns, values) of the entries of `sims` (n x c) above `kth` (n x 1).

    Two levels, because `nonzero` over a whole chunk costs more than the comparison: the
    maxima of blocks of `block` columns first, then the entries of the blocks that beat it.
    """
    n, c = sims.shape
    full = c - c % block
    found: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
    if full:
        blocks = sims[:, :full].reshape(n, full // block, block)
        r, b = torch.nonzero(blocks.amax(dim=2) > kth, as_tuple=True)
        if len(r):
            values = blocks[r, b]
            h, j = torch.nonzero(values > kth[r], as_tuple=True)
            found.append((r[h], b[h] * block + j, values[h, j]))
    if full < c:
        r, j = torch.nonzero(sims[:, full:] > kth, as_tuple=True)
        found.append((r, j + full, sims[r, j + full]))
    if not found:
        empty = torch.zeros(0, dtype=torch.long, device=sims.device)
        return empty, empty, torch.zeros(0, dtype=sims.dtype, device=sims.device)
    rows, cols, values = (torch.cat(parts) for parts in zip(*found, strict=True))
    order = torch.argsort(rows, stable=True)  # grouped by row, as the caller counts them
    return rows[order], cols[order], values[order]


def backgrounds(references: np.ndarray, bank: np.ndarray, k: int = BACKGROUND_K) -> np.ndarray:
    """(m,) mean similarity of each reference photo to its k nearest bank photos (0 if none)."""
    if len(bank) == 0 or len(references) == 0:
        return np.zeros(len(references), np.float32)
    sims, _ = nearest(references, bank, k)
    return sims.mean(1).astype(np.float32)


@dataclass
class Candidates:
    """Per query photo, its candidate objects and their feature rows.

    `objects` (n x c) object ids (-1 pads), `ref_rows` (n x c) the best reference photo's row
    in the index, `features` (n x c x len(FEATURES)), `local_rows` (n x c) the reference
    photo of highest VLAD similarity (with a local first stage; verification tries it too:
    a coin's other face may be its most similar photo globally).
    """

    objects: np.ndarray
    ref_rows: np.ndarray
    features: np.ndarray
    local_rows: np.ndarray | None = None

    def verification_rows(self, qi: int, ci: int) -> list[int]:
        """The candidate's reference photos verification tries: the global and the local
        nearest (one when they agree)."""
        rows = [int(self.ref_rows[qi, ci])]
        if self.local_rows is not None and self.local_rows[qi, ci] >= 0:
            rows.append(int(self.local_rows[qi, ci]))
        return list(dict.fromkeys(r for r in rows if r >= 0))

    def column(self, name: str) -> np.ndarray:
        return self.features[..., FEATURES.index(name)]


def phash_distance(hashes: np.ndarray, query: int, mirror: int) -> np.ndarray:
    """(m,) bits between each of `hashes` (uint64, `as_hash_array`) and a photo's pHash or
    its mirror image's, whichever is closer (pass `mirror=query` for the plain hash only)."""
    q = np.uint64(query & 0xFFFFFFFFFFFFFFFF)
    m = np.uint64(mirror & 0xFFFFFFFFFFFFFFFF)
    return np.minimum(np.bitwise_count(hashes ^ q), np.bitwise_count(hashes ^ m))


def as_hash_array(values: object) -> np.ndarray:
    """pHashes (signed 64-bit, as PostgreSQL stores them) as uint64 bit patterns."""
    return np.asarray(values, dtype=np.int64).astype(np.uint64)


@dataclass
class ReferenceSet:
    """The photos a query is compared with: the catalogue index, or a fold's references.

    `embeddings` (m x d, L2-normalised; a torch tensor may live on the GPU), `objects` (m,)
    object ids, `background` (m,) distractor background, `phash` (m,) uint64, `local`
    (m x v) VLADs of the photos' local features (`matcher.vlad`) when the bundle has a local
    first stage.
    """

    embeddings: torch.Tensor | np.ndarray
    objects: np.ndarray
    background: np.ndarray
    phash: np.ndarray
    chunk: int = CHUNK
    local: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.objects = np.asarray(self.objects, np.int64)
        order = np.argsort(self.objects, kind="stable")
        uniq, starts = np.unique(self.objects[order], return_index=True)
        bounds = np.append(starts, len(order))
        self._rows = {int(o): order[bounds[i] : bounds[i + 1]] for i, o in enumerate(uniq)}

    def __len__(self) -> int:
        return int(len(self.objects))

    def rows_of(self, obj: int) -> np.ndarray:
        """Rows of one object's reference photos (empty for an unknown object)."""
        return self._rows.get(int(obj), np.zeros(0, np.int64))

    def similarities(self, query: np.ndarray, rows: np.ndarray) -> np.ndarray:
        ref = self.embeddings[rows]
        if isinstance(ref, torch.Tensor):
            q = torch.as_tensor(np.asarray(query, np.float32), device=ref.device).to(ref.dtype)
            return (ref @ q).float().cpu().numpy()
        return np.asarray(ref, np.float32) @ np.asarray(query, np.float32)


def candidate_evidence(
    queries: np.ndarray,
    refs: ReferenceSet,
    query_phash: np.ndarray,
    query_phash_mirror: np.ndarray,
    *,
    temperature: float,
    candidates: int = CANDIDATES,
    query_local: np.ndarray | None = None,
    local_candidates: int = LOCAL_CANDIDATES,
) -> Candidates:
    """Global evidence (everything but verification) for each query's candidate objects.

    `queries` (n x d) embeddings with their pHashes (n,) and mirror-image pHashes (n,);
    `query_local` (n x v) their VLADs, used with `refs.local` (the local first stage), whose
    `local_candidates` objects of highest VLAD similarity are nominated. Outputs have
    `candidates + PHASH_CANDIDATES + local_candidates` columns (-1 where unused).
    """
    n = len(queries)
    width = candidates + PHASH_CANDIDATES + local_candidates
    objects = np.full((n, width), -1, np.int64)
    rows = np.full((n, width), -1, np.int64)
    local_rows = np.full((n, width), -1, np.int64)
    feats = np.zeros((n, width, len(FEATURES)), np.float64)
    if n == 0 or len(refs) == 0:
        return Candidates(objects, rows, feats, local_rows)
    sims, idx = nearest(queries, refs.embeddings, SEARCH_DEPTH, refs.chunk)
    local = query_local is not None and refs.local is not None
    if local:
        local_sims, local_idx = nearest(query_local, refs.local, LOCAL_DEPTH, refs.chunk)
    for qi in range(n):
        best: dict[int, tuple[float, int]] = {}
        for s, r in zip(sims[qi], idx[qi], strict=True):
            best.setdefault(int(refs.objects[r]), (float(s), int(r)))
        ranked = sorted(best.items(), key=lambda kv: -kv[1][0])
        values = np.array([v for _, (v, _) in ranked])
        log_norm = np.logaddexp.reduce(values / temperature)
        chosen = [obj for obj, _ in ranked[:candidates]]
        dist = phash_distance(refs.phash, int(query_phash[qi]), int(query_phash_mirror[qi]))
        near = np.flatnonzero(dist < PHASH_NEAR)
        if len(near) > NEAR_ROWS:  # a degenerate hash (a blank picture) is near everything
            near = near[np.argpartition(dist[near], NEAR_ROWS - 1)[:NEAR_ROWS]]
        for r in near[np.argsort(dist[near], kind="stable")]:
            if len(chosen) >= candidates + PHASH_CANDIDATES:
                break
            obj = int(refs.objects[r])
            if obj not in chosen:
                chosen.append(obj)
        local_best: dict[int, tuple[float, int]] = {}
        has_local = local and bool(query_local[qi].any())  # a photo without local features
        if has_local:  # nominates nothing and has no local similarity to anything
            for s, r in zip(local_sims[qi], local_idx[qi], strict=True):
                local_best.setdefault(int(refs.objects[r]), (float(s), int(r)))
            for obj in list(local_best)[:local_candidates]:  # nominated: always candidates
                if obj not in chosen:
                    chosen.append(obj)
        top, second = values[0], (values[1] if len(values) > 1 else 0.0)
        for ci, obj in enumerate(chosen):
            own = refs.rows_of(obj)
            if obj in best:
                sim, row = best[obj]
            else:  # a hash-only candidate beyond the search depth: its own best photo
                own_sims = refs.similarities(queries[qi], own)
                row, sim = int(own[int(np.argmax(own_sims))]), float(own_sims.max())
            margin = sim - (second if obj == ranked[0][0] else top)
            objects[qi, ci] = obj
            rows[qi, ci] = row
            local_sim = 0.0
            if has_local:
                if obj not in local_best:  # beyond the local search depth: its own best photo
                    own_local = refs.local[own] @ query_local[qi]
                    local_best[obj] = (float(own_local.max()), int(own[np.argmax(own_local)]))
                local_sim, local_rows[qi, ci] = local_best[obj]
            feats[qi, ci, : len(GLOBAL_FEATURES) + len(LOCAL_FEATURES)] = (
                sim,
                sim - float(refs.background[row]),
                margin,
                max(sim / temperature - log_norm, -50.0),
                max(0.0, 1.0 - int(dist[own].min()) / PHASH_NEAR),
                local_sim,
            )
    return Candidates(objects, rows, feats, local_rows if local else None)


def check_local_candidates(count: object) -> int:
    """`count` as a number of local first-stage nominees (`artwatch train
    --local-candidates`, bundle.json's `local_first_stage.candidates`). Raises ValueError
    unless it is a whole number from 1 to `MAX_LOCAL_CANDIDATES` (a bool is not)."""
    if isinstance(count, bool) or not isinstance(count, int) \
            or not 1 <= count <= MAX_LOCAL_CANDIDATES:
        raise ValueError(f"local_candidates {count!r}: need 1 to {MAX_LOCAL_CANDIDATES} "
                         "(a whole number)")
    return count


def local_nominated(objects: np.ndarray, features: np.ndarray,
                    count: int = LOCAL_CANDIDATES) -> np.ndarray:
    """(n x c) the candidates the local first stage nominated: each photo's `count`
    candidates of highest `local_sim` (all zero without a local stage).

    The nominated objects are always among the candidates, and `local_sim` of a candidate is
    its best VLAD similarity, so this recovers the local stage's top objects from the rows.
    """
    sims = np.where(objects >= 0, features[..., FEATURES.index("local_sim")], 0.0)
    out = np.zeros(objects.shape, bool)
    if objects.shape[1] == 0:
        return out
    top = np.argsort(-sims, axis=1, kind="stable")[:, :count]
    np.put_along_axis(out, top, True, axis=1)
    return out & (sims > 0)


def set_verification(cands: Candidates, qi: int, ci: int, values: np.ndarray) -> None:
    """Record a candidate's verification features (`matcher.verify.Verification.features()`)."""
    start = FEATURES.index("verified")
    cands.features[qi, ci, start] = 1.0
    cands.features[qi, ci, start + 1 : start + 1 + len(values)] = values
