"""Signed checkpoints catch what the chain alone cannot: a log rewritten from some record on
and re-chained, a log rolled back to an older head, a forged checkpoint."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import httpx
from fastapi import FastAPI
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app.audit import checkpoints
from app.audit import writer as audit
from app.audit.chain import canonical_body, record_hash, verify_chain
from app.audit.checkpoints import Checkpoint, CheckpointSigner
from app.audit.models import AuditEvent
from app.audit.service import verify_all
from tests.conftest import make_settings, migrated_database
from tests.scenarios import World, call


async def _append(session: AsyncSession, count: int) -> None:
    for i in range(count):
        await audit.append(session, audit.Record(action="test.append", resource_id=str(i)))
    await session.flush()


async def _unprotect(connection: AsyncConnection, backend: str) -> None:
    """What an attacker with owner rights does first."""
    if backend == "postgresql":
        for table in ("audit_event", "audit_chain_head", "audit_checkpoint"):
            await connection.execute(text(f"ALTER TABLE {table} DISABLE TRIGGER USER"))
    else:
        for trigger in (
            "audit_event_no_update",
            "audit_event_delete_below_anchor",
            "audit_chain_head_forward_only",
            "audit_checkpoint_no_delete",
        ):
            await connection.execute(text(f"DROP TRIGGER {trigger}"))


async def _rewrite_and_rechain(connection: AsyncConnection, seq: int) -> None:
    """Change record ``seq`` and recompute every hash from there on, head included: the
    chain verifies again afterwards."""
    await connection.execute(
        text("UPDATE audit_event SET action = 'innocent' WHERE seq = :seq"), {"seq": seq}
    )
    rows = (
        (await connection.execute(select(AuditEvent.__table__).order_by(AuditEvent.seq)))
        .mappings()
        .all()
    )
    previous = "0" * 64
    for row in rows:
        if row["seq"] >= seq:
            digest = record_hash(previous, row["seq"], canonical_body(row))
            await connection.execute(
                text("UPDATE audit_event SET prev_hash = :p, hash = :h WHERE seq = :s"),
                {"p": previous, "h": digest, "s": row["seq"]},
            )
            previous = digest
        else:
            previous = row["hash"]
    await connection.execute(
        text("UPDATE audit_chain_head SET hash = :h WHERE id = 1"), {"h": previous}
    )


def _signer(tmp_path: Path) -> CheckpointSigner:
    return CheckpointSigner(make_settings("sqlite+aiosqlite://", data_dir=tmp_path))


async def test_a_rewritten_and_rechained_log_is_caught_by_a_checkpoint(
    session: AsyncSession, connection: AsyncConnection, backend: str, tmp_path: Path
) -> None:
    signer = _signer(tmp_path)
    await _append(session, 5)
    checkpoint = await checkpoints.create(connection, signer)
    await _append(session, 3)
    assert (await verify_all(connection, signer)).ok
    await _unprotect(connection, backend)
    await _rewrite_and_rechain(connection, checkpoint.seq - 2)
    assert (await verify_chain(connection)).ok  # the chain alone is fooled
    result = await verify_all(connection, signer)
    assert not result.ok
    assert result.checkpoints_checked == 1
    [problem] = result.checkpoint_problems
    assert "rewritten" in problem


async def test_a_rolled_back_log_is_caught_by_a_checkpoint_kept_elsewhere(
    session: AsyncSession, connection: AsyncConnection, backend: str, tmp_path: Path
) -> None:
    signer = _signer(tmp_path)
    await _append(session, 4)
    shipped = await checkpoints.create(connection, signer)  # and sent off-site
    await _append(session, 2)
    # the attacker restores an older state: the tail, the head and the stored checkpoint
    await _unprotect(connection, backend)
    keep = shipped.seq - 2
    await connection.execute(text("DELETE FROM audit_event WHERE seq > :s"), {"s": keep})
    await connection.execute(text("DELETE FROM audit_checkpoint"))
    kept_hash = await connection.scalar(select(AuditEvent.hash).where(AuditEvent.seq == keep))
    await connection.execute(
        text("UPDATE audit_chain_head SET seq = :s, hash = :h WHERE id = 1"),
        {"s": keep, "h": kept_hash},
    )
    assert (await verify_all(connection, signer)).ok  # nothing left in the database says so
    result = await verify_all(connection, signer, [shipped])
    assert not result.ok
    assert "rolled back" in result.checkpoint_problems[0]


async def test_forged_or_reordered_checkpoints_are_reported(
    session: AsyncSession, connection: AsyncConnection, tmp_path: Path
) -> None:
    signer = _signer(tmp_path)
    await _append(session, 3)
    real = await checkpoints.create(connection, signer)
    forged = Checkpoint(real.seq, "f" * 64, real.at, real.signature, real.key_id)
    other_key = _signer(tmp_path / "elsewhere").sign(real.seq, real.hash, real.at)
    garbage = Checkpoint(real.seq, real.hash, real.at, base64.b64encode(b"x").decode(), real.key_id)
    result = await verify_all(connection, signer, [forged, other_key, garbage])
    assert len(result.checkpoint_problems) == 3
    assert all("signature" in p for p in result.checkpoint_problems)
    later_but_older = signer.sign(real.seq - 1, "0" * 64, real.at.replace(year=real.at.year + 1))
    result = await verify_all(connection, signer, [later_but_older])
    assert any("rolled back" in p for p in result.checkpoint_problems)


async def test_checkpoints_over_the_api(
    client: httpx.AsyncClient, app: FastAPI, world: World, connection: AsyncConnection
) -> None:
    refused = await call(client, app, world.soc_coordinator, "POST", "/audit/checkpoints")
    assert refused.status_code == 403
    made = await call(client, app, world.soc_auditor, "POST", "/audit/checkpoints")
    assert made.status_code == 201, made.text
    body = made.json()
    head = await connection.scalar(text("SELECT seq FROM audit_chain_head"))
    assert body["seq"] == head  # it covers the record of its own making
    signer: CheckpointSigner = app.state.checkpoint_signer
    assert signer.valid(
        Checkpoint(
            body["seq"],
            body["hash"],
            datetime.fromisoformat(body["at"]),
            body["signature"],
            body["key_id"],
        )
    )
    listed = await call(client, app, world.soc_auditor, "GET", "/audit/checkpoints")
    assert listed.json()["items"][0]["seq"] == body["seq"]
    verified = await call(client, app, world.soc_auditor, "GET", "/audit/verify")
    assert verified.json()["ok"] is True
    assert verified.json()["checkpoints_checked"] == 1


def _cli(url: str, data_dir: Path, *args: str) -> tuple[int, str]:
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "audit", *args],
        capture_output=True,
        text=True,
        env={
            "PATH": "/usr/bin:/bin",
            "SAMVERKAN_DATABASE_URL": url,
            "SAMVERKAN_DATA_DIR": str(data_dir),
        },
        timeout=120,
        check=False,
    )
    return result.returncode, result.stdout


async def test_the_checkpoint_command_for_cron_and_verify_with_a_shipped_file(
    backend: str, tmp_path: Path
) -> None:
    async with migrated_database(backend, tmp_path) as (url, database):
        async with database.sessionmaker() as session:
            await _append(session, 3)
            await session.commit()
        code, out = await asyncio.to_thread(_cli, url, tmp_path, "checkpoint")
        assert code == 0, out
        shipped = tmp_path / "shipped.jsonl"
        shipped.write_text(out)
        assert json.loads(out)["seq"] == 4  # three records and its own
        code, out = await asyncio.to_thread(
            _cli, url, tmp_path, "verify", "--checkpoints", str(shipped)
        )
        report = json.loads(out)
        assert (code, report["ok"], report["checkpoints_checked"]) == (0, True, 2)
