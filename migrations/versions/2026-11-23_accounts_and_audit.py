"""Accounts (agencies, users, integration clients, refresh tokens, login throttling)
and the append-only, hash-chained audit log.

The audit log refuses to be changed, by anyone:
- PostgreSQL: triggers reject UPDATE and DELETE of ``audit_event`` row by row and
  TRUNCATE as a statement, even for the table's owner; the chain head may only move
  forward one record at a time and cannot be deleted.
- SQLite: triggers reject UPDATE and DELETE of ``audit_event``.

Running the app as a role that cannot change the audit log at all (PostgreSQL). The
migrations run as the owner (``samverkan_owner``); the app connects as ``samverkan_app``:

    CREATE ROLE samverkan_app LOGIN PASSWORD '...';
    GRANT USAGE ON SCHEMA public TO samverkan_app;
    GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO samverkan_app;
    REVOKE UPDATE, DELETE, TRUNCATE ON audit_event FROM samverkan_app;
    REVOKE INSERT, DELETE, TRUNCATE ON audit_chain_head FROM samverkan_app;
    -- result: audit_event SELECT, INSERT; audit_chain_head SELECT, UPDATE

``tests/audit/test_protection.py`` creates exactly this role and shows that appends
work and that UPDATE, DELETE and TRUNCATE are refused by privileges before the triggers.

Revision ID: 0002_accounts_audit
Revises: 0001_baseline
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_accounts_audit"
down_revision: str | None = "0001_baseline"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


GENESIS_HASH = "0" * 64

_POSTGRES_PROTECTION = (
    """
    CREATE FUNCTION audit_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
            USING ERRCODE = 'insufficient_privilege';
    END
    $$
    """,
    """
    CREATE TRIGGER audit_event_no_update_delete BEFORE UPDATE OR DELETE ON audit_event
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change()
    """,
    """
    CREATE TRIGGER audit_event_no_truncate BEFORE TRUNCATE ON audit_event
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change()
    """,
    """
    CREATE FUNCTION audit_head_forward_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP <> 'UPDATE' OR NEW.id <> OLD.id OR NEW.seq <> OLD.seq + 1 THEN
            RAISE EXCEPTION 'audit_chain_head only moves forward by one record'
                USING ERRCODE = 'insufficient_privilege';
        END IF;
        RETURN NEW;
    END
    $$
    """,
    """
    CREATE TRIGGER audit_chain_head_forward_only BEFORE UPDATE OR DELETE ON audit_chain_head
    FOR EACH ROW EXECUTE FUNCTION audit_head_forward_only()
    """,
    """
    CREATE TRIGGER audit_chain_head_no_truncate BEFORE TRUNCATE ON audit_chain_head
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change()
    """,
)
_POSTGRES_UNPROTECTION = (
    "DROP TRIGGER IF EXISTS audit_chain_head_no_truncate ON audit_chain_head",
    "DROP TRIGGER IF EXISTS audit_chain_head_forward_only ON audit_chain_head",
    "DROP TRIGGER IF EXISTS audit_event_no_truncate ON audit_event",
    "DROP TRIGGER IF EXISTS audit_event_no_update_delete ON audit_event",
    "DROP FUNCTION IF EXISTS audit_head_forward_only()",
    "DROP FUNCTION IF EXISTS audit_refuse_change()",
)
_SQLITE_PROTECTION = (
    """
    CREATE TRIGGER audit_event_no_update BEFORE UPDATE ON audit_event
    BEGIN SELECT RAISE(ABORT, 'audit_event is append-only: UPDATE refused'); END
    """,
    """
    CREATE TRIGGER audit_event_no_delete BEFORE DELETE ON audit_event
    BEGIN SELECT RAISE(ABORT, 'audit_event is append-only: DELETE refused'); END
    """,
    """
    CREATE TRIGGER audit_chain_head_forward_only BEFORE UPDATE ON audit_chain_head
    WHEN NEW.id <> OLD.id OR NEW.seq <> OLD.seq + 1
    BEGIN SELECT RAISE(ABORT, 'audit_chain_head only moves forward by one record'); END
    """,
    """
    CREATE TRIGGER audit_chain_head_no_delete BEFORE DELETE ON audit_chain_head
    BEGIN SELECT RAISE(ABORT, 'audit_chain_head cannot be deleted'); END
    """,
)
_SQLITE_UNPROTECTION = (
    "DROP TRIGGER IF EXISTS audit_chain_head_no_delete",
    "DROP TRIGGER IF EXISTS audit_chain_head_forward_only",
    "DROP TRIGGER IF EXISTS audit_event_no_delete",
    "DROP TRIGGER IF EXISTS audit_event_no_update",
)


def upgrade() -> None:
    op.create_table(
        "agency",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("organisation_number", sa.String(length=10), nullable=False),
        sa.Column("municipality", sa.String(length=100), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agency")),
    )
    op.create_table(
        "audit_chain_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_audit_chain_head_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_chain_head")),
    )
    op.create_table(
        "audit_event",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor_user_id", sa.Uuid(), nullable=True),
        sa.Column("actor_client_id", sa.Uuid(), nullable=True),
        sa.Column("actor_agency_id", sa.Uuid(), nullable=True),
        sa.Column("actor_roles", sa.String(length=200), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("resource_type", sa.String(length=32), nullable=True),
        sa.Column("resource_id", sa.String(length=64), nullable=True),
        sa.Column("individual_id", sa.Uuid(), nullable=True),
        sa.Column("case_id", sa.Uuid(), nullable=True),
        sa.Column("decision", sa.String(length=8), nullable=False),
        sa.Column("basis", sa.String(length=32), nullable=True),
        sa.Column("policy_id", sa.String(length=100), nullable=True),
        sa.Column("consent_id", sa.Uuid(), nullable=True),
        sa.Column("legal_basis", sa.String(length=64), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("request_id", sa.String(length=128), nullable=True),
        sa.Column("client_address", sa.String(length=64), nullable=True),
        sa.Column("flags", sa.String(length=200), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.CheckConstraint("decision IN ('permit', 'deny')", name=op.f("ck_audit_event_decision")),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit_event")),
    )
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.create_index(
            "ix_audit_event_actor_user_id_seq", ["actor_user_id", "seq"], unique=False
        )
        batch_op.create_index("ix_audit_event_at", ["at"], unique=False)
        batch_op.create_index("ix_audit_event_case_id_seq", ["case_id", "seq"], unique=False)
        batch_op.create_index(
            "ix_audit_event_individual_id_seq", ["individual_id", "seq"], unique=False
        )

    op.create_table(
        "login_throttle",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("window_started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("blocked_until", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_login_throttle")),
    )
    op.create_table(
        "app_user",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("display_name", sa.String(length=200), nullable=False),
        sa.Column("agency_id", sa.Uuid(), nullable=False),
        sa.Column("roles", sa.String(length=100), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("password_hash", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["agency_id"], ["agency.id"], name=op.f("fk_app_user_agency_id_agency")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_app_user")),
        sa.UniqueConstraint("username", name=op.f("uq_app_user_username")),
    )
    with op.batch_alter_table("app_user", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_app_user_agency_id"), ["agency_id"], unique=False)

    op.create_table(
        "integration_client",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("client_id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("agency_id", sa.Uuid(), nullable=False),
        sa.Column("scopes", sa.String(length=200), nullable=False),
        sa.Column("secret_hash", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["agency_id"], ["agency.id"], name=op.f("fk_integration_client_agency_id_agency")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_integration_client")),
        sa.UniqueConstraint("client_id", name=op.f("uq_integration_client_client_id")),
    )
    with op.batch_alter_table("integration_client", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_integration_client_agency_id"), ["agency_id"], unique=False
        )

    op.create_table(
        "refresh_token",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("family_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["app_user.id"], name=op.f("fk_refresh_token_user_id_app_user")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_refresh_token")),
    )
    with op.batch_alter_table("refresh_token", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_refresh_token_family_id"), ["family_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_refresh_token_user_id"), ["user_id"], unique=False)

    op.execute(
        sa.text("INSERT INTO audit_chain_head (id, seq, hash) VALUES (1, 0, :genesis)").bindparams(
            genesis=GENESIS_HASH
        )
    )
    if op.get_bind().dialect.name == "postgresql":
        for statement in _POSTGRES_PROTECTION:
            op.execute(statement)
    else:
        for statement in _SQLITE_PROTECTION:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for statement in _POSTGRES_UNPROTECTION:
            op.execute(statement)
    else:
        for statement in _SQLITE_UNPROTECTION:
            op.execute(statement)
    with op.batch_alter_table("refresh_token", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_refresh_token_user_id"))
        batch_op.drop_index(batch_op.f("ix_refresh_token_family_id"))

    op.drop_table("refresh_token")
    with op.batch_alter_table("integration_client", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_integration_client_agency_id"))

    op.drop_table("integration_client")
    with op.batch_alter_table("app_user", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_app_user_agency_id"))

    op.drop_table("app_user")
    op.drop_table("login_throttle")
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_event_individual_id_seq")
        batch_op.drop_index("ix_audit_event_case_id_seq")
        batch_op.drop_index("ix_audit_event_at")
        batch_op.drop_index("ix_audit_event_actor_user_id_seq")

    op.drop_table("audit_event")
    op.drop_table("audit_chain_head")
    op.drop_table("agency")
