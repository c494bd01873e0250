"""`serve`: run the local auction houses until interrupted (for the demo and by hand)."""

from __future__ import annotations

import time
from pathlib import Path

import typer

app = typer.Typer(help="The local auction house (loopback HTTP servers).", no_args_is_help=True)


@app.command("serve")
def serve(
    catalogue: Path = typer.Option(None, help="Generated catalogue dir (manifest.csv)."),
    lots: int = typer.Option(30, help="Lots per house."),
    seed: int = typer.Option(0, help="Seed for the houses' content."),
    rate_limit: float = typer.Option(0, help="Requests/s per house before 429 (0: none)."),
    register: bool = typer.Option(
        False, help="Add/replace the houses as sources (allow_private) in the database."
    ),
) -> None:
    """Start the three houses (HTML, JSON API, JavaScript) on 127.0.0.1 and wait."""
    from artwatch.demo.auction_house import default_configs, start_houses

    configs = default_configs(seed=seed, lots=lots)
    for config in configs:
        config.rate_limit = rate_limit or None
    houses = start_houses(configs, catalogue)
    for house in houses.values():
        typer.echo(f"{house.config.name:12s} {house.config.style:4s} {house.start_url}")
    if register:
        from artwatch.db import connect
        from crawler.sources import add_source

        with connect(autocommit=True) as conn:
            for house in houses.values():
                add_source(conn, house.config.name, house.config.spider,
                           [house.start_url], allow_private=True)
        typer.echo("registered as sources")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        for house in houses.values():
            house.stop()
