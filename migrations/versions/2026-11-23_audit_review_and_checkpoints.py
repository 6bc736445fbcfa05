"""Auditors' review marks and signed checkpoints; indexes for every audit search path.

Review marks and checkpoints are append-only like the log itself (triggers on both
backends; on PostgreSQL also against TRUNCATE).

Revision ID: 0006_audit_review
Revises: 0005_actions
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_audit_review"
down_revision: str | None = "0005_actions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_APPEND_ONLY = ("audit_review", "audit_checkpoint")


def _protect(table: str, *, postgres: bool) -> list[str]:
    if postgres:  # audit_refuse_change() comes from 0002_accounts_audit
        return [
            f"CREATE TRIGGER {table}_no_update_delete BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION audit_refuse_change()",
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change()",
        ]
    return [
        f"CREATE TRIGGER {table}_no_{op_name.lower()} BEFORE {op_name} ON {table} "
        f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: {op_name} refused'); END"
        for op_name in ("UPDATE", "DELETE")
    ]


def _unprotect(table: str, *, postgres: bool) -> list[str]:
    if postgres:
        return [
            f"DROP TRIGGER IF EXISTS {table}_no_update_delete ON {table}",
            f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}",
        ]
    return [f"DROP TRIGGER IF EXISTS {table}_no_{o}" for o in ("update", "delete")]


def upgrade() -> None:
    op.create_table(
        "audit_checkpoint",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("signature", sa.String(length=200), nullable=False),
        sa.Column("key_id", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_checkpoint")),
    )
    with op.batch_alter_table("audit_checkpoint", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_checkpoint_seq"), ["seq"], unique=False)

    op.create_table(
        "audit_review",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("reviewer_user_id", sa.Uuid(), nullable=False),
        sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("review_seq", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["reviewer_user_id"],
            ["app_user.id"],
            name=op.f("fk_audit_review_reviewer_user_id_app_user"),
        ),
        sa.ForeignKeyConstraint(
            ["seq"], ["audit_event.seq"], name=op.f("fk_audit_review_seq_audit_event")
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit_review")),
    )
    # Plain CREATE INDEX (no batch copy of the append-only table on SQLite).
    op.create_index("ix_audit_event_action_seq", "audit_event", ["action", "seq"])
    op.create_index("ix_audit_event_actor_agency_id_seq", "audit_event", ["actor_agency_id", "seq"])
    op.create_index("ix_audit_event_actor_user_id_at", "audit_event", ["actor_user_id", "at"])
    op.create_index(
        "ix_audit_event_flagged_seq",
        "audit_event",
        ["seq"],
        postgresql_where=sa.text("flags <> ''"),
        sqlite_where=sa.text("flags <> ''"),
    )
    postgres = op.get_bind().dialect.name == "postgresql"
    for table in _APPEND_ONLY:
        for statement in _protect(table, postgres=postgres):
            op.execute(statement)


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for table in _APPEND_ONLY:
        for statement in _unprotect(table, postgres=postgres):
            op.execute(statement)
    op.drop_index("ix_audit_event_flagged_seq", table_name="audit_event")
    op.drop_index("ix_audit_event_actor_user_id_at", table_name="audit_event")
    op.drop_index("ix_audit_event_actor_agency_id_seq", table_name="audit_event")
    op.drop_index("ix_audit_event_action_seq", table_name="audit_event")

    op.drop_table("audit_review")
    with op.batch_alter_table("audit_checkpoint", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_checkpoint_seq"))

    op.drop_table("audit_checkpoint")
