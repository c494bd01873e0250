"""What each house style sends: server-rendered HTML, a JSON API, or a script-built page.

Rendering is kept apart from the HTTP plumbing so the three styles read side by side.
"""

from __future__ import annotations

import html
import json
from typing import Any

from artwatch.demo.auction_house.model import Lot

_SYMBOL = {"GBP": "£", "EUR": "€", "USD": "$"}
BLANK_GIF = "data:image/gif;base64,R0lGODlhAQABAAAAACwAAAAAAQABAAA="


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def photo_path(key: str) -> str:
    """The URL path a photo key is served at (absolute URLs pass through)."""
    return key if "://" in key else f"/photos/{key}.jpg"


def absolute(base: str, key: str) -> str:
    """The absolute URL of a photo key on the house at `base`."""
    return key if "://" in key else base + photo_path(key)


def page(title: str, body: str, head: str = "") -> str:
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{esc(title)}</title>{head}</head><body>{body}</body></html>"
    )


# --- Style 1: server-rendered HTML ---------------------------------------------------------


def html_home(house: str, sales: list[str]) -> str:
    links = "".join(
        f'<li><a class="sale" href="/sale/{esc(s)}">Sale {esc(s)}</a></li>' for s in sales
    )
    return page(house, f"<h1>{esc(house)}</h1><ul class=sales>{links}</ul>")


def html_sale(
    house: str, sale_id: str, lots: list[Lot], page_no: int, pages: int, hidden: list[Lot]
) -> str:
    items = "".join(
        f'<li class="lot-card"><a class="lot-link" href="/lot/{esc(lot.lot_id)}/{esc(lot.slug)}">'
        f"Lot {lot.number}: {esc(lot.title)}</a></li>"
        for lot in lots
    )
    items += "".join(
        f'<li class="lot-card"><a class="lot-link" href="/private/lot/{esc(lot.lot_id)}">'
        f"{esc(lot.title)}</a></li>"
        for lot in hidden
    )
    nav = ""
    if page_no > 1:
        nav += f'<a rel="prev" href="/sale/{esc(sale_id)}?page={page_no - 1}">Previous</a>'
    if page_no < pages:
        nav += f'<a rel="next" class="next" href="/sale/{esc(sale_id)}?page={page_no + 1}">Next</a>'
    return page(
        f"{house} sale {sale_id} page {page_no}",
        f"<h1>Sale {esc(sale_id)}</h1><ul class=lots>{items}</ul><nav>{nav}</nav>",
    )


def _json_ld(lot: Lot, base: str) -> str:
    data = {
        "@context": "https://schema.org",
        "@type": "Product",
        "sku": lot.lot_id,
        "name": lot.title,
        "description": lot.description,
        "image": [absolute(base, k) for k in lot.photos],
        "offers": {
            "@type": "Offer",
            "price": lot.estimate_low,
            "priceCurrency": lot.currency,
            "availabilityStarts": lot.sale_date.isoformat(),
            "priceSpecification": {
                "@type": "PriceSpecification",
                "minPrice": lot.estimate_low,
                "maxPrice": lot.estimate_high,
                "priceCurrency": lot.currency,
            },
            "seller": {"@type": "Organization", "name": lot.seller},
        },
    }
    return json.dumps(data).replace("</", "<\\/")


def _gallery(lot: Lot) -> str:
    """Photos the three ways sites write them: src, srcset (largest wins), lazy data-src."""
    tags = []
    for i, key in enumerate(lot.photos):
        url = photo_path(key)
        if i % 3 == 0:
            tags.append(f'<img src="{esc(url)}" alt="">')
        elif i % 3 == 1:
            small = url + "?w=160"
            tags.append(f'<img src="{esc(small)}" srcset="{esc(small)} 160w, {esc(url)} 1280w">')
        else:
            tags.append(f'<img class="lazy" src="{BLANK_GIF}" data-src="{esc(url)}">')
    return "".join(tags)


