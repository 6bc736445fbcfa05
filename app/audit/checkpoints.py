"""Signed checkpoints of the audit chain: ``(seq, hash, at)`` signed with an Ed25519 key.

The chain alone proves that no record was changed *unless* someone rewrote the log from
some record on and re-chained everything after it. A checkpoint kept where that someone
cannot reach (see docs/audit.md) pins the hash the chain had at ``seq``: verification then
finds a rewrite at or before any checkpoint, and a log rolled back to before the newest
checkpoint (a restored backup, a deleted tail) — the head is behind a signed ``seq``.

The signing key: ``SAMVERKAN_AUDIT_SIGNING_KEY_FILE`` (PKCS#8 PEM, required in prod); in dev
one is generated into the data directory.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from app.audit.chain import format_at
from app.audit.models import (
    AuditAnchor,
    AuditChainHead,
    AuditCheckpoint,
    AuditEvent,
    AuditReview,
)
from app.config import Environment, Settings
from app.security import dev_keys_lock


@dataclass(frozen=True, slots=True)
class Checkpoint:
    seq: int
    hash: str
    at: datetime
    signature: str
    key_id: str


CHECKPOINT = "samverkan-audit-checkpoint"
# An anchor (retention's cut) is signed under another prefix: a checkpoint's signature can
# never be passed off as an anchor's, which would let the log be cut at a checkpoint.
ANCHOR = "samverkan-audit-anchor"


def message(seq: int, chain_hash: str, at: datetime, purpose: str = CHECKPOINT) -> bytes:
    """What is signed: a fixed prefix, so a signature means nothing anywhere else."""
    return f"{purpose}|{seq}|{chain_hash}|{format_at(at)}".encode("ascii")


class CheckpointSigner:
    def __init__(self, settings: Settings) -> None:
        path = settings.audit_signing_key_file
        if path is None:
            if settings.env is Environment.PROD:
                raise RuntimeError("prod needs SAMVERKAN_AUDIT_SIGNING_KEY_FILE")
            path = _dev_key(settings.data_dir)
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise RuntimeError(f"{path} is not an Ed25519 private key")
        self._key = key
        self.public_key: Ed25519PublicKey = key.public_key()
        raw = self.public_key.public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self.key_id = hashlib.sha256(raw).hexdigest()[:16]

    @property
    def public_key_pem(self) -> str:
        return self.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()

    def sign(
        self, seq: int, chain_hash: str, at: datetime, purpose: str = CHECKPOINT
    ) -> Checkpoint:
        signature = self._key.sign(message(seq, chain_hash, at, purpose))
        return Checkpoint(
            seq=seq,
            hash=chain_hash,
            at=at,
            signature=base64.b64encode(signature).decode(),
            key_id=self.key_id,
        )

    def valid(self, checkpoint: Checkpoint, purpose: str = CHECKPOINT) -> bool:
        if checkpoint.key_id != self.key_id:
            return False
        try:
            self.public_key.verify(
                base64.b64decode(checkpoint.signature, validate=True),
                message(checkpoint.seq, checkpoint.hash, checkpoint.at, purpose),
            )
        except (InvalidSignature, ValueError):
            return False
        return True


def _dev_key(data_dir: Path) -> Path:
    path = data_dir / "audit-ed25519-private.pem"
    with dev_keys_lock(data_dir):  # workers starting together: one writes, none half-reads
        if not path.is_file():
            pem = Ed25519PrivateKey.generate().private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(pem)
    return path


async def create(connection: AsyncConnection, signer: CheckpointSigner) -> Checkpoint:
    """Sign the chain's head as it is now and keep the checkpoint."""
    head = (await connection.execute(select(AuditChainHead.seq, AuditChainHead.hash))).one()
    checkpoint = signer.sign(int(head[0]), str(head[1]), datetime.now(UTC))
    await connection.execute(
        insert(AuditCheckpoint).values(
            seq=checkpoint.seq,
            hash=checkpoint.hash,
            at=checkpoint.at,
            signature=checkpoint.signature,
            key_id=checkpoint.key_id,
        )
    )
    return checkpoint


