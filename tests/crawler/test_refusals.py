"""What the crawler refuses and records: a too-small photo in a real crawl, a resubmitted
lot whose redirect leads somewhere the URL guard refuses, and links that are not http(s)."""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from crawler_support import drop_queued, queued, register, rows
from dbreset import truncate_all
from PIL import Image

from artwatch.queue import MATCH_IMAGES
from artwatch.submissions import submit_url
from crawler.resubmit import process_submission
from crawler.runner import run_crawl

METADATA = "http://169.254.169.254/latest/meta-data/"


@pytest.fixture(autouse=True)
def _empty() -> None:
    truncate_all(os.environ["ARTWATCH_DATABASE_URL"])
    drop_queued(MATCH_IMAGES)


def _png(size: tuple[int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(out, "PNG")
    return out.getvalue()


@pytest.mark.slow
def test_one_pixel_listing_photo_is_refused_with_a_reason(houses) -> None:
    house = houses("pixelhouse", style="html", lots=6, specials=False)
    lot = house.model.public_lots[0]
    tiny_key = lot.photos[0]
    # The house serves this photo as a 1x1 PNG (a tracking pixel where a photo should be).
    house.photos._cache[tiny_key] = _png((1, 1))
    register(house)
    result = run_crawl("pixelhouse", trigger="test", full=True, timeout=120)
    assert result.status == "finished", result.error
    photos = {r["url"]: r for r in rows(
        "SELECT li.* FROM listing_images li JOIN listings l ON l.id = li.listing_id "
        "WHERE l.external_id = %s", lot.lot_id)}
    tiny = photos[house.photo_url(tiny_key)]
    assert tiny["status"] == "failed" and tiny["image_id"] is None
    assert tiny["error"].startswith("too_small: 1x1 is below the 32-pixel minimum")
    assert tiny["queued_at"] is None
    sent = {i for args, _ in queued(MATCH_IMAGES) for i in args[0]}
    stored = {r["image_id"] for r in rows("SELECT image_id FROM listing_images "
                                          "WHERE status = 'stored'")}
    assert stored and sent == stored  # every other photo went to the matcher, not this one
    assert rows("SELECT count(*) AS n FROM images WHERE width < 32 OR height < 32")[0]["n"] == 0


class _Redirector(BaseHTTPRequestHandler):
    """A lot URL that moves twice: /lots/7 -> /moved/7 -> the cloud metadata address."""

    def do_GET(self) -> None:  # noqa: N802 (http.server's API)
        target = {"/lots/7": "/moved/7", "/moved/7": METADATA}.get(self.path)
        self.send_response(302 if target else 404)
        if target:
            self.send_header("Location", target)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def redirector() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Redirector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.slow
def test_resubmission_refused_at_a_redirect_hop_records_the_refusal_and_hop(
    redirector: str,
) -> None:
    from artwatch.db import connect
    from crawler.sources import add_source

    with connect(autocommit=True) as conn:
        add_source(conn, "movinghouse", "html_lots", [redirector + "/"], allow_private=True)
    submitted = submit_url(redirector + "/lots/7", requested_by="tester", enqueue=False)
    assert submitted.ok, submitted.error
    result = process_submission(submitted.submission_id)
    assert result.status == "failed"
    assert result.error.startswith(
        f"unsafe_redirect: redirect hop 2 from {redirector}/moved/7 to {METADATA} refused: "
        "link_local:"), result.error
    row = rows("SELECT status, error, crawl_id FROM submissions WHERE id = %s",
               submitted.submission_id)[0]
    assert row["error"] == result.error and row["crawl_id"] is not None
    assert "no lot found" not in row["error"]


def test_links_that_are_not_http_are_not_fetched_and_are_recorded() -> None:
    from scrapy.exceptions import DropItem
    from scrapy.utils.test import get_crawler

    from crawler.items import LotItem
    from crawler.pipelines import ValidateItemPipeline

    crawler = get_crawler()
    pipeline = ValidateItemPipeline(crawler)
    data_url = "data:image/png;base64," + "A" * 5000
    item = pipeline.process_item(LotItem(
        external_id="1", url="https://house.example/lots/1", title="A jar",
        photo_urls=["https://house.example/p/1.jpg", "javascript:alert(1)", data_url,
                    "/relative.jpg"],
    ))
    assert item["photo_urls"] == ["https://house.example/p/1.jpg"]
    errors = item["photo_errors"]
    assert errors["javascript:alert(1)"].startswith("not_http: ")
    assert errors["/relative.jpg"].startswith("not_http: ")
    [data_key] = [k for k in errors if k.startswith("data:")]
    assert len(data_key) < 250 and "5022 chars" in data_key  # recorded, not megabytes
    assert crawler.stats.get_value("artwatch/photo_url_refused") == 3
    for bad in ("javascript:alert(1)", "data:text/html,x", "/lots/1", "http:///lots/1"):
        with pytest.raises(DropItem, match="not an http"):
            pipeline.process_item(LotItem(external_id="2", url=bad, title="x"))
