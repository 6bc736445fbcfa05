"""Out-of-request set-up used by the CLI: the first administrator and the demo data.

Runs outside HTTP requests, so it audits itself: each account it creates is recorded
with ``actor_roles`` empty and ``reason`` naming the command.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.agencies.models import Agency, AgencyKind
from app.audit import writer as audit
from app.audit.records import Origin, Record
from app.auth.actor import Actor
from app.auth.service import user_actor
from app.cases import links as link_service
from app.cases import service as case_service
from app.cases.models import (
    Case,
    CaseStatus,
    ClosureReason,
    CustodyStatus,
    ExitStatus,
    LinkKind,
    Programme,
    ThreatLevel,
)
from app.cases.schemas import CaseCreate, CaseUpdate, Custody, Exit, LinkCreate, ParticipantCreate
from app.consents import service as consent_service
from app.consents.models import ConsentMethod, SignatoryRole
from app.consents.schemas import ConsentCreate, SignatoryIn
from app.entries import service as entry_service
from app.entries.schemas import EntryCreate
from app.errors import Conflict
from app.goals import service as goal_service
from app.goals.models import GoalArea
from app.goals.schemas import GoalCreate, GoalUpdate
from app.individuals import changes as individual_changes
from app.individuals import service as individual_service
from app.individuals.models import Individual
from app.individuals.schemas import IndividualCreate, IndividualUpdate
from app.meetings import service as meeting_service
from app.meetings.models import MeetingKind
from app.meetings.schemas import AttendeeIn, DecisionIn, MeetingCreate
from app.security import hash_secret_async
from app.users import service as user_service
from app.users.models import Role, User

SYSTEM_AGENCY_NAME = "Samverkan (system)"


@dataclass(frozen=True, slots=True)
class DemoLogin:
    username: str
    password: str
    agency: str
    roles: str


async def _agency(
    session: AsyncSession,
    *,
    name: str,
    kind: AgencyKind,
    organisation_number: str,
    municipality: str | None,
    reason: str,
) -> Agency:
    existing = (
        await session.execute(select(Agency).where(Agency.name == name, Agency.kind == kind))
    ).scalar_one_or_none()
    if existing is not None:
        return existing
    now = datetime.now(UTC)
    agency = Agency(
        id=uuid.uuid4(),
        name=name,
        kind=kind.value,
        organisation_number=organisation_number,
        municipality=municipality,
        created_at=now,
        updated_at=now,
    )
    session.add(agency)
    await session.flush()
    await audit.append(
        session,
        Record(
            action="agency.create",
            resource_type="agency",
            resource_id=str(agency.id),
            reason=reason,
        ),
    )
    return agency


async def create_admin(
    session: AsyncSession, *, username: str, password: str, organisation_number: str | None
) -> User:
    """The first administrator, in a system agency of kind ``other``.

    Refuses (409) an existing username, so running it twice changes nothing.
    """
    if await user_service.username_taken(session, username):
        raise Conflict(f"A user named {username!r} exists already; nothing was changed.")
    agency = (
        (
            await session.execute(
                select(Agency).where(Agency.kind == AgencyKind.OTHER).order_by(Agency.created_at)
            )
        )
        .scalars()
        .first()
    )
    if agency is None:
        if organisation_number is None:
            raise Conflict(
                "No agency of kind 'other' exists yet: give --organisation-number for the "
                "system agency the administrator will belong to."
            )
        agency = await _agency(
            session,
            name=SYSTEM_AGENCY_NAME,
            kind=AgencyKind.OTHER,
            organisation_number=organisation_number,
            municipality=None,
            reason="samverkan create-admin",
        )
    user = await user_service.insert_user(
        session,
        username=username,
        display_name="Administrator",
        agency_id=agency.id,
        roles={Role.ADMIN},
        password=password,
    )
    await audit.append(
        session,
        Record(
            action="user.create",
            resource_type="user",
            resource_id=str(user.id),
            reason="samverkan create-admin",
        ),
    )
    return user


# The collaboration in Hässelby-Vällingby (Stockholm) that the demo shows. Organisation
# numbers are the public ones of Stockholms stad, Polismyndigheten and Kriminalvården.
_DEMO_AGENCIES = (
    ("Hässelby-Vällingby stadsdelsförvaltning", AgencyKind.SOCIALTJANST, "2120000142"),
    ("Lokalpolisområde Vällingby", AgencyKind.POLIS, "2021000076"),
    ("Kriminalvården, frivården Stockholm", AgencyKind.KRIMINALVARD, "2021000225"),
    ("Vällingby skola (demo)", AgencyKind.SKOLA, "2120000142"),
)
_DEMO_USERS = (
    ("demo.samordnare", "Sara Samordnare", 0, {Role.COORDINATOR, Role.CASEWORKER}),
    ("demo.socialsekreterare", "Sam Socialsekreterare", 0, {Role.CASEWORKER}),
    ("demo.polis", "Pia Polis", 1, {Role.CASEWORKER}),
    ("demo.frivard", "Frank Frivård", 2, {Role.CASEWORKER}),
    ("demo.skola", "Sigrid Skola", 3, {Role.CASEWORKER}),
    ("demo.granskare", "Greta Granskare", 0, {Role.AUDITOR}),
    ("demo.admin", "Adam Admin", 0, {Role.ADMIN}),
)


@dataclass(frozen=True)
class DemoSeed:
    logins: list[DemoLogin]
    individual_id: uuid.UUID
    case_id: uuid.UUID


# Skatteverket's well-known test person: a valid personnummer that belongs to no one.
DEMO_PERSONAL_NUMBER = "19121212-1212"


async def seed_demo(session: AsyncSession) -> DemoSeed:
    """Demo agencies and one user per role; each run sets fresh random passwords. The case
    is made once (``samverkan demo --reset`` starts over)."""
    agencies = [
        await _agency(
            session,
            name=name,
            kind=kind,
            organisation_number=number,
            municipality="Stockholm",
            reason="samverkan demo",
        )
        for name, kind, number in _DEMO_AGENCIES
    ]
    logins = []
    for username, display_name, agency_index, roles in _DEMO_USERS:
        password = secrets.token_urlsafe(12)
        user = (
            await session.execute(select(User).where(User.username == username))
        ).scalar_one_or_none()
        if user is None:
            user = await user_service.insert_user(
                session,
                username=username,
                display_name=display_name,
                agency_id=agencies[agency_index].id,
                roles=roles,
                password=password,
            )
            action = "user.create"
        else:
            user.password_hash = await hash_secret_async(password)
            user.active = True
            action = "user.update"
        await audit.append(
            session,
            Record(
                action=action,
                resource_type="user",
                resource_id=str(user.id),
                reason="samverkan demo",
            ),
        )
        logins.append(
            DemoLogin(
                username=username,
                password=password,
                agency=agencies[agency_index].name,
                roles=",".join(sorted(r.value for r in roles)),
            )
        )
    await session.flush()
    individual_id, case_id = await _seed_demo_case(session, agencies)
    return DemoSeed(logins=logins, individual_id=individual_id, case_id=case_id)


async def _seed_demo_case(
    session: AsyncSession, agencies: list[Agency]
) -> tuple[uuid.UUID, uuid.UUID]:
    """A SIG case for Tolvan Tolvansson (Skatteverket's test personnummer, so the police can
    look him up by number and no real person is demo data), led by social services with the
    police, Kriminalvården's frivård and the school, under a consent he signed."""
    social, police, probation, school = agencies
    exists = (
        await session.execute(
            select(Individual.id, Case.id)
            .join(Case, Case.individual_id == Individual.id)
            .where(
                Individual.registering_agency_id == social.id,
                Individual.personal_number == DEMO_PERSONAL_NUMBER.replace("-", ""),
                Case.programme == Programme.SIG.value,
            )
        )
    ).first()
    if exists is not None:
        return exists[0], exists[1]
    now = datetime.now(UTC)
    coordinator = (
        await session.execute(select(User).where(User.username == "demo.samordnare"))
    ).scalar_one()
    actor = user_actor(coordinator, Origin(request_id="samverkan-demo"))
    # registered first without his number (a reserve id), then corrected: a version
    individual = await individual_service.create_individual(
        session,
        actor,
        data=IndividualCreate(
            given_name="Tolvan", family_name="Tolvansson", birth_date=date(1912, 12, 12)
        ),
    )
    await individual_changes.update_individual(
        session,
        actor,
        individual_id=individual.id,
        data=IndividualUpdate(personal_number=DEMO_PERSONAL_NUMBER),
    )
    # the Trefas case before his release: social services and the frivård, now closed
    trefas = await case_service.create_case(
        session, actor, data=CaseCreate(individual_id=individual.id, programme=Programme.TREFAS)
    )
    await case_service.add_participant(
        session, actor, case_id=trefas.id, data=ParticipantCreate(agency_id=probation.id)
    )
    await case_service.update_case(
        session,
        actor,
        case_id=trefas.id,
        data=CaseUpdate(
            custody=Custody(
                status=CustodyStatus.RELEASED, release_on=(now - timedelta(days=30)).date()
            )
        ),
    )
    await case_service.update_case(
        session,
        actor,
        case_id=trefas.id,
        data=CaseUpdate(status=CaseStatus.CLOSED, closure_reason=ClosureReason.COMPLETED),
    )
    case = await case_service.create_case(
        session, actor, data=CaseCreate(individual_id=individual.id, programme=Programme.SIG)
    )
    await link_service.create_link(
        session, actor, case_id=case.id, data=LinkCreate(case_id=trefas.id, kind=LinkKind.CONTINUES)
    )
    for agency in (police, probation, school):
        await case_service.add_participant(
            session, actor, case_id=case.id, data=ParticipantCreate(agency_id=agency.id)
        )
    signed = now - timedelta(days=1)
    await consent_service.register_consent(
        session,
        actor,
        case_id=case.id,
        data=ConsentCreate(
            signatories=[
                SignatoryIn(
                    role=SignatoryRole.INDIVIDUAL, name="Tolvan Tolvansson", signed_at=signed
                )
            ],
            agency_ids=[social.id, police.id, probation.id, school.id],
            categories=[
                "identity",
                "contact",
                "social_services",
                "school",
                "probation",
                "plan",
                "threat_assessment",
            ],
            purpose="Samordnat stöd inom SIG för att lämna kriminalitet",
            valid_from=signed,
            valid_until=signed + timedelta(days=180),
            method=ConsentMethod.PAPER,
        ),
    )
    # One entry from each agency. The consent covers social services and school
    # information but not the police's own category: log in as demo.polis to see the
    # first two and the identity; as demo.socialsekreterare the police entry stays hidden.
    for username, category, title, body in _DEMO_ENTRIES:
        author = (await session.execute(select(User).where(User.username == username))).scalar_one()
        await entry_service.create_entry(
            session,
            user_actor(author, Origin(request_id="samverkan-demo")),
            case_id=case.id,
            data=EntryCreate(category=category, title=title, body=body),
        )
    await _seed_demo_casework(session, actor, case.id, agencies, now)
    return individual.id, case.id


