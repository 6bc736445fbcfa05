"""Test fixtures: every database test runs once on SQLite and once on PostgreSQL.

- Each run creates its own throwaway database on each backend (a temporary SQLite file;
  a ``samverkan_test_*`` database on the server named by ``SAMVERKAN_TEST_POSTGRES_URL``)
  and drops it afterwards.
- The schema is built by Alembic, never ``create_all``, so the migrations run every time.
- Each test runs inside a transaction that is rolled back; the app's sessions join it
  through savepoints, so a request's commit is real to the app and gone after the test.
- PostgreSQL unreachable: skipped locally with a reason, a failure under ``CI=true``.
  ``SAMVERKAN_TEST_BACKENDS=sqlite`` (or ``postgresql``) narrows a local run.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from app.config import Settings
from app.db import Database, create_engine
from app.main import create_app
from app.migrate import upgrade_connection
from app.security import ProviderTokenVerifier
from tests.leak_guard import ProtectedIdentityGuard
from tests.oidc_provider import ProviderTokens, signs_in_through_providers
from tests.support import PROBE_TABLE_DDL, install_probe

# The shared world of the API tests (agencies, users per role, the standard case).

pytest_plugins = ["tests.scenarios", "tests.log_guard", "tests.oidc_provider"]

for _name in [n for n in os.environ if n.startswith("SAMVERKAN_") and "TEST" not in n]:
    # A developer's shell configuration (SAMVERKAN_ENV=prod, a real database) must
    # never reach the tests.
    del os.environ[_name]

POSTGRES_ADMIN_URL = os.environ.get(
    "SAMVERKAN_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/"
)
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
REPO_ROOT = Path(__file__).resolve().parent.parent
BACKENDS = [
    b.strip() for b in os.environ.get("SAMVERKAN_TEST_BACKENDS", "sqlite,postgresql").split(",")
]


def _asyncpg_dsn(url: str, database: str | None = None) -> str:
    parsed = make_url(url).set(drivername="postgresql")
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


async def _postgres_admin() -> asyncpg.Connection:
    try:
        return await asyncpg.connect(_asyncpg_dsn(POSTGRES_ADMIN_URL), timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        message = f"PostgreSQL at {make_url(POSTGRES_ADMIN_URL)!r} is unreachable: {exc}"
        if IN_CI:
            pytest.fail(f"{message} (CI=true: an unreachable PostgreSQL is a failure)")
        pytest.skip(message)


async def postgres_admin_execute(statement: str) -> None:
    """One statement on the PostgreSQL server as its administrator (CREATE/DROP DATABASE)."""
    admin = await _postgres_admin()
    try:
        await admin.execute(statement)
    finally:
        await admin.close()


@asynccontextmanager
async def throwaway_database(backend: str, directory: Path) -> AsyncIterator[str]:
    """A new, empty database on ``backend``; yields its URL and drops it afterwards."""
    if backend == "sqlite":
        path = directory / f"samverkan-{uuid.uuid4().hex[:12]}.db"
        yield f"sqlite+aiosqlite:///{path}"
        return
    name = f"samverkan_test_{uuid.uuid4().hex[:12]}"
    admin = await _postgres_admin()
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        admin = await _postgres_admin()
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@asynccontextmanager
async def migrated_database(
    backend: str, directory: Path, **settings: object
) -> AsyncIterator[tuple[str, Database]]:
    """A throwaway database at the newest schema, with real commits (for concurrency and
    command-line tests): yields its URL and a Database on it, disposed afterwards."""
    async with throwaway_database(backend, directory) as url:
        database = Database.from_settings(make_settings(url, **settings))
        try:
            async with database.engine.connect() as connection:
                await upgrade_connection(connection)
                await connection.commit()
            yield url, database
        finally:
            await database.dispose()


# ``-n auto`` (pyproject.toml): one worker process per CPU, at most this many. Each worker
# builds its own throwaway databases, apps and provider processes; the suite's tests are
# spread over the workers as they finish (``--dist worksteal``). ``-n 0`` runs it in one
# process (a debugger, ``-x``).
MAX_WORKERS = 4


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    return max(1, min(len(os.sched_getaffinity(0)), MAX_WORKERS))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "only_backend(name): run only with the named database backend"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect backend-specific tests for the other backend (a deselect, not a skip)."""
    keep, drop = [], []
    for item in items:
        marker = item.get_closest_marker("only_backend")
        callspec = getattr(item, "callspec", None)
        param = callspec.params.get("backend") if callspec else None
        if marker and param is not None and param != marker.args[0]:
            drop.append(item)
        else:
            keep.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
