"""Async engine, one session per request, one transaction per request.

The request's session is committed by :func:`get_session` *after the route function
returns and before the response is sent* (a FastAPI ``scope="function"`` dependency),
so a failed commit becomes an error response instead of a 200 for work that was lost.
Any exception rolls the whole transaction back: nothing is half-written.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

import asyncpg
from fastapi import Depends, Request
from sqlalchemy import (
    CompoundSelect,
    DateTime,
    Dialect,
    MetaData,
    Select,
    TextClause,
    TypeDecorator,
    event,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DatabaseError, DisconnectionError, InterfaceError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase

from app.config import Settings

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[datetime]):
    """A point in time, stored and returned in UTC on every backend.

    PostgreSQL keeps the zone (``timestamptz``); SQLite keeps none, so a value is converted
    to UTC before it is written (an aware local time would otherwise be stored as if it
    were UTC) and comes back aware. A naive value means UTC, as everywhere in this code.
    Migrations see a plain ``DateTime(timezone=True)``.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base of every model; Alembic compares migrations against its metadata."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def create_engine(
    settings: Settings,
    *,
    pool_size: int | None = None,
    max_overflow: int | None = None,
    autocommit: bool = False,
) -> AsyncEngine:
    """The engine for ``settings.database_url``, tuned per backend (on PostgreSQL a pool of
    ``pool_size`` and ``max_overflow``, by default the settings', whose statements are
    each their own transaction if ``autocommit``).

    ``hide_parameters`` keeps bound values (names, personal numbers) out of every
    SQLAlchemy exception message and log line.
    """
    url = make_url(settings.database_url)
    kwargs: dict[str, Any] = {"hide_parameters": True}
    if url.get_backend_name() == "postgresql":
        kwargs.update(
            pool_size=settings.db_pool_size if pool_size is None else pool_size,
            max_overflow=settings.db_max_overflow if max_overflow is None else max_overflow,
            pool_timeout=settings.db_pool_timeout_seconds,
            connect_args={
                "timeout": settings.db_connect_timeout_seconds,
                "server_settings": {"application_name": "samverkan"},
            },
        )
        # Every transaction READ COMMITTED, whatever the server's default: what this code is
        # written for, and what lets rows_of run reads outside a transaction.
        kwargs["isolation_level"] = "AUTOCOMMIT" if autocommit else "READ COMMITTED"
        engine = create_async_engine(url, **kwargs)
        _ping_when_idle(engine, settings.db_ping_after_idle_seconds)
        return engine
    kwargs["connect_args"] = {"timeout": settings.sqlite_busy_timeout_ms / 1000}
    kwargs["pool_pre_ping"] = True
    engine = create_async_engine(url, **kwargs)
    _configure_sqlite(engine, busy_timeout_ms=settings.sqlite_busy_timeout_ms)
    return engine


