"""``provenance`` command line: publishers, ingest, anchor, audit, and the embedded end-to-end demo.

Exit codes: 0 success; 1 an audit failed or some inputs were refused; 2 usage; 3 any other ProvenanceError
(the message names the failing part and, for services, where it was reached).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from provenance.auditor.cli import refuse_tiles_options, tiles_audit_options
from provenance.config import Settings, get_settings
from provenance.errors import ChainUnavailableError, ConfigError, InvalidImageError, ProvenanceError, UnknownPublisherError
from provenance.ledger import IngestFailure, IngestResult, Ledger, expand_image_paths
from provenance.logging import configure_logging
from provenance.records import PublisherMetadata

if TYPE_CHECKING:
    from provenance.ingest import IngestPipeline
    from provenance.services import Service


class _State:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._ledger: Ledger | None = None
        self._service: Service | None = None

    @property
    def service(self) -> Service:
        """Ledger + lookup + ingest pipeline (opens the hash index; the ledger alone is cheaper)."""
        if self._service is None:
            from provenance.services import open_service

            self._service = open_service(self.settings, self._ledger)
            self._ledger = self._service.ledger
        return self._service

    @property
    def ledger(self) -> Ledger:
        if self._ledger is None:
            from provenance.services import open_ledger

            self._ledger = open_ledger(self.settings)
        return self._ledger

    def close(self) -> None:
        if self._service is not None:
            self._service.close()
        elif self._ledger is not None:
            self._ledger.close()


def _echo_json(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2, sort_keys=True))


@click.group()
@click.option("--data-dir", type=click.Path(path_type=Path), envvar="PROVENANCE_DATA_DIR", default=None,
              help="Data directory (keyring, local block store, SQLite). Env: PROVENANCE_DATA_DIR.")
@click.pass_context
def cli(ctx: click.Context, data_dir: Path | None) -> None:
    """Image provenance ledger."""
    settings = get_settings()
    if data_dir is not None:
        settings = settings.model_copy(update={"data_dir": data_dir})
    configure_logging(settings.log_level, settings.log_format)
    state = _State(settings)
    ctx.obj = state
    ctx.call_on_close(state.close)


# --- publishers ---------------------------------------------------------------------------------------------------
@cli.group()
def publishers() -> None:
    """Manage publishers and their signing keys."""


@publishers.command("add")
@click.argument("name")
@click.option("--public-key", "public_key", type=click.File("rb"), default=None,
              help="The publisher's Ed25519 public key (PEM file, or - for stdin): publisher custody, the service "
                   "never sees the private key. Without it: a custodial key is created in the local keyring.")
@click.pass_obj
def publishers_add(state: _State, name: str, public_key: Any) -> None:
    """Register NAME (a key-registration event in the log, signed by the operator) and print its HTTP API key
    (shown once: only its hash is stored)."""
    from provenance.api.keys import issue_api_key_message
    from provenance.client.keys import parse_public_key

    key = parse_public_key(public_key.read(), public_key.name) if public_key is not None else None
    key_id = state.ledger.add_publisher(name, key)
    custody = "publisher" if key is not None else "service"
    click.echo(f"publisher {name} registered with key {key_id} ({custody} custody)")
    click.echo(issue_api_key_message(state.ledger.engine, name))


@publishers.command("rotate")
@click.argument("name")
@click.option("--public-key", "public_key", type=click.File("rb"), default=None,
              help="The new key of a publisher that lost its old one: the rotation is signed by the operator and "
                   "marked so in the log. Without it: a service-custody publisher's key is rotated (signed by the "
                   "old key).")
@click.pass_obj
def publishers_rotate(state: _State, name: str, public_key: Any) -> None:
    """Rotate NAME's key. A publisher holding its own key rotates with `provenance client rotate` instead."""
    from provenance import keyevents
    from provenance.client.keys import parse_public_key

    ledger = state.ledger
    if public_key is None:
        click.echo(f"publisher {name}: new custodial key {ledger.rotate_custodial_key(name)}")
        return
    new = parse_public_key(public_key.read(), public_key.name)
    current = [k for k in ledger.key_history().keys.get(name, {}).values() if k.valid_at(2**62)]
    if not current:
        raise click.ClickException(f"publisher {name!r} has no valid key to rotate")
    event = keyevents.rotation(name, current[-1].key_id, new, "publisher", ledger.log_signing_key(),
                               by_operator=True)
    cid = ledger.append_key_event(event)
    click.echo(f"publisher {name}: key {current[-1].key_id} replaced by {event.subject_key_id} on the operator's "
               f"authority (event {cid})")


