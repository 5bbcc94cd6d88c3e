"""C2PA federated lookup on an EVM chain: resolve a soft binding with nothing but a chain RPC URL and a contract.

The C2PA soft-binding specification (2.x, "Decoupled": section 2, "Federated Lookup") keeps a decentralized
key-value store on a ledger: key = a soft binding value, value = the Soft Binding Resolution API endpoint(s) that
hold its manifest, optionally with the manifest's id. The contract tells how it stores them: ``describe()``
returns a JSON array of methods, each either

* ``{"resolutionMethod": "eventLog", "queryEventLog": {smartContractAddress, keyTopic, byBindingOutputSchema}}``:
  events of that contract whose topic ``keyTopic`` (``"topic1"``: the first indexed parameter) is the key, their
  data the JSON value; or
* ``{"resolutionMethod": "smartContract", "querySmartContract": {smartContractAddress, byBindingFunctionName,
  byBindingInputSchema, byBindingOutputSchema}}``: a view function taking and returning one JSON string.

:func:`resolve_binding` follows either. The specification does not say how a key becomes a topic; like Solidity's
``string indexed`` parameter (what our ``ProvenanceAnchor`` uses), the topic is ``keccak256`` of the UTF-8 of the
base64 value, and the data is the ABI encoding of one ``string`` (raw UTF-8 JSON is accepted too).

The publisher side (:func:`resolution_json`) is pure. Imports web3 only: no torch, no database.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from provenance.c2pa.errors import FederatedLookupError

__all__ = ["DESCRIBE_ABI", "FederatedResolution", "LookupMethod", "binding_topic", "decode_resolution",
           "parse_description", "resolution_json", "resolve_binding", "resolve_events"]

#: The one function the specification requires of the contract (``C2PASoftBindingResolution.describe``).
DESCRIBE_ABI: list[dict[str, Any]] = [{"type": "function", "name": "describe", "stateMutability": "view",
                                       "inputs": [], "outputs": [{"name": "", "type": "string"}]}]
_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_TOPIC = re.compile(r"^topic([1-3])$")
MAX_DESCRIPTION_CHARS = 64 * 1024  # a description is a few KB; more is not one
MAX_RESOLUTION_CHARS = 16 * 1024


@dataclass(frozen=True)
class LookupMethod:
    """One method of a ``describe()`` answer."""

    kind: str  # "eventLog" | "smartContract"
    address: str
    key_topic: int | None = None  # eventLog: index of the topic holding the key (1..3)
    function: str | None = None  # smartContract: byBindingFunctionName
    output_required: tuple[str, ...] = ("endpoints",)


@dataclass(frozen=True)
class FederatedResolution:
    """What the chain says about one soft binding: where to resolve it, and the manifest id when published."""

    endpoints: tuple[str, ...]
    manifest_id: str | None
    alg: str | None
    contract: str
    tx_hash: str | None = None  # eventLog: the transaction that published it
    block_number: int | None = None

    def manifest_urls(self) -> list[str]:
        """``GET {endpoint}/manifests/{manifestId}`` for each endpoint (the Soft Binding Resolution API route)."""
        if self.manifest_id is None:
            return []
        from urllib.parse import quote

        return [f"{e.rstrip('/')}/manifests/{quote(self.manifest_id, safe=':')}" for e in self.endpoints]

    def to_obj(self) -> dict[str, Any]:
        return {"endpoints": list(self.endpoints), "manifestId": self.manifest_id, "alg": self.alg,
                "contract": self.contract, "tx": self.tx_hash, "block": self.block_number,
                "manifest_urls": self.manifest_urls()}


# --- pure: the publisher's value, the description, the events ----------------------------------------------------
def resolution_json(endpoints: Sequence[str], manifest_id: str, alg: str) -> str:
    """The value published for a binding: compact JSON following our description's ``byBindingOutputSchema``."""
    if not endpoints or not all(isinstance(e, str) and e.startswith(("https://", "http://")) for e in endpoints):
        raise ValueError("endpoints must be one or more http(s) URLs")
    return json.dumps({"endpoints": list(endpoints), "manifestId": manifest_id, "alg": alg},
                      separators=(",", ":"), ensure_ascii=True)


