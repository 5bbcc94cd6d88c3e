"""The ProvenanceAnchor contract and its web3 adapter, on the in-process EVM and on a real node (ganache).

Each test gets a contract deployed for it alone (``evm_anchor``), so results never depend on test order.
"""

from __future__ import annotations

import hashlib

import pytest
from eth_account import Account

from provenance.anchor import Anchor, AnchorReceipt, log_id_for
from provenance.anchor.evm import EvmAnchor, load_artifact
from provenance.errors import (
    AnchorError,
    AnchorRejectedError,
    ChainUnavailableError,
    ConfigError,
    InvalidInputError,
)
from tests.fixtures.evm import EvmNode
from tests.fixtures.services import free_port

LOG = log_id_for("test.example/log")
OTHER_LOG = log_id_for("other.example/log")


def root(n: int) -> bytes:
    return hashlib.sha256(f"root {n}".encode()).digest()


def funded_key(anchor: EvmAnchor) -> str:
    """A fresh private key holding 1 ETH, sent by the anchor's (unlocked) account."""
    account = Account.create()
    w3 = anchor.web3
    w3.eth.wait_for_transaction_receipt(
        w3.eth.send_transaction({"from": anchor.sender, "to": account.address, "value": 10**18})
    )
    return account.key.to_0x_hex()


def attach(anchor: EvmAnchor, address: str) -> EvmAnchor:
    """The same connection, pointed at another address."""
    return EvmAnchor(anchor.web3, address, artifact=load_artifact(), where="test", ephemeral=anchor.ephemeral)


# --- anchoring and reading back ------------------------------------------------------------------------------------
def test_anchor_then_read_back(evm_anchor: EvmAnchor) -> None:
    receipt = evm_anchor.anchor(LOG, 3, root(3))

    block = evm_anchor.web3.eth.get_block(receipt.block_number)
    assert isinstance(receipt, AnchorReceipt)
    assert (receipt.log_id, receipt.tree_size, receipt.root) == (LOG, 3, root(3))
    assert receipt.block_timestamp == block["timestamp"]
    assert receipt.chain_id == evm_anchor.web3.eth.chain_id
    assert receipt.contract_address == evm_anchor.contract_address
    assert receipt.ephemeral is evm_anchor.ephemeral
    assert receipt.gas_used > 21_000

    onchain = evm_anchor.read(LOG, 3)
    assert onchain is not None
    assert (onchain.log_id, onchain.tree_size, onchain.root) == (LOG, 3, root(3))
    assert onchain.timestamp == block["timestamp"]
    assert onchain.block_number == receipt.block_number
    assert onchain.anchorer == evm_anchor.sender
    assert evm_anchor.latest(LOG) == onchain


def test_latest_follows_the_largest_tree_size(evm_anchor: EvmAnchor) -> None:
    evm_anchor.anchor(LOG, 1, root(1))
    evm_anchor.anchor(LOG, 8, root(8))
    latest = evm_anchor.latest(LOG)
    assert latest is not None and (latest.tree_size, latest.root) == (8, root(8))
    assert evm_anchor.read(LOG, 1) is not None  # earlier checkpoints stay readable


def test_anchored_event_carries_the_checkpoint(evm_anchor: EvmAnchor) -> None:
    receipt = evm_anchor.anchor(LOG, 42, root(42))

    w3 = evm_anchor.web3
    tx_receipt = w3.eth.get_transaction_receipt(receipt.tx_hash)
    contract = w3.eth.contract(address=evm_anchor.contract_address, abi=load_artifact().abi)
    (event,) = contract.events.Anchored().process_receipt(tx_receipt)
    assert event["address"] == evm_anchor.contract_address
    assert dict(event["args"]) == {
        "logId": LOG,
        "treeSize": 42,
        "root": root(42),
        "timestamp": receipt.block_timestamp,
        "anchorer": evm_anchor.sender,
    }
    # logId and treeSize are indexed, so a client can filter on them.
    topics = tx_receipt["logs"][0]["topics"]
    assert bytes(topics[1]) == LOG
    assert int.from_bytes(bytes(topics[2]), "big") == 42


def test_read_of_absent_anchor_is_none(evm_anchor: EvmAnchor) -> None:
    assert evm_anchor.read(LOG, 1) is None
    assert evm_anchor.latest(LOG) is None
    evm_anchor.anchor(LOG, 5, root(5))
    assert evm_anchor.read(LOG, 4) is None
    assert evm_anchor.read(LOG, 6) is None
    assert evm_anchor.latest(OTHER_LOG) is None