@publishers.command("revoke")
@click.argument("name")
@click.argument("key_id")
@click.option("--revoked-at", default=None, help="RFC 3339 UTC time from which the key is revoked (default: now).")
@click.option("--reason", default="", help="Why (kept in the log).")
@click.pass_obj
def publishers_revoke(state: _State, name: str, key_id: str, revoked_at: str | None, reason: str) -> None:
    """Revoke KEY_ID of NAME on the operator's authority (a publisher revokes its own with `client revoke`)."""
    from provenance import keyevents

    ledger = state.ledger
    event = keyevents.revocation(name, key_id, ledger.log_signing_key(), revoked_at=revoked_at, reason=reason,
                                 by_operator=True)
    click.echo(f"revoked {key_id} of {name} (event {ledger.append_key_event(event)})")


@publishers.command("list")
@click.pass_obj
def publishers_list(state: _State) -> None:
    """One line per key: publisher, key id, custody, state (valid / rotated / revoked at ...)."""
    history = state.ledger.key_history()
    with state.ledger.reader.connect() as conn:
        for pub, key_id in state.ledger.store.list_publishers(conn):
            k = history.key(pub, key_id)
            custody = k.custody if k else "service"
            status = "valid" if k is None or (k.revoked_leaf is None and k.retired_leaf is None) else (
                f"revoked at {k.revoked_at}" if k.revoked_leaf is not None else "rotated")
            click.echo(f"{pub}\t{key_id}\t{custody}\t{status}")


# --- ingest ---------------------------------------------------------------------------------------------------------
def _parse_meta(pairs: tuple[str, ...]) -> PublisherMetadata:
    """``--meta KEY=VALUE`` pairs under the HTTP API's metadata rules (``provenance.api.schemas.MetadataIn``)."""
    from provenance.api.schemas import metadata_from_pairs
    from provenance.errors import InvalidMetadataError

    out: list[tuple[str, str]] = []
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--meta")
        out.append((key, value))
    try:
        return metadata_from_pairs(out)
    except InvalidMetadataError as exc:
        raise click.BadParameter(str(exc), param_hint="--meta") from None


def run_ingest(pipeline: IngestPipeline, paths: list[Path], publisher: str, metadata: PublisherMetadata,
               as_json: bool = False) -> tuple[list[IngestResult], list[IngestFailure]]:
    """Every step of every image in this process (``--inline``)."""
    done: list[IngestResult] = []
    failed: list[IngestFailure] = []
    for outcome in pipeline.ingest_paths(paths, publisher=publisher, metadata=metadata):
        if isinstance(outcome, IngestFailure):
            failed.append(outcome)
            click.echo(f"REFUSED {outcome.source}: {outcome.error}", err=True)
        else:
            done.append(outcome)
            if not as_json:
                tag = "duplicate" if outcome.duplicate else "appended"
                click.echo(f"{tag} leaf {outcome.leaf_index} record {outcome.cid}")
    return done, failed


