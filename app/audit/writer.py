"""The audit writer: every read, write and denial of personal data goes through here.

- :func:`append` writes the record **in the caller's transaction**. If it fails, the
  request fails with a 503 and the work it recorded is rolled back with it (fail closed).
- :func:`append_whatever_the_outcome` is for denials and failed logins: the request that
  triggers them ends in an error and its transaction is rolled back, so the record is
  written in a fresh transaction after that rollback (or in the request's own if, after
  all, it commits). See ``app.db.get_session``.
- A request that fails after its records were appended (a 409 after a permitted read, a
  failed COMMIT) loses them with its rollback; they are written again after the
  rollback, saying the request was not completed and why. A request to a personal-data
  route that fails before anything was recorded gets one record of the attempt
  (:func:`expect_records`). Every such request thus leaves exactly its records, whatever
  the outcome.

On PostgreSQL one statement locks the chain head (``FOR UPDATE`` under READ COMMITTED),
inserts the record with ``seq = head + 1`` and its hash computed by the database, and
moves the head: one round trip. The records of a page are appended together: one
statement locks the head, their hashes are chained here, and one statement inserts them
all and moves the head once. On SQLite the write lock taken by ``BEGIN IMMEDIATE``
serialises appends and the hash is computed here.

The records of a read on PostgreSQL (:func:`append_at_commit`, in a transaction that
wrote nothing) are group-committed (app/audit/group.py): a read has no work of its own to
commit or roll back with its records, so they are appended together with those of other
reads, by one statement that is its own transaction, and the read is answered only once
that has committed; if it fails, the read fails with a 503 and shows nothing, as if its
own transaction had failed. Every other record stays in its request's transaction.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

import structlog
from sqlalchemy import insert, select, text, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app.audit import flags
from app.audit.chain import BODY_FIELDS, canonical_body, record_hash
from app.audit.flags import flags_for
from app.audit.group import GroupCommit
from app.audit.models import AuditChainHead, AuditEvent, Decision
from app.audit.records import Record
from app.db import (
    after_commit,
    after_rollback,
    before_commit,
    database_of_session,
    in_transaction,
    keep_whatever_the_outcome,
    rows_alone,
    rows_of,
)
from app.errors import ServiceUnavailable, status_of
from app.events import outbox
from app.events.models import Event
from app.ops import metrics

log = structlog.get_logger("app.audit")


class AuditUnavailable(ServiceUnavailable):
    """The audit record could not be written; the request fails and returns nothing."""


def _columns(record: Record, at: datetime, flags: set[str]) -> dict[str, object]:
    return {
        "at": at,
        "actor_user_id": record.actor_user_id,
        "actor_client_id": record.actor_client_id,
        "actor_agency_id": record.actor_agency_id,
        "actor_roles": ",".join(sorted(set(record.actor_roles))),
        "action": record.action,
        "resource_type": record.resource_type,
        "resource_id": record.resource_id,
        "individual_id": record.individual_id,
        "case_id": record.case_id,
        "decision": record.decision.value,
        "basis": record.basis,
        "policy_id": record.policy_id,
        "consent_id": record.consent_id,
        "legal_basis": record.legal_basis,
        "reason": record.reason,
        "request_id": record.origin.request_id,
        "client_address": record.origin.client_address,
        "flags": ",".join(sorted(flags)),
        "auth_method": record.auth_method,
    }


_PG_CASTS = {
    "at": "timestamptz",
    "actor_user_id": "uuid",
    "actor_client_id": "uuid",
    "actor_agency_id": "uuid",
    "individual_id": "uuid",
    "case_id": "uuid",
    "consent_id": "uuid",
}
_PG_APPEND_CTES = f"""
    WITH head AS (
        SELECT seq, hash FROM audit_chain_head WHERE id = 1 FOR UPDATE
    ), appended AS (
        INSERT INTO audit_event (seq, {", ".join(BODY_FIELDS)}, prev_hash, hash)
        SELECT head.seq + 1,
               {", ".join(f"CAST(:{n} AS {_PG_CASTS.get(n, 'text')})" for n in BODY_FIELDS)},
               head.hash,
               encode(sha256(convert_to(
                   head.hash || '|' || (head.seq + 1)::text || '|' || CAST(:body AS text),
                   'UTF8')), 'hex')
        FROM head
        RETURNING seq, hash
    ), noted AS (
        -- app.audit.flags.note_read, in the same round trip; after the head is locked
        -- (it reads ``appended``), as the deadlock argument there requires.
        INSERT INTO audit_read_volume (actor_user_id, individual_id, last_at)
        SELECT CAST(:actor_user_id AS uuid), CAST(:individual_id AS uuid),
               CAST(:at AS timestamptz)
        FROM appended
        WHERE CAST(:decision AS text) = 'permit'
          AND CAST(:actor_user_id AS uuid) IS NOT NULL
          AND CAST(:individual_id AS uuid) IS NOT NULL
        ON CONFLICT (actor_user_id, individual_id)
        DO UPDATE SET last_at = GREATEST(audit_read_volume.last_at, EXCLUDED.last_at)
    )"""  # noqa: S608 - column names are constants, values are bound
_PG_MOVE_HEAD = """
    UPDATE audit_chain_head SET seq = appended.seq, hash = appended.hash
    FROM appended WHERE audit_chain_head.id = 1
    RETURNING appended.seq, appended.hash
    """
_PG_APPEND = text(_PG_APPEND_CTES + _PG_MOVE_HEAD)
# The same, writing the change's event (app.events.outbox) in the same round trip: after
# the head is locked (it reads ``appended``), so events are numbered in commit order.
_PG_APPEND_ANNOUNCING = text(
    _PG_APPEND_CTES  # noqa: S608 - constants only; values are bound
    + """, announced AS (
        INSERT INTO event (id, type, occurred_at, case_id, individual_id, resource_type,
                           resource_id)
        SELECT CAST(:event_id AS uuid), CAST(:event_type AS text),
               CAST(:event_occurred_at AS timestamptz), CAST(:event_case_id AS uuid),
               CAST(:event_individual_id AS uuid), CAST(:event_resource_type AS text),
               CAST(:event_resource_id AS uuid)
        FROM appended
    )"""
    + _PG_MOVE_HEAD
)


# Reads noted from the records' arrays (once per user and individual: one upsert may not
# touch a row twice); ``after``: a condition that makes it wait for the append.
_NOTED_FROM_ARRAYS = """noted AS (
        INSERT INTO audit_read_volume (actor_user_id, individual_id, last_at)
        SELECT read.actor_user_id, read.individual_id, max(read.at)
        FROM unnest(CAST(:actor_user_id AS uuid[]), CAST(:individual_id AS uuid[]),
                    CAST(:at AS timestamptz[]), CAST(:decision AS text[]))
             AS read(actor_user_id, individual_id, at, decision)
        WHERE read.decision = 'permit'
          AND read.actor_user_id IS NOT NULL AND read.individual_id IS NOT NULL {after}
        GROUP BY read.actor_user_id, read.individual_id
        ON CONFLICT (actor_user_id, individual_id)
        DO UPDATE SET last_at = GREATEST(audit_read_volume.last_at, EXCLUDED.last_at)
    )"""
# A page's records (app.audit.writer._write_all): the head locked first, then every record
# inserted from arrays, their reads noted (once per user and individual: one upsert may not
# touch a row twice) and the head moved to the last of them, in one statement.
_PG_LOCK_HEAD = text("SELECT seq, hash FROM audit_chain_head WHERE id = 1 FOR UPDATE")
_ARRAY_OF = {"seq": "bigint", **_PG_CASTS, "prev_hash": "text", "hash": "text"}
_PG_APPEND_MANY = text(
    f"""
    WITH appended AS (
        INSERT INTO audit_event (seq, {", ".join(BODY_FIELDS)}, prev_hash, hash)
        SELECT * FROM unnest({
        ", ".join(
            f"CAST(:{n} AS {_ARRAY_OF.get(n, 'text')}[])"
            for n in ("seq", *BODY_FIELDS, "prev_hash", "hash")
        )
    })
    ), {_NOTED_FROM_ARRAYS.format(after="")}
    UPDATE audit_chain_head SET seq = CAST(:head_seq AS bigint), hash = CAST(:head_hash AS text)
    WHERE id = 1
    """  # noqa: S608 - column names are constants, values are bound
)
# The records of several reads (app.audit.group), one statement that is its own
# transaction: the head locked, the records chained by the database in order (each hash
# over the one before, as ``_PG_APPEND`` does for one), inserted, their reads noted (only
# once the head is held: the deadlock argument of app.audit.flags.note_read), and the head
# moved to the last of them.
_PG_APPEND_CHAINED = text(
    f"""
    WITH RECURSIVE head AS (
        SELECT seq, CAST(hash AS text) AS hash FROM audit_chain_head WHERE id = 1 FOR UPDATE
    ), chain (n, seq, hash, prev_hash) AS (
        SELECT 0, seq, hash, CAST(NULL AS text) FROM head
        UNION ALL
        SELECT chain.n + 1, chain.seq + 1,
               encode(sha256(convert_to(
                   chain.hash || '|' || (chain.seq + 1)::text || '|'
                   || (CAST(:body AS text[]))[chain.n + 1], 'UTF8')), 'hex'),
               chain.hash
        FROM chain WHERE chain.n < cardinality(CAST(:body AS text[]))
    ), record AS (
        SELECT * FROM unnest({
        ", ".join(f"CAST(:{n} AS {_ARRAY_OF.get(n, 'text')}[])" for n in BODY_FIELDS)
    }) WITH ORDINALITY AS record({", ".join(BODY_FIELDS)}, n)
    ), appended AS (
        INSERT INTO audit_event (seq, {", ".join(BODY_FIELDS)}, prev_hash, hash)
        SELECT chain.seq, {", ".join(f"record.{n}" for n in BODY_FIELDS)},
               chain.prev_hash, chain.hash
        FROM record JOIN chain ON chain.n = record.n
        RETURNING seq, hash
    ), {_NOTED_FROM_ARRAYS.format(after="AND EXISTS (SELECT FROM appended)")}
    UPDATE audit_chain_head SET seq = newest.seq, hash = newest.hash
    FROM (SELECT seq, hash FROM appended ORDER BY seq DESC LIMIT 1) AS newest
    WHERE audit_chain_head.id = 1
    """  # noqa: S608 - column names are constants, values are bound
)


async def append(session: AsyncSession, record: Record) -> int:
    """Append ``record`` in the session's transaction; returns its ``seq``."""
    seq = await _write(session, record)
    _request_audit(session).appended.append(record)
    return seq


