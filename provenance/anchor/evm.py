"""Anchor checkpoints in the ``ProvenanceAnchor`` contract on an EVM chain, through web3.

Two backends share one code path: an in-process EVM (eth-tester/py-evm; nothing leaves the process, so receipts are
marked ephemeral) and any Ethereum JSON-RPC node. The contract's ABI and bytecode come from the committed artifact
``contracts/build/ProvenanceAnchor.json`` (made by ``contracts/compile.js``), never from compiling at run time.
Every web3/eth-tester/HTTP exception is translated here into the package's error tree.
"""

from __future__ import annotations

import ast
import json
import os
import re
import threading
import time
import urllib.parse
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import requests
from eth_abi.abi import decode as abi_decode
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress
from eth_utils.crypto import keccak
from hexbytes import HexBytes
from web3 import EthereumTesterProvider, Web3
from web3.contract.contract import Contract, ContractFunction
from web3.exceptions import (
    ContractLogicError,
    ProviderConnectionError,
    RequestTimedOut,
    TimeExhausted,
    Web3Exception,
)
from web3.logs import DISCARD
from web3.providers.rpc.utils import ExceptionRetryConfiguration
from web3.types import TxParams, TxReceipt

from provenance.anchor.base import MAX_TREE_SIZE, AnchorReceipt, OnChainAnchor, SoftBindingEntry, log_id_for
from provenance.errors import (
    AnchorError,
    AnchorRejectedError,
    ChainUnavailableError,
    ConfigError,
    InvalidInputError,
    ProvenanceError,
)

try:  # eth-tester is only needed for the in-process backend
    from eth_tester.exceptions import TransactionFailed
except ImportError:  # pragma: no cover - web3[tester] is a declared dependency

    class TransactionFailed(Exception):  # type: ignore[no-redef]
        pass


ARTIFACT_ENV = "PROVENANCE_ANCHOR_ARTIFACT"
DEFAULT_ARTIFACT = Path(__file__).resolve().parents[2] / "contracts" / "build" / "ProvenanceAnchor.json"
IN_PROCESS = "in-process EVM (ephemeral)"

_ZERO32 = b"\x00" * 32
#: Soft bindings published in one transaction: 7.7-9.2 kgas each (Paris / Prague rules; benchmarks/bench_federated.py),
#: so 2,500 stay under 23 Mgas, inside a 30 Mgas block with the anchor; more follow in publishBindings transactions.
MAX_BINDINGS_PER_TX = 2500
_UNREACHABLE = (requests.RequestException, ProviderConnectionError, RequestTimedOut, ConnectionError, TimeoutError)


# --- the committed artifact ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ContractArtifact:
    """ABI and bytecode of ProvenanceAnchor, plus where the constructor patches immutables into the runtime code."""

    path: Path
    abi: list[dict[str, Any]]
    bytecode: bytes
    deployed_bytecode: bytes
    immutable_ranges: tuple[tuple[int, int], ...]

    def matches_deployed(self, code: bytes) -> bool:
        """Whether on-chain ``code`` is this contract: equal to ours outside the immutable byte ranges."""
        if len(code) != len(self.deployed_bytecode):
            return False
        ours, theirs = bytearray(self.deployed_bytecode), bytearray(code)
        for start, length in self.immutable_ranges:
            ours[start : start + length] = theirs[start : start + length]
        return ours == theirs


def load_artifact(path: str | Path | None = None) -> ContractArtifact:
    """Load the artifact from ``path``, else ``$PROVENANCE_ANCHOR_ARTIFACT``, else the repo's contracts/build."""
    chosen = Path(path or os.environ.get(ARTIFACT_ENV) or DEFAULT_ARTIFACT).resolve()
    return _load_artifact(chosen)