def run_queued(state: _State, paths: list[Path], publisher: str, metadata: PublisherMetadata,
               as_json: bool) -> tuple[list[IngestResult], list[IngestFailure]]:
    """Through the ingest queue (Celery workers when PROVENANCE_QUEUE=celery, else in-process), with a progress bar."""
    from workers.queue import open_queue

    service = state.service
    queue = open_queue(state.settings, service.pipeline)
    done: list[IngestResult] = []
    failed: list[IngestFailure] = []
    with click.progressbar(length=len(list(expand_image_paths(paths))), label="ingest", file=sys.stderr,
                           show_pos=True) as bar:
        try:
            items = queue.submit_many(paths, publisher=publisher, metadata=metadata,
                                      progress=lambda _item, _done, _total: bar.update(1))
        finally:
            queue.close()
    for item in items:  # input order
        st = item.status
        if item.refused or st is None or st.state != "succeeded" or not st.record_cid:
            reason = item.refused or (st.error if st else None) or (st.state if st else "not submitted")
            failed.append(IngestFailure(item.source, InvalidImageError(reason)))
            continue
        with service.ledger.reader.connect() as conn:
            rec = service.ledger.store.get(conn, st.record_cid)
        if rec is None:
            failed.append(IngestFailure(item.source, InvalidImageError(f"record {st.record_cid} not found")))
            continue
        done.append(IngestResult(cid=rec.cid, leaf_index=rec.leaf_index, image_cid=rec.image_cid,
                                 duplicate=st.duplicate))
    for f in failed:
        click.echo(f"REFUSED {f.source}: {f.error}", err=True)
    if not as_json:
        for r in done:
            click.echo(f"{'duplicate' if r.duplicate else 'appended'} leaf {r.leaf_index} record {r.cid}")
    return done, failed


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--publisher", required=True, help="Registered publisher name.")
@click.option("--meta", multiple=True, metavar="KEY=VALUE",
              help="Metadata: title, author, source_url, licence, capture_time, or any free-form key.")
@click.option("--inline", is_flag=True, help="Run every step in this process, without the queue.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def ingest(state: _State, paths: tuple[Path, ...], publisher: str, meta: tuple[str, ...], inline: bool,
           as_json: bool) -> None:
    """Sign and append images (a directory means every image in it) to the ledger, and index them for lookup.
    Goes through the ingest queue (progress bar on stderr) unless --inline."""
    with state.ledger.reader.connect() as conn:
        if not state.ledger.store.has_publisher(conn, publisher):
            raise UnknownPublisherError(f"publisher {publisher!r} is not registered (provenance publishers add)")
    if inline:
        done, failed = run_ingest(state.service.pipeline, list(paths), publisher, _parse_meta(meta), as_json)
    else:
        done, failed = run_queued(state, list(paths), publisher, _parse_meta(meta), as_json)
    if as_json:
        _echo_json({"ingested": [r.__dict__ for r in done],
                    "refused": [{"source": f.source, "error": str(f.error)} for f in failed]})
    else:
        new = sum(not r.duplicate for r in done)
        click.echo(f"{new} appended, {len(done) - new} already present, {len(failed)} refused")
    if failed:
        sys.exit(1)


# --- anchor / audit -----------------------------------------------------------------------------------------------
@cli.command()
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def anchor(state: _State, as_json: bool) -> None:
    """Sign a checkpoint of the log and timestamp it on chain (one transaction)."""
    cp = state.ledger.anchor()
    backend = state.ledger.anchor_backend
    r = cp.anchor
    assert r is not None
    if as_json:
        _echo_json({"tree_size": cp.tree_size, "root": cp.root.hex(), "chain": backend.describe(),
                    "chain_id": r.chain_id, "contract": r.contract_address, "tx": r.tx_hash,
                    "block": r.block_number, "block_timestamp": r.block_timestamp, "gas_used": r.gas_used,
                    "ephemeral": r.ephemeral, "checkpoint": cp.note})
        return
    click.echo(f"checkpoint: tree size {cp.tree_size}, root {cp.root.hex()}")
    click.echo(f"anchored on {backend.describe()}: tx {r.tx_hash}, block {r.block_number}, gas {r.gas_used}")
    if r.ephemeral:
        click.echo("NOTE: in-process EVM: this anchor lasts only as long as this process; it is not a durable "
                   "timestamp. Set PROVENANCE_CHAIN_RPC_URL for a real chain.")


