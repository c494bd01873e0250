"""CLI of the crawling stage.

The lead registers these on the `artwatch` command:
    app.add_typer(crawler.cli.sources_app, name="sources")   # artwatch sources list|add|...
    app.command("submit")(crawler.cli.submit)                  # artwatch submit URL
    app.add_typer(crawler.cli.app, name="crawl")              # artwatch crawl run|due ...
"""

from __future__ import annotations

import json
import time
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

console = Console()
app = typer.Typer(help="Crawl auction houses now or by schedule.", no_args_is_help=True)
sources_app = typer.Typer(help="Auction-house sources: what to crawl and when.",
                          no_args_is_help=True)


def _conn() -> Any:
    from artwatch.db import connect

    return connect(autocommit=True)


def _fail(message: str, code: int = 1) -> None:
    console.print(f"[red]error:[/red] {message}")
    raise typer.Exit(code)


# --- sources ---------------------------------------------------------------------------------


@sources_app.command("list")
def sources_list() -> None:
    """Every source with its spider, schedule, state and last crawl."""
    from crawler.sources import list_sources

    with _conn() as conn:
        sources = list_sources(conn)
        last = {
            r["source_id"]: r
            for r in conn.execute(
                "SELECT DISTINCT ON (source_id) source_id, status, started_at FROM crawls "
                "ORDER BY source_id, started_at DESC"
            )
        }
    table = Table("name", "spider", "schedule", "enabled", "private ok", "start URLs",
                  "last crawl")
    for s in sources:
        crawl = last.get(s.id)
        table.add_row(
            s.name, s.spider, s.schedule, "yes" if s.enabled else "no",
            "yes" if s.allow_private else "no", "\n".join(s.start_urls),
            f"{crawl['status']} {crawl['started_at']:%Y-%m-%d %H:%M}" if crawl else "-",
        )
    console.print(table)


@sources_app.command("add")
def sources_add(
    name: str,
    spider: str = typer.Argument(..., help="html_lots | api_lots | js_lots | generic"),
    start_urls: list[str] = typer.Argument(..., help="One or more start URLs."),
    schedule: str = typer.Option("0 */6 * * *", help="Cron expression (UTC)."),
    disabled: bool = typer.Option(False, "--disabled", help="Add it switched off."),
    allow_private: bool = typer.Option(
        False, "--allow-private", help="Allow its hosts on private/loopback addresses."
    ),
    settings: str = typer.Option(
        "{}", help='JSON: {"politeness": {...}, "incremental": true, "selectors": {...}}'
    ),
) -> None:
    """Add (or replace) a source."""
    from crawler.sources import SourceError, add_source

    try:
        extra = json.loads(settings)
        if not isinstance(extra, dict):
            raise ValueError("must be a JSON object")
    except ValueError as exc:
        _fail(f"--settings: {exc}")
    try:
        with _conn() as conn:
            source = add_source(conn, name, spider, start_urls, schedule=schedule,
                                enabled=not disabled, allow_private=allow_private,
                                settings=extra)
    except SourceError as exc:
        _fail(str(exc))
    console.print(f"source [bold]{source.name}[/bold] saved ({source.spider}, {source.schedule})")


def _set_enabled(name: str, enabled: bool) -> None:
    from crawler.sources import SourceError, set_enabled

    try:
        with _conn() as conn:
            set_enabled(conn, name, enabled)
    except SourceError as exc:
        _fail(str(exc))
    console.print(f"source {name} {'enabled' if enabled else 'disabled'}")


@sources_app.command("enable")
def sources_enable(name: str) -> None:
    """Switch a source on (it is crawled on its schedule)."""
    _set_enabled(name, True)


@sources_app.command("disable")
def sources_disable(name: str) -> None:
    """Switch a source off (no scheduled crawls; manual submissions still work)."""
    _set_enabled(name, False)


# --- crawling --------------------------------------------------------------------------------


