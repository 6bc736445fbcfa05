"""The group commit of reads' audit records (app/audit/group.py), on PostgreSQL with real
commits: no test transaction around the requests, the app's own pool and the group's
connection beside it, as in production.

- Concurrent reads are answered, each after its records are durable, and their records
  are appended together (fewer statements than requests), chained as one-by-one appends
  chain them, and counted for the volume flag.
- A read whose records cannot be committed answers 503 with nothing of what it read, and
  its records are written again, marked not completed.
- A request whose transaction wrote anything keeps its records in that transaction.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import func, select, text

from app.agencies.models import AgencyKind
from app.audit import writer
from app.audit.chain import verify_chain
from app.audit.group import GroupCommit
from app.audit.models import AuditEvent, AuditReadVolume
from app.audit.records import Origin
from app.auth.service import user_actor
from app.cases import service as case_service
from app.cases.models import Programme
from app.cases.schemas import CaseCreate
from app.db import Database, create_engine, database_of_session
from app.entries import service as entry_service
from app.entries.schemas import EntryCreate
from app.individuals import service as individual_service
from app.individuals.schemas import IndividualCreate
from app.main import create_app
from app.users.models import Role, User
from tests.conftest import client_for, make_settings, migrated_database
from tests.factories import bearer, make_agency, make_user

pytestmark = pytest.mark.only_backend("postgresql")

ENTRIES = 6
SECRET = "group-commit-secret-body"


async def _world(database: Database) -> tuple[User, uuid.UUID, list[uuid.UUID]]:
    """A coordinator, their case and its entries, committed."""
    async with database.sessionmaker() as session:
        soc = await make_agency(session, kind=AgencyKind.SOCIALTJANST.value)
        user = await make_user(session, roles={Role.COORDINATOR}, agency=soc)
        lead = user_actor(user, Origin())
        individual = await individual_service.create_individual(
            session,
            lead,
            data=IndividualCreate(given_name="A", family_name="B", birth_date=date(2010, 1, 1)),
        )
        case = await case_service.create_case(
            session, lead, data=CaseCreate(individual_id=individual.id, programme=Programme.SIG)
        )
        entries = [
            await entry_service.create_entry(
                session,
                lead,
                case_id=case.id,
                data=EntryCreate(category="social_services", title=f"t{n}", body=SECRET),
            )
            for n in range(ENTRIES)
        ]
        await session.commit()
    return user, case.id, [entry.id for entry in entries]


@asynccontextmanager
async def _served(
    backend: str, tmp_path: Path
) -> AsyncIterator[tuple[str, Database, tuple[User, uuid.UUID, list[uuid.UUID]]]]:
    """A migrated database with real commits, pooled as the bench pools it, and its world."""
    async with migrated_database(backend, tmp_path, db_pool_size=4, db_max_overflow=0) as (
        url,
        database,
    ):
        yield url, database, await _world(database)


async def _records_of(database: Database, request_id: str) -> list[AuditEvent]:
    async with database.sessionmaker() as session:
        rows = await session.execute(
            select(AuditEvent).where(AuditEvent.request_id == request_id).order_by(AuditEvent.seq)
        )
        return list(rows.scalars())


def _metric(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


def _group(database: Database) -> GroupCommit:
    group: GroupCommit = database.state[writer._GROUP]
    return group


async def test_concurrent_reads_are_appended_together_each_answered_once_durable(
    backend: str, tmp_path: Path
) -> None:
    async with _served(backend, tmp_path) as (url, database, (user, case_id, entry_ids)):
        app = create_app(make_settings(url), database=database)
        recorded_before = _metric("samverkan_audit_group_commit_records_sum")
        async with client_for(app) as client:
            headers = bearer(app, user)
            paths = [f"/api/v1/entries/{entry_id}" for entry_id in entry_ids] * 5
            paths += [f"/api/v1/cases/{case_id}/entries"] * 5
            responses = await asyncio.gather(*(client.get(p, headers=headers) for p in paths))
        assert [r.status_code for r in responses] == [200] * len(paths)

        # Each request's records are there when its answer is: one per entry read, and
        # for a page one per entry shown and the list's own.
        for path, response in zip(paths, responses, strict=True):
            records = await _records_of(database, response.headers["x-request-id"])
            actions = [r.action for r in records]
            if path.endswith("/entries"):
                assert sorted(actions) == sorted(["entry.read"] * ENTRIES + ["entry.list"])
            else:
                assert actions == ["entry.read"]
                assert records[0].resource_id == path.rsplit("/", 1)[1]
            assert all(r.decision == "permit" and r.actor_user_id == user.id for r in records)

        # Fewer statements than requests: the reads that finished while one was being
        # written went together with the next.
        assert 0 < _group(database).rounds < len(paths)
        # and the operators' metric counts them
        appended = len(entry_ids) * 5 + (ENTRIES + 1) * 5
        assert _metric("samverkan_audit_group_commit_records_sum") - recorded_before == appended
        async with database.engine.connect() as connection:
            result = await verify_chain(connection)
            assert result.ok, result.problem
            noted = await connection.scalar(
                select(func.count()).where(AuditReadVolume.actor_user_id == user.id)
            )
            assert noted == 1  # the reads of the individual, for the volume flag


async def test_a_read_whose_records_cannot_be_committed_fails_closed(
    backend: str, tmp_path: Path
) -> None:
    async with _served(backend, tmp_path) as (url, database, (user, case_id, entry_ids)):
        # The group's connection goes to a server that is not there; the requests' pool
        # still works (the records are written again through it).
        unreachable = create_engine(
            make_settings("postgresql+asyncpg://postgres@127.0.0.1:1/none"),
            pool_size=1,
            max_overflow=0,
            autocommit=True,
        )
        working, database.autocommit_engine = database.autocommit_engine, unreachable
        failed_before = _metric("samverkan_audit_group_commit_failed_reads_total")
        try:
            app = create_app(make_settings(url), database=database)
            async with client_for(app) as client:
                headers = bearer(app, user)
                single, page = await asyncio.gather(
                    client.get(f"/api/v1/entries/{entry_ids[0]}", headers=headers),
                    client.get(f"/api/v1/cases/{case_id}/entries", headers=headers),
                )
        finally:
            database.autocommit_engine = working
            await unreachable.dispose()
        for response in (single, page):
            assert response.status_code == 503, response.text
            assert response.json()["type"] == "urn:samverkan:problem:service-unavailable"
            assert SECRET not in response.text
            assert "t0" not in response.text
            records = await _records_of(database, response.headers["x-request-id"])
            assert records, "the failed read's records were not written again"
            for record in records:
                assert record.reason is not None
                assert "not completed: HTTP 503" in record.reason
        assert _metric("samverkan_audit_group_commit_failed_reads_total") - failed_before == 2
        async with database.engine.connect() as connection:
            assert (await verify_chain(connection)).ok


async def test_a_transaction_that_wrote_keeps_its_records_in_it(
    backend: str, tmp_path: Path
) -> None:
    """The group is only for transactions that wrote nothing: a change's records must
    commit or roll back with the change."""
    async with migrated_database(backend, tmp_path) as (_url, database):
        async with database.sessionmaker() as session:
            session.info["samverkan.database"] = database
            assert database_of_session(session) is database
            assert await writer._group_for(session) is not None  # read only so far
            await make_agency(session)  # flushed: the transaction has written
            assert await writer._group_for(session) is None
            await session.rollback()
        async with database.sessionmaker() as session:
            session.info["samverkan.database"] = database
            await session.execute(text("CREATE TEMPORARY TABLE scratch (x int)"))
            await session.execute(text("INSERT INTO scratch VALUES (1)"))  # not through the ORM
            assert await writer._group_for(session) is None
            await session.rollback()


async def test_the_group_fails_the_requests_of_a_failed_round_and_goes_on() -> None:
    """Without a database (the write and its connection stand in): a failed write fails
    exactly the requests in it; the next round is written on a new connection."""
    calls: list[list[object]] = []

    async def write(_connection: Any, items: list[object]) -> None:
        calls.append(items)
        if "bad" in items:
            raise RuntimeError("refused")

    connections: list[str] = []

    class _Connection:
        async def __aenter__(self) -> _Connection:
            connections.append("open")
            return self

        async def __aexit__(self, *_: object) -> None:
            return None

        async def invalidate(self) -> None:
            connections.append("discarded")

    class _Engine:
        def connect(self) -> _Connection:
            return _Connection()

    group = GroupCommit(_Engine(), write, most=3)  # type: ignore[arg-type]
    outcomes = await asyncio.gather(
        group.submit(["a"]),
        group.submit(["bad", "b"]),
        group.submit(["c", "d"]),
        return_exceptions=True,
    )
    # All three were waiting when the writer first ran: "a" and "bad", "b" fill a round
    # of three ("c", "d" would not fit, and a request's items are never split); that
    # round fails, both its requests with it; "c", "d" are written in the next.
    assert calls == [["a", "bad", "b"], ["c", "d"]]
    assert isinstance(outcomes[0], RuntimeError)
    assert isinstance(outcomes[1], RuntimeError)
    assert outcomes[2] is None
    assert group.rounds == 1
    # the connection of the failed round is discarded; the next round gets a new one
    assert connections == ["open", "discarded", "open"]
