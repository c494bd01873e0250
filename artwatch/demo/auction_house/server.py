"""The local auction house: one real HTTP server on loopback per house.

Each house listens on its own port of 127.0.0.1, so robots.txt, rate limits and Scrapy's
per-domain politeness apply per house exactly as they would per site. The server keeps a
log of request paths so tests can prove what the crawler did (and did not) fetch.
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import threading
import time
from collections import deque
from http import HTTPStatus
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


_REASONS = {status.value: status.phrase for status in HTTPStatus}
_MAX_HEAD = 64 * 1024


class _HttpProtocol(asyncio.Protocol):
    """Minimal HTTP/1.1 for the house: GET, keep-alive, whole responses in one write.

    One event-loop thread serves every connection. The standard library's
    ThreadingHTTPServer ran a thread per keep-alive connection (32 under a politeness-off
    crawl) whose interpreter-lock hand-offs cost more CPU than the responses; on the
    2-core benchmark machine the house's CPU is the crawler's loss.
    """

    def __init__(self, house: AuctionHouse) -> None:
        self.house = house
        self.buffer = b""
        self.transport: asyncio.Transport | None = None
        self.closing = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.house._connections.add(transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:  # a response smaller than a segment must not wait for an ACK
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while not self.closing and b"\r\n\r\n" in self.buffer:
            head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
            self._request(head)
        if len(self.buffer) > _MAX_HEAD and not self.closing:
            self._reply(431, "text/plain", b"request header too large", {}, close=True)

    def _request(self, head: bytes) -> None:
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split()
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            self._reply(400, "text/plain", b"bad request", {}, close=True)
            return
        method, target, version = parts
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        try:
            length = int(headers.get("content-length") or 0)
        except ValueError:
            self._reply(400, "text/plain", b"bad content-length", {}, close=True)
            return
        if length:  # the house takes no bodies: skip one if sent
            self.buffer = self.buffer[length:]
        close = (headers.get("connection", "").lower() == "close"
                 or (version == "HTTP/1.0"
                     and headers.get("connection", "").lower() != "keep-alive"))
        if method not in ("GET", "HEAD"):
            self._reply(501, "text/plain", b"not implemented", {}, close=close)
            return
        status, ctype, body, extra = self.house.handle(target)
        self._reply(status, ctype, body, extra, close=close, head_only=method == "HEAD")

    def _reply(self, status: int, ctype: str, body: bytes, extra: dict[str, str], *,
               close: bool, head_only: bool = False) -> None:
        assert self.transport is not None
        lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}",
                 "Server: artwatch-auction-house", f"Content-Type: {ctype}",
                 f"Content-Length: {len(body)}"]
        lines += [f"{name}: {value}" for name, value in extra.items()]
        if close:
            lines.append("Connection: close")
        # Headers and body in one write: two small writes would let Nagle's algorithm hold
        # the body back until the client's delayed ACK (~40 ms per response).
        self.transport.write("\r\n".join(lines).encode("latin-1") + b"\r\n\r\n"
                             + (b"" if head_only else body))
        if close:
            self.closing = True
            self.transport.close()  # connection_lost() forgets it

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        if self.transport is not None:
            self.house._connections.discard(self.transport)


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
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connections: set[asyncio.Transport] = set()
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None
        self._index()

    def _index(self) -> None:
        self._photo_shows: dict[str, str | None] = {}
        for lot in self.model.lots:
            for key in lot.photos:
                self._photo_shows[key] = lot.shows

    # Lifecycle ------------------------------------------------------------------------------

    def start(self, port: int = 0) -> str:
        """Listen on 127.0.0.1 (`port` 0: any free one) in a thread of its own."""
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            self._server = loop.run_until_complete(loop.create_server(
                lambda: _HttpProtocol(self), "127.0.0.1", port, backlog=128, reuse_address=True
            ))
        except OSError:  # the port is taken
            loop.close()
            self._loop = None
            raise
        self._thread = threading.Thread(
            target=loop.run_forever, name=f"house-{self.config.name}", daemon=True
        )
        self._thread.start()
        return self.base_url

    def stop(self) -> None:
        if self._loop is None or self._server is None:
            return
        loop, server = self._loop, self._server

        async def shut() -> None:
            server.close()
            for transport in list(self._connections):  # keep-alive connections too
                transport.close()
            await asyncio.sleep(0.05)  # let the closes complete
            loop.stop()

        loop.call_soon_threadsafe(lambda: asyncio.ensure_future(shut()))
        if self._thread is not None:
            self._thread.join(10)
        loop.close()
        self._loop = self._server = self._thread = None

    @property
    def port(self) -> int:
        assert self._server is not None, "house not started"
        return int(self._server.sockets[0].getsockname()[1])

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
    configs: list[HouseConfig], catalogue_dir: Path | None = None,
    ports: dict[str, int] | None = None,
) -> dict[str, AuctionHouse]:
    """Start several houses sharing one catalogue; returns them by name (call .stop()).

    `ports` asks for a port per house (the demo keeps its URLs from run to run); a port
    that is taken falls back to any free one.
    """
    catalogue = Catalogue(catalogue_dir) if catalogue_dir else None
    houses = {}
    for config in configs:
        house = AuctionHouse(config, catalogue)
        try:
            house.start((ports or {}).get(config.name, 0))
        except OSError:
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
