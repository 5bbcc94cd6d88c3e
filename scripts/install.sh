#!/usr/bin/env bash
# Installs everything the project needs, from scratch, offline-capable registries only (PyPI, npm):
#   .venv/                     Python 3.11 virtualenv with the project (editable) and its test extras
#   tools/node/node_modules/   pinned solc, ganache (EVM JSON-RPC node), js-ipfs daemon and Node 22 for it
#   Debian chromium            headless browser for the journalist-page end-to-end tests (skipped if present)
# Re-running is cheap: each step is skipped when its inputs have not changed since the last successful run.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3.11}
stamp_dir=.venv/.stamps

hash_of() { cat "$@" | sha256sum | cut -c1-16; }

if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv with $PY"
  "$PY" -m venv .venv
fi
mkdir -p "$stamp_dir"

py_hash=$(hash_of pyproject.toml)
if [ "$(cat "$stamp_dir/python" 2>/dev/null)" != "$py_hash" ]; then
  echo "==> installing Python packages"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[hasher,bench,test]'
  echo "$py_hash" > "$stamp_dir/python"
fi

node_hash=$(hash_of tools/node/package.json tools/node/package-lock.json)
if [ "$(cat "$stamp_dir/node" 2>/dev/null)" != "$node_hash" ] || [ ! -d tools/node/node_modules ]; then
  echo "==> installing Node tools (solc, ganache, js-ipfs); the first time takes a few minutes"
  # `npm install`, not `npm ci`: the lock pins every version, but one optional transitive dependency of js-ipfs
  # (electron-eval -> headless) is a GitHub tarball that cannot be fetched here; `npm ci` refuses the whole lock for
  # it, while `npm install` skips that optional package and installs exactly the locked versions of the rest.
  (cd tools/node && npm install --no-audit --no-fund --loglevel=error)
  echo "$node_hash" > "$stamp_dir/node"
fi
if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null; then
  echo "==> installing Debian chromium (journalist-page end-to-end tests)"
  SUDO=""; if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
  if ! { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
         --no-install-recommends chromium >/dev/null; }; then
    echo "warning: could not install Debian chromium; the journalist-page browser tests will skip (or fail in CI)" >&2
  fi
fi
echo "==> install complete"