@lru_cache(maxsize=4)
def _load_artifact(path: Path) -> ContractArtifact:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        ranges = sorted(
            (int(r["start"]), int(r["length"])) for refs in raw.get("immutableReferences", {}).values() for r in refs
        )
        return ContractArtifact(
            path=path,
            abi=raw["abi"],
            bytecode=bytes.fromhex(raw["bytecode"].removeprefix("0x")),
            deployed_bytecode=bytes.fromhex(raw["deployedBytecode"].removeprefix("0x")),
            immutable_ranges=tuple(ranges),
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"cannot load contract artifact {path}: {exc} (build it: node contracts/compile.js)") from exc


# --- revert reasons --------------------------------------------------------------------------------------------------
def _error_table(abi: list[dict[str, Any]]) -> dict[bytes, tuple[str, list[str]]]:
    """Custom-error selector -> (name, argument types), from the ABI."""
    table = {}
    for item in abi:
        if item.get("type") == "error":
            types = [i["type"] for i in item.get("inputs", [])]
            table[keccak(text=f"{item['name']}({','.join(types)})")[:4]] = (item["name"], types)
    return table


def _revert_payloads(exc: BaseException) -> Iterator[bytes]:
    """Candidate revert data in an exception, whichever client raised it.

    JSON-RPC nodes put it in ``data`` (a hex string, or ganache's ``{"result": "0x..."}``); eth-tester only gives a
    message ending in the Python repr of the bytes.
    """
    texts: list[str] = []
    data = getattr(exc, "data", None)
    if isinstance(data, str):
        texts.append(data)
    elif isinstance(data, dict):
        texts.extend(v for v in data.values() if isinstance(v, str))
    texts.extend(str(a) for a in exc.args)
    for text in texts:
        for match in re.finditer(r"0x([0-9a-fA-F]{8,})", text):
            if len(match.group(1)) % 2 == 0:
                yield bytes.fromhex(match.group(1))
        for match in re.finditer(r"""b'(?:[^'\\]|\\.)*'|b"(?:[^"\\]|\\.)*\"""", text):
            try:
                value = ast.literal_eval(match.group(0))
            except (ValueError, SyntaxError):
                continue
            if isinstance(value, bytes):
                yield value


def _describe_revert(name: str, args: tuple[Any, ...]) -> str:
    if name == "TreeSizeNotIncreasing":
        latest, given = args
        if latest == 0:
            return f"tree size {given} is not positive"
        return f"tree size {given} does not grow past anchored {latest}"
    if name == "NotAnchorer":
        return f"account {Web3.to_checksum_address(args[0])} is not an authorised anchorer"
    if name == "NotOwner":
        return f"account {Web3.to_checksum_address(args[0])} is not the contract owner"
    if name == "ZeroRoot":
        return "root must not be zero"
    if name == "ZeroAddress":
        return "address must not be zero"
    if name == "BindingCountMismatch":
        return f"{args[0]} soft binding values but {args[1]} resolutions"
    return f"{name}{args}"