async def database_url(
    backend: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[str]:
    async with throwaway_database(backend, tmp_path_factory.mktemp(backend)) as url:
        yield url


# One data directory for the whole run: the development key pair is generated once.
TEST_DATA_DIR = Path(tempfile.mkdtemp(prefix="samverkan-test-data-"))


def make_settings(database_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "database_url": database_url,
        "log_format": "json",
        "data_dir": TEST_DATA_DIR,
        # webhooks go to the tests' own receivers on loopback (issue 16: tests set it)
        "webhook_allow_private": True,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """The session's engine, on a database migrated to head by Alembic."""
    engine = create_engine(make_settings(database_url))
    async with engine.connect() as connection:
        await upgrade_connection(connection)
        await connection.commit()
    yield engine
    await engine.dispose()


@pytest.fixture
async def connection(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """One connection in an open transaction, rolled back after the test."""
    async with engine.connect() as connection:
        transaction = await connection.begin()
        try:
            yield connection
        finally:
            if transaction.is_active:
                await transaction.rollback()


@pytest.fixture
def settings(database_url: str, request: pytest.FixtureRequest) -> Settings:
    providers = signs_in_through_providers(request)
    if providers is None:
        return make_settings(database_url)
    return make_settings(
        database_url, identity_providers_file=providers.file, oidc_ca_file=providers.ca_file
    )


# One app per distinct configuration, reused by every test with that configuration: making
# one (routes, dependencies, keys, policies) costs about 0.2 s, and the API tests are
# thousands. What belongs to a test is set anew on it each time: its database connection,
# the provider keys' cache, the provider tokens of an ``oidc`` variant. A test that changes
# the app itself (extra routes: ``probe_client``) makes its own.
_APPS: dict[str, FastAPI] = {}


@pytest.fixture
def app(settings: Settings, connection: AsyncConnection, request: pytest.FixtureRequest) -> FastAPI:
    key = settings.model_dump_json()
    app = _APPS.get(key)
    if app is None:
        app = _APPS[key] = create_app(settings, database=Database.bound_to(connection))
    app.state.database = Database.bound_to(connection)
    app.state.provider_tokens = ProviderTokenVerifier(settings)
    providers = signs_in_through_providers(request)
    # tests.factories.bearer hands out the provider's tokens for linked users
    app.state.test_provider_tokens = ProviderTokens(providers) if providers else None
    return app


@asynccontextmanager
async def client_for(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """The API client of the tests; every response passes the protected-identity guard."""
    async with client_for(app) as client:
        client.event_hooks["response"].append(ProtectedIdentityGuard(app))
        yield client


@pytest.fixture
async def session(connection: AsyncConnection) -> AsyncIterator[AsyncSession]:
    """A session on the test's connection, for factories and assertions."""
    async with AsyncSession(
        bind=connection, expire_on_commit=False, join_transaction_mode="create_savepoint"
    ) as session:
        yield session


@pytest.fixture
async def probe_client(
    settings: Settings, connection: AsyncConnection
) -> AsyncIterator[httpx.AsyncClient]:
    """A client for an app of its own with the test-only routes of tests/support.py and
    their table."""
    await connection.execute(text(PROBE_TABLE_DDL))
    app = create_app(settings, database=Database.bound_to(connection))
    async with client_for(install_probe(app)) as client:
        yield client
