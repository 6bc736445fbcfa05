"""SQL filters for lists and searches, built from the same rules as the Cedar policies.

Lists are filtered in the database, never fetched and dropped; tests compare these
filters with the Cedar decision row for row (tests/test_policy_filters.py).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Uuid,
    and_,
    bindparam,
    exists,
    false,
    or_,
    select,
    true,
)
from sqlalchemy.orm import aliased

from app.actions.models import CaseAction
from app.agencies.models import Agency
from app.auth.actor import Actor, ActorKind
from app.cases.models import Case, CaseParticipant, CaseStatus
from app.consents.models import Consent, ConsentAgency, ConsentCategory
from app.db import UtcDateTime
from app.emergency.models import EmergencyGrant, EmergencyGrantCategory
from app.entries.models import Entry
from app.events.models import Event, ResourceType
from app.goals.models import Goal
from app.holds.models import LegalHold
from app.individuals.models import Individual
from app.lagesbild.models import Area
from app.meetings.models import Meeting
from app.policy import get_engine
from app.users.models import Role

# A column or SQL expression (or a literal) compared inside a filter.
SqlValue = Any
# The moment a filter decides for: a value, or the parameter :data:`NOW`.
Moment = datetime | BindParameter[datetime]

CLOSED = CaseStatus.CLOSED.value
PLAN = "plan"
THREAT_ASSESSMENT = "threat_assessment"
_CASE_STAFF = {Role.CASEWORKER, Role.COORDINATOR}
_NEVER_CONTENT = {Role.ADMIN, Role.AUDITOR}


# A filter is built for an actor and a moment. Built for :func:`stand_in` and :data:`NOW`
# instead, it holds for every actor of the same kind, roles and scopes at any moment, the
# actor's id, agency and the moment bound at execution (:func:`stand_in_params`): a list
# can then build its statement and compile it once, where building it costs milliseconds
# a request (app.policy.reads, docs/performance.md).
_ACTOR_ID: BindParameter[Any] = bindparam("filter_actor_id", type_=Uuid())
_ACTOR_AGENCY_ID: BindParameter[Any] = bindparam("filter_actor_agency_id", type_=Uuid())
NOW: BindParameter[datetime] = bindparam("filter_now", type_=UtcDateTime())


def stand_in(actor: Actor) -> Actor:
    """``actor`` with its id and agency as parameters (only the filters here read them)."""
    return dataclasses.replace(
        actor, id=cast(Any, _ACTOR_ID), agency_id=cast(Any, _ACTOR_AGENCY_ID)
    )


def shape_of(actor: Actor) -> tuple[object, ...]:
    """What a filter built for :func:`stand_in` depends on besides the parameters."""
    return (actor.kind, actor.roles, actor.scopes)


def stand_in_params(actor: Actor, now: datetime) -> dict[str, Any]:
    """The values of a stand-in filter's parameters for ``actor`` at ``now``."""
    return {
        _ACTOR_ID.key: actor.id,
        _ACTOR_AGENCY_ID.key: actor.agency_id,
        NOW.key: now,
    }


def _case_staff(actor: Actor, scope: str) -> bool:
    """policies/cases.cedar: content permits need case staff; admin/auditor is forbidden.
    policies/integration.cedar: an integration client is a caseworker of its agency, for
    what its scopes name (``scope``: the one this kind of row needs)."""
    if actor.kind is ActorKind.CLIENT:
        return scope in actor.scopes
    return bool(actor.roles & _CASE_STAFF) and not actor.roles & _NEVER_CONTENT


def _participates(actor: Actor, case_id: SqlValue) -> ColumnElement[bool]:
    return exists(
        select(CaseParticipant.case_id).where(
            CaseParticipant.case_id == case_id, CaseParticipant.agency_id == actor.agency_id
        )
    )


def _open(case_id: SqlValue, *, of: Any) -> ColumnElement[bool]:
    """The case ``case_id`` (a column of ``of``) is not closed: consents and grants share
    nothing through a closed case. Correlated to ``of`` by name: inside a query over cases
    (a list) an automatic correlation could pick the outer case instead."""
    return exists(select(Case.id).where(Case.id == case_id, Case.status != CLOSED)).correlate(of)


