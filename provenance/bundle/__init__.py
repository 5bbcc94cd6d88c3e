"""Offline proof bundles: one file that proves one record to anyone, with no database and no server.

* :mod:`.model` — :class:`ProofBundle` and its strict JSON form; :mod:`.tlog_proof` — C2SP ``tlog-proof@v1`` text;
* :mod:`.verify` — :func:`verify_bundle`, pure, under an explicit :class:`VerifyPolicy`;
* :mod:`.chain` — the anchor read back from the chain (the only network check, opt-in);
* :mod:`.build` — building a bundle from the ledger (storage side; import it explicitly).

See docs/bundles.md. Importing this package does not load web3 (only the chain check does).
"""

from provenance.bundle.model import BUNDLE_TYPE, MAX_BUNDLE_BYTES, AnchorInfo, LogEntry, ProofBundle, make_entry
from provenance.bundle.tlog_proof import TLOG_PROOF_HEADER, TlogProof, parse_tlog_proof
from provenance.bundle.verify import TOFU, BundleReport, CheckResult, VerifyPolicy, verify_bundle

__all__ = ["BUNDLE_TYPE", "MAX_BUNDLE_BYTES", "TLOG_PROOF_HEADER", "TOFU", "AnchorInfo", "BundleReport",
           "CheckResult", "LogEntry", "ProofBundle", "TlogProof", "VerifyPolicy", "make_entry", "parse_tlog_proof",
           "verify_bundle"]

BUNDLE_ROUTE = "/v1/records/{cid}/bundle"
"""Where the HTTP API serves a record's bundle (``?tree_size=N`` pins the checkpoint, so the bytes never change)."""


def bundle_url(cid: str, tree_size: int, base_url: str = "") -> str:
    return base_url.rstrip("/") + BUNDLE_ROUTE.format(cid=cid) + f"?tree_size={tree_size}"
