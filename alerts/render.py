"""Digest rendering: Jinja2 templates to HTML (CSS inlined) and plain text, and the MIME message.

The same templates make the e-mail and the HTML pages; only the image references differ:
in the e-mail every photo is a `cid:` reference to an inline part (mail clients block
remote images), in the review app a link to its thumbnail URL, and in the outbox's `.html`
copy a `data:` URI, so the file shows every photo when opened on its own.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import css_inline
import jinja2

from alerts.links import ReviewLinks
from alerts.model import ListingView, Photo
from alerts.thumbs import Thumbnailer, clamp_size
from artwatch.urlsafety import is_web_url

TEMPLATES = Path(__file__).resolve().parent / "templates"


@dataclass(frozen=True)
class Recipient:
    id: int
    email: str
    name: str


@dataclass
class Digest:
    """One alert's content: for whom, what kind, and the listings to show."""

    alert_id: int
    kind: str  # digest | urgent
    message_id: str
    reviewer: Recipient
    listings: list[ListingView]
    created_at: datetime

    @property
    def match_count(self) -> int:
        """Candidates that alerted (those shown for comparison are not counted)."""
        return sum(len(v.alerted_candidates) for v in self.listings)

    @property
    def subject(self) -> str:
        n = len(self.listings)
        top = max((v.best_score for v in self.listings), default=0.0)
        noun = "listing" if n == 1 else "listings"
        if self.kind == "urgent":
            return f"[artwatch URGENT] {n} suspected {noun} (top score {100 * top:.1f}%)"
        return f"[artwatch] {n} suspected {noun} (top score {100 * top:.1f}%)"


def _format_utc(value: datetime | None) -> str:
    """Timestamps in UTC whatever the database session's time zone."""
    if value is None:
        return "?"
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%d %H:%M UTC")


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    """Templates from alerts/templates; autoescaped for .html, plain for .txt.

    Outside URLs (a listing's, a catalogue record's) are links only when they pass the
    `web_url` test (artwatch.urlsafety.is_web_url); a `javascript:` or `data:` URL that
    got into the database is printed as text, since mail clients apply no CSP.
    """
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html",)),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["dt"] = _format_utc
    # `{% if url is web_url %}<a href=...>`: only http(s) URLs become links; the rest is text.
    env.tests["web_url"] = is_web_url
    return env


@lru_cache(maxsize=1)
def _digest_css() -> str:
    return (TEMPLATES / "email" / "digest.css").read_text("utf-8")


class InlineImages:
    """`cid:` references; each (photo, size) becomes one inline part, attached once."""

    def __init__(self, thumbnailer: Thumbnailer) -> None:
        self.thumbnailer = thumbnailer
        self.parts: dict[str, bytes] = {}  # cid -> jpeg

    def __call__(self, photo: Photo | None, size: int) -> str | None:
        if photo is None:
            return None
        size = clamp_size(size)
        cid = f"{photo.sha256[:24]}.{size}@artwatch"
        if cid not in self.parts:
            data = self.thumbnailer.thumbnail(photo.sha256, size)
            if data is None:
                return None
            self.parts[cid] = data
        return f"cid:{cid}"


class EmbeddedImages:
    """`data:` URIs of the thumbnails: a page that shows every photo opened as a file.

    For the outbox copy of a digest: it is read from disk, where neither the e-mail's
    `cid:` parts nor the review app's logged-in `/img/` URLs can be reached.
    """

    def __init__(self, thumbnailer: Thumbnailer) -> None:
        self.thumbnailer = thumbnailer
        self.uris: dict[tuple[str, int], str] = {}

    def __call__(self, photo: Photo | None, size: int) -> str | None:
        if photo is None:
            return None
        key = (photo.sha256, clamp_size(size))
        if key not in self.uris:
            data = self.thumbnailer.thumbnail(*key)
            if data is None:
                return None
            self.uris[key] = "data:image/jpeg;base64," + base64.b64encode(data).decode("ascii")
        return self.uris[key]


@dataclass
class LinkedImages:
    """Links to the review app's thumbnails (the HTML page, the web app)."""

    base_url: str
    seen: set[str] = field(default_factory=set)

    def __call__(self, photo: Photo | None, size: int) -> str | None:
        if photo is None:
            return None
        return f"{self.base_url.rstrip('/')}/img/{photo.sha256}?s={clamp_size(size)}"


ImageRef = Callable[[Photo | None, int], str | None]


def _context(digest: Digest, links: ReviewLinks, img: ImageRef) -> dict[str, Any]:
    rid = digest.reviewer.id
    return {
        "digest": digest,
        "subject": digest.subject,
        "reviewer": digest.reviewer,
        "listings": digest.listings,
        "img": img,
        "confirm_url": lambda c: links.url(c.match_id, rid, "confirm"),
        "dismiss_url": lambda c: links.url(c.match_id, rid, "dismiss"),
        "match_url": lambda c: links.match_url(c.match_id),
        "base_url": links.base_url,
        "link_days": max(1, links.max_age_s // 86400),
        "generated_at": datetime.now(UTC),
    }


def render_html(digest: Digest, links: ReviewLinks, img: ImageRef, *, inline: bool) -> str:
    """The digest as HTML; with `inline`, CSS is moved into style attributes for mail clients."""
    template = environment().get_template("email/digest.html")
    html = template.render(**_context(digest, links, img), css=_digest_css())
    if inline:
        html = css_inline.inline(html, load_remote_stylesheets=False)
    return html


def render_text(digest: Digest, links: ReviewLinks) -> str:
    template = environment().get_template("email/digest.txt")
    return template.render(**_context(digest, links, lambda p, s: None))


def build_message(
    digest: Digest, links: ReviewLinks, thumbnailer: Thumbnailer, mail_from: str
) -> EmailMessage:
    """multipart/alternative: text, then multipart/related (HTML + inline JPEG thumbnails)."""
    images = InlineImages(thumbnailer)
    html = render_html(digest, links, images, inline=True)
    msg = EmailMessage()
    msg["Subject"] = digest.subject
    msg["From"] = mail_from
    msg["To"] = Address(display_name=digest.reviewer.name, addr_spec=digest.reviewer.email)
    msg["Message-ID"] = digest.message_id
    msg["Date"] = format_datetime(digest.created_at.astimezone(UTC))
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Artwatch-Alert"] = f"{digest.alert_id} {digest.kind}"
    msg.set_content(render_text(digest, links), cte="quoted-printable")
    msg.add_alternative(html, subtype="html", cte="quoted-printable")
    html_part = msg.get_payload()[1]
    for cid, data in images.parts.items():
        html_part.add_related(
            data, "image", "jpeg", cid=f"<{cid}>", disposition="inline",
            filename=cid.split("@")[0] + ".jpg",
        )
    return msg