def _ping_when_idle(engine: AsyncEngine, idle_seconds: float) -> None:
    """Ping a pooled connection before use when it sat idle ``idle_seconds`` or longer; a
    dead one is replaced before the request sees it (SQLAlchemy's pessimistic disconnect
    handling: ``DisconnectionError`` in a checkout listener).

    ``pool_pre_ping`` pings at every checkout: on asyncpg that is BEGIN, a statement and
    ROLLBACK, three round trips and 0.45 ms of CPU on every request (docs/performance.md).
    A connection handed on within the second needs none: the database was just there. A
    restart while requests flow fails those requests (503) and the first failure
    invalidates the whole pool, so that every older connection is replaced at its next
    checkout; a restart while the service is idle is what the ping is for, and a restart
    takes longer than the default second.
    """

    @event.listens_for(engine.sync_engine.pool, "checkin")
    def _checked_in(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine.sync_engine.pool, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("idle_since")
        if since is None or time.monotonic() - since < idle_seconds:
            return  # new, or handed on within ``idle_seconds``
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:  # gone: the pool connects anew and checks out again
            raise DisconnectionError("pooled connection did not answer its ping") from exc


def _configure_sqlite(engine: AsyncEngine, *, busy_timeout_ms: int) -> None:
    """Foreign keys on, WAL, and transactions that SQLAlchemy (not pysqlite) controls.

    pysqlite's own transaction handling defers BEGIN and breaks SAVEPOINT; the
    documented fix is to switch it off and emit BEGIN ourselves. ``BEGIN IMMEDIATE``
    takes the write lock up front: every request writes (at least its audit record),
    and taking the lock late would turn concurrent requests into SQLITE_BUSY errors
    instead of a queue.
    """

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
        finally:
            cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


class Database:
    """The engine and session factory the app uses; tests bind it to one connection."""

    def __init__(
        self,
        engine: AsyncEngine,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        connection: AsyncConnection | None = None,
        owns_engine: bool = True,
        autocommit_engine: AsyncEngine | None = None,
    ) -> None:
        self.engine = engine
        self.sessionmaker = sessionmaker
        self._connection = connection
        self._owns_engine = owns_engine
        # One connection beside the requests' pool, for statements that are their own
        # transaction (the audit's group commit); None on SQLite and for a test's
        # savepoint-bound sessions, whose work must stay in the test's transaction.
        self.autocommit_engine = autocommit_engine
        # What other modules keep per database (the audit's group commit).
        self.state: dict[str, Any] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> Database:
        engine = create_engine(settings)
        autocommit = None
        if engine.dialect.name == "postgresql" and settings.audit_group_commit:
            autocommit = create_engine(settings, pool_size=1, max_overflow=0, autocommit=True)
        return cls(
            engine,
            async_sessionmaker(engine, expire_on_commit=False),
            autocommit_engine=autocommit,
        )

    @classmethod
    def bound_to(cls, connection: AsyncConnection) -> Database:
        """Sessions that join ``connection``'s open transaction through savepoints.

        Used by the tests: a request's commit releases a savepoint, and the test
        rolls the outer transaction back.
        """
        maker = async_sessionmaker(
            bind=connection, expire_on_commit=False, join_transaction_mode="create_savepoint"
        )
        return cls(connection.engine, maker, connection=connection, owns_engine=False)

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[AsyncConnection]:
        """A connection for out-of-request checks (readiness)."""
        if self._connection is not None:
            yield self._connection
            return
        async with self.engine.connect() as connection:
            yield connection

    async def dispose(self) -> None:
        if self._owns_engine:
            await self.engine.dispose()
        if self.autocommit_engine is not None:
            await self.autocommit_engine.dispose()


@dataclass(frozen=True, slots=True)
class _Compiled:
    sql: str
    names: tuple[str, ...]  # the parameters in their positional order
    constants: dict[str, Any]  # the values the statement carries itself (literals)
    reads_only: bool = False  # a SELECT that neither writes nor locks (see rows_of)


# What makes a SELECT more than a read: a row lock, a data-modifying CTE, a sequence step,
# a lock of the transaction's. Matched in any case, as words; a false match (a column
# named ``update``) only costs the statement its BEGIN.
_NOT_ONLY_READING = re.compile(
    r"\bFOR (UPDATE|NO KEY UPDATE|SHARE|KEY SHARE)\b|\b(INSERT|UPDATE|DELETE|MERGE)\b"
    r"|nextval|setval|advisory|pg_current_xact_id|txid_current",
    re.IGNORECASE,
)


def _reads_only(statement: Statement, sql: str) -> bool:
    return isinstance(statement, Select | CompoundSelect) and not _NOT_ONLY_READING.search(sql)


# By the statement's id, the statement kept with it so that the id is never reused.
_COMPILED: dict[int, tuple[object, _Compiled]] = {}


Statement = Select[*tuple[Any, ...]] | CompoundSelect[*tuple[Any, ...]] | TextClause


def _compiled(statement: Statement, dialect: Dialect) -> _Compiled:
    kept = _COMPILED.get(id(statement))
    if kept is not None:
        return kept[1]
    compiled = statement.compile(dialect=dialect)
    names = tuple(compiled.positiontup or ())
    reads_only = _reads_only(statement, str(compiled))
    known = _Compiled(str(compiled), names, {n: compiled.params[n] for n in names}, reads_only)
    if compiled.post_compile_params:
        # An IN list of constants (a filter's ``kind IN (...)``): rendered out once, as
        # SQLAlchemy does at each execution. A list bound at execution is not supported.
        if any(p.value is None or p.callable for p in compiled.post_compile_params):
            raise ValueError("rows_of: an expanding parameter must carry its values")
        unknown = {n: None for n in names if compiled.params[n] is None}
        expanded = compiled.construct_expanded_state(unknown)
        names = tuple(expanded.positiontup or ())
        known = _Compiled(
            expanded.statement, names, {n: expanded.parameters[n] for n in names}, reads_only
        )
    _COMPILED[id(statement)] = (statement, known)
    return known


_DRIVER = "samverkan.driver_connection"


async def _driver_connection(
    on: AsyncSession | AsyncConnection,
) -> tuple[Any, Dialect, Any] | None:
    """The asyncpg connection under ``on``'s transaction, with the dialect and SQLAlchemy's
    adapter around it, if it is on PostgreSQL and a session has nothing to flush first;
    kept for the transaction (finding it through SQLAlchemy costs 50 µs a statement)."""
    if isinstance(on, AsyncSession):
        if on.new or on.dirty or on.deleted:
            return None
        transaction = on.sync_session.get_transaction()
        known = on.info.get(_DRIVER)
        if known is not None and transaction is not None and known[0] is transaction:
            kept: tuple[Any, Dialect, Any] = known[1]
            return kept
        connection = await on.connection()
    else:
        connection = on
    if connection.dialect.name != "postgresql":
        return None
    pooled = await connection.get_raw_connection()
    found = (pooled.driver_connection, connection.dialect, pooled.dbapi_connection)
    if isinstance(on, AsyncSession):
        on.info[_DRIVER] = (on.sync_session.get_transaction(), found)
    return found


async def _fetch(
    raw: Any, statement: Statement, compiled: _Compiled, params: Mapping[str, Any]
) -> Sequence[Sequence[Any]]:
    """``statement`` run through asyncpg (tests fail it here as they fail the session)."""
    args = [params[n] if n in params else compiled.constants[n] for n in compiled.names]
    try:
        result: Sequence[Sequence[Any]] = await raw.fetch(compiled.sql, *args)
    except asyncpg.PostgresError as exc:
        raise DatabaseError(compiled.sql, None, exc, hide_parameters=True) from exc
    except (asyncpg.InterfaceError, OSError) as exc:
        raise InterfaceError(compiled.sql, None, exc, hide_parameters=True) from exc
    return result


async def rows_of(
    on: AsyncSession | AsyncConnection, statement: Statement, params: Mapping[str, Any]
) -> Sequence[Sequence[Any]]:
    """The rows of a hot-path query, by position: on PostgreSQL straight through asyncpg
    with the SQL compiled once; else (SQLite) through the session.

    On PostgreSQL a statement that only reads runs outside any transaction until the
    request's first write or lock begins one (the database then has no BEGIN, and for a
    request that never writes no COMMIT, to answer); any other statement runs in the
    request's transaction, begun here if this is its first statement. Under READ
    COMMITTED, PostgreSQL's default and the one this code is written for, each statement
    sees what was committed when it began, in a transaction or not; before the first
    write there is nothing of the request's own to see. The engine sets READ COMMITTED
    (:func:`create_engine`); under another isolation level every statement runs in the
    transaction.

    SQLAlchemy's execution costs about 0.3 ms of CPU per statement and asyncpg's 0.09 ms
    (docs/performance.md, "what a read costs"). For a module-level statement (compiled
    once, kept by identity) of plain columns: no ORM entities, no expanding parameters,
    values asyncpg takes as they are (UUIDs, aware datetimes, strings). Database errors
    come out as SQLAlchemy's, so that the handlers that turn them into 503s still apply.
    """
    found = await _driver_connection(on)
    if found is None:
        return (await on.execute(statement, params)).all()
    raw, dialect, adapter = found
    compiled = _compiled(statement, dialect)
    if not raw.is_in_transaction() and not (
        compiled.reads_only and getattr(adapter, "isolation_level", "") in _READ_COMMITTED
    ):
        await _begin(on)
        if not raw.is_in_transaction():  # not begun this way (another SQLAlchemy version)
            return (await on.execute(statement, params)).all()
    return await _fetch(raw, statement, compiled, params)


# The adapter's setting for READ COMMITTED (create_engine sets it on every connection).
_READ_COMMITTED = ("read_committed", "READ COMMITTED")


async def in_transaction(session: AsyncSession) -> bool:
    """Whether the session's connection is in a database transaction: on PostgreSQL, once
    a write, a lock or a statement through SQLAlchemy began one (see :func:`rows_of`);
    elsewhere always."""
    found = await _driver_connection(session)
    if found is None:
        return True
    return bool(found[0].is_in_transaction())


async def rows_alone(
    connection: AsyncConnection, statement: Statement, params: Mapping[str, Any]
) -> Sequence[Sequence[Any]]:
    """The rows of ``statement``, which is its own transaction: on a PostgreSQL connection
    in autocommit (outside any transaction), straight through asyncpg as :func:`rows_of`
    runs it."""
    raw: Any = (await connection.get_raw_connection()).driver_connection
    if connection.dialect.name != "postgresql" or raw.is_in_transaction():
        raise ValueError("rows_alone: a PostgreSQL connection outside a transaction")
    return await _fetch(raw, statement, _compiled(statement, connection.dialect), params)


async def _begin(on: AsyncSession | AsyncConnection) -> None:
    """BEGIN the transaction SQLAlchemy has opened but not yet sent (its asyncpg adapter
    sends BEGIN before the first statement it executes), the way the adapter does, so that
    the first statement too can go straight to asyncpg and SQLAlchemy still ends the
    transaction it owns (COMMIT or ROLLBACK through the same adapter). Where the adapter
    does not do it this way (another SQLAlchemy version), nothing happens and the first
    statement goes through the session."""
    connection = await on.connection() if isinstance(on, AsyncSession) else on
    adapter = (await connection.get_raw_connection()).dbapi_connection
    start = getattr(adapter, "_start_transaction", None)
    if start is None or getattr(adapter, "_transaction", True) is not None:
        return
    try:
        await start()
    except Exception as exc:  # the adapter's own error types: as SQLAlchemy would wrap them
        raise InterfaceError("BEGIN", None, exc, hide_parameters=True) from exc


def on_postgresql(session: AsyncSession) -> bool:
    """Whether the session's database is PostgreSQL (a statement with arrays for it)."""
    return session.bind is not None and session.bind.dialect.name == "postgresql"


def database_of(request: Request) -> Database:
    database: Database = request.app.state.database
    return database


OutcomeWork = Callable[[AsyncSession], Awaitable[None]]
FailureWork = Callable[[AsyncSession, BaseException], Awaitable[None]]
AfterCommitWork = Callable[[], Awaitable[None]]
_OUTCOME_WORK = "samverkan.outcome_work"
_BEFORE_COMMIT = "samverkan.before_commit"
_LAST_BEFORE_COMMIT = "samverkan.last_before_commit"
_AFTER_COMMIT = "samverkan.after_commit"
_AFTER_ROLLBACK = "samverkan.after_rollback"
_DATABASE = "samverkan.database"


def keep_whatever_the_outcome(session: AsyncSession, work: OutcomeWork) -> None:
    """Run ``work`` whether the request commits or rolls back, exactly once.

    On commit it runs in the request's transaction, just before COMMIT; on rollback it
    runs in a fresh transaction right after. A failed login or a denial must be
    recorded although the request ends in an error: this is how.
    """
    session.info.setdefault(_OUTCOME_WORK, []).append(work)


def before_commit(session: AsyncSession, work: OutcomeWork, *, last: bool = False) -> None:
    """Run ``work`` in the request's transaction just before COMMIT (not on rollback).
    An exception from it rolls the request back like any other. ``last``: after every
    other such work, whenever that was registered (it sees the transaction as it commits).
    """
    session.info.setdefault(_LAST_BEFORE_COMMIT if last else _BEFORE_COMMIT, []).append(work)


def after_commit(session: AsyncSession, work: AfterCommitWork) -> None:
    """Run ``work`` after the request's COMMIT and before its answer. An exception from it
    fails the request, and the failure work (:func:`after_rollback`) runs as after a
    rollback: for work that must be done before anything is answered, outside the
    request's transaction (which must then have written nothing of its own)."""
    session.info.setdefault(_AFTER_COMMIT, []).append(work)


def database_of_session(session: AsyncSession) -> Database | None:
    """The database a request's session came from (None outside a request)."""
    database: Database | None = session.info.get(_DATABASE)
    return database


def after_rollback(session: AsyncSession, work: FailureWork) -> None:
    """Run ``work(fresh_session, error)`` in a fresh transaction after the request's
    transaction was rolled back because of ``error`` (not on commit)."""
    session.info.setdefault(_AFTER_ROLLBACK, []).append(work)


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """The request's session: committed before the response, rolled back on any error."""
    database = database_of(request)
    async with database.sessionmaker() as session:
        session.info[_DATABASE] = database
        try:
            yield session
            for work in session.info.get(_OUTCOME_WORK, ()):
                await work(session)
            for work in session.info.get(_BEFORE_COMMIT, ()):
                await work(session)
            for work in session.info.get(_LAST_BEFORE_COMMIT, ()):
                await work(session)
            await session.commit()
            # Done, in the committed transaction: not to be done again if what follows fails.
            session.info.pop(_OUTCOME_WORK, None)
            for after in session.info.pop(_AFTER_COMMIT, ()):
                await after()
        except BaseException as error:
            # Also after a failed COMMIT: SQLite keeps the transaction open when a
            # deferred constraint fails at commit, and SQLAlchemy's pool would hand
            # the connection, writes included, to the next request.
            await session.rollback()
            pending = session.info.pop(_OUTCOME_WORK, ())
            failed = session.info.pop(_AFTER_ROLLBACK, ())
            if pending or failed:
                async with database.sessionmaker() as fresh:
                    for work in pending:
                        await work(fresh)
                    for failure_work in failed:
                        await failure_work(fresh, error)
                    await fresh.commit()
            raise


SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
