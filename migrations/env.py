"""Alembic environment: online migrations against ``sqlalchemy.url``."""

from alembic import context
from sqlalchemy import create_engine, pool

from storage import tables  # noqa: F401  (registers every table on the metadata)
from storage.base import Base
from storage.engine import normalise_url

target_metadata = Base.metadata


def run_migrations_online() -> None:
    url = context.config.get_main_option("sqlalchemy.url")
    assert url, "sqlalchemy.url must be set (see migrations.runner)"
    engine = create_engine(normalise_url(url), poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata, compare_type=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; run `batchctl db upgrade`")
run_migrations_online()
