#!/usr/bin/env bash
# Recompile contracts/ProvenanceAnchor.sol and fail if the committed artifact differs.
#
#   scripts/check-contract-artifact.sh
#
# Why: the Python code deploys and talks to the contract through contracts/build/ProvenanceAnchor.json, so that
# file must be exactly what the pinned compiler makes of the committed source. Fix a failure with:
#   node contracts/compile.js
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
ARTIFACT="$ROOT/contracts/build/ProvenanceAnchor.json"

die() { echo "check-contract-artifact.sh: $*" >&2; exit 1; }

command -v node >/dev/null 2>&1 || die "node not found on PATH"
[ -f "$ARTIFACT" ] || die "no committed artifact at contracts/build/ProvenanceAnchor.json (run: node contracts/compile.js)"

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

node "$ROOT/contracts/compile.js" --out "$TMP/ProvenanceAnchor.json" >/dev/null \
  || die "compilation failed (see above)"

if ! diff -u --label committed "$ARTIFACT" --label recompiled "$TMP/ProvenanceAnchor.json" >"$TMP/diff"; then
  head -n 60 "$TMP/diff" >&2
  die "contracts/build/ProvenanceAnchor.json is stale: it differs from a fresh compile of contracts/ProvenanceAnchor.sol (run: node contracts/compile.js, and commit the result)"
fi
echo "contract artifact up to date"
