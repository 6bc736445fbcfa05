"""Review flags, decided when a record is written so that the auditors' work queue costs
nothing to query: ``denied``, ``emergency_access`` (set by the service that grants or reads
under a legal basis), ``protected_identity``, ``outside_hours`` and ``volume``.

Working hours and the volume threshold come from ``policies/settings.yaml`` (``audit``).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, case, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from app.audit.models import AuditReadVolume, Decision
from app.db import rows_of
from app.individuals.models import Individual
from app.policy import get_engine

if TYPE_CHECKING:
    from app.policy.reference import AuditSettings

DENIED = "denied"
EMERGENCY_ACCESS = "emergency_access"
PROTECTED_IDENTITY = "protected_identity"
OUTSIDE_HOURS = "outside_hours"
VOLUME = "volume"
SENSITIVE_CATEGORY = "sensitive_category"
SUBJECT_LOOKUP = "subject_lookup"
# A request refused for what it asked, not for who asked: malformed or invalid input, or a
# state that does not allow it (400, 409, 413, 415, 422). Nothing was shown or changed; the
# work queue (``flagged=true``) leaves these out.
INVALID = "invalid"
INVALID_STATUSES = frozenset({400, 409, 413, 415, 422})
# What needs no human: records flagged with nothing else are not in the work queue.
NOT_FOR_REVIEW = frozenset({INVALID})
ACCOUNT_CHANGE = "account_change"


def audit_settings() -> AuditSettings:
    """``audit`` of policies/settings.yaml (a function, so tests can substitute it)."""
    return get_engine().reference.settings.audit


def remember_protected(known: dict[object, bool], individual_id: object, protected: bool) -> None:
    """Whether the individual is protected, as a statement of the request already read it
    (the flag never changes after registration)."""
    known[("protected", individual_id)] = protected


_PROTECTED = select(Individual.protected_identity).where(
    Individual.id == bindparam("individual_id")
)
# Other individuals a user was let at since a moment, counted up to a limit (the threshold):
# the question stops there, however busy the user was. As a column, so that a request asks
# it in the statement that loads the individual's facts (app.individuals.service.facts_of;
# parameters ``user_id``, ``individual_id``, ``volume_since``, ``volume_limit``:
# :func:`volume_params`).
OTHERS_READ = (
    select(func.count())
    .select_from(
        select(AuditReadVolume.individual_id)
        .where(
            AuditReadVolume.actor_user_id == bindparam("user_id"),
            AuditReadVolume.last_at > bindparam("volume_since"),
            AuditReadVolume.individual_id != bindparam("individual_id"),
        )
        .limit(bindparam("volume_limit"))
        .subquery()
    )
    .scalar_subquery()
)
_OTHERS_READ = select(OTHERS_READ)


def volume_params(at: datetime) -> dict[str, object]:
    """:data:`OTHERS_READ`'s window and limit for a read at ``at``."""
    return {
        "volume_since": at - timedelta(hours=1),
        "volume_limit": audit_settings().volume_individuals_per_hour,
    }


def remember_volume(
    known: dict[object, bool], actor_user_id: object, individual_id: object, others: int
) -> None:
    """The volume flag of the user's reads of the individual in this request, from the
    count a statement of the request already made (:data:`OTHERS_READ`)."""
    known[("volume", actor_user_id, individual_id)] = _over(others)


def _over(others: int | None) -> bool:
    """Distinct individuals read in the hour, this one included, over the threshold."""
    return (others or 0) + 1 > audit_settings().volume_individuals_per_hour


def _touch(insert_of: Any) -> Any:
    """An upsert of (user, individual, at), keeping the later moment."""
    statement = insert_of(AuditReadVolume).values(
        actor_user_id=bindparam("user_id"),
        individual_id=bindparam("individual_id"),
        last_at=bindparam("at"),
    )
    newer = statement.excluded.last_at
    return statement.on_conflict_do_update(
        index_elements=["actor_user_id", "individual_id"],
        set_={
            "last_at": case((newer > AuditReadVolume.last_at, newer), else_=AuditReadVolume.last_at)
        },
    )


# The writer uses this on SQLite; on PostgreSQL its append statements (one record, or a
# page's) do the same upsert in the same round trip (``noted`` in app/audit/writer.py; kept
# alike by tests/test_audit_api.py). This one works on either, so the flag's rules test on both.
_TOUCHES = {"postgresql": _touch(postgresql.insert), "sqlite": _touch(sqlite.insert)}


async def flags_for(
    connection: AsyncConnection,
    *,
    given: set[str],
    decision: Decision,
    at: datetime,
    actor_user_id: object,
    individual_id: object,
    known: dict[object, bool] | None = None,
) -> set[str]:
    """``given`` plus the flags the record's own facts call for.

    ``known`` keeps, for one request, what was looked up: whether an individual is
    protected, and whether a user's reads of an individual crossed the volume threshold.
    A page of one person's entries then asks once, not per item. (A later record about an
    individual already asked of in the request keeps that answer, even if records about
    others were appended in between: the volume flag is a hint for review.)
    """
    known = {} if known is None else known
    if INVALID in given:  # refused input: nothing shown or changed, nothing to review
        return {INVALID}
    settings = audit_settings()
    flags = set(given)
    if decision is Decision.DENY:
        flags.add(DENIED)
    if actor_user_id is not None and settings.working_hours.outside(at):
        flags.add(OUTSIDE_HOURS)
    if individual_id is None:
        return flags
    if ("protected", individual_id) not in known:
        found = await rows_of(connection, _PROTECTED, {"individual_id": individual_id})
        known[("protected", individual_id)] = bool(found and found[0][0])
    if known[("protected", individual_id)]:
        flags.add(PROTECTED_IDENTITY)
    if actor_user_id is not None and decision is Decision.PERMIT:
        key = ("volume", actor_user_id, individual_id)
        if key not in known:
            known[key] = await _over_volume(
                connection, at=at, actor_user_id=actor_user_id, individual_id=individual_id
            )
        if known[key]:
            flags.add(VOLUME)
    return flags


async def _over_volume(
    connection: AsyncConnection, *, at: datetime, actor_user_id: object, individual_id: object
) -> bool:
    """Distinct individuals this user was let at in the hour up to now, this one included,
    over the threshold."""
    params = {"user_id": actor_user_id, "individual_id": individual_id} | volume_params(at)
    [[others]] = await rows_of(connection, _OTHERS_READ, params)
    return _over(others)


async def note_read(
    connection: AsyncConnection,
    *,
    decision: Decision,
    at: datetime,
    actor_user_id: object,
    individual_id: object,
    known: dict[object, bool],
) -> None:
    """Keep ``audit_read_volume`` in step with a record just appended (once per user and
    individual in a request). Called after the append, which holds the chain head until
    commit: every request that holds one of these rows holds the head too, so two requests
    never wait for each other's rows (no deadlock)."""
    if actor_user_id is None or individual_id is None or decision is not Decision.PERMIT:
        return
    key = ("noted", actor_user_id, individual_id)
    if key in known:
        return
    await connection.execute(
        _TOUCHES[connection.dialect.name],
        {"user_id": actor_user_id, "individual_id": individual_id, "at": at},
    )
    known[key] = True
