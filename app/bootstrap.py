"""Out-of-request set-up used by the CLI: the first administrator and the demo data.

Runs outside HTTP requests, so it audits itself: each account it creates is recorded
with ``actor_roles`` empty and ``reason`` naming the command.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.actions import service as action_service
from app.actions.schemas import ActionCreate
from app.agencies.models import Agency, AgencyKind
from app.audit import writer as audit
from app.audit.records import Origin, Record
from app.auth.service import user_actor
from app.cases import service as case_service
from app.cases.models import Case, Programme
from app.cases.schemas import CaseCreate, ParticipantCreate
from app.consents import service as consent_service
from app.consents.models import ConsentMethod, SignatoryRole
from app.consents.schemas import ConsentCreate, SignatoryIn
from app.entries import service as entry_service
from app.entries.schemas import EntryCreate
from app.errors import Conflict
from app.individuals import service as individual_service
from app.individuals.models import Individual
from app.individuals.schemas import IndividualCreate
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
    individual = await individual_service.create_individual(
        session,
        actor,
        data=IndividualCreate(
            personal_number=DEMO_PERSONAL_NUMBER,
            given_name="Tolvan",
            family_name="Tolvansson",
        ),
    )
    case = await case_service.create_case(
        session, actor, data=CaseCreate(individual_id=individual.id, programme=Programme.SIG)
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
            categories=["identity", "contact", "social_services", "school", "probation", "plan"],
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
    # The action plan (insatser), drawn up by the lead coordinator for each agency: the
    # consent names all three and covers the plan, so every participant sees all of it.
    by_kind = {
        "socialtjanst": social,
        "polis": police,
        "kriminalvard": probation,
        "skola": school,
    }
    for kind, action_type, title, due_in_days in _DEMO_ACTIONS:
        await action_service.create_action(
            session,
            actor,
            case_id=case.id,
            data=ActionCreate(
                type=action_type,
                title=title,
                responsible_agency_id=by_kind[kind].id,
                due_date=(now + timedelta(days=due_in_days)).date(),
            ),
        )
    return individual.id, case.id


_DEMO_ACTIONS = (
    ("socialtjanst", "familjebehandling", "Familjebehandling varannan vecka", 60),
    ("skola", "studiestod", "Anpassad studiegång och mentor", 30),
    ("polis", "samtal", "Motiverande samtal med områdespolis", 14),
    ("kriminalvard", "frivardskontakt", "Kontakt med frivården inför villkorlig frigivning", 21),
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
