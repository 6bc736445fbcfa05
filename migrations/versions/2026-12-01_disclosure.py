"""Supersession ends a consent; emergency grants can be ended early.

- ``consent.superseded_at``: the successor's ``valid_from``, from which this consent no
  longer applies. Consents superseded before this revision (which then narrowed nothing)
  are ended from their earliest successor's ``valid_from``.
- ``emergency_grant.ended_at`` / ``ended_by``: a grant ended before it expired.

Revision ID: 0008_disclosure
Revises: 0007_audit_read_volume
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_disclosure"
down_revision: str | None = "0007_audit_read_volume"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("consent", schema=None) as batch_op:
        batch_op.add_column(sa.Column("superseded_at", sa.DateTime(timezone=True), nullable=True))
    op.execute(
        "UPDATE consent SET superseded_at = (SELECT min(successor.valid_from) FROM consent "
        "AS successor WHERE successor.supersedes_id = consent.id) "
        "WHERE EXISTS (SELECT 1 FROM consent AS successor "
        "WHERE successor.supersedes_id = consent.id)"
    )
    with op.batch_alter_table("emergency_grant", schema=None) as batch_op:
        batch_op.add_column(sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("ended_by", sa.Uuid(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("emergency_grant", schema=None) as batch_op:
        batch_op.drop_column("ended_by")
        batch_op.drop_column("ended_at")
    with op.batch_alter_table("consent", schema=None) as batch_op:
        batch_op.drop_column("superseded_at")
