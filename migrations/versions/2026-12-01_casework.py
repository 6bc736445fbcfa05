"""Casework: goals and their follow-ups, meetings with attendees (decisions become actions,
``case_action.meeting_id``), links between cases, custody/threat/exit on the case, guardians'
contact details, and versions of individuals (what each change replaced).

Revision ID: 0015_casework
Revises: 0014_identity_links
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015_casework"
down_revision: str | None = "0014_identity_links"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "case_link",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("case_id", sa.Uuid(), nullable=False),
        sa.Column("linked_case_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"], ["case_file.id"], name=op.f("fk_case_link_case_id_case_file")
        ),
        sa.ForeignKeyConstraint(
            ["linked_case_id"], ["case_file.id"], name=op.f("fk_case_link_linked_case_id_case_file")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_case_link")),
        sa.UniqueConstraint(
            "case_id", "linked_case_id", name=op.f("uq_case_link_case_id_linked_case_id")
        ),
    )
    with op.batch_alter_table("case_link", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_case_link_case_id"), ["case_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_case_link_linked_case_id"), ["linked_case_id"], unique=False
        )

    op.create_table(
        "goal",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("case_id", sa.Uuid(), nullable=False),
        sa.Column("individual_id", sa.Uuid(), nullable=False),
        sa.Column("agency_id", sa.Uuid(), nullable=False),
        sa.Column("area", sa.String(length=20), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("set_on", sa.Date(), nullable=False),
        sa.Column("target_date", sa.Date(), nullable=False),
        sa.Column("follow_up_on", sa.Date(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("outcome", sa.Text(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False, server_default="1"),
        sa.Column("created_by", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.Uuid(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('open', 'achieved', 'partly_achieved', 'not_achieved', 'abandoned')",
            name=op.f("ck_goal_status"),
        ),
        sa.ForeignKeyConstraint(
            ["agency_id"], ["agency.id"], name=op.f("fk_goal_agency_id_agency")
        ),
        sa.ForeignKeyConstraint(
            ["case_id"], ["case_file.id"], name=op.f("fk_goal_case_id_case_file")
        ),
        sa.ForeignKeyConstraint(
            ["individual_id"], ["individual.id"], name=op.f("fk_goal_individual_id_individual")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_goal")),
    )
    with op.batch_alter_table("goal", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_goal_agency_id"), ["agency_id"], unique=False)
        batch_op.create_index("ix_goal_case_id_created_at", ["case_id", "created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_goal_individual_id"), ["individual_id"], unique=False)

    op.create_table(
        "individual_version",
        sa.Column("individual_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("guardian_id", sa.Uuid(), nullable=True),
        sa.Column("change", sa.String(length=20), nullable=False),
        sa.Column("before", sa.JSON(), nullable=False),
        sa.Column("changed_by", sa.Uuid(), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["guardian_id"],
            ["guardian.id"],
            name=op.f("fk_individual_version_guardian_id_guardian"),
        ),
        sa.ForeignKeyConstraint(
            ["individual_id"],
            ["individual.id"],
            name=op.f("fk_individual_version_individual_id_individual"),
        ),
        sa.PrimaryKeyConstraint("individual_id", "version", name=op.f("pk_individual_version")),
    )
    op.create_table(
        "meeting",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("case_id", sa.Uuid(), nullable=False),
        sa.Column("individual_id", sa.Uuid(), nullable=False),
        sa.Column("agency_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("held_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("individual_present", sa.Boolean(), nullable=False),
        sa.Column("minutes", sa.Text(), nullable=True),
        sa.Column("created_by", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["agency_id"], ["agency.id"], name=op.f("fk_meeting_agency_id_agency")
        ),
        sa.ForeignKeyConstraint(
            ["case_id"], ["case_file.id"], name=op.f("fk_meeting_case_id_case_file")
        ),
        sa.ForeignKeyConstraint(
            ["individual_id"], ["individual.id"], name=op.f("fk_meeting_individual_id_individual")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_meeting")),
    )
    with op.batch_alter_table("meeting", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_meeting_agency_id"), ["agency_id"], unique=False)
        batch_op.create_index(
            "ix_meeting_case_id_created_at", ["case_id", "created_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_meeting_individual_id"), ["individual_id"], unique=False
        )

    op.create_table(
        "goal_follow_up",
        sa.Column("goal_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("follow_up_on", sa.Date(), nullable=True),
        sa.Column("outcome", sa.Text(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("recorded_by", sa.Uuid(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["goal_id"], ["goal.id"], name=op.f("fk_goal_follow_up_goal_id_goal")
        ),
        sa.PrimaryKeyConstraint("goal_id", "version", name=op.f("pk_goal_follow_up")),
    )
    op.create_table(
        "meeting_attendee",
        sa.Column("meeting_id", sa.Uuid(), nullable=False),
        sa.Column("position", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("agency_id", sa.Uuid(), nullable=True),
        sa.Column("user_id", sa.Uuid(), nullable=True),
        sa.Column("guardian_id", sa.Uuid(), nullable=True),
        sa.Column("role", sa.String(length=100), nullable=True),
        sa.ForeignKeyConstraint(
            ["agency_id"], ["agency.id"], name=op.f("fk_meeting_attendee_agency_id_agency")
        ),
        sa.ForeignKeyConstraint(
            ["guardian_id"], ["guardian.id"], name=op.f("fk_meeting_attendee_guardian_id_guardian")
        ),
        sa.ForeignKeyConstraint(
            ["meeting_id"], ["meeting.id"], name=op.f("fk_meeting_attendee_meeting_id_meeting")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["app_user.id"], name=op.f("fk_meeting_attendee_user_id_app_user")
        ),
        sa.PrimaryKeyConstraint("meeting_id", "position", name=op.f("pk_meeting_attendee")),
    )
    with op.batch_alter_table("case_action", schema=None) as batch_op:
        batch_op.add_column(sa.Column("meeting_id", sa.Uuid(), nullable=True))
        batch_op.create_index(batch_op.f("ix_case_action_meeting_id"), ["meeting_id"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_case_action_meeting_id_meeting"), "meeting", ["meeting_id"], ["id"]
        )

    with op.batch_alter_table("case_file", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("custody_status", sa.String(length=10), nullable=False, server_default="none")
        )
        batch_op.add_column(sa.Column("release_on", sa.Date(), nullable=True))
        batch_op.add_column(
            sa.Column("exit_status", sa.String(length=12), nullable=False, server_default="none")
        )
        batch_op.add_column(sa.Column("exit_requested_on", sa.Date(), nullable=True))
        batch_op.add_column(
            sa.Column("threat_level", sa.String(length=10), nullable=False, server_default="none")
        )
        batch_op.add_column(sa.Column("threat_reviewed_on", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("threat_review_due_on", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("threat_agency_id", sa.Uuid(), nullable=True))
        batch_op.add_column(
            sa.Column("threat_flagged_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_case_file_threat_agency_id_agency"),
            "agency",
            ["threat_agency_id"],
            ["id"],
        )

    with op.batch_alter_table("guardian", schema=None) as batch_op:
        batch_op.add_column(sa.Column("contact", sa.String(length=200), nullable=True))

    with op.batch_alter_table("individual", schema=None) as batch_op:
        batch_op.add_column(sa.Column("version", sa.Integer(), nullable=False, server_default="1"))
        batch_op.add_column(sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("individual", schema=None) as batch_op:
        batch_op.drop_column("updated_at")
        batch_op.drop_column("version")

    with op.batch_alter_table("guardian", schema=None) as batch_op:
        batch_op.drop_column("contact")

    with op.batch_alter_table("case_file", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_case_file_threat_agency_id_agency"), type_="foreignkey"
        )
        batch_op.drop_column("threat_flagged_at")
        batch_op.drop_column("threat_agency_id")
        batch_op.drop_column("threat_review_due_on")
        batch_op.drop_column("threat_reviewed_on")
        batch_op.drop_column("threat_level")
        batch_op.drop_column("exit_requested_on")
        batch_op.drop_column("exit_status")
        batch_op.drop_column("release_on")
        batch_op.drop_column("custody_status")

    with op.batch_alter_table("case_action", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_case_action_meeting_id_meeting"), type_="foreignkey"
        )
        batch_op.drop_index(batch_op.f("ix_case_action_meeting_id"))
        batch_op.drop_column("meeting_id")

    op.drop_table("meeting_attendee")
    op.drop_table("goal_follow_up")
    with op.batch_alter_table("meeting", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_meeting_individual_id"))
        batch_op.drop_index("ix_meeting_case_id_created_at")
        batch_op.drop_index(batch_op.f("ix_meeting_agency_id"))

    op.drop_table("meeting")
    op.drop_table("individual_version")
    with op.batch_alter_table("goal", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_goal_individual_id"))
        batch_op.drop_index("ix_goal_case_id_created_at")
        batch_op.drop_index(batch_op.f("ix_goal_agency_id"))

    op.drop_table("goal")
    with op.batch_alter_table("case_link", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_case_link_linked_case_id"))
        batch_op.drop_index(batch_op.f("ix_case_link_case_id"))

    op.drop_table("case_link")