def html_lot(house: str, lot: Lot, base: str) -> str:
    symbol = _SYMBOL.get(lot.currency, lot.currency + " ")
    body = (
        f'<article class="lot" data-lot-id="{esc(lot.lot_id)}">'
        f'<h1 class="lot-title">{esc(lot.title)}</h1>'
        f'<p class="lot-number">Lot {lot.number}</p>'
        f'<div class="description"><p>{esc(lot.description)}</p></div>'
        f'<p class="estimate" data-low="{lot.estimate_low}" data-high="{lot.estimate_high}" '
        f'data-currency="{esc(lot.currency)}">Estimate {symbol}{lot.estimate_low:,}'
        f" – {symbol}{lot.estimate_high:,}</p>"
        f'<p>Sale <time class="sale-date" datetime="{lot.sale_date.isoformat()}">'
        f"{lot.sale_date:%d %B %Y}</time></p>"
        f'<p class="seller">{esc(lot.seller)}</p>'
        f'<div class="gallery">{_gallery(lot)}</div></article>'
    )
    head = f'<script type="application/ld+json">{_json_ld(lot, base)}</script>'
    if lot.broken_markup:
        # Unclosed tags, a stray attribute quote, JSON-LD that is not JSON, no closing html.
        head = '<script type="application/ld+json">{"@type": "Product", "name": </script>'
        return (
            f"<html><head><title>{esc(lot.title)}</title>{head}<body><div><table><tr><td>"
            + body.replace("</p>", "").replace("</div>", "", 1)
            + '<p class="oops" data-x="unterminated><span>'
        )
    return page(f"{house}: {lot.title}", body, head)


# --- Style 2: JSON API ---------------------------------------------------------------------


def api_lot(lot: Lot, base: str) -> dict[str, Any]:
    return {
        "id": lot.lot_id,
        "number": lot.number,
        "title": lot.title,
        "description": lot.description,
        "estimate": {"low": lot.estimate_low, "high": lot.estimate_high, "currency": lot.currency},
        "sale": {"id": lot.sale_id, "date": lot.sale_date.isoformat()},
        "seller": lot.seller,
        "url": f"{base}/lots/{lot.lot_id}",
        "photos": [{"url": absolute(base, k)} for k in lot.photos],
    }


def spa_shell(house: str) -> str:
    """What a plain fetch of a single-page-app lot URL sees: no lot data at all."""
    return page(house, '<div id="app">Loading…</div><script src="/static/app.js"></script>')


# --- Style 3: JavaScript-rendered ----------------------------------------------------------

JS_APP = r"""
(function () {
  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    for (var k in attrs) { e.setAttribute(k, attrs[k]); }
    if (text !== undefined) { e.textContent = text; }
    return e;
  }
  function card(lot) {
    var a = el('article', {'class': 'lot', 'data-lot-id': lot.id});
    var link = el('a', {'class': 'lot-link', 'href': '/lot/' + lot.id});
    link.appendChild(el('h2', {'class': 'lot-title'}, lot.title));
    a.appendChild(link);
    a.appendChild(el('p', {'class': 'lot-number'}, 'Lot ' + lot.number));
    a.appendChild(el('p', {'class': 'description'}, lot.description));
    a.appendChild(el('p', {'class': 'estimate', 'data-low': lot.estimate.low,
      'data-high': lot.estimate.high, 'data-currency': lot.estimate.currency},
      lot.estimate.low + '-' + lot.estimate.high + ' ' + lot.estimate.currency));
    a.appendChild(el('time', {'class': 'sale-date', 'datetime': lot.sale.date}, lot.sale.date));
    a.appendChild(el('p', {'class': 'seller'}, lot.seller));
    var g = el('div', {'class': 'gallery'});
    lot.photos.forEach(function (p) { g.appendChild(el('img', {'src': p.url, 'alt': ''})); });
    a.appendChild(g);
    return a;
  }
  var root = document.getElementById('lots');
  var src = root.getAttribute('data-src');
  fetch(src).then(function (r) { return r.json(); }).then(function (data) {
    data.lots.forEach(function (lot) { root.appendChild(card(lot)); });
    if (data.next) {
      var nav = document.getElementById('nav');
      nav.appendChild(el('a', {'class': 'next', 'href': data.next}, 'Next'));
    }
    root.setAttribute('data-ready', '1');
  });
})();
"""


def js_shell(house: str, data_src: str) -> str:
    """A page whose lots only exist after its script has run."""
    return page(
        house,
        f'<h1>{esc(house)}</h1><div id="lots" data-src="{esc(data_src)}"></div>'
        '<nav id="nav"></nav><script src="/static/app.js"></script>',
    )
