"""``provenance db upgrade`` and ``provenance db current``: the schema revision, by hand.

Every process upgrades the database when it opens it (``provenance.db.create_schema``), so these are for an
operator who wants to do it first, on purpose (before starting a new version's replicas), or to see where it is.
"""

from __future__ import annotations

from typing import Any

import click
from sqlalchemy.engine import make_url


@click.group("db")
def db() -> None:
    """The database schema: its revision and upgrades (Alembic)."""


def _url(state: Any) -> str:
    return str(state.settings.resolved_database_url)


@db.command("current")
@click.pass_obj
def current(state: Any) -> None:
    """Print the database's schema revision and the head of this version."""
    from provenance.db import make_engine
    from provenance.migrations import current_state, head_revision

    state.settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(_url(state))
    try:
        click.echo(f"database: {make_url(_url(state)).render_as_string(hide_password=True)}")
        click.echo(f"revision: {current_state(engine).describe()}")
        click.echo(f"head: {head_revision()}")
    finally:
        engine.dispose()


@db.command("upgrade")
@click.option("--sql", "as_sql", is_flag=True,
              help="Print the SQL of the upgrade instead of running it (from the database's current revision; an "
                   "empty or unversioned database prints the whole history).")
@click.pass_obj
def upgrade(state: Any, as_sql: bool) -> None:
    """Upgrade the database to this version's head revision (a fresh database is created at it)."""
    from provenance.db import make_engine
    from provenance.migrations import current_state, head_revision, upgrade_sql
    from provenance.migrations import upgrade as run_upgrade

    state.settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(_url(state))
    try:
        if as_sql:
            rev = current_state(engine).revision
            click.echo(upgrade_sql(_url(state), from_revision=rev), nl=False)
            return
        before, after = run_upgrade(engine)
    finally:
        engine.dispose()
    if before is None:
        click.echo(f"created the schema at revision {after}")
    elif before == after:
        click.echo(f"already at the head revision {head_revision()}")
    else:
        click.echo(f"upgraded from revision {before} to {after}")
