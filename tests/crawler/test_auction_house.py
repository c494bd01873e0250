"""The local auction house serves what real sites do to crawlers."""

from __future__ import annotations

import io
import urllib.error
import urllib.request

import pytest
from PIL import Image


def fetch(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def test_html_house_pages_robots_and_429(houses) -> None:
    house = houses("meridian", style="html", lots=20, per_page=5)
    status, _, robots = fetch(house.base_url + "/robots.txt")
    assert status == 200 and b"Disallow: /private/" in robots
    sale = house.model.sales()[0]
    status, headers, _ = fetch(f"{house.base_url}/sale/{sale}?page=2")
    assert status == 429 and headers["Retry-After"] == "1"
    assert fetch(f"{house.base_url}/sale/{sale}?page=2")[0] == 200  # only the first hit
    lot = house.model.public_lots[5]
    status, _, body = fetch(house.lot_url(lot))
    assert status == 200 and b"application/ld+json" in body and lot.title.encode() in body
    photo = fetch(house.photo_url(lot.photos[0]))[2]
    assert Image.open(io.BytesIO(photo)).format == "JPEG"
    assert fetch(house.photo_url(lot.photos[0]))[2] == photo  # deterministic bytes


def test_specials_relist_dead_and_non_image(houses) -> None:
    house = houses("meridian", style="html", lots=20)
    lots = {lot.lot_id: lot for lot in house.model.public_lots}
    relist = next(lot for lot in lots.values() if lot.relist_of)
    assert relist.photos == lots[relist.relist_of].photos
    first = house.model.lots[0]
    assert fetch(house.photo_url(first.photos[1]))[0] == 404
    status, headers, body = fetch(house.photo_url(first.photos[2]))
    assert status == 200 and headers["Content-Type"] == "image/jpeg" and body.startswith(b"<html")


def test_js_house_shows_nothing_without_a_browser(houses) -> None:
    house = houses("gavelscript", style="js", lots=12)
    status, _, body = fetch(house.start_url)
    assert status == 200 and b'id="lots"' in body
    assert not any(lot.title.encode() in body for lot in house.model.public_lots)


def test_rate_limit_answers_429(houses) -> None:
    house = houses("lotstream", style="api", lots=12, rate_limit=3)
    statuses = [fetch(house.start_url)[0] for _ in range(6)]
    assert 429 in statuses and statuses[0] == 200


def test_changing_lot_between_generations(houses) -> None:
    house = houses("meridian", style="html", lots=12)
    before = list(house.model.lots[2].photos)
    house.advance()
    assert house.model.lots[2].photos != before


@pytest.mark.slow
def test_catalogue_lots_show_marketplace_photos_of_catalogue_objects(tmp_path) -> None:
    from artwatch.demo import generate_catalogue
    from artwatch.demo.auction_house import AuctionHouse, Catalogue, HouseConfig

    generate_catalogue(tmp_path, 2, seed=3)
    catalogue = Catalogue(tmp_path)
    house = AuctionHouse(HouseConfig(name="demo", lots=10, catalogue_share=0.5), catalogue)
    house.start()
    try:
        lot = next(lot for lot in house.model.public_lots if lot.shows)
        assert lot.shows in catalogue.accessions
        status, _, body = fetch(house.photo_url(lot.photos[0]))
        photo = Image.open(io.BytesIO(body))
        assert status == 200 and photo.format == "JPEG" and max(photo.size) <= 320
        originals = {p.read_bytes() for p in catalogue.images[lot.shows]}
        assert body not in originals  # a new marketplace photo, not the museum's own file
    finally:
        house.stop()


def test_keep_alive_responses_are_not_held_back(houses) -> None:
    """Headers and body leave in one write: no ~40 ms Nagle/delayed-ACK stall per response,
    which capped a politeness-off crawl of the house (its latency, not its CPU)."""
    import http.client
    import time

    house = houses("meridian", style="html", lots=10)
    lot = house.model.public_lots[0]
    paths = [house.lot_url(lot).removeprefix(house.base_url),
             house.photo_url(lot.photos[0]).removeprefix(house.base_url)] * 20
    conn = http.client.HTTPConnection("127.0.0.1", house.port, timeout=10)
    started = time.monotonic()
    try:
        for path in paths:  # one keep-alive connection, one request at a time
            conn.request("GET", path)
            response = conn.getresponse()
            assert response.status == 200 and response.read()
    finally:
        conn.close()
    assert time.monotonic() - started < 1.0  # 40 responses; ~1.6 s with the stall


def test_malformed_requests_get_an_answer_not_a_hang(houses) -> None:
    """Broken request lines and bodies get 400 and a closed connection; HTTP/1.0 closes."""
    import socket

    house = houses("meridian", style="html", lots=3)

    def exchange(raw: bytes) -> bytes:
        with socket.create_connection(("127.0.0.1", house.port), timeout=5) as sock:
            sock.sendall(raw)
            chunks = []
            while chunk := sock.recv(65536):  # the server closes: recv returns b""
                chunks.append(chunk)
        return b"".join(chunks)

    assert exchange(b"NONSENSE\r\n\r\n").startswith(b"HTTP/1.1 400 ")
    bad_length = b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n"
    assert exchange(bad_length).startswith(b"HTTP/1.1 400 ")
    answer = exchange(b"GET /robots.txt HTTP/1.0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b"Disallow: /private/\n")
    assert exchange(b"POST / HTTP/1.1\r\nConnection: close\r\n\r\n").startswith(b"HTTP/1.1 501 ")