def _print_result(result: Any) -> None:
    stats = result.stats or {}
    console.print(
        f"crawl {result.crawl_id} of {result.source}: [bold]{result.status}[/bold] "
        f"in {result.seconds:.1f}s; lots {stats.get('item_scraped_count', 0)} "
        f"(new {stats.get('artwatch/listings_new', 0)}), photos stored "
        f"{stats.get('artwatch/photos_stored', 0)}, failed {stats.get('artwatch/photos_failed', 0)}"
        f", queued {stats.get('artwatch/images_queued', 0)}"
    )
    problems = {key.rsplit("/", 1)[-1]: n for key, n in stats.items()
                if key.startswith("artwatch/lot_problems/") and n}
    if problems:
        console.print(
            f"[yellow]lots with problems: {stats.get('artwatch/lots_with_problems', 0)}[/yellow] "
            f"({', '.join(f'{reason} {n}' for reason, n in sorted(problems.items()))}); "
            "each is recorded on its listing (listings.problems)"
        )
    if result.error:
        console.print(f"[red]{result.error}[/red]")
    if result.log_path:
        console.print(f"log: {result.log_path}")


@app.command("run")
def crawl_run(
    source: str,
    full: bool = typer.Option(False, "--full", help="Walk every page (no incremental stop)."),
    timeout: float = typer.Option(6 * 3600, help="Seconds before the crawl is stopped."),
    processes: int = typer.Option(
        None, help="Split over this many Scrapy processes (default: the source's setting)."
    ),
) -> None:
    """Crawl one source now (a `scrapy crawl` subprocess) and print its stats."""
    from crawler.runner import run_crawl
    from crawler.sources import SourceError

    try:
        result = run_crawl(source, trigger="manual", full=full, timeout=timeout,
                           processes=processes)
    except SourceError as exc:
        _fail(str(exc))
    _print_result(result)
    if result.status != "finished":
        raise typer.Exit(1)


@app.command("due")
def crawl_due() -> None:
    """Queue crawls for the sources whose schedule is due (what beat does every minute)."""
    from crawler.tasks import schedule_crawls

    ids = schedule_crawls()
    console.print(f"queued {len(ids)} crawl(s): {ids}")


# --- manual resubmission -----------------------------------------------------------------------


def submit(
    url: str,
    by: str = typer.Option("cli", "--by", help="Who asks (recorded on the submission)."),
    wait: float = typer.Option(
        60.0, help="Seconds to wait for the matcher's matches after the crawl (0: don't)."
    ),
    queue: bool = typer.Option(
        False, "--queue", help="Only queue it for a crawler worker instead of crawling here."
    ),
) -> None:
    """Crawl one listing URL now (even if seen), send its photos for matching, print matches."""
    from artwatch.submissions import matches_for_listing, submit_url

    result = submit_url(url, requested_by=by, enqueue=queue)
    if not result.ok:
        _fail(f"submission {result.submission_id} refused: {result.error}", 2)
    if queue:
        console.print(f"submission {result.submission_id} queued ({result.source})")
        return
    from crawler.resubmit import process_submission

    console.print(f"submission {result.submission_id}: crawling {url} ({result.source}) ...")
    result = process_submission(result.submission_id)
    if not result.ok:
        _fail(f"submission {result.submission_id} failed: {result.error}")
    table = Table("photo", "status", "image", "queued / error")
    for photo in result.photos:
        table.add_row(photo["url"], photo["status"], str(photo["image_id"] or "-"),
                      str(photo["queued_at"] or photo["error"] or "-"))
    console.print(f"listing {result.listing_id} crawled (crawl {result.crawl_id})")
    console.print(table)
    for problem in result.problems:
        console.print(f"[yellow]problem: {problem['reason']}[/yellow]: {problem['detail']}")
    deadline = time.monotonic() + wait
    matches: list[dict[str, Any]] = []
    with _conn() as conn:
        while True:
            matches = matches_for_listing(conn, result.listing_id)
            if matches or time.monotonic() >= deadline:
                break
            time.sleep(1.0)
    if not matches:
        console.print(f"no matches within {wait:.0f}s (the matcher may still be working)")
        return
    found = Table("rank", "object", "collection", "title", "score", "status")
    for m in matches:
        found.add_row(str(m["rank"]), m["accession"], m["collection"], m["title"] or "",
                      f"{m['score']:.3f}", m["status"])
    console.print(found)
