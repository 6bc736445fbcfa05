"""Baseline: the empty schema every later migration builds on.

The service skeleton owns no tables yet. This revision exists so that a database can
be stamped, `/readyz` can tell a migrated database from an unmigrated one, and the
first domain migration has a parent.

Revision ID: 0001_baseline
Revises:
Create Date: 2026-11-23
"""

from collections.abc import Sequence

revision: str = "0001_baseline"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
