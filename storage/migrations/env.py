"""Alembic environment: runs each domain's migration branch (``alembic upgrade heads``)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

config = context.config
_url = config.get_main_option("sqlalchemy.url")
if not _url:
    raise RuntimeError("sqlalchemy.url must be set by storage.migrate")
url: str = _url


def run() -> None:
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=config.attributes.get("target_metadata"),
            render_as_batch=url.startswith("sqlite"),
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run()
