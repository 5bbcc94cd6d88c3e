// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// Benchmark only (benchmarks/bench_federated.py): the other ways a C2PA federated-lookup key-value store could
/// keep soft bindings, to weigh against ProvenanceAnchor's event log. Never deployed by the service.
contract FederatedGasVariants {
    /// (a) storage, compact: keccak256(binding value) -> the sha2-256 digest of the record CID (the manifest id and
    ///     endpoint would be rebuilt by a view function from it and from one stored endpoint).
    mapping(bytes32 key => bytes32 digest) public digestOf;
    /// (b) storage, the full resolution JSON per key (what a `smartContract` method would return as is).
    mapping(bytes32 key => string resolution) public resolutionOf;
    /// (c) a Merkle root of the batch's bindings (resolved off chain, with proofs served by the operator).
    mapping(uint256 batch => bytes32 root) public rootOf;
    uint256 public batches;

    function storeDigests(bytes32[] calldata keys, bytes32[] calldata digests) external {
        for (uint256 i = 0; i < keys.length; ++i) digestOf[keys[i]] = digests[i];
    }

    function storeResolutions(string[] calldata values, string[] calldata resolutions) external {
        for (uint256 i = 0; i < values.length; ++i) resolutionOf[keccak256(bytes(values[i]))] = resolutions[i];
    }

    function commitRoot(bytes32 root) external {
        rootOf[batches++] = root;
    }
}