def recorded(session: AsyncSession) -> list[Record]:
    """What this request has recorded so far (appended, or queued for its commit)."""
    return list(_request_audit(session).appended)


def append_at_commit(session: AsyncSession, records: Sequence[Record]) -> None:
    """Append the records of a read (one item, or the items a page shows and the list's own
    record) in the request's transaction, immediately before its COMMIT.

    A read writes nothing else, so its records may wait until then; the chain head, which
    the append locks until the commit, is then held for the append and the commit only,
    not for the rest of the request (loading what is shown, building the answer, waiting
    for its turn on the event loop), during which every other request's append waited.
    They count as recorded from now on: a request that fails before the commit records
    them again after the rollback, marked not completed, as it does appended ones.
    """
    if not records:
        return
    state = _request_audit(session)
    if not state.deferred:
        before_commit(session, write_deferred, last=True)
    state.deferred.extend(records)
    state.appended.extend(records)


async def write_deferred(session: AsyncSession) -> None:
    """Write the records :func:`append_at_commit` queued (called just before the commit,
    after any other work before it).

    On PostgreSQL, if the request's transaction wrote nothing (a read), its records go to
    the group commit (app.audit.group): their flags are decided here, in the request's
    transaction; the request's COMMIT (of nothing) returns its connection to the pool, and
    the answer waits until the records are appended and committed on the connection of
    the group, together with those of the reads that finished meanwhile. If they cannot
    be, the request fails with a 503 and records them again, marked not completed, as
    after a rollback. Else (a change, SQLite, a test's savepoint-bound session) they are
    appended in the request's transaction.
    """
    state = _request_audit(session)
    records, state.deferred = state.deferred, []
    if not records:
        return
    with _failing_closed(records[0].action):
        group = await _group_for(session)
        if group is None:
            await _write_all(session, records)
            return
        at = datetime.now(UTC)
        connection = await session.connection()
        rows = [await _columns_for(session, connection, record, at) for record in records]
    bodies = [{**columns, "body": canonical_body(columns)} for columns in rows]

    async def append() -> None:
        with _failing_closed(records[0].action):
            try:
                await group.submit(bodies)
            except Exception:
                metrics.AUDIT_GROUP_FAILED_READS.inc()
                raise

    after_commit(session, append)