def test_log_ids_are_independent(evm_anchor: EvmAnchor) -> None:
    evm_anchor.anchor(LOG, 10, root(10))
    evm_anchor.anchor(OTHER_LOG, 1, root(1))  # smaller than LOG's size: fine, another log
    evm_anchor.anchor(OTHER_LOG, 2, root(2))
    evm_anchor.anchor(LOG, 11, root(11))

    latest, other = evm_anchor.latest(LOG), evm_anchor.latest(OTHER_LOG)
    assert latest is not None and latest.tree_size == 11
    assert other is not None and other.tree_size == 2
    assert evm_anchor.read(OTHER_LOG, 10) is None


def test_one_transaction_per_anchor(evm_anchor: EvmAnchor) -> None:
    w3 = evm_anchor.web3
    evm_anchor.anchor(LOG, 1, root(1))  # warm up: first anchor of a log costs more, but is still one tx
    for size in (2, 3):
        block_before = w3.eth.block_number
        nonce_before = w3.eth.get_transaction_count(evm_anchor.sender)
        receipt = evm_anchor.anchor(LOG, size, root(size))
        assert w3.eth.block_number == block_before + 1
        assert w3.eth.get_transaction_count(evm_anchor.sender) == nonce_before + 1
        assert receipt.block_number == block_before + 1
        assert len(w3.eth.get_block(receipt.block_number)["transactions"]) == 1


# --- what the contract refuses -------------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [5, 4, 1], ids=["equal", "smaller", "much-smaller"])
def test_tree_size_must_grow(evm_anchor: EvmAnchor, size: int) -> None:
    evm_anchor.anchor(LOG, 5, root(5))
    nonce = evm_anchor.web3.eth.get_transaction_count(evm_anchor.sender)

    with pytest.raises(AnchorRejectedError, match=rf"tree size {size} does not grow past anchored 5"):
        evm_anchor.anchor(LOG, size, root(99))

    assert evm_anchor.web3.eth.get_transaction_count(evm_anchor.sender) == nonce  # refused before sending
    latest = evm_anchor.latest(LOG)
    assert latest is not None and (latest.tree_size, latest.root) == (5, root(5))


def test_tree_size_zero_and_zero_root_rejected(evm_anchor: EvmAnchor) -> None:
    with pytest.raises(AnchorRejectedError, match="tree size 0 is not positive"):
        evm_anchor.anchor(LOG, 0, root(0))
    with pytest.raises(AnchorRejectedError, match="root must not be zero"):
        evm_anchor.anchor(LOG, 1, b"\x00" * 32)
    assert evm_anchor.latest(LOG) is None


def test_malformed_arguments_rejected_before_any_transaction(evm_anchor: EvmAnchor) -> None:
    block = evm_anchor.web3.eth.block_number
    with pytest.raises(InvalidInputError):
        evm_anchor.anchor(b"short", 1, root(1))
    with pytest.raises(InvalidInputError):
        evm_anchor.anchor(LOG, 1, b"\x01" * 31)
    with pytest.raises(InvalidInputError):
        evm_anchor.anchor(LOG, 2**64, root(1))
    with pytest.raises(InvalidInputError):
        evm_anchor.anchor(LOG, -1, root(1))
    assert evm_anchor.web3.eth.block_number == block


def test_unauthorised_account_rejected(evm_anchor: EvmAnchor) -> None:
    stranger = evm_anchor.web3.eth.accounts[1]
    as_stranger = evm_anchor.with_sender(address=stranger)

    with pytest.raises(AnchorRejectedError, match=rf"account {stranger} is not an authorised anchorer"):
        as_stranger.anchor(LOG, 1, root(1))
    with pytest.raises(AnchorRejectedError, match=rf"account {stranger} is not the contract owner"):
        as_stranger.add_anchorer(stranger)
    assert not evm_anchor.is_anchorer(stranger)
    assert evm_anchor.latest(LOG) is None


def test_owner_adds_and_removes_an_anchorer(evm_anchor: EvmAnchor) -> None:
    assert evm_anchor.owner() == evm_anchor.sender
    assert evm_anchor.is_anchorer(evm_anchor.sender)  # the deployer is authorised at deploy
    # The new anchorer signs locally with its own key (the path used with a configured private key).
    newcomer = evm_anchor.with_sender(private_key=funded_key(evm_anchor))
    with pytest.raises(AnchorRejectedError, match="not an authorised anchorer"):
        newcomer.anchor(LOG, 1, root(1))

    evm_anchor.add_anchorer(newcomer.sender)
    assert evm_anchor.is_anchorer(newcomer.sender)
    receipt = newcomer.anchor(LOG, 1, root(1))
    onchain = evm_anchor.read(LOG, 1)
    assert onchain is not None and onchain.anchorer == newcomer.sender
    assert receipt.tree_size == 1

    evm_anchor.remove_anchorer(newcomer.sender)
    assert not evm_anchor.is_anchorer(newcomer.sender)
    with pytest.raises(AnchorRejectedError, match="not an authorised anchorer"):
        newcomer.anchor(LOG, 2, root(2))


