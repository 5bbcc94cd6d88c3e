"""Rotating the chain anchorer (docs/key-rotation.md) on a real EVM node (ganache): the contract's owner authorises
the new account and removes the old one, the rotation is logged, anchors made before and after verify in the
audit, the retired account can no longer anchor, and an anchor by an account the log did not put in force is
flagged."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from provenance.anchor.base import log_id_for
from provenance.anchor.evm import EvmAnchor
from provenance.audit import audit_ledger
from provenance.cli import cli
from provenance.config import Settings
from provenance.errors import AnchorError, AnchorRejectedError
from provenance.hashing import PHashHasher
from provenance.keyring import ANCHORER_FILE
from provenance.ledger import Ledger
from provenance.metadata import PublisherMetadata
from provenance.rotation import rotate_anchorer
from provenance.service_events import parse_service_event
from provenance.services import open_ledger
from tests.provenance.api.fakes import textured_image

pytestmark = pytest.mark.evm_rpc

ETH = 10**18


class Deployment:
    def __init__(self, rpc_url: str, data_dir: Path) -> None:
        self.contract = EvmAnchor.deploy_to(rpc_url)  # deployed by the node's first account: owner, first anchorer
        self.settings = Settings(data_dir=data_dir, chain_rpc_url=rpc_url,
                                 chain_contract_address=self.contract.contract_address,
                                 log_origin=f"anchorer-test.example/{self.contract.contract_address.lower()}")
        self.env = {"PROVENANCE_CHAIN_RPC_URL": rpc_url,
                    "PROVENANCE_CHAIN_CONTRACT_ADDRESS": self.contract.contract_address,
                    "PROVENANCE_LOG_ORIGIN": self.settings.log_origin}

    def open(self) -> Ledger:
        ledger = open_ledger(self.settings)
        ledger.hashers = (PHashHasher(),)
        return ledger


@pytest.fixture
def deployment(evm_rpc_url: str, tmp_path: Path) -> Iterator[Deployment]:
    yield Deployment(evm_rpc_url, tmp_path / "data")


def _ingest(ledger: Ledger, seeds: range) -> None:
    for i in seeds:
        ledger.ingest(textured_image(i), publisher="acme", metadata=PublisherMetadata(title=f"photo {i}"))


def _audit(ledger: Ledger):  # type: ignore[no-untyped-def]
    return audit_ledger(ledger, log_public_key=ledger.log_public_key(), anchor=ledger.anchor_backend)


def test_anchors_before_and_after_a_rotation_verify_and_the_old_anchorer_is_refused(deployment: Deployment) -> None:
    contract = deployment.contract
    ledger = deployment.open()
    ledger.add_publisher("acme")
    _ingest(ledger, range(2))
    first = ledger.anchor()
    old = ledger.anchor_backend.sender
    ledger.close()

    # Through the CLI, as an operator would: the deployer (the current anchorer) owns the contract.
    out = CliRunner().invoke(cli, ["--data-dir", str(deployment.settings.data_dir), "chain", "rotate-anchorer",
                                   "--fund-wei", str(ETH), "--json"], env=deployment.env)
    assert out.exit_code == 0, out.output
    done = json.loads(out.stdout)
    assert done["old_anchorer"] == old and done["new_anchorer"] != old
    assert contract.is_anchorer(done["new_anchorer"]) and not contract.is_anchorer(old)
    w3 = contract.web3
    for tx in (done["add_tx"], done["remove_tx"]):
        assert w3.eth.get_transaction_receipt(tx)["status"] == 1
    keyfile = deployment.settings.keyring_dir / "service" / ANCHORER_FILE
    assert keyfile.exists() and oct(keyfile.stat().st_mode & 0o777) == "0o600"
    assert not keyfile.with_name(ANCHORER_FILE + ".next").exists()

    # A fresh process anchors with the new key.
    ledger = deployment.open()
    try:
        assert ledger.anchor_backend.sender == done["new_anchorer"]
        _ingest(ledger, range(2, 4))
        second = ledger.anchor()
        log_id = log_id_for(deployment.settings.log_origin)
        assert contract.read(log_id, first.tree_size).anchorer == old  # type: ignore[union-attr]
        assert contract.read(log_id, second.tree_size).anchorer == done["new_anchorer"]  # type: ignore[union-attr]

        event = parse_service_event(ledger.blockstore.get(done["event_cid"]))
        assert (event.kind, event.old_anchorer, event.new_anchorer) == (  # type: ignore[union-attr]
            "anchorer-rotation", old, done["new_anchorer"])
        event.verify_signature(ledger.log_public_key())  # type: ignore[union-attr]

        report = _audit(ledger)
        assert report.ok, report.summary()
        assert report.service_events == 1
        by_size = {a.tree_size: a for a in report.anchors}
        assert (by_size[first.tree_size].status, by_size[first.tree_size].anchorer) == ("verified", old)
        assert (by_size[second.tree_size].status, by_size[second.tree_size].anchorer) == (
            "verified", done["new_anchorer"])

        # The retired account is refused by the contract.
        with pytest.raises(AnchorRejectedError, match="not an authorised anchorer"):
            contract.anchor(log_id, second.tree_size + 100, hashlib.sha256(b"late").digest())
    finally:
        ledger.close()


def test_an_anchor_by_the_retired_account_and_a_forged_rotation_event_are_flagged(deployment: Deployment) -> None:
    contract = deployment.contract
    ledger = deployment.open()
    try:
        ledger.add_publisher("acme")
        _ingest(ledger, range(2))
        ledger.anchor()
        done = rotate_anchorer(ledger, fund_wei=ETH)
        assert done.cid is not None and not contract.is_anchorer(done.old)
        assert _audit(ledger).ok

        # The owner lets the retired account back in, and it anchors the next checkpoint behind the log's back.
        contract.add_anchorer(done.old)
        _ingest(ledger, range(2, 3))
        cp = ledger.checkpoint()
        receipt = contract.anchor(ledger.config.log_id, cp.tree_size, cp.root)
        with ledger.engine.begin() as conn:
            ledger.store.set_anchor(conn, cp.tree_size, receipt)
        report = _audit(ledger)
        assert {"anchor.anchorer", "anchorer.retired"} <= {f.check for f in report.failures}, report.summary()
        [finding] = [f for f in report.failures if f.check == "anchor.anchorer"]
        assert finding.subject == f"checkpoint {cp.tree_size}" and done.new in finding.message

        # An anchorer-rotation event edited after it was signed (another new account).
        with ledger.engine.begin() as conn:
            raw = bytes(conn.execute(text("SELECT event_bytes FROM key_events WHERE cid = :c"),
                                     {"c": done.cid}).scalar_one())
            forged = raw.replace(done.new.encode(), ("0x" + "11" * 20).encode())
            assert forged != raw
            conn.execute(text("UPDATE key_events SET event_bytes = :b WHERE cid = :c"), {"b": forged, "c": done.cid})
        assert {"anchorer.rotation", "service_event.cid"} <= {f.check for f in _audit(ledger).failures}
    finally:
        ledger.close()


def test_rotating_the_anchorer_needs_a_real_chain_and_the_owner(deployment: Deployment, tmp_path: Path) -> None:
    ledger = open_ledger(Settings(data_dir=tmp_path / "embedded"))
    try:
        with pytest.raises(AnchorError, match="needs a real chain"):
            rotate_anchorer(ledger)
    finally:
        ledger.close()
    ledger = deployment.open()
    try:
        stranger = deployment.contract.web3.eth.accounts[3]
        with pytest.raises(AnchorError, match="is not the contract's owner"):
            rotate_anchorer(ledger, owner_address=stranger)
        # Nothing was logged or switched: the service still anchors as before.
        assert deployment.contract.is_anchorer(ledger.anchor_backend.sender)
        with ledger.reader.connect() as conn:
            assert list(ledger.events.iter_service_events(conn)) == []
        assert ledger.keyring.anchorer_key() is None and ledger.keyring.pending_anchorer_key() is None
    finally:
        ledger.close()
