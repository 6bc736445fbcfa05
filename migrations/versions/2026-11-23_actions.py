"""Actions (insatser) on cases: planned by one agency, carried out by a responsible one.

Revision ID: 0005_actions
Revises: 0004_entries_emergency
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_actions"
down_revision: str | None = "0004_entries_emergency"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "case_action",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("case_id", sa.Uuid(), nullable=False),
        sa.Column("individual_id", sa.Uuid(), nullable=False),
        sa.Column("source_agency_id", sa.Uuid(), nullable=False),
        sa.Column("responsible_agency_id", sa.Uuid(), nullable=False),
        sa.Column("type", sa.String(length=60), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("assignee_id", sa.Uuid(), nullable=True),
        sa.Column("due_date", sa.Date(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("outcome", sa.Text(), nullable=True),
        sa.Column("created_by", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.Uuid(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('planned', 'in_progress', 'done', 'cancelled')",
            name=op.f("ck_case_action_status"),
        ),
        sa.ForeignKeyConstraint(
            ["assignee_id"], ["app_user.id"], name=op.f("fk_case_action_assignee_id_app_user")
        ),
        sa.ForeignKeyConstraint(
            ["case_id"], ["case_file.id"], name=op.f("fk_case_action_case_id_case_file")
        ),
        sa.ForeignKeyConstraint(
            ["individual_id"],
            ["individual.id"],
            name=op.f("fk_case_action_individual_id_individual"),
        ),
        sa.ForeignKeyConstraint(
            ["responsible_agency_id"],
            ["agency.id"],
            name=op.f("fk_case_action_responsible_agency_id_agency"),
        ),
        sa.ForeignKeyConstraint(
            ["source_agency_id"], ["agency.id"], name=op.f("fk_case_action_source_agency_id_agency")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_case_action")),
    )
    with op.batch_alter_table("case_action", schema=None) as batch_op:
        batch_op.create_index(
            "ix_case_action_case_id_created_at", ["case_id", "created_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_case_action_individual_id"), ["individual_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_case_action_responsible_agency_id"),
            ["responsible_agency_id"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_case_action_source_agency_id"), ["source_agency_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("case_action", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_case_action_source_agency_id"))
        batch_op.drop_index(batch_op.f("ix_case_action_responsible_agency_id"))
        batch_op.drop_index(batch_op.f("ix_case_action_individual_id"))
        batch_op.drop_index("ix_case_action_case_id_created_at")

    op.drop_table("case_action")
