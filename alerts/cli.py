"""CLI of the alerting stage: the review web app, reviewer accounts, digests.

The lead mounts these in `artwatch/cli.py`, either as one group (`artwatch alerts ...`) via
`app`, or at the top level as the issue names them:

    main.command("web")(web_command)
    main.add_typer(reviewers_app, name="reviewers")
    main.add_typer(digest_app, name="digest")
"""

from __future__ import annotations

import sys

import typer
from rich.console import Console
from rich.table import Table

console = Console()
app = typer.Typer(help="Alerts: digests, urgent alerts, reviewer accounts, the review web app.",
                  no_args_is_help=True)
reviewers_app = typer.Typer(help="Reviewer accounts (who gets digests and may review).",
                            no_args_is_help=True)
digest_app = typer.Typer(help="Send digests and urgent alerts now.", no_args_is_help=True)


def _conn():
    from artwatch.db import connect

    return connect(autocommit=True)


def web_command(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8000, help="TCP port."),
    workers: int = typer.Option(1, min=1, help="uvicorn worker processes."),
) -> None:
    """Serve the review web app (queue, match pages, signed e-mail links, search, submit)."""
    import logging

    import uvicorn

    from alerts.web import create_app
    from artwatch.db import connect, database_url, migrate

    # The app's own events (sign-in throttling) beside uvicorn's access log.
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    url = database_url()
    migrate(url)  # the sessions and sign-in tables; raises one line if unreachable
    with connect(url) as conn:
        conn.execute("SELECT 1")
    if workers > 1:
        uvicorn.run("alerts.web:create_app", factory=True, host=host, port=port,
                    workers=workers, proxy_headers=True)
    else:
        uvicorn.run(create_app(), host=host, port=port, proxy_headers=True)


PASSWORD_STDIN = typer.Option(
    False, "--password-stdin", help="Read the password from standard input (scripts)."
)


def _read_password(from_stdin: bool, prompt: str) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    return typer.prompt(prompt, hide_input=True, confirmation_prompt=True)


def _run_refusing_weak(fn, *args, **kwargs):
    """fn(conn, ...) on a fresh connection; a weak password or bad e-mail exits 2 with why."""
    from alerts.passwords import WeakPassword

    try:
        with _conn() as conn:
            return fn(conn, *args, **kwargs)
    except (WeakPassword, ValueError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None


@reviewers_app.command("add")
def reviewers_add(
    email: str = typer.Argument(..., help="Where digests go; also the login name."),
    name: str = typer.Option("", help="Display name."),
    team: str = typer.Option(None, help="Team (shown in lists)."),
    password_stdin: bool = PASSWORD_STDIN,
    no_login: bool = typer.Option(
        False, "--no-login", help="Mail-only recipient, e.g. a team's list (signed links work)."
    ),
) -> None:
    """Create a reviewer (or reset an existing one's password and re-activate it)."""
    from alerts.reviewers import add_reviewer

    password = None if no_login else _read_password(password_stdin, "Password")
    reviewer = _run_refusing_weak(add_reviewer, email, password, name=name, team=team)
    login = "mail only" if no_login else "can sign in"
    console.print(f"reviewer {reviewer.id}: {reviewer.email} (active, {login})")


@reviewers_app.command("password")
def reviewers_password(
    email: str = typer.Argument(..., help="The reviewer whose password changes."),
    password_stdin: bool = PASSWORD_STDIN,
) -> None:
    """Change a reviewer's password; every browser signed in as them is signed out."""
    from alerts.reviewers import set_password

    password = _read_password(password_stdin, "New password")
    if not _run_refusing_weak(set_password, email, password):
        console.print(f"[red]error:[/red] no reviewer {email}")
        raise typer.Exit(1)
    console.print(f"{email}: password changed; all their web sessions ended")


@reviewers_app.command("list")
def reviewers_list() -> None:
    """Show every reviewer account."""
    from alerts.reviewers import list_reviewers

    with _conn() as conn:
        rows = list_reviewers(conn)
    table = Table("id", "e-mail", "name", "team", "active")
    for r in rows:
        table.add_row(str(r.id), r.email, r.name, r.team or "", "yes" if r.active else "no")
    console.print(table)


@reviewers_app.command("disable")
def reviewers_disable(email: str) -> None:
    """Stop digests to a reviewer, end their web sessions, refuse their logins and links."""
    from alerts.reviewers import set_active

    with _conn() as conn:
        if not set_active(conn, email, False):
            console.print(f"[red]error:[/red] no reviewer {email}")
            raise typer.Exit(1)
    console.print(f"{email} disabled")


def _print_report(report) -> None:
    data = report.as_dict()
    console.print(
        f"prepared {data['prepared']}, sent {data['sent']}, deferred {data['deferred']}, "
        f"failed {data['failed']}"
    )
    for error in data["errors"]:
        console.print(f"[yellow]{error}[/yellow]")
    if data["failed"] or data["deferred"]:
        raise typer.Exit(1)


@digest_app.command("send")
def digest_send() -> None:
    """Send each reviewer the suspected matches not yet sent to them (SMTP or outbox)."""
    from alerts.dispatch import send_digests

    _print_report(send_digests())


@digest_app.command("urgent")
def digest_urgent(
    match_ids: list[int] = typer.Argument(None, help="Only these matches (default: all)."),
) -> None:
    """Send urgent alerts now for open matches at or above `alert_urgent_score`."""
    from alerts.dispatch import send_urgent

    _print_report(send_urgent(match_ids or None))


app.command("web")(web_command)
app.add_typer(reviewers_app, name="reviewers")
app.add_typer(digest_app, name="digest")