def run_audit(state: _State, as_json: bool, trust_operator_rotations: bool = False) -> bool:
    from provenance.audit import audit_ledger

    ledger = state.ledger
    try:
        backend = ledger.anchor_backend
    except ProvenanceError as exc:
        click.echo(f"WARNING: chain not available for the audit: {exc}", err=True)
        backend = None
    report = audit_ledger(ledger, log_public_key=ledger.log_public_key(), anchor=backend,
                          witnesses=[w.key for w in state.settings.witness_endpoints],
                          witness_quorum=state.settings.witness_quorum,
                          trust_operator_rotations=trust_operator_rotations)
    if as_json:
        _echo_json(report.to_obj())
    else:
        click.echo(report.summary())
    return report.ok


@cli.command()
@click.option("--json", "as_json", is_flag=True)
@click.option("--trust-operator-rotations", is_flag=True,
              help="Accept (warn about) publisher-custody records signed with a key the operator installed for a "
                   "lost key; by default they fail, since the operator could have signed them.")
@tiles_audit_options
@click.pass_obj
def audit(state: _State, as_json: bool, trust_operator_rotations: bool, from_tiles: str | None,
          **tiles: Any) -> None:
    """Verify every record, checkpoint and anchor; non-zero exit on any failure. With --from-tiles, from public
    data only (tiles, record blobs, the chain): no data directory, no database."""
    if from_tiles is not None:
        from provenance.auditor.cli import run_tiles_audit

        ok = run_tiles_audit(from_tiles=from_tiles, as_json=as_json, trust_operator_rotations=trust_operator_rotations,
                             default_contract=state.settings.chain_contract_address, **tiles)
        sys.exit(0 if ok else 1)
    refuse_tiles_options(tiles)
    if not run_audit(state, as_json, trust_operator_rotations):
        sys.exit(1)


# --- chain ----------------------------------------------------------------------------------------------------------
@cli.group()
def chain() -> None:
    """The anchoring contract on a real chain."""


@chain.command("deploy")
@click.option("--if-missing", is_flag=True, help="Do nothing if a working contract is already known for this chain.")
@click.pass_obj
def chain_deploy(state: _State, if_missing: bool) -> None:
    """Deploy ProvenanceAnchor to PROVENANCE_CHAIN_RPC_URL and remember its address in the data directory."""
    from provenance.services import deploy_contract, make_anchor

    if if_missing:
        try:
            existing = make_anchor(state.settings, state.ledger)
        except ChainUnavailableError:
            raise
        except ProvenanceError:
            existing = None
        if existing is not None:
            click.echo(f"ProvenanceAnchor already at {existing.contract_address} on chain {existing.chain_id}")
            return
    deployed = deploy_contract(state.settings, state.ledger)
    click.echo(f"ProvenanceAnchor deployed at {deployed.contract_address} on chain {deployed.chain_id}")


# --- log / records ----------------------------------------------------------------------------------------------
@cli.group("log")
def log_group() -> None:
    """The transparency log as public, static resources."""


@log_group.command("export-tiles")
@click.argument("out_dir", metavar="DIR", type=click.Path(file_okay=False, path_type=Path))
@click.pass_obj
def log_export_tiles(state: _State, out_dir: Path) -> None:
    """Write DIR/checkpoint (the latest published checkpoint) and DIR/tile/... (C2SP tlog-tiles), the same bytes
    as GET /checkpoint and GET /tile/..., so any static web server or CDN can serve the log."""
    from provenance.tlog_tiles import export_tiles

    done = export_tiles(state.ledger, out_dir)
    click.echo(f"wrote {done.files} files ({done.bytes} bytes) to {out_dir}: checkpoint at tree size {done.tree_size}")


