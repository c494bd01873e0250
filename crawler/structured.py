"""The lot a page describes in schema.org structured data: JSON-LD, microdata or RDFa.

Real pages publish a lot in many shapes, and each shape must give the same lot fields:

- JSON-LD blocks are read one by one and leniently: the type may carry parameters
  (`application/ld+json; charset=utf-8`), a block may be wrapped in an HTML comment or
  CDATA, end in a stray `;`, hold two objects back to back, or carry JS comments and
  trailing commas. A block that still cannot be read is reported (`problems`) and never
  hides the other blocks of the page.
- Entities are flattened: `@graph` arrays, entities nested in others (a Product as a
  WebPage's `mainEntity`, an Offer's `itemOffered`), and `{"@id": ...}` references.
- The lot is the first node typed as a schema.org Product or one of its subtypes (also
  in a multi-typed node, `["Product", "VisualArtwork"]`); failing that, an artwork
  (`VisualArtwork`, `Painting`, `Sculpture`, ...), failing that a plain `CreativeWork`
  - never a WebPage or an Organization.
- Offers: one Offer, a list of them, an AggregateOffer (low/high), a priceSpecification
  (min/max); an Offer that names the lot as its `itemOffered` counts as the lot's.
- Photos: strings, lists, nested lists, ImageObjects (`url`, then `contentUrl`, then
  `thumbnailUrl`: each photo keeps the others as fallback candidates) and references.
  Relative URLs are resolved against the document's base URL (`<base href>`).

Microdata (extruct, `uniform=True`) and RDFa (extruct/pyRdfa, expanded JSON-LD that is
compacted here) go through the same node logic. Microdata is read only when the page has
`itemscope` and JSON-LD gave no lot, RDFa only when the page has `typeof` and neither
gave one: the common case costs one JSON-LD pass.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin

import jstyleson
from parsel import Selector

logger = logging.getLogger(__name__)

PRODUCT_TYPES = frozenset({
    "Product", "IndividualProduct", "ProductCollection", "ProductGroup", "ProductModel",
    "SomeProducts", "Vehicle", "Car", "Motorcycle", "BusOrCoach", "MotorizedBicycle",
    "DietarySupplement", "Drug",
})
ARTWORK_TYPES = frozenset({
    "VisualArtwork", "Painting", "Sculpture", "Photograph", "Drawing", "CoverArt",
    "ComicCoverArt",
})
OFFER_TYPES = frozenset({"Offer", "AggregateOffer", "OfferForPurchase", "Demand"})
_RANK = ((PRODUCT_TYPES, 0), (ARTWORK_TYPES, 1), (frozenset({"CreativeWork"}), 2))
_IMAGE_KEYS = ("url", "contentUrl", "thumbnailUrl")  # best first, the thumbnail last
_MAX_NODES = 5000  # a hostile page cannot make flattening run away

# What pages wrap a block in (the whole block only): HTML comments and CDATA, perhaps //-ed.
_OPENING = re.compile(r"^(?:\s*(?://\s*)?(?:<!--|<!\[CDATA\[))+")
_CLOSING = re.compile(r"(?:(?://\s*)?(?:-->|\]\]>)\s*)+$")


@dataclass
class StructuredLot:
    """Lot fields read from structured data (raw values, as the page wrote them).

    `photos` holds one list of candidate URLs (absolute, best first) per photo;
    `problems` are (reason, detail) pairs about the page's structured data.
    """

    fields: dict[str, Any] = field(default_factory=dict)
    photos: list[list[str]] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)
    syntax: str | None = None  # "json-ld" | "microdata" | "rdfa": where the lot was found

    @property
    def found(self) -> bool:
        return self.syntax is not None


# --- reading -----------------------------------------------------------------------------


def load_json_ld(text: str) -> list[Any]:
    """The JSON values of one JSON-LD block, read leniently; ValueError if none.

    Tries, in turn: plain JSON (control characters inside strings allowed), a stream of
    values separated by `;`/`,`/whitespace (a stray `;`, two objects back to back), and
    the same after removing JS comments and trailing commas (jstyleson, as extruct does).
    """
    body = _CLOSING.sub("", _OPENING.sub("", text.strip())).strip()
    if not body:
        raise ValueError("empty block")
    try:
        return [json.loads(body, strict=False)]
    except (ValueError, RecursionError):
        pass
    try:
        return _values(body)
    except (ValueError, RecursionError) as first:
        try:
            return _values(jstyleson.dispose(body))
        except (ValueError, RecursionError):
            raise ValueError(str(first)) from None


def _values(text: str) -> list[Any]:
    decoder = json.JSONDecoder(strict=False)
    values: list[Any] = []
    position, end = 0, len(text)
    while True:
        while position < end and text[position] in " \t\r\n;,":
            position += 1
        if position >= end:
            return values
        value, position = decoder.raw_decode(text, position)
        values.append(value)


def json_ld_blocks(selector: Selector) -> tuple[list[Any], list[str]]:
    """(values of every readable JSON-LD block, one message per unreadable block)."""
    values: list[Any] = []
    problems: list[str] = []
    number = 0
    root = selector.root
    if not hasattr(root, "iter"):
        return values, problems
    for script in root.iter("script"):  # lxml's walk: cheaper than an XPath per page
        media_type = (script.get("type") or "").split(";")[0].strip().lower()
        if media_type != "application/ld+json":
            continue
        number += 1
        try:
            values.extend(load_json_ld(script.text or ""))
        except ValueError as exc:
            problems.append(f"JSON-LD block {number}: {exc}")
    return values, problems


def _has(selector: Selector, attribute: str) -> bool:
    return selector.xpath(f"boolean(//*[@{attribute}])").get() == "1"


def _microdata(selector: Selector, base_url: str) -> list[Any]:
    import extruct

    return extruct.extract(selector.root, base_url=base_url, syntaxes=["microdata"],
                           errors="strict", uniform=True).get("microdata", [])


def _rdfa(html: str, base_url: str) -> list[Any]:
    from extruct.rdfa import RDFaExtractor

    return compact_rdfa(RDFaExtractor().extract(html, base_url=base_url))


def compact_rdfa(nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """pyRdfa's expanded JSON-LD (full IRIs, `[{"@value": ...}]`) as plain nodes."""
    out = []
    for node in nodes:
        compact: dict[str, Any] = {}
        for key, value in node.items():
            if key in ("@id", "@type"):
                compact[key] = value
                continue
            values = [v.get("@value", v) if isinstance(v, dict) and "@value" in v else v
                      for v in (value if isinstance(value, list) else [value])]
            compact[_local(key)] = values[0] if len(values) == 1 else values
        out.append(compact)
    return out


