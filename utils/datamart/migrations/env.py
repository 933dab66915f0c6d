"""Alembic's environment: migrations run on the connection that :func:`utils.datamart.migrations.upgrade` opens."""

from alembic import context

from utils.datamart.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
