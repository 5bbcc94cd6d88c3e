"""C2PA federated lookup on chain (issue 15, section 4), on a real ganache node.

A client that knows only the chain's RPC URL and the contract address reads ``describe()``, finds a binding's
entry in the event log, and follows it to our ``GET /manifests/{id}``: a C2PA manifest store we signed, labelled
with that id, holding the binding. The service publishes the bindings of each batch in the anchor's own
transaction. The ``describe()`` answer is checked against the specification's schema (vendored in ``spec/``)."""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from fastapi.testclient import TestClient

from provenance.api.app import create_app
from provenance.c2pa.errors import FederatedLookupError
from provenance.c2pa.federated import parse_description, resolve_binding
from provenance.hashing import PHashHasher
from provenance.records import PublisherMetadata
from provenance.services import deploy_contract
from provenance.softbinding.manifest_ids import manifest_id_for
from tests.provenance.api.light_service import open_light_service, photo
from tests.provenance.c2pa.pki import TestPki

pytestmark = pytest.mark.evm_rpc
SPEC = Path(__file__).parent / "spec"
PHASH = "org.provenance-service.phash.1"
ENDPOINT = "http://testserver"  # TestClient's base URL: the published endpoint is where the client then goes


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory, shared_photos: Path, evm_rpc_url: str, pki: TestPki) -> Any:
    """A light service on ganache that publishes soft bindings and signs manifest stores; two anchored batches."""
    tmp_path = tmp_path_factory.mktemp("federated")
    files = pki.write(tmp_path)
    service = open_light_service(tmp_path / "data", chain_rpc_url=evm_rpc_url, softbinding_endpoints=ENDPOINT,
                                 c2pa_signing_cert=files["chain"], c2pa_signing_key=files["key"])
    deploy_contract(service.settings, service.ledger)
    service.ledger.add_publisher("acme")
    images = {n: photo(shared_photos, n, side=256) for n in (3, 5, 7)}
    meta = PublisherMetadata(title="Kodak")
    cids = {n: service.pipeline.ingest(images[n], publisher="acme", metadata=meta).cid for n in (3, 5)}
    first = service.ledger.anchor()
    cids[7] = service.pipeline.ingest(images[7], publisher="acme", metadata=meta).cid
    second = service.ledger.anchor()
    yield service, images, cids, (first, second)
    service.close()


def _b64_phash(data: bytes) -> str:
    return base64.b64encode(bytes.fromhex(PHashHasher().hash_image(data).value)).decode()


def test_a_client_knowing_only_rpc_and_contract_resolves_a_binding_to_our_manifest(published: Any,
                                                                                   evm_rpc_url: str) -> None:
    service, images, cids, (first, second) = published
    contract = first.anchor.contract_address
    assert first.anchor.bindings == 2 and second.anchor.bindings == 1  # each batch publishes only its own records

    value = _b64_phash(images[5])  # computed by the client from the image, with nothing of ours
    found = resolve_binding(evm_rpc_url, contract, value, alg=PHASH)
    assert len(found) == 1
    entry = found[0]
    assert entry.endpoints == (ENDPOINT,) and entry.alg == PHASH
    assert entry.manifest_id == manifest_id_for(cids[5])
    assert entry.tx_hash == first.anchor.tx_hash  # written in the same transaction as the checkpoint anchor
    assert resolve_binding(evm_rpc_url, contract, _b64_phash(images[7]))[0].tx_hash == second.anchor.tx_hash
    assert resolve_binding(evm_rpc_url, contract, base64.b64encode(b"\0" * 8).decode()) == []

    # ... and the endpoint serves that manifest: a C2PA manifest store we signed, holding the binding.
    import c2pa

    with TestClient(create_app(lambda: service, settings=service.settings, anchor=False)) as client:
        resp = client.get(entry.manifest_urls()[0])
        assert resp.status_code == 200, resp.text
        assert resp.headers["content-type"] == "application/c2pa"
        with c2pa.Reader("image/png", io.BytesIO(images[5]), manifest_data=resp.content) as reader:
            store = json.loads(reader.json())
            failures = {f["code"] for f in store["validation_results"]["activeManifest"]["failure"]}
        assert failures <= {"signingCredential.untrusted"}  # bound to the registered original; a test PKI
        assert store["active_manifest"] == entry.manifest_id
        assertions = {a["label"]: a["data"] for a in store["manifests"][entry.manifest_id]["assertions"]}
        assert assertions["c2pa.soft-binding"]["alg"] == PHASH
        assert assertions["c2pa.soft-binding"]["blocks"][0]["value"] == value
        assert assertions["org.provenance-service.record"] == {"record_cid": cids[5]}
        proof = assertions["org.provenance-service.proof-bundle"]
        bundle = client.get(proof["url"])
        import hashlib

        assert proof["record_cid"] == cids[5] and hashlib.sha256(bundle.content).hexdigest() == proof["sha256"]


