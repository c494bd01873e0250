"""Bundles as rows: register, list, and activate the one bundle the matcher uses.

Activation clears the old active row and sets the new one in one transaction; the partial
unique index `bundles_one_active_idx` makes two active bundles impossible even under races.
"""

from __future__ import annotations

from pathlib import Path

from psycopg.types.json import Jsonb

from matcher.bundle import read_info


class RegistryError(LookupError):
    """No bundle of that name is registered."""


def register_bundle(conn, path: Path, *, activate: bool = False) -> int:  # noqa: ANN001
    """Upsert the bundle at `path` by name; return its id."""
    path = Path(path).resolve()
    info = read_info(path)
    name = str(info.get("name") or path.name)
    with conn.transaction():
        row = conn.execute(
            """
            INSERT INTO bundles (name, path, architecture, manifest_hash, info)
            VALUES (%s, %s, %s, %s, %s)
            ON CONFLICT (name) DO UPDATE SET path = EXCLUDED.path,
                architecture = EXCLUDED.architecture, manifest_hash = EXCLUDED.manifest_hash,
                info = EXCLUDED.info
            RETURNING id
            """,
            (name, str(path), info["architecture"], info.get("manifest_hash"), Jsonb(info)),
        ).fetchone()
    bundle_id = int(row["id"])
    if activate:
        activate_bundle(conn, name)
    return bundle_id


def activate_bundle(conn, name: str) -> int:  # noqa: ANN001
    """Make `name` the only active bundle (one transaction); return its id."""
    with conn.transaction():
        row = conn.execute("SELECT id FROM bundles WHERE name = %s FOR UPDATE", (name,)).fetchone()
        if row is None:
            raise RegistryError(f"no bundle named {name!r}")
        conn.execute("UPDATE bundles SET active = false WHERE active AND id <> %s", (row["id"],))
        conn.execute("UPDATE bundles SET active = true, activated_at = now() WHERE id = %s",
                     (row["id"],))
    return int(row["id"])


def list_bundles(conn) -> list[dict]:  # noqa: ANN001
    return conn.execute(
        """
        SELECT id, name, path, architecture, manifest_hash, active, created_at,
               coalesce(info->'metrics'->'learned'->'top1',
                        info->'metrics'->'classifier'->'top1') AS top1,
               coalesce(info->'metrics'->'learned'->'top5',
                        info->'metrics'->'classifier'->'top5') AS top5
        FROM bundles ORDER BY created_at, id
        """
    ).fetchall()


def active_bundle(conn) -> dict | None:  # noqa: ANN001
    return conn.execute("SELECT * FROM bundles WHERE active").fetchone()