async def _seed_demo_casework(
    session: AsyncSession,
    actor: Actor,
    case_id: uuid.UUID,
    agencies: list[Agency],
    now: datetime,
) -> None:
    """The intake meeting, whose decisions are the action plan (insatser) for each agency —
    the consent names all four and covers the plan, so every participant sees all of it —;
    the goals, one followed up; a threat assessment; custody and the wish to leave crime."""
    by_kind = {agency.kind: agency for agency in agencies}
    await meeting_service.record_meeting(
        session,
        actor,
        case_id=case_id,
        data=MeetingCreate(
            held_at=now - timedelta(days=1),
            kind=MeetingKind.INTAKE,
            individual_present=True,
            attendees=[
                AttendeeIn(agency_id=agency.id, role=role)
                for agency, role in zip(
                    agencies,
                    ("samordnare", "områdespolis", "frivårdsinspektör", "mentor"),
                    strict=True,
                )
            ],
            minutes="Tolvan vill lämna kriminaliteten, studera klart och få ett eget boende.",
            decisions=[
                DecisionIn(
                    title=title,
                    responsible_agency_id=by_kind[kind].id,
                    due_date=(now + timedelta(days=due_in_days)).date(),
                )
                for kind, title, due_in_days in _DEMO_ACTIONS
            ],
        ),
    )
    school_user = (
        await session.execute(select(User).where(User.username == "demo.skola"))
    ).scalar_one()
    teacher = user_actor(school_user, Origin(request_id="samverkan-demo"))
    studies = await goal_service.create_goal(
        session,
        teacher,
        case_id=case_id,
        data=GoalCreate(
            area=GoalArea.EDUCATION,
            description="Slutföra gymnasiet med godkända betyg i kärnämnena",
            target_date=(now + timedelta(days=300)).date(),
            follow_up_on=(now + timedelta(days=5)).date(),
        ),
    )
    await goal_service.update_goal(
        session, teacher, goal_id=studies.id, data=GoalUpdate(note="Närvaron har ökat.")
    )
    for area, description, days in (
        (GoalArea.WORK, "Feriearbete genom kommunen i sommar", 180),
        (GoalArea.HOUSING, "Eget förstahandskontrakt", 365),
    ):
        await goal_service.create_goal(
            session,
            actor,
            case_id=case_id,
            data=GoalCreate(
                area=area,
                description=description,
                target_date=(now + timedelta(days=days)).date(),
                follow_up_on=(now + timedelta(days=30)).date(),
            ),
        )
    await case_service.update_case(
        session,
        actor,
        case_id=case_id,
        data=CaseUpdate(
            threat_level=ThreatLevel.ELEVATED,
            threat_reviewed_on=now.date(),
            custody=Custody(
                status=CustodyStatus.RELEASED, release_on=(now - timedelta(days=30)).date()
            ),
            exit=Exit(
                status=ExitStatus.IN_PROGRESS, requested_on=(now - timedelta(days=20)).date()
            ),
        ),
    )


_DEMO_ACTIONS = (
    ("socialtjanst", "Familjebehandling varannan vecka", 60),
    ("skola", "Anpassad studiegång och mentor", 30),
    ("polis", "Motiverande samtal med områdespolis", 14),
    ("kriminalvard", "Kontakt med frivården efter villkorlig frigivning", 21),
)

_DEMO_ENTRIES = (
    (
        "demo.socialsekreterare",
        "social_services",
        "Samtal med familjen",
        "Familjen vill ha stöd. Kontakt med fritidsgård planeras.",
    ),
    ("demo.skola", "school", "Närvaro", "Närvaron har ökat de senaste två veckorna."),
    ("demo.polis", "police", "Orosanmälan", "Iakttagen i sällskap med kända personer."),
    ("demo.frivard", "probation", "Övervakning", "Har skött sina besök hos frivården."),
)
