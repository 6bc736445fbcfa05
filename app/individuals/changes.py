"""Corrections of an individual and their guardians by the registering agency's
coordinators. Every change is a version (who, when, the values it replaced), audited, and
announced; the protected-identity flag is read by every decision, so switching it on hides
the identity from other agencies at their next request."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit import writer as audit
from app.auth.actor import Actor
from app.errors import Conflict
from app.events import service as events
from app.events.models import EventType, ResourceType
from app.external_refs import service as external_refs
from app.individuals import service as individual_service
from app.individuals.models import Guardian, Individual, IndividualVersion
from app.individuals.schemas import (
    GuardianCreate,
    GuardianRead,
    GuardianUpdate,
    IndividualRead,
    IndividualUpdate,
    IndividualVersionRead,
)
from app.pagination import Page
from app.policy import enforce
from app.policy.engine import Action, PolicyDecision
from app.policy.entities import IndividualFacts

MAX_GUARDIANS = 4


async def load_individual(
    session: AsyncSession,
    actor: Actor,
    individual_id: uuid.UUID,
    *,
    action: Action,
    audit_action: str,
) -> tuple[Individual, IndividualFacts, PolicyDecision]:
    """The individual if the caller may know of it (404 as for none) and, unless ``action``
    is only the read, do ``action`` (403). Locked for a change, so two corrections never
    interleave."""
    individual = await session.get(
        Individual, individual_id, with_for_update=action is Action.INDIVIDUAL_UPDATE
    )
    if individual is None:
        await individual_service.decoy_decision(
            session, actor, Action.INDIVIDUAL_READ, grounds=False
        )
        raise enforce.not_found(
            session,
            actor,
            audit_action=audit_action,
            resource_type="individual",
            resource_id=str(individual_id),
        )
    facts = await individual_service.facts(session, individual, actor)
    fields: dict[str, Any] = {
        "resource_type": "individual",
        "resource_id": str(individual.id),
        "individual_id": individual.id,
    }
    decision = enforce.require(
        session,
        actor,
        Action.INDIVIDUAL_READ,
        facts,
        audit_action=audit_action,
        hidden=True,
        **fields,
    )
    if action is Action.INDIVIDUAL_READ:
        return individual, facts, decision
    decision = enforce.require(
        session, actor, action, facts, audit_action=audit_action, hidden=False, **fields
    )
    return individual, facts, decision


def _version(
    actor: Actor,
    individual: Individual,
    change: str,
    before: dict[str, Any],
    guardian_id: uuid.UUID | None = None,
) -> IndividualVersion:
    """The next version: the individual's counter moves on with every change."""
    individual.version += 1
    now = datetime.now(UTC)
    individual.updated_at = now
    return IndividualVersion(
        individual_id=individual.id,
        version=individual.version,
        guardian_id=guardian_id,
        change=change,
        before=before,
        changed_by=actor.id,
        changed_at=now,
    )


async def _announce(
    session: AsyncSession,
    actor: Actor,
    individual: Individual,
    decision: PolicyDecision,
    action: str,
    reason: str,
) -> None:
    await events.emit(
        session,
        EventType.INDIVIDUAL_UPDATED,
        resource_type=ResourceType.INDIVIDUAL,
        resource_id=individual.id,
        individual_id=individual.id,
    )
    await audit.append(
        session,
        actor.record(
            action,
            resource_type="individual",
            resource_id=str(individual.id),
            individual_id=individual.id,
            basis="own_agency",
            policy_id=decision.policy_id,
            reason=reason,
            flags=["protected_identity"] if individual.protected_identity else [],
        ),
    )


async def update_individual(
    session: AsyncSession, actor: Actor, *, individual_id: uuid.UUID, data: IndividualUpdate
) -> IndividualRead:
    """409 if the agency has registered the personnummer for someone else."""
    individual, _, decision = await load_individual(
        session,
        actor,
        individual_id,
        action=Action.INDIVIDUAL_UPDATE,
        audit_action="individual.update",
    )
    before: dict[str, Any] = {}
    if data.personal_number is not None:
        number = individual_service.parse_number(data.personal_number, "body.personal_number")
        if number.value != individual.personal_number:
            taken = await session.scalar(
                select(Individual.id).where(
                    Individual.registering_agency_id == individual.registering_agency_id,
                    Individual.personal_number == number.value,
                )
            )
            if taken is not None:
                raise Conflict("Your agency has already registered this person.")
            before |= {
                "personal_number": individual.personal_number,
                "number_kind": individual.number_kind,
                "birth_date": individual.birth_date.isoformat(),
            }
            individual.personal_number = number.value
            individual.number_kind = number.kind.value
            individual.birth_date = number.birth_date
    for name in ("given_name", "family_name", "protected_identity", "sex"):
        value = getattr(data, name)
        if value is not None and value != getattr(individual, name):
            before[name] = getattr(individual, name)
            setattr(individual, name, value)
    changed = sorted(before)
    if data.external_refs is not None:
        await external_refs.replace_own(
            session, actor, data.external_refs, individual_id=individual.id
        )
        changed.append("external_refs")
    if before:
        session.add(_version(actor, individual, "individual.update", before))
    await session.flush()
    reason = f"changed {', '.join(changed)}" if changed else "no change"
    await _announce(session, actor, individual, decision, "individual.update", reason)
    return await individual_service.to_read(
        session, actor, individual, await individual_service.facts(session, individual)
    )