def parse_description(text: str) -> tuple[LookupMethod, ...]:
    """The methods of a ``describe()`` answer, checked against the specification's schema (an array of at least
    one item, each with exactly one of ``querySmartContract``/``queryEventLog`` and its required fields)."""
    if not isinstance(text, str) or len(text) > MAX_DESCRIPTION_CHARS:
        raise FederatedLookupError("describe() did not return a JSON string of reasonable size")
    try:
        items = json.loads(text)
    except ValueError as exc:
        raise FederatedLookupError(f"describe() is not JSON: {exc}") from None
    if not isinstance(items, list) or not items:
        raise FederatedLookupError("describe() must return a non-empty JSON array of resolution methods")
    methods = []
    for n, item in enumerate(items):
        if not isinstance(item, dict):
            raise FederatedLookupError(f"describe()[{n}] is not an object")
        has_sc, has_ev = "querySmartContract" in item, "queryEventLog" in item
        if has_sc == has_ev:
            raise FederatedLookupError(f"describe()[{n}] needs exactly one of querySmartContract, queryEventLog")
        kind = item.get("resolutionMethod")
        if kind not in ("smartContract", "eventLog") or (kind == "eventLog") != has_ev:
            raise FederatedLookupError(f"describe()[{n}].resolutionMethod {kind!r} does not match its query")
        query = item["queryEventLog" if has_ev else "querySmartContract"]
        need = ("smartContractAddress", "keyTopic", "byBindingOutputSchema") if has_ev else (
            "smartContractAddress", "byBindingFunctionName", "byBindingInputSchema", "byBindingOutputSchema")
        missing = [k for k in need if not isinstance(query, dict) or k not in query]
        if missing:
            raise FederatedLookupError(f"describe()[{n}] lacks {', '.join(missing)}")
        address = query["smartContractAddress"]
        if not isinstance(address, str) or not _ADDRESS.match(address):
            raise FederatedLookupError(f"describe()[{n}].smartContractAddress is not a 0x address: {address!r:.60}")
        output = query["byBindingOutputSchema"]
        required = output.get("required") if isinstance(output, dict) else None
        if not isinstance(required, list) or "endpoints" not in required:
            raise FederatedLookupError(f"describe()[{n}].byBindingOutputSchema must require endpoints")
        if has_ev:
            match = _TOPIC.match(str(query["keyTopic"]))
            if match is None:
                raise FederatedLookupError(f"describe()[{n}].keyTopic {query['keyTopic']!r} is not topic1..topic3")
            methods.append(LookupMethod("eventLog", address, key_topic=int(match.group(1)),
                                        output_required=tuple(str(r) for r in required)))
        else:
            function = query["byBindingFunctionName"]
            if not isinstance(function, str) or not function.isidentifier():
                raise FederatedLookupError(f"describe()[{n}].byBindingFunctionName is not a function name")
            methods.append(LookupMethod("smartContract", address, function=function,
                                        output_required=tuple(str(r) for r in required)))
    return tuple(methods)


def binding_topic(value_b64: str) -> bytes:
    """The event topic of a binding value: keccak256 of its UTF-8 (Solidity's ``string indexed``)."""
    from eth_utils.crypto import keccak

    return keccak(value_b64.encode("utf-8"))