@log_group.command("key")
@click.pass_obj
def log_key(state: _State) -> None:
    """Print the log's signed-note verifier key (<name>+<key ID>+<base64 key>): what checks its checkpoints and its
    lookup receipts (verify-receipt --service-key), the same string records proof gives as verifier_key."""
    from provenance.keyring import Keyring
    from provenance.translog import encode_verifier_key

    # Never mint a key here: run in the wrong directory, that would hand an auditor a key no checkpoint is signed by.
    if not Keyring(state.settings.keyring_dir).has_service_key(state.settings.log_key_name):
        raise ConfigError(f"no log key in {state.settings.data_dir}: is --data-dir (PROVENANCE_DATA_DIR) the "
                          "service's data directory?")
    click.echo(encode_verifier_key(state.settings.log_key_name, state.ledger.log_public_key()))


@cli.group()
def records() -> None:
    """Read records and their proofs."""


@records.command("show")
@click.argument("cid")
@click.pass_obj
def records_show(state: _State, cid: str) -> None:
    with state.ledger.reader.connect() as conn:
        rec = state.ledger.store.get(conn, cid)
    if rec is None:
        raise ProvenanceError(f"no record {cid}")
    click.echo(rec.record_bytes.decode("utf-8"))


@records.command("proof")
@click.argument("cid")
@click.option("--bundle", "bundle_out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the offline proof bundle to OUT instead (check it with provenance verify OUT).")
@click.pass_obj
def records_proof(state: _State, cid: str, bundle_out: Path | None) -> None:
    """Inclusion proof of a record in the latest checkpoint, with the signed checkpoint note, the log's verifier
    key and the chain anchor (the same JSON as GET /v1/records/CID/proof). With --bundle OUT: one self-contained
    file (record, key events, proofs, checkpoint, anchor) that provenance verify checks with no data directory."""
    from provenance.proofs import record_proof

    if bundle_out is not None:
        from provenance.bundle.cli import describe_written, write_bundle

        click.echo(describe_written(write_bundle(state.ledger, cid, bundle_out), bundle_out))
        return

    proof = record_proof(state.ledger, cid)
    if proof is None:
        raise ProvenanceError(f"no record {cid}")
    if proof["checkpoint"] is None:
        raise ProvenanceError(f"record {cid} is not in a checkpoint yet: run provenance anchor")
    _echo_json(proof)


@records.command("c2pa-copy")
@click.argument("cid")
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--base-url", default="", metavar="URL",
              help="Public base URL of this service, to make the proof bundle's URL absolute (default: a path).")
