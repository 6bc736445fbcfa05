"""Two changes of one action at the same moment: on PostgreSQL exactly one wins and the
other is told the action moved on (409); never two final states, never a lost update."""

from __future__ import annotations

import asyncio
import uuid
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.actions import service as action_service
from app.actions.models import ActionStatus, CaseAction
from app.actions.schemas import ActionCreate, ActionUpdate
from app.agencies.models import AgencyKind
from app.audit.models import AuditEvent
from app.audit.records import Origin
from app.auth.actor import Actor
from app.auth.service import user_actor
from app.cases import service as case_service
from app.cases.models import Programme
from app.cases.schemas import CaseCreate
from app.db import Database
from app.errors import Conflict
from app.individuals import service as individual_service
from app.individuals.schemas import IndividualCreate
from app.users.models import Role
from tests.conftest import migrated_database
from tests.factories import make_agency, make_user

ROUNDS = 10


@pytest.mark.only_backend("postgresql")
async def test_concurrent_changes_of_one_action_never_both_win(
    backend: str, tmp_path: Path
) -> None:
    async with migrated_database(backend, tmp_path, db_pool_size=4) as (_url, database):
        async with database.sessionmaker() as session:
            soc = await make_agency(session, kind=AgencyKind.SOCIALTJANST.value)
            lead = user_actor(
                await make_user(session, roles={Role.COORDINATOR}, agency=soc), Origin()
            )
            individual = await individual_service.create_individual(
                session,
                lead,
                data=IndividualCreate(given_name="A", family_name="B", birth_date=date(2010, 1, 1)),
            )
            case = await case_service.create_case(
                session,
                lead,
                data=CaseCreate(individual_id=individual.id, programme=Programme.SIG),
            )
            await session.commit()
        for _ in range(ROUNDS):
            await _race_round(database, lead, case.id, soc.id)


async def _race_round(
    database: Database, actor: Actor, case_id: uuid.UUID, agency_id: uuid.UUID
) -> None:
    async with database.sessionmaker() as session:
        action = await action_service.create_action(
            session,
            actor,
            case_id=case_id,
            data=ActionCreate(type="t", title="t", responsible_agency_id=agency_id),
        )
        await action_service.update_action(
            session,
            actor,
            action_id=action.id,
            data=ActionUpdate(status=ActionStatus.IN_PROGRESS),
        )
        await session.commit()

    async def finish(status: ActionStatus) -> str:
        async with database.sessionmaker() as session:
            try:
                await action_service.update_action(
                    session,
                    actor,
                    action_id=action.id,
                    data=ActionUpdate(status=status, outcome=status.value),
                )
            except Conflict:
                await session.rollback()
                return "conflict"
            await session.commit()
            return status.value

    results = sorted(
        await asyncio.gather(finish(ActionStatus.DONE), finish(ActionStatus.CANCELLED))
    )
    assert results.count("conflict") == 1, results
    [winner] = [r for r in results if r != "conflict"]
    async with database.sessionmaker() as session:
        stored = await session.get(CaseAction, action.id)
        assert stored is not None
        assert (stored.status, stored.outcome) == (winner, winner)
        updates = await session.execute(
            select(func.count()).where(
                AuditEvent.resource_id == str(action.id), AuditEvent.action == "action.update"
            )
        )
        assert updates.scalar_one() == 2  # in_progress, then the one that won
