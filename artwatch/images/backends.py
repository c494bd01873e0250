"""Where the image store keeps bytes: a local directory or an S3-compatible bucket.

The store (`artwatch.images.store`) checks, names and describes photos; a backend only
answers `exists`, `read` and `write` for a key `ab/cd/<sha256>`. Both backends make a write
appear whole or not at all, and both are safe to call from many processes at once: two
writers of one key write the same bytes.

S3 goes through boto3, whose credential chain is the standard one (`AWS_ACCESS_KEY_ID` /
`AWS_SECRET_ACCESS_KEY`, or a credentials file named by `AWS_SHARED_CREDENTIALS_FILE`, e.g. a
Compose secret), so no secret passes through artwatch's own settings or logs.
"""

from __future__ import annotations

import base64
import threading
from pathlib import Path
from typing import Any, Protocol

from artwatch.files import write_atomic
from artwatch.settings import Settings, get_settings


class Backend(Protocol):
    location: str

    def exists(self, key: str) -> bool: ...

    def read(self, key: str) -> bytes: ...

    def write(self, key: str, data: bytes, sha256: str) -> None: ...

    def local_path(self, key: str) -> Path | None: ...


class LocalBackend:
    """Files under `root`, written with temp file + fsync + rename."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.location = str(self.root)

    def local_path(self, key: str) -> Path:
        return self.root / key

    def exists(self, key: str) -> bool:
        return self.local_path(key).is_file()

    def read(self, key: str) -> bytes:
        return self.local_path(key).read_bytes()

    def write(self, key: str, data: bytes, sha256: str) -> None:
        write_atomic(self.local_path(key), data)


class S3Backend:
    """Objects `prefix/ab/cd/<sha256>` in `bucket` of an S3-compatible server.

    A PUT carries the photo's sha256 (`ChecksumSHA256`): the server refuses bytes that were
    damaged on the way, so a stored object always is the photo its name says.
    """

    def __init__(self, bucket: str, prefix: str = "", *, endpoint_url: str | None = None,
                 region: str | None = None) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint_url = endpoint_url
        self.region = region
        self.location = f"s3://{bucket}" + (f"/{self.prefix}" if self.prefix else "")
        self._local = threading.local()  # a client per thread: cheap, and never shared

    @property
    def client(self) -> Any:
        client = getattr(self._local, "client", None)
        if client is None:
            import boto3
            from botocore.config import Config

            client = boto3.session.Session().client(
                "s3", endpoint_url=self.endpoint_url, region_name=self.region,
                config=Config(retries={"max_attempts": 5, "mode": "standard"},
                              connect_timeout=10, read_timeout=60,
                              s3={"addressing_style": "path"}),
            )
            self._local.client = client
        return client

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def local_path(self, key: str) -> None:
        return None

    @staticmethod
    def _missing(exc: Exception) -> bool:
        error = getattr(exc, "response", {}).get("Error", {})
        return str(error.get("Code")) in ("404", "NoSuchKey", "NotFound")

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if self._missing(exc):
                return False
            raise
        return True

    def read(self, key: str) -> bytes:
        from botocore.exceptions import ClientError

        try:
            reply = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if self._missing(exc):
                raise FileNotFoundError(f"{self.location}/{key}") from None
            raise
        return reply["Body"].read()

    def write(self, key: str, data: bytes, sha256: str) -> None:
        self.client.put_object(
            Bucket=self.bucket, Key=self._key(key), Body=data,
            ChecksumSHA256=base64.b64encode(bytes.fromhex(sha256)).decode("ascii"),
            ContentType="application/octet-stream",
        )


def backend_for(location: str, settings: Settings | None = None) -> Backend:
    """The backend of a store location: `s3://bucket[/prefix]` or a directory path."""
    if location.startswith("s3://"):
        settings = settings or get_settings()
        bucket, _, prefix = location[len("s3://"):].partition("/")
        return S3Backend(bucket, prefix, endpoint_url=settings.s3_endpoint_url,
                         region=settings.s3_region)
    return LocalBackend(Path(location))
