#!/usr/bin/env bash
# Start/stop a real EVM JSON-RPC node (ganache, pinned in tools/node) on 127.0.0.1, for tests, CI and benchmarks.
#
#   scripts/evm-node.sh start PORT [DATADIR]   # prints the RPC URL once eth_chainId answers (≤ 60 s)
#   scripts/evm-node.sh stop DATADIR           # idempotent
#
# DATADIR (default: $TMPDIR/provenance-evm-PORT) holds the pidfile, the log and the chain database, so a node
# restarted on the same DATADIR keeps its state. Chain id 1337, deterministic (well-known, test-only) accounts,
# instant mining. Hardfork pinned to "merge" (= paris), matching the contract's evmVersion; ganache 7.9.2 runs on
# the machine's Node 20.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
NODE_MODULES="${PROVENANCE_NODE_MODULES:-$HERE/../tools/node/node_modules}"
GANACHE="$NODE_MODULES/ganache/dist/node/cli.js"
NODE="${PROVENANCE_NODE:-node}"
READY_TIMEOUT_S="${EVM_READY_TIMEOUT_S:-60}"
CHAIN_ID=1337
HARDFORK=merge

die() { echo "evm-node.sh: $*" >&2; exit 1; }

usage() { die "usage: $0 start PORT [DATADIR] | stop DATADIR"; }

rpc_answers() {  # $1 = port; true once eth_chainId returns our chain id
  curl -fsS -m 2 -H 'Content-Type: application/json' \
    -d '{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}' \
    "http://127.0.0.1:$1" 2>/dev/null | grep -q "\"result\":\"$(printf '0x%x' "$CHAIN_ID")\""
}

cmd_start() {
  [ $# -ge 1 ] && [ $# -le 2 ] || usage
  local port="$1" datadir="${2:-${TMPDIR:-/tmp}/provenance-evm-$1}"
  [[ "$port" =~ ^[0-9]+$ ]] || die "PORT must be a number, got '$port'"
  command -v "$NODE" >/dev/null 2>&1 || die "node not found (set PROVENANCE_NODE or put Node 20 on PATH)"
  [ -f "$GANACHE" ] || die "ganache not found at $GANACHE (run: npm ci --prefix tools/node)"
  mkdir -p "$datadir/chain"
  datadir="$(cd "$datadir" && pwd)"
  local pidfile="$datadir/ganache.pid" log="$datadir/ganache.log"

  if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    rpc_answers "$port" && { echo "http://127.0.0.1:$port"; return 0; }
    die "a node (pid $(cat "$pidfile")) already runs on $datadir but does not answer on port $port"
  fi

  : >"$log"
  nohup "$NODE" "$GANACHE" \
    --server.host 127.0.0.1 --server.port "$port" \
    --chain.chainId "$CHAIN_ID" --chain.hardfork "$HARDFORK" \
    --wallet.deterministic --database.dbPath "$datadir/chain" \
    --logging.quiet >>"$log" 2>&1 </dev/null &
  local pid=$!
  echo "$pid" >"$pidfile"

  local deadline=$((SECONDS + READY_TIMEOUT_S))
  until rpc_answers "$port"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 40 "$log" >&2; rm -f "$pidfile"; die "ganache exited before eth_chainId answered on port $port"
    fi
    if [ $SECONDS -ge $deadline ]; then
      tail -n 40 "$log" >&2; cmd_stop "$datadir"; die "eth_chainId did not answer on port $port within ${READY_TIMEOUT_S}s"
    fi
    sleep 0.2
  done
  echo "http://127.0.0.1:$port"
}

cmd_stop() {
  [ $# -eq 1 ] || usage
  local pidfile="$1/ganache.pid"
  [ -f "$pidfile" ] || return 0
  local pid; pid="$(cat "$pidfile")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  fi
  rm -f "$pidfile"
}

[ $# -ge 1 ] || usage
case "$1" in
  start) shift; cmd_start "$@" ;;
  stop) shift; cmd_stop "$@" ;;
  *) usage ;;
esac
