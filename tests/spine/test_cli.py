"""The CLI: command groups listed, services status against the configured servers."""

from __future__ import annotations

from typer.testing import CliRunner

from artwatch.cli import app
from artwatch.settings import redact_url

runner = CliRunner()


def test_help_lists_command_groups() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for group in ("services", "db", "catalogue", "demo"):
        assert group in result.output


def test_services_status_uses_configured_servers(clean_db: str) -> None:
    result = runner.invoke(app, ["services", "status"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert result.output.count("external") == 2
    assert "up, schema v" in result.output and "up, redis" in result.output
    # Migration numbers have gaps (1, 3, ...): a fully migrated database has none pending.
    from artwatch.db.migrate import available_migrations

    latest = max(m.version for m in available_migrations())
    assert "pending" not in result.output and f"schema v{latest}, current" in result.output


def test_db_status_lists_applied_migrations(clean_db: str) -> None:
    result = runner.invoke(app, ["db", "status"])
    assert result.exit_code == 0
    assert "0001_schema: applied" in result.output


def test_passwords_never_printed() -> None:
    assert redact_url("redis://:s3cret@127.0.0.1:6379/0") == "redis://:***@127.0.0.1:6379/0"
    assert "s3cret" not in redact_url("postgresql://user:s3cret@db/artwatch")