# --- the backend -----------------------------------------------------------------------------------------------------
class EvmAnchor:
    """The ProvenanceAnchor contract at one address, reached through one web3 connection, sending as one account."""

    log_id_for = staticmethod(log_id_for)

    def __init__(
        self,
        w3: Web3,
        contract_address: str,
        *,
        artifact: ContractArtifact,
        where: str,
        ephemeral: bool,
        sender: str | None = None,
        private_key: str | None = None,
        timeout_s: float = 30.0,
        confirmations: int = 0,
    ) -> None:
        """Attach to an existing deployment; prefer :meth:`in_process`, :meth:`connect` or :meth:`deploy_to`.

        Checks that the node answers and that ``contract_address`` holds this contract's code.
        """
        self._w3 = w3
        self._artifact = artifact
        self._where = where
        self._ephemeral = ephemeral
        self._timeout_s = timeout_s
        self._confirmations = confirmations
        self._errors = _error_table(artifact.abi)
        self._send_lock = threading.Lock()  # one nonce at a time per object when signing locally
        self.max_bindings_per_tx = MAX_BINDINGS_PER_TX
        self._key = _account_from_key(private_key)
        address = _checksum(contract_address)
        with self._boundary("connecting"):
            self._chain_id = int(w3.eth.chain_id)
            code = bytes(w3.eth.get_code(address))
            if self._key is not None:
                self._sender = self._key.address
            else:
                self._sender = _checksum(sender) if sender is not None else _first_account(w3, where)
        if not code:
            raise AnchorError(f"no contract code at {address} on {where}")
        if not artifact.matches_deployed(code):
            raise AnchorError(f"the code at {address} on {where} is not the ProvenanceAnchor of {artifact.path}")
        self._contract: Contract = w3.eth.contract(address=address, abi=artifact.abi)

    # --- construction ----------------------------------------------------------------------------------------------
    @classmethod
    def in_process(cls, *, artifact: str | Path | None = None) -> EvmAnchor:
        """A fresh in-process chain with the contract deployed by its first account. State ends with the object."""
        w3 = Web3(EthereumTesterProvider())
        art = load_artifact(artifact)
        address = _deploy(w3, art, sender=w3.eth.accounts[0], key=None, timeout_s=30.0)
        return cls(w3, address, artifact=art, where="in-process EVM", ephemeral=True)

    @classmethod
    def connect(
        cls,
        rpc_url: str,
        contract_address: str,
        private_key: str | None = None,
        timeout_s: float = 30.0,
        confirmations: int = 0,
        *,
        artifact: str | Path | None = None,
    ) -> EvmAnchor:
        """Use the contract at ``contract_address`` on the node at ``rpc_url``.

        Signs locally with ``private_key`` when given, else sends from the node's first unlocked account.
        """
        return cls(
            _http_web3(rpc_url, timeout_s),
            contract_address,
            artifact=load_artifact(artifact),
            where=_public_url(rpc_url),
            ephemeral=False,
            private_key=private_key,
            timeout_s=timeout_s,
            confirmations=confirmations,
        )

    @classmethod
    def deploy_to(
        cls,
        rpc_url: str,
        private_key: str | None = None,
        timeout_s: float = 30.0,
        confirmations: int = 0,
        *,
        artifact: str | Path | None = None,
    ) -> EvmAnchor:
        """Deploy a new contract (the deploying account becomes owner and first anchorer) and connect to it."""
        w3, where = _http_web3(rpc_url, timeout_s), _public_url(rpc_url)
        art = load_artifact(artifact)
        key = _account_from_key(private_key)
        with _translate(where, "deploying", _error_table(art.abi)):
            sender = key.address if key is not None else _first_account(w3, where)
        address = _deploy(w3, art, sender=sender, key=key, timeout_s=timeout_s, where=where)
        return cls(
            w3,
            address,
            artifact=art,
            where=where,
            ephemeral=False,
            private_key=private_key,
            timeout_s=timeout_s,
            confirmations=confirmations,
        )

    def with_sender(self, *, address: str | None = None, private_key: str | None = None) -> EvmAnchor:
        """The same deployment, sending as another account (an unlocked node account, or a local key)."""
        if (address is None) == (private_key is None):
            raise InvalidInputError("give exactly one of address or private_key")
        return EvmAnchor(
            self._w3,
            self.contract_address,
            artifact=self._artifact,
            where=self._where,
            ephemeral=self._ephemeral,
            sender=address,
            private_key=private_key,
            timeout_s=self._timeout_s,
            confirmations=self._confirmations,
        )

    # --- properties ------------------------------------------------------------------------------------------------
    @property
    def chain_id(self) -> int:
        return self._chain_id

    @property
    def contract_address(self) -> str:
        return str(self._contract.address)

    @property
    def ephemeral(self) -> bool:
        return self._ephemeral

    @property
    def sender(self) -> str:
        """The account that signs this object's transactions."""
        return str(self._sender)

    @property
    def web3(self) -> Web3:
        """The underlying connection (for tests and tooling that inspect the chain directly)."""
        return self._w3

    def describe(self) -> str:
        return IN_PROCESS if self._ephemeral else f"rpc:{self._where}"

    # --- writes ----------------------------------------------------------------------------------------------------
    def anchor(self, log_id: bytes, tree_size: int, root: bytes,
               bindings: Sequence[SoftBindingEntry] = ()) -> AnchorReceipt:
        """Send one ``anchor`` transaction (``anchorWithBindings`` when there are soft bindings to publish, up to
        ``max_bindings_per_tx`` of them; the rest follow at once in ``publishBindings`` transactions) and return
        the anchor's receipt once mined (and confirmed, if configured)."""
        _check_bytes32("log_id", log_id)
        _check_bytes32("root", root)
        _check_tree_size(tree_size)
        bindings = list(bindings)
        first, rest = bindings[: self.max_bindings_per_tx], bindings[self.max_bindings_per_tx:]
        if first:
            fn = self._contract.functions.anchorWithBindings(log_id, tree_size, root, [b.value for b in first],
                                                             [b.resolution for b in first])
        else:
            fn = self._contract.functions.anchor(log_id, tree_size, root)
        receipt = self._transact(fn, "anchoring")
        events = self._contract.events.Anchored().process_receipt(receipt, errors=DISCARD)
        if len(events) != 1:
            raise AnchorError(f"anchor transaction {receipt['transactionHash'].to_0x_hex()} emitted no Anchored event")
        anchored = AnchorReceipt(
            chain_id=self._chain_id,
            contract_address=self.contract_address,
            tx_hash=receipt["transactionHash"].to_0x_hex(),
            block_number=int(receipt["blockNumber"]),
            block_timestamp=int(events[0]["args"]["timestamp"]),
            gas_used=int(receipt["gasUsed"]),
            log_id=bytes(log_id),
            tree_size=tree_size,
            root=bytes(root),
            ephemeral=self._ephemeral,
            bindings=len(bindings),
        )
        for start in range(0, len(rest), self.max_bindings_per_tx):  # overflow: right after, same anchorer
            chunk = rest[start : start + self.max_bindings_per_tx]
            fn = self._contract.functions.publishBindings([b.value for b in chunk], [b.resolution for b in chunk])
            self._transact(fn, "publishing soft bindings")
        return anchored

    def describe_federated_lookup(self) -> str:
        """The contract's ``describe()``: the C2PA federated-lookup description (JSON text)."""
        with self._boundary("reading describe()"):
            return str(self._contract.functions.describe().call())

    def add_anchorer(self, address: str) -> str:
        """Authorise ``address`` to anchor (owner only); returns the transaction hash."""
        fn = self._contract.functions.addAnchorer(_checksum(address))
        return self._transact(fn, "adding an anchorer")["transactionHash"].to_0x_hex()

    def remove_anchorer(self, address: str) -> str:
        """Withdraw ``address``'s authorisation (owner only); returns the transaction hash."""
        fn = self._contract.functions.removeAnchorer(_checksum(address))
        return self._transact(fn, "removing an anchorer")["transactionHash"].to_0x_hex()

    def send_value(self, to: str, wei: int) -> str:
        """Send ``wei`` to ``to`` (gas money for a new anchorer account); returns the transaction hash once mined."""
        if isinstance(wei, bool) or not isinstance(wei, int) or wei <= 0:
            raise InvalidInputError(f"amount must be a positive number of wei, got {wei!r}")
        with self._boundary("funding an account"), self._send_lock:
            tx: TxParams = {"from": self._sender, "to": _checksum(to), "value": wei, "gas": 21_000,
                            "gasPrice": int(self._w3.eth.gas_price)}
            tx_hash = _send(self._w3, tx, self._key)
            receipt = self._w3.eth.wait_for_transaction_receipt(tx_hash, timeout=self._timeout_s, poll_latency=0.05)
            if receipt["status"] != 1:
                raise AnchorRejectedError(f"transfer {receipt['transactionHash'].to_0x_hex()} failed")
        return str(receipt["transactionHash"].to_0x_hex())

    # --- reads -----------------------------------------------------------------------------------------------------
    def read(self, log_id: bytes, tree_size: int) -> OnChainAnchor | None:
        _check_bytes32("log_id", log_id)
        _check_tree_size(tree_size)
        with self._boundary("reading an anchor"):
            root, timestamp, block_number, anchorer = self._contract.functions.anchorOf(log_id, tree_size).call()
        if bytes(root) == _ZERO32:
            return None
        return OnChainAnchor(bytes(log_id), tree_size, bytes(root), int(timestamp), int(block_number), str(anchorer))

    def latest(self, log_id: bytes) -> OnChainAnchor | None:
        _check_bytes32("log_id", log_id)
        with self._boundary("reading the latest anchor"):
            size, root, timestamp, block_number, anchorer = self._contract.functions.latest(log_id).call()
        if size == 0:
            return None
        return OnChainAnchor(bytes(log_id), int(size), bytes(root), int(timestamp), int(block_number), str(anchorer))

    def is_anchorer(self, address: str) -> bool:
        with self._boundary("reading anchorers"):
            return bool(self._contract.functions.isAnchorer(_checksum(address)).call())

    def owner(self) -> str:
        with self._boundary("reading the owner"):
            return str(self._contract.functions.owner().call())

    # --- internals -------------------------------------------------------------------------------------------------
    def _boundary(self, action: str) -> Any:
        return _translate(self._where, action, self._errors)

    def _transact(self, fn: ContractFunction, action: str) -> TxReceipt:
        """Exactly one transaction: simulate (gas estimate; a revert raises here and nothing is sent), send, wait."""
        with self._boundary(action), self._send_lock:
            tx_hash = _send(self._w3, fn.build_transaction({"from": self._sender}), self._key)
            receipt = self._w3.eth.wait_for_transaction_receipt(tx_hash, timeout=self._timeout_s, poll_latency=0.05)
            if receipt["status"] != 1:
                raise AnchorRejectedError(self._replay_reason(fn, receipt))
            if self._confirmations:
                receipt = self._await_confirmations(receipt)
        return receipt

    def _replay_reason(self, fn: ContractFunction, receipt: TxReceipt) -> str:
        """Why a mined transaction reverted (e.g. another anchor won the race): re-run it on the parent block."""
        tx_hash = receipt["transactionHash"].to_0x_hex()
        try:
            fn.call({"from": self._sender}, block_identifier=int(receipt["blockNumber"]) - 1)
        except (ContractLogicError, TransactionFailed) as exc:
            return f"{_decode_revert(exc, self._errors)} (transaction {tx_hash} reverted)"
        except (Web3Exception, *_UNREACHABLE):
            pass
        return f"transaction {tx_hash} reverted (gas used {receipt['gasUsed']})"

    def _await_confirmations(self, receipt: TxReceipt) -> TxReceipt:
        target = int(receipt["blockNumber"]) + self._confirmations
        deadline = time.monotonic() + self._timeout_s
        while self._w3.eth.block_number < target:
            if time.monotonic() > deadline:
                raise AnchorError(f"{self._confirmations} confirmations not reached within {self._timeout_s}s")
            time.sleep(0.5)
        # Re-read: after a reorg the transaction may sit in another block (or in none).
        return self._w3.eth.get_transaction_receipt(receipt["transactionHash"])


