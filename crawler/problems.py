"""What went wrong reading a lot, so that nothing is lost silently.

A lot can be stored and still be missing what artwatch exists for: its photos, or fields
a reviewer needs. Each such problem travels on the item as `{"reason", "detail"}`, is
written to the listing (`listings.problems`, replaced at each crawl of the lot), counted
in the crawl's stats (`artwatch/lot_problems/<reason>`, plus `artwatch/lots_with_problems`
for lots with any) and logged as a warning with the lot's URL (`ListingPipeline`).
"""

from __future__ import annotations

from typing import Any

# A lot page yielded no photo link at all, or none of its photos could be stored.
NO_PHOTO = "no_photo"
# Structured data was expected (the source reads it) but describes no lot on this page:
# the fields came from the CSS selectors alone.
NO_PRODUCT = "no_product"
# A JSON-LD block (or the microdata / RDFa of the page) could not be read; the rest of
# the page's structured data was still used.
STRUCTURED_DATA_UNREADABLE = "structured_data_unreadable"
# A price or estimate was given but could not be read as one unambiguous number; the
# field is stored empty rather than wrong.
PRICE_UNPARSED = "price_unparsed"
# A currency was written that names no single ISO 4217 code (`$` alone, `kr`).
CURRENCY_UNKNOWN = "currency_unknown"

REASONS = (NO_PHOTO, NO_PRODUCT, STRUCTURED_DATA_UNREADABLE, PRICE_UNPARSED, CURRENCY_UNKNOWN)


def add(item: Any, reason: str, detail: str) -> None:
    """Note a problem on an item (a LotItem or a dict); details are kept short."""
    assert reason in REASONS, reason
    problems = item.get("problems") or []
    entry = {"reason": reason, "detail": detail[:500]}
    if entry not in problems:
        problems.append(entry)
    item["problems"] = problems
