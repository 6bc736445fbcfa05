"""Withdrawal is immediate: on PostgreSQL, with readers running concurrently while a
withdrawal commits, no read that began after the commit returns the entry."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from app.agencies.models import AgencyKind
from app.audit.records import Origin
from app.auth.actor import Actor
from app.auth.service import user_actor
from app.cases import service as case_service
from app.cases.models import Programme
from app.cases.schemas import CaseCreate, ParticipantCreate
from app.consents import service as consent_service
from app.consents.models import ConsentMethod, SignatoryRole
from app.consents.schemas import ConsentCreate, SignatoryIn, WithdrawalIn
from app.db import Database
from app.entries import service as entry_service
from app.entries.schemas import EntryCreate
from app.errors import NotFound
from app.individuals import service as individual_service
from app.individuals.schemas import IndividualCreate
from app.users.models import Role
from tests.conftest import migrated_database
from tests.factories import make_agency, make_user

# 15 rounds in every run; `SAMVERKAN_TEST_RACE_ROUNDS=1000` for the long run that
# docs/security-testing.md reports.
ROUNDS = int(os.environ.get("SAMVERKAN_TEST_RACE_ROUNDS", "15"))
READERS = 8


@pytest.mark.only_backend("postgresql")
async def test_no_read_that_starts_after_the_withdrawal_commits_returns_data(
    backend: str, tmp_path: Path
) -> None:
    async with migrated_database(backend, tmp_path, db_pool_size=READERS + 2) as (_url, database):
        async with database.sessionmaker() as session:
            soc = await make_agency(session, kind=AgencyKind.SOCIALTJANST.value)
            pol = await make_agency(session, kind=AgencyKind.POLIS.value)
            lead = user_actor(
                await make_user(session, roles={Role.COORDINATOR}, agency=soc), Origin()
            )
            police = user_actor(
                await make_user(session, roles={Role.CASEWORKER}, agency=pol), Origin()
            )
            individual = await individual_service.create_individual(
                session,
                lead,
                data=IndividualCreate(given_name="A", family_name="B", birth_date=date(2000, 1, 1)),
            )
            case = await case_service.create_case(
                session,
                lead,
                data=CaseCreate(individual_id=individual.id, programme=Programme.SIG),
            )
            await case_service.add_participant(
                session, lead, case_id=case.id, data=ParticipantCreate(agency_id=pol.id)
            )
            entry = await entry_service.create_entry(
                session,
                lead,
                case_id=case.id,
                data=EntryCreate(category="social_services", title="t", body="b"),
            )
            await session.commit()

        violations: list[str] = []
        for _ in range(ROUNDS):
            violations += await _race_round(
                database, lead, police, soc.id, pol.id, case.id, entry.id
            )
        assert violations == []


async def _race_round(
    database: Database,
    lead: Actor,
    police: Actor,
    soc_id: uuid.UUID,
    pol_id: uuid.UUID,
    case_id: uuid.UUID,
    entry_id: uuid.UUID,
) -> list[str]:
    """Readers loop while the withdrawal commits; report reads that started after the
    commit had returned and still got the entry."""
    async with database.sessionmaker() as session:
        now = datetime.now(UTC)
        consent = await consent_service.register_consent(
            session,
            lead,
            case_id=case_id,
            data=ConsentCreate(
                signatories=[
                    SignatoryIn(
                        role=SignatoryRole.INDIVIDUAL,
                        name="A",
                        signed_at=now - timedelta(minutes=1),
                    )
                ],
                agency_ids=[soc_id, pol_id],
                categories=["social_services"],
                purpose="race",
                valid_from=now - timedelta(minutes=1),
                valid_until=now + timedelta(days=1),
                method=ConsentMethod.PAPER,
            ),
        )
        await session.commit()
    committed_at: list[float] = []
    stop = asyncio.Event()
    violations: list[str] = []
    reads_after_commit = 0

    async def withdraw() -> None:
        await asyncio.sleep(0.02)
        async with database.sessionmaker() as session:
            await consent_service.withdraw_consent(
                session, lead, consent_id=consent.id, data=WithdrawalIn(reason="race")
            )
            await session.commit()
        committed_at.append(time.monotonic())
        await asyncio.sleep(0.05)
        stop.set()

    async def read() -> None:
        nonlocal reads_after_commit
        while not stop.is_set():
            started = time.monotonic()
            async with database.sessionmaker() as session:
                try:
                    await entry_service.get_entry(session, police, entry_id=entry_id)
                    returned = True
                except NotFound:
                    returned = False
                await session.commit()
            if committed_at and started > committed_at[0]:
                reads_after_commit += 1
                if returned:
                    violations.append(f"read started {started - committed_at[0]:.4f}s after")

    await asyncio.gather(withdraw(), *(read() for _ in range(READERS)))
    assert reads_after_commit > 0, "the race must actually run reads after the commit"
    return violations
