"""The local auction house: one real HTTP server on loopback per house.

Each house listens on its own port of 127.0.0.1, so robots.txt, rate limits and Scrapy's
per-domain politeness apply per house exactly as they would per site. The server keeps a
log of request paths so tests can prove what the crawler did (and did not) fetch.
"""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from artwatch.demo.auction_house import pages
from artwatch.demo.auction_house.model import (
    DEAD_PHOTO,
    NOT_AN_IMAGE,
    REDIRECT,
    REDIRECT_UNSAFE,
    UNSAFE_PHOTO_URL,
    HouseConfig,
    HouseModel,
    Lot,
)
from artwatch.demo.auction_house.photos import Catalogue, PhotoCache

ROBOTS = {
    "html": "User-agent: *\nDisallow: /private/\n",
    "api": "User-agent: *\nDisallow: /api/internal/\nDisallow: /private/\n",
    "js": "User-agent: *\nDisallow: /private/\n",
}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    house: AuctionHouse


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib name
        return  # the house keeps its own log

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in one write (below); without TCP_NODELAY a response
        # that does not fill a segment can still wait for the peer's delayed ACK (~40 ms).
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        status, ctype, body, headers = self.server.house.handle(self.path)
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        # One write for headers + body: two small writes (headers, then body) make Nagle's
        # algorithm hold the body until the client's delayed ACK, ~40 ms per response.
        self._headers_buffer.append(b"\r\n")
        self._headers_buffer.append(body)
        self.flush_headers()


Response = tuple[int, str, bytes, dict[str, str]]


def _html(text: str, status: int = 200) -> Response:
    return status, "text/html; charset=utf-8", text.encode(), {}


def _json(data: object, status: int = 200) -> Response:
    return status, "application/json", json.dumps(data).encode(), {}


NOT_FOUND: Response = (404, "text/html; charset=utf-8", b"<h1>Not found</h1>", {})