def cases_taken_part_in(actor: Actor) -> ColumnElement[bool]:
    """Cases the actor's agency takes part in, whatever its role: the scope of the follow-up
    statistics (``statistics.read`` lets coordinators and auditors count them)."""
    return _participates(actor, Case.id)


def areas_visible_to(municipality: str | None) -> ColumnElement[bool]:
    """``lagesbild.read.municipality_staff`` over areas, for an agency working in
    ``municipality`` (none without one); the role is decided once for the list."""
    if municipality is None:
        return false()
    return Area.municipality == municipality


def cases_visible_to(actor: Actor) -> ColumnElement[bool]:
    """``case.read.participant``."""
    if not _case_staff(actor, "read:cases"):
        return false()
    return _participates(actor, Case.id)


def _in_a_case_of_the_individual(actor: Actor, *, open_only: bool = False) -> ColumnElement[bool]:
    # correlate_except: inside a query over cases this subquery ranges over its own cases.
    query = select(Case.id).where(
        Case.individual_id == Individual.id, _participates(actor, Case.id)
    )
    if open_only:  # ``open_case_agencies``
        query = query.where(Case.status != CLOSED)
    return exists(query.correlate_except(Case))


def individuals_with_identity_visible_to(actor: Actor, now: Moment) -> ColumnElement[bool]:
    """``individual.read.registering_agency``, or, for an agency in one of the individual's
    cases and unless the identity is protected, ``identity.read.consent`` or
    ``identity.read.emergency_access``."""
    if not _case_staff(actor, "read:individuals"):
        return false()
    any_case_grant = _grant_covering(
        actor, now, "identity", [Individual.registering_agency_id], individual_id=Individual.id
    )
    return or_(
        Individual.registering_agency_id == actor.agency_id,
        and_(
            Individual.protected_identity.is_(False),
            _in_a_case_of_the_individual(actor, open_only=True),
            or_(
                _consent_covering(
                    now,
                    Individual.id,
                    [Individual.registering_agency_id, actor.agency_id],
                    "identity",
                ),
                any_case_grant,
            ),
        ),
    )


def individuals_visible_to(actor: Actor) -> ColumnElement[bool]:
    """``individual.read.registering_agency`` or ``individual.read.case_participant``."""
    if not _case_staff(actor, "read:individuals"):
        return false()
    return or_(
        Individual.registering_agency_id == actor.agency_id, _in_a_case_of_the_individual(actor)
    )


def consent_active(now: Moment) -> ColumnElement[bool]:
    """valid_from <= now < valid_until, not withdrawn and not superseded by now, and its
    case not closed: the one definition of a consent that applies, used both to pick the
    grounds of a decision and to filter lists. Closing a case ends sharing under the
    consents registered on it (app.consents.rules.status_at says the rest)."""
    return and_(
        Consent.valid_from <= now,
        Consent.valid_until > now,
        or_(Consent.withdrawn_at.is_(None), Consent.withdrawn_at > now),
        or_(Consent.superseded_at.is_(None), Consent.superseded_at > now),
        _open(Consent.case_id, of=Consent),
    )


def grant_live(actor_id: SqlValue, agency_id: SqlValue, now: Moment) -> ColumnElement[bool]:
    """An emergency grant that applies now: the reader's own, issued while they belonged to
    the agency they belong to now (a grant belongs to the agency), neither expired nor
    ended, on a case that is not closed. The one definition for grounds and filters."""
    return and_(
        EmergencyGrant.user_id == actor_id,
        EmergencyGrant.agency_id == agency_id,
        EmergencyGrant.expires_at > now,
        or_(EmergencyGrant.ended_at.is_(None), EmergencyGrant.ended_at > now),
        _open(EmergencyGrant.case_id, of=EmergencyGrant),
    )


def _consent_covering(
    now: Moment,
    individual: SqlValue,
    named: Sequence[SqlValue],
    category: SqlValue,
) -> ColumnElement[bool]:
    """``*.read.consent``: one active consent of the individual names every agency in
    ``named`` (the reader and those whose information is read) and covers the category.

    One subquery with joins rather than nested EXISTS: SQLAlchemy correlates a subquery
    only to the query directly around it, and a second level would silently range over
    every row of the outer table instead (the property test caught exactly that).
    """
    query = select(Consent.id)
    for agency in named:
        agency_named = aliased(ConsentAgency)
        query = query.join(
            agency_named,
            and_(agency_named.consent_id == Consent.id, agency_named.agency_id == agency),
        )
    return exists(
        query.join(
            ConsentCategory,
            and_(ConsentCategory.consent_id == Consent.id, ConsentCategory.category == category),
        ).where(Consent.individual_id == individual, consent_active(now))
    )


