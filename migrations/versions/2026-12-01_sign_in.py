"""Sign-ins as state: every token carries its sign-in, and an ended sign-in ends them all.

``sign_in`` has one row per password sign-in (the refresh-token family's id). Signing out,
refresh-token reuse, a password change, deactivation and a change of roles or agency set
``ended_at``; the next request with any token of that sign-in is a 401. Existing families
become sign-ins (ended if any of their refresh tokens was revoked); access tokens issued
before this revision carry no sign-in and stop working (their holders sign in again).

Revision ID: 0009_sign_in
Revises: 0008_disclosure
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_sign_in"
down_revision: str | None = "0008_disclosure"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sign_in",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_reason", sa.String(length=40), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["app_user.id"], name=op.f("fk_sign_in_user_id_app_user")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sign_in")),
    )
    op.create_index(op.f("ix_sign_in_user_id"), "sign_in", ["user_id"])
    op.execute(
        "INSERT INTO sign_in (id, user_id, started_at, ended_at, ended_reason) "
        "SELECT family_id, user_id, MIN(issued_at), MAX(revoked_at), "
        "CASE WHEN MAX(revoked_at) IS NULL THEN NULL ELSE 'revoked' END "
        "FROM refresh_token GROUP BY family_id, user_id"
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_sign_in_user_id"), table_name="sign_in")
    op.drop_table("sign_in")