# Whether the transaction wrote anything: it has a transaction id only once it did.
_WROTE = text("SELECT pg_current_xact_id_if_assigned() IS NOT NULL")
_GROUP = "samverkan.audit.group"
# Records per statement of the group commit: a request's records are never split.
GROUP_MOST = 1000


Columns = dict[str, object]


async def _group_for(session: AsyncSession) -> GroupCommit[Columns] | None:
    """The group commit for this request's records, if they may go there."""
    database = database_of_session(session)
    if database is None or database.autocommit_engine is None:
        return None
    if session.new or session.dirty or session.deleted:
        return None
    if await in_transaction(session):  # (else nothing began one: nothing was written)
        [[wrote]] = await rows_of(session, _WROTE, {})
        if wrote:
            return None
    group: GroupCommit[Columns] | None = database.state.get(_GROUP)
    if group is None:
        group = database.state[_GROUP] = GroupCommit(
            database.autocommit_engine, _append_chained, most=GROUP_MOST
        )
    return group


async def _append_chained(connection: AsyncConnection, rows: list[Columns]) -> None:
    """Records (their columns and canonical text, in order) appended and committed by
    one statement (``_PG_APPEND_CHAINED``) on the group's connection."""
    await rows_alone(connection, _PG_APPEND_CHAINED, chained_params(rows))
    metrics.AUDIT_GROUP_RECORDS.observe(len(rows))


