"""The metadata store's tables, as SQLAlchemy Core objects shared by the store and Alembic.

The migrations in ``migrations/versions`` create exactly these tables; a test compares the
migrated database with this module, so a change here needs a new migration.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

# Fixed constraint names make migrations portable: Alembic can only drop or alter a constraint
# it can name, and SQLite and PostgreSQL would otherwise invent different names.
NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


def sort_key_type() -> sa.types.TypeEngine[str]:
    """Text that sorts and compares bytewise on both dialects.

    SQLite compares text bytewise; PostgreSQL uses the database's collation (often en_US, which
    ignores punctuation), so keys that the store sorts and paginates on are pinned to "C" there.
    """
    return sa.String().with_variant(postgresql.VARCHAR(collation="C"), "postgresql")


training_jobs = sa.Table(
    "training_jobs",
    metadata,
    # lower(name): SageMaker names are unique case-insensitively.
    sa.Column("name_key", sort_key_type(), primary_key=True),
    sa.Column("name", sa.String(), nullable=False),
    sa.Column("arn", sa.String(), nullable=False),
    sa.Column("status", sort_key_type(), nullable=False),
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
    # Each index ends in name_key so that filtering and sorting with the store's tiebreak
    # (and keyset pagination) read the index in order instead of sorting.
    sa.Index(None, "status", "name_key"),
    sa.Index(None, "creation_time", "name_key"),
    sa.Index(None, "last_modified_time", "name_key"),
)

tags = sa.Table(
    "tags",
    metadata,
    sa.Column("resource_arn", sa.String(), primary_key=True),
    sa.Column("key", sa.String(), primary_key=True),
    sa.Column("value", sa.String(), nullable=False),
)

# Real-time hosting. Names are unique case-insensitively per resource type, as for training
# jobs; endpoints name their configuration by name only (no foreign key), because SageMaker lets
# a configuration be deleted while an endpoint still runs on it.


def _spec_table(name: str) -> sa.Table:
    """A resource that is its accepted create request and nothing more (it has no status)."""
    return sa.Table(
        name,
        metadata,
        sa.Column("name_key", sort_key_type(), primary_key=True),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("arn", sa.String(), nullable=False),
        sa.Column("creation_time", sa.Double(), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Index(None, "creation_time", "name_key"),
    )


models = _spec_table("models")
endpoint_configs = _spec_table("endpoint_configs")

endpoints = sa.Table(
    "endpoints",
    metadata,
    sa.Column("name_key", sort_key_type(), primary_key=True),
    sa.Column("name", sa.String(), nullable=False),
    sa.Column("arn", sa.String(), nullable=False),
    sa.Column("config_name", sa.String(), nullable=False),
    sa.Column("status", sort_key_type(), nullable=False),
    sa.Column("creation_time", sa.Double(), nullable=False),
    sa.Column("last_modified_time", sa.Double(), nullable=False),
    sa.Column("spec", sa.JSON(), nullable=False),
    sa.Column("variants", sa.JSON(), nullable=False),
    sa.Column("failure_reason", sa.Text(), nullable=True),
    sa.Column("pending_config_name", sa.String(), nullable=True),
    sa.Column("lease_owner", sa.String(), nullable=True),
    sa.Column("lease_expires", sa.Double(), nullable=True),
    sa.Index(None, "status", "name_key"),
    sa.Index(None, "creation_time", "name_key"),
    sa.Index(None, "last_modified_time", "name_key"),
)

# Batch transform. Named and listed like training jobs (the same filters and sorts); ``progress``
# is the runner's object/record counts, for the CLI.
transform_jobs = sa.Table(
    "transform_jobs",
    metadata,
    sa.Column("name_key", sort_key_type(), primary_key=True),
    sa.Column("name", sa.String(), nullable=False),
    sa.Column("arn", sa.String(), nullable=False),
    sa.Column("status", sort_key_type(), nullable=False),
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
    sa.Index(None, "status", "name_key"),
    sa.Index(None, "creation_time", "name_key"),
    sa.Index(None, "last_modified_time", "name_key"),
)
