"""Soft bindings published with an anchor (C2PA federated lookup), on the in-process EVM: in the anchor's own
transaction up to ``max_bindings_per_tx``, the rest right after; readable back by topic; refused when malformed."""

from __future__ import annotations

import hashlib

import pytest

from provenance.anchor.base import SoftBindingEntry
from provenance.anchor.evm import EvmAnchor
from provenance.c2pa.federated import parse_description, resolution_json, resolve_events
from provenance.errors import AnchorRejectedError


def _entries(n: int) -> list[SoftBindingEntry]:
    return [SoftBindingEntry(f"AAAAAAAAAA{i:02d}", resolution_json(["https://p.example"], f"urn:{i}", "a.b.c"))
            for i in range(n)]


def test_bindings_ride_in_the_anchor_transaction_and_overflow_right_after() -> None:
    anchor = EvmAnchor.in_process()
    anchor.max_bindings_per_tx = 2
    log_id = hashlib.sha256(b"log").digest()
    receipt = anchor.anchor(log_id, 7, hashlib.sha256(b"root").digest(), _entries(5))
    assert receipt.bindings == 5 and anchor.read(log_id, 7) is not None
    (method,) = parse_description(anchor.describe_federated_lookup())
    txs = []
    for i, entry in enumerate(_entries(5)):
        (found,) = resolve_events(anchor.web3, method, entry.value, 0)
        assert found.manifest_id == f"urn:{i}" and found.endpoints == ("https://p.example",)
        txs.append(found.tx_hash)
    assert txs[0] == txs[1] == receipt.tx_hash  # the first batch in the anchor's own transaction
    assert len({txs[2], txs[3], txs[4], receipt.tx_hash}) == 3  # then 2 + 1 in two more


def test_only_anchorers_publish_and_counts_must_match() -> None:
    anchor = EvmAnchor.in_process()
    outsider = anchor.with_sender(address=anchor.web3.eth.accounts[3])
    with pytest.raises(AnchorRejectedError, match="not an authorised anchorer"):
        outsider.anchor(hashlib.sha256(b"log").digest(), 1, hashlib.sha256(b"r").digest(), _entries(1))
    fn = anchor._contract.functions.anchorWithBindings(hashlib.sha256(b"log").digest(), 1,  # noqa: SLF001
                                                       hashlib.sha256(b"r").digest(), ["a", "b"], ["x"])
    with pytest.raises(AnchorRejectedError, match="2 soft binding values but 1 resolutions"):
        anchor._transact(fn, "anchoring")  # noqa: SLF001
