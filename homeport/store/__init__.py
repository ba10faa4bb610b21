"""The metadata store: SQLAlchemy over SQLite (WAL, the default) or PostgreSQL, Alembic migrations."""
