"""The SQL filters that lists use agree with the Cedar decisions, row for row.

Hypothesis draws random worlds (agencies, individuals with and without protected
identity, cases with any set of participants) and random actors (every role mix, users
and integration clients); for each, the rows the SQL filter returns must be exactly the
rows the decision point permits.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.writer import Origin
from app.auth.actor import Actor, ActorKind
from app.cases import service as case_service
from app.cases.models import Case, CaseParticipant
from app.individuals import service as individual_service
from app.individuals.models import Individual
from app.policy import enforce, filters
from app.policy.engine import Action
from app.users.models import Role
from tests.factories import make_agency

ROLE_SETS = st.sets(st.sampled_from(list(Role)), max_size=3)

world = st.fixed_dictionaries(
    {
        "agencies": st.integers(min_value=2, max_value=4),
        "individuals": st.lists(
            st.tuples(st.integers(0, 3), st.booleans()), min_size=1, max_size=5
        ),
        "cases": st.lists(
            st.tuples(st.integers(0, 4), st.integers(0, 3), st.sets(st.integers(0, 3))),
            max_size=6,
        ),
        "actors": st.lists(
            st.tuples(st.integers(0, 3), ROLE_SETS, st.booleans()), min_size=1, max_size=6
        ),
    }
)


async def _ids(
    session: AsyncSession, column: object, condition: ColumnElement[bool]
) -> set[uuid.UUID]:
    return set((await session.execute(select(column).where(condition))).scalars())


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(spec=world)
async def test_sql_filters_agree_with_cedar(session: AsyncSession, spec: dict[str, object]) -> None:
    nested = await session.begin_nested()
    try:
        await _check(session, spec)
    finally:
        await nested.rollback()


async def _check(session: AsyncSession, spec: dict[str, object]) -> None:
    now = datetime.now(UTC)
    agencies = [await make_agency(session) for _ in range(spec["agencies"])]
    pick = lambda i: agencies[i % len(agencies)]  # noqa: E731
    individuals = []
    for registering, protected in spec["individuals"]:
        individual = Individual(
            id=uuid.uuid4(),
            registering_agency_id=pick(registering).id,
            personal_number=None,
            number_kind=None,
            reserve_id="R-" + uuid.uuid4().hex[:12],
            given_name="G",
            family_name="F",
            birth_date=date(2010, 1, 1),
            protected_identity=protected,
            created_by=uuid.uuid4(),
            created_at=now,
        )
        session.add(individual)
        individuals.append(individual)
    await session.flush()
    cases = []
    for individual_index, lead, others in spec["cases"]:
        case = Case(
            id=uuid.uuid4(),
            individual_id=individuals[individual_index % len(individuals)].id,
            programme="sig",
            lead_agency_id=pick(lead).id,
            status="open",
            closure_reason=None,
            created_by=uuid.uuid4(),
            created_at=now,
            updated_at=now,
            closed_at=None,
        )
        session.add(case)
        await session.flush()
        for agency in {pick(lead), *(pick(o) for o in others)}:
            session.add(
                CaseParticipant(
                    case_id=case.id, agency_id=agency.id, added_at=now, added_by=case.created_by
                )
            )
        cases.append(case)
    await session.flush()

    all_cases = list((await session.execute(select(Case))).scalars())
    all_individuals = list((await session.execute(select(Individual))).scalars())
    for agency_index, roles, is_client in spec["actors"]:
        actor = Actor(
            kind=ActorKind.CLIENT if is_client else ActorKind.USER,
            id=uuid.uuid4(),
            agency_id=pick(agency_index).id,
            roles=frozenset() if is_client else frozenset(roles),
            scopes=frozenset(),
            username="x",
            name="x",
            origin=Origin(),
        )
        permitted_cases = {
            c.id
            for c in all_cases
            if enforce.decide(
                actor, Action.CASE_READ, await case_service.case_facts(session, c)
            ).allowed
        }
        assert await _ids(session, Case.id, filters.cases_visible_to(actor)) == permitted_cases
        readable, identifiable = set(), set()
        for individual in all_individuals:
            facts = await individual_service.facts(session, individual)
            if enforce.decide(actor, Action.INDIVIDUAL_READ, facts).allowed:
                readable.add(individual.id)
            if enforce.decide(actor, Action.INDIVIDUAL_IDENTITY, facts).allowed:
                identifiable.add(individual.id)
        assert await _ids(session, Individual.id, filters.individuals_visible_to(actor)) == readable
        assert (
            await _ids(session, Individual.id, filters.individuals_with_identity_visible_to(actor))
            == identifiable
        )