def _grant_covering(
    actor: Actor,
    now: Moment,
    category: SqlValue,
    opened_agencies: Sequence[SqlValue],
    *,
    case_id: SqlValue = None,
    individual_id: SqlValue = None,
) -> ColumnElement[bool]:
    """``*.emergency_access``: an unexpired grant of this user for the case (or for any
    case of the individual) and the category, under a legal basis that opens information
    of every one of ``opened_agencies``' kinds. One subquery, aliased tables: see
    _consent_covering."""
    opened = [aliased(Agency) for _ in opened_agencies]
    grant_case = aliased(Case)
    opens = or_(
        false(),
        *(
            and_(
                EmergencyGrant.legal_basis == basis.code,
                *(agency.kind.in_([kind.value for kind in basis.towards]) for agency in opened),
            )
            for basis in get_engine().reference.legal_bases.values()
        ),
    )
    query = select(EmergencyGrant.id).join(
        EmergencyGrantCategory, EmergencyGrantCategory.grant_id == EmergencyGrant.id
    )
    for agency, agency_id in zip(opened, opened_agencies, strict=True):
        query = query.join(agency, agency.id == agency_id)
    query = query.where(
        grant_live(actor.id, actor.agency_id, now),
        EmergencyGrantCategory.category == category,
        opens,
    )
    if case_id is not None:
        query = query.where(EmergencyGrant.case_id == case_id)
    else:
        query = query.join(grant_case, grant_case.id == EmergencyGrant.case_id).where(
            grant_case.individual_id == individual_id
        )
    return exists(query)


def recorded_visible_to(
    actor: Actor,
    now: Moment,
    *,
    case_id: SqlValue,
    individual_id: SqlValue,
    source_agency_id: SqlValue,
    category: SqlValue,
    case_is_open: ColumnElement[bool],
) -> ColumnElement[bool]:
    """``entry.read``: information one agency recorded on a case in one category — an
    entry, a goal, a meeting, the case's threat assessment. ``entry.read.own_agency``, or
    participant and (consent or emergency grant) while the case is open."""
    if not _case_staff(actor, "read:entries"):
        return false()
    return or_(
        source_agency_id == actor.agency_id,
        and_(
            _participates(actor, case_id),
            case_is_open,
            or_(
                _consent_covering(
                    now, individual_id, [source_agency_id, actor.agency_id], category
                ),
                _grant_covering(actor, now, category, [source_agency_id], case_id=case_id),
            ),
        ),
    )


def entries_visible_to(actor: Actor, now: Moment) -> ColumnElement[bool]:
    """``entry.read.own_agency`` or (participant and (consent or emergency grant))."""
    return recorded_visible_to(
        actor,
        now,
        case_id=Entry.case_id,
        individual_id=Entry.individual_id,
        source_agency_id=Entry.source_agency_id,
        category=Entry.category,
        case_is_open=_open(Entry.case_id, of=Entry),
    )


def plan_records_visible_to(model: Any) -> Callable[[Actor, Moment], ColumnElement[bool]]:
    """Goals and meetings (``model``: their agency in ``agency_id``): category ``plan``."""

    def visible(actor: Actor, now: Moment) -> ColumnElement[bool]:
        return recorded_visible_to(
            actor,
            now,
            case_id=model.case_id,
            individual_id=model.individual_id,
            source_agency_id=model.agency_id,
            category=PLAN,
            case_is_open=_open(model.case_id, of=model),
        )

    return visible


def threat_visible_to(actor: Actor, now: Moment) -> ColumnElement[bool]:
    """A case's threat assessment (category ``threat_assessment``, recorded by
    ``threat_agency_id``), over rows of ``case_file``."""
    return and_(
        Case.threat_agency_id.is_not(None),
        recorded_visible_to(
            actor,
            now,
            case_id=Case.id,
            individual_id=Case.individual_id,
            source_agency_id=Case.threat_agency_id,
            category=THREAT_ASSESSMENT,
            case_is_open=Case.status != CLOSED,
        ),
    )


