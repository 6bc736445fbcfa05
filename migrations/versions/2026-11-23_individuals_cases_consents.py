"""Individuals and guardians, cases and participants, consents with their agencies,
categories, signatories and signed document.

Revision ID: 0003_cases_consents
Revises: 0002_accounts_audit
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_cases_consents"
down_revision: str | None = "0002_accounts_audit"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "individual",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("registering_agency_id", sa.Uuid(), nullable=False),
        sa.Column("personal_number", sa.String(length=12), nullable=True),
        sa.Column("number_kind", sa.String(length=20), nullable=True),
        sa.Column("reserve_id", sa.String(length=20), nullable=True),
        sa.Column("given_name", sa.String(length=100), nullable=False),
        sa.Column("family_name", sa.String(length=100), nullable=False),
        sa.Column("birth_date", sa.Date(), nullable=False),
        sa.Column("protected_identity", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["registering_agency_id"],
            ["agency.id"],
            name=op.f("fk_individual_registering_agency_id_agency"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_individual")),
        sa.UniqueConstraint(
            "registering_agency_id",
            "personal_number",
            name=op.f("uq_individual_registering_agency_id_personal_number"),
        ),
        sa.UniqueConstraint("reserve_id", name=op.f("uq_individual_reserve_id")),
    )
    with op.batch_alter_table("individual", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_individual_registering_agency_id"),
            ["registering_agency_id"],
            unique=False,
        )

    op.create_table(
        "case_file",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("individual_id", sa.Uuid(), nullable=False),
        sa.Column("programme", sa.String(length=10), nullable=False),
        sa.Column("lead_agency_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("closure_reason", sa.String(length=20), nullable=True),
        sa.Column("created_by", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["individual_id"], ["individual.id"], name=op.f("fk_case_file_individual_id_individual")
        ),
        sa.ForeignKeyConstraint(
            ["lead_agency_id"], ["agency.id"], name=op.f("fk_case_file_lead_agency_id_agency")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_case_file")),
    )
    with op.batch_alter_table("case_file", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_case_file_individual_id"), ["individual_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_case_file_lead_agency_id"), ["lead_agency_id"], unique=False
        )

    op.create_table(
        "guardian",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("individual_id", sa.Uuid(), nullable=False),
        sa.Column("given_name", sa.String(length=100), nullable=False),
        sa.Column("family_name", sa.String(length=100), nullable=False),
        sa.Column("personal_number", sa.String(length=12), nullable=True),
        sa.Column("has_custody", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["individual_id"], ["individual.id"], name=op.f("fk_guardian_individual_id_individual")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_guardian")),
    )
    with op.batch_alter_table("guardian", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_guardian_individual_id"), ["individual_id"], unique=False
        )

    op.create_table(
        "case_assignment",
        sa.Column("case_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("agency_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["agency_id"], ["agency.id"], name=op.f("fk_case_assignment_agency_id_agency")
        ),
        sa.ForeignKeyConstraint(
            ["case_id"], ["case_file.id"], name=op.f("fk_case_assignment_case_id_case_file")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["app_user.id"], name=op.f("fk_case_assignment_user_id_app_user")
        ),
        sa.PrimaryKeyConstraint("case_id", "user_id", name=op.f("pk_case_assignment")),
    )
    op.create_table(
        "case_participant",
        sa.Column("case_id", sa.Uuid(), nullable=False),
        sa.Column("agency_id", sa.Uuid(), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("added_by", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["agency_id"], ["agency.id"], name=op.f("fk_case_participant_agency_id_agency")
        ),
        sa.ForeignKeyConstraint(
            ["case_id"], ["case_file.id"], name=op.f("fk_case_participant_case_id_case_file")
        ),
        sa.PrimaryKeyConstraint("case_id", "agency_id", name=op.f("pk_case_participant")),
    )
    with op.batch_alter_table("case_participant", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_case_participant_agency_id"), ["agency_id"], unique=False
        )

    op.create_table(
        "consent",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("case_id", sa.Uuid(), nullable=False),
        sa.Column("individual_id", sa.Uuid(), nullable=False),
        sa.Column("purpose", sa.Text(), nullable=False),
        sa.Column("valid_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("valid_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("method", sa.String(length=10), nullable=False),
        sa.Column("supersedes_id", sa.Uuid(), nullable=True),
        sa.Column("registered_by", sa.Uuid(), nullable=False),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("withdrawn_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("withdrawal_reason", sa.Text(), nullable=True),
        sa.Column("withdrawn_by", sa.Uuid(), nullable=True),
        sa.ForeignKeyConstraint(
            ["case_id"], ["case_file.id"], name=op.f("fk_consent_case_id_case_file")
        ),
        sa.ForeignKeyConstraint(
            ["individual_id"], ["individual.id"], name=op.f("fk_consent_individual_id_individual")
        ),
        sa.ForeignKeyConstraint(
            ["supersedes_id"], ["consent.id"], name=op.f("fk_consent_supersedes_id_consent")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent")),
    )
    with op.batch_alter_table("consent", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_consent_case_id"), ["case_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_consent_individual_id"), ["individual_id"], unique=False
        )

    op.create_table(
        "consent_agency",
        sa.Column("consent_id", sa.Uuid(), nullable=False),
        sa.Column("agency_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["agency_id"], ["agency.id"], name=op.f("fk_consent_agency_agency_id_agency")
        ),
        sa.ForeignKeyConstraint(
            ["consent_id"], ["consent.id"], name=op.f("fk_consent_agency_consent_id_consent")
        ),
        sa.PrimaryKeyConstraint("consent_id", "agency_id", name=op.f("pk_consent_agency")),
    )
    with op.batch_alter_table("consent_agency", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_consent_agency_agency_id"), ["agency_id"], unique=False
        )

    op.create_table(
        "consent_category",
        sa.Column("consent_id", sa.Uuid(), nullable=False),
        sa.Column("category", sa.String(length=40), nullable=False),
        sa.ForeignKeyConstraint(
            ["consent_id"], ["consent.id"], name=op.f("fk_consent_category_consent_id_consent")
        ),
        sa.PrimaryKeyConstraint("consent_id", "category", name=op.f("pk_consent_category")),
    )
    op.create_table(
        "consent_document",
        sa.Column("consent_id", sa.Uuid(), nullable=False),
        sa.Column("media_type", sa.String(length=40), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("uploaded_by", sa.Uuid(), nullable=False),
        sa.Column("uploaded_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["consent_id"], ["consent.id"], name=op.f("fk_consent_document_consent_id_consent")
        ),
        sa.PrimaryKeyConstraint("consent_id", name=op.f("pk_consent_document")),
    )
    op.create_table(
        "consent_signatory",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("consent_id", sa.Uuid(), nullable=False),
        sa.Column("role", sa.String(length=10), nullable=False),
        sa.Column("guardian_id", sa.Uuid(), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("signed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["consent_id"], ["consent.id"], name=op.f("fk_consent_signatory_consent_id_consent")
        ),
        sa.ForeignKeyConstraint(
            ["guardian_id"], ["guardian.id"], name=op.f("fk_consent_signatory_guardian_id_guardian")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent_signatory")),
    )
    with op.batch_alter_table("consent_signatory", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_consent_signatory_consent_id"), ["consent_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("consent_signatory", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_consent_signatory_consent_id"))

    op.drop_table("consent_signatory")
    op.drop_table("consent_document")
    op.drop_table("consent_category")
    with op.batch_alter_table("consent_agency", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_consent_agency_agency_id"))

    op.drop_table("consent_agency")
    with op.batch_alter_table("consent", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_consent_individual_id"))
        batch_op.drop_index(batch_op.f("ix_consent_case_id"))

    op.drop_table("consent")
    with op.batch_alter_table("case_participant", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_case_participant_agency_id"))

    op.drop_table("case_participant")
    op.drop_table("case_assignment")
    with op.batch_alter_table("guardian", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_guardian_individual_id"))

    op.drop_table("guardian")
    with op.batch_alter_table("case_file", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_case_file_lead_agency_id"))
        batch_op.drop_index(batch_op.f("ix_case_file_individual_id"))

    op.drop_table("case_file")
    with op.batch_alter_table("individual", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_individual_registering_agency_id"))

    op.drop_table("individual")
