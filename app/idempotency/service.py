"""Idempotency keys on creating requests (API.md: the same key and body within 24 h return
the first answer, same status and id; the same key with another body is a 422).

A request with a key first *claims* it: one INSERT .. ON CONFLICT in the request's
transaction. On PostgreSQL a second request with the same key blocks on that row until
the first commits (then it replays the stored answer) or rolls back (then it does the work
itself): never both. On SQLite the write lock serialises the two. The answer is stored
just before COMMIT, in the same transaction as the work: a key is never bound to work that
did not commit, nor work committed without its answer.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.encoders import jsonable_encoder
from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit import writer as audit
from app.auth.actor import Actor
from app.db import before_commit
from app.errors import Conflict, ValidationFailed
from app.idempotency.models import IdempotencyKey

KEEP_FOR = timedelta(hours=24)
MAX_KEY_LENGTH = 255
HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
REPLAY_ACTION = "idempotency.replay"
_CLAIM = "samverkan.idempotency.claim"


class Replay(Exception):
    """The first answer to this key; rendered as it was (app.idempotency.deps)."""

    def __init__(self, status_code: int, answer: Any) -> None:
        super().__init__(status_code)
        self.status_code = status_code
        self.answer = answer


@dataclass(slots=True)
class Claim:
    caller_id: uuid.UUID
    key: str
    action: str
    status_code: int
    answer: Any = None
    answered: bool = False


def request_hash(method: str, path: str, body: bytes) -> str:
    """What "the same request" means: method, path and the body; a JSON body by its content
    (key order and white space aside), anything else by its exact bytes."""
    digest = hashlib.sha256(f"{method} {path}\n".encode())
    try:
        content = json.loads(body) if body else None
    except ValueError:
        digest.update(b"bytes\n" + body)
    else:
        digest.update(b"json\n" + json.dumps(content, sort_keys=True).encode())
    return digest.hexdigest()


def check_key(key: str) -> str:
    if not 1 <= len(key) <= MAX_KEY_LENGTH or not all(0x21 <= ord(c) <= 0x7E for c in key):
        raise ValidationFailed.for_field(
            f"header.{HEADER}",
            f"An {HEADER} is 1-{MAX_KEY_LENGTH} visible ASCII characters (a UUID will do).",
            "idempotency_key_invalid",
        )
    return key


def _insert(dialect: str) -> Any:
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


async def claim_or_replay(
    session: AsyncSession,
    actor: Actor,
    *,
    key: str,
    digest: str,
    action: str,
    status_code: int,
) -> None:
    """Claim ``key`` for this request, or raise :class:`Replay` with the first answer
    (recorded as a replay), or a 422/409 if the key cannot serve this request."""
    now = datetime.now(UTC)
    table = IdempotencyKey.__table__
    dialect = (await session.connection()).dialect.name
    fresh = {
        "request_hash": digest,
        "created_at": now,
        "status_code": None,
        "answer": None,
        "action": None,
        "resource_type": None,
        "resource_id": None,
        "case_id": None,
        "individual_id": None,
    }
    statement = (
        _insert(dialect)(table)
        .values(caller_id=actor.id, key=key, **fresh)
        .on_conflict_do_update(
            index_elements=[table.c.caller_id, table.c.key],
            set_=fresh,
            where=table.c.created_at <= now - KEEP_FOR,  # an expired key is free again
        )
        .returning(table.c.key)
    )
    if (await session.execute(statement)).first() is not None:
        claim = Claim(caller_id=actor.id, key=key, action=action, status_code=status_code)
        session.info[_CLAIM] = claim
        before_commit(session, _store_answer)
        return
    stored = (
        await session.execute(
            select(IdempotencyKey).where(
                IdempotencyKey.caller_id == actor.id, IdempotencyKey.key == key
            )
        )
    ).scalar_one_or_none()
    if stored is None or stored.status_code is None or stored.answer is None:
        raise Conflict(f"A request with this {HEADER} is in progress; retry it shortly.")
    if stored.request_hash != digest:
        raise ValidationFailed.for_field(
            f"header.{HEADER}",
            f"This {HEADER} was used for another request; use a new key for a new request.",
            "idempotency_key_reused",
        )
    audit.append_whatever_the_outcome(
        session,
        actor.record(
            REPLAY_ACTION,
            resource_type=stored.resource_type,
            resource_id=stored.resource_id,
            case_id=stored.case_id,
            individual_id=stored.individual_id,
            reason=f"the answer of {stored.action} at {stored.created_at.isoformat()}, again",
        ),
    )
    raise Replay(stored.status_code, json.loads(stored.answer))


async def forget_expired(session: AsyncSession) -> int:
    """Remove keys past their 24 hours (a stored answer can hold names): the worker's
    chore, every round, so each round removes what expired since the last. Returns how
    many went."""
    result = await session.execute(
        delete(IdempotencyKey).where(IdempotencyKey.created_at <= datetime.now(UTC) - KEEP_FOR)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def remember_answer(session: AsyncSession, answer: Any) -> None:
    """The endpoint's return value, for a claimed key (app.idempotency.deps.creates)."""
    claim: Claim | None = session.info.get(_CLAIM)
    if claim is not None:
        claim.answer = jsonable_encoder(answer)
        claim.answered = True


async def _store_answer(session: AsyncSession) -> None:
    """Just before COMMIT: the answer, and what the first request recorded, with the key."""
    claim: Claim = session.info[_CLAIM]
    if not claim.answered:
        raise RuntimeError(f"{claim.action}: an idempotent route must be wrapped by creates()")
    first = next((r for r in audit.recorded(session) if r.action == claim.action), None)
    fields = dataclasses.asdict(first) if first is not None else {}
    row = await session.get(IdempotencyKey, (claim.caller_id, claim.key))
    assert row is not None  # claimed in this transaction
    row.status_code = claim.status_code
    row.answer = json.dumps(claim.answer, separators=(",", ":"))
    row.action = claim.action
    row.resource_type = fields.get("resource_type")
    row.resource_id = fields.get("resource_id")
    row.case_id = fields.get("case_id")
    row.individual_id = fields.get("individual_id")
    await session.flush()