@click.pass_obj
def records_c2pa_copy(state: _State, cid: str, out: Path, base_url: str) -> None:
    """Write a C2PA-signed copy of record CID's image to OUT: its manifest carries a c2pa.soft-binding assertion
    with our OSCAR-Net hash and model id (and the record CID), so soft-binding tools can find the record, and the
    record's proof bundle by sha256 and URL (/v1/records/CID/bundle?tree_size=N): the copy carries its own proof.
    The record must be in a checkpoint (provenance anchor). Needs PROVENANCE_C2PA_SIGNING_CERT and
    PROVENANCE_C2PA_SIGNING_KEY."""
    from provenance.bundle import bundle_url
    from provenance.bundle.build import build_bundle
    from provenance.c2pa import C2paConfigError, C2paSigningConfig, sign_with_soft_binding
    from provenance.records import parse_record
    from provenance.translog.checkpoint import parse_checkpoint_note

    signer = C2paSigningConfig.from_settings(state.settings)
    if signer is None:
        raise C2paConfigError("set PROVENANCE_C2PA_SIGNING_CERT and PROVENANCE_C2PA_SIGNING_KEY to sign C2PA copies")
    ledger = state.ledger
    with ledger.reader.connect() as conn:
        stored = ledger.store.get(conn, cid)
    if stored is None:
        raise ProvenanceError(f"no record {cid}")
    record = parse_record(stored.record_bytes).record
    bundle = build_bundle(ledger, cid)  # BundleError when no checkpoint covers the record yet: nothing written
    assert bundle is not None
    size = parse_checkpoint_note(bundle.checkpoint)[0].size
    proof_ref = {"record_cid": cid, "tree_size": size, "sha256": bundle.sha256,
                 "url": bundle_url(cid, size, base_url)}
    binding = next((h for h in record.hashes if h.alg == "oscar-net"), record.hashes[0])
    signed = sign_with_soft_binding(ledger.blockstore.get(record.image_cid), record.media_type,
                                    binding_alg=binding.alg, binding_value=binding.value, model_id=binding.model_id,
                                    record_cid=cid, title=record.metadata.title, signer=signer,
                                    proof_bundle=proof_ref)
    out.write_bytes(signed)
    click.echo(f"wrote {out} ({len(signed)} bytes): C2PA manifest with soft binding {binding.alg}={binding.value} "
               f"({binding.model_id}) -> record {cid}, proof bundle sha256 {bundle.sha256} at {proof_ref['url']}")


@cli.command("export-car")
@click.argument("out", type=click.Path(path_type=Path))
@click.pass_obj
def export_car(state: _State, out: Path) -> None:
    """Export every log entry (records and key events) and every image from the local block store as a CAR file
    any IPFS node can import (and `audit --from-tiles --blocks` can read)."""
    from provenance.blockstore.local import LocalBlockStore

    store = state.ledger.blockstore
    if not isinstance(store, LocalBlockStore):
        raise ProvenanceError("export-car reads the local block store (PROVENANCE_BLOCKSTORE=local)")
    cids: list[str] = []
    with state.ledger.reader.connect() as conn:
        for rec in state.ledger.store.iter_records(conn):
            cids.extend([rec.cid, rec.image_cid])
        cids.extend(state.ledger.log.record_cid_run(conn, 0, state.ledger.log.size(conn)))  # key events too
    cids = list(dict.fromkeys(cids))
    store.export_car(cids, out)
    click.echo(f"wrote {len(cids)} roots to {out}")


# --- robust hashes -------------------------------------------------------------------------------------------------
@cli.command("hash")
@click.argument("paths", nargs=-1)
@click.option("--files-from", type=click.File("r"), help="Read more paths from FILE, one per line ('-' = stdin).")
@click.option("--jsonl", is_flag=True, help='One JSON object per line: {"path", "hash", "model"} or {"path", "error"}.')
@click.option("--weights", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="OSCAR-Net checkpoint. Default: the shipped model.")
@click.option("--device", default=None, help="torch device (default: cuda if available, else cpu).")
def hash_command(paths: tuple[str, ...], files_from, jsonl: bool, weights: Path | None,  # type: ignore[no-untyped-def]
                 device: str | None) -> None:
    """Print the 64-bit OSCAR-Net hash of each image (a directory means every image in it)."""
    import hasher
    from hasher.errors import HasherError

    wanted = list(paths)
    if files_from is not None:
        wanted.extend(line.rstrip("\r\n") for line in files_from if line.strip())
    if not wanted:
        raise click.UsageError("give image paths or --files-from")
    model = hasher.load(weights, device)
    failed = False
    for given in _expand_hash_inputs(wanted):
        try:
            h = model.hash(given)
        except (HasherError, OSError) as exc:
            failed = True
            if jsonl:
                click.echo(json.dumps({"path": given, "error": str(exc)}))
            else:
                click.echo(f"ERROR {given}: {exc}", err=True)
            continue
        click.echo(json.dumps({"path": given, "hash": h.hex, "model": h.model_id}) if jsonl else f"{h.hex}  {given}")
    if failed:
        sys.exit(1)


