"""Expiring signed one-click review links (itsdangerous).

A digest carries, for every candidate, a "confirm" and a "dismiss" link naming the match,
the reviewer the e-mail went to, and the decision. The token is signed with the web
secret and a purpose-specific salt (a session cookie cannot be replayed as a link, nor
the other way round) and expires after `review_link_max_age_s`. Opening a link only shows
a confirmation page; the decision is applied by the POST from that page, so a mail
scanner that prefetches links changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

DECISIONS = ("confirm", "dismiss")
SALT = "artwatch.review-link.v1"


class LinkInvalid(ValueError):
    """Forged, altered or malformed link."""


class LinkExpired(LinkInvalid):
    """A genuine link past its lifetime."""


@dataclass(frozen=True)
class ReviewAction:
    match_id: int
    reviewer_id: int
    decision: str


class ReviewLinks:
    def __init__(self, secret: str, base_url: str, max_age_s: int) -> None:
        self._serializer = URLSafeTimedSerializer(secret, salt=SALT)
        self.base_url = base_url.rstrip("/")
        self.max_age_s = max_age_s

    def token(self, match_id: int, reviewer_id: int, decision: str) -> str:
        if decision not in DECISIONS:
            raise ValueError(f"unknown decision {decision!r}")
        return self._serializer.dumps([int(match_id), int(reviewer_id), decision])

    def url(self, match_id: int, reviewer_id: int, decision: str) -> str:
        return f"{self.base_url}/r/{self.token(match_id, reviewer_id, decision)}"

    def match_url(self, match_id: int) -> str:
        return f"{self.base_url}/matches/{int(match_id)}"

    def verify(self, token: str) -> ReviewAction:
        """The action a token grants, or LinkExpired / LinkInvalid."""
        try:
            payload = self._serializer.loads(token, max_age=self.max_age_s)
        except SignatureExpired:
            raise LinkExpired("this review link has expired") from None
        except BadSignature:
            raise LinkInvalid("this review link is not valid") from None
        if (
            not isinstance(payload, list)
            or len(payload) != 3
            or not all(isinstance(x, int) for x in payload[:2])
            or payload[2] not in DECISIONS
        ):
            raise LinkInvalid("this review link is not valid")
        return ReviewAction(payload[0], payload[1], payload[2])
