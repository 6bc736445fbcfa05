"""The audit log: chained, append-only, fail-closed, and correct under concurrency."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app.agencies.models import Agency
from app.audit import chain
from app.audit import writer as audit
from app.audit.chain import canonical_body, record_hash, verify_chain
from app.audit.models import GENESIS_HASH, AuditEvent
from app.db import Database
from app.migrate import upgrade_connection
from app.users.models import Role
from tests.conftest import make_settings, migrated_database, throwaway_database
from tests.factories import bearer, make_user


async def _append_many(session: AsyncSession, count: int, action: str = "test.append") -> None:
    for i in range(count):
        await audit.append(session, audit.Record(action=action, resource_id=str(i)))


async def test_records_chain_from_genesis_and_verify(
    session: AsyncSession, connection: AsyncConnection
) -> None:
    await _append_many(session, 5)
    result = await verify_chain(connection)
    assert result.ok, result
    assert result.head_seq == result.checked >= 5
    first = (await session.execute(select(AuditEvent).where(AuditEvent.seq == 1))).scalar_one()
    assert first.prev_hash == GENESIS_HASH


async def test_stored_hash_is_the_documented_expression(
    session: AsyncSession, connection: AsyncConnection
) -> None:
    """On PostgreSQL the database computes the hash; it must equal the Python one."""
    seq = await audit.append(
        session, audit.Record(action="test.hash", reason='Vårdnadshavare \u00e5\u00e4\u00f6 "q"')
    )
    row = (await session.execute(select(AuditEvent).where(AuditEvent.seq == seq))).scalar_one()
    columns = {c: getattr(row, c) for c in AuditEvent.__table__.columns.keys()}  # noqa: SIM118
    assert row.hash == record_hash(row.prev_hash, seq, canonical_body(columns))


async def _concurrent_appends(url: str, writers: int, per_writer: int) -> None:
    settings = make_settings(url, db_pool_size=writers, db_max_overflow=0)
    database = Database.from_settings(settings)
    try:
        async with database.engine.connect() as conn:
            await upgrade_connection(conn)
            await conn.commit()

        async def writer(n: int) -> None:
            for i in range(per_writer):
                async with database.sessionmaker() as session:
                    await audit.append(session, audit.Record(action=f"w{n}", resource_id=str(i)))
                    await session.commit()

        await asyncio.gather(*(writer(n) for n in range(writers)))
        async with database.engine.connect() as conn:
            result = await verify_chain(conn)
            seqs = list(
                (await conn.execute(select(AuditEvent.seq).order_by(AuditEvent.seq))).scalars()
            )
        assert result.ok, result
        assert result.checked == writers * per_writer
        assert seqs == list(range(1, writers * per_writer + 1))
    finally:
        await database.dispose()


@pytest.mark.only_backend("postgresql")
async def test_32_concurrent_writers_keep_the_chain_gapless(backend: str, tmp_path: Path) -> None:
    async with throwaway_database(backend, tmp_path) as url:
        await _concurrent_appends(url, writers=32, per_writer=100)


@pytest.mark.only_backend("sqlite")
async def test_concurrent_writers_on_sqlite_are_serialised(backend: str, tmp_path: Path) -> None:
    async with throwaway_database(backend, tmp_path) as url:
        await _concurrent_appends(url, writers=8, per_writer=25)


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_event SET action = 'forged' WHERE seq = :seq",
        "DELETE FROM audit_event WHERE seq = :seq",
        "UPDATE audit_chain_head SET seq = seq + 5",
        "UPDATE audit_chain_head SET seq = seq - 1",
        "UPDATE audit_chain_head SET hash = 'x'",
        "DELETE FROM audit_chain_head",
    ],
)
async def test_the_database_refuses_changes_to_the_log(
    session: AsyncSession, connection: AsyncConnection, statement: str
) -> None:
    seq = await audit.append(session, audit.Record(action="test.protected"))
    await session.flush()
    with pytest.raises(DBAPIError) as caught:
        async with connection.begin_nested():
            await connection.execute(text(statement), {"seq": seq})
    message = str(caught.value.orig)
    assert (
        "append-only" in message
        or "only moves forward" in message
        or "cannot be deleted" in message
    )
    assert (await verify_chain(connection)).ok


@pytest.mark.only_backend("postgresql")
@pytest.mark.parametrize(
    ("hash_of_newest", "refused"), [(True, False), (False, True)], ids=["its-hash", "another"]
)
async def test_postgresql_moves_the_head_over_several_records_only_when_they_are_there(
    session: AsyncSession, connection: AsyncConnection, hash_of_newest: bool, refused: bool
) -> None:
    """A page's records move the head once (app.audit.writer._append_many): by more than one
    record only over records written, to the newest one's hash."""
    seq = await audit.append(session, audit.Record(action="test.protected"))
    await session.flush()
    table = AuditEvent.__table__
    source = (await connection.execute(select(table).where(table.c.seq == seq))).one()._asdict()
    # two records inserted beyond the head, as an append does before it moves the head
    for step in (1, 2):
        copy = {**source, "seq": seq + step, "prev_hash": "0" * 64, "hash": f"{step}" * 64}
        await connection.execute(table.insert().values(**copy))
    move = "UPDATE audit_chain_head SET seq = :to, hash = :hash"
    newest = "2" * 64 if hash_of_newest else "1" * 64
    async with connection.begin_nested() as nested:
        if refused:
            with pytest.raises(DBAPIError, match="only moves forward"):
                await connection.execute(text(move), {"to": seq + 2, "hash": newest})
        else:
            await connection.execute(text(move), {"to": seq + 2, "hash": newest})
        await nested.rollback()
    with pytest.raises(DBAPIError, match="only moves forward"):  # over a record not there
        async with connection.begin_nested():
            await connection.execute(text(move), {"to": seq + 3, "hash": newest})