def _signed(model: type[AuditCheckpoint | AuditAnchor]) -> tuple[Any, ...]:
    """A signed head's columns, in :class:`Checkpoint`'s order."""
    return (model.seq, model.hash, model.at, model.signature, model.key_id)


async def stored(connection: AsyncConnection) -> list[Checkpoint]:
    rows = await connection.execute(select(*_signed(AuditCheckpoint)).order_by(AuditCheckpoint.id))
    return [Checkpoint(*row) for row in rows]


async def problems(
    connection: AsyncConnection,
    signer: CheckpointSigner,
    checkpoints: Iterable[Checkpoint],
    head_seq: int,
    anchor: Checkpoint | None = None,
) -> list[str]:
    """What the checkpoints say is wrong with the log as it is now (empty: nothing). A
    checkpoint below the ``anchor`` (retention removed its record) still proves the log was
    not rolled back behind it; one at the anchor must name the anchor's hash."""
    found: list[str] = []
    cut = anchor.seq if anchor is not None else 0
    newest_at: datetime | None = None
    newest_seq = 0
    for checkpoint in sorted(checkpoints, key=lambda c: c.at):
        name = f"checkpoint seq {checkpoint.seq} of {format_at(checkpoint.at)}"
        if not signer.valid(checkpoint):
            found.append(f"{name}: signature does not verify with key {signer.key_id}")
            continue
        if checkpoint.seq < newest_seq and newest_at is not None:
            found.append(f"{name}: older head than an earlier checkpoint (rolled back)")
        newest_seq, newest_at = max(newest_seq, checkpoint.seq), checkpoint.at
        if checkpoint.seq == 0:
            continue
        if checkpoint.seq > head_seq:
            found.append(f"{name}: the log ends at seq {head_seq} (rolled back or cut)")
            continue
        if checkpoint.seq < cut:
            continue  # culled under a signed anchor: nothing left to compare it with
        recorded = (
            anchor.hash
            if anchor is not None and checkpoint.seq == cut
            else await connection.scalar(
                select(AuditEvent.hash).where(AuditEvent.seq == checkpoint.seq)
            )
        )
        if recorded != checkpoint.hash:
            found.append(f"{name}: the record there has another hash (rewritten)")
    return found


@dataclass(frozen=True, slots=True)
class Anchor:
    """Where the chain begins after retention: the signed hash of the last removed record."""

    signed: Checkpoint
    rule_id: str
    last_culled_at: datetime

    @property
    def seq(self) -> int:
        return self.signed.seq

    @property
    def hash(self) -> str:
        return self.signed.hash


async def newest_anchor(connection: AsyncConnection) -> Anchor | None:
    row = (
        await connection.execute(
            select(*_signed(AuditAnchor), AuditAnchor.rule_id, AuditAnchor.last_culled_at)
            .order_by(AuditAnchor.seq.desc(), AuditAnchor.id.desc())
            .limit(1)
        )
    ).one_or_none()
    if row is None:
        return None
    return Anchor(Checkpoint(*row[:5]), rule_id=row[5], last_culled_at=row[6])


async def cut(
    connection: AsyncConnection, signer: CheckpointSigner, *, through: int, rule_id: str
) -> Anchor:
    """Remove the records up to ``through`` (and their review marks) behind a signed anchor
    of record ``through``'s hash, in the caller's transaction. The database refuses the
    deletes without the anchor row (migration 0018)."""
    row = (
        await connection.execute(
            select(AuditEvent.hash, AuditEvent.at).where(AuditEvent.seq == through)
        )
    ).one()
    anchor = Anchor(
        signer.sign(through, row[0], datetime.now(UTC), ANCHOR),
        rule_id=rule_id,
        last_culled_at=row[1],
    )
    await connection.execute(
        insert(AuditAnchor).values(
            seq=through,
            hash=anchor.hash,
            at=anchor.signed.at,
            signature=anchor.signed.signature,
            key_id=anchor.signed.key_id,
            rule_id=rule_id,
            last_culled_at=anchor.last_culled_at,
        )
    )
    await connection.execute(delete(AuditReview).where(AuditReview.seq <= through))
    await connection.execute(delete(AuditEvent).where(AuditEvent.seq <= through))
    return anchor