# --- flattening and choosing ---------------------------------------------------------------


def _local(name: str) -> str:
    """`https://schema.org/Product`, `schema:Product`, `Product` -> `Product`."""
    return re.split(r"[/#:]", name.rstrip("/"))[-1]


def types_of(node: dict[str, Any]) -> set[str]:
    raw = node.get("@type")
    return {_local(t) for t in (raw if isinstance(raw, list) else [raw]) if isinstance(t, str)}


class Graph:
    """All nodes of a page's structured data (one syntax), with `@id` references."""

    def __init__(self, values: list[Any]) -> None:
        self.nodes: list[dict[str, Any]] = []
        self._walk(values, 0)
        self.by_id = {
            node["@id"]: node for node in self.nodes
            if isinstance(node.get("@id"), str) and len(node) > 1
        }

    def _walk(self, value: Any, depth: int) -> None:
        if depth > 40 or len(self.nodes) >= _MAX_NODES:
            return
        if isinstance(value, list):
            for entry in value:
                self._walk(entry, depth + 1)
        elif isinstance(value, dict):
            if any(not key.startswith("@") or key == "@type" for key in value):
                self.nodes.append(value)
            for key, entry in value.items():
                if key != "@context" and isinstance(entry, dict | list):
                    self._walk(entry, depth + 1)

    def resolve(self, value: Any) -> Any:
        """A `{"@id": ...}` reference as the node it names (itself when unknown)."""
        if isinstance(value, dict) and set(value) <= {"@id", "@type"} and "@id" in value:
            return self.by_id.get(value["@id"], value)
        return value

    def each(self, value: Any) -> Iterator[Any]:
        """The entries of a property value (one or a list, nested lists flattened)."""
        if isinstance(value, list):
            for entry in value:
                yield from self.each(entry)
        elif value is not None:
            yield self.resolve(value)

    def lot(self) -> dict[str, Any] | None:
        """The node that describes the lot: a Product, else an artwork, else CreativeWork."""
        best: tuple[int, dict[str, Any]] | None = None
        for node in self.nodes:
            types = types_of(node)
            for kinds, rank in _RANK:
                if types & kinds and (best is None or rank < best[0]):
                    best = (rank, node)
                    break
            if best is not None and best[0] == 0:
                break
        return best[1] if best else None

    def offers_of(self, node: dict[str, Any]) -> list[dict[str, Any]]:
        """The node's offers; else offers elsewhere whose itemOffered is this node."""
        found = [o for o in self.each(node.get("offers")) if isinstance(o, dict)]
        if found:
            return found
        node_id = node.get("@id")
        return [
            other for other in self.nodes
            if types_of(other) & OFFER_TYPES and any(
                item is node or (node_id and isinstance(item, dict)
                                 and item.get("@id") == node_id)
                for item in self.each(other.get("itemOffered")))
        ]


# --- fields ---------------------------------------------------------------------------------


def _text(value: Any) -> str | None:
    """A property as text: strings, numbers, `{"@value"}`, the first of a list."""
    if isinstance(value, list):
        for entry in value:
            text = _text(entry)
            if text:
                return text
        return None
    if isinstance(value, dict):
        return _text(value.get("@value", value.get("name", value.get("value"))))
    if isinstance(value, bool) or value is None:
        return None
    text = str(value).strip()
    return text or None


def _value(value: Any) -> Any:
    """A price-like property: numbers stay numbers, anything else becomes text."""
    if isinstance(value, list):
        return next((v for v in map(_value, value) if v is not None), None)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    return _text(value)


