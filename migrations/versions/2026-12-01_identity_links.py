"""Accounts linked to an identity provider's (issuer, sub); how each audit record's actor
signed in.

``app_user.identity_*``: the account a provider-issued token speaks for, found by issuer
and subject (API.md); one account per (issuer, subject). ``audit_event.auth_method``
(``password``, ``client_credentials`` or ``oidc:<provider id>``) is part of the record's
hash when set; records written before it have none and their hashes are unchanged
(app.audit.chain).

Revision ID: 0014_identity_links
Revises: 0013_webhooks
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014_identity_links"
down_revision: str | None = "0013_webhooks"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


_LINK_INDEX = "ix_app_user_identity_issuer_subject"


def upgrade() -> None:
    op.add_column("app_user", sa.Column("identity_provider", sa.String(length=63), nullable=True))
    op.add_column("app_user", sa.Column("identity_issuer", sa.String(length=500), nullable=True))
    op.add_column("app_user", sa.Column("identity_subject", sa.String(length=255), nullable=True))
    op.create_index(_LINK_INDEX, "app_user", ["identity_issuer", "identity_subject"], unique=True)
    op.add_column("audit_event", sa.Column("auth_method", sa.String(length=80), nullable=True))


def downgrade() -> None:
    op.drop_column("audit_event", "auth_method")
    op.drop_index(_LINK_INDEX, table_name="app_user")
    for column in ("identity_subject", "identity_issuer", "identity_provider"):
        op.drop_column("app_user", column)
