"""Crawl throughput and memory against the local auction house.

    .venv/bin/python benchmarks/crawl_rate.py [--lots 1000] [--default-lots 100]
        [--js-lots 1000 250] [--skip-defaults] [--skip-js]

Measures, each as a real `scrapy crawl` subprocess writing to PostgreSQL, the image store
and the Celery queue (Redis):
  1. HTML house, politeness off (no delay, no AutoThrottle, 32 per domain): lots/s, photos/s
     with every photo stored and queued, in one crawl process and split over --processes
     (one per core). Target: >= 200 lots/s on 2 cores.
  2. HTML house with the default politeness settings (delay, AutoThrottle, 4 per domain).
  3. JavaScript house through Chromium: peak memory (sum of PSS of the crawl process and
     all its children, i.e. Chromium too) for each size in --js-lots. Target: < 1.5 GB and
     not growing with the number of lots.

It uses its own temporary database (on ARTWATCH_TEST_ADMIN_URL, default the local server),
its own data directory, and removes the queue messages it sent.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from artwatch.db.scratch import create_database, drop_database, unique_name

REDIS_URL = os.environ.get("ARTWATCH_BENCH_REDIS", "redis://127.0.0.1:6379/15")
POLITENESS_OFF = {
    "DOWNLOAD_DELAY": 0,
    "AUTOTHROTTLE_ENABLED": False,
    "CONCURRENT_REQUESTS": 64,
    "CONCURRENT_REQUESTS_PER_DOMAIN": 32,
    "LOG_LEVEL": "WARNING",
}


def _process_kind(proc: Any) -> str:
    """crawl (the scrapy process), photo worker, chromium or other, from the command line."""
    try:
        line = " ".join(proc.cmdline())
    except Exception:
        return "other"
    if "scrapy" in line:
        return "crawl"
    if "crawler.photostore" in line:
        return "photo worker"
    if "chrom" in line.lower():
        return "chromium"
    return "other"


class TreeMemory:
    """Samples the memory of a process and all its descendants; keeps the peak."""

    def __init__(self, interval: float = 0.25) -> None:
        self.interval = interval
        self.peak_pss = 0
        self.peak_rss = 0
        self.peak_processes = 0
        self.cpu_seconds: dict[int, float] = {}
        self.kind: dict[int, str] = {}
        self.pids: list[int] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def watch(self, process: Any) -> None:
        """Add a process (and, at each sample, all its descendants) to the total."""
        self.pids.append(process.pid)
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            procs = []
            for pid in list(self.pids):
                try:
                    root = psutil.Process(pid)
                    procs += [root, *root.children(recursive=True)]
                except psutil.NoSuchProcess:
                    continue
            pss = rss = 0
            for proc in procs:
                try:
                    info = proc.memory_full_info()
                    pss += getattr(info, "pss", info.rss)
                    rss += info.rss
                    times = proc.cpu_times()
                    self.cpu_seconds[proc.pid] = times.user + times.system
                    if proc.pid not in self.kind:
                        self.kind[proc.pid] = _process_kind(proc)
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue
            self.peak_pss = max(self.peak_pss, pss)
            self.peak_rss = max(self.peak_rss, rss)
            self.peak_processes = max(self.peak_processes, len(procs))
            self._stop.wait(self.interval)

    def cpu_by_kind(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for pid, seconds in self.cpu_seconds.items():
            kind = self.kind.get(pid, "other")
            out[kind] = round(out.get(kind, 0.0) + seconds, 1)
        return out

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(5)


def setup_environment() -> tuple[str, Path]:
    name = unique_name("artwatch_bench")
    url = create_database(name)
    data_dir = Path(tempfile.mkdtemp(prefix="artwatch-bench-"))
    os.environ.update(
        ARTWATCH_DATABASE_URL=url, ARTWATCH_REDIS_URL=REDIS_URL, ARTWATCH_DATA_DIR=str(data_dir)
    )
    os.environ.pop("ARTWATCH_CONFIG", None)
    from artwatch.db import migrate

    migrate(url)
    return name, data_dir


def teardown_environment(name: str, data_dir: Path, crawl_pids: list[int]) -> None:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    origins = tuple(f"gen{pid}@" for pid in crawl_pids)
    removed = 0
    for queue in ("artwatch", "matcher"):
        for raw in client.lrange(queue, 0, -1):
            origin = json.loads(raw).get("headers", {}).get("origin") or ""
            if origins and origin.startswith(origins):
                removed += client.lrem(queue, 0, raw)
    drop_database(name)
    shutil.rmtree(data_dir, ignore_errors=True)
    print(f"(cleaned up: database, data dir, {removed} queue messages)")


def crawl(
    style: str, lots: int, settings: dict[str, Any], pids: list[int], per_page: int = 50,
    processes: int = 1,
) -> dict[str, Any]:
    from artwatch.db import connect
    from artwatch.demo.auction_house import AuctionHouse, HouseConfig
    from crawler.runner import run_crawl
    from crawler.sources import add_source

    name = f"bench-{style}-{lots}-{secrets.token_hex(2)}"
    house = AuctionHouse(HouseConfig(
        name=name, style=style, lots=lots, per_page=per_page, sales=4, specials=False,
        first_hit_429=False, photos_per_lot=(1, 3),
    ))
    for key in house.model.photo_keys():  # photos made before timing: we measure the crawler
        house.photos.get(key, None)
    house.start()
    with connect(autocommit=True) as conn:
        add_source(conn, name, house.config.spider, [house.start_url], allow_private=True)
    memory = TreeMemory()

    def started(process: Any) -> None:
        pids.append(process.pid)
        memory.watch(process)

    t0 = time.monotonic()
    result = run_crawl(name, trigger="test", full=True, settings=settings, on_start=started,
                       timeout=1800, processes=processes)
    wall = time.monotonic() - t0
    memory.stop()
    house.stop()
    stats = result.stats
    elapsed = float(stats.get("elapsed_time_seconds") or wall)
    items = int(stats.get("item_scraped_count", 0))
    photos = int(stats.get("artwatch/photos_stored", 0))
    return {
        "style": style,
        "lots": lots,
        "processes": processes,
        "status": result.status,
        "error": result.error,
        "items": items,
        "photos_stored": photos,
        "images_queued": int(stats.get("artwatch/images_queued", 0)),
        "crawl_seconds": round(elapsed, 2),
        "wall_seconds_incl_startup": round(wall, 2),
        "lots_per_s": round(items / elapsed, 1) if elapsed else 0,
        "photos_per_s": round(photos / elapsed, 1) if elapsed else 0,
        "peak_pss_mb": round(memory.peak_pss / 2**20, 1),
        "peak_rss_mb": round(memory.peak_rss / 2**20, 1),
        "peak_processes": memory.peak_processes,
        "crawl_tree_cpu_s": round(sum(memory.cpu_seconds.values()), 1),
        "cpu_s_by_process": memory.cpu_by_kind(),
        "http_429": int(stats.get("artwatch/http_429", 0)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lots", type=int, default=1000, help="HTML lots, politeness off")
    parser.add_argument("--default-lots", type=int, default=100, help="HTML lots, defaults")
    parser.add_argument("--js-lots", type=int, nargs="*", default=[250, 1000])
    parser.add_argument("--processes", type=int, default=2,
                        help="Crawl processes for the politeness-off HTML run (one per core)")
    parser.add_argument("--skip-defaults", action="store_true")
    parser.add_argument("--skip-js", action="store_true")
    parser.add_argument("--json", type=Path, help="Also write the results here.")
    args = parser.parse_args()

    name, data_dir = setup_environment()
    pids: list[int] = []
    results = []
    try:
        results.append({"run": "html, politeness off",
                        **crawl("html", args.lots, POLITENESS_OFF, pids)})
        print(json.dumps(results[-1]))
        if args.processes > 1:
            results.append({"run": f"html, politeness off, {args.processes} processes",
                            **crawl("html", args.lots, POLITENESS_OFF, pids,
                                    processes=args.processes)})
            print(json.dumps(results[-1]))
        if not args.skip_defaults:
            results.append({"run": "html, default politeness",
                            **crawl("html", args.default_lots, {"LOG_LEVEL": "WARNING"}, pids)})
            print(json.dumps(results[-1]))
        if not args.skip_js:
            for lots in args.js_lots:
                results.append({"run": f"js via Chromium, {lots} lots",
                                **crawl("js", lots, {**POLITENESS_OFF,
                                                      "CONCURRENT_REQUESTS_PER_DOMAIN": 16},
                                        pids)})
                print(json.dumps(results[-1]))
    finally:
        teardown_environment(name, data_dir, pids)
    print(f"\n{'run':36s} {'lots':>6s} {'lots/s':>8s} {'photos/s':>9s} {'peak MB':>8s}")
    for r in results:
        print(f"{r['run']:36s} {r['items']:6d} {r['lots_per_s']:8.1f} {r['photos_per_s']:9.1f}"
              f" {r['peak_pss_mb']:8.1f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
