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
