"""docker-compose.yml without a Docker daemon: it validates against the Compose specification
(the schema check-jsonschema ships), and every command it runs in an artwatch image is a real
command of this project whose options parse (each is run with --help appended).
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"


def _check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec",
         str(path)], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def _ours(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Services that run the artwatch image."""
    return {n: s for n, s in compose["services"].items()
            if str(s.get("image", "")).startswith("artwatch:")}


def test_compose_file_validates_against_the_compose_spec(tmp_path: Path) -> None:
    done = _check(COMPOSE)
    assert done.returncode == 0, done.stdout + done.stderr
    broken = tmp_path / "docker-compose.yml"  # the check is not vacuous
    broken.write_text(COMPOSE.read_text().replace("    restart: unless-stopped\n",
                                                  "    restart_policy: always\n", 1))
    assert _check(broken).returncode != 0


def _commands(service: dict[str, Any]) -> list[list[str]]:
    found = [list(service["command"])]
    test = service.get("healthcheck", {}).get("test")
    if test and test[0] == "CMD-SHELL":
        found.append(shlex.split(test[1].replace("$$", "$")))
    elif test and test[0] == "CMD":
        found.append(list(test[1:]))
    return [c for c in found if c[0] in ("celery", "artwatch")]


def test_every_command_is_a_real_artwatch_or_celery_command(compose) -> None:
    ours = _ours(compose)
    assert {"migrate", "beat", "worker", "matcher", "web"} <= set(ours)
    seen = 0
    for name, service in ours.items():
        assert "command" in service, f"{name} relies on the image's default command"
        for command in _commands(service):
            program = {"celery": ["-m", "celery"], "artwatch": ["-m", "artwatch.cli"]}
            argv = [sys.executable, *program[command[0]], *command[1:], "--help"]
            done = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=ROOT)
            assert done.returncode == 0, f"{name}: {shlex.join(command)}\n{done.stderr[-2000:]}"
            seen += 1
    assert seen >= 7  # five commands and the health checks of the worker and the matcher


def test_production_shape(compose) -> None:
    text = COMPOSE.read_text()
    assert not re.search(r"://[^/\s:@$]+:[^@\s$]+@", text), "credentials written in the file"
    services = compose["services"]
    assert services["beat"]["deploy"]["replicas"] == 1
    gpu = services["matcher"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["capabilities"] == ["gpu"] and gpu["count"] == 1
    assert services["matcher"]["environment"]["ARTWATCH_MATCHER_DEVICE"] == "cuda"
    assert services["postgres"]["image"].startswith("pgvector/pgvector")
    for name in ("postgres", "redis", "minio", "worker", "matcher", "web"):
        assert "healthcheck" in services[name], name
    for name in ("postgres", "redis", "minio", "beat", "worker", "matcher", "web"):
        assert services[name]["restart"] == "unless-stopped", name
    env = services["worker"]["environment"]
    assert env["ARTWATCH_IMAGE_STORE"].startswith("s3://")  # shared by crawler and matchers
    assert env["ARTWATCH_SECRETS_DIR"] == "/run/secrets"
    for secret in compose["secrets"].values():
        assert secret["file"].startswith("./secrets/")
    for dockerfile in ("Dockerfile", "Dockerfile.cuda"):
        assert (ROOT / dockerfile).is_file()
    assert "Dockerfile.cuda" in services["matcher"]["build"]["dockerfile"]
    assert "/secrets/" in (ROOT / ".gitignore").read_text()


def test_settings_read_compose_secrets(tmp_path: Path, monkeypatch) -> None:
    """ARTWATCH_SECRETS_DIR: one file per setting, as Compose mounts them in /run/secrets."""
    from artwatch.settings import SettingsError, load_settings

    (tmp_path / "artwatch_database_url").write_text("postgresql://a:b@db/artwatch\n")
    (tmp_path / "postgres_password").write_text("not a setting: ignored\n")
    monkeypatch.delenv("ARTWATCH_DATABASE_URL", raising=False)
    monkeypatch.setenv("ARTWATCH_SECRETS_DIR", str(tmp_path))
    assert load_settings().database_url == "postgresql://a:b@db/artwatch"
    monkeypatch.setenv("ARTWATCH_DATABASE_URL", "postgresql://env/wins")
    assert load_settings().database_url == "postgresql://env/wins"
    monkeypatch.setenv("ARTWATCH_SECRETS_DIR", str(tmp_path / "missing"))
    with pytest.raises(SettingsError):
        load_settings()
