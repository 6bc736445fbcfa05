"""Consents: registered and withdrawn by the lead agency's coordinators, read by the case's
participants. Immutable once registered; every read and change is audited."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.agencies.models import Agency
from app.audit import writer as audit
from app.audit.records import Record
from app.auth.actor import Actor
from app.cases import service as case_service
from app.cases.models import Case
from app.consents import rules
from app.consents.documents import sniff_media_type
from app.consents.models import (
    Consent,
    ConsentAgency,
    ConsentCategory,
    ConsentDocument,
    ConsentMethod,
    ConsentSignatory,
    ConsentStatus,
    SignatoryRole,
)
from app.consents.schemas import (
    ConsentCreate,
    ConsentRead,
    DocumentRead,
    SignatoryRead,
    WithdrawalIn,
)
from app.errors import Conflict, PayloadTooLarge, ValidationFailed
from app.events import service as events
from app.events.models import EventType, ResourceType
from app.individuals import service as individual_service
from app.individuals.models import Guardian, Individual
from app.pagination import Page
from app.policy import enforce, get_engine
from app.policy.engine import Action, PolicyDecision
from app.policy.entities import CaseFacts


def _now() -> datetime:
    return datetime.now(UTC)


async def _identity(session: AsyncSession, actor: Actor, case: CaseFacts) -> PolicyDecision:
    """The identity decision of app/policy about the case's individual: signatories'
    names, the withdrawal reason and the signed form are identity (DESIGN §3)."""
    return await individual_service.identity_decision(session, actor, case.individual)


async def to_read(session: AsyncSession, consent: Consent, identity: PolicyDecision) -> ConsentRead:
    """Every reader of the case sees the consent's scope; the names of those who signed and
    the withdrawal reason only where ``identity`` allows it (else ``null``)."""
    visible = identity.allowed
    agencies = await session.execute(
        select(ConsentAgency.agency_id).where(ConsentAgency.consent_id == consent.id)
    )
    categories = await session.execute(
        select(ConsentCategory.category).where(ConsentCategory.consent_id == consent.id)
    )
    signatories = await session.execute(
        select(ConsentSignatory)
        .where(ConsentSignatory.consent_id == consent.id)
        .order_by(ConsentSignatory.signed_at, ConsentSignatory.id)
    )
    document = await session.get(ConsentDocument, consent.id)
    return ConsentRead(
        id=consent.id,
        case_id=consent.case_id,
        individual_id=consent.individual_id,
        status=status_of(consent, _now()),
        identity_visible=visible,
        signatories=[
            SignatoryRead(
                role=SignatoryRole(s.role),
                guardian_id=s.guardian_id,
                name=s.name if visible else None,
                signed_at=rules.as_utc(s.signed_at),
            )
            for s in signatories.scalars()
        ],
        agency_ids=sorted(agencies.scalars(), key=str),
        categories=sorted(categories.scalars()),
        purpose=consent.purpose,
        valid_from=rules.as_utc(consent.valid_from),
        valid_until=rules.as_utc(consent.valid_until),
        method=ConsentMethod(consent.method),
        supersedes_id=consent.supersedes_id,
        superseded_at=rules.as_utc(consent.superseded_at) if consent.superseded_at else None,
        registered_at=rules.as_utc(consent.registered_at),
        withdrawn_at=rules.as_utc(consent.withdrawn_at) if consent.withdrawn_at else None,
        withdrawal_reason=consent.withdrawal_reason if visible else None,
        document=(
            DocumentRead(
                sha256=document.sha256,
                media_type=document.media_type,
                size_bytes=document.size_bytes,
                uploaded_at=rules.as_utc(document.uploaded_at),
            )
            if document
            else None
        ),
    )


def _shown(identity: PolicyDecision) -> dict[str, Any]:
    """The audit fields of a consent read: with the names shown, what the identity was
    shown on (own agency, the consent that covers identity, a legal basis); else the scope
    was shown to a case participant."""
    if not identity.allowed:
        return {"basis": "case_participant", "consent_id": None, "reason": "scope only"}
    fields = individual_service.identity_basis(identity)
    fields.setdefault("consent_id", None)
    return fields | {"reason": "identity shown"}


def _read_record(actor: Actor, action: str, consent: Consent, identity: PolicyDecision) -> Record:
    """A read: the basis is what the names were shown on, or the scope only."""
    return _record(actor, action, consent, identity, **_shown(identity))


def _record(
    actor: Actor, action: str, consent: Consent, decision: PolicyDecision, **extra: Any
) -> Record:
    """A change (or, with the basis in ``extra``, a read) of the consent; a change names
    the consent it is about in ``consent_id``."""
    fields: dict[str, Any] = {"consent_id": consent.id, "basis": "case_participant"} | extra
    return actor.record(
        action,
        resource_type="consent",
        resource_id=str(consent.id),
        case_id=consent.case_id,
        individual_id=consent.individual_id,
        policy_id=decision.policy_id,
        **fields,
    )


async def _validate(
    session: AsyncSession, case: Case, data: ConsentCreate
) -> tuple[datetime, datetime]:
    reference = get_engine().reference
    valid_from, valid_until = rules.as_utc(data.valid_from), rules.as_utc(data.valid_until)
    if valid_until <= valid_from:
        raise ValidationFailed.for_field("body.valid_until", "Must be after valid_from.")
    limit = reference.settings.consent.max_validity_days
    if valid_until - valid_from > timedelta(days=limit):
        raise ValidationFailed.for_field(
            "body.valid_until", f"A consent may run for at most {limit} days."
        )
    unknown = sorted(set(data.categories) - reference.categories.keys())
    if unknown:
        raise ValidationFailed.for_field(
            "body.categories", f"Unknown categories: {', '.join(unknown)}.", "unknown_category"
        )
    agency_ids = set(data.agency_ids)
    if len(agency_ids) < 2:
        raise ValidationFailed.for_field(
            "body.agency_ids", "A consent names at least two different agencies."
        )
    found = await session.execute(select(Agency.id).where(Agency.id.in_(agency_ids)))
    if set(found.scalars()) != agency_ids:
        raise ValidationFailed.for_field(
            "body.agency_ids", "Every agency must exist.", "unknown_agency"
        )
    if data.supersedes_id is not None:
        await _supersedable(session, case, data.supersedes_id)
    individual = await session.get(Individual, case.individual_id)
    assert individual is not None
    guardians = await session.execute(
        select(Guardian.id, Guardian.has_custody).where(Guardian.individual_id == individual.id)
    )
    rules.check_signatories(
        birth_date=individual.birth_date,
        guardians=[rules.GuardianFact(id=g[0], has_custody=g[1]) for g in guardians],
        signatures=[
            rules.Signature(role=s.role, guardian_id=s.guardian_id, signed_at=s.signed_at)
            for s in data.signatories
        ],
        settings=reference.settings.consent,
        now=_now(),
    )
    return valid_from, valid_until


async def _supersedable(session: AsyncSession, case: Case, consent_id: uuid.UUID) -> Consent:
    """The predecessor a new consent may supersede, locked (PostgreSQL) so that two
    registrations never supersede it both: a consent of the same case (422 otherwise),
    active or pending now and not superseded already (409)."""
    previous = await session.get(Consent, consent_id, with_for_update=True)
    if previous is None or previous.case_id != case.id:
        raise ValidationFailed.for_field(
            "body.supersedes_id", "Must be a consent of the same case."
        )
    if previous.superseded_at is not None:
        raise Conflict("That consent has been superseded already.")
    status = status_of(previous, _now())
    if status not in {ConsentStatus.ACTIVE, ConsentStatus.PENDING}:
        raise Conflict(f"Only an active or pending consent can be superseded (it is {status}).")
    return previous


def status_of(consent: Consent, now: datetime) -> ConsentStatus:
    return rules.status_at(
        valid_from=consent.valid_from,
        valid_until=consent.valid_until,
        withdrawn_at=consent.withdrawn_at,
        superseded_at=consent.superseded_at,
        now=now,
    )


async def register_consent(
    session: AsyncSession, actor: Actor, *, case_id: uuid.UUID, data: ConsentCreate
) -> ConsentRead:
    """A consent that names one it supersedes ends that one from its own ``valid_from``
    (audited as ``consent.supersede`` on the predecessor, in the same transaction)."""
    case, case_facts, decision = await case_service.load_case(
        session, actor, case_id, action=Action.CONSENT_REGISTER, audit_action="consent.register"
    )
    case_service.require_open(case)
    valid_from, valid_until = await _validate(session, case, data)
    now = _now()
    consent = Consent(
        id=uuid.uuid4(),
        case_id=case.id,
        individual_id=case.individual_id,
        purpose=data.purpose,
        valid_from=valid_from,
        valid_until=valid_until,
        method=data.method.value,
        supersedes_id=data.supersedes_id,
        registered_by=actor.id,
        registered_at=now,
    )
    session.add(consent)
    await session.flush()
    session.add_all(ConsentAgency(consent_id=consent.id, agency_id=a) for a in set(data.agency_ids))
    session.add_all(
        ConsentCategory(consent_id=consent.id, category=c) for c in set(data.categories)
    )
    session.add_all(
        ConsentSignatory(
            id=uuid.uuid4(),
            consent_id=consent.id,
            role=s.role.value,
            guardian_id=s.guardian_id,
            name=s.name,
            signed_at=rules.as_utc(s.signed_at),
        )
        for s in data.signatories
    )
    records = [_record(actor, "consent.register", consent, decision)]
    if data.supersedes_id is not None:
        previous = await session.get(Consent, data.supersedes_id)
        assert previous is not None  # checked and locked by _validate
        previous.superseded_at = valid_from
        records.append(
            _record(
                actor,
                "consent.supersede",
                previous,
                decision,
                reason=f"superseded by {consent.id} from {valid_from.isoformat()}",
            )
        )
    await session.flush()
    # the events first: each record's append takes its event along (app.events.outbox)
    await events.emit_about(session, EventType.CONSENT_REGISTERED, ResourceType.CONSENT, consent)
    if data.supersedes_id is not None:
        await events.emit_about(
            session, EventType.CONSENT_SUPERSEDED, ResourceType.CONSENT, previous, at=valid_from
        )
    for record in records:
        await audit.append(session, record)
    return await to_read(session, consent, await _identity(session, actor, case_facts))


async def _load(
    session: AsyncSession, actor: Actor, consent_id: uuid.UUID, *, action: Action, audit_action: str
) -> tuple[Consent, CaseFacts, PolicyDecision]:
    """404 for a consent whose case the caller may not see, as for none at all."""
    consent = await session.get(Consent, consent_id)
    if consent is None:
        raise enforce.not_found(
            session,
            actor,
            audit_action=audit_action,
            resource_type="consent",
            resource_id=str(consent_id),
        )
    _, case_facts, decision = await case_service.load_case(
        session, actor, consent.case_id, action=action, audit_action=audit_action
    )
    return consent, case_facts, decision


async def get_consent(session: AsyncSession, actor: Actor, *, consent_id: uuid.UUID) -> ConsentRead:
    consent, case_facts, _ = await _load(
        session, actor, consent_id, action=Action.CONSENT_READ, audit_action="consent.read"
    )
    identity = await _identity(session, actor, case_facts)
    await audit.append(session, _read_record(actor, "consent.read", consent, identity))
    return await to_read(session, consent, identity)


async def list_consents(
    session: AsyncSession, actor: Actor, *, case_id: uuid.UUID
) -> Page[ConsentRead]:
    case, case_facts, decision = await case_service.load_case(
        session, actor, case_id, action=Action.CONSENT_READ, audit_action="consent.list"
    )
    rows = await session.execute(
        select(Consent).where(Consent.case_id == case.id).order_by(Consent.registered_at)
    )
    consents = list(rows.scalars())
    # every consent of the case is about the case's individual: one identity decision
    identity = await _identity(session, actor, case_facts)
    shown = _shown(identity)
    await audit.append(
        session,
        actor.record(
            "consent.list",
            resource_type="consent",
            case_id=case.id,
            individual_id=case.individual_id,
            policy_id=identity.policy_id if identity.allowed else decision.policy_id,
            **shown | {"reason": f"{len(consents)} item(s), {shown['reason']}"},
        ),
    )
    return Page[ConsentRead](
        items=[await to_read(session, c, identity) for c in consents], next_cursor=None
    )


async def withdraw_consent(
    session: AsyncSession, actor: Actor, *, consent_id: uuid.UUID, data: WithdrawalIn
) -> ConsentRead:
    """Sharing under the consent stops at once: its status is derived at every read."""
    consent, case_facts, decision = await _load(
        session, actor, consent_id, action=Action.CONSENT_WITHDRAW, audit_action="consent.withdraw"
    )
    if consent.withdrawn_at is not None:
        raise Conflict("The consent is already withdrawn.")
    now = _now()
    withdrawn_at = rules.as_utc(data.withdrawn_at) if data.withdrawn_at else now
    if withdrawn_at > now:
        raise ValidationFailed.for_field(
            "body.withdrawn_at", "A withdrawal cannot be dated in the future."
        )
    consent.withdrawn_at = withdrawn_at
    consent.withdrawal_reason = data.reason
    consent.withdrawn_by = actor.id
    await session.flush()
    await events.emit_about(session, EventType.CONSENT_WITHDRAWN, ResourceType.CONSENT, consent)
    await audit.append(session, _record(actor, "consent.withdraw", consent, decision))
    return await to_read(session, consent, await _identity(session, actor, case_facts))


async def store_document(
    session: AsyncSession,
    actor: Actor,
    *,
    consent_id: uuid.UUID,
    read_body: Callable[[int], Awaitable[bytes]],
) -> DocumentRead:
    """Store the signed form once: PDF, PNG or JPEG by content; 409 if one is stored.

    The caller is decided on first; only then is the body read (``read_body`` with the
    size cap, which it enforces while reading), so nobody who may not upload makes the
    server take in megabytes."""
    consent, _, decision = await _load(
        session,
        actor,
        consent_id,
        action=Action.CONSENT_REGISTER,
        audit_action="consent.document.store",
    )
    limits = get_engine().reference.settings.documents
    content = await read_body(limits.max_bytes)
    if len(content) > limits.max_bytes:
        raise PayloadTooLarge(f"The document exceeds {limits.max_bytes} bytes.")
    media_type = sniff_media_type(content)
    if media_type is None or media_type not in limits.media_types:
        raise ValidationFailed.for_field(
            "body", "The document must be a PDF, PNG or JPEG file.", "media_type"
        )
    if await session.get(ConsentDocument, consent.id) is not None:
        raise Conflict("The consent's document is stored already and cannot be replaced.")
    document = ConsentDocument(
        consent_id=consent.id,
        media_type=media_type,
        sha256=hashlib.sha256(content).hexdigest(),
        size_bytes=len(content),
        content=content,
        uploaded_by=actor.id,
        uploaded_at=_now(),
    )
    session.add(document)
    await session.flush()
    await audit.append(
        session,
        _record(actor, "consent.document.store", consent, decision, reason=document.sha256),
    )
    return DocumentRead(
        sha256=document.sha256,
        media_type=media_type,
        size_bytes=document.size_bytes,
        uploaded_at=document.uploaded_at,
    )


async def read_document(
    session: AsyncSession, actor: Actor, *, consent_id: uuid.UUID
) -> ConsentDocument:
    """The signed form carries name and personnummer: 404 to a reader who may not see the
    identity, exactly as for a consent without a stored form."""
    consent, case_facts, _ = await _load(
        session, actor, consent_id, action=Action.CONSENT_READ, audit_action="consent.document.read"
    )
    identity = await _identity(session, actor, case_facts)
    fields: dict[str, Any] = {
        "resource_type": "consent",
        "resource_id": str(consent.id),
        "case_id": consent.case_id,
        "individual_id": consent.individual_id,
    }
    if not identity.allowed:
        raise enforce.deny(
            session,
            actor,
            audit_action="consent.document.read",
            policy_id=identity.policy_id,
            hidden=True,
            **fields,
        )
    document = await session.get(ConsentDocument, consent.id)
    if document is None:
        raise enforce.not_found(session, actor, audit_action="consent.document.read", **fields)
    await audit.append(session, _read_record(actor, "consent.document.read", consent, identity))
    return document
