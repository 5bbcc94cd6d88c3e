"""Alembic's environment for the ``provenance`` schema (run by Alembic, not imported).

Online, the caller hands over an open connection in ``config.attributes["connection"]`` (see
``provenance.migrations.runner``): migrations then run inside the caller's transaction, under its lock. Offline
(``provenance db upgrade --sql``), the SQL is written out for the URL in the ``sqlalchemy.url`` option.
"""

from __future__ import annotations

from alembic import context

from provenance.db import import_table_modules, metadata

import_table_modules()
config = context.config

if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    connection = config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("provenance migrations run through provenance.migrations (an open connection), "
                           "not from the alembic command line")
    context.configure(connection=connection, target_metadata=metadata, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()
