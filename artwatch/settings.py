"""Settings from `ARTWATCH_*` environment variables and an optional `artwatch.toml`.

One object holds every knob so that a wrong value fails at start, naming the setting,
instead of half-way through a crawl. An `ARTWATCH_*` environment variable that names no
setting (a typo such as `ARTWATCH_MAX_IMAGE_BYTE`) is ignored with a warning that names
the closest known one; an unknown key in `artwatch.toml` is an error.
"""

from __future__ import annotations

import difflib
import logging
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import platformdirs
from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SecretsSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

CONFIG_ENV = "ARTWATCH_CONFIG"
DEFAULT_CONFIG_FILE = "artwatch.toml"
SECRETS_DIR_ENV = "ARTWATCH_SECRETS_DIR"  # Docker/Compose secrets: a file per setting
ENV_PREFIX = "ARTWATCH_"
# ARTWATCH_* variables read by something other than Settings (the config file's location,
# the secrets directory, the test suite's and benchmarks' servers).
OTHER_ENV = frozenset({CONFIG_ENV, SECRETS_DIR_ENV, "ARTWATCH_TEST_ADMIN_URL",
                       "ARTWATCH_TEST_REDIS", "ARTWATCH_BENCH_REDIS"})

log = logging.getLogger(__name__)


class SettingsError(RuntimeError):
    """A setting has a wrong value; the message names the setting."""


def config_file() -> Path | None:
    explicit = os.environ.get(CONFIG_ENV)
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise SettingsError(f"{CONFIG_ENV}={explicit}: no such file")
        return path
    local = Path.cwd() / DEFAULT_CONFIG_FILE
    return local if local.is_file() else None


