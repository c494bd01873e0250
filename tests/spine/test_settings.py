"""Settings: environment, config file, and a wrong value named at start."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from artwatch.settings import SettingsError, load_settings


def test_environment_and_toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "artwatch.toml"
    config.write_text('smtp_host = "mail.example.org"\nsmtp_port = 2525\n')
    monkeypatch.setenv("ARTWATCH_CONFIG", str(config))
    monkeypatch.setenv("ARTWATCH_SMTP_PORT", "465")
    settings = load_settings()
    assert settings.smtp_host == "mail.example.org"
    assert settings.smtp_port == 465  # the environment wins over the file


def test_wrong_value_names_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARTWATCH_MAX_IMAGE_PIXELS", "lots")
    with pytest.raises(SettingsError, match="ARTWATCH_MAX_IMAGE_PIXELS"):
        load_settings()
    monkeypatch.setenv("ARTWATCH_MAX_IMAGE_PIXELS", "1000000")
    monkeypatch.setenv("ARTWATCH_DATABASE_URL", "mysql://db/x")
    with pytest.raises(SettingsError, match="ARTWATCH_DATABASE_URL"):
        load_settings()


def test_unknown_key_in_config_file_is_an_error(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "artwatch.toml"
    config.write_text("smtp_hots = 'typo'\n")
    monkeypatch.setenv("ARTWATCH_CONFIG", str(config))
    with pytest.raises(SettingsError, match="smtp_hots"):
        load_settings()


def test_cli_fails_at_start_on_wrong_setting() -> None:
    env = dict(os.environ, ARTWATCH_SMTP_PORT="not-a-port")
    proc = subprocess.run([sys.executable, "-m", "artwatch.cli", "db", "status"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "ARTWATCH_SMTP_PORT" in proc.stdout + proc.stderr


def _artwatch(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The CLI as a user runs it, in its own process, with these ARTWATCH_* variables."""
    return subprocess.run([sys.executable, "-m", "artwatch.cli", *args],
                          env=dict(os.environ, COLUMNS="200", **env),
                          capture_output=True, text=True, timeout=120)


def test_invalid_digest_cron_is_refused_at_load_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for value, words in (("0 25 * * *", "hour '25'"), ("every morning", "five fields"),
                         ("0 7 L * *", "day of month 'L'"), ("61 7 * * *", "minute '61'")):
        monkeypatch.setenv("ARTWATCH_DIGEST_CRON", value)
        with pytest.raises(SettingsError, match="ARTWATCH_DIGEST_CRON") as caught:
            load_settings()
        assert words in str(caught.value)
    monkeypatch.setenv("ARTWATCH_DIGEST_CRON", "30 6 * * mon-fri")
    assert load_settings().digest_cron == "30 6 * * mon-fri"
    proc = _artwatch("digest", "send", ARTWATCH_DIGEST_CRON="0 25 * * *")
    assert proc.returncode == 2
    assert "ARTWATCH_DIGEST_CRON" in proc.stdout and "Traceback" not in proc.stderr
    # What celery beat loads (alerts.tasks builds the schedule at import) names it too.
    beat = subprocess.run([sys.executable, "-c", "import alerts.tasks"], capture_output=True,
                          text=True, timeout=120,
                          env=dict(os.environ, ARTWATCH_DIGEST_CRON="0 25 * * *"))
    assert beat.returncode != 0
    assert "SettingsError" in beat.stderr and "ARTWATCH_DIGEST_CRON" in beat.stderr


def test_misspelt_variable_is_named_with_the_closest_setting(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from artwatch.settings import unknown_environment

    monkeypatch.setenv("ARTWATCH_MAX_IMAGE_BYTE", "1000")
    monkeypatch.setenv("ARTWATCH_ZZZ", "1")
    assert ("ARTWATCH_MAX_IMAGE_BYTE", "ARTWATCH_MAX_IMAGE_BYTES") in unknown_environment()
    assert ("ARTWATCH_ZZZ", None) in unknown_environment()
    with caplog.at_level("WARNING", logger="artwatch.settings"):
        settings = load_settings()
    assert settings.max_image_bytes == 40 * 1024 * 1024  # ignored, as the warning says
    assert ("ARTWATCH_MAX_IMAGE_BYTE is not an artwatch setting and is ignored; "
            "did you mean ARTWATCH_MAX_IMAGE_BYTES?") in caplog.text
    proc = _artwatch("db", "status", ARTWATCH_MAX_IMAGE_BYTE="1000")
    assert proc.returncode == 0, proc.stderr
    assert "did you mean ARTWATCH_MAX_IMAGE_BYTES?" in proc.stderr
    assert "ARTWATCH_TEST_ADMIN_URL" not in proc.stderr  # the suite's own variables are known


def test_data_dir_that_is_a_file_is_one_line_naming_the_setting(tmp_path: Path) -> None:
    a_file = tmp_path / "data"
    a_file.write_text("not a directory")
    for data_dir in (a_file, a_file / "below"):
        proc = _artwatch("services", "status", ARTWATCH_DATA_DIR=str(data_dir))
        assert proc.returncode == 2
        out = (proc.stdout + proc.stderr).strip()
        assert len(out.splitlines()) == 1 and "Traceback" not in out, out
        assert f"ARTWATCH_DATA_DIR (data_dir): {data_dir}" in out and "not a directory" in out


def test_unreachable_database_url_is_one_line_naming_the_setting() -> None:
    url = "postgresql://artwatch:s3cret@127.0.0.1:1/nowhere"
    for command in (("db", "status"), ("db", "migrate"), ("catalogue", "stats"),
                    ("reviewers", "list")):
        proc = _artwatch(*command, ARTWATCH_DATABASE_URL=url)
        assert proc.returncode == 2, (command, proc.stdout, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in proc.stderr, (command, proc.stderr)
        assert lines[0].startswith("error: ARTWATCH_DATABASE_URL "
                                   "(postgresql://artwatch:***@127.0.0.1:1/nowhere): "
                                   "cannot connect:"), lines[0]
        assert "s3cret" not in proc.stdout + proc.stderr