# --- helpers -------------------------------------------------------------------------------------------------------
@contextmanager
def _translate(where: str, action: str, errors: dict[bytes, tuple[str, list[str]]]) -> Iterator[None]:
    """Map client exceptions to the package's errors; ``where`` names the node in every message."""
    try:
        yield
    except ProvenanceError:
        raise
    except (ContractLogicError, TransactionFailed) as exc:
        raise AnchorRejectedError(_decode_revert(exc, errors)) from exc
    except _UNREACHABLE as exc:
        raise ChainUnavailableError(f"EVM node unreachable while {action}: {type(exc).__name__}", where=where) from exc
    except TimeExhausted as exc:
        raise AnchorError(f"{action}: transaction not mined in time on {where}: {exc}") from exc
    except (Web3Exception, ValueError) as exc:
        raise AnchorError(f"{action} failed on {where}: {exc}") from exc


def _decode_revert(exc: BaseException, errors: dict[bytes, tuple[str, list[str]]]) -> str:
    for payload in _revert_payloads(exc):
        known = errors.get(payload[:4])
        if known is None:
            continue
        name, types = known
        try:
            return _describe_revert(name, tuple(abi_decode(types, payload[4:])))
        except Exception:  # malformed arguments: fall through to the generic message
            continue
    return f"contract reverted: {getattr(exc, 'message', None) or exc}"


