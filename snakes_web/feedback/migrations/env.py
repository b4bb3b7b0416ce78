"""Alembic's entry point: run the migrations on the connection ``database.upgrade`` hands over."""
from __future__ import annotations

from alembic import context

connection = context.config.attributes["connection"]
# render_as_batch: SQLite changes a table by copying it; Alembic's batch mode does that for us.
context.configure(connection=connection, target_metadata=None, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
