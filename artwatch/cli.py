"""`artwatch`: one command, git-style groups, one per job a user has."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from artwatch.demo.cli import app as demo_app
from artwatch.settings import SettingsError, get_settings, redact_url

console = Console()
app = typer.Typer(
    help="Watch online auction houses for catalogued museum objects.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
services_app = typer.Typer(help="Embedded PostgreSQL and Redis.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema migrations.", no_args_is_help=True)
catalogue_app = typer.Typer(help="Museum catalogue: import photos, show statistics.",
                            no_args_is_help=True)
app.add_typer(services_app, name="services")
app.add_typer(db_app, name="db")
app.add_typer(catalogue_app, name="catalogue")


@app.callback()
def _check_settings() -> None:
    """Fail at start, naming the setting, when the configuration is wrong."""
    try:
        get_settings()
    except SettingsError as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(2) from None


# --- services ---------------------------------------------------------------------------


def _embedded():
    from artwatch.services import EmbeddedPostgres, EmbeddedRedis

    settings = get_settings()
    return (
        EmbeddedPostgres(settings.services_dir / "postgres"),
        EmbeddedRedis(settings.services_dir / "redis"),
    )


def services_status_table() -> Table:
    """PostgreSQL and Redis: where they are, whether they answer, the schema version."""
    import psycopg
    import redis

    from artwatch.db.migrate import applied_migrations, available_migrations

    settings = get_settings()
    pg, rd = _embedded()
    table = Table("service", "mode", "url", "state")
    pg_url = settings.database_url or pg.url()
    state = "stopped"
    if pg_url:
        try:
            with psycopg.connect(pg_url, connect_timeout=5) as conn:
                done = applied_migrations(conn)
            # Versions need not be contiguous (0001, 0003): count the files not applied.
            pending = sum(m.version not in done for m in available_migrations())
            state = f"up, schema v{max(done, default=0)}" + (
                f" ({pending} migration(s) pending)" if pending else ", current"
            )
        except psycopg.Error as exc:
            state = f"unreachable: {str(exc).splitlines()[0]}"
    table.add_row("postgresql", "external" if settings.database_url else "embedded",
                  redact_url(pg_url or "-"), state)
    rd_url = settings.redis_url or rd.url()
    state = "stopped"
    if rd_url:
        try:
            info = redis.Redis.from_url(rd_url, socket_timeout=5).info("server")
            state = f"up, redis {info['redis_version']}"
        except redis.RedisError as exc:
            state = f"unreachable: {exc}"
    table.add_row("redis", "external" if settings.redis_url else "embedded",
                  redact_url(rd_url or "-"), state)
    return table


def bring_up() -> None:
    """Start what is embedded, apply migrations."""
    from artwatch.db import database_url, migrate
    from artwatch.services import redis_url

    url = database_url()
    applied = migrate(url)
    redis_url()
    for migration in applied:
        console.print(f"applied migration {migration.version:04d}_{migration.name}")


@services_app.command("up")
def services_up() -> None:
    """Start the embedded services (if no URLs are configured) and migrate the database."""
    bring_up()
    console.print(services_status_table())


@services_app.command("status")
def services_status() -> None:
    """Show whether PostgreSQL and Redis answer, and the schema version."""
    console.print(services_status_table())


@services_app.command("down")
def services_down() -> None:
    """Stop the embedded services cleanly (external servers are left alone)."""
    pg, rd = _embedded()
    console.print(f"postgresql: {'stopped' if pg.stop() else 'was not running'}")
    console.print(f"redis: {'stopped' if rd.stop() else 'was not running'}")


# --- the daemon -------------------------------------------------------------------------


@app.command("run")
def run_command(
    once: bool = typer.Option(
        False, "--once", help="One cycle: the due crawls, matching, the digest; then stop."
    ),
    web: bool = typer.Option(
        None, "--web/--no-web", help="Supervise the review web app (default: yes, not --once)."
    ),
    timeout: float = typer.Option(
        0, min=0, help="Stop (exit 1) after this many seconds; 0: no limit."
    ),
) -> None:
    """Run the daemon: beat, the crawl/alert worker, matcher workers, the review app."""
    from artwatch.daemon.runner import Daemon

    bring_up()
    code = Daemon(get_settings(), console, once=once, web=web,
                  timeout_s=timeout or None).run()
    raise typer.Exit(code)


@app.command("status")
def status_command(
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Children, queues, crawls, photos, matches, the bundle; exit 1 if something needs you."""
    import json

    from artwatch.daemon.status import gather, render

    snapshot = gather(get_settings())
    if as_json:
        typer.echo(json.dumps(snapshot, indent=2, default=str))
    else:
        render(snapshot, console)
    raise typer.Exit(0 if snapshot["ok"] else 1)


# --- db ---------------------------------------------------------------------------------


@db_app.command("migrate")
def db_migrate() -> None:
    """Apply pending migrations (safe to run from several processes at once)."""
    from artwatch.db import database_url, migrate

    applied = migrate(database_url())
    for migration in applied:
        console.print(f"applied {migration.version:04d}_{migration.name}")
    if not applied:
        console.print("schema is up to date")