def _expand_hash_inputs(paths: list[str]) -> list[str]:
    from provenance.images import IMAGE_SUFFIXES

    out: list[str] = []
    for given in paths:
        p = Path(given)
        if p.is_dir():
            out.extend(str(f) for f in sorted(p.rglob("*")) if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
        else:
            out.append(given)  # echoed exactly as given, readable or not
    return out


# --- lookup -----------------------------------------------------------------------------------------------------
def print_verdict(obj: dict[str, Any]) -> None:
    lead = "  lead: record " if obj["verdict"] == "same_scene" else "  record "  # another photo: a lead, not a copy
    click.echo(f"verdict: {obj['verdict']}" + (f"{lead}{obj['record_cid']}" if obj["record_cid"] else ""))
    if obj.get("confidence") is not None:
        click.echo(f"  confidence {obj['confidence']:.2f}" + ("" if obj.get("confident") else
                                                               " (weak evidence: needs a human look)"))
    click.echo(f"  {obj['explanation']}")
    click.echo(f"  hash {obj['hash']} ({obj['model']}); thresholds {obj['thresholds']}")
    for c in obj["candidates"]:
        tolerant = ", ".join(f"{alg} {d}" for alg, d in c.get("tolerant_distances", {}).items()) or \
            f"tolerant {c['tolerant_distance']}"
        click.echo(f"  candidate {c['record_cid']}: distance {c['distance']}, {tolerant}, "
                   f"inliers {c['inliers']}, {'passed' if c['passed'] else 'failed'}"
                   + (f", change {c['change_score']}" if c["change_score"] is not None else "")
                   + (f" ({c['reason']})" if c["reason"] else ""))
    for r in obj["regions"]:
        click.echo(f"  changed region x={r['x']} y={r['y']} {r['width']}x{r['height']}")
    for c in obj.get("object_changes", []):
        click.echo(f"  object change: {c['description']} (score {c['score']})")
    if obj["change_map"]:
        click.echo(f"  change map: {obj['change_map']}")
    for w in obj.get("withdrawn", []):
        click.echo(f"  withdrawn: record {w['record_cid']} of {w['publisher']} (these exact bytes), at "
                   f"{w['withdrawn_at']} by event {w['event_cid']}" + (f": {w['reason']}" if w["reason"] else ""))


@cli.command()
@click.argument("image", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="One JSON object (the same keys as POST /v1/lookup).")
@click.option("--receipt", "receipt_out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the signed lookup receipt to FILE (check it with provenance verify-receipt).")
@click.pass_obj
def lookup(state: _State, image: Path, as_json: bool, receipt_out: Path | None) -> None:
    """Is IMAGE a registered image (match), an edited copy of one (altered), another photo of a registered one's
    scene (same_scene: the record is a lead), or none of these (no_match)? Every answer comes with a receipt signed
    with the log's key (the JSON key receipt)."""
    from provenance.lookup_receipts import lookup_with_receipt

    data = image.read_bytes()
    verdict, signed = lookup_with_receipt(state.service, state.settings, data, name=str(image))
    if receipt_out is not None:
        receipt_out.write_bytes(signed.to_bytes())
    if as_json:
        _echo_json(verdict)
        return
    print_verdict(verdict)
    r = signed.receipt
    if r.record_cid is None:
        click.echo(f"  {r.no_match_statement} of {r.checkpoint.origin}")
    click.echo(f"  receipt {r.receipt_id}: signed by {r.service.name}+{r.service.key_id}, as of checkpoint "
               f"{r.checkpoint.size}" + (f", written to {receipt_out}" if receipt_out is not None else ""))


@cli.command("verify-receipt")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--service-key", "service_key", required=True, metavar="VKEY",
              help="The log's verifier key, as provenance log key prints it (name+hex8+base64).")