def chained_params(rows: Sequence[Columns]) -> dict[str, list[object]]:
    """The arrays ``_PG_APPEND_CHAINED`` takes: each column's values, and the bodies."""
    return {name: [row[name] for row in rows] for name in (*BODY_FIELDS, "body")}


async def _write_all(session: AsyncSession, records: Sequence[Record]) -> None:
    """The records in order, in one round trip on PostgreSQL.

    For the items a list shows, all about one individual: their flags are decided before
    any of them is written, which for one individual is what one-by-one appends decide.
    """
    if not records:
        return
    if len(records) == 1 or (await session.connection()).dialect.name != "postgresql":
        for record in records:
            await _write(session, record)
        return
    at = datetime.now(UTC)
    with _failing_closed(records[0].action):
        await session.flush()
        connection = await session.connection()
        rows = [await _columns_for(session, connection, record, at) for record in records]
        await _append_many(connection, rows)


async def _append_many(connection: AsyncConnection, rows: list[dict[str, object]]) -> None:
    """Records (their columns, in order) appended on PostgreSQL with one move of the head:
    the head locked, the hashes chained here, then one statement for all of them."""
    [(seq, prev_hash)] = await rows_of(connection, _PG_LOCK_HEAD, {})
    chained = []
    for columns in rows:
        seq += 1
        digest = record_hash(prev_hash, seq, canonical_body(columns))
        chained.append({**columns, "seq": seq, "prev_hash": prev_hash, "hash": digest})
        prev_hash = digest
    arrays = {name: [columns[name] for columns in chained] for name in chained[0]}
    await rows_of(connection, _PG_APPEND_MANY, {**arrays, "head_seq": seq, "head_hash": prev_hash})


@contextmanager
def _failing_closed(action: str) -> Iterator[None]:
    """A database error while appending fails the request with a 503 (fail closed)."""
    try:
        yield
    except SQLAlchemyError as exc:
        log.error("audit append failed", action=action, error_type=type(exc).__name__)
        raise AuditUnavailable(
            "The audit log could not be written; the request was not carried out."
        ) from exc


def remember_protected(session: AsyncSession, individual_id: uuid.UUID, protected: bool) -> None:
    """Spares the audit flags a lookup the request's policy facts already made."""
    flags.remember_protected(session.info.setdefault(_FLAG_FACTS, {}), individual_id, protected)


def remember_volume(
    session: AsyncSession, actor_user_id: uuid.UUID, individual_id: uuid.UUID, others: int
) -> None:
    """Spares the audit flags the volume lookup the request's facts statement made."""
    known = session.info.setdefault(_FLAG_FACTS, {})
    flags.remember_volume(known, actor_user_id, individual_id, others)


async def _columns_for(
    session: AsyncSession, connection: AsyncConnection, record: Record, at: datetime
) -> dict[str, object]:
    flags = await flags_for(
        connection,
        given=set(record.flags),
        decision=record.decision,
        at=at,
        actor_user_id=record.actor_user_id,
        individual_id=record.individual_id,
        known=session.info.setdefault(_FLAG_FACTS, {}),
    )
    return _columns(record, at, flags)