@db_app.command("status")
def db_status() -> None:
    """List migrations and whether each is applied."""
    from artwatch.db import connect
    from artwatch.db.migrate import applied_migrations, available_migrations

    with connect() as conn:
        done = applied_migrations(conn)
    for migration in available_migrations():
        mark = "applied" if migration.version in done else "pending"
        console.print(f"{migration.version:04d}_{migration.name}: {mark}")


# --- catalogue --------------------------------------------------------------------------


@catalogue_app.command("import")
def catalogue_import(
    directory: Path = typer.Argument(..., help="Directory holding manifest.csv and photos."),
    workers: int = typer.Option(2, min=1, help="Processes decoding photos."),
) -> None:
    """Import objects and photos (idempotent: a second run adds nothing)."""
    from artwatch.catalogue import ManifestError, import_catalogue
    from artwatch.catalogue.manifest import read_manifest
    from artwatch.db import connect, database_url, migrate
    from artwatch.images import ImageStore

    try:
        total = len(read_manifest(directory))
    except ManifestError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    url = database_url()
    migrate(url)
    started = time.perf_counter()
    with connect(url, autocommit=True) as conn, Progress(
        TextColumn("importing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console,
    ) as progress:
        task = progress.add_task("import", total=total)
        report = import_catalogue(
            conn, directory, ImageStore.from_settings(), workers=workers,
            progress=lambda n: progress.advance(task, n),
        )
    elapsed = time.perf_counter() - started
    for message in report.duplicates:
        console.print(f"[red]duplicate:[/red] {message}")
    for message in report.skipped:
        console.print(f"[yellow]skipped:[/yellow] {message}")
    for message in report.refused_urls:
        console.print(f"[yellow]url refused:[/yellow] {escape(message)}", highlight=False,
                      soft_wrap=True)
    console.print(
        f"{report.rows} rows in {elapsed:.1f}s ({report.rows / max(elapsed, 1e-9):.0f} photos/s): "
        f"{report.objects_added} objects added, {report.objects_updated} updated, "
        f"{report.photos_added} photos added, {report.photos_already_present} already present, "
        f"{len(report.skipped)} skipped, {len(report.duplicates)} duplicates, "
        f"{len(report.refused_urls)} URLs refused"
    )
    if report.duplicates:
        raise typer.Exit(1)


@catalogue_app.command("stats")
def catalogue_stats_command() -> None:
    """Objects, photos, photos-per-object histogram and collections (paper Table 2)."""
    from artwatch.catalogue import catalogue_stats
    from artwatch.catalogue.stats import BINS
    from artwatch.db import connect

    with connect() as conn:
        stats = catalogue_stats(conn)
    console.print(f"objects: {stats.objects}   photos: {stats.photos}")
    hist = Table("photos per object", "objects", "share", title="Photos per object")
    for name in BINS:
        count = stats.per_object[name]
        if name == "<3" and not count:
            continue
        hist.add_row(name, str(count), f"{100 * count / max(stats.objects, 1):.0f}%")
    console.print(hist)
    cols = Table("collection", "objects", "photos", title="Collections")
    for name, (objs, photos) in stats.collections.items():
        cols.add_row(name, str(objs), str(photos))
    console.print(cols)


# --- demo -------------------------------------------------------------------------------

app.add_typer(demo_app, name="demo")


@demo_app.command("run")
def demo_run(
    objects: int = typer.Option(40, min=5, help="Catalogued objects to generate."),
    lots: int = typer.Option(30, min=5, help="Lots per auction house."),
    seed: int = typer.Option(0, help="Seed for catalogue, houses and training."),
    views: int = typer.Option(4, min=1, help="Synthetic listing photos per catalogue photo "
                              "(training)."),
) -> None:
    """The whole daemon on generated data: catalogue, model, crawl, match, digest."""
    from artwatch.demo.pipeline import DemoOptions, run_demo

    run_demo(get_settings(), DemoOptions(objects=objects, lots=lots, seed=seed, views=views),
             console, bring_up)


# --- the stages' own commands ----------------------------------------------------------


def _mount_stages() -> None:
    """Each stage owns its commands; the spine only mounts them (stages never import it back)."""
    from alerts.cli import digest_app, reviewers_app, web_command
    from artwatch.demo.auction_house.cli import serve
    from crawler.cli import app as crawl_app
    from crawler.cli import sources_app, submit
    from matcher.cli import register as register_matcher
    from training.cli import register as register_training

    app.add_typer(sources_app, name="sources")
    app.add_typer(crawl_app, name="crawl")
    app.command("submit")(submit)
    demo_app.command("serve")(serve)
    register_training(app)
    register_matcher(app)
    app.command("web")(web_command)
    app.add_typer(reviewers_app, name="reviewers")
    app.add_typer(digest_app, name="digest")


_mount_stages()


def main() -> None:
    """The `artwatch` console script.

    A configuration problem found while a command runs (an unreachable
    ARTWATCH_DATABASE_URL, a data directory that is a file) ends it with one line naming
    the setting, not a traceback.
    """
    try:
        app()
    except SettingsError as exc:
        Console(stderr=True).print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