@pytest.mark.only_backend("postgresql")
@pytest.mark.parametrize(
    "table", ["audit_event", "audit_chain_head", "audit_review", "audit_checkpoint"]
)
async def test_postgresql_refuses_truncate_even_for_the_owner(
    session: AsyncSession, connection: AsyncConnection, table: str
) -> None:
    await audit.append(session, audit.Record(action="test.protected"))
    await session.flush()
    with pytest.raises(DBAPIError, match="append-only"):
        async with connection.begin_nested():
            # CASCADE: past the foreign key of audit_review, to the triggers themselves
            await connection.execute(text(f"TRUNCATE {table} CASCADE"))


@pytest.fixture(params=["native", "sql"])
def verifier(request: pytest.FixtureRequest, backend: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """PostgreSQL's verify both ways: the native check over a COPY stream, the SQL
    statements (SQLite has one way, in Python)."""
    native = request.param == "native"
    if native and backend != "postgresql":
        pytest.skip("the native check reads PostgreSQL's COPY stream")
    if native and chain._native is None:  # pragma: no cover - CI builds it
        if os.environ.get("CI") == "true":
            pytest.fail("the native chain check is not built")
        pytest.skip("the native chain check is not built here")
    monkeypatch.setattr(chain, "NATIVE", native)
    return str(request.param)


async def _disable_protection(connection: AsyncConnection, backend: str) -> None:
    """What an attacker with owner rights does first."""
    if backend == "postgresql":
        await connection.execute(text("ALTER TABLE audit_event DISABLE TRIGGER USER"))
    else:
        await connection.execute(text("DROP TRIGGER audit_event_no_update"))
        await connection.execute(text("DROP TRIGGER audit_event_delete_below_anchor"))


@pytest.mark.usefixtures("verifier")
@pytest.mark.parametrize(
    "tamper",
    [
        "UPDATE audit_event SET action = 'innocent' WHERE seq = :seq",
        "UPDATE audit_event SET decision = 'permit', flags = '' WHERE seq = :seq",
        "DELETE FROM audit_event WHERE seq = :seq",
        # how the actor signed in: a field that joined the hash later (set here, null before)
        "UPDATE audit_event SET auth_method = 'oidc:elsewhere' WHERE seq = :seq",
        "UPDATE audit_event SET auth_method = NULL WHERE seq = :seq + 1",
    ],
    ids=["edit", "flip-decision", "delete", "add-auth-method", "drop-auth-method"],
)
async def test_verify_finds_a_record_changed_behind_the_apps_back(
    session: AsyncSession, connection: AsyncConnection, backend: str, tamper: str
) -> None:
    await _append_many(session, 3)
    target = await audit.append(
        session,
        audit.Record(action="auth.login_failed", decision=audit.Decision.DENY, flags=["denied"]),
    )
    signed_in = await audit.append(
        session, audit.Record(action="auth.login", auth_method="oidc:kommun")
    )
    await _append_many(session, 3)
    await session.flush()
    assert (await verify_chain(connection)).ok
    await _disable_protection(connection, backend)
    await connection.execute(text(tamper), {"seq": target})
    result = await verify_chain(connection)
    assert not result.ok
    assert result.first_bad_seq == (signed_in if ":seq + 1" in tamper else target)


@pytest.mark.usefixtures("verifier")
async def test_verify_finds_a_truncated_tail(
    session: AsyncSession, connection: AsyncConnection, backend: str
) -> None:
    await _append_many(session, 4)
    await session.flush()
    head = (await verify_chain(connection)).head_seq
    await _disable_protection(connection, backend)
    await connection.execute(text("DELETE FROM audit_event WHERE seq = :seq"), {"seq": head})
    result = await verify_chain(connection)
    assert not result.ok
    assert result.first_bad_seq == head


async def test_a_page_of_records_is_appended_in_order_and_chained(
    session: AsyncSession, connection: AsyncConnection
) -> None:
    """A page's records, queued with ``append_at_commit`` and written in one round trip on
    PostgreSQL, leave what one-by-one appends leave: consecutive records in order, chained,
    and lost with the request's rollback like them."""
    before = (await verify_chain(connection)).head_seq
    individual = uuid.uuid4()
    page = [
        audit.Record(action="entry.read", resource_id=str(i), individual_id=individual)
        for i in range(5)
    ]
    audit.append_at_commit(session, [*page, audit.Record(action="entry.list")])
    assert (await verify_chain(connection)).head_seq == before  # nothing before the commit
    await audit.write_deferred(session)
    rows = (
        await session.execute(
            select(AuditEvent.seq, AuditEvent.action, AuditEvent.resource_id)
            .where(AuditEvent.seq > before)
            .order_by(AuditEvent.seq)
        )
    ).all()
    assert [(r.seq, r.resource_id) for r in rows[:5]] == [
        (before + 1 + i, str(i)) for i in range(5)
    ]
    assert rows[5].action == "entry.list"
    result = await verify_chain(connection)
    assert result.ok, result
    assert result.head_seq == before + 6


AWKWARD_REASONS = [
    "Återkallat av vårdnadshavare",  # non-ASCII: PostgreSQL's text differs, Python decides
    'citat "så" och \\ snedstreck',
    "rad ett\nrad två\ttab\x01\x7f",
    "emoji \U0001f600 utanför BMP",
    "plain ascii",
]


@pytest.mark.usefixtures("verifier")
@pytest.mark.parametrize("page", [3, 1000])
@pytest.mark.parametrize("target", [1, 4, 6, 7, 10])
async def test_verify_in_the_database_and_here_agree(
    session: AsyncSession,
    connection: AsyncConnection,
    backend: str,
    monkeypatch: pytest.MonkeyPatch,
    page: int,
    target: int,
) -> None:
    """Records with every kind of awkward text verify, tampering is found at the same seq
    by both verifiers (PostgreSQL's in-database one, and the Python one), across pages."""
    monkeypatch.setattr(chain, "VERIFY_BATCH_IN_DATABASE", page)
    for i in range(10):
        await audit.append(
            session,
            audit.Record(action="test.text", reason=AWKWARD_REASONS[i % len(AWKWARD_REASONS)]),
        )
    await session.flush()
    base = (await verify_chain(connection)).head_seq - 10
    for check in (verify_chain, chain._verify_here):
        result = await check(connection)
        assert result.ok, result
    await _disable_protection(connection, backend)
    seq = base + target
    await connection.execute(
        text("UPDATE audit_event SET reason = reason || 'x' WHERE seq = :seq"), {"seq": seq}
    )
    for check in (verify_chain, chain._verify_here):
        result = await check(connection)
        assert (result.ok, result.first_bad_seq) == (False, seq), check
        assert result.checked == seq - 1
        assert result.problem == "record content does not match its hash"


@pytest.mark.usefixtures("verifier")
@pytest.mark.only_backend("postgresql")
@pytest.mark.parametrize(
    ("tamper", "bad"),
    [
        ("UPDATE audit_event SET reason = 'x' WHERE seq = 8", 8),  # the last of a range
        ("DELETE FROM audit_event WHERE seq = 9", 9),  # the first of a range
        ("DELETE FROM audit_event WHERE seq IN (15, 16)", 15),  # a range's tail
        ("DELETE FROM audit_event WHERE seq = 25", 25),  # the head's record
    ],
)
async def test_verify_in_ranges_at_once(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tamper: str, bad: int
) -> None:
    """Ranges checked on connections of their own find the first break wherever it falls."""
    monkeypatch.setattr(chain, "VERIFY_BATCH_IN_DATABASE", 4)
    async with migrated_database(backend, tmp_path) as (_, database):
        async with database.sessionmaker() as session:
            await _append_many(session, 25)
            await session.commit()
        async with database.engine.connect() as conn:
            result = await verify_chain(conn, jobs=3)
            assert (result.ok, result.checked, result.head_seq) == (True, 25, 25), result
            await _disable_protection(conn, backend)
            await conn.execute(text(tamper))
            await conn.commit()
            result = await verify_chain(conn, jobs=3)
            assert (result.ok, result.first_bad_seq, result.checked) == (False, bad, bad - 1)
            assert result == await verify_chain(conn, jobs=1)


@pytest.mark.only_backend("postgresql")
@pytest.mark.usefixtures("verifier")
async def test_verify_does_not_take_stored_escapes_for_pythons(
    session: AsyncSession, connection: AsyncConnection, backend: str
) -> None:
    """A reason with a quote and a backslash, replaced by the text Python's JSON writes for
    it: written unescaped, the new value would read as the original's text."""
    original = 'citat "sa" och \\ snedstreck'
    seq = await audit.append(session, audit.Record(action="test.text", reason=original))
    await session.flush()
    assert (await verify_chain(connection)).ok
    await _disable_protection(connection, backend)
    await connection.execute(
        text("UPDATE audit_event SET reason = :reason WHERE seq = :seq"),
        {"reason": json.dumps(original)[1:-1], "seq": seq},
    )
    result = await verify_chain(connection)
    assert (result.ok, result.first_bad_seq, result.problem) == (False, seq, chain._UNHASHED)


async def _break_audit_inserts(connection: AsyncConnection, backend: str) -> None:
    if backend == "postgresql":
        await connection.execute(
            text(
                "CREATE FUNCTION test_fail_audit() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'disk full (simulated)'; END $$"
            )
        )
        await connection.execute(
            text(
                "CREATE TRIGGER test_fail_audit BEFORE INSERT ON audit_event "
                "FOR EACH ROW EXECUTE FUNCTION test_fail_audit()"
            )
        )
    else:
        await connection.execute(
            text(
                "CREATE TRIGGER test_fail_audit BEFORE INSERT ON audit_event "
                "BEGIN SELECT RAISE(ABORT, 'disk full (simulated)'); END"
            )
        )


async def test_a_failed_audit_append_fails_the_request_and_keeps_nothing(
    client: httpx.AsyncClient,
    app: FastAPI,
    session: AsyncSession,
    connection: AsyncConnection,
    backend: str,
) -> None:
    admin = await make_user(session, roles={Role.ADMIN})
    await _break_audit_inserts(connection, backend)
    agencies = (await session.execute(select(func.count()).select_from(Agency))).scalar_one()
    response = await client.post(
        "/api/v1/agencies",
        json={"name": "X", "kind": "skola", "organisation_number": "212000-0142"},
        headers=bearer(app, admin),
    )
    assert response.status_code == 503
    assert response.json()["type"] == "urn:samverkan:problem:service-unavailable"
    assert "disk full" not in response.text
    assert (
        await session.execute(select(func.count()).select_from(Agency))
    ).scalar_one() == agencies


@pytest.mark.only_backend("postgresql")
async def test_the_app_role_cannot_change_the_log_even_without_triggers(
    connection: AsyncConnection,
) -> None:
    """The role separation documented in the migration, applied and tried."""
    role = f"samverkan_app_{uuid.uuid4().hex[:8]}"
    for statement in (
        f"CREATE ROLE {role} NOLOGIN",
        f"GRANT USAGE ON SCHEMA public TO {role}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}",
        f"REVOKE UPDATE, DELETE, TRUNCATE ON audit_event FROM {role}",
        f"REVOKE INSERT, DELETE, TRUNCATE ON audit_chain_head FROM {role}",
        "ALTER TABLE audit_event DISABLE TRIGGER USER",  # privileges alone must hold
        f"SET LOCAL ROLE {role}",
    ):
        await connection.execute(text(statement))
    async with AsyncSession(bind=connection, join_transaction_mode="create_savepoint") as session:
        seq = await audit.append(session, audit.Record(action="test.as_app_role"))
        await session.flush()
    for statement in (
        "UPDATE audit_event SET action = 'x' WHERE seq = :seq",
        "DELETE FROM audit_event WHERE seq = :seq",
        "TRUNCATE audit_event",
    ):
        with pytest.raises(DBAPIError, match="permission denied"):
            async with connection.begin_nested():
                await connection.execute(text(statement), {"seq": seq})
    assert (await verify_chain(connection)).ok


def _verify_process(url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", "audit", "verify"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "SAMVERKAN_DATABASE_URL": url},
        timeout=120,
        check=False,
    )


def _run_verify(url: str) -> tuple[int, dict[str, object]]:
    result = _verify_process(url)
    return result.returncode, json.loads(result.stdout)


async def test_audit_verify_command_reports_ok_and_the_first_bad_seq(
    backend: str, tmp_path: Path
) -> None:
    async with migrated_database(backend, tmp_path) as (url, database):
        async with database.sessionmaker() as session:
            await _append_many(session, 5)
            await session.commit()
        code, report = await asyncio.to_thread(_run_verify, url)
        assert (code, report["ok"], report["checked"]) == (0, True, 5)
        async with database.engine.connect() as conn:
            await _disable_protection(conn, backend)
            await conn.execute(text("UPDATE audit_event SET resource_id = 'x' WHERE seq = 3"))
            await conn.commit()
        code, report = await asyncio.to_thread(_run_verify, url)
        assert (code, report["ok"], report["first_bad_seq"]) == (1, False, 3)


async def test_verify_tells_its_progress_to_the_end(backend: str, tmp_path: Path) -> None:
    """What `samverkan audit verify` draws its progress bar from (on a terminal only)."""
    async with migrated_database(backend, tmp_path) as (_, database):
        async with database.sessionmaker() as session:
            await _append_many(session, 7)
            await session.commit()
        told: list[tuple[int, int]] = []
        async with database.engine.connect() as connection:
            result = await verify_chain(
                connection, jobs=2, progress=lambda done, total: told.append((done, total))
            )
        assert result.ok
        assert told[-1] == (7, 7)
        assert [done for done, _ in told] == sorted(done for done, _ in told)


async def test_verify_off_a_terminal_prints_json_only(backend: str, tmp_path: Path) -> None:
    async with migrated_database(backend, tmp_path) as (url, database):
        async with database.sessionmaker() as session:
            await _append_many(session, 3)
            await session.commit()
        result = await asyncio.to_thread(_verify_process, url)
        assert json.loads(result.stdout)["ok"] is True
        assert "records" not in result.stderr  # no progress bar when stderr is not a terminal
