"""An audit of the log from public data only: the C2SP tiles, the record blobs, the chain. No database, no server
of ours (``provenance audit --from-tiles URL|DIR``).

What it checks, each failure a :class:`Finding` naming its check and subject:

1. the checkpoint: it parses (``checkpoint.format``); the log's signature with ``--log-key``
   (``checkpoint.signature``); with a block source, by the log key in force at its size, following the log-key
   rotations in the log from the pinned key (``log-key.rotation``: not signed by the key it replaces and the key it
   brings in; ``log-key.trust``: the pinned key is not in the history; docs/key-rotation.md); each configured witness's cosignature (``cosignature.signature``: a line under the
   witness's name and key ID that does not verify) and their number against the quorum (``cosignature.quorum``);
2. the tiles, like Tessera's ``fsck``: every tile the checkpoint's size needs is there (``tile.missing``) and has
   its width (``tile.format``); every full tile hashes to the hash the level above holds for it (``tile.hash``); the
   tree rebuilt from the top tiles has the checkpoint's root (``checkpoint.root``);
3. the entries: every entry bundle is there (``entries.missing``) and well formed (``entries.format``); every
   entry hashes to its leaf in the level-0 tile (``entries.leaf``), is a canonical CID (``entries.cid``) and appears
   once (``entries.duplicate``);
4. with a block source, per entry in log order: the blob is there (``record.missing``) and hashes to its CID
   (``record.cid``). A key event is replayed into the publishers' key history with the log's key as the operator's
   (``key-event.invalid``: not signed by who it must be). A record parses (``record.format``); its publisher
   signature verifies (``record.signature``) under the key its publisher held at that leaf by the replayed history
   (``record.key``, ``record.revoked``, ``record.operator_key``) or under a ``--publisher-key``; a v2 record's service
   attestation verifies under the log key in force at its leaf (``record.attestation``); an anchorer rotation is
   signed by that key too (``anchorer.rotation``); its image is there and matches its CID and
   sha256 (``blob.image``);
5. with a chain: the anchor at the checkpoint's size exists (``anchor.missing``) and every anchor of the log up to
   that size has the root the tiles give at its size (``anchor.root``).

What could not be checked for lack of a key or a source is listed as *unchecked*, with the reason; it does not
make the audit fail. The steps are here; the tree logic is pure (:mod:`.tile_tree`), the content checks are in
:mod:`.blobs`, the report in :mod:`.model`, and the sources are the small protocols of :mod:`.sources` and
:mod:`.chain`.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from provenance.anchor.base import log_id_for
from provenance.auditor.blobs import check_blobs, cid_text, is_canonical_cid
from provenance.auditor.chain import AnchorSource
from provenance.auditor.model import AnchorResult, AuditPolicy, Finding, RecordResult, TilesAuditReport
from provenance.auditor.sources import BlockSource, TileSource
from provenance.auditor.tile_tree import TileTree
from provenance.errors import CheckpointError, LogError
from provenance.service_events import LogKeyChain
from provenance.translog.checkpoint import Checkpoint, parse_checkpoint_note, verify_checkpoint_note
from provenance.translog.cosignature import check_cosignatures
from provenance.translog.hashing import HASH_SIZE, leaf_hash
from provenance.translog.tiles import decode_entry_bundle, tiles_for_size

__all__ = ["AuditPolicy", "Finding", "RecordResult", "TileTree", "TilesAuditReport", "audit_tiles"]


# --- the audit -----------------------------------------------------------------------------------------------------
def audit_tiles(tiles: TileSource, policy: AuditPolicy | None = None, *, blocks: BlockSource | None = None,
                chain: AnchorSource | None = None, clock: Callable[[], float] = time.perf_counter) -> TilesAuditReport:
    """Audit the log at ``tiles`` (see the module docstring). Raises only when a source cannot be read at all."""
    policy = policy or AuditPolicy()
    report = TilesAuditReport(source=tiles.describe(), quorum=policy.required_cosignatures)
    t0 = clock()
    note = tiles.get("checkpoint")
    if note is None:
        report.fail("checkpoint.missing", "checkpoint", "the source has no checkpoint")
        return report
    cp = _check_checkpoint(note, policy, report, defer_signature=blocks is not None)
    if cp is None:
        return report

    tree = _fetch_tree(tiles, cp.size, report)
    report.timings_s["fetch_tiles"] = clock() - t0
    t1 = clock()
    report.findings.extend(tree.link_failures())
    if tree.missing:
        report.skip("checkpoint.root", f"{len(tree.missing)} tile(s) missing or malformed: the root was not rebuilt")
    else:
        report.rebuilt_root = tree.root()
        if report.rebuilt_root != cp.root:
            report.fail("checkpoint.root", f"tree size {cp.size}",
                        f"the tiles rebuild root {report.rebuilt_root.hex()}, the checkpoint says {cp.root.hex()}")
    report.timings_s["rebuild"] = clock() - t1

    t2 = clock()
    _check_entries(tiles, tree, report)
    report.timings_s["entries"] = clock() - t2
    if blocks is not None:
        t3 = clock()
        report.blocks = blocks.describe()
        log_keys = check_blobs(blocks, policy, report)
        if log_keys is not None:
            _check_log_signature(note, log_keys, report)
        report.timings_s["blobs"] = clock() - t3
    else:
        report.skip("record.blob", "no block source (--blocks): entries were checked against the tiles, but not "
                                   "against the record blobs")
    if chain is not None:
        t4 = clock()
        report.chain = chain.describe()
        _check_chain(chain, cp, tree, report)
        report.timings_s["chain"] = clock() - t4
    else:
        report.skip("anchor", "no chain (--chain-rpc): anchors were not checked")
    report.timings_s["total"] = clock() - t0
    return report


def _check_checkpoint(note: bytes, policy: AuditPolicy, report: TilesAuditReport, *,
                      defer_signature: bool = False) -> Checkpoint | None:
    """Parse the checkpoint and check its cosignatures; and the log's signature under the pinned key, unless
    ``defer_signature`` (with blobs, it is checked after them, under the key in force by the log's history)."""
    try:
        cp, _sigs = parse_checkpoint_note(note)
    except CheckpointError as exc:
        report.fail("checkpoint.format", "checkpoint", str(exc))
        return None
    report.checkpoint = cp
    if policy.log_key is not None:
        if not defer_signature:  # else checked after the blobs, under the key in force at the checkpoint's size
            _check_pinned_signature(note, policy, report)
    else:
        report.skip("checkpoint.signature", "no log verifier key (--log-key): the checkpoint's signature was not "
                                            "checked")
    if policy.witnesses:
        checks = check_cosignatures(note, list(policy.witnesses))
        for c in checks:
            report.cosignatures.append({"witness": c.witness.label, "status": c.status, "timestamp": c.timestamp,
                                        "reason": c.reason})
            if c.status == "invalid":
                report.fail("cosignature.signature", c.witness.label, c.reason or "invalid cosignature")
        valid = sum(c.status == "valid" for c in checks)
        if valid < policy.required_cosignatures:
            absent = ", ".join(c.witness.label for c in checks if c.status != "valid")
            report.fail("cosignature.quorum", f"tree size {cp.size}",
                        f"{valid} valid cosignature(s), {policy.required_cosignatures} required (missing or "
                        f"invalid: {absent})")
    elif policy.required_cosignatures:
        report.fail("cosignature.quorum", f"tree size {cp.size}",
                    f"a quorum of {policy.required_cosignatures} needs witness keys (--witness)")
    else:
        report.skip("cosignature", "no witness keys (--witness): cosignatures were not checked")
    return cp


def _check_pinned_signature(note: bytes, policy: AuditPolicy, report: TilesAuditReport) -> None:
    assert policy.log_key is not None
    try:
        verify_checkpoint_note(note, policy.log_key.name, policy.log_key.public_key)
        report.log_signature = "verified"
    except CheckpointError as exc:
        report.log_signature = "failed"
        report.fail("checkpoint.signature", f"{policy.log_key.name}+{policy.log_key.key_id.hex()}",
                    f"{exc} (if the log key was rotated, give --blocks: the auditor then follows the log's key "
                    "history)")


def _check_log_signature(note: bytes, chain: LogKeyChain, report: TilesAuditReport) -> None:
    """The checkpoint's signature by the log key in force at its size (and no other of the log's keys but, on
    the transition checkpoint, the one it replaced)."""
    try:
        chain.verify_checkpoint(note, check_origin=False)
        report.log_signature = "verified"
    except CheckpointError as exc:
        report.log_signature = "failed"
        epoch = chain.key_at(report.checkpoint.size if report.checkpoint else 0)
        report.fail("checkpoint.signature", epoch.key.label, str(exc))


def _fetch_tree(tiles: TileSource, size: int, report: TilesAuditReport) -> TileTree:
    tree = TileTree(size)
    wanted = list(tiles_for_size(size, entries=False))
    by_path = {t.path: t for t in wanted}
    for path, data in tiles.get_many([t.path for t in wanted]):
        tile = by_path[path]
        report.tiles_fetched += data is not None
        if data is None:
            tree.missing.add(tile)
            report.fail("tile.missing", path, f"tile not found; the checkpoint's size {size} needs it")
        elif len(data) != tile.width * HASH_SIZE:
            tree.missing.add(tile)
            report.fail("tile.format", path, f"{len(data)} bytes; a tile {tile.width} hashes wide is "
                                             f"{tile.width * HASH_SIZE}")
        else:
            tree.put(tile, data)
    return tree


def _check_entries(tiles: TileSource, tree: TileTree, report: TilesAuditReport) -> None:
    size = tree.size
    bundles = [t for t in tiles_for_size(size) if t.is_entries]
    level0_missing = {t.index for t in tree.missing if t.level == 0}
    seen: dict[str, int] = {}
    by_path = {t.path: t for t in bundles}
    for path, data in tiles.get_many(list(by_path)):
        bundle = by_path[path]
        report.tiles_fetched += data is not None
        first = bundle.first
        entries: list[bytes] | None = None
        if data is None:
            report.fail("entries.missing", path, f"entry bundle not found: leaves {first}..{first + bundle.width - 1} "
                                                 f"cannot be recomputed")
        else:
            try:
                entries = decode_entry_bundle(data, bundle.width)
            except LogError as exc:
                report.fail("entries.format", path, str(exc))
        if entries is None:
            report.records.extend(RecordResult(first + k, None, leaf="missing") for k in range(bundle.width))
            continue
        check_leaves = bundle.index not in level0_missing
        expected = tree.levels[0]
        for k, entry in enumerate(entries):
            index = first + k
            text = cid_text(entry)
            result = RecordResult(index, text)
            if check_leaves:
                got = leaf_hash(entry)
                if got == bytes(expected[index * HASH_SIZE : (index + 1) * HASH_SIZE]):
                    result.leaf = "ok"
                else:
                    result.leaf = "mismatch"
                    report.fail("entries.leaf", f"leaf {index}",
                                f"entry {k} of {path} hashes to {got.hex()}, the level-0 tile holds "
                                f"{tree.hash(0, index).hex()}")
            if text is None or not is_canonical_cid(text):
                result.cid = text
                report.fail("entries.cid", f"leaf {index}", f"entry {k} of {path} is not a canonical CID: "
                                                            f"{entry[:80]!r}")
            elif text in seen:
                report.fail("entries.duplicate", f"leaf {index}", f"{text} is already logged at leaf {seen[text]}")
            else:
                seen[text] = index
            report.records.append(result)


def _check_chain(chain: AnchorSource, cp: Checkpoint, tree: TileTree, report: TilesAuditReport) -> None:
    log_id = log_id_for(cp.origin)
    anchored = {a.tree_size: a for a in chain.anchors(log_id)}
    at_size = chain.read(log_id, cp.size)
    if at_size is not None:
        anchored[cp.size] = at_size
    if cp.size not in anchored:
        report.fail("anchor.missing", f"tree size {cp.size}",
                    f"no anchor of log {log_id.hex()} at the checkpoint's size on {chain.describe()}")
    for size in sorted(anchored):
        a = anchored[size]
        if size > cp.size:
            status = "beyond-checkpoint"
            report.skip("anchor.root", f"the anchor at tree size {size} lies beyond the checkpoint ({cp.size})")
        elif size < cp.size and tree.missing:
            status = "unverifiable"  # tiles are missing (already a failure): no root to compare with
        else:
            expected, what = (cp.root, "checkpoint") if size == cp.size else (tree.root(size), "tiles")
            status = "verified" if a.root == expected else "mismatch"
            if status == "mismatch":
                report.fail("anchor.root", f"tree size {size}",
                            f"the chain holds root {a.root.hex()} (block {a.block_number}), the {what} give "
                            f"{expected.hex()}")
        report.anchors.append(AnchorResult(size, a.root.hex(), status, a.block_number, a.timestamp))
