"""One transaction per request: committed before the response, rolled back on any error."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import column, func, select, table, text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app import db
from app.agencies.models import AgencyKind
from app.db import Database
from app.main import create_app
from app.users.models import Role
from tests.conftest import (
    _postgres_admin,
    client_for,
    make_settings,
    migrated_database,
    throwaway_database,
)
from tests.factories import PASSWORD, bearer, make_agency, make_user
from tests.support import PROBE_TABLE_DDL, install_probe


async def _notes(connection: AsyncConnection) -> list[str]:
    rows = await connection.execute(text("SELECT note FROM probe ORDER BY id"))
    return [row[0] for row in rows]


async def test_successful_request_is_committed(
    probe_client: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    response = await probe_client.post("/test/probe", json={"id": 1, "note": "kept"})
    assert response.status_code == 201
    assert await _notes(connection) == ["kept"]


async def test_app_error_after_a_write_rolls_the_write_back(
    probe_client: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    response = await probe_client.post("/test/probe-then-fail", json={"id": 1, "note": "gone"})
    assert response.status_code == 409
    assert await _notes(connection) == []


async def test_unhandled_error_after_a_write_rolls_the_write_back(
    probe_client: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    response = await probe_client.post("/test/probe-then-crash", json={"id": 1, "note": "gone"})
    assert response.status_code == 500
    assert await _notes(connection) == []


async def test_invalid_input_writes_nothing(
    probe_client: httpx.AsyncClient, connection: AsyncConnection
) -> None:
    response = await probe_client.post("/test/probe", json={"id": 1, "note": ""})
    assert response.status_code == 422
    assert await _notes(connection) == []


async def test_failed_commit_is_an_error_response_not_a_false_success(
    probe_client: httpx.AsyncClient,
    connection: AsyncConnection,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def failing_commit(self: AsyncSession) -> None:
        raise OperationalError("COMMIT", {}, ConnectionResetError("connection lost"))

    monkeypatch.setattr(AsyncSession, "commit", failing_commit)
    response = await probe_client.post("/test/probe", json={"id": 1, "note": "lost"})
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    monkeypatch.undo()
    assert await _notes(connection) == []


async def test_constraint_failing_at_commit_returns_409_and_keeps_nothing(
    database_url: str, backend: str, tmp_path: Path
) -> None:
    """A deferred foreign key is checked only at COMMIT: the commit itself fails.

    Runs on a database of its own with real commits (no enclosing test transaction),
    so this is the production path: the client must see the failure, not a 201.
    """
    async with throwaway_database(backend, tmp_path) as url:
        database = Database.from_settings(make_settings(url))
        try:
            async with database.engine.begin() as conn:
                await conn.execute(text(PROBE_TABLE_DDL))
            app = install_probe(create_app(make_settings(url), database=database))
            async with client_for(app) as client:
                ok = await client.post("/test/probe", json={"id": 1, "note": "parent"})
                assert ok.status_code == 201
                orphan = await client.post(
                    "/test/probe", json={"id": 2, "note": "orphan", "parent_id": 999}
                )
                assert orphan.status_code == 409, orphan.text
                assert orphan.json()["type"] == "urn:samverkan:problem:conflict"
                assert "999" not in orphan.text
                assert "orphan" not in orphan.text
            async with database.engine.connect() as conn:
                assert await _notes(conn) == ["parent"]
        finally:
            await database.dispose()


async def test_unreachable_database_gives_503_and_no_data(
    app: FastAPI, backend: str, tmp_path: Path
) -> None:
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path}/missing-dir/none.db"
    else:
        url = "postgresql+asyncpg://postgres@127.0.0.1:1/none"
    settings = make_settings(url, db_connect_timeout_seconds=1)
    database = Database.from_settings(settings)
    try:
        unreachable = install_probe(create_app(settings, database=database))
        async with client_for(unreachable) as client:
            response = await client.post("/test/probe", json={"id": 1, "note": "x"})
        assert response.status_code == 503
        body = response.json()
        assert body["type"] == "urn:samverkan:problem:service-unavailable"
        assert body["request_id"] == response.headers["x-request-id"]
        assert "127.0.0.1" not in response.text
        assert "sqlite" not in response.text.lower()
    finally:
        await database.dispose()


@pytest.mark.only_backend("sqlite")
async def test_sqlite_connections_enforce_foreign_keys_and_use_wal(
    connection: AsyncConnection,
) -> None:
    assert (await connection.execute(text("PRAGMA foreign_keys"))).scalar_one() == 1
    assert (await connection.execute(text("PRAGMA journal_mode"))).scalar_one() == "wal"


async def test_savepoints_work_inside_the_request_transaction(
    connection: AsyncConnection,
) -> None:
    """pysqlite breaks SAVEPOINT unless SQLAlchemy emits BEGIN itself (app.db does)."""
    await connection.execute(text(PROBE_TABLE_DDL))
    nested = await connection.begin_nested()
    await connection.execute(text("INSERT INTO probe (id, note) VALUES (1, 'inner')"))
    await nested.rollback()
    await connection.execute(text("INSERT INTO probe (id, note) VALUES (2, 'outer')"))
    assert await _notes(connection) == ["outer"]


@pytest.mark.only_backend("postgresql")
@pytest.mark.parametrize("idle_seconds", [0.0, 3600.0], ids=["pinged", "not-pinged"])
async def test_a_pooled_connection_that_died_while_idle_is_replaced_before_use(
    tmp_path: Path, idle_seconds: float
) -> None:
    """The database ended the pooled connection while it sat idle (a restart, a
    terminated backend). Idle at least ``db_ping_after_idle_seconds``, it is pinged at
    checkout and replaced, and the statement succeeds; handed on sooner it is not pinged
    (that is the saving), and the statement meets the dead connection."""
    async with throwaway_database("postgresql", tmp_path) as url:
        database = Database.from_settings(
            make_settings(url, db_pool_size=1, db_ping_after_idle_seconds=idle_seconds)
        )
        try:
            async with database.engine.connect() as connection:
                pid = (await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one()
            admin = await _postgres_admin()
            try:
                assert await admin.fetchval("SELECT pg_terminate_backend($1, 5000)", pid)
            finally:
                await admin.close()
            if idle_seconds:
                with pytest.raises(DBAPIError):
                    async with database.engine.connect() as connection:
                        await connection.execute(text("SELECT 1"))
                return
            async with database.engine.connect() as connection:
                again = (await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one()
            assert again != pid
        finally:
            await database.dispose()


@pytest.mark.only_backend("postgresql")
@pytest.mark.parametrize("outcome", ["commit", "rollback"])
async def test_the_first_statement_goes_to_asyncpg_inside_sqlalchemys_transaction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, outcome: str
) -> None:
    """``rows_of`` as a request's first statement (the caller's sign-in) BEGINs the
    transaction SQLAlchemy opened, as SQLAlchemy's adapter would, and runs on asyncpg;
    what follows through the session is in the same transaction, and SQLAlchemy's COMMIT
    or ROLLBACK ends it: kept, or gone, and the pooled connection left outside any
    transaction."""
    straight: list[str] = []
    fetch = db._fetch

    async def counted(raw: Any, statement: Any, compiled: Any, params: Any) -> Any:
        straight.append(compiled.sql)
        return await fetch(raw, statement, compiled, params)

    monkeypatch.setattr(db, "_fetch", counted)
    async with _probe_database(tmp_path) as database:
        try:
            async with database.sessionmaker() as session:
                [[pid]] = await db.rows_of(session, _BACKEND, {})
                raw = await _driver(session)
                assert straight
                assert raw.is_in_transaction()
                await session.execute(text("INSERT INTO probe (id, note) VALUES (1, 'kept')"))
                [[same]] = await db.rows_of(session, _BACKEND, {})
                assert same == pid
                assert len(straight) == 2
                await (session.commit() if outcome == "commit" else session.rollback())
                assert not raw.is_in_transaction()
            async with database.engine.connect() as connection:
                kept = await _notes(connection)
            assert kept == (["kept"] if outcome == "commit" else [])
        finally:
            await database.dispose()


_BACKEND = text("SELECT pg_backend_pid()")


@asynccontextmanager
async def _probe_database(tmp_path: Path) -> AsyncIterator[Database]:
    """A PostgreSQL database of its own with the probe table, one pooled connection."""
    async with throwaway_database("postgresql", tmp_path) as url:
        database = Database.from_settings(make_settings(url, db_pool_size=1))
        async with database.engine.begin() as connection:
            await connection.execute(text(PROBE_TABLE_DDL))
        yield database


async def _driver(session: AsyncSession) -> Any:
    """The asyncpg connection under the session."""
    return (await (await session.connection()).get_raw_connection()).driver_connection


_PROBE = table("probe", column("id"), column("note"))
_NOTES = select(_PROBE.c.note).order_by(_PROBE.c.id)


@pytest.mark.only_backend("postgresql")
async def test_reads_run_outside_a_transaction_until_the_first_write_or_lock(
    tmp_path: Path,
) -> None:
    """A request that only reads sends no BEGIN and no COMMIT: its SELECTs run outside any
    transaction (under READ COMMITTED they see the same). The first write (through the
    session) or lock begins the transaction, and what follows runs in it, seeing the
    request's own write; a SELECT that locks, or that the statement's text shows to be more
    than a read, begins it itself."""
    async with _probe_database(tmp_path) as database:
        try:
            async with database.sessionmaker() as session:
                assert await db.rows_of(session, _NOTES, {}) == []
                raw = await _driver(session)
                assert not raw.is_in_transaction()
                assert not await db.in_transaction(session)
                await session.execute(text("INSERT INTO probe (id, note) VALUES (1, 'mine')"))
                assert raw.is_in_transaction()
                assert [tuple(r) for r in await db.rows_of(session, _NOTES, {})] == [("mine",)]
                await session.rollback()
            for locking in (
                _NOTES.with_for_update(),
                select(func.pg_advisory_xact_lock(7)),
                select(func.nextval("probe_sequence")),
            ):
                async with database.sessionmaker() as session:
                    if "nextval" in str(locking):
                        await session.execute(text("CREATE TEMPORARY SEQUENCE probe_sequence"))
                        await session.commit()
                    await db.rows_of(session, locking, {})
                    raw = await _driver(session)
                    assert raw.is_in_transaction(), str(locking)
                    assert await db.in_transaction(session)
                    await session.rollback()
        finally:
            await database.dispose()


@pytest.mark.only_backend("postgresql")
async def test_every_kind_of_request_is_served_by_a_pool_of_one(
    backend: str, tmp_path: Path
) -> None:
    """The pool has no overflow by default (app.config): a request that held two of its
    pool's connections at once would wait for itself. With a pool of one connection, each
    way a request uses the database is answered: a write, one with an idempotency key and
    its replay, a read, a page, a denial kept
    after the rollback, input refused before and after the dependencies, a failed sign-in
    (counted whatever the outcome), the audit search, the streamed export and verify."""
    pool = {"db_pool_size": 1, "db_max_overflow": 0, "db_pool_timeout_seconds": 2}
    async with migrated_database(backend, tmp_path, **pool) as (url, database):
        async with database.sessionmaker() as session:
            soc = await make_agency(session, kind=AgencyKind.SOCIALTJANST.value)
            pol = await make_agency(session, kind=AgencyKind.POLIS.value)
            coordinator = await make_user(
                session, roles={Role.COORDINATOR}, agency=soc, password=PASSWORD
            )
            police = await make_user(session, roles={Role.CASEWORKER}, agency=pol)
            auditor = await make_user(session, roles={Role.AUDITOR}, agency=soc)
            await session.commit()
        app = create_app(make_settings(url, **pool), database=database)
        api = "/api/v1"
        async with client_for(app) as client:

            async def status(
                user: Any, method: str, path: str, headers: dict[str, str] | None = None, **kw: Any
            ) -> int:
                merged = (bearer(app, user) if user else {}) | (headers or {})
                response = await client.request(method, api + path, headers=merged, **kw)
                assert response.status_code not in {500, 503}, (method, path, response.text)
                return response.status_code

            individual = await client.post(
                f"{api}/individuals",
                headers=bearer(app, coordinator),
                json={
                    "given_name": "Kim",
                    "family_name": "Testsson",
                    "birth_date": "2010-03-03",
                    "protected_identity": False,
                    "guardians": [],
                },
            )
            assert individual.status_code == 201, individual.text
            case = await client.post(
                f"{api}/cases",
                headers=bearer(app, coordinator),
                json={"individual_id": individual.json()["id"], "programme": "sig"},
            )
            assert case.status_code == 201, case.text
            entries = f"/cases/{case.json()['id']}/entries"
            body = {"category": "contact", "title": "Ny adress", "body": "Flyttat."}
            entry = await client.post(api + entries, headers=bearer(app, coordinator), json=body)
            assert entry.status_code == 201, entry.text
            one = f"/entries/{entry.json()['id']}"
            keyed = {"Idempotency-Key": "pool-of-one"}
            assert await status(coordinator, "POST", entries, keyed, json=body) == 201
            assert await status(coordinator, "POST", entries, keyed, json=body) == 201  # replayed
            assert await status(coordinator, "GET", one) == 200
            assert await status(coordinator, "GET", entries) == 200
            assert await status(police, "GET", one) == 404  # the denial, kept after rollback
            assert await status(coordinator, "POST", entries, json={"title": 1}) == 422
            malformed = {"Content-Type": "application/json"}
            assert await status(coordinator, "POST", entries, malformed, content=b"{") == 422
            wrong = {"grant_type": "password", "username": coordinator.username, "password": "x"}
            assert await status(None, "POST", "/auth/token", data=wrong) == 401
            assert await status(auditor, "GET", "/audit/events") == 200
            assert await status(auditor, "GET", "/audit/export?format=jsonl") == 200
            assert await status(auditor, "GET", "/audit/verify") == 200
