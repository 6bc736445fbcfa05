"""Links between cases: a case that continues an earlier one of the same individual (a
Trefas case continuing as SIG after release), or a related case. Each side keeps its own
sharing: a link opens nothing, it only lets whoever sees both cases follow the history."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit import writer as audit
from app.auth.actor import Actor
from app.cases import service as case_service
from app.cases.models import Case, CaseLink, CaseParticipant, LinkKind
from app.cases.schemas import LinkCreate, LinkCreated, LinkRead
from app.consents.models import Consent, ConsentAgency
from app.errors import Conflict, ValidationFailed
from app.events.models import EventType
from app.individuals.models import Individual
from app.pagination import Page
from app.policy import enforce, filters
from app.policy.engine import Action


def _read(link: CaseLink) -> LinkRead:
    return LinkRead(
        id=link.id,
        case_id=link.case_id,
        linked_case_id=link.linked_case_id,
        kind=LinkKind(link.kind),
        created_at=link.created_at,
    )


def _bad_target(detail: str, code: str) -> ValidationFailed:
    return ValidationFailed.for_field("body.case_id", detail, code)


async def _continues_back_to(session: AsyncSession, start: uuid.UUID, goal: uuid.UUID) -> bool:
    """Whether following ``continues`` links from ``start`` reaches ``goal`` (a cycle)."""
    seen, frontier = {start}, [start]
    while frontier:
        rows = await session.execute(
            select(CaseLink.linked_case_id).where(
                CaseLink.case_id.in_(frontier), CaseLink.kind == LinkKind.CONTINUES.value
            )
        )
        frontier = [c for c in rows.scalars() if c not in seen]
        if goal in frontier:
            return True
        seen.update(frontier)
    return False


async def _consent_needed_for(session: AsyncSession, case: Case, now: datetime) -> list[uuid.UUID]:
    """Agencies of ``case`` that no active consent of the individual names together with
    the registering agency (a closed case's consents no longer apply)."""
    registering = await session.scalar(
        select(Individual.registering_agency_id).where(Individual.id == case.individual_id)
    )
    participants = set(
        (
            await session.execute(
                select(CaseParticipant.agency_id).where(CaseParticipant.case_id == case.id)
            )
        ).scalars()
    )
    named: dict[uuid.UUID, set[uuid.UUID]] = {}
    rows = await session.execute(
        select(ConsentAgency.consent_id, ConsentAgency.agency_id)
        .join(Consent, Consent.id == ConsentAgency.consent_id)
        .where(Consent.individual_id == case.individual_id, filters.consent_active(now))
    )
    for consent_id, agency_id in rows.all():
        named.setdefault(consent_id, set()).add(agency_id)
    covered = {a for agencies in named.values() if registering in agencies for a in agencies}
    return sorted(participants - covered - {registering}, key=str)


async def create_link(
    session: AsyncSession, actor: Actor, *, case_id: uuid.UUID, data: LinkCreate
) -> LinkCreated:
    """The lead coordinators link their open case to another case they take part in. 422
    (``case_id``) for the case itself, a case they cannot see (as for none), a ``continues``
    link to another individual's case, or one that would close a cycle; 409 if the two are
    linked already."""
    case, _, decision = await case_service.load_case(
        session, actor, case_id, action=Action.CASE_LINK, audit_action="case.link"
    )
    case_service.require_open(case)
    if data.case_id == case.id:
        raise _bad_target("A case cannot be linked to itself.", "self")
    target = await session.get(Case, data.case_id)
    if (
        target is None
        or not enforce.decide(
            actor, Action.CASE_READ, await case_service.case_facts(session, target)
        ).allowed
    ):
        raise _bad_target("Not a case you take part in.", "not_visible")
    kind = data.kind
    if kind is LinkKind.CONTINUES and target.individual_id != case.individual_id:
        raise _bad_target(
            "A case continues only an earlier case of the same individual; use related.",
            "other_individual",
        )
    existing = await session.scalar(
        select(CaseLink.id).where(
            or_(
                (CaseLink.case_id == case.id) & (CaseLink.linked_case_id == target.id),
                (CaseLink.case_id == target.id) & (CaseLink.linked_case_id == case.id),
            )
        )
    )
    if existing is not None:
        raise Conflict("The two cases are linked already.")
    if kind is LinkKind.CONTINUES and await _continues_back_to(session, target.id, case.id):
        raise _bad_target("The link would make the cases continue each other.", "cycle")
    now = datetime.now(UTC)
    link = CaseLink(
        id=uuid.uuid4(),
        case_id=case.id,
        linked_case_id=target.id,
        kind=kind.value,
        created_by=actor.id,
        created_at=now,
    )
    session.add(link)
    case.updated_at = now
    await session.flush()
    await case_service.emit_case_event(session, EventType.CASE_UPDATED, case)
    await audit.append(
        session,
        case_service.case_record(
            actor, "case.link", case, decision, reason=f"{kind.value} case {target.id}"
        ),
    )
    return LinkCreated(
        **_read(link).model_dump(), consent_needed_for=await _consent_needed_for(session, case, now)
    )


async def list_links(session: AsyncSession, actor: Actor, *, case_id: uuid.UUID) -> Page[LinkRead]:
    """The case's links, made on it or pointing at it, to cases the caller also sees (a link
    to a case it does not see would tell that the case exists). Few: one page."""
    case, _, decision = await case_service.load_case(
        session, actor, case_id, action=Action.CASE_READ, audit_action="case.links"
    )
    visible = filters.cases_visible_to(actor)
    made = select(CaseLink).join(Case, Case.id == CaseLink.linked_case_id)
    pointing = select(CaseLink).join(Case, Case.id == CaseLink.case_id)
    links = list(
        (await session.execute(made.where(CaseLink.case_id == case.id, visible))).scalars()
    ) + list(
        (
            await session.execute(pointing.where(CaseLink.linked_case_id == case.id, visible))
        ).scalars()
    )
    links.sort(key=lambda link: (link.created_at, link.id))
    await audit.append(
        session,
        case_service.case_record(
            actor, "case.links", case, decision, reason=f"{len(links)} link(s)"
        ),
    )
    return Page[LinkRead](items=[_read(link) for link in links], next_cursor=None)