def actions_visible_to(actor: Actor, now: Moment) -> ColumnElement[bool]:
    """``action.read.own_agency`` (planning or responsible agency), or participant and
    (a consent naming the reader and both agencies, or an emergency grant opening both)."""
    if not _case_staff(actor, "read:actions"):
        return false()
    return or_(
        CaseAction.source_agency_id == actor.agency_id,
        CaseAction.responsible_agency_id == actor.agency_id,
        and_(
            _participates(actor, CaseAction.case_id),
            _open(CaseAction.case_id, of=CaseAction),
            or_(
                _consent_covering(
                    now,
                    CaseAction.individual_id,
                    [
                        CaseAction.source_agency_id,
                        CaseAction.responsible_agency_id,
                        actor.agency_id,
                    ],
                    PLAN,
                ),
                _grant_covering(
                    actor,
                    now,
                    "plan",
                    [CaseAction.source_agency_id, CaseAction.responsible_agency_id],
                    case_id=CaseAction.case_id,
                ),
            ),
        ),
    )


def grants_visible_to(actor: Actor) -> ColumnElement[bool]:
    """``emergency.read.own_agency`` or ``emergency.manage.lead_coordinator``."""
    if actor.kind is ActorKind.CLIENT or not _case_staff(actor, ""):
        return false()
    own = EmergencyGrant.agency_id == actor.agency_id
    if Role.COORDINATOR in actor.roles:
        own = or_(
            own,
            exists(
                select(Case.id).where(
                    Case.id == EmergencyGrant.case_id, Case.lead_agency_id == actor.agency_id
                )
            ),
        )
    return and_(_participates(actor, EmergencyGrant.case_id), own)


# Events about the case itself, who takes part in it, and its consents: seen by whoever
# sees the case (``case.read.participant`` also decides ``consent.read``).
_ABOUT_THE_CASE = (ResourceType.CASE, ResourceType.PARTICIPANT, ResourceType.CONSENT)


def events_visible_to(actor: Actor, now: Moment) -> ColumnElement[bool]:
    """An event is seen by whoever may read, now, what it is about: the entry, the action,
    the grant, the goal, the meeting, the case's threat assessment or the individual it
    names by ``resource_id``; for a case, its participants
    and its consents, the case (``case.read.participant``, which covers ``consent.read``).
    The same filters as those lists, so that an event never says more than a read would."""
    if not _case_staff(actor, "events"):
        return false()
    kind = Event.resource_type

    def about(model: Any, visible: ColumnElement[bool]) -> ColumnElement[bool]:
        return exists(select(model.id).where(model.id == Event.resource_id, visible))

    return or_(
        and_(
            kind == ResourceType.INDIVIDUAL.value,
            about(Individual, individuals_visible_to(actor)),
        ),
        and_(
            kind.in_(
                [
                    ResourceType.CASE.value,
                    ResourceType.PARTICIPANT.value,
                    ResourceType.CONSENT.value,
                ]
            ),
            exists(select(Case.id).where(Case.id == Event.case_id, cases_visible_to(actor))),
        ),
        and_(kind == ResourceType.ENTRY.value, about(Entry, entries_visible_to(actor, now))),
        and_(kind == ResourceType.ACTION.value, about(CaseAction, actions_visible_to(actor, now))),
        and_(
            kind == ResourceType.EMERGENCY_GRANT.value,
            about(EmergencyGrant, grants_visible_to(actor)),
        ),
        and_(
            kind == ResourceType.GOAL.value, about(Goal, plan_records_visible_to(Goal)(actor, now))
        ),
        and_(
            kind == ResourceType.MEETING.value,
            about(Meeting, plan_records_visible_to(Meeting)(actor, now)),
        ),
        and_(kind == ResourceType.THREAT.value, about(Case, threat_visible_to(actor, now))),
    )


def holds_visible_to(actor: Actor) -> ColumnElement[bool]:
    """policies/retention.cedar ``hold.read``: auditors every hold, coordinators their
    agency's requests; an account both administrator and auditor nothing (duties.cedar),
    integration clients nothing."""
    if actor.kind is ActorKind.CLIENT or {Role.ADMIN, Role.AUDITOR} <= actor.roles:
        return false()
    if Role.AUDITOR in actor.roles:
        return true()
    if Role.COORDINATOR in actor.roles:
        return LegalHold.agency_id == actor.agency_id
    return false()
