"""Individuals and guardians. Identity (names, numbers, guardians) is shown only where the
decision point allows ``individual.identity``; everyone else who may know of the record sees
a stable pseudonym."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    CompoundSelect,
    Select,
    bindparam,
    cast,
    literal,
    null,
    select,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlalchemy.sql import visitors

from app.agencies import service as agency_service
from app.agencies.models import Agency
from app.audit import flags
from app.audit import writer as audit
from app.audit.records import Record
from app.auth.actor import Actor, ActorKind
from app.cases.models import Case, CaseParticipant, CaseStatus
from app.db import rows_of
from app.errors import Conflict, ValidationFailed
from app.events import service as events
from app.events.models import EventType, ResourceType
from app.external_refs import service as external_refs
from app.individuals.models import Guardian, Individual, Sex
from app.individuals.numbers import InvalidPersonalNumber, PersonalNumber, parse_personal_number
from app.individuals.schemas import GuardianRead, IndividualCreate, IndividualRead
from app.pagination import Page
from app.policy import enforce, filters
from app.policy.engine import Action, Basis, PolicyDecision
from app.policy.entities import (
    AgencyFacts,
    CaseFacts,
    EntryFacts,
    Grounds,
    IndividualFacts,
    Resource,
)
from app.policy.grounds import ROWS_FOR_CASE, grounds_for, grounds_from, grounds_params


def today() -> date:
    return datetime.now(UTC).date()


def pseudonym(individual_id: uuid.UUID) -> str:
    return "IND-" + individual_id.hex[:10].upper()


def parse_number(text: str, field: str) -> PersonalNumber:
    try:
        return parse_personal_number(text, today=today())
    except InvalidPersonalNumber as exc:
        raise ValidationFailed.for_field(field, str(exc), "personal_number") from None


@dataclass(frozen=True, slots=True)
class KnownFacts:
    """What decisions about an individual and their cases rest on, from one statement."""

    individual: IndividualFacts
    cases: dict[uuid.UUID, CaseFacts]


_REGISTERING, _MEMBER = aliased(Agency), aliased(Agency)
# Built once: building a statement costs more than running it (1.4 ms against 0.35 ms).
# A row per case and participant, each with what the audit flags will ask of the records
# of the request's reader (app.audit.flags.OTHERS_READ: the others the user read in the
# hour), so that a record needs no statement of its own for it.
_FACTS = (
    select(
        Individual.registering_agency_id,
        Individual.protected_identity,
        _REGISTERING.kind,
        Case.id,
        Case.lead_agency_id,
        Case.status,
        CaseParticipant.agency_id,
        _MEMBER.kind,
        flags.OTHERS_READ,
    )
    .select_from(Individual)
    .join(_REGISTERING, _REGISTERING.id == Individual.registering_agency_id)
    .outerjoin(Case, Case.individual_id == Individual.id)
    .outerjoin(CaseParticipant, CaseParticipant.case_id == Case.id)
    .outerjoin(_MEMBER, _MEMBER.id == CaseParticipant.agency_id)
    .where(Individual.id == bindparam("individual_id"))
)
# The same rows and a case's grounds (app.policy.grounds.ROWS_FOR_CASE) in one statement,
# for a read of what was recorded on a case (app.policy.reads): ("fact", then the facts'
# columns in another order, which puts those of the same type as the grounds' first), and
# the grounds' rows with the last five columns empty.
_FACT_ROWS = _FACTS.with_only_columns(
    literal("fact"),
    Case.id,
    CaseParticipant.agency_id,
    _MEMBER.kind,
    Case.status,
    Individual.registering_agency_id,
    Individual.protected_identity,
    _REGISTERING.kind,
    Case.lead_agency_id,
    flags.OTHERS_READ,
)
_FACTS_AND_GROUNDS: CompoundSelect[Any] = union_all(
    _FACT_ROWS, *(rows.add_columns(*(null() for _ in range(5))) for rows in ROWS_FOR_CASE)
)


def _facts_params(
    individual_id: uuid.UUID, reader: Actor | None, now: datetime
) -> dict[str, object]:
    return {
        "individual_id": individual_id,
        "user_id": reader.id if reader is not None else NOBODY,
    } | flags.volume_params(now)


async def facts_of(
    session: AsyncSession, individual_id: uuid.UUID, reader: Actor | None = None
) -> KnownFacts | None:
    """The individual's facts and those of each of their cases, in one statement (a read
    asks it once instead of seven times). The agency kinds and the protected flag it read
    are kept for the rest of the request (the audit flags, later decisions), and with a
    ``reader`` (the request's actor) what the volume flag of its records needs."""
    params = _facts_params(individual_id, reader, datetime.now(UTC))
    rows = await rows_of(session, _FACTS, params)
    return _known_from(session, individual_id, rows, reader)


async def facts_and_grounds(
    session: AsyncSession,
    actor: Actor,
    *,
    individual_id: uuid.UUID,
    case_id: uuid.UUID,
    now: datetime,
) -> tuple[KnownFacts | None, Grounds]:
    """:func:`facts_of` (``actor`` the reader) and the grounds for one of the individual's
    cases (app.policy.grounds.grounds_for), in one statement: what a read of something
    recorded on the case is decided on."""
    params = _facts_params(individual_id, actor, now) | grounds_params(
        actor, individual_id=individual_id, case_id=case_id, now=now
    )
    rows = await rows_of(session, _FACTS_AND_GROUNDS, params)
    return _facts_and_grounds_from(session, actor, individual_id, rows)


def _facts_and_grounds_from(
    session: AsyncSession, actor: Actor, individual_id: uuid.UUID, rows: Sequence[Sequence[Any]]
) -> tuple[KnownFacts | None, Grounds]:
    """The facts and grounds in the rows of :data:`_FACTS_AND_GROUNDS` (others ignored)."""
    facts = [
        (registering, protected, registering_kind, case, lead, status, agency, kind, others)
        for (
            tag,
            case,
            agency,
            kind,
            status,
            registering,
            protected,
            registering_kind,
            lead,
            others,
        ) in (row[:_FACTS_WIDTH] for row in rows)
        if tag == "fact"
    ]
    return (
        _known_from(session, individual_id, facts, actor),
        grounds_from([row[:5] for row in rows if row[0] in _GROUND_TAGS]),
    )


_FACTS_WIDTH = len(_FACTS_AND_GROUNDS.selected_columns)
_GROUND_TAGS = frozenset({"consent", "grant"})  # app.policy.grounds' first column
_BESIDE = "row"


def beside_facts_and_grounds(
    rows: Select[Any], *, individual_id: ColumnElement[Any], case_id: ColumnElement[Any]
) -> CompoundSelect[Any]:
    """One statement: ``rows`` (a read's row, and what it shows of it) and what
    :func:`facts_and_grounds` asks about the individual and the case that
    ``individual_id`` and ``case_id`` name (scalar subqueries on the row's table). A
    read then asks the database once for its row and what it is decided on
    (docs/performance.md, issue 21's seventh round). Read by :func:`read_beside`, on
    PostgreSQL (SQLite's results take each column's type from the first branch)."""
    named = {"individual_id": individual_id, "case_id": case_id}

    def replace(element: Any, **_: Any) -> Any:
        if isinstance(element, BindParameter) and element.key in named:
            return named[element.key]
        return None

    source: Any = _FACTS_AND_GROUNDS  # (the stubs take no compound select; it traverses)
    asked: Any = visitors.replacement_traverse(source, dict[str, Any](), replace)
    facts = list(_FACTS_AND_GROUNDS.selected_columns)[1:]  # after the tag
    own: Any = rows.order_by(None).with_only_columns(
        literal(_BESIDE), *(cast(null(), c.type) for c in facts), *rows.selected_columns
    )
    padding = [cast(null(), c.type) for c in rows.selected_columns]
    return union_all(*(branch.add_columns(*padding) for branch in asked.selects), own)


async def read_beside(
    session: AsyncSession,
    actor: Actor,
    statement: CompoundSelect[Any],
    params: dict[str, Any],
    *,
    keys: tuple[str, ...],
    now: datetime,
) -> tuple[list[Sequence[Any]], tuple[KnownFacts | None, Grounds]]:
    """The rows of a :func:`beside_facts_and_grounds` statement (in no particular order),
    and the facts and grounds asked with them (none when there is no row), as
    :func:`facts_and_grounds` gives them. ``keys``: the row's columns, as
    app.policy.reads.columns_of names them (``individual_id`` among them)."""
    # the individual and the case are the row's (the statement's subqueries): the
    # parameters named for them here are not in the statement
    asked = _facts_params(NOBODY, actor, now) | grounds_params(
        actor, individual_id=NOBODY, case_id=NOBODY, now=now
    )
    found = await rows_of(session, statement, asked | params)
    own = [row[_FACTS_WIDTH:] for row in found if row[0] == _BESIDE]
    if not own:
        return own, (None, Grounds())
    individual_id = own[0][keys.index("individual_id")]
    return own, _facts_and_grounds_from(session, actor, individual_id, found)


def _known_from(
    session: AsyncSession,
    individual_id: uuid.UUID,
    rows: Sequence[Sequence[Any]],
    reader: Actor | None,
) -> KnownFacts | None:
    """The facts in the rows of :data:`_FACTS`."""
    if not rows:
        return None
    registering_agency_id, protected, registering_kind = rows[0][:3]
    kinds = {registering_agency_id: registering_kind}
    cases: dict[uuid.UUID, tuple[uuid.UUID, str, set[uuid.UUID]]] = {}
    for *_, case_id, lead_agency_id, status, agency_id, kind, _others in rows:
        if case_id is None:
            continue
        participants = cases.setdefault(case_id, (lead_agency_id, status, set()))[2]
        if agency_id is not None:
            participants.add(agency_id)
            kinds[agency_id] = kind
    agency_service.remember_kinds(session, kinds)
    audit.remember_protected(session, individual_id, protected)
    if reader is not None and reader.kind is ActorKind.USER:
        audit.remember_volume(session, reader.id, individual_id, rows[0][-1])
    individual = IndividualFacts(
        id=individual_id,
        registering_agency_id=registering_agency_id,
        protected_identity=protected,
        case_agency_ids=frozenset(a for _, _, members in cases.values() for a in members),
        registering_agency_kind=registering_kind,
        open_case_agency_ids=frozenset(
            a
            for _, status, members in cases.values()
            if status != CaseStatus.CLOSED.value
            for a in members
        ),
    )
    return KnownFacts(
        individual=individual,
        cases={
            case_id: CaseFacts(
                id=case_id,
                lead_agency_id=lead,
                participant_agency_ids=frozenset(members),
                individual=individual,
                status=status,
            )
            for case_id, (lead, status, members) in cases.items()
        },
    )


async def facts(
    session: AsyncSession, individual: Individual, reader: Actor | None = None
) -> IndividualFacts:
    known = await facts_of(session, individual.id, reader)
    assert known is not None  # the row is loaded
    return known.individual


NOBODY = uuid.UUID(int=0)


async def decoy_decision(
    session: AsyncSession, actor: Actor, action: Action, *, grounds: bool, asked: bool = False
) -> None:
    """What deciding about a hidden object costs, for one that does not exist: the facts
    statement (with the grounds in it, as a read asks them: ``grounds``) and a Cedar call,
    on an id that matches nothing. Its outcome is thrown away; the caller answers 404 either
    way. ``asked``: the row's statement asked the facts too (:func:`read_beside`), as it
    does for a hidden row, so no statement follows it here either."""
    individual = IndividualFacts(id=NOBODY, registering_agency_id=NOBODY)
    found = None  # no grounds: nothing matches the decoy's ids
    if not grounds:
        await facts_of(session, NOBODY)  # the statement; it finds nothing
    elif not asked:  # the statement a read asks (app.policy.reads); it finds nothing
        _, found = await facts_and_grounds(
            session, actor, individual_id=NOBODY, case_id=NOBODY, now=datetime.now(UTC)
        )
    case = CaseFacts(
        id=NOBODY,
        lead_agency_id=NOBODY,
        participant_agency_ids=frozenset(),
        individual=individual,
        status="open",
    )
    resource: Resource = individual if action is Action.INDIVIDUAL_READ else case
    if action in {Action.ENTRY_READ, Action.ACTION_READ}:
        resource = EntryFacts(id=NOBODY, source_agency_id=NOBODY, category="plan", case=case)
        action = Action.ENTRY_READ
    enforce.decide(actor, action, resource, found)


async def identity_decision(
    session: AsyncSession, actor: Actor, individual_facts: IndividualFacts
) -> PolicyDecision:
    """Whether the caller sees name and number: own registration, a consent covering
    ``identity``, or an emergency grant; never for a protected identity elsewhere."""
    grounds = await grounds_for(
        session, actor, individual_id=individual_facts.id, case_id=None, now=datetime.now(UTC)
    )
    return enforce.decide(actor, Action.INDIVIDUAL_IDENTITY, individual_facts, grounds)


def read_basis(decision: PolicyDecision, fallback: str) -> dict[str, Any]:
    """The audit fields that say what a read rested on: ``basis``, and the consent id or
    legal basis; an emergency read is flagged for review."""
    if decision.basis is Basis.CONSENT:
        return {"basis": "consent", "consent_id": decision.consent_id, "flags": []}
    if decision.basis is Basis.EMERGENCY_ACCESS:
        return {
            "basis": "emergency_access",
            "legal_basis": decision.legal_basis,
            "flags": ["emergency_access"],
        }
    return {"basis": fallback, "flags": []}


def identity_basis(identity: PolicyDecision) -> dict[str, Any]:
    """The audit fields of a read that showed (or withheld) the identity: ``own_agency``
    for the registering agency, the consent id or legal basis it was shown under, else
    ``case_participant`` (only the pseudonym was shown)."""
    own = identity.allowed and identity.basis is Basis.POLICY
    return read_basis(identity, "own_agency" if own else "case_participant")


def _read_record(
    actor: Actor,
    individual: Individual,
    identity: PolicyDecision,
    *,
    policy_id: str,
    reason: str | None = None,
) -> Record:
    """The ``individual.read`` record: what the identity was shown on (own agency, consent
    id, legal basis), or that only the pseudonym was."""
    fields = identity_basis(identity)
    if individual.protected_identity:
        fields["flags"].append("protected_identity")
    return actor.record(
        "individual.read",
        resource_type="individual",
        resource_id=str(individual.id),
        individual_id=individual.id,
        policy_id=identity.policy_id if identity.allowed else policy_id,
        reason=reason,
        **fields,
    )


async def to_read(
    session: AsyncSession,
    actor: Actor,
    individual: Individual,
    individual_facts: IndividualFacts,
    identity: PolicyDecision | None = None,
) -> IndividualRead:
    if identity is None:
        identity = await identity_decision(session, actor, individual_facts)
    visible = identity.allowed
    guardians: list[GuardianRead] = []
    if visible:
        rows = await session.execute(
            select(Guardian).where(Guardian.individual_id == individual.id).order_by(Guardian.id)
        )
        guardians = [
            GuardianRead(
                id=g.id,
                given_name=g.given_name,
                family_name=g.family_name,
                personal_number=formatted(g.personal_number),
                has_custody=g.has_custody,
                contact=g.contact,
            )
            for g in rows.scalars()
        ]
    refs = await external_refs.shown(session, individual_id=individual.id) if visible else []
    return IndividualRead(
        id=individual.id,
        pseudonym=pseudonym(individual.id),
        identity_visible=visible,
        registering_agency_id=individual.registering_agency_id,
        protected_identity=individual.protected_identity,
        personal_number=formatted(individual.personal_number) if visible else None,
        number_kind=individual.number_kind if visible else None,
        reserve_id=individual.reserve_id if visible else None,
        given_name=individual.given_name if visible else None,
        family_name=individual.family_name if visible else None,
        birth_date=individual.birth_date if visible else None,
        sex=Sex(individual.sex) if visible else None,
        guardians=guardians,
        external_refs=refs,
        version=individual.version,
    )


def formatted(number: str | None) -> str | None:
    return f"{number[:8]}-{number[8:]}" if number else None


async def create_individual(
    session: AsyncSession, actor: Actor, *, data: IndividualCreate
) -> IndividualRead:
    """Coordinators only, for their own agency. 409 if the agency registered the number."""
    decision = enforce.require(
        session,
        actor,
        Action.INDIVIDUAL_CREATE,
        AgencyFacts(id=actor.agency_id),
        audit_action="individual.create",
        hidden=False,
        resource_type="individual",
    )
    number = None
    if data.personal_number is not None:
        number = parse_number(data.personal_number, "body.personal_number")
        if data.birth_date is not None and data.birth_date != number.birth_date:
            raise ValidationFailed.for_field(
                "body.birth_date", "does not match the personal number"
            )
    elif data.birth_date is None:
        raise ValidationFailed.for_field(
            "body.birth_date", "required without a personal number", "missing"
        )
    elif data.birth_date > today():
        raise ValidationFailed.for_field("body.birth_date", "the date of birth is in the future")
    guardian_numbers = [
        parse_number(g.personal_number, f"body.guardians.{i}.personal_number")
        if g.personal_number
        else None
        for i, g in enumerate(data.guardians)
    ]
    if number is not None:
        existing = await session.execute(
            select(Individual.id).where(
                Individual.registering_agency_id == actor.agency_id,
                Individual.personal_number == number.value,
            )
        )
        if existing.first() is not None:
            raise Conflict("Your agency has already registered this person.")
    individual = Individual(
        id=uuid.uuid4(),
        registering_agency_id=actor.agency_id,
        personal_number=number.value if number else None,
        number_kind=number.kind.value if number else None,
        reserve_id=None if number else "R-" + secrets.token_hex(6).upper(),
        given_name=data.given_name,
        family_name=data.family_name,
        birth_date=number.birth_date if number else data.birth_date,
        protected_identity=data.protected_identity,
        sex=data.sex.value,
        created_by=actor.id,
        created_at=datetime.now(UTC),
        version=1,
    )
    session.add(individual)
    await session.flush()
    for guardian, guardian_number in zip(data.guardians, guardian_numbers, strict=True):
        session.add(
            Guardian(
                id=uuid.uuid4(),
                individual_id=individual.id,
                given_name=guardian.given_name,
                family_name=guardian.family_name,
                personal_number=guardian_number.value if guardian_number else None,
                has_custody=guardian.has_custody,
                contact=guardian.contact,
            )
        )
    await session.flush()
    await external_refs.register(session, actor, data.external_refs, individual_id=individual.id)
    await events.emit(
        session,
        EventType.INDIVIDUAL_REGISTERED,
        resource_type=ResourceType.INDIVIDUAL,
        resource_id=individual.id,
        individual_id=individual.id,
    )
    await audit.append(
        session,
        actor.record(
            "individual.create",
            resource_type="individual",
            resource_id=str(individual.id),
            individual_id=individual.id,
            basis="own_agency",
            policy_id=decision.policy_id,
            flags=["protected_identity"] if individual.protected_identity else [],
        ),
    )
    return await to_read(session, actor, individual, await facts(session, individual))


async def get_individual(
    session: AsyncSession, actor: Actor, *, individual_id: uuid.UUID
) -> IndividualRead:
    """404 for an individual the caller may not know of, exactly as for none at all."""
    individual = await session.get(Individual, individual_id)
    if individual is None:
        await decoy_decision(session, actor, Action.INDIVIDUAL_READ, grounds=False)
        raise enforce.not_found(
            session,
            actor,
            audit_action="individual.read",
            resource_type="individual",
            resource_id=str(individual_id),
        )
    individual_facts = await facts(session, individual, actor)
    decision = enforce.require(
        session,
        actor,
        Action.INDIVIDUAL_READ,
        individual_facts,
        audit_action="individual.read",
        hidden=True,
        resource_type="individual",
        resource_id=str(individual.id),
        individual_id=individual.id,
    )
    identity = await identity_decision(session, actor, individual_facts)
    result = await to_read(session, actor, individual, individual_facts, identity)
    await audit.append(
        session, _read_record(actor, individual, identity, policy_id=decision.policy_id)
    )
    return result


async def search_individuals(
    session: AsyncSession,
    actor: Actor,
    *,
    personal_number: str | None = None,
    external_ref: str | None = None,
) -> Page[IndividualRead]:
    """By personnummer or by an external reference (``SYSTEM:ID``), exactly one of them.
    Matches only where the caller may see the identity: a search must not confirm that a
    person exists. What was searched for is not written to the audit record; the ids of the
    individuals returned are, one record each."""
    if (personal_number is None) == (external_ref is None):
        raise ValidationFailed.for_field(
            "query.personal_number", "Search by personal_number or by external_ref.", "missing"
        )
    if personal_number is not None:
        number = parse_number(personal_number, "query.personal_number")
        matches = Individual.personal_number == number.value
    else:
        assert external_ref is not None
        matches = external_refs.refers_to_individual(*external_refs.parse_query(external_ref))
    rows = await session.execute(
        select(Individual)
        .where(matches, filters.individuals_with_identity_visible_to(actor, datetime.now(UTC)))
        .order_by(Individual.id)
    )
    found = list(rows.scalars())
    await audit.append(
        session,
        actor.record(
            "individual.search", resource_type="individual", reason=f"{len(found)} hit(s)"
        ),
    )
    results = []
    for individual in found:
        individual_facts = await facts(session, individual)
        identity = await identity_decision(session, actor, individual_facts)
        results.append(await to_read(session, actor, individual, individual_facts, identity))
        await audit.append(
            session,
            _read_record(
                actor, individual, identity, policy_id=identity.policy_id, reason="search hit"
            ),
        )
    return Page[IndividualRead](items=results, next_cursor=None)
