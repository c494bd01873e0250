"""A loopback web site serving the lot pages in tests/crawler/lot_pages/ and their photos.

`/` lists every page (`<a class="case">`), `/lot/<name>` serves `lot_pages/<name>.html`
as it is, and each path of `photos` serves a small photo generated for it in the format
given (its bytes differ from every other photo's, so a stored sha256 names the URL it came
from). Anything else answers 404: a page's missing photos are simply not listed.
"""

from __future__ import annotations

import hashlib
import io
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

from PIL import Image, ImageDraw

import artwatch.images.decode  # noqa: F401  (registers the HEIF plugin, for saving too)

PAGES = Path(__file__).parent / "lot_pages"


def make_photo(path: str, fmt: str) -> bytes:
    """A 96x64 photo unique to `path` (colour and stripes from its hash) in format `fmt`."""
    digest = hashlib.sha256(path.encode()).digest()
    image = Image.new("RGB", (96, 64), tuple(digest[:3]))
    draw = ImageDraw.Draw(image)
    for i in range(0, 96, 8):
        draw.rectangle([i, 0, i + 3, 63], fill=tuple(digest[3 + i // 8 % 12: 6 + i // 8 % 12]))
    out = io.BytesIO()
    image.save(out, fmt)
    return out.getvalue()


class FixtureSite:
    """`site = FixtureSite({"/media/a.jpg": "JPEG", ...}); site.start(); ...; site.stop()`."""

    def __init__(self, photos: dict[str, str]) -> None:
        self.photos = {path: make_photo(path, fmt) for path, fmt in photos.items()}
        self.pages = {p.stem: p.read_bytes() for p in sorted(PAGES.glob("*.html"))}
        self.log: list[str] = []
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                path = unquote(urlsplit(self.path).path)
                site.log.append(path)
                body, kind = site.answer(path)
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                self.wfile.write(body or b"")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    def answer(self, path: str) -> tuple[bytes | None, str]:
        if path == "/":
            links = "".join(f'<a class="case" href="/lot/{name}">{name}</a>\n'
                            for name in self.pages)
            return f"<!doctype html><html><body>{links}</body></html>".encode(), "text/html"
        if path.startswith("/lot/") and path[5:] in self.pages:
            return self.pages[path[5:]], "text/html; charset=utf-8"
        if path in self.photos:
            return self.photos[path], "image/jpeg"  # what a careless server says for all
        return None, "text/plain"

    def sha256(self, path: str) -> str:
        return hashlib.sha256(self.photos[path]).hexdigest()

    def start(self) -> FixtureSite:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
