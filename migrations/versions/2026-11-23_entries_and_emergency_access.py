"""Entries with their versions, and emergency-access grants with their categories.

Revision ID: 0004_entries_emergency
Revises: 0003_cases_consents
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_entries_emergency"
down_revision: str | None = "0003_cases_consents"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "emergency_grant",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("case_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("agency_id", sa.Uuid(), nullable=False),
        sa.Column("legal_basis", sa.String(length=40), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["agency_id"], ["agency.id"], name=op.f("fk_emergency_grant_agency_id_agency")
        ),
        sa.ForeignKeyConstraint(
            ["case_id"], ["case_file.id"], name=op.f("fk_emergency_grant_case_id_case_file")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["app_user.id"], name=op.f("fk_emergency_grant_user_id_app_user")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_emergency_grant")),
    )
    with op.batch_alter_table("emergency_grant", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_emergency_grant_case_id"), ["case_id"], unique=False)
        batch_op.create_index(
            "ix_emergency_grant_user_id_case_id", ["user_id", "case_id"], unique=False
        )

    op.create_table(
        "entry",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("case_id", sa.Uuid(), nullable=False),
        sa.Column("individual_id", sa.Uuid(), nullable=False),
        sa.Column("source_agency_id", sa.Uuid(), nullable=False),
        sa.Column("category", sa.String(length=40), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("current_version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"], ["case_file.id"], name=op.f("fk_entry_case_id_case_file")
        ),
        sa.ForeignKeyConstraint(
            ["individual_id"], ["individual.id"], name=op.f("fk_entry_individual_id_individual")
        ),
        sa.ForeignKeyConstraint(
            ["source_agency_id"], ["agency.id"], name=op.f("fk_entry_source_agency_id_agency")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_entry")),
    )
    with op.batch_alter_table("entry", schema=None) as batch_op:
        batch_op.create_index(
            "ix_entry_case_id_created_at", ["case_id", "created_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_entry_individual_id"), ["individual_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_entry_source_agency_id"), ["source_agency_id"], unique=False
        )

    op.create_table(
        "emergency_grant_category",
        sa.Column("grant_id", sa.Uuid(), nullable=False),
        sa.Column("category", sa.String(length=40), nullable=False),
        sa.ForeignKeyConstraint(
            ["grant_id"],
            ["emergency_grant.id"],
            name=op.f("fk_emergency_grant_category_grant_id_emergency_grant"),
        ),
        sa.PrimaryKeyConstraint("grant_id", "category", name=op.f("pk_emergency_grant_category")),
    )
    op.create_table(
        "entry_version",
        sa.Column("entry_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("author_id", sa.Uuid(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["entry_id"], ["entry.id"], name=op.f("fk_entry_version_entry_id_entry")
        ),
        sa.PrimaryKeyConstraint("entry_id", "version", name=op.f("pk_entry_version")),
    )


def downgrade() -> None:
    op.drop_table("entry_version")
    op.drop_table("emergency_grant_category")
    with op.batch_alter_table("entry", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_entry_source_agency_id"))
        batch_op.drop_index(batch_op.f("ix_entry_individual_id"))
        batch_op.drop_index("ix_entry_case_id_created_at")

    op.drop_table("entry")
    with op.batch_alter_table("emergency_grant", schema=None) as batch_op:
        batch_op.drop_index("ix_emergency_grant_user_id_case_id")
        batch_op.drop_index(batch_op.f("ix_emergency_grant_case_id"))

    op.drop_table("emergency_grant")
