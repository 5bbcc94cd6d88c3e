"""Schema migrations (Alembic): revision 0001 is the schema of main at 84261ec, each later one a step from it.

``provenance.db.create_schema`` brings any database to the head at open (see :mod:`.runner`); ``provenance db
upgrade`` / ``provenance db current`` do it and show it by hand. ``env.py`` and ``versions/`` are Alembic's; a new
revision is a new ``versions/NNNN_what.py`` (the next number; ``tests/provenance/test_migrations.py`` checks that
the models and the head agree). See docs/migrations.md.
"""

from provenance.migrations.runner import (
    BASELINE_REVISION,
    BASELINE_TABLES,
    SchemaState,
    current_state,
    ensure_schema,
    head_revision,
    upgrade,
    upgrade_sql,
)

__all__ = ["BASELINE_REVISION", "BASELINE_TABLES", "SchemaState", "current_state", "ensure_schema", "head_revision",
           "upgrade", "upgrade_sql"]