class AuctionHouse:
    """One house (model + server). `start()` returns its base URL; `stop()` shuts it down."""

    def __init__(self, config: HouseConfig, catalogue: Catalogue | None = None) -> None:
        self.config = config
        self.catalogue = catalogue
        self.model = HouseModel(config, accessions=catalogue.accessions if catalogue else [])
        self.photos = PhotoCache(catalogue, config.photo_size)
        self.log: list[str] = []  # request paths, in arrival order
        self.log_times: list[float] = []  # time.monotonic() of each, same order
        self.status_counts: dict[int, int] = {}
        self._recent: deque[float] = deque()
        self._tripped: set[str] = set()
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._index()

    def _index(self) -> None:
        self._photo_shows: dict[str, str | None] = {}
        for lot in self.model.lots:
            for key in lot.photos:
                self._photo_shows[key] = lot.shows

    # Lifecycle ------------------------------------------------------------------------------

    def start(self, port: int = 0) -> str:
        server = _Server(("127.0.0.1", port), _Handler)
        server.house = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, name=f"house-{self.config.name}", daemon=True
        )
        self._thread.start()
        return self.base_url

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def port(self) -> int:
        assert self._server is not None, "house not started"
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def advance(self) -> None:
        """Next generation (changing photos, new lots), as if time passed between crawls."""
        with self._lock:
            self.model.advance()
            self._index()

    # What crawlers see -----------------------------------------------------------------------

    @property
    def start_url(self) -> str:
        return {
            "html": f"{self.base_url}/",
            "api": f"{self.base_url}/api/lots",
            "js": f"{self.base_url}/catalogue?page=1",
        }[self.config.style]

    def lot_url(self, lot: Lot) -> str:
        """The public URL of a lot page (what a person would paste into `artwatch submit`)."""
        return {
            "html": f"{self.base_url}/lot/{lot.lot_id}/{lot.slug}",
            "api": f"{self.base_url}/lots/{lot.lot_id}",
            "js": f"{self.base_url}/lot/{lot.lot_id}",
        }[self.config.style]

    def photo_url(self, key: str) -> str:
        return key if "://" in key else self.base_url + pages.photo_path(key)

    # Request handling -----------------------------------------------------------------------

    def _rate_limited(self) -> bool:
        limit = self.config.rate_limit
        if not limit:
            return False
        now = time.monotonic()
        with self._lock:
            while self._recent and now - self._recent[0] > 1.0:
                self._recent.popleft()
            if len(self._recent) >= limit:
                return True
            self._recent.append(now)
        return False

    def _first_hit_429(self, path: str) -> bool:
        if not self.config.first_hit_429:
            return False
        with self._lock:
            if path in self._tripped:
                return False
            self._tripped.add(path)
        return True

    def handle(self, raw_path: str) -> Response:
        with self._lock:
            self.log.append(raw_path)
            self.log_times.append(time.monotonic())
        parts = urlsplit(raw_path)
        path, query = parts.path, parse_qs(parts.query)
        if self._rate_limited():
            response: Response = (429, "text/plain", b"slow down", {})
        else:
            try:
                response = self._route(path, query, raw_path)
            except (ValueError, KeyError, IndexError):
                response = (400, "text/plain", b"bad request", {})
        if response[0] == 429:
            response[3].setdefault("Retry-After", str(self.config.retry_after))
        with self._lock:
            self.status_counts[response[0]] = self.status_counts.get(response[0], 0) + 1
        return response

    def _route(self, path: str, query: dict[str, list[str]], raw: str) -> Response:
        if path == "/robots.txt":
            return 200, "text/plain", ROBOTS[self.config.style].encode(), {}
        if path.startswith("/photos/") and path.endswith(".jpg"):
            return self._photo(path[len("/photos/") : -len(".jpg")])
        if path.startswith("/private/"):
            return _html(pages.page("private", "<h1>Staff only</h1>"))
        style = self.config.style
        if style == "html":
            return self._route_html(path, query, raw)
        if style == "api":
            return self._route_api(path, query, raw)
        return self._route_js(path, query, raw)

    def _photo(self, key: str) -> Response:
        if key.startswith(DEAD_PHOTO):
            return NOT_FOUND
        if key == REDIRECT_UNSAFE:
            return 302, "text/plain", b"", {"Location": UNSAFE_PHOTO_URL}
        if key.startswith(REDIRECT):
            return 302, "text/plain", b"", {"Location": pages.photo_path(key[len(REDIRECT):])}
        if key == NOT_AN_IMAGE:
            return 200, "image/jpeg", b"<html><body>Image moved</body></html>", {}
        if key not in self._photo_shows:
            return NOT_FOUND
        data = self.photos.get(key, self._photo_shows[key])
        ctype = "image/png" if data[:4] == b"\x89PNG" else "image/jpeg"
        return 200, ctype, data, {"Cache-Control": "max-age=86400"}

    def _page_of(self, lots: list[Lot], query: dict[str, list[str]]) -> tuple[list[Lot], int, int]:
        per = self.config.per_page
        pages_total = max(1, -(-len(lots) // per))
        page_no = int(query.get("page", ["1"])[0])
        if not 1 <= page_no <= pages_total:
            raise ValueError("page out of range")
        return lots[(page_no - 1) * per : page_no * per], page_no, pages_total

    def _route_html(self, path: str, query: dict[str, list[str]], raw: str) -> Response:
        model = self.model
        if path in ("/", "/sales"):
            return _html(pages.html_home(self.config.name, model.sales()))
        if path.startswith("/sale/"):
            sale_id = path.split("/")[2]
            lots = model.sale_lots(sale_id)
            if not lots:
                return NOT_FOUND
            chunk, page_no, total = self._page_of(lots, query)
            if page_no == 2 and self._first_hit_429(raw):
                return 429, "text/plain", b"too many requests", {}
            hidden = model.hidden_lots if page_no == 1 and sale_id == model.sales()[0] else []
            return _html(pages.html_sale(self.config.name, sale_id, chunk, page_no, total, hidden))
        if path.startswith("/lot/"):
            lot = model.lot(path.split("/")[2])
            if lot is None or lot.hidden:
                return NOT_FOUND
            return _html(pages.html_lot(self.config.name, lot, self.base_url))
        return NOT_FOUND

    @staticmethod
    def _cursor(offset: int) -> str:
        return base64.urlsafe_b64encode(f"o:{offset}".encode()).decode().rstrip("=")

    @staticmethod
    def _offset(cursor: str) -> int:
        padded = cursor + "=" * (-len(cursor) % 4)
        text = base64.urlsafe_b64decode(padded.encode()).decode()
        if not text.startswith("o:"):
            raise ValueError("bad cursor")
        return int(text[2:])

    def _route_api(self, path: str, query: dict[str, list[str]], raw: str) -> Response:
        model = self.model
        if path == "/api/lots":
            offset = self._offset(query["cursor"][0]) if "cursor" in query else 0
            limit = min(int(query.get("limit", [str(self.config.per_page)])[0]), 100)
            lots = model.public_lots
            if offset and offset == limit and self._first_hit_429(raw):
                return 429, "application/json", b'{"error": "rate limited"}', {}
            chunk = lots[offset : offset + limit]
            nxt = self._cursor(offset + limit) if offset + limit < len(lots) else None
            return _json(
                {"lots": [pages.api_lot(lot, self.base_url) for lot in chunk], "next_cursor": nxt}
            )
        if path.startswith("/api/lots/"):
            lot = model.lot(path.split("/")[3])
            if lot is None or lot.hidden:
                return _json({"error": "not found"}, 404)
            return _json(pages.api_lot(lot, self.base_url))
        if path.startswith("/lots/") or path == "/":
            return _html(pages.spa_shell(self.config.name))
        if path == "/static/app.js":
            return 200, "application/javascript", b"/* app bundle */", {}
        return NOT_FOUND

    def _route_js(self, path: str, query: dict[str, list[str]], raw: str) -> Response:
        model = self.model
        if path == "/static/app.js":
            return 200, "application/javascript", pages.JS_APP.encode(), {}
        if path in ("/", "/catalogue"):
            page_no = int(query.get("page", ["1"])[0])
            if page_no == 2 and self._first_hit_429(raw):
                return 429, "text/plain", b"too many requests", {}
            return _html(pages.js_shell(self.config.name, f"/data/page/{page_no}.json"))
        if path.startswith("/data/page/"):
            chunk, page_no, total = self._page_of(
                model.public_lots, {"page": [path.split("/")[3].removesuffix(".json")]}
            )
            nxt = f"/catalogue?page={page_no + 1}" if page_no < total else None
            lots = [pages.api_lot(lot, self.base_url) for lot in chunk]
            return _json({"lots": lots, "next": nxt})
        if path.startswith("/data/lot/"):
            lot = model.lot(path.split("/")[3].removesuffix(".json"))
            if lot is None or lot.hidden:
                return _json({"lots": [], "next": None}, 404)
            return _json({"lots": [pages.api_lot(lot, self.base_url)], "next": None})
        if path.startswith("/lot/"):
            lot_id = path.split("/")[2]
            return _html(pages.js_shell(self.config.name, f"/data/lot/{lot_id}.json"))
        return NOT_FOUND


def start_houses(
    configs: list[HouseConfig], catalogue_dir: Path | None = None
) -> dict[str, AuctionHouse]:
    """Start several houses sharing one catalogue; returns them by name (call .stop())."""
    catalogue = Catalogue(catalogue_dir) if catalogue_dir else None
    houses = {}
    for config in configs:
        house = AuctionHouse(config, catalogue)
        house.start()
        houses[config.name] = house
    return houses


def default_configs(seed: int = 0, lots: int = 30) -> list[HouseConfig]:
    """The three styles the demo and tests use."""
    return [
        HouseConfig(name="meridian", style="html", seed=seed, lots=lots),
        HouseConfig(name="lotstream", style="api", seed=seed, lots=lots),
        HouseConfig(name="gavelscript", style="js", seed=seed, lots=lots),
    ]
