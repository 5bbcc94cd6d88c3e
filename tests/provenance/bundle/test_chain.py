"""``provenance verify BUNDLE --chain-rpc URL`` against a real JSON-RPC node (ganache): the anchor is read back from
the ProvenanceAnchor contract; the wrong chain, a contract without this anchor, or one that holds another root fail,
named, with exit 1."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from provenance.anchor.evm import EvmAnchor
from provenance.bundle import ProofBundle, verify_bundle
from provenance.bundle.build import build_bundle
from provenance.bundle.chain import verify_anchor_on_chain
from provenance.cli import cli
from provenance.config import Settings
from provenance.errors import BundleError
from provenance.metadata import PublisherMetadata
from provenance.services import open_ledger
from tests.provenance.bundle.conftest import HASHES, png

pytestmark = pytest.mark.evm_rpc


@dataclass
class Anchored:
    url: str
    bundle: ProofBundle
    origin: str


@pytest.fixture(scope="module")
def anchored(evm_rpc_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Anchored]:
    contract = EvmAnchor.deploy_to(evm_rpc_url)
    settings = Settings(data_dir=tmp_path_factory.mktemp("chain") / "data", chain_rpc_url=evm_rpc_url,
                        chain_contract_address=contract.contract_address,
                        log_origin=f"chain-test.example/{contract.contract_address.lower()}")
    ledger = open_ledger(settings)
    try:
        ledger.add_publisher("acme")
        cid = ledger.ingest(png(31), publisher="acme", metadata=PublisherMetadata(), hashes=HASHES).cid
        ledger.anchor()
        bundle = build_bundle(ledger, cid)
    finally:
        ledger.close()
    assert bundle is not None and bundle.anchor is not None and not bundle.anchor.ephemeral
    yield Anchored(evm_rpc_url, bundle, settings.log_origin)


def chain_fails(bundle: ProofBundle, check: str, url: str, tmp_path: Path) -> str:
    with pytest.raises(BundleError) as err:
        verify_anchor_on_chain(bundle, verify_bundle(bundle), url)
    assert err.value.check == check, str(err.value)
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "b.json"
    path.write_bytes(bundle.to_json())
    result = CliRunner().invoke(cli, ["verify", str(path), "--chain-rpc", url, "--json"])
    assert result.exit_code == 1 and json.loads(result.stdout)["check"] == check
    assert [p.name for p in tmp_path.iterdir()] == ["b.json"]
    return str(err.value)


def test_verify_reads_the_anchor_back_from_the_chain(anchored: Anchored, tmp_path: Path) -> None:
    b = anchored.bundle
    assert b.anchor is not None
    check = verify_anchor_on_chain(b, verify_bundle(b), anchored.url)
    assert (check.chain_id, check.block, check.block_timestamp) == (b.anchor.chain_id, b.anchor.block,
                                                                    b.anchor.block_timestamp)
    path = tmp_path / "b.json"
    path.write_bytes(b.to_json())
    result = CliRunner().invoke(cli, ["verify", str(path), "--chain-rpc", anchored.url])
    assert result.exit_code == 0, result.output
    assert f"anchored on chain {b.anchor.chain_id}" in result.stdout and b.anchor.block_time in result.stdout


def test_bad_verify_against_the_wrong_chain(anchored: Anchored, tmp_path: Path) -> None:
    b = anchored.bundle
    assert b.anchor is not None
    # The receipt says chain 5; the node is another chain.
    msg = chain_fails(dataclasses.replace(b, anchor=dataclasses.replace(b.anchor, chain_id=5)), "anchor.chain",
                      anchored.url, tmp_path / "a")
    assert "wrong chain" in msg
    # Another ProvenanceAnchor deployment (a chain of record that never saw this log).
    other = EvmAnchor.deploy_to(anchored.url)
    chain_fails(dataclasses.replace(b, anchor=dataclasses.replace(b.anchor, contract=other.contract_address)),
                "anchor.missing", anchored.url, tmp_path / "b")
    # An address that holds no contract at all.
    chain_fails(dataclasses.replace(b, anchor=dataclasses.replace(b.anchor, contract="0x" + "12" * 20)),
                "anchor.contract", anchored.url, tmp_path / "c")


def test_bad_chain_anchor_names_another_root(anchored: Anchored, tmp_path: Path) -> None:
    b = anchored.bundle
    assert b.anchor is not None
    rival = EvmAnchor.deploy_to(anchored.url)
    log_id = hashlib.sha256(anchored.origin.encode()).digest()
    receipt = rival.anchor(log_id, b.anchor.tree_size, bytes(range(1, 33)))
    forged = dataclasses.replace(b, anchor=dataclasses.replace(
        b.anchor, contract=rival.contract_address, tx=receipt.tx_hash, block=receipt.block_number,
        block_timestamp=receipt.block_timestamp))
    assert "not the checkpoint's" in chain_fails(forged, "anchor.root", anchored.url, tmp_path)
