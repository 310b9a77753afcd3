"""Alembic environment of the store's migrations (see __init__.py); not imported by tollmeter
itself, but run by Alembic."""

from __future__ import annotations

from alembic import context

from tollmeter.store import schema

config = context.config
target_metadata = schema.metadata


def run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata,
                      literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()
elif config.attributes.get("connection") is not None:
    run(config.attributes["connection"])
else:  # the alembic command line, with sqlalchemy.url in its ini file
    from tollmeter.store.store import Store

    store = Store(config.get_main_option("sqlalchemy.url"), create=False)
    try:
        with store.engine.begin() as connection:
            run(connection)
    finally:
        store.close()