class Settings(BaseSettings):
    """artwatch configuration (environment wins over the config file)."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid")

    data_dir: Path = Field(
        default_factory=lambda: Path(platformdirs.user_data_dir("artwatch")),
        description="Where images, embedded services, bundles and outbox live.",
    )
    database_url: str | None = Field(
        default=None, description="PostgreSQL URL; unset starts an embedded server."
    )
    redis_url: str | None = Field(
        default=None, description="Redis URL (Celery broker); unset starts an embedded one."
    )
    db_pool_max: int = Field(default=8, ge=1, le=256)
    db_retry_s: float = Field(
        default=120.0, ge=0,
        description="How long work waits (with back-off) for an unavailable PostgreSQL before "
        "giving up: a matcher batch then hands its messages back, a crawl drops the lot.",
    )

    # Image store guards (outside input: listing photos from the internet).
    max_image_bytes: int = Field(default=40 * 1024 * 1024, ge=1024)
    max_image_pixels: int = Field(default=60_000_000, ge=10_000)
    min_image_side: int = Field(
        default=32, ge=1, le=4096,
        description="Photos narrower or lower than this many pixels are rejected (docs/images.md).",
    )

    # Crawling politeness and identity.
    user_agent_contact: str = Field(
        default="https://artwatch.invalid/crawler", description="Contact URL in the User-Agent."
    )
    chromium_path: Path = Field(
        default=Path("/usr/bin/chromium"), description="System Chromium for Playwright."
    )

    # Alert delivery; no SMTP host means digests go to the outbox directory.
    smtp_host: str | None = None
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None
    smtp_security: str = Field(default="starttls", pattern="^(starttls|ssl|none)$")
    mail_from: str = "artwatch <artwatch@localhost>"
    web_secret: SecretStr | None = Field(
        default=None, description="Signs review links and sessions; generated if unset."
    )
    web_base_url: str = "http://127.0.0.1:8000"

    # Matching: how predictions become suspected matches.
    match_top_k: int = Field(default=5, ge=1, le=50, description="Candidates per listing.")
    match_operating_point: str = Field(
        default="precision_0.95",
        pattern=r"^(precision_0\.\d+|alerts_per_1000_[\d.]+)$",
        description="Which of the bundle's calibrated operating points decides an alert "
        "(the matcher refuses to start when the bundle does not hold it).",
    )
    match_candidate_floor: float = Field(
        default=0.01, ge=0.0, le=1.0,
        description="Listing probability below which a candidate is not shown to reviewers.",
    )
    matcher_device: str = Field(default="cpu", pattern=r"^(cpu|cuda(:\d+)?)$")
    matcher_batch_size: int = Field(
        default=64, ge=1, le=4096,
        description="Photos' messages a matcher worker handles as one batch (model batch); "
        "the worker's prefetch is set from it.",
    )
    matcher_flush_interval_s: float = Field(
        default=1.0, gt=0, le=60, description="A partial batch is handled after this long."
    )
    matcher_decode_threads: int = Field(
        default=0, ge=0, le=256, description="Photo decoding threads; 0: one per CPU core."
    )
    matcher_retrieval_chunk: int = Field(
        default=65_536, ge=1024, description="Catalogue rows per retrieval matrix product."
    )
    matcher_catalogue_dtype: str = Field(
        default="float32", pattern="^(float32|bfloat16|float16)$",
        description="Precision of the in-memory catalogue matrix (bfloat16: half the memory).",
    )
    backbone_precision: str = Field(
        default="auto", pattern="^(auto|float32|bfloat16)$",
        description="The backbone's inference number format (training and matchers): auto is "
        "bfloat16 on CUDA and on CPUs with native bfloat16, float32 elsewhere.",
    )
    backbone_compile: str = Field(
        default="auto", pattern="^(auto|on|off)$",
        description="torch.compile the backbone's inference forward: auto compiles training's "
        "large passes (2,000 images and up), not a matcher's stream.",
    )
    matcher_visibility_timeout_s: float = Field(
        default=300.0, ge=10,
        description="A matcher message not acknowledged this long (worker killed) is redelivered.",
    )
    matcher_sweep_interval_s: float = Field(
        default=60.0, gt=0, description="How often beat runs the matcher's sweeper."
    )
    matcher_recover_after_s: float = Field(
        default=300.0, ge=1,
        description="A stored listing photo without a prediction (or a listing without its "
        "score) this long after it was queued is queued again by the sweeper.",
    )
    matcher_max_attempts: int = Field(
        default=5, ge=1, le=100,
        description="Times the sweeper re-queues a photo before marking it failed.",
    )
    matcher_sweep_limit: int = Field(
        default=5000, ge=1, description="At most this many photos re-queued per sweep."
    )
    # Alerts (alerts/): digest schedule, urgent threshold, candidates shown, link lifetime.
    smtp_timeout_s: float = Field(default=30.0, gt=0)
    smtp_ca_file: Path | None = Field(default=None, description="Extra CA for the SMTP server.")
    alert_top_k: int = Field(default=5, ge=1, le=50)
    alert_urgent_score: float = Field(default=0.95, ge=0.0, le=1.0)
    digest_cron: str = Field(default="0 7 * * *", description="When digests go out (UTC).")
    review_link_max_age_s: int = Field(default=7 * 24 * 3600, ge=60)
    # Review web app: sign-in sessions and throttling of password guessing (docs/web.md).
    web_session_max_age_s: int = Field(default=12 * 3600, ge=300, le=30 * 24 * 3600)
    web_login_window_s: int = Field(default=900, ge=10, le=7 * 24 * 3600)
    web_login_max_failures_account: int = Field(default=10, ge=1, le=10_000)
    web_login_max_failures_address: int = Field(default=30, ge=1, le=100_000)

    @field_validator("data_dir")
    @classmethod
    def _data_dir_is_a_directory(cls, value: Path) -> Path:
        """A file where the data directory (or one of its parents) should be is refused."""
        value = Path(value).expanduser()
        for path in (value, *value.parents):
            try:
                exists, is_dir = path.exists(), path.is_dir()
            except OSError:  # unreadable: whoever creates the directory says why
                return value
            if exists:
                if not is_dir:
                    what = "is a file" if path == value else f"is inside {path}, a file"
                    raise ValueError(f"{value} {what}, not a directory")
                break
        return value

    @field_validator("digest_cron")
    @classmethod
    def _digest_cron(cls, value: str) -> str:
        from artwatch.cron import crontab_of  # the parser Celery beat uses

        crontab_of(value)
        return value

    # The daemon (`artwatch run`): which children it supervises.
    matcher_devices: str | None = Field(
        default=None,
        pattern=r"^(cpu|cuda(:\d+)?)(,(cpu|cuda(:\d+)?))*$",
        description="Comma-separated devices, one matcher worker each (default: matcher_device).",
    )
    worker_concurrency: int = Field(
        default=2, ge=1, le=64, description="Tasks at once on the `artwatch` queue worker."
    )
    web_listen: str = Field(
        default="127.0.0.1:8000", pattern=r"^[^:\s]+:\d{1,5}$",
        description="host:port the review web app listens on under `artwatch run`.",
    )
    run_web: bool = Field(default=True, description="Supervise the review web app too.")
    daemon: str = Field(
        default="supervisord", pattern="^(supervisord|external)$",
        description="external: the children run as containers (Compose), not `artwatch run`.",
    )

    # Where listing and catalogue photos live: a local directory (default) or S3-compatible.
    image_store: str | None = Field(
        default=None, pattern=r"^(s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?|/.*)$",
        description="s3://bucket[/prefix] or an absolute directory; unset: DATA_DIR/images.",
    )
    s3_endpoint_url: str | None = Field(
        default=None, description="S3-compatible endpoint (MinIO: http://minio:9000)."
    )
    s3_region: str | None = Field(default=None, description="S3 region name, if it needs one.")

    @field_validator("database_url", "redis_url")
    @classmethod
    def _url_scheme(cls, value: str | None, info: Any) -> str | None:
        if value is None or value == "":
            return None
        allowed = {
            "database_url": ("postgresql://", "postgres://"),
            "redis_url": ("redis://", "rediss://", "redis+socket://", "unix://"),
        }[info.field_name]
        if not value.startswith(allowed):
            raise ValueError(f"must start with one of {', '.join(allowed)}")
        return value

    @field_validator("match_operating_point")
    @classmethod
    def _canonical_point(cls, value: str) -> str:
        """`precision_0.9` and `precision_0.90` name one point: bundles store two decimals."""
        kind, _, number = value.rpartition("_")
        if kind == "precision":
            return f"precision_{float(number):.2f}"
        return f"{kind}_{float(number):g}"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        secrets = os.environ.get(SECRETS_DIR_ENV)
        if secrets:  # one file per setting, e.g. /run/secrets/artwatch_database_url
            if not Path(secrets).is_dir():
                raise SettingsError(f"{SECRETS_DIR_ENV}={secrets}: no such directory")
            sources.append(SecretsSettingsSource(settings_cls, secrets_dir=secrets))
        path = config_file()
        if path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)

    @property
    def images_dir(self) -> Path:
        return self.data_dir / "images"

    @property
    def bundles_dir(self) -> Path:
        return self.data_dir / "bundles"

    @property
    def local_features_dir(self) -> Path:
        """Cache of catalogue photos' local features (rebuilt from the image store)."""
        return self.data_dir / "local-features"

    @property
    def services_dir(self) -> Path:
        return self.data_dir / "services"

    @property
    def outbox_dir(self) -> Path:
        return self.data_dir / "outbox"

    @property
    def run_dir(self) -> Path:
        """The daemon's generated supervisor config, control socket and state."""
        return self.data_dir / "run"

    @property
    def logs_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def matcher_device_list(self) -> list[str]:
        """One matcher worker per entry (`matcher_devices`, else `matcher_device`)."""
        if self.matcher_devices:
            return self.matcher_devices.split(",")
        return [self.matcher_device]


