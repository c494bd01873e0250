"""An embedded PostgreSQL (the `pgserver` package) living in the data directory.

The server keeps running between artwatch commands (it is a daemon's database, not a
test fixture) and is stopped by `artwatch services down`. It listens on a Unix socket only.
"""

from __future__ import annotations

import os
import subprocess
import warnings
from pathlib import Path

import psycopg

DATABASE = "artwatch"

# pgserver asks platformdirs for a runtime dir at import; its fallback warning is noise.
warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")


class EmbeddedPostgres:
    """Start, reuse and stop the PostgreSQL server whose PGDATA is `pgdata`."""

    def __init__(self, pgdata: Path) -> None:
        self.pgdata = Path(pgdata)

    def ensure_running(self) -> str:
        """Start the server if needed, create the artwatch database, return its URL."""
        import pgserver

        self.pgdata.mkdir(parents=True, exist_ok=True)
        server = pgserver.get_server(self.pgdata, cleanup_mode=None)
        admin_url = server.get_uri()
        with psycopg.connect(admin_url, autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)
            ).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{DATABASE}"')
        return server.get_uri(DATABASE)

    def pid(self) -> int | None:
        """The postmaster's pid when it is running, else None."""
        from pgserver.utils import PostmasterInfo

        info = PostmasterInfo.read_from_pgdata(self.pgdata)
        if info is None or not info.is_running():
            return None
        return info.pid

    def url(self) -> str | None:
        """The running server's URL, without starting anything."""
        from pgserver.utils import PostmasterInfo

        info = PostmasterInfo.read_from_pgdata(self.pgdata)
        if info is None or not info.is_running():
            return None
        return info.get_uri(database=DATABASE)

    def stop(self) -> bool:
        """Stop a running server cleanly (fast shutdown); True if one was stopped."""
        if self.pid() is None:
            return False
        from pgserver import pg_ctl

        user = "pgserver" if os.geteuid() == 0 else None
        try:
            pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.pgdata, user=user)
        except subprocess.CalledProcessError:
            return self.pid() is None
        return True