def _http_web3(rpc_url: str, timeout_s: float) -> Web3:
    # Retry read-only calls briefly; a node that stays down should fail fast, not after web3's default backoff.
    retry = ExceptionRetryConfiguration(errors=(requests.ConnectionError,), retries=2, backoff_factor=0.1)
    provider = Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": timeout_s}, exception_retry_configuration=retry)
    return Web3(provider)


def _public_url(url: str) -> str:
    """``url`` without credentials (user:password@, query string) so it can appear in messages and logs."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _account_from_key(private_key: str | None) -> LocalAccount | None:
    """The signing account of a hex key; the error never echoes the key."""
    if not private_key:
        return None
    try:
        account: LocalAccount = Account.from_key(private_key)
    except (ValueError, TypeError):  # binascii.Error is a ValueError
        raise ConfigError("the chain private key is not a 32-byte hex key") from None
    return account


def _checksum(address: str) -> ChecksumAddress:
    try:
        return Web3.to_checksum_address(address)
    except (ValueError, TypeError) as exc:
        raise InvalidInputError(f"not an Ethereum address: {address!r}") from exc


def _first_account(w3: Web3, where: str) -> ChecksumAddress:
    accounts = w3.eth.accounts
    if not accounts:
        raise AnchorError(f"{where} has no unlocked account; give a private key to sign with")
    return accounts[0]


def _send(w3: Web3, tx: TxParams, key: LocalAccount | None) -> HexBytes:
    """Send ``tx`` (already gas-estimated) from the node's unlocked account, or sign it locally with ``key``."""
    if key is None:
        return w3.eth.send_transaction(tx)
    nonce = w3.eth.get_transaction_count(key.address, "pending")
    signed = key.sign_transaction({**tx, "nonce": nonce, "chainId": w3.eth.chain_id})  # type: ignore[dict-item]
    return w3.eth.send_raw_transaction(signed.raw_transaction)


def _deploy(
    w3: Web3,
    artifact: ContractArtifact,
    *,
    sender: ChecksumAddress,
    key: LocalAccount | None,
    timeout_s: float,
    where: str = "in-process EVM",
) -> str:
    with _translate(where, "deploying", _error_table(artifact.abi)):
        factory = w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
        tx_hash = _send(w3, factory.constructor().build_transaction({"from": sender}), key)
        receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=timeout_s, poll_latency=0.05)
    if receipt["status"] != 1 or not receipt["contractAddress"]:
        raise AnchorError(f"deploying ProvenanceAnchor failed on {where} (tx {receipt['transactionHash'].to_0x_hex()})")
    return str(receipt["contractAddress"])


def _check_bytes32(name: str, value: bytes) -> None:
    if not isinstance(value, (bytes, bytearray)) or len(value) != 32:
        raise InvalidInputError(f"{name} must be 32 bytes")


def _check_tree_size(tree_size: int) -> None:
    if isinstance(tree_size, bool) or not isinstance(tree_size, int) or not 0 <= tree_size <= MAX_TREE_SIZE:
        raise InvalidInputError(f"tree size must be an integer in [0, 2**64), got {tree_size!r}")
