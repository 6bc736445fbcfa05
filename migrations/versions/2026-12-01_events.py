"""The event log (transactional outbox) for integrations.

``event`` holds one thin row per change (type, time, ids), written in the change's own
transaction. ``seq`` orders the feed; it is drawn while the audit chain's head is locked.

Revision ID: 0010_events
Revises: 0009_sign_in
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_events"
down_revision: str | None = "0009_sign_in"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "event",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("type", sa.String(length=40), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("case_id", sa.Uuid(), nullable=True),
        sa.Column("individual_id", sa.Uuid(), nullable=True),
        sa.Column("resource_type", sa.String(length=32), nullable=False),
        sa.Column("resource_id", sa.Uuid(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_event")),
        sa.UniqueConstraint("id", name=op.f("uq_event_id")),
    )
    op.create_index("ix_event_resource", "event", ["resource_type", "resource_id"])


def downgrade() -> None:
    op.drop_index("ix_event_resource", table_name="event")
    op.drop_table("event")
