"""An individual's sex (female, male or unknown), optional, for follow-up statistics.

Revision ID: 0017_individual_sex
Revises: 0016_lagesbild
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017_individual_sex"
down_revision: str | None = "0016_lagesbild"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("individual", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("sex", sa.String(length=10), nullable=False, server_default="unknown")
        )


def downgrade() -> None:
    with op.batch_alter_table("individual", schema=None) as batch_op:
        batch_op.drop_column("sex")
