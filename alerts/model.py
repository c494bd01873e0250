"""What a reviewer sees about a suspected listing: its photos and the museum candidates.

Digests, urgent alerts and the review pages all show the same thing, so it is loaded in one
place. Matches come from the matcher; the fields of `matches.evidence` read here are the
contract documented in alerts/README.md:

    image_id           listing photo (images.id) that matched            (required)
    method             "verified" | "phash" | "retrieval" | "classifier"   (required)
    object_image_id    catalogue photo (images.id) that matched best      (optional)
    scores             {"listing": P, "photo": p, "similarity": cos, "inliers": n,
                        "colour_gap": 0..1, "phash_distance": bits, ...}
    keypoints_image_id stored picture of the matched local features        (optional)
    saliency_image_id  stored overlay of what the model looked at         (optional)
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import psycopg

METHOD_LABELS = {
    "verified": "matching local features (geometrically verified)",
    "phash": "perceptual-hash reuse of a museum photo",
    "classifier": "instance classifier",
    "retrieval": "catalogue retrieval (embedding similarity)",
}


@dataclass(frozen=True)
class Photo:
    image_id: int
    sha256: str


@dataclass
class Candidate:
    """One museum object suspected in a listing (the best match row per object)."""

    match_id: int
    object_id: int
    accession: str
    collection: str
    title: str | None
    object_url: str | None
    score: float
    method: str
    scores: dict[str, Any]
    status: str
    model: str | None
    matched_photo: Photo | None
    catalogue_photo: Photo | None
    saliency: Photo | None
    listing_photo_position: int | None = None
    alerted: bool = True  # passed the alert threshold (else shown for comparison only)
    keypoints: Photo | None = None  # the matching local features, drawn

    @property
    def why(self) -> str:
        label = METHOD_LABELS.get(self.method, self.method or "unknown method")
        details = []
        if self.scores.get("inliers"):
            details.append(f"{self.scores['inliers']} matching keypoints")
        if self.scores.get("phash_distance") is not None and (
                self.method == "phash" or "inliers" in self.scores):
            details.append(f"Hamming distance {self.scores['phash_distance']} bits")
        if isinstance(self.scores.get("similarity"), int | float):
            details.append(f"similarity {self.scores['similarity']:.2f}")
        if isinstance(self.scores.get("colour_gap"), int | float):  # verified candidates
            details.append(f"colour gap {self.scores['colour_gap']:.2f}")
        return label + (f" ({', '.join(details)})" if details else "")

    @property
    def score_pct(self) -> str:
        return f"{100 * self.score:.1f}%"


@dataclass
class ListingView:
    listing_id: int
    title: str | None
    url: str
    source: str
    price: Decimal | None
    currency: str | None
    sale_date: Any
    first_seen: datetime
    last_seen: datetime
    photos: list[Photo] = field(default_factory=list)
    candidates: list[Candidate] = field(default_factory=list)
    hidden: int = 0  # candidates beyond top-k

    @property
    def alerted_candidates(self) -> list[Candidate]:
        """The candidates that made this listing an alert."""
        return [c for c in self.candidates if c.alerted]

    @property
    def low_candidates(self) -> list[Candidate]:
        """Below the alert threshold but worth a glance (shown apart, for comparison)."""
        return [c for c in self.candidates if not c.alerted and c.score >= NEGLIGIBLE_SCORE]

    @property
    def negligible(self) -> int:
        """Candidates scored so low (a 0.0% line) that showing them only adds noise."""
        return sum(not c.alerted and c.score < NEGLIGIBLE_SCORE for c in self.candidates)

    @property
    def best_score(self) -> float:
        return max((c.score for c in self.candidates), default=0.0)

    @property
    def price_text(self) -> str:
        if self.price is None:
            return "price not stated"
        return f"{self.price:,.2f} {self.currency or ''}".strip()


NEGLIGIBLE_SCORE = 0.001  # below 0.1%: not shown

_MATCHES_SQL = """
SELECT m.id AS match_id, m.score, m.rank, m.evidence, m.status, m.listing_id,
       l.url AS listing_url, l.title AS listing_title, l.price, l.currency, l.sale_date,
       l.first_seen, l.last_seen, s.name AS source_name,
       o.id AS object_id, o.accession, o.collection, o.title AS object_title,
       o.url AS object_url,
       b.name AS bundle_name, b.architecture, b.info->>'created_at' AS bundle_created,
       b.info->'thresholds'->%(point)s AS threshold
