"""SQL filters for lists and searches, built from the same rules as the Cedar policies.

Lists are filtered in the database, never fetched and dropped; tests compare these
filters with the Cedar decision row for row (tests/test_policy_filters.py).
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, exists, false, or_, select

from app.auth.actor import Actor, ActorKind
from app.cases.models import Case, CaseParticipant
from app.individuals.models import Individual
from app.users.models import Role

_CASE_STAFF = {Role.CASEWORKER, Role.COORDINATOR}
_NEVER_CONTENT = {Role.ADMIN, Role.AUDITOR}


def _case_staff(actor: Actor) -> bool:
    """policies/cases.cedar: content permits need case staff; admin/auditor is forbidden."""
    return (
        actor.kind is ActorKind.USER
        and bool(actor.roles & _CASE_STAFF)
        and not actor.roles & _NEVER_CONTENT
    )


def _participates(actor: Actor, case_id: ColumnElement[object]) -> ColumnElement[bool]:
    return exists(
        select(CaseParticipant.case_id).where(
            CaseParticipant.case_id == case_id, CaseParticipant.agency_id == actor.agency_id
        )
    )


def cases_visible_to(actor: Actor) -> ColumnElement[bool]:
    """``case.read.participant``."""
    if not _case_staff(actor):
        return false()
    return _participates(actor, Case.id)  # type: ignore[arg-type]


def individuals_with_identity_visible_to(actor: Actor) -> ColumnElement[bool]:
    """``individual.read.registering_agency`` (identity included)."""
    if not _case_staff(actor):
        return false()
    return Individual.registering_agency_id == actor.agency_id


def individuals_visible_to(actor: Actor) -> ColumnElement[bool]:
    """``individual.read.registering_agency`` or ``individual.read.case_participant``."""
    if not _case_staff(actor):
        return false()
    in_a_case = exists(
        select(Case.id).where(
            Case.individual_id == Individual.id,
            _participates(actor, Case.id),  # type: ignore[arg-type]
        )
    )
    return or_(Individual.registering_agency_id == actor.agency_id, in_a_case)
