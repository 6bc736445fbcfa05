"""External references: the ids municipal systems use for individuals and cases.

Revision ID: 0012_external_refs
Revises: 0011_idempotency
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_external_refs"
down_revision: str | None = "0011_idempotency"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "external_ref",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("agency_id", sa.Uuid(), nullable=False),
        sa.Column("system", sa.String(length=64), nullable=False),
        sa.Column("external_id", sa.String(length=128), nullable=False),
        sa.Column("individual_id", sa.Uuid(), nullable=True),
        sa.Column("case_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=False),
        sa.CheckConstraint(
            "(individual_id IS NULL) <> (case_id IS NULL)",
            name=op.f("ck_external_ref_individual_or_case"),
        ),
        sa.ForeignKeyConstraint(
            ["agency_id"], ["agency.id"], name=op.f("fk_external_ref_agency_id_agency")
        ),
        sa.ForeignKeyConstraint(
            ["case_id"], ["case_file.id"], name=op.f("fk_external_ref_case_id_case_file")
        ),
        sa.ForeignKeyConstraint(
            ["individual_id"],
            ["individual.id"],
            name=op.f("fk_external_ref_individual_id_individual"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_external_ref")),
        sa.UniqueConstraint("agency_id", "system", "external_id", name="uq_external_ref_agency"),
    )
    op.create_index("ix_external_ref_lookup", "external_ref", ["system", "external_id"])
    op.create_index("ix_external_ref_individual_id", "external_ref", ["individual_id"])
    op.create_index("ix_external_ref_case_id", "external_ref", ["case_id"])


def downgrade() -> None:
    op.drop_index("ix_external_ref_case_id", table_name="external_ref")
    op.drop_index("ix_external_ref_individual_id", table_name="external_ref")
    op.drop_index("ix_external_ref_lookup", table_name="external_ref")
    op.drop_table("external_ref")
