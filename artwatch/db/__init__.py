"""PostgreSQL access: connections, the pool, migrations.

PostgreSQL is artwatch's system of record; every stage reads and writes through here.
"""

from artwatch.db.connection import connect, database_url, get_pool, open_async_pool
from artwatch.db.migrate import migrate

__all__ = ["connect", "database_url", "get_pool", "migrate", "open_async_pool"]