def test_reason_recovered_when_a_mined_transaction_reverts(evm_anchor: EvmAnchor) -> None:
    """A race (another anchor lands between our simulation and our tx) leaves a reverted tx: its reason is replayed."""
    evm_anchor.anchor(LOG, 5, root(5))
    w3 = evm_anchor.web3
    contract = w3.eth.contract(address=evm_anchor.contract_address, abi=load_artifact().abi)
    fn = contract.functions.anchor(LOG, 3, root(3))
    # An explicit gas limit skips the estimate, so the node mines the failing transaction.
    tx_hash = w3.eth.send_transaction(
        {
            "from": evm_anchor.sender,
            "to": evm_anchor.contract_address,
            "data": fn._encode_transaction_data(),
            "gas": 200_000,
        }
    )
    tx_receipt = w3.eth.wait_for_transaction_receipt(tx_hash)
    assert tx_receipt["status"] == 0
    assert "tree size 3 does not grow past anchored 5" in evm_anchor._replay_reason(fn, tx_receipt)


# --- the backends themselves ---------------------------------------------------------------------------------------
def test_backend_identity(evm_anchor: EvmAnchor) -> None:
    assert isinstance(evm_anchor, Anchor)
    if evm_anchor.ephemeral:
        assert evm_anchor.describe() == "in-process EVM (ephemeral)"
    else:
        assert evm_anchor.describe().startswith("rpc:http://127.0.0.1:") or evm_anchor.describe().startswith("rpc:")
        assert evm_anchor.web3.eth.chain_id == evm_anchor.chain_id


def test_address_without_code_is_refused(evm_anchor: EvmAnchor) -> None:
    empty = "0x" + "11" * 20
    with pytest.raises(AnchorError, match=rf"no contract code at {empty}"):
        attach(evm_anchor, empty)


def test_address_with_other_code_is_refused(evm_anchor: EvmAnchor) -> None:
    w3 = evm_anchor.web3
    # Init code deploying a 10-byte runtime that returns 42: some contract, but not ours.
    init = "0x600a600c600039600a6000f3602a60005260206000f3"
    receipt = w3.eth.wait_for_transaction_receipt(w3.eth.send_transaction({"from": evm_anchor.sender, "data": init}))
    with pytest.raises(AnchorError, match="is not the ProvenanceAnchor"):
        attach(evm_anchor, receipt["contractAddress"])


def test_bad_private_key_is_a_config_error_that_does_not_echo_it(evm_anchor: EvmAnchor) -> None:
    bad = "0x" + "ab" * 31
    with pytest.raises(ConfigError) as info:
        evm_anchor.with_sender(private_key=bad)
    assert "ab" * 31 not in str(info.value)


def test_log_id_is_sha256_of_origin() -> None:
    assert log_id_for("provenance.example/log") == hashlib.sha256(b"provenance.example/log").digest()
    assert EvmAnchor.log_id_for("é") == hashlib.sha256("é".encode()).digest()


# --- real node only --------------------------------------------------------------------------------------------------
def test_node_unreachable_names_the_url() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ChainUnavailableError, match="EVM node unreachable") as info:
        EvmAnchor.connect(url, "0x" + "11" * 20, timeout_s=2)
    assert info.value.where == url
    assert url in str(info.value)
    with pytest.raises(ChainUnavailableError):
        EvmAnchor.deploy_to(url, timeout_s=2)


@pytest.mark.evm_rpc
def test_connect_with_private_key_and_wrong_address(evm_rpc_url: str) -> None:
    deployed = EvmAnchor.deploy_to(evm_rpc_url)
    key = funded_key(deployed)
    signer = EvmAnchor.connect(evm_rpc_url, deployed.contract_address, private_key=key)
    assert signer.sender == Account.from_key(key).address
    deployed.add_anchorer(signer.sender)
    receipt = signer.anchor(LOG, 1, root(1))
    assert receipt.chain_id == 1337 and not receipt.ephemeral

    with pytest.raises(AnchorError, match="no contract code at"):
        EvmAnchor.connect(evm_rpc_url, "0x" + "22" * 20)


@pytest.mark.evm_rpc
def test_node_going_down_raises_chain_unavailable(evm_node: EvmNode) -> None:
    anchor = EvmAnchor.deploy_to(evm_node.url, timeout_s=5)
    anchor.anchor(LOG, 1, root(1))
    evm_node.stop()

    with pytest.raises(ChainUnavailableError, match="EVM node unreachable") as info:
        anchor.anchor(LOG, 2, root(2))
    assert info.value.where == evm_node.url
    with pytest.raises(ChainUnavailableError):
        anchor.latest(LOG)