def _first(graph: Graph, value: Any, *keys: str) -> Any:
    """The first of `keys` any entry of `value` has (entries resolved)."""
    for entry in graph.each(value):
        if isinstance(entry, dict):
            for key in keys:
                found = _value(entry.get(key))
                if found is not None:
                    return found
    return None


def _offer_fields(graph: Graph, offers: list[dict[str, Any]]) -> dict[str, Any]:
    aggregates = [o for o in offers if "AggregateOffer" in types_of(o)]
    plain = [o for o in offers if o not in aggregates]
    for aggregate in aggregates:  # an AggregateOffer may list its offers inside
        plain += [o for o in graph.each(aggregate.get("offers")) if isinstance(o, dict)]
    priced = [o for o in plain if o.get("price") is not None or o.get("priceSpecification")]
    offer = priced[0] if priced else (plain[0] if plain else {})
    spec = graph.each(offer.get("priceSpecification"))
    spec = next((s for s in spec if isinstance(s, dict)), {})
    aggregate = aggregates[0] if aggregates else {}
    seller = graph.resolve(offer.get("seller") or offer.get("offeredBy")
                           or aggregate.get("seller"))
    return {
        "price": _value(offer.get("price")) if offer.get("price") is not None
        else _value(spec.get("price")),
        "currency": _text(offer.get("priceCurrency")) or _text(spec.get("priceCurrency"))
        or _text(aggregate.get("priceCurrency")),
        "estimate_low": _value(spec.get("minPrice")) or _value(aggregate.get("lowPrice")),
        "estimate_high": _value(spec.get("maxPrice")) or _value(aggregate.get("highPrice")),
        "sale_date": _text(offer.get("availabilityStarts"))
        or _text(aggregate.get("availabilityStarts")),
        "seller": _text(seller),
    }


def _photos(graph: Graph, value: Any, base_url: str) -> list[list[str]]:
    """One candidate list per photo of an `image` property."""
    photos: list[list[str]] = []
    for entry in graph.each(value):
        candidates: list[str] = []
        if isinstance(entry, str):
            candidates = [entry]
        elif isinstance(entry, dict):
            keys = [k for k in _IMAGE_KEYS if entry.get(k)]
            if not keys and set(entry) <= {"@id", "@type"} and isinstance(entry.get("@id"), str):
                candidates = [entry["@id"]]  # an unknown reference is the image's IRI (RDFa)
            for key in keys:
                for url in graph.each(entry[key]):
                    text = url.get("@id") if isinstance(url, dict) else url
                    if isinstance(text, str):
                        candidates.append(text)
        absolute = list(dict.fromkeys(
            urljoin(base_url, c.strip()) for c in candidates if c and c.strip()))
        if absolute:
            photos.append(absolute)
    return photos


def lot_from_graph(graph: Graph, base_url: str) -> tuple[dict[str, Any], list[list[str]]] | None:
    """(fields, photos) of the graph's lot node, or None when it has none."""
    node = graph.lot()
    if node is None:
        return None
    identifier = _first(graph, node.get("identifier"), "value", "@value")
    fields = {
        "external_id": _text(node.get("sku")) or _text(node.get("productID"))
        or (identifier if identifier is not None else _text(node.get("identifier"))),
        "title": _text(node.get("name")) or _text(node.get("headline")),
        "description": _text(node.get("description")),
        **_offer_fields(graph, graph.offers_of(node)),
    }
    return fields, _photos(graph, node.get("image"), base_url)


def structured_lot(
    selector: Selector, base_url: str, html: Callable[[], str] | None = None
) -> StructuredLot:
    """The lot in a page's structured data; empty (`found` False) when there is none.

    `selector` is the response's (its tree is reused, not parsed again), `base_url` the
    document's base URL (`scrapy.utils.response.get_base_url`: honours `<base href>`),
    `html` gives the page's text for RDFa (pyRdfa needs its own DOM). Never raises on bad
    markup: what could not be read is in `problems`.
    """
    result = StructuredLot()
    values, unreadable = json_ld_blocks(selector)
    result.problems += [("structured_data_unreadable", message) for message in unreadable]
    # Each later syntax only when the earlier gave no lot and the page uses it at all.
    readers: list[tuple[str, Callable[[], bool], Callable[[], list[Any]]]] = [
        ("json-ld", lambda: True, lambda: values),
        ("microdata", lambda: _has(selector, "itemscope"),
         lambda: _microdata(selector, base_url)),
        ("rdfa", lambda: html is not None and _has(selector, "typeof"),
         lambda: _rdfa(html(), base_url)),
    ]
    for syntax, used, read in readers:
        if not used():
            continue
        try:
            found = lot_from_graph(Graph(read()), base_url)
        except Exception as exc:  # extruct/pyRdfa raise on some malformed documents
            result.problems.append(("structured_data_unreadable", f"{syntax}: {exc}"))
            continue
        if found is not None:
            result.fields, result.photos = found
            result.syntax = syntax
            break
    return result
