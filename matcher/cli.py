"""CLI of the matching stage: `artwatch index`, `artwatch match pending|photos`."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

console = Console()
match_app = typer.Typer(help="Recognise listing photos (normally done by matcher workers).",
                        no_args_is_help=True)


def index() -> None:
    """Embed every catalogue photo under the active bundle (resumable; only new photos)."""
    from artwatch.db import connect
    from artwatch.images import ImageStore
    from artwatch.settings import get_settings
    from matcher.bundle import Bundle
    from matcher.indexing import index_catalogue, unindexed_catalogue_photos
    from matcher.recognise import active_bundle_row

    settings = get_settings()
    with connect(autocommit=True) as conn:
        row = active_bundle_row(conn)
        if row is None:
            console.print("[red]error:[/red] no active bundle (artwatch models activate NAME)")
            raise typer.Exit(1)
        bundle = Bundle.load(row["path"], device=settings.matcher_device)
        total = len(unindexed_catalogue_photos(conn, int(row["id"])))
        with Progress(TextColumn(f"indexing under {row['name']}"), BarColumn(),
                      MofNCompleteColumn(), TimeElapsedColumn(), console=console) as progress:
            task = progress.add_task("index", total=total)
            done, problems = index_catalogue(
                conn, bundle, int(row["id"]), ImageStore.from_settings(settings),
                batch_size=settings.matcher_batch_size,
                progress=lambda n: progress.advance(task, n),
            )
    for problem in problems:
        console.print(f"[yellow]skipped:[/yellow] {problem}")
    console.print(f"indexed {done} catalogue photo(s), {len(problems)} skipped")


@match_app.command("pending")
def match_pending(batch: int = typer.Option(32, min=1, help="Photos per message.")) -> None:
    """Enqueue stored listing photos that have no prediction under the active bundle."""
    from artwatch.db import connect
    from artwatch.queue import MATCH_IMAGES, app

    with connect() as conn:
        rows = conn.execute(
            """
            SELECT li.listing_id, array_agg(DISTINCT li.image_id) AS ids
              FROM listing_images li
             WHERE li.status = 'stored' AND NOT EXISTS (
                   SELECT 1 FROM predictions p JOIN bundles b ON b.id = p.bundle_id
                    WHERE b.active AND p.image_id = li.image_id)
             GROUP BY li.listing_id
            """
        ).fetchall()
    messages = 0
    for row in rows:
        ids = list(row["ids"])
        for start in range(0, len(ids), batch):
            app.send_task(MATCH_IMAGES, args=[ids[start : start + batch]],
                          kwargs={"listing_id": row["listing_id"]})
            messages += 1
    console.print(f"enqueued {messages} message(s) for {len(rows)} listing(s)")


def register(parent: typer.Typer) -> None:
    """Mount the matcher's commands on the main CLI."""
    parent.command("index")(index)
    parent.add_typer(match_app, name="match")
