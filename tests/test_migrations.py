"""Migrations: up, down and up again on both backends; the models match them exactly."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect
from sqlalchemy.ext.asyncio import AsyncConnection

from app.db import Base, create_engine
from app.migrate import (
    alembic_config,
    current_revisions,
    downgrade_connection,
    head_revisions,
    migrations_dir,
    upgrade_connection,
)
from app.models import load_all_models
from tests.conftest import REPO_ROOT, make_settings, throwaway_database

REVISION_FILE = re.compile(r"^\d{4}-\d{2}-\d{2}_[a-z0-9_]+\.py$")


def _tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


async def test_upgrade_downgrade_upgrade(backend: str, tmp_path: Path) -> None:
    async with throwaway_database(backend, tmp_path) as url:
        engine = create_engine(make_settings(url))
        try:
            async with engine.connect() as conn:
                await upgrade_connection(conn)
                await conn.commit()
                assert await current_revisions(conn) == head_revisions()
                first = await conn.run_sync(_tables)
                await conn.commit()

                await downgrade_connection(conn, "base")
                await conn.commit()
                assert await current_revisions(conn) == frozenset()
                assert await conn.run_sync(_tables) <= {"alembic_version"}
                await conn.commit()

                await upgrade_connection(conn)
                await conn.commit()
                assert await current_revisions(conn) == head_revisions()
                assert await conn.run_sync(_tables) == first
        finally:
            await engine.dispose()


def _diff(connection: Connection) -> list[object]:
    load_all_models()
    return list(compare_metadata(MigrationContext.configure(connection), Base.metadata))


async def test_models_match_the_migrations(connection: AsyncConnection) -> None:
    """An autogenerate run against the migrated schema finds nothing to do."""
    assert await connection.run_sync(_diff) == []


def test_revision_files_are_dated_linear_and_reversible() -> None:
    versions = migrations_dir() / "versions"
    files = sorted(p for p in versions.glob("*.py") if p.name != "__init__.py")
    assert files, "at least the baseline"
    for path in files:
        assert REVISION_FILE.match(path.name), f"{path.name}: name it YYYY-MM-DD_slug.py"
        tree = ast.parse(path.read_text())
        functions = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
        assert {"upgrade", "downgrade"} <= functions, f"{path.name} must downgrade"
    script = ScriptDirectory.from_config(alembic_config())
    assert len(script.get_heads()) == 1, "one head: merge branches before landing"
    assert len(list(script.walk_revisions())) == len(files)


def test_repository_layout_is_what_the_app_reads() -> None:
    assert migrations_dir() == REPO_ROOT / "migrations"
    assert (REPO_ROOT / "alembic.ini").is_file()
