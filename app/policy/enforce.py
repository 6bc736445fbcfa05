"""Ask the decision point, and on a denial record it and answer 404 or 403.

404 when the caller may not know the resource exists (indistinguishable from a missing
one); 403 when the caller may see it but not do this to it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.audit import writer as audit
from app.audit.models import Decision
from app.auth.actor import Actor
from app.errors import Forbidden, NotFound
from app.policy import get_engine
from app.policy.engine import Action, PolicyDecision
from app.policy.entities import Grounds, Resource


def decide(
    actor: Actor,
    action: Action,
    resource: Resource,
    grounds: Grounds | None = None,
    context: dict[str, Any] | None = None,
) -> PolicyDecision:
    return get_engine().decide(actor, action, resource, grounds, context)


def decide_each(
    actor: Actor, action: Action, resources: Sequence[Resource], grounds: Grounds | None = None
) -> list[PolicyDecision]:
    """:func:`decide` for each of a page of resources, in one call of the decision point."""
    return get_engine().decide_each(actor, action, resources, grounds)


def deny(
    session: AsyncSession,
    actor: Actor,
    *,
    audit_action: str,
    policy_id: str,
    hidden: bool,
    detail: str = "Your role or agency does not allow this.",
    **fields: Any,
) -> NotFound | Forbidden:
    """Record the denial (it survives the request's rollback) and return the error to raise:
    a bare 404 when ``hidden``, else a 403 with ``detail``."""
    audit.append_whatever_the_outcome(
        session,
        actor.record(
            audit_action, decision=Decision.DENY, policy_id=policy_id, flags=["denied"], **fields
        ),
    )
    return NotFound() if hidden else Forbidden(detail)


def not_found(
    session: AsyncSession, actor: Actor, *, audit_action: str, **fields: Any
) -> NotFound | Forbidden:
    """The audited 404 for something that does not exist: it reads exactly like the 404
    for something the caller may not see."""
    return deny(
        session, actor, audit_action=audit_action, policy_id="not-found", hidden=True, **fields
    )


def require_to_see_and(
    session: AsyncSession,
    actor: Actor,
    seen: Action,
    action: Action,
    resource: Resource,
    *,
    audit_action: str,
    **fields: Any,
) -> tuple[PolicyDecision, PolicyDecision]:
    """:func:`require` of ``seen`` (hidden: a 404) and then of ``action`` (a 403), decided
    together in one call of the decision point."""
    may_see, may_do = get_engine().decide_actions(actor, [seen, action], resource)
    _permitted(session, actor, may_see, audit_action=audit_action, hidden=True, **fields)
    _permitted(session, actor, may_do, audit_action=audit_action, hidden=False, **fields)
    return may_see, may_do


def require(
    session: AsyncSession,
    actor: Actor,
    action: Action,
    resource: Resource,
    *,
    audit_action: str,
    hidden: bool,
    detail: str = "Your role or agency does not allow this.",
    context: dict[str, Any] | None = None,
    **fields: Any,
) -> PolicyDecision:
    """The permit that allows ``action``; otherwise an audited 404 (hidden) or 403."""
    decision = decide(actor, action, resource, context=context)
    return _permitted(
        session, actor, decision, audit_action=audit_action, hidden=hidden, detail=detail, **fields
    )


def _permitted(
    session: AsyncSession,
    actor: Actor,
    decision: PolicyDecision,
    *,
    audit_action: str,
    hidden: bool,
    detail: str = "Your role or agency does not allow this.",
    **fields: Any,
) -> PolicyDecision:
    """``decision`` if it permits; otherwise the audited denial is raised."""
    if not decision.allowed:
        raise deny(
            session,
            actor,
            audit_action=audit_action,
            policy_id=decision.policy_id,
            hidden=hidden,
            detail=detail,
            **fields,
        )
    return decision
