"""The auditor role of docs/audit.md, applied exactly as written: it reads the log and who
is who, and nothing else; it changes nothing."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app.audit import writer as audit

DOC = Path(__file__).resolve().parent.parent / "docs" / "audit.md"


def _auditor_role_sql(role: str) -> list[str]:
    block = re.search(
        r"<!-- auditor-role -->\s*```sql\n(.*?)```\s*<!-- /auditor-role -->",
        DOC.read_text(encoding="utf-8"),
        re.S,
    )
    assert block, "docs/audit.md lost its auditor-role block"
    sql = block.group(1).replace("samverkan_auditor", role)
    return [s.strip() for s in sql.split(";") if s.strip()]


@pytest.mark.only_backend("postgresql")
async def test_the_documented_auditor_role_reads_the_log_and_nothing_else(
    session: AsyncSession, connection: AsyncConnection
) -> None:
    await audit.append(session, audit.Record(action="test.for_the_auditor"))
    await session.flush()
    role = f"samverkan_auditor_{uuid.uuid4().hex[:8]}"
    for statement in _auditor_role_sql(role):
        await connection.execute(text(statement))
    await connection.execute(text(f"SET LOCAL ROLE {role}"))
    assert await connection.scalar(text("SELECT count(*) FROM audit_event")) >= 1
    assert await connection.scalar(text("SELECT count(display_name) FROM app_user")) >= 0
    for statement in (
        "SELECT * FROM entry_version",
        "SELECT * FROM individual",
        "SELECT password_hash FROM app_user",
        "SELECT * FROM consent_document",
        "INSERT INTO audit_review (seq, reviewer_user_id, reviewed_at, note, review_seq) "
        "VALUES (1, gen_random_uuid(), now(), 'x', 1)",
        "UPDATE audit_event SET action = 'x'",
        "DELETE FROM audit_checkpoint",
    ):
        with pytest.raises(DBAPIError, match="permission denied"):
            async with connection.begin_nested():
                await connection.execute(text(statement))
