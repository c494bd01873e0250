"""Reading lot fields out of HTML: CSS selectors, and photos the ways pages write them.

Structured data (JSON-LD, microdata, RDFa) is read by `crawler.structured`; prices are
read by `crawler.prices` (in the validation pipeline, for every spider alike).

A photo on a page is one picture with several candidate URLs, best first:
1. an explicit full-size link (`data-zoom-image`, WooCommerce's `data-large_image`);
2. every srcset candidate of the picture - the `<img>`'s `srcset`, the lazy-loaders'
   `data-srcset` / `data-lazy-srcset`, and each `<source>` of an enclosing `<picture>`
   (types artwatch cannot store skipped) - largest first (`crawler.srcset`);
3. the plain sources: lazy `data-src` / `data-lazy-src` / `data-original` / `data-lazy`,
   then `src`.
`data:` placeholders are ignored; relative URLs are resolved against the document's base
URL (`<base href>`). The photo pipeline fetches the first candidate and moves to the next
when one is missing (404) or is not a usable image.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import urljoin

from parsel import Selector, SelectorList

from crawler.srcset import Candidate, largest_first, parse_srcset

_FULL_SIZE_ATTRS = ("data-zoom-image", "data-large_image")
_SRCSET_ATTRS = ("data-srcset", "data-lazy-srcset", "srcset")
_SRC_ATTRS = ("data-src", "data-lazy-src", "data-original", "data-lazy", "src")
# <source type> values whose photos the image store accepts (docs/images.md).
_STORABLE_TYPES = frozenset({
    "image/jpeg", "image/jpg", "image/pjpeg", "image/png", "image/webp", "image/avif",
    "image/gif", "image/heic", "image/heif", "image/tiff",
})
_NOT_A_PHOTO = ("data:", "javascript:", "about:", "#")


def _usable(url: str | None) -> str | None:
    url = (url or "").strip()
    return url if url and not url.lower().startswith(_NOT_A_PHOTO) else None


def picture_candidates(element: Selector) -> list[str]:
    """Candidate URLs (as written, best first) of one `<img>` or `<picture>` element."""
    # lxml's own tree walk, not XPath: this runs for every photo of every lot page.
    # libxml2's HTML parser does not know <source> is empty: it nests what follows inside
    # it, so a picture's <img> and <source>s are found as descendants, not children.
    node = element.root
    if not hasattr(node, "iterancestors"):
        return []
    if node.tag == "picture":
        picture, images = node, list(node.iter("img"))[:1]
    else:
        picture, images = next(node.iterancestors("picture"), None), [node]
    sources = list(picture.iter("source")) if picture is not None else []
    full: list[str] = []
    sized: list[Candidate] = []
    plain: list[str] = []
    for tag in [*sources, *images]:
        attrib = tag.attrib
        if tag.tag == "source":
            media_type = (attrib.get("type") or "").split(";")[0].strip().lower()
            if media_type and media_type not in _STORABLE_TYPES:
                continue
        full += [attrib[a] for a in _FULL_SIZE_ATTRS if attrib.get(a)]
        for attr in _SRCSET_ATTRS:
            if attrib.get(attr):
                sized += [c for c in parse_srcset(attrib[attr]) if _usable(c.url)]
        plain += [attrib[a] for a in _SRC_ATTRS if attrib.get(a)]
    ordered = [_usable(url) for url in [*full, *largest_first(sized), *plain]]
    return list(dict.fromkeys(url for url in ordered if url))


def _absolute(base_url: str, url: str) -> str:
    # Most photo URLs in structured data are absolute already: urljoin is the costly part.
    return url if url.startswith(("http://", "https://")) else urljoin(base_url, url)


def photo_candidates(
    elements: SelectorList | Iterable[Selector],
    base_url: str,
    extra: Iterable[list[str]] = (),
) -> list[list[str]]:
    """One list of absolute http(s) candidate URLs per photo, in page order.

    `elements` are the page's photo elements (`<img>` or `<picture>`), `base_url` the
    document's base URL, `extra` photos found elsewhere (structured data), after them.
    A photo whose first URL is already a candidate of an earlier photo is the same
    picture and is left out.
    """
    photos: list[list[str]] = []
    seen: set[str] = set()
    raw = [picture_candidates(element) for element in elements] + [list(e) for e in extra]
    for candidates in raw:
        absolute = list(dict.fromkeys(
            url for url in (_absolute(base_url, c) for c in candidates)
            if url.startswith(("http://", "https://"))
        ))
        if not absolute or absolute[0] in seen:
            continue
        seen.update(absolute)
        photos.append(absolute)
    return photos


def css_value(scope: Selector | SelectorList, selector: str) -> str | None:
    """Text of a CSS selector (`::text`, `::attr(x)` or element text), whitespace-collapsed."""
    if not selector:
        return None
    found = scope.css(selector)
    if not selector.endswith(")") and "::" not in selector:
        found = found.xpath(".//text()")
    text = " ".join(t.strip() for t in found.getall() if t and t.strip())
    return re.sub(r"\s+", " ", text) or None


FIELDS = (
    "external_id", "title", "description", "price", "currency", "estimate_low",
    "estimate_high", "estimate", "sale_date", "seller", "lot_number", "url",
)


def lot_fields(scope: Selector, selectors: dict[str, str]) -> dict[str, Any]:
    """Lot fields read with the source's CSS selectors (missing selectors give None).

    `estimate` is a range as one text (`Estimate 1.200 – 1.500 €`); the validation
    pipeline splits it into `estimate_low` / `estimate_high`.
    """
    return {name: css_value(scope, selectors[name]) for name in FIELDS if selectors.get(name)}
