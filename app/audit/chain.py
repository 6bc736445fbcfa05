"""The hash chain: canonical serialisation, record hashes and verification.

``hash = sha256(prev_hash + "|" + seq + "|" + body)`` where ``body`` is the canonical
JSON of every other field (sorted keys, no spaces, ASCII only). PostgreSQL computes the
same expression in SQL when it appends (app.audit.writer); verification recomputes it
here from the stored columns, so a changed field, a removed record or a re-ordered
record all break the chain at the first record affected.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from app.audit.models import GENESIS_HASH, AuditChainHead, AuditEvent

BODY_FIELDS = (
    "at",
    "actor_user_id",
    "actor_client_id",
    "actor_agency_id",
    "actor_roles",
    "action",
    "resource_type",
    "resource_id",
    "individual_id",
    "case_id",
    "decision",
    "basis",
    "policy_id",
    "consent_id",
    "legal_basis",
    "reason",
    "request_id",
    "client_address",
    "flags",
)
VERIFY_BATCH = 5000


def format_at(value: datetime) -> str:
    """UTC with microseconds; a naive value (SQLite) is UTC already."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _canonical_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return format_at(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


# One encoder, reused: json.dumps with non-default options builds a new one per call.
_ENCODE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True).encode
_SORTED_FIELDS = tuple(sorted(BODY_FIELDS))
_POSITION = {name: BODY_FIELDS.index(name) for name in _SORTED_FIELDS}


def canonical_body(fields: Mapping[Any, Any]) -> str:
    """Sorted keys, no spaces, ASCII only: the same text whoever computes it."""
    return _ENCODE({name: _canonical_value(fields.get(name)) for name in _SORTED_FIELDS})


_AT = BODY_FIELDS.index("at")
_UUIDS = tuple(
    BODY_FIELDS.index(name)
    for name in (
        "actor_user_id",
        "actor_client_id",
        "actor_agency_id",
        "individual_id",
        "case_id",
        "consent_id",
    )
)


def _canonical_body_of_row(values: Sequence[Any]) -> str:
    """canonical_body for a row of BODY_FIELDS in order (the verifier's fast path): only the
    time and the uuid columns need converting, and their positions are known."""
    row = list(values)
    row[_AT] = format_at(row[_AT])
    for i in _UUIDS:
        if row[i] is not None:
            row[i] = str(row[i])
    return _ENCODE({name: row[_POSITION[name]] for name in _SORTED_FIELDS})


def record_hash(prev_hash: str, seq: int, body: str) -> str:
    return hashlib.sha256(f"{prev_hash}|{seq}|{body}".encode("ascii")).hexdigest()


@dataclass(frozen=True, slots=True)
class VerifyResult:
    ok: bool
    checked: int
    first_bad_seq: int | None
    head_seq: int
    head_hash: str
    problem: str | None = None


async def _records(connection: AsyncConnection) -> AsyncIterator[Sequence[Any]]:
    """Rows of (seq, *BODY_FIELDS, prev_hash, hash) as plain tuples, in batches."""
    columns = [getattr(AuditEvent, name) for name in ("seq", *BODY_FIELDS, "prev_hash", "hash")]
    last = 0
    while True:
        rows = (
            await connection.execute(
                select(*columns)
                .where(AuditEvent.seq > last)
                .order_by(AuditEvent.seq)
                .limit(VERIFY_BATCH)
            )
        ).all()
        if not rows:
            return
        for row in rows:
            yield row
        last = rows[-1][0]


async def verify_chain(connection: AsyncConnection) -> VerifyResult:
    """Recompute every record's hash in order; report the first record that does not fit."""
    expected_prev, expected_seq, checked = GENESIS_HASH, 1, 0
    last = len(BODY_FIELDS) + 1
    async for row in _records(connection):
        seq, prev_hash, stored_hash = row[0], row[last], row[last + 1]
        problem = None
        if seq != expected_seq:
            problem = f"gap: expected seq {expected_seq}, found {seq}"
        elif prev_hash != expected_prev:
            problem = "prev_hash does not match the previous record"
        elif record_hash(prev_hash, seq, _canonical_body_of_row(row[1:last])) != stored_hash:
            problem = "record content does not match its hash"
        if problem is not None:
            head_seq, head_hash = await _head(connection)
            return VerifyResult(False, checked, expected_seq, head_seq, head_hash, problem)
        expected_prev, expected_seq, checked = stored_hash, seq + 1, checked + 1
    head_seq, head_hash = await _head(connection)
    if (head_seq, head_hash) != (expected_seq - 1, expected_prev):
        problem = "chain head does not match the newest record"
        return VerifyResult(False, checked, expected_seq, head_seq, head_hash, problem)
    return VerifyResult(True, checked, None, head_seq, head_hash)


async def _head(connection: AsyncConnection) -> tuple[int, str]:
    row = (await connection.execute(select(AuditChainHead.seq, AuditChainHead.hash))).one_or_none()
    return (row[0], row[1]) if row else (0, GENESIS_HASH)
