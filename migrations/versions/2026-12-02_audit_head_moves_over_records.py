"""The audit chain head may move over several records in one statement, if they are there.

A page's read records (app.audit.writer) are appended by one statement that inserts them all
and moves the head once. Until now the head moved forward by exactly one record per
statement (``audit_head_forward_only``); it now moves forward by one as before, or by more
when every record it moves over is in ``audit_event`` and the newest of them carries the
hash the head is given. The second is checked after the statement (an AFTER trigger sees
the records the same statement inserted; a BEFORE trigger does not), and only for a move
by more than one, so a single append costs what it did. Moving back, sideways (the hash
alone) or over records that are not there is still refused, for every role.

SQLite's writer appends one record at a time; its trigger is unchanged.

Revision ID: 0019_audit_head_moves
Revises: 0018_retention
Create Date: 2026-12-02
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0019_audit_head_moves"
down_revision: str | None = "0018_retention"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _forward_only(condition: str, message: str) -> str:
    return f"""
    CREATE OR REPLACE FUNCTION audit_head_forward_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP <> 'UPDATE' OR NEW.id <> OLD.id OR {condition} THEN
            RAISE EXCEPTION '{message}' USING ERRCODE = 'insufficient_privilege';
        END IF;
        RETURN NEW;
    END
    $$
    """


_POSTGRES_UP = (
    _forward_only("NEW.seq <= OLD.seq", "audit_chain_head only moves forward"),
    """
    CREATE FUNCTION audit_head_over_records() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF (SELECT count(*) FROM audit_event WHERE seq > OLD.seq AND seq <= NEW.seq)
               <> NEW.seq - OLD.seq
           OR NOT EXISTS (SELECT 1 FROM audit_event WHERE seq = NEW.seq AND hash = NEW.hash)
        THEN
            RAISE EXCEPTION 'audit_chain_head only moves forward over records written'
                USING ERRCODE = 'insufficient_privilege';
        END IF;
        RETURN NULL;
    END
    $$
    """,
    """
    CREATE TRIGGER audit_chain_head_over_records AFTER UPDATE ON audit_chain_head
    FOR EACH ROW WHEN (NEW.seq > OLD.seq + 1) EXECUTE FUNCTION audit_head_over_records()
    """,
)
_POSTGRES_DOWN = (
    "DROP TRIGGER IF EXISTS audit_chain_head_over_records ON audit_chain_head",
    "DROP FUNCTION IF EXISTS audit_head_over_records()",
    _forward_only("NEW.seq <> OLD.seq + 1", "audit_chain_head only moves forward by one record"),
)


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for statement in _POSTGRES_UP:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for statement in _POSTGRES_DOWN:
            op.execute(statement)
