// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title ProvenanceAnchor
/// @notice Timestamps transparency-log checkpoints: for each log (logId) it records, once, the root hash of the
///         log at a tree size, with the block's timestamp and number. Tree sizes must strictly grow per log, so an
///         anchored checkpoint can never be replaced or back-dated; anyone can read them back.
/// @dev    Only authorised anchorers write. The deployer is the owner (fixed) and the first anchorer; the owner adds
///         and removes anchorers. Nothing is ever deleted or overwritten.
///
///         It is also a C2PA federated-lookup key-value store (C2PA 2.x, "Decoupled" soft binding, section 2,
///         "Federated Lookup"): `describe()` returns the JSON description the specification asks for (an
///         `eventLog` store), and `anchorWithBindings` publishes, in the same transaction as a checkpoint, one
///         `SoftBinding` event per soft binding of the batch: topic1 = keccak256 of the base64 binding value (an
///         indexed string), data = the JSON resolution `{"endpoints": [...], "manifestId": ..., "alg": ...}`.
///         Events, not storage: a binding costs ~3x less gas as a log than as one storage slot (and ~20x less
///         than its value in storage), and a client reads it with one `eth_getLogs` filtered by the topic
///         (docs/c2pa-softbinding.md has the figures).
contract ProvenanceAnchor {
    /// One anchored checkpoint. Packed into two storage slots: 48-bit time and block number last past the year
    /// 8,900,000 and block 2^48, far beyond any chain this will run on.
    struct Record {
        bytes32 root;
        uint48 timestamp;
        uint48 blockNumber;
        address anchorer;
    }

    /// The deployer; the only account that can add or remove anchorers.
    address public immutable owner;

    mapping(address account => bool) private _anchorers;
    mapping(bytes32 logId => mapping(uint64 treeSize => Record)) private _records;
    mapping(bytes32 logId => uint64 treeSize) private _latestSize;

    event Anchored(bytes32 indexed logId, uint64 indexed treeSize, bytes32 root, uint64 timestamp, address anchorer);
    /// A federated-lookup key-value pair: key = the soft binding value (base64, standard alphabet, padded), value =
    /// the resolution JSON (byBindingOutputSchema of `describe()`).
    event SoftBinding(string indexed softBindingValue, string resolution);
    event AnchorerAdded(address indexed account);
    event AnchorerRemoved(address indexed account);

    error NotOwner(address caller);
    error NotAnchorer(address caller);
    error TreeSizeNotIncreasing(uint64 latest, uint64 given);
    error ZeroRoot();
    error ZeroAddress();
    error BindingCountMismatch(uint256 values, uint256 resolutions);

    /// How the description's output schema reads each `SoftBinding` event's data (a JSON string).
    string private constant _OUTPUT_SCHEMA =
        '{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"object","properties":{'
        '"endpoints":{"type":"array","items":{"type":"string","format":"uri"},"description":"The URL(s) of the '
        'Soft Binding Resolution API that may resolve this manifest ID."},'
        '"manifestId":{"type":"string","description":"The unique identifier of the C2PA manifest."},'
        '"alg":{"type":"string","description":"The soft binding algorithm (C2PA soft binding algorithm list '
        'name) that computed the value."}},"required":["endpoints","manifestId","alg"],"additionalProperties":false}';

    constructor() {
        owner = msg.sender;
        _anchorers[msg.sender] = true;
        emit AnchorerAdded(msg.sender);
    }

    modifier onlyOwner() {
        if (msg.sender != owner) revert NotOwner(msg.sender);
        _;
    }

    /// @notice Record `root` as the root of log `logId` at `treeSize`; `treeSize` must exceed the latest one.
    function anchor(bytes32 logId, uint64 treeSize, bytes32 root) external {
        _anchor(logId, treeSize, root);
    }

    /// @notice `anchor`, and in the same transaction publish the soft bindings of the batch the checkpoint adds:
    ///         one `SoftBinding(softBindingValues[i], resolutions[i])` event each.
    function anchorWithBindings(
        bytes32 logId,
        uint64 treeSize,
        bytes32 root,
        string[] calldata softBindingValues,
        string[] calldata resolutions
    ) external {
        _anchor(logId, treeSize, root);
        _publish(softBindingValues, resolutions);
    }

    /// @notice Publish more soft bindings of the batch just anchored, when they did not fit in its transaction.
    function publishBindings(string[] calldata softBindingValues, string[] calldata resolutions) external {
        if (!_anchorers[msg.sender]) revert NotAnchorer(msg.sender);
        _publish(softBindingValues, resolutions);
    }

    /// @notice The C2PA federated-lookup description (a JSON array with one `eventLog` method): which contract
    ///         writes the key-value events (this one), which topic holds the key, and the schema of their data.
    function describe() external view returns (string memory) {
        return string.concat(
            '[{"resolutionMethod":"eventLog","queryEventLog":{"smartContractAddress":"',
            _hexAddress(address(this)),
            '","keyTopic":"topic1","byBindingOutputSchema":',
            _OUTPUT_SCHEMA,
            "}}]"
        );
    }

    function _publish(string[] calldata softBindingValues, string[] calldata resolutions) private {
        if (softBindingValues.length != resolutions.length) {
            revert BindingCountMismatch(softBindingValues.length, resolutions.length);
        }
        for (uint256 i = 0; i < softBindingValues.length; ++i) {
            emit SoftBinding(softBindingValues[i], resolutions[i]);
        }
    }

    function _anchor(bytes32 logId, uint64 treeSize, bytes32 root) private {
        if (!_anchorers[msg.sender]) revert NotAnchorer(msg.sender);
        if (root == bytes32(0)) revert ZeroRoot();
        uint64 latestSize = _latestSize[logId];
        if (treeSize <= latestSize) revert TreeSizeNotIncreasing(latestSize, treeSize);

        _latestSize[logId] = treeSize;
        _records[logId][treeSize] = Record({
            root: root,
            timestamp: uint48(block.timestamp),
            blockNumber: uint48(block.number),
            anchorer: msg.sender
        });
        emit Anchored(logId, treeSize, root, uint64(block.timestamp), msg.sender);
    }

    function addAnchorer(address account) external onlyOwner {
        if (account == address(0)) revert ZeroAddress();
        _anchorers[account] = true;
        emit AnchorerAdded(account);
    }

    function removeAnchorer(address account) external onlyOwner {
        _anchorers[account] = false;
        emit AnchorerRemoved(account);
    }

    function isAnchorer(address account) external view returns (bool) {
        return _anchorers[account];
    }

    /// @notice The checkpoint anchored for `logId` at exactly `treeSize`; all zeros when there is none.
    function anchorOf(bytes32 logId, uint64 treeSize)
        external
        view
        returns (bytes32 root, uint64 timestamp, uint64 blockNumber, address anchorer)
    {
        Record storage r = _records[logId][treeSize];
        return (r.root, r.timestamp, r.blockNumber, r.anchorer);
    }

    /// @notice The most recent checkpoint of `logId`; all zeros (treeSize 0) when none was anchored.
    function latest(bytes32 logId)
        external
        view
        returns (uint64 treeSize, bytes32 root, uint64 timestamp, uint64 blockNumber, address anchorer)
    {
        treeSize = _latestSize[logId];
        Record storage r = _records[logId][treeSize];
        return (treeSize, r.root, r.timestamp, r.blockNumber, r.anchorer);
    }

    /// `0x` and 40 lowercase hex digits.
    function _hexAddress(address account) private pure returns (string memory) {
        bytes memory digits = "0123456789abcdef";
        bytes20 value = bytes20(account);
        bytes memory out = new bytes(42);
        out[0] = "0";
        out[1] = "x";
        for (uint256 i = 0; i < 20; ++i) {
            out[2 + 2 * i] = digits[uint8(value[i]) >> 4];
            out[3 + 2 * i] = digits[uint8(value[i]) & 0x0f];
        }
        return string(out);
    }
}
