"""Real-time hosting: models, endpoint_configs and endpoints.

Revision ID: 0002
Revises: 0001
Create Date: 2025-02-01

Hand-written and frozen like 0001: the tables are spelled out here, not imported from schema.py.
Only new tables, so nothing in training_jobs or tags is touched and SQLite needs no batch mode.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _sort_key() -> sa.types.TypeEngine[str]:
    # Bytewise ordering on PostgreSQL too, whatever the database collation.
    return sa.String().with_variant(postgresql.VARCHAR(collation="C"), "postgresql")


def _named_resource_columns() -> list[sa.Column[Any]]:
    # Fresh Column objects per table: a Column can belong to one table only.
    return [
        sa.Column("name_key", _sort_key(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("arn", sa.String(), nullable=False),
    ]


def upgrade() -> None:
    for table in ("models", "endpoint_configs"):
        op.create_table(
            table,
            *_named_resource_columns(),
            sa.Column("creation_time", sa.Double(), nullable=False),
            sa.Column("spec", sa.JSON(), nullable=False),
            sa.PrimaryKeyConstraint("name_key", name=f"pk_{table}"),
        )
        op.create_index(f"ix_{table}_creation_time_name_key", table, ["creation_time", "name_key"])
    op.create_table(
        "endpoints",
        *_named_resource_columns(),
        sa.Column("config_name", sa.String(), nullable=False),
        sa.Column("status", _sort_key(), nullable=False),
        sa.Column("creation_time", sa.Double(), nullable=False),
        sa.Column("last_modified_time", sa.Double(), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("variants", sa.JSON(), nullable=False),
        sa.Column("failure_reason", sa.Text(), nullable=True),
        sa.Column("pending_config_name", sa.String(), nullable=True),
        sa.Column("lease_owner", sa.String(), nullable=True),
        sa.Column("lease_expires", sa.Double(), nullable=True),
        sa.PrimaryKeyConstraint("name_key", name="pk_endpoints"),
    )
    op.create_index("ix_endpoints_status_name_key", "endpoints", ["status", "name_key"])
    op.create_index("ix_endpoints_creation_time_name_key", "endpoints", ["creation_time", "name_key"])
    op.create_index(
        "ix_endpoints_last_modified_time_name_key", "endpoints", ["last_modified_time", "name_key"]
    )


def downgrade() -> None:
    op.drop_index("ix_endpoints_last_modified_time_name_key", table_name="endpoints")
    op.drop_index("ix_endpoints_creation_time_name_key", table_name="endpoints")
    op.drop_index("ix_endpoints_status_name_key", table_name="endpoints")
    op.drop_table("endpoints")
    for table in ("endpoint_configs", "models"):
        op.drop_index(f"ix_{table}_creation_time_name_key", table_name=table)
        op.drop_table(table)
