"""``provenance chain resolve-binding``: the C2PA federated lookup from the command line (no data directory)."""

from __future__ import annotations

import json

import click


@click.command("resolve-binding")
@click.argument("value")
@click.option("--alg", default=None, metavar="NAME",
              help="Keep only entries of this algorithm (its soft binding algorithm list name).")
@click.option("--rpc", "rpc_url", envvar="PROVENANCE_CHAIN_RPC_URL", required=True, metavar="URL",
              help="Ethereum JSON-RPC URL (env PROVENANCE_CHAIN_RPC_URL).")
@click.option("--contract", "contract", envvar="PROVENANCE_CHAIN_CONTRACT_ADDRESS", required=True, metavar="0x...",
              help="The federated-lookup contract (env PROVENANCE_CHAIN_CONTRACT_ADDRESS).")
@click.option("--from-block", default=0, show_default=True, type=click.IntRange(min=0),
              help="First block whose events are searched.")
def resolve_binding_command(value: str, alg: str | None, rpc_url: str, contract: str, from_block: int) -> None:
    """Where the soft binding VALUE resolves: the contract's describe() says how its key-value store is kept, then
    the chain is asked for VALUE's entries. VALUE is base64 (as the Soft Binding Resolution API
    takes it) or hex. Prints one JSON object per entry with its endpoints, manifest id and manifest URLs; exit 1
    when the chain holds none."""
    from provenance.c2pa.federated import resolve_binding
    from provenance.softbinding.algorithms import binding_value

    text = value.strip()
    if len(text) in (16, 64) and all(c in "0123456789abcdefABCDEF" for c in text):
        text = binding_value(text)
    found = resolve_binding(rpc_url, contract, text, alg=alg, from_block=from_block)
    for entry in found:
        click.echo(json.dumps(entry.to_obj(), sort_keys=True))
    if not found:
        click.echo(f"no {alg or 'soft'} binding {text} published by {contract}", err=True)
        raise SystemExit(1)
