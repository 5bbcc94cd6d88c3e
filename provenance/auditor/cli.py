"""``provenance audit --from-tiles URL|DIR ...``: the thin shell over :func:`provenance.auditor.tiles_audit.audit_tiles`.

The options are declared here (:func:`tiles_audit_options`) and applied to the ``audit`` command in
``provenance/cli.py``; without ``--from-tiles`` that command runs the database audit and these options are refused.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

TILES_ONLY = {"blocks": "--blocks", "chain_rpc": "--chain-rpc", "contract": "--contract", "log_key": "--log-key",
              "witnesses": "--witness", "quorum": "--quorum", "publisher_keys": "--publisher-key"}


def tiles_audit_options(fn: F) -> F:
    """The ``--from-tiles`` family of options (keyword arguments named as in :data:`TILES_ONLY`)."""
    options = [
        click.option("--from-tiles", "from_tiles", metavar="URL|DIR", default=None,
                     help="Audit from public data only: a tiled log (C2SP tlog-tiles) at an HTTP(S) URL prefix or in "
                          "a directory (provenance log export-tiles). Needs no data directory."),
        click.option("--blocks", metavar="CAR|IPFS-API-URL", default=None,
                     help="With --from-tiles: record blobs from a CAR (provenance export-car) or an IPFS RPC API; "
                          "each must match its CID and parse as a record."),
        click.option("--chain-rpc", "chain_rpc", metavar="URL", default=None,
                     help="With --from-tiles: check the log's anchors on this EVM JSON-RPC node."),
        click.option("--contract", metavar="ADDRESS", default=None,
                     help="ProvenanceAnchor address for --chain-rpc (default: PROVENANCE_CHAIN_CONTRACT_ADDRESS)."),
        click.option("--log-key", "log_key", metavar="VKEY", default=None,
                     help="The log's verifier key (<name>+<hex id>+<base64 key>) to check the checkpoint signature."),
        click.option("--witness", "witnesses", metavar="VKEY", multiple=True,
                     help="A witness's verifier key (type 0x04, C2SP tlog-cosignature); repeatable."),
        click.option("--quorum", type=click.IntRange(min=0), default=None,
                     help="Valid cosignatures the checkpoint needs (default: every --witness)."),
        click.option("--publisher-key", "publisher_keys", metavar="KEY", multiple=True,
                     help="A publisher's Ed25519 public key (base64 or hex, 32 bytes) to check record signatures; "
                          "repeatable. Records carry only a key id."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def refuse_tiles_options(given: dict[str, Any]) -> None:
    """Usage error when a ``--from-tiles`` option is given without ``--from-tiles``."""
    used = [flag for name, flag in TILES_ONLY.items() if given.get(name) not in (None, ())]
    if used:
        raise click.UsageError(f"{', '.join(used)} only apply with --from-tiles")


def _publisher_key(text: str) -> tuple[str, Any]:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from provenance.records import key_id_for

    raw: bytes | None = None
    try:
        raw = bytes.fromhex(text) if len(text) == 64 else base64.b64decode(text, validate=True)
    except (ValueError, binascii.Error):
        raw = None
    if raw is None or len(raw) != 32:
        raise click.BadParameter(f"{text!r} is not a 32-byte Ed25519 public key in base64 or hex",
                                 param_hint="--publisher-key")
    key = Ed25519PublicKey.from_public_bytes(raw)
    return key_id_for(key), key


def run_tiles_audit(*, from_tiles: str, as_json: bool, blocks: str | None, chain_rpc: str | None,
                    contract: str | None, log_key: str | None, witnesses: tuple[str, ...], quorum: int | None,
                    publisher_keys: tuple[str, ...], trust_operator_rotations: bool = False,
                    default_contract: str | None = None) -> bool:
    """Run the audit and print its report; True when everything checked verified."""
    from provenance.auditor.sources import open_block_source, open_tile_source
    from provenance.auditor.tiles_audit import AuditPolicy, audit_tiles
    from provenance.errors import CheckpointError
    from provenance.translog.checkpoint import parse_verifier_key
    from provenance.translog.cosignature import parse_witness_vkey

    try:
        vkey = parse_verifier_key(log_key) if log_key else None
    except CheckpointError as exc:
        raise click.BadParameter(str(exc), param_hint="--log-key") from None
    try:
        wkeys = tuple(parse_witness_vkey(w) for w in witnesses)
    except CheckpointError as exc:
        raise click.BadParameter(str(exc), param_hint="--witness") from None
    if quorum is not None and quorum > len(wkeys):
        raise click.BadParameter(f"a quorum of {quorum} needs at least {quorum} --witness keys, got {len(wkeys)}",
                                 param_hint="--quorum")
    contract = contract or default_contract
    if chain_rpc and not contract:
        raise click.UsageError("--chain-rpc needs --contract ADDRESS (or PROVENANCE_CHAIN_CONTRACT_ADDRESS)")
    policy = AuditPolicy(log_key=vkey, witnesses=wkeys, quorum=quorum,
                         publisher_keys=dict(_publisher_key(k) for k in publisher_keys),
                         trust_operator_rotations=trust_operator_rotations)

    tiles = open_tile_source(from_tiles)
    block_source = open_block_source(blocks) if blocks else None
    try:
        chain = None
        if chain_rpc:
            from provenance.auditor.chain import ChainAnchors

            assert contract is not None
            chain = ChainAnchors.connect(chain_rpc, contract)
        report = audit_tiles(tiles, policy, blocks=block_source, chain=chain)
    finally:
        tiles.close()
        if block_source is not None:
            block_source.close()
    if as_json:
        click.echo(json.dumps(report.to_obj(), indent=2, sort_keys=True))
    else:
        click.echo(report.summary())
    return report.ok