def _guardian_read(guardian: Guardian) -> GuardianRead:
    return GuardianRead(
        id=guardian.id,
        given_name=guardian.given_name,
        family_name=guardian.family_name,
        personal_number=individual_service.formatted(guardian.personal_number),
        has_custody=guardian.has_custody,
        contact=guardian.contact,
    )


async def add_guardian(
    session: AsyncSession, actor: Actor, *, individual_id: uuid.UUID, data: GuardianCreate
) -> GuardianRead:
    """409 beyond four guardians."""
    individual, _, decision = await load_individual(
        session,
        actor,
        individual_id,
        action=Action.INDIVIDUAL_UPDATE,
        audit_action="guardian.add",
    )
    number = (
        individual_service.parse_number(data.personal_number, "body.personal_number")
        if data.personal_number
        else None
    )
    count = await session.scalar(
        select(func.count()).where(Guardian.individual_id == individual.id)
    )
    if (count or 0) >= MAX_GUARDIANS:
        raise Conflict(f"At most {MAX_GUARDIANS} guardians are registered for an individual.")
    guardian = Guardian(
        id=uuid.uuid4(),
        individual_id=individual.id,
        given_name=data.given_name,
        family_name=data.family_name,
        personal_number=number.value if number else None,
        has_custody=data.has_custody,
        contact=data.contact,
    )
    session.add(guardian)
    await session.flush()
    session.add(_version(actor, individual, "guardian.add", {}, guardian.id))
    await session.flush()
    await _announce(session, actor, individual, decision, "guardian.add", "guardian added")
    return _guardian_read(guardian)


async def update_guardian(
    session: AsyncSession, actor: Actor, *, guardian_id: uuid.UUID, data: GuardianUpdate
) -> GuardianRead:
    guardian = await session.get(Guardian, guardian_id)
    # an unknown guardian answers as an individual the caller may not know of
    individual, _, decision = await load_individual(
        session,
        actor,
        guardian.individual_id if guardian else individual_service.NOBODY,
        action=Action.INDIVIDUAL_UPDATE,
        audit_action="guardian.update",
    )
    assert guardian is not None  # _load found its individual
    values: dict[str, Any] = {}
    for name in sorted(data.model_fields_set):
        value = getattr(data, name)
        if name == "personal_number" and value is not None:
            value = individual_service.parse_number(value, "body.personal_number").value
        values[name] = value
    before = {n: getattr(guardian, n) for n, v in values.items() if getattr(guardian, n) != v}
    for name in before:
        setattr(guardian, name, values[name])
    if before:
        session.add(_version(actor, individual, "guardian.update", before, guardian.id))
    await session.flush()
    reason = f"guardian: changed {', '.join(sorted(before))}" if before else "no change"
    await _announce(session, actor, individual, decision, "guardian.update", reason)
    return _guardian_read(guardian)


async def list_versions(
    session: AsyncSession, actor: Actor, *, individual_id: uuid.UUID
) -> Page[IndividualVersionRead]:
    """The individual's changes, oldest first: the values they replaced are identity data,
    so 404 to whoever may not see the identity (as for an individual that does not exist)."""
    individual, facts, _ = await load_individual(
        session,
        actor,
        individual_id,
        action=Action.INDIVIDUAL_READ,
        audit_action="individual.versions",
    )
    identity = await individual_service.identity_decision(session, actor, facts)
    if not identity.allowed:
        raise enforce.deny(
            session,
            actor,
            audit_action="individual.versions",
            policy_id=identity.policy_id,
            hidden=True,
            resource_type="individual",
            resource_id=str(individual.id),
            individual_id=individual.id,
        )
    rows = await session.execute(
        select(IndividualVersion)
        .where(IndividualVersion.individual_id == individual.id)
        .order_by(IndividualVersion.version)
    )
    items = [
        IndividualVersionRead(
            version=v.version,
            change=v.change,
            guardian_id=v.guardian_id,
            before=v.before,
            changed_by=v.changed_by,
            changed_at=v.changed_at,
        )
        for v in rows.scalars()
    ]
    await audit.append(
        session,
        actor.record(
            "individual.versions",
            resource_type="individual",
            resource_id=str(individual.id),
            individual_id=individual.id,
            policy_id=identity.policy_id,
            reason=f"{len(items)} version(s)",
            **individual_service.identity_basis(identity),
        ),
    )
    return Page[IndividualVersionRead](items=items, next_cursor=None)
