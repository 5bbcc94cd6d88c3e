"""CLI commands of the HTTP API, registered on the ``provenance`` group: ``serve`` and ``api-keys``.

Both read the group's state object (``ctx.obj``: ``.settings`` with ``--data-dir`` applied, and ``.ledger``).
"""

from __future__ import annotations

from typing import Any

import click


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535), help="TCP port.")
@click.pass_obj
def serve(state: Any, host: str, port: int) -> None:
    """Run the HTTP API and the journalist page (uvicorn). On the embedded default everything, the ingest queue
    included, runs in this process: no broker."""
    import uvicorn

    from provenance.api.app import create_app

    from provenance.api.request_line import uri_limit_protocol
    from provenance.api.timeouts import header_timeout_protocol

    settings = state.settings
    app = create_app(settings=settings)
    # uvicorn's own proxy-header handling is off (its default trusts any X-Forwarded-For from 127.0.0.1): the app
    # believes the header only from PROVENANCE_API_TRUSTED_PROXIES (provenance/api/clients.py). Headers must arrive
    # within PROVENANCE_API_HEADER_TIMEOUT_S; h11 bounds their size (docs/hardening.md).
    uvicorn.run(app, host=host, port=port, proxy_headers=False, log_config=None, access_log=False,
                http=uri_limit_protocol(header_timeout_protocol(settings.api_header_timeout_s)),  # 414: too long
                timeout_keep_alive=max(1, round(settings.api_keep_alive_timeout_s)))


@click.group("api-keys")
def api_keys() -> None:
    """Publishers' API keys for the HTTP API (shown once; only their SHA-256 is stored)."""


@api_keys.command("create")
@click.argument("publisher")
@click.pass_obj
def api_keys_create(state: Any, publisher: str) -> None:
    """Issue a new key for PUBLISHER and print it once."""
    from provenance.api.keys import issue_api_key_message

    click.echo(issue_api_key_message(state.ledger.engine, publisher))


@api_keys.command("list")
@click.option("--publisher", default=None)
@click.pass_obj
def api_keys_list(state: Any, publisher: str | None) -> None:
    """Key ids (never the keys), their publisher, and when they were created or revoked."""
    from provenance.api.keys import list_api_keys

    for info in list_api_keys(state.ledger.engine, publisher):
        revoked = f"revoked {info.revoked_at:%Y-%m-%d %H:%M:%S}" if info.revoked_at else "active"
        click.echo(f"{info.key_id}\t{info.publisher_id}\t{info.created_at:%Y-%m-%d %H:%M:%S}\t{revoked}")


@api_keys.command("revoke")
@click.argument("key_id")
@click.pass_obj
def api_keys_revoke(state: Any, key_id: str) -> None:
    """Revoke a key by its id (the 16 hex digits after 'prov_')."""
    from provenance.api.keys import revoke_api_key

    revoke_api_key(state.ledger.engine, key_id)
    click.echo(f"API key {key_id} revoked")
