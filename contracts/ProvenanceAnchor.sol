// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title ProvenanceAnchor
/// @notice Timestamps transparency-log checkpoints: for each log (logId) it records, once, the root hash of the
///         log at a tree size, with the block's timestamp and number. Tree sizes must strictly grow per log, so an
///         anchored checkpoint can never be replaced or back-dated; anyone can read them back.
/// @dev    Only authorised anchorers write. The deployer is the owner (fixed) and the first anchorer; the owner adds
///         and removes anchorers. Nothing is ever deleted or overwritten.
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
    event AnchorerAdded(address indexed account);
    event AnchorerRemoved(address indexed account);

    error NotOwner(address caller);
    error NotAnchorer(address caller);
    error TreeSizeNotIncreasing(uint64 latest, uint64 given);
    error ZeroRoot();
    error ZeroAddress();

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
}