FROM matches m
JOIN listings l ON l.id = m.listing_id
JOIN sources s ON s.id = l.source_id
JOIN objects o ON o.id = m.object_id
LEFT JOIN bundles b ON b.id = m.bundle_id
WHERE m.id = ANY(%(ids)s)
ORDER BY m.score DESC, m.id
"""

_LISTING_PHOTOS_SQL = """
SELECT li.listing_id, li.image_id, li.position, i.sha256
FROM listing_images li JOIN images i ON i.id = li.image_id
WHERE li.listing_id = ANY(%s) AND li.status = 'stored'
ORDER BY li.listing_id, li.position, li.id
"""

_OBJECT_PHOTOS_SQL = """
SELECT DISTINCT ON (oi.object_id) oi.object_id, i.id, i.sha256
FROM object_images oi JOIN images i ON i.id = oi.image_id
WHERE oi.object_id = ANY(%s)
ORDER BY oi.object_id, oi.id
"""


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _model_label(row: dict[str, Any]) -> str | None:
    if not row["bundle_name"]:
        return None
    label = f"{row['bundle_name']} ({row['architecture']}"
    if row["bundle_created"]:
        label += f", {row['bundle_created']}"
    return label + ")"


def _alerted(row: dict[str, Any], ev: dict[str, Any]) -> bool:
    """Did this candidate pass the alert decision, or is it there for comparison?

    The matcher says so (`evidence.alerted`: the listing probability against the bundle's
    threshold for the listing's size). Matches written before it did: model-free evidence
    and retrieval hits alerted by themselves, a model score at or above its bundle's
    threshold for the configured operating point, else the listing's best candidate.
    """
    if isinstance(ev.get("alerted"), bool):
        return bool(ev["alerted"])
    if str(ev.get("method") or "") in ("phash", "retrieval"):
        return True
    threshold = row["threshold"]
    if isinstance(threshold, int | float):
        return float(row["score"]) >= float(threshold)
    return int(row["rank"]) == 1


def load_listing_views(
    conn: psycopg.Connection, match_ids: list[int], top_k: int | None = None,
    operating_point: str | None = None,
) -> list[ListingView]:
    """The listings of `match_ids` with their candidates, best listing first.

    Within a listing, one candidate per museum object (its best-scoring match, since two
    bundles may both have found it) in score order, cut to `top_k`. `operating_point`
    (default: the setting) names the bundle threshold that tells alerted candidates from
    the ones shown for comparison.
    """
    if not match_ids:
        return []
    if operating_point is None:
        from artwatch.settings import get_settings

        operating_point = get_settings().match_operating_point
    rows = conn.execute(
        _MATCHES_SQL, {"ids": list(match_ids), "point": operating_point}
    ).fetchall()
    listing_ids = sorted({r["listing_id"] for r in rows})
    photos: dict[int, list[Photo]] = defaultdict(list)
    positions: dict[int, int] = {}
    for p in conn.execute(_LISTING_PHOTOS_SQL, (listing_ids,)).fetchall():
        photos[p["listing_id"]].append(Photo(p["image_id"], p["sha256"].strip()))
        positions.setdefault(p["image_id"], len(photos[p["listing_id"]]))

    wanted: set[int] = set()
    for r in rows:
        ev = r["evidence"] or {}
        for key in ("image_id", "object_image_id", "saliency_image_id", "keypoints_image_id"):
            if (value := _int_or_none(ev.get(key))) is not None:
                wanted.add(value)
    shas = {
        i["id"]: i["sha256"].strip()
        for i in conn.execute("SELECT id, sha256 FROM images WHERE id = ANY(%s)", (list(wanted),))
    }
    default_photo = {
        o["object_id"]: Photo(o["id"], o["sha256"].strip())
        for o in conn.execute(_OBJECT_PHOTOS_SQL, (sorted({r["object_id"] for r in rows}),))
    }

    def photo(image_id: int | None) -> Photo | None:
        return Photo(image_id, shas[image_id]) if image_id in shas else None

    views: dict[int, ListingView] = {}
    seen_objects: set[tuple[int, int]] = set()
    for r in rows:
        view = views.get(r["listing_id"])
        if view is None:
            view = views[r["listing_id"]] = ListingView(
                listing_id=r["listing_id"],
                title=r["listing_title"],
                url=r["listing_url"],
                source=r["source_name"],
                price=r["price"],
                currency=r["currency"],
                sale_date=r["sale_date"],
                first_seen=r["first_seen"],
                last_seen=r["last_seen"],
                photos=photos.get(r["listing_id"], []),
            )
        key = (r["listing_id"], r["object_id"])
        if key in seen_objects:
            continue  # a weaker match of the same object by another bundle
        seen_objects.add(key)
        ev = r["evidence"] or {}
        matched_id = _int_or_none(ev.get("image_id"))
        catalogue = photo(_int_or_none(ev.get("object_image_id"))) or default_photo.get(
            r["object_id"]
        )
        view.candidates.append(
            Candidate(
                match_id=r["match_id"],
                object_id=r["object_id"],
                accession=r["accession"],
                collection=r["collection"],
                title=r["object_title"],
                object_url=r["object_url"],
                score=float(r["score"]),
                method=str(ev.get("method") or ""),
                scores=ev.get("scores") if isinstance(ev.get("scores"), dict) else {},
                status=r["status"],
                model=_model_label(r),
                matched_photo=photo(matched_id),
                catalogue_photo=catalogue,
                saliency=photo(_int_or_none(ev.get("saliency_image_id"))),
                listing_photo_position=positions.get(matched_id) if matched_id else None,
                alerted=_alerted(r, ev),
                keypoints=photo(_int_or_none(ev.get("keypoints_image_id"))),
            )
        )
    ordered = sorted(views.values(), key=lambda v: (-v.best_score, v.listing_id))
    if top_k is not None:
        for view in ordered:
            view.hidden = max(0, len(view.candidates) - top_k)
            view.candidates = view.candidates[:top_k]
    return ordered
