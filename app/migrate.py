"""Alembic, driven from the app: upgrade to head and compare the database with the code.

Migrations are the only way the schema changes. They live in ``migrations/`` in the
repository and inside the package (``app/_migrations``) in a built wheel.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection

VERSION_TABLE = "alembic_version"


def migrations_dir() -> Path:
    packaged = Path(__file__).with_name("_migrations")
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(database_url: str | None = None) -> Config:
    """An Alembic config that needs no ini file (an installed package has none)."""
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    if database_url is not None:
        # ConfigParser interpolation: a literal % in a URL-encoded password must be doubled.
        config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def head_revisions() -> frozenset[str]:
    return frozenset(ScriptDirectory.from_config(alembic_config()).get_heads())


def upgrade(database_url: str, revision: str = "head") -> None:
    """Upgrade the database at ``database_url`` (synchronous; runs its own event loop)."""
    command.upgrade(alembic_config(database_url), revision)


def reset(database_url: str) -> None:
    """Every table dropped and built again (synchronous). For the demo only: it deletes
    every record, the audit log's included. A SQLite file is removed (its tables cannot
    be dropped with rows that refer to each other); PostgreSQL is migrated down to
    ``base`` and up again."""
    url = make_url(database_url)
    if url.drivername.startswith("sqlite"):
        if url.database and url.database != ":memory:":
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(url.database + suffix).unlink(missing_ok=True)
        command.upgrade(alembic_config(database_url), "head")
        return
    config = alembic_config(database_url)
    command.downgrade(config, "base")
    command.upgrade(config, "head")


def _run_on_connection(connection: Connection, action: str, revision: str) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    getattr(command, action)(config, revision)


async def upgrade_connection(connection: AsyncConnection, revision: str = "head") -> None:
    """Upgrade through an already open async connection (tests, embedded use)."""
    await connection.run_sync(_run_on_connection, "upgrade", revision)


async def downgrade_connection(connection: AsyncConnection, revision: str = "base") -> None:
    await connection.run_sync(_run_on_connection, "downgrade", revision)


def _current(connection: Connection) -> frozenset[str]:
    # Read the version table directly: MigrationContext logs at INFO on every call,
    # which would put a line into the log at each readiness probe.
    if not inspect(connection).has_table(VERSION_TABLE):
        return frozenset()
    rows = connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}"))  # noqa: S608
    return frozenset(row[0] for row in rows)


async def current_revisions(connection: AsyncConnection) -> frozenset[str]:
    """The revisions the database is stamped with (empty when it was never migrated)."""
    return await connection.run_sync(_current)
