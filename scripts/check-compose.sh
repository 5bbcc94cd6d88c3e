#!/usr/bin/env bash
# Validate docker-compose.yml. There is no Docker engine here: `docker compose config` where the compose plugin exists,
# else Debian's docker-compose (1.29, which validates against the Compose Specification schema without an engine).
set -euo pipefail
cd "$(dirname "$0")/.."
if docker compose version >/dev/null 2>&1; then
  docker compose -f docker-compose.yml config -q
elif command -v docker-compose >/dev/null 2>&1; then
  docker-compose -f docker-compose.yml config -q
else
  echo "installing Debian's docker-compose to validate the compose file"
  if ! { apt-get install -y -qq docker-compose >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq docker-compose >/dev/null; }; }; then
    echo "cannot install docker-compose" >&2
    exit 1
  fi
  docker-compose -f docker-compose.yml config -q
fi
echo "docker-compose.yml is valid"