def decode_resolution(data: bytes | str, required: Sequence[str] = ("endpoints",)) -> dict[str, Any]:
    """The JSON value of a key-value pair, from event data (ABI ``string``, or raw UTF-8 JSON) or a function's
    return value; checked against the output schema's shape. FederatedLookupError when it is not one."""
    text = data if isinstance(data, str) else _event_text(bytes(data))
    if len(text) > MAX_RESOLUTION_CHARS:
        raise FederatedLookupError("resolution larger than any we would publish")
    try:
        obj = json.loads(text)
    except ValueError as exc:
        raise FederatedLookupError(f"resolution is not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise FederatedLookupError("resolution is not a JSON object")
    missing = [k for k in required if k not in obj]
    endpoints = obj.get("endpoints")
    if missing or not isinstance(endpoints, list) or not all(isinstance(e, str) for e in endpoints):
        raise FederatedLookupError(f"resolution lacks {', '.join(missing) or 'a list of endpoint URLs'}")
    for key in ("manifestId", "alg"):
        if key in obj and not isinstance(obj[key], str):
            raise FederatedLookupError(f"resolution {key} is not a string")
    return obj


def _event_text(data: bytes) -> str:
    if len(data) >= 64:
        try:
            from eth_abi.abi import decode as abi_decode

            (text,) = abi_decode(["string"], data)
            return str(text)
        except Exception:  # noqa: BLE001 - not ABI: maybe raw UTF-8 JSON
            pass
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise FederatedLookupError("event data is neither an ABI string nor UTF-8") from None


def _resolution(obj: Mapping[str, Any], contract: str, tx: str | None = None,
                block: int | None = None) -> FederatedResolution:
    return FederatedResolution(tuple(obj["endpoints"]), obj.get("manifestId"), obj.get("alg"), contract, tx, block)


# --- the client ------------------------------------------------------------------------------------------------
def resolve_binding(rpc_url: str, contract_address: str, value_b64: str, *, alg: str | None = None,
                    from_block: int | str = 0, timeout_s: float = 30.0) -> list[FederatedResolution]:
    """Every resolution the contract at ``contract_address`` (reached through ``rpc_url``) publishes for the soft
    binding ``value_b64`` (base64, as the Soft Binding Resolution API carries values), optionally only those of
    ``alg``; in chain order. ChainUnavailableError when the node cannot be reached, FederatedLookupError when
    the contract does not follow the specification."""
    from web3 import Web3

    from provenance.errors import ChainUnavailableError

    w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": timeout_s}))
    try:
        address = Web3.to_checksum_address(contract_address)
    except (ValueError, TypeError):
        raise FederatedLookupError(f"not a contract address: {contract_address!r:.60}") from None
    try:
        description = w3.eth.contract(address=address, abi=DESCRIBE_ABI).functions.describe().call()
        found: list[FederatedResolution] = []
        for method in parse_description(description):
            if method.kind == "eventLog":
                found.extend(resolve_events(w3, method, value_b64, from_block))
            else:
                found.extend(_from_function(w3, method, value_b64))
    except FederatedLookupError:
        raise
    except (ConnectionError, TimeoutError, OSError) as exc:
        raise ChainUnavailableError(f"EVM node unreachable: {type(exc).__name__}", where=rpc_url) from exc
    except Exception as exc:  # noqa: BLE001 - web3 raises many types; a revert or bad ABI means "not a C2PA store"
        if type(exc).__module__.startswith(("requests", "urllib3")):
            raise ChainUnavailableError(f"EVM node unreachable: {type(exc).__name__}", where=rpc_url) from exc
        raise FederatedLookupError(f"{address} does not answer as a C2PA federated-lookup contract: {exc}") from exc
    return [r for r in found if alg is None or r.alg == alg]


def resolve_events(w3: Any, method: LookupMethod, value_b64: str,
                   from_block: int | str) -> list[FederatedResolution]:
    """The entries of an ``eventLog`` method for one binding value, through an open web3 connection."""
    assert method.key_topic is not None
    topics: list[Any] = [None] * method.key_topic + ["0x" + binding_topic(value_b64).hex()]
    logs = w3.eth.get_logs({"address": w3.to_checksum_address(method.address), "fromBlock": from_block,
                            "toBlock": "latest", "topics": topics})
    out = []
    for entry in logs:
        try:
            obj = decode_resolution(bytes(entry["data"]), method.output_required)
        except FederatedLookupError:
            continue  # another event of the contract that happens to share the topic position
        out.append(_resolution(obj, method.address, entry["transactionHash"].to_0x_hex(), int(entry["blockNumber"])))
    return out


def _from_function(w3: Any, method: LookupMethod, value_b64: str) -> list[FederatedResolution]:
    abi = [{"type": "function", "name": method.function, "stateMutability": "view",
            "inputs": [{"name": "query", "type": "string"}], "outputs": [{"name": "", "type": "string"}]}]
    fn = getattr(w3.eth.contract(address=w3.to_checksum_address(method.address), abi=abi).functions,
                 str(method.function))
    answer = fn(json.dumps({"softBindingValue": value_b64})).call()
    if not answer:
        return []
    return [_resolution(decode_resolution(str(answer), method.output_required), method.address)]