def unknown_environment(environ: dict[str, str] | None = None) -> list[tuple[str, str | None]]:
    """`ARTWATCH_*` variables that name no setting, each with the closest known name or None."""
    environ = os.environ if environ is None else environ
    known = {ENV_PREFIX + name.upper() for name in Settings.model_fields} | OTHER_ENV
    # Compared without the shared prefix, which would make every name look alike.
    tails = {name[len(ENV_PREFIX):]: name for name in known}
    unknown = []
    for name in sorted(environ):
        upper = name.upper()
        if upper.startswith(ENV_PREFIX) and upper not in known:
            close = difflib.get_close_matches(upper[len(ENV_PREFIX):], sorted(tails), n=1,
                                              cutoff=0.6)
            unknown.append((name, tails[close[0]] if close else None))
    return unknown


def warn_unknown_environment() -> None:
    """Log a warning for every misspelt `ARTWATCH_*` variable (it would be silently ignored)."""
    for name, close in unknown_environment():
        hint = f"did you mean {close}?" if close else "no setting has a similar name"
        log.warning("%s is not an artwatch setting and is ignored; %s", name, hint)


def _message(err: Any) -> str:
    return str(err["msg"]).removeprefix("Value error, ")


def load_settings(**overrides: Any) -> Settings:
    """Build settings, turning validation errors into one readable message."""
    warn_unknown_environment()
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            name = ".".join(str(p) for p in err["loc"]) or "?"
            problems.append(f"{ENV_PREFIX}{name.upper()} ({name}): {_message(err)}")
        raise SettingsError("invalid setting: " + "; ".join(problems)) from None


def redact_url(url: str) -> str:
    """A URL safe to print: passwords never reach a terminal or a log."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Process-wide settings, read once."""
    return load_settings()
