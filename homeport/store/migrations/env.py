"""Alembic environment for the metadata store: runs the migrations on a connection or a URL.

``Store.migrate()`` hands over its own connection (``config.attributes["connection"]``), so the
migration runs inside the store's transaction and lock. Run from the command line (see
``alembic.ini`` beside this file), the URL comes from ``sqlalchemy.url`` or the server's settings.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from homeport.config import Settings
from homeport.store.database import Store
from homeport.store.schema import metadata

config = context.config


def _url() -> str:
    return config.get_main_option("sqlalchemy.url") or Settings().resolved_database_url


def _configure(connection: sa.Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite cannot ALTER most things; batch mode rebuilds the table, so later
        # migrations can be written once for both dialects.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )


def run_migrations_offline() -> None:
    context.configure(
        url=_url(),
        target_metadata=metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    given = config.attributes.get("connection")
    if given is not None:
        _configure(given)
        with context.begin_transaction():
            context.run_migrations()
        return
    # The store's engine, for the same SQLite set-up (folder, WAL, pragmas) as the server.
    store = Store(_url())
    try:
        with store.engine.connect() as connection:
            _configure(connection)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        store.close()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
