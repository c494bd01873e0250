"""`artwatch demo ...`: generated catalogues, simulated listings and a contact sheet.

Lets anyone run and test the whole system on a machine with no museum photos.
"""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

console = Console()
app = typer.Typer(
    help="Generated museum catalogue, simulated auction listings and distractors (demo, tests).",
    no_args_is_help=True,
)


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


@app.command("catalogue")
def catalogue_cmd(
    out: Path = typer.Argument(..., help="Directory to write images/ and manifest.csv into."),
    objects: int = typer.Option(200, "--objects", "-n", min=1, help="Number of objects."),
    seed: int = typer.Option(0, "--seed", "-s", help="Generator seed (same seed, same photos)."),
    size: int = typer.Option(256, "--size", min=32, max=2048, help="Photo side in pixels."),
    workers: int = typer.Option(2, "--workers", "-j", min=1, help="Worker processes."),
    quality: int = typer.Option(92, "--quality", min=30, max=100, help="JPEG quality."),
) -> None:
    """Generate a museum catalogue: several photos per object plus manifest.csv (import format)."""
    from .catalogue import generate_catalogue

    start = time.perf_counter()
    with _progress() as bar:
        task = bar.add_task("objects", total=objects)
        rows = generate_catalogue(
            out,
            objects,
            seed=seed,
            size=size,
            workers=workers,
            quality=quality,
            progress=lambda done, total: bar.update(task, completed=done),
        )
    took = time.perf_counter() - start
    console.print(
        f"{objects} objects, {len(rows)} photos in {took:.1f} s -> {out / 'manifest.csv'}"
    )


@app.command("listings")
def listings_cmd(
    out: Path = typer.Argument(..., help="Directory to write images/ and listings.csv into."),
    catalogue: Path = typer.Option(
        ...,
        "--catalogue",
        "-c",
        exists=True,
        file_okay=False,
        help="Catalogue directory with manifest.csv (generated or real).",
    ),
    count: int = typer.Option(100, "--count", "-n", min=1, help="Number of listing photos."),
    seed: int = typer.Option(0, "--seed", "-s", help="Seed for the listings."),
    distractors: float = typer.Option(
        0.5,
        "--distractors",
        min=0.0,
        max=1.0,
        help="Share of photos showing objects in no catalogue.",
    ),
    reuse_photos: bool = typer.Option(
        False,
        "--reuse-photos",
        help="Dress catalogue photos instead of re-photographing generated objects.",
    ),
    workers: int = typer.Option(2, "--workers", "-j", min=1, help="Worker processes."),
) -> None:
    """Simulate auction-listing photos of catalogue objects and of distractors (listings.csv)."""
    from .listings import NONE, generate_listings

    with _progress() as bar:
        task = bar.add_task("listings", total=count)
        rows = generate_listings(
            out,
            catalogue,
            count,
            seed=seed,
            distractor_share=distractors,
            rerender=not reuse_photos,
            workers=workers,
            progress=lambda done, total: bar.update(task, completed=done),
        )
    n_none = sum(r.object_id == NONE for r in rows)
    console.print(
        f"{len(rows)} listing photos ({n_none} of uncatalogued objects) -> {out / 'listings.csv'}"
    )


@app.command("contact-sheet")
def contact_sheet_cmd(
    out: Path = typer.Argument(Path("contact_sheet.png"), help="PNG file to write."),
    seed: int = typer.Option(0, "--seed", "-s", help="Generator seed."),
    objects: int = typer.Option(
        10, "--objects", "-n", min=1, max=40, help="Catalogue objects shown."
    ),
    listings: int = typer.Option(15, "--listings", min=0, max=60, help="Listing photos shown."),
) -> None:
    """One PNG of generated catalogue objects (several views) and simulated listing photos."""
    from .contact_sheet import make_contact_sheet

    with console.status("rendering contact sheet"):
        path = make_contact_sheet(out, seed=seed, objects=objects, listings=listings)
    console.print(f"contact sheet -> {path}")


if __name__ == "__main__":  # pragma: no cover - `python -m artwatch.demo.cli`
    app()