def test_describe_follows_the_specification_schema(published: Any, evm_rpc_url: str) -> None:
    service, images, cids, (first, _) = published
    from web3 import Web3

    from provenance.c2pa.federated import DESCRIBE_ABI

    w3 = Web3(Web3.HTTPProvider(evm_rpc_url))
    contract = Web3.to_checksum_address(first.anchor.contract_address)
    text = w3.eth.contract(address=contract, abi=DESCRIBE_ABI).functions.describe().call()
    description = json.loads(text)
    jsonschema.Draft202012Validator(json.loads((SPEC / "federated-lookup-2.3.schema.json").read_text())).validate(
        description)
    method = description[0]["queryEventLog"]
    assert description[0]["resolutionMethod"] == "eventLog" and method["keyTopic"] == "topic1"
    assert method["smartContractAddress"] == contract.lower()
    # every published value follows the description's own output schema (it is a JSON schema: check with it)
    output = jsonschema.Draft202012Validator(method["byBindingOutputSchema"])
    for n in (3, 5, 7):
        for entry in resolve_binding(evm_rpc_url, contract, _b64_phash(images[n])):
            output.validate({"endpoints": list(entry.endpoints), "manifestId": entry.manifest_id, "alg": entry.alg})
    # C2PA 2.2's schema rejects schema-shaped output schemas, the specification's own examples included
    # (tests/provenance/c2pa/spec/SOURCE.md): 2.3 is the one that can be met
    assert list(jsonschema.Draft202012Validator(
        json.loads((SPEC / "federated-lookup-2.2.schema.json").read_text())).iter_errors(description))


def test_the_cli_resolves_with_only_rpc_and_contract(published: Any, evm_rpc_url: str, tmp_path: Path) -> None:
    service, images, cids, (first, _) = published
    hex_value = PHashHasher().hash_image(images[3]).value
    cmd = [sys.executable, "-m", "provenance.cli", "--data-dir", str(tmp_path / "nothing"), "chain",
           "resolve-binding", hex_value, "--rpc", evm_rpc_url, "--contract", first.anchor.contract_address,
           "--alg", PHASH]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [e["manifestId"] for e in lines] == [manifest_id_for(cids[3])]
    assert lines[0]["manifest_urls"] == [f"{ENDPOINT}/manifests/{manifest_id_for(cids[3])}"]
    assert not (tmp_path / "nothing").exists()  # no data directory needed
    from click.testing import CliRunner

    from provenance.c2pa.federated_cli import resolve_binding_command

    missing = CliRunner().invoke(resolve_binding_command, ["0" * 16, *cmd[8:]])
    assert missing.exit_code == 1 and "no " + PHASH in missing.output


def test_a_contract_that_is_not_a_lookup_store_is_refused(evm_rpc_url: str) -> None:
    with pytest.raises(FederatedLookupError):  # an address without the contract: describe() cannot answer
        resolve_binding(evm_rpc_url, "0x" + "12" * 20, "AAAAAAAAAAA=")
    for bad in ("[]", "{}", '[{"resolutionMethod": "eventLog"}]',
                '[{"resolutionMethod": "smartContract", "queryEventLog": {}}]',
                '[{"resolutionMethod": "eventLog", "queryEventLog": {"smartContractAddress": "0x12", '
                '"keyTopic": "topic1", "byBindingOutputSchema": {"required": ["endpoints"]}}}]'):
        with pytest.raises(FederatedLookupError):
            parse_description(bad)
