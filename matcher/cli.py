"""CLI of the matching stage: `artwatch index`, `artwatch match pending|photos`."""

from __future__ import annotations

from datetime import datetime

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

console = Console()
match_app = typer.Typer(help="Recognise listing photos (normally done by matcher workers).",
                        no_args_is_help=True)


def index_bundle(conn, bundle_id: int, path: str, name: str) -> int:  # noqa: ANN001
    """Embed every unindexed catalogue photo under a bundle, with a progress bar."""
    from artwatch.images import ImageStore
    from artwatch.settings import get_settings
    from matcher.bundle import Bundle
    from matcher.indexing import index_catalogue, unindexed_catalogue_photos

    settings = get_settings()
    total = len(unindexed_catalogue_photos(conn, bundle_id))
    if total == 0:
        return 0
    bundle = Bundle.load(path, device=settings.matcher_device)
    with Progress(TextColumn(f"indexing under {name}"), BarColumn(),
                  MofNCompleteColumn(), TimeElapsedColumn(), console=console) as progress:
        task = progress.add_task("index", total=total)
        done, problems = index_catalogue(
            conn, bundle, bundle_id, ImageStore.from_settings(settings),
            batch_size=settings.matcher_batch_size,
            local_cache=settings.local_features_dir,
            progress=lambda n: progress.advance(task, n),
        )
    for problem in problems:
        console.print(f"[yellow]skipped:[/yellow] {problem}")
    console.print(f"indexed {done} catalogue photo(s), {len(problems)} skipped")
    return done


def queue_retrohunt(conn, bundle_id: int, reason: str) -> int | None:  # noqa: ANN001
    """Start a retro-hunt over the stored listings and queue it to the matcher workers."""
    from artwatch.queue import RETROHUNT, app
    from matcher.retrohunt import start_hunt, stored_listings

    if stored_listings(conn) == 0:
        return None
    hunt = start_hunt(conn, bundle_id, reason)
    try:
        app.send_task(RETROHUNT, kwargs={"hunt_id": hunt})
    except Exception as exc:  # the broker is down: the hunt row waits for `--resume`
        console.print(f"[yellow]retro-hunt #{hunt} not queued ({exc}); run "
                      f"`artwatch retrohunt --resume {hunt}`[/yellow]")
        return hunt
    console.print(f"retro-hunt #{hunt} queued over the stored listings "
                  f"(`artwatch retrohunt --resume {hunt}` runs it here)")
    return hunt


def index(
    retrohunt: bool = typer.Option(True, help="Queue a retro-hunt when photos were added"),
) -> None:
    """Embed every catalogue photo under the active bundle (resumable; only new photos).

    New photos (an object added today) are then looked for in the listings already crawled:
    a retro-hunt is queued to the matcher workers.
    """
    from artwatch.db import connect
    from matcher.recognise import active_bundle_row

    with connect(autocommit=True) as conn:
        row = active_bundle_row(conn)
        if row is None:
            console.print("[red]error:[/red] no active bundle (artwatch models activate NAME)")
            raise typer.Exit(1)
        done = index_bundle(conn, int(row["id"]), row["path"], row["name"])
        if done == 0:
            console.print("every catalogue photo is indexed")
        elif retrohunt:
            queue_retrohunt(conn, int(row["id"]), "index")


def retrohunt_cmd(
    since: datetime | None = typer.Option(None, help="Only listings first seen since then"),
    resume: int | None = typer.Option(None, help="Continue retro-hunt ID where it stopped"),
) -> None:
    """Re-score stored listings against the catalogue now (progress shown; resumable)."""
    from artwatch.db import connect
    from artwatch.images import ImageStore
    from artwatch.queue import SEND_URGENT, app
    from artwatch.settings import get_settings
    from matcher.recognise import NoActiveBundle, Recogniser
    from matcher.retrohunt import run_hunt, start_hunt, stored_listings
    from matcher.tasks import policy_from, requeue_for_hunt

    settings = get_settings()
    with connect(autocommit=True) as conn:
        try:
            recogniser = Recogniser.load(conn, ImageStore.from_settings(settings),
                                         policy_from(settings), device=settings.matcher_device,
                                         cache_dir=settings.local_features_dir)
        except (NoActiveBundle, ValueError, RuntimeError) as exc:
            console.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(1) from None
        hunt = resume if resume is not None else start_hunt(
            conn, recogniser.bundle_id, "manual", since)
        total = stored_listings(conn, since)
        with Progress(TextColumn(f"retro-hunt #{hunt}"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), console=console) as progress:
            task = progress.add_task("hunt", total=total)
            try:
                outcome = run_hunt(conn, recogniser, hunt, enqueue=requeue_for_hunt,
                                   progress=lambda n: progress.advance(task, n))
            except (LookupError, ValueError) as exc:
                console.print(f"[red]error:[/red] {exc}")
                raise typer.Exit(1) from None
    if outcome["match_ids"]:
        app.send_task(SEND_URGENT, args=[outcome["match_ids"]])
    console.print(f"retro-hunt #{hunt}: {outcome['listings']} listing(s) re-scored, "
                  f"{outcome['photos_requeued']} photo(s) queued for embedding, "
                  f"{outcome['matches']} new or changed match(es)")


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
    parent.command("retrohunt")(retrohunt_cmd)
    parent.add_typer(match_app, name="match")
