"""Initial metadata store: training_jobs and tags.

Revision ID: 0001
Revises:
Create Date: 2025-01-01

Hand-written and frozen: it spells the tables out instead of importing schema.py, so later
changes to the live schema cannot change what this revision creates.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _sort_key() -> sa.types.TypeEngine[str]:
    # Bytewise ordering on PostgreSQL too, whatever the database collation.
    return sa.String().with_variant(postgresql.VARCHAR(collation="C"), "postgresql")


def upgrade() -> None:
    op.create_table(
        "training_jobs",
        sa.Column("name_key", _sort_key(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("arn", sa.String(), nullable=False),
        sa.Column("status", _sort_key(), nullable=False),
        sa.Column("secondary_status", sa.String(), nullable=False),
        sa.Column("creation_time", sa.Double(), nullable=False),
        sa.Column("last_modified_time", sa.Double(), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("transitions", sa.JSON(), nullable=False),
        sa.Column("failure_reason", sa.Text(), nullable=True),
        sa.Column("training_start_time", sa.Double(), nullable=True),
        sa.Column("training_end_time", sa.Double(), nullable=True),
        sa.Column("final_metrics", sa.JSON(), nullable=False),
        sa.Column("model_artifacts", sa.String(), nullable=True),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        sa.Column("stop_requested", sa.Boolean(), nullable=False),
        sa.Column("lease_owner", sa.String(), nullable=True),
        sa.Column("lease_expires", sa.Double(), nullable=True),
        sa.PrimaryKeyConstraint("name_key", name="pk_training_jobs"),
    )
    op.create_index("ix_training_jobs_status_name_key", "training_jobs", ["status", "name_key"])
    op.create_index("ix_training_jobs_creation_time_name_key", "training_jobs", ["creation_time", "name_key"])
    op.create_index(
        "ix_training_jobs_last_modified_time_name_key", "training_jobs", ["last_modified_time", "name_key"]
    )
    op.create_table(
        "tags",
        sa.Column("resource_arn", sa.String(), nullable=False),
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("value", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("resource_arn", "key", name="pk_tags"),
    )


def downgrade() -> None:
    op.drop_table("tags")
    op.drop_index("ix_training_jobs_last_modified_time_name_key", table_name="training_jobs")
    op.drop_index("ix_training_jobs_creation_time_name_key", table_name="training_jobs")
    op.drop_index("ix_training_jobs_status_name_key", table_name="training_jobs")
    op.drop_table("training_jobs")
