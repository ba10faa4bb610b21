"""Batch transform: transform_jobs.

Revision ID: 0003
Revises: 0002
Create Date: 2025-03-01

Hand-written and frozen like 0001 and 0002: the table is spelled out here, not imported from
schema.py. Only a new table, so no existing table is touched and SQLite needs no batch mode.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _sort_key() -> sa.types.TypeEngine[str]:
    # Bytewise ordering on PostgreSQL too, whatever the database collation.
    return sa.String().with_variant(postgresql.VARCHAR(collation="C"), "postgresql")


def upgrade() -> None:
    op.create_table(
        "transform_jobs",
        sa.Column("name_key", _sort_key(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("arn", sa.String(), nullable=False),
        sa.Column("status", _sort_key(), nullable=False),
        sa.Column("creation_time", sa.Double(), nullable=False),
        sa.Column("last_modified_time", sa.Double(), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("failure_reason", sa.Text(), nullable=True),
        sa.Column("transform_start_time", sa.Double(), nullable=True),
        sa.Column("transform_end_time", sa.Double(), nullable=True),
        sa.Column("stop_requested", sa.Boolean(), nullable=False),
        sa.Column("progress", sa.JSON(), nullable=False),
        sa.Column("lease_owner", sa.String(), nullable=True),
        sa.Column("lease_expires", sa.Double(), nullable=True),
        sa.PrimaryKeyConstraint("name_key", name="pk_transform_jobs"),
    )
    op.create_index("ix_transform_jobs_status_name_key", "transform_jobs", ["status", "name_key"])
    op.create_index(
        "ix_transform_jobs_creation_time_name_key", "transform_jobs", ["creation_time", "name_key"]
    )
    op.create_index(
        "ix_transform_jobs_last_modified_time_name_key", "transform_jobs", ["last_modified_time", "name_key"]
    )


def downgrade() -> None:
    op.drop_index("ix_transform_jobs_last_modified_time_name_key", table_name="transform_jobs")
    op.drop_index("ix_transform_jobs_creation_time_name_key", table_name="transform_jobs")
    op.drop_index("ix_transform_jobs_status_name_key", table_name="transform_jobs")
    op.drop_table("transform_jobs")
