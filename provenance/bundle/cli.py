"""``provenance verify BUNDLE``: the thin shell around :func:`verify_bundle` (and the opt-in chain read), and the
writer behind ``provenance records proof CID --bundle OUT``.

``verify`` needs no data directory, no database and no server: exit 0 when every check passes, 1 when one fails
(``FAILED (<check>): <why>`` on stderr, or ``{"ok": false, "check", "error"}`` with ``--json``).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from provenance.errors import BundleError, ProvenanceError

MAX_IMAGE_BYTES = 1 << 30  # --image is read whole (its CID needs every byte)

if TYPE_CHECKING:
    from provenance.bundle.model import ProofBundle
    from provenance.ledger import Ledger


def _echo_json(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2, sort_keys=True))


def _read(path: Path, limit: int, check: str) -> bytes:
    try:
        with path.open("rb") as fh:
            data = fh.read(limit + 1)
    except OSError as exc:
        raise BundleError(f"cannot read {path}: {exc.strerror or exc}", check=check) from None
    if len(data) > limit:
        raise BundleError(f"{path} is larger than {limit} bytes", check=check)
    return data


@click.command("verify")
@click.argument("bundle_path", metavar="BUNDLE", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--image", "image_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also check that FILE is the record's image (its sha256 and CID).")
@click.option("--chain-rpc", "chain_rpc", metavar="URL", default=None,
              help="Read the checkpoint's anchor back from the ProvenanceAnchor contract through this JSON-RPC node.")
@click.option("--log-key", "log_key", metavar="VKEY", default=None,
              help="The log's verifier key (provenance log key prints it). Unset: the bundle's own key, reported as "
                   "trusted on first use.")
@click.option("--witness-key", "witness_keys", metavar="VKEY", multiple=True,
              help="A witness's cosignature verifier key; repeat for each witness.")
@click.option("--witness-quorum", type=click.IntRange(min=0), default=None,
              help="Valid cosignatures required among --witness-key (default: all of them).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object: the report, or {ok: false, check, error}.")
def verify_command(bundle_path: Path, image_path: Path | None, chain_rpc: str | None, log_key: str | None,
                   witness_keys: tuple[str, ...], witness_quorum: int | None, as_json: bool) -> None:
    """Check a proof bundle offline: the record and both its signatures, the publisher's key history, inclusion in
    the checkpoint, the checkpoint's signature (and witnesses), the image's digest with --image, and the anchor on
    chain with --chain-rpc. No data directory, no database, no server. Exit 0: every check passed; 1: one failed."""
    from provenance.bundle import MAX_BUNDLE_BYTES, ProofBundle, VerifyPolicy, verify_bundle

    try:
        bundle = ProofBundle.from_json(_read(bundle_path, MAX_BUNDLE_BYTES, "file"))
        image = None if image_path is None else _read(image_path, MAX_IMAGE_BYTES, "image.file")
        policy = VerifyPolicy(log_key=log_key, witness_keys=witness_keys, witness_quorum=witness_quorum)
        report = verify_bundle(bundle, image=image, policy=policy)
        chain = None
        if chain_rpc is not None:
            from provenance.bundle.chain import verify_anchor_on_chain

            chain = verify_anchor_on_chain(bundle, report, chain_rpc)
    except BundleError as exc:
        if as_json:
            _echo_json({"ok": False, "check": exc.check, "error": str(exc)})
        else:
            click.echo(f"FAILED ({exc.check}): {exc}", err=True)
        sys.exit(1)
    if as_json:
        obj = report.to_obj()
        obj["chain"] = None if chain is None else chain.to_obj()
        _echo_json(obj)
        return
    click.echo(f"OK: bundle verifies: record {report.record_cid}")
    click.echo(f"  publisher {report.publisher!r}, key {report.key_id} ({report.custody} custody), "
               f"{report.key_events} key event(s) replayed")
    click.echo(f"  leaf {report.leaf_index} of checkpoint {report.origin} size {report.tree_size} root "
               f"{report.root.hex()}")
    trust = report.log_key_trust + (": pass --log-key to pin it" if log_key is None else "")
    click.echo(f"  log key {report.log_key} ({trust})")
    if report.witnesses:
        click.echo(f"  cosigned by {', '.join(report.witnesses)}")
    click.echo(f"  image sha256 {report.image_sha256}: " + ("matches --image" if report.image_checked
                                                             else "not checked (--image FILE)"))
    if report.withdrawn_at:
        click.echo(f"  WITHDRAWN by its publisher at {report.withdrawn_at}")
    a = report.anchor
    if chain is not None:
        click.echo(f"  anchored on chain {chain.chain_id} (contract {chain.contract}, block {chain.block}) at "
                   f"{chain.to_obj()['block_time']}, read from {chain.rpc}")
    elif a is not None:
        note = ("ephemeral in-process chain: no durable timestamp" if a["ephemeral"]
                else "not read back (--chain-rpc URL)")
        click.echo(f"  anchor receipt: chain {a['chain_id']}, tx {a['tx']}, block {a['block']} at {a['block_time']} "
                   f"({note})")
    else:
        click.echo("  no anchor receipt: the checkpoint was not anchored on a chain")
    click.echo("  checks: " + ", ".join(c.check for c in report.checks) + (", anchor.chain" if chain else ""))


def write_bundle(ledger: Ledger, cid: str, out: Path) -> ProofBundle:
    """Build record ``cid``'s bundle and write it to ``out`` atomically (nothing is written when anything fails)."""
    from provenance.bundle.build import build_bundle

    bundle = build_bundle(ledger, cid)
    if bundle is None:
        raise ProvenanceError(f"no record {cid}")
    data = bundle.to_json()
    out = out.expanduser()
    try:
        fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    except OSError as exc:
        raise ProvenanceError(f"cannot write {out}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, out)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise ProvenanceError(f"cannot write {out}: {exc.strerror or exc}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return bundle


def describe_written(bundle: ProofBundle, out: Path) -> str:
    from provenance.translog.checkpoint import parse_checkpoint_note

    size = parse_checkpoint_note(bundle.checkpoint)[0].size
    a = bundle.anchor
    anchor = ("not anchored" if a is None else f"anchored on chain {a.chain_id} block {a.block}"
              + (" (ephemeral in-process chain)" if a.ephemeral else ""))
    return (f"wrote {out} ({len(bundle.to_json())} bytes, sha256 {bundle.sha256}): record {bundle.record.cid} at "
            f"leaf {bundle.record.index} of checkpoint size {size}, {len(bundle.key_events)} key event(s), {anchor}")
