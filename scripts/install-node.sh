#!/usr/bin/env bash
# Install what the Node client tests (test/integration/test_node_eventsource.py, and
# test_openai_sdk.py for the official `openai` SDK) need: Node.js 20 or newer and npm (Debian
# packages, only when missing), then the npm packages pinned by test/node/package-lock.json into
# test/node/node_modules (`npm ci`: exact, no audit).
#
# Idempotent; safe to run on every CI job. Installing packages needs root (or sudo).
set -euo pipefail
cd "$(dirname "$0")/.."

node_major() { node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }

if ! command -v npm >/dev/null 2>&1 || [ "$(node_major)" -lt 20 ]; then
    if [ "$(id -u)" -eq 0 ]; then as_root=(); else as_root=(sudo); fi
    export DEBIAN_FRONTEND=noninteractive
    "${as_root[@]}" apt-get update -q
    "${as_root[@]}" apt-get install -y -q --no-install-recommends nodejs npm
fi

if [ "$(node_major)" -lt 20 ]; then
    echo "install-node: Node.js 20 or newer is needed, found $(node --version)" >&2
    exit 1
fi
node --version
(cd test/node && npm ci --no-audit --no-fund --loglevel=error)