@click.option("--json", "as_json", is_flag=True)
def verify_receipt_command(file: Path, service_key: str, as_json: bool) -> None:
    """Check a lookup receipt offline (no data directory, no server): exit 0 when it verifies under VKEY, 1 when it
    does not, naming what failed."""
    from provenance.errors import ReceiptError
    from provenance.receipts import MAX_RECEIPT_BYTES, verify_receipt

    try:
        try:
            with file.open("rb") as fh:
                data = fh.read(MAX_RECEIPT_BYTES + 1)
        except OSError as exc:
            raise ReceiptError(f"cannot read {file}: {exc.strerror or exc}", check="file") from None
        r = verify_receipt(data, service_key)
    except ReceiptError as exc:
        if as_json:
            _echo_json({"ok": False, "check": exc.check, "error": str(exc)})
        else:
            click.echo(f"FAILED ({exc.check}): {exc}", err=True)
        sys.exit(1)
    statement = r.no_match_statement if r.verdict == "no_match" else f"{r.verdict}: record {r.record_cid}"
    if as_json:
        _echo_json({"ok": True, "receipt_id": r.receipt_id, "issued_at": r.issued_at, "verdict": r.verdict,
                    "record_cid": r.record_cid, "statement": statement, "query_sha256": r.query_sha256,
                    "service_key": f"{r.service.name}+{r.service.key_id}", "checkpoint": r.checkpoint.to_obj()})
        return
    click.echo(f"OK: receipt {r.receipt_id} verifies under {r.service.name}+{r.service.key_id}")
    click.echo(f"  {statement}")
    click.echo(f"  query sha256 {r.query_sha256}, issued {r.issued_at}")
    click.echo(f"  checkpoint {r.checkpoint.origin} size {r.checkpoint.size} root {r.checkpoint.to_obj()['root']}")


# --- the main job ---------------------------------------------------------------------------------------------------
@cli.command()
@click.option("--photos", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Photos to ingest (default: the photos bundled in the scikit-image wheel).")
@click.option("--publisher", default="demo-publisher", show_default=True)
@click.pass_obj
def demo(state: _State, photos: Path | None, publisher: str) -> None:
    """Main job on the embedded default: ingest, anchor, three lookups (match / altered / no_match), audit."""
    from provenance.demo import run_demo

    if "PROVENANCE_LOG_LEVEL" not in os.environ:  # the story on stdout; per-step logs only when asked for
        configure_logging("WARNING", state.settings.log_format)
    outcome = run_demo(state.service, photos=photos, publisher=publisher,
                       out_dir=state.settings.data_dir / "demo", echo=click.echo,
                       audit=lambda: run_audit(state, as_json=False))
    click.echo("demo: all verdicts as expected, audit passed" if outcome.ok else "demo: FAILED (see above)")
    sys.exit(0 if outcome.ok else 1)


def _register_subcommands() -> None:
    from provenance.api.cli import api_keys, serve
    from provenance.backup.cli import backup, restore
    from provenance.bench.cli import bench
    from provenance.bundle.cli import verify_command
    from provenance.index.cli import index
    from provenance.client.cli import client
    from provenance.witness.cli import witness
    from workers.cli import worker

    cli.add_command(witness)
    cli.add_command(client)

    from provenance.c2pa.federated_cli import resolve_binding_command

    chain.add_command(resolve_binding_command)

    from provenance.rotation_cli import key_history_command, rotate_anchorer_command, rotate_key_command

    log_group.add_command(rotate_key_command)
    log_group.add_command(key_history_command)
    chain.add_command(rotate_anchorer_command)

    from provenance.migrations.cli import db

    for command in (bench, index, serve, api_keys, worker, verify_command, backup, restore, db):
        cli.add_command(command)


_register_subcommands()


def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(2)
    except ProvenanceError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(3)
    except SystemExit:
        raise


if __name__ == "__main__":
    main()
