#!/usr/bin/env node
// Compile contracts/ProvenanceAnchor.sol with the pinned solcjs into a deterministic, committed artifact.
//
//   node contracts/compile.js [--out PATH]     (default: contracts/build/ProvenanceAnchor.json)
//
// Why the JS API: solcjs's CLI has no --evm-version. The EVM version is pinned to "paris" (no PUSH0) so the
// bytecode runs on ganache 7.9.2 and py-evm alike; bytecodeHash "none" keeps the metadata hash (which depends on
// source paths) out of the bytecode. Output keys are sorted, so the same inputs always give the same bytes.
// Set PROVENANCE_NODE_MODULES to use node_modules other than tools/node/node_modules.
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const path = require('path');

const CONTRACT = 'ProvenanceAnchor';
const SOLC_VERSION = '0.8.37';
const HERE = __dirname;
const SOURCE_FILE = path.join(HERE, `${CONTRACT}.sol`);
const DEFAULT_OUT = path.join(HERE, 'build', `${CONTRACT}.json`);
const NODE_MODULES = process.env.PROVENANCE_NODE_MODULES || path.join(HERE, '..', 'tools', 'node', 'node_modules');

const SETTINGS = {
  evmVersion: 'paris',
  optimizer: { enabled: true, runs: 200 },
  metadata: { bytecodeHash: 'none' },
};

const OUTPUTS = [
  'abi',
  'evm.bytecode.object',
  'evm.deployedBytecode.object',
  'evm.deployedBytecode.immutableReferences',
];

function die(message) {
  process.stderr.write(`compile.js: ${message}\n`);
  process.exit(1);
}

function parseArgs(argv) {
  let out = DEFAULT_OUT;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--out' && i + 1 < argv.length) out = path.resolve(argv[++i]);
    else die(`unknown argument ${argv[i]} (usage: node contracts/compile.js [--out PATH])`);
  }
  return { out };
}

function loadSolc() {
  const dir = path.join(NODE_MODULES, 'solc');
  let solc;
  try {
    solc = require(dir);
  } catch (err) {
    die(`cannot load solc from ${dir} (run: npm ci --prefix tools/node): ${err.message}`);
  }
  const version = solc.version();
  if (!version.startsWith(`${SOLC_VERSION}+`)) die(`solc ${SOLC_VERSION} required, found ${version}`);
  return solc;
}

// JSON with object keys sorted at every level (arrays keep their order), 2-space indent, trailing newline.
function sortKeys(value) {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value && typeof value === 'object') {
    const out = {};
    for (const key of Object.keys(value).sort()) out[key] = sortKeys(value[key]);
    return out;
  }
  return value;
}

function main() {
  const { out } = parseArgs(process.argv.slice(2));
  const solc = loadSolc();
  const source = fs.readFileSync(SOURCE_FILE, 'utf8');
  const sourceName = `${CONTRACT}.sol`;

  const input = {
    language: 'Solidity',
    sources: { [sourceName]: { content: source } },
    settings: {
      ...SETTINGS,
      outputSelection: { [sourceName]: { [CONTRACT]: OUTPUTS } },
    },
  };
  const output = JSON.parse(solc.compile(JSON.stringify(input)));

  const diagnostics = output.errors || [];
  for (const d of diagnostics) process.stderr.write(`${d.formattedMessage || d.message}\n`);
  const errors = diagnostics.filter((d) => d.severity === 'error');
  if (errors.length) die(`${errors.length} compiler error(s); no artifact written`);

  const compiled = output.contracts && output.contracts[sourceName] && output.contracts[sourceName][CONTRACT];
  if (!compiled || !compiled.evm.bytecode.object) die(`no bytecode produced for ${CONTRACT}`);

  const artifact = sortKeys({
    contractName: CONTRACT,
    sourceName: `contracts/${sourceName}`,
    sourceSha256: crypto.createHash('sha256').update(source, 'utf8').digest('hex'),
    compiler: { name: 'solc', version: solc.version() },
    settings: SETTINGS,
    abi: compiled.abi,
    bytecode: `0x${compiled.evm.bytecode.object}`,
    deployedBytecode: `0x${compiled.evm.deployedBytecode.object}`,
    // Byte ranges of deployedBytecode that the constructor fills in (immutables): a deployed copy differs there.
    immutableReferences: compiled.evm.deployedBytecode.immutableReferences || {},
  });

  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, `${JSON.stringify(artifact, null, 2)}\n`);
  process.stdout.write(`${out}\n`);
}

main();
