"""The weekly lägesbild: areas of a district and each area's jointly agreed level per ISO
week, with what corrections replaced. No personal data.

Revision ID: 0016_lagesbild
Revises: 0015_casework
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016_lagesbild"
down_revision: str | None = "0015_casework"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "area",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("municipality", sa.String(length=100), nullable=False),
        sa.Column("district", sa.String(length=100), nullable=True),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("name_key", sa.String(length=100), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_area")),
        sa.UniqueConstraint("municipality", "name_key", name=op.f("uq_area_municipality_name_key")),
    )
    with op.batch_alter_table("area", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_area_municipality"), ["municipality"], unique=False)

    op.create_table(
        "lagesbild_assessment",
        sa.Column("area_id", sa.Uuid(), nullable=False),
        sa.Column("year", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("week", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("critical_events", sa.JSON(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("agreed_by", sa.JSON(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("recorded_by", sa.Uuid(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("level BETWEEN 1 AND 5", name=op.f("ck_lagesbild_assessment_level")),
        sa.ForeignKeyConstraint(
            ["area_id"], ["area.id"], name=op.f("fk_lagesbild_assessment_area_id_area")
        ),
        sa.PrimaryKeyConstraint("area_id", "year", "week", name=op.f("pk_lagesbild_assessment")),
    )
    op.create_table(
        "lagesbild_assessment_version",
        sa.Column("area_id", sa.Uuid(), nullable=False),
        sa.Column("year", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("week", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("before", sa.JSON(), nullable=False),
        sa.Column("recorded_by", sa.Uuid(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["area_id"], ["area.id"], name=op.f("fk_lagesbild_assessment_version_area_id_area")
        ),
        sa.PrimaryKeyConstraint(
            "area_id", "year", "week", "version", name=op.f("pk_lagesbild_assessment_version")
        ),
    )


def downgrade() -> None:
    op.drop_table("lagesbild_assessment_version")
    op.drop_table("lagesbild_assessment")
    with op.batch_alter_table("area", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_area_municipality"))

    op.drop_table("area")
