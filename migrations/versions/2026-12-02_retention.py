"""Retention (gallring): tombstones, batches, legal holds, and the audit chain's anchor.

The audit log stays append-only with one exception: a record at or below the newest
``audit_anchor`` (a signed statement of the hash the remaining chain begins from) may be
deleted, with its review mark. The database checks it, row by row, for every role; the app
role still has no DELETE privilege on ``audit_event`` (``samverkan retention run`` runs as
the owner, as migrations do). ``audit_anchor`` itself is append-only.

Revision ID: 0018_retention
Revises: 0017_individual_sex
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018_retention"
down_revision: str | None = "0017_individual_sex"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BELOW_ANCHOR = "(SELECT coalesce(max(seq), 0) FROM audit_anchor)"

_POSTGRES_UP = (
    "DROP TRIGGER IF EXISTS audit_event_no_update_delete ON audit_event",
    "DROP TRIGGER IF EXISTS audit_review_no_update_delete ON audit_review",
    f"""
    CREATE FUNCTION audit_delete_below_anchor() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF OLD.seq > {_BELOW_ANCHOR} THEN
            RAISE EXCEPTION '% is append-only: DELETE above the anchor refused', TG_TABLE_NAME
                USING ERRCODE = 'insufficient_privilege';
        END IF;
        RETURN OLD;
    END
    $$
    """,
    *(
        statement
        for table in ("audit_event", "audit_review")
        for statement in (
            f"CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION audit_refuse_change()",
            f"CREATE TRIGGER {table}_delete_below_anchor BEFORE DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION audit_delete_below_anchor()",
        )
    ),
    "CREATE TRIGGER audit_anchor_no_update_delete BEFORE UPDATE OR DELETE ON audit_anchor "
    "FOR EACH ROW EXECUTE FUNCTION audit_refuse_change()",
    "CREATE TRIGGER audit_anchor_no_truncate BEFORE TRUNCATE ON audit_anchor "
    "FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change()",
)
_POSTGRES_DOWN = (
    "DROP TRIGGER IF EXISTS audit_anchor_no_truncate ON audit_anchor",
    "DROP TRIGGER IF EXISTS audit_anchor_no_update_delete ON audit_anchor",
    *(
        statement
        for table in ("audit_event", "audit_review")
        for statement in (
            f"DROP TRIGGER IF EXISTS {table}_delete_below_anchor ON {table}",
            f"DROP TRIGGER IF EXISTS {table}_no_update ON {table}",
            f"CREATE TRIGGER {table}_no_update_delete BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION audit_refuse_change()",
        )
    ),
    "DROP FUNCTION IF EXISTS audit_delete_below_anchor()",
)
_SQLITE_UP = (
    "DROP TRIGGER IF EXISTS audit_event_no_delete",
    "DROP TRIGGER IF EXISTS audit_review_no_delete",
    *(
        f"CREATE TRIGGER {table}_delete_below_anchor BEFORE DELETE ON {table} "
        f"WHEN OLD.seq > {_BELOW_ANCHOR} "
        f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: DELETE above the anchor refused'); "
        "END"
        for table in ("audit_event", "audit_review")
    ),
    *(
        f"CREATE TRIGGER audit_anchor_no_{name.lower()} BEFORE {name} ON audit_anchor "
        f"BEGIN SELECT RAISE(ABORT, 'audit_anchor is append-only: {name} refused'); END"
        for name in ("UPDATE", "DELETE")
    ),
)
_SQLITE_DOWN = (
    "DROP TRIGGER IF EXISTS audit_anchor_no_update",
    "DROP TRIGGER IF EXISTS audit_anchor_no_delete",
    *(
        statement
        for table in ("audit_event", "audit_review")
        for statement in (
            f"DROP TRIGGER IF EXISTS {table}_delete_below_anchor",
            f"CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table} "
            f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: DELETE refused'); END",
        )
    ),
)


def upgrade() -> None:
    op.create_table(
        "audit_anchor",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("signature", sa.String(length=200), nullable=False),
        sa.Column("key_id", sa.String(length=64), nullable=False),
        sa.Column("rule_id", sa.String(length=60), nullable=False),
        sa.Column("last_culled_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_anchor")),
    )
    with op.batch_alter_table("audit_anchor", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_anchor_seq"), ["seq"], unique=False)
    op.create_table(
        "retention_tombstone",
        sa.Column("resource_type", sa.String(length=32), nullable=False),
        sa.Column("resource_id", sa.String(length=64), nullable=False),
        sa.Column("individual_id", sa.Uuid(), nullable=True),
        sa.Column("case_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("trigger_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("culled_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rule_id", sa.String(length=60), nullable=False),
        sa.Column("batch_id", sa.Uuid(), nullable=False),
        sa.PrimaryKeyConstraint(
            "resource_type", "resource_id", name=op.f("pk_retention_tombstone")
        ),
    )
    with op.batch_alter_table("retention_tombstone", schema=None) as batch_op:
        batch_op.create_index("ix_retention_tombstone_individual_id", ["individual_id"])
        batch_op.create_index("ix_retention_tombstone_case_id", ["case_id"])
    op.create_table(
        "retention_batch",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("run_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("counts", sa.JSON(), nullable=False),
        sa.Column("rule_ids", sa.String(length=400), nullable=False),
        sa.Column("anchor_seq", sa.BigInteger(), nullable=True),
        sa.Column("audit_seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_retention_batch")),
    )
    with op.batch_alter_table("retention_batch", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_retention_batch_run_id"), ["run_id"], unique=False)
    op.create_table(
        "legal_hold",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("individual_id", sa.Uuid(), nullable=False),
        sa.Column("case_id", sa.Uuid(), nullable=True),
        sa.Column("agency_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("requested_by", sa.Uuid(), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_by", sa.Uuid(), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decision_note", sa.Text(), nullable=True),
        sa.Column("lift_reason", sa.Text(), nullable=True),
        sa.Column("lift_requested_by", sa.Uuid(), nullable=True),
        sa.Column("lift_requested_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lifted_by", sa.Uuid(), nullable=True),
        sa.Column("lifted_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["agency_id"], ["agency.id"], name=op.f("fk_legal_hold_agency_id_agency")
        ),
        sa.ForeignKeyConstraint(
            ["case_id"], ["case_file.id"], name=op.f("fk_legal_hold_case_id_case_file")
        ),
        sa.ForeignKeyConstraint(
            ["individual_id"],
            ["individual.id"],
            name=op.f("fk_legal_hold_individual_id_individual"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_legal_hold")),
    )
    with op.batch_alter_table("legal_hold", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_legal_hold_agency_id"), ["agency_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_legal_hold_case_id"), ["case_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_legal_hold_individual_id"), ["individual_id"], unique=False
        )
    # Deleting a case's events by case, and the outbox by time.
    with op.batch_alter_table("event", schema=None) as batch_op:
        batch_op.create_index("ix_event_occurred_at", ["occurred_at"])
    postgres = op.get_bind().dialect.name == "postgresql"
    for statement in _POSTGRES_UP if postgres else _SQLITE_UP:
        op.execute(statement)


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for statement in _POSTGRES_DOWN if postgres else _SQLITE_DOWN:
        op.execute(statement)
    with op.batch_alter_table("event", schema=None) as batch_op:
        batch_op.drop_index("ix_event_occurred_at")
    op.drop_table("legal_hold")
    op.drop_table("retention_batch")
    op.drop_table("retention_tombstone")
    op.drop_table("audit_anchor")