async def _write(session: AsyncSession, record: Record) -> int:
    at = datetime.now(UTC)
    with _failing_closed(record.action):
        # The work this record describes goes to the database first, in the same
        # transaction, so a failing write never leaves a record of work not done.
        await session.flush()
        connection = await session.connection()
        columns = await _columns_for(session, connection, record, at)
        body = canonical_body(columns)
        if connection.dialect.name == "postgresql":
            event = outbox.take(session)
            if event is None:
                [row] = await rows_of(connection, _PG_APPEND, {**columns, "body": body})
            else:
                [row] = await rows_of(
                    connection,
                    _PG_APPEND_ANNOUNCING,
                    {**columns, "body": body, **event.params("event_")},
                )
            seq = int(row[0])
        else:
            head = (
                await connection.execute(
                    select(AuditChainHead.seq, AuditChainHead.hash).where(AuditChainHead.id == 1)
                )
            ).one()
            seq = head[0] + 1
            digest = record_hash(head[1], seq, body)
            await connection.execute(
                insert(AuditEvent).values(seq=seq, prev_hash=head[1], hash=digest, **columns)
            )
            await connection.execute(
                update(AuditChainHead).where(AuditChainHead.id == 1).values(seq=seq, hash=digest)
            )
            event = outbox.take(session)
            if event is not None:  # the change's event, under the same write lock
                await connection.execute(insert(Event).values(**event.params()))
            await flags.note_read(
                connection,
                decision=record.decision,
                at=at,
                actor_user_id=record.actor_user_id,
                individual_id=record.individual_id,
                known=session.info.setdefault(_FLAG_FACTS, {}),
            )
    return seq


def append_whatever_the_outcome(
    session: AsyncSession,
    record: Record,
    *,
    only_if: Callable[[AsyncSession], Awaitable[bool]] | None = None,
) -> None:
    """Record a denial or failure even though the request's transaction will roll back;
    with ``only_if``, only when it says so, in the same transaction (a rate limit)."""

    async def write(target: AsyncSession) -> None:
        if only_if is None or await only_if(target):
            await _write(target, record)

    _request_audit(session).kept = True
    keep_whatever_the_outcome(session, write)


class AuditIncomplete(Exception):
    """A personal-data request was about to commit without any audit record: a bug in
    the route, and the request fails rather than go unrecorded."""


def expect_records(session: AsyncSession, attempt: Record) -> None:
    """Declare that this request works on personal data and must leave a record.

    ``attempt`` says who tried what (identifiers from the path only). It is written, as
    a refusal naming the status, if the request fails before it recorded anything; a
    request that would commit without any record is failed instead (fail closed).
    """
    state = _request_audit(session)
    state.attempt = attempt

    async def check(_: AsyncSession) -> None:
        if not state.appended and not state.kept:
            log.error("personal-data request without an audit record", action=attempt.action)
            raise AuditIncomplete(attempt.action)

    before_commit(session, check)


@dataclass(slots=True)
class _RequestAudit:
    """What one request session has recorded so far."""

    appended: list[Record] = field(default_factory=list)  # written, or to be at the commit
    deferred: list[Record] = field(default_factory=list)  # not written yet
    kept: bool = False  # a record written whatever the outcome (a denial) is registered
    attempt: Record | None = None


_STATE = "samverkan.audit"
_FLAG_FACTS = "samverkan.audit.flag_facts"


def _request_audit(session: AsyncSession) -> _RequestAudit:
    state = session.info.get(_STATE)
    if state is None:
        state = session.info[_STATE] = _RequestAudit()

        async def rerecord(fresh: AsyncSession, error: BaseException) -> None:
            await _record_failure(fresh, state, error)

        after_rollback(session, rerecord)
    return state


async def _record_failure(fresh: AsyncSession, state: _RequestAudit, error: BaseException) -> None:
    """After a request's rollback: its lost records again, or else one of the attempt."""
    status, slug = status_of(error)
    outcome = f"HTTP {status} ({slug})"
    for record in state.appended:
        reason = f"{record.reason}; " if record.reason else ""
        await _write(fresh, dataclasses.replace(record, reason=f"{reason}not completed: {outcome}"))
    if state.appended or state.kept or state.attempt is None:
        return
    await _write(
        fresh,
        dataclasses.replace(
            state.attempt,
            decision=Decision.DENY,
            policy_id=slug,
            reason=f"not carried out: {outcome}",
            flags=[flags.INVALID] if status in flags.INVALID_STATUSES else [],
        ),
    )
