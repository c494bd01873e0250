"""Catalogue import rate on COIL-100: first import and re-import, photos per second.

Usage: python benchmarks/catalogue_import.py [CATALOGUE_DIR]
Runs against a throw-away database on ARTWATCH_TEST_ADMIN_URL (default: local PostgreSQL).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from artwatch.catalogue import catalogue_stats, import_catalogue
from artwatch.db import connect, migrate
from artwatch.db.scratch import scratch_database
from artwatch.images import ImageStore

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "coil100"


def main() -> None:
    directory = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT
    with scratch_database() as url:
        migrate(url)
        with tempfile.TemporaryDirectory() as tmp, connect(url, autocommit=True) as conn:
            store = ImageStore(Path(tmp), max_bytes=1 << 26, max_pixels=1 << 26)
            t0 = time.perf_counter()
            first = import_catalogue(conn, directory, store, workers=2)
            t1 = time.perf_counter()
            import_catalogue(conn, directory, store, workers=2)
            t2 = time.perf_counter()
            stats = catalogue_stats(conn)
        print(f"catalogue: {directory}")
        print(f"objects {stats.objects}, photos {stats.photos}")
        print(f"first import : {first.rows} photos in {t1 - t0:.2f}s = "
              f"{first.rows / (t1 - t0):.0f} photos/s")
        print(f"re-import    : {t2 - t1:.2f}s = {first.rows / (t2 - t1):.0f} photos/s "
              f"({(t1 - t0) / (t2 - t1):.1f}x faster)")


if __name__ == "__main__":
    main()
