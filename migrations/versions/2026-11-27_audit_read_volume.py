"""When each user was last let at each individual's information, for the volume flag.

Derived from the permit records; filled here from the last day of the log (the flag looks
back one hour).

Revision ID: 0007_audit_read_volume
Revises: 0006_audit_review
Create Date: 2026-11-27
"""

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic import op

revision: str = "0007_audit_read_volume"
down_revision: str | None = "0006_audit_review"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audit_read_volume",
        sa.Column("actor_user_id", sa.Uuid(), nullable=False),
        sa.Column("individual_id", sa.Uuid(), nullable=False),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(
            "actor_user_id", "individual_id", name=op.f("pk_audit_read_volume")
        ),
    )
    op.create_index(
        "ix_audit_read_volume_actor_user_id_last_at",
        "audit_read_volume",
        ["actor_user_id", "last_at"],
    )
    event = sa.table(
        "audit_event",
        sa.column("at", sa.DateTime(timezone=True)),
        sa.column("actor_user_id", sa.Uuid()),
        sa.column("individual_id", sa.Uuid()),
        sa.column("decision", sa.String()),
    )
    volume = sa.table(
        "audit_read_volume",
        sa.column("actor_user_id", sa.Uuid()),
        sa.column("individual_id", sa.Uuid()),
        sa.column("last_at", sa.DateTime(timezone=True)),
    )
    since = datetime.now(UTC) - timedelta(days=1)
    if op.get_bind().dialect.name == "sqlite":
        since = since.replace(tzinfo=None)  # SQLite keeps UTC without a zone (UtcDateTime)
    op.execute(
        volume.insert().from_select(
            ["actor_user_id", "individual_id", "last_at"],
            sa.select(event.c.actor_user_id, event.c.individual_id, sa.func.max(event.c.at))
            .where(
                event.c.at > since,
                event.c.decision == "permit",
                event.c.actor_user_id.is_not(None),
                event.c.individual_id.is_not(None),
            )
            .group_by(event.c.actor_user_id, event.c.individual_id),
        )
    )


def downgrade() -> None:
    op.drop_index("ix_audit_read_volume_actor_user_id_last_at", table_name="audit_read_volume")
    op.drop_table("audit_read_volume")
