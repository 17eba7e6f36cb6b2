#!/usr/bin/env bash
# Install what the Node SDK tests (test/integration/test_openai_sdk.py) need: Node.js 20+ and the
# official `openai` npm package, pinned by test/openai_node/package-lock.json.
#
# Node itself comes from the system: when `node` is missing, Debian's `nodejs` and `npm` packages
# are installed (needs root or sudo). Debian 12 ships Node 18, too old for the SDK's supported
# range, so on such a machine install Node 20 from your usual source (e.g. NodeSource) first; the
# script says so rather than testing on an unsupported runtime. The npm package goes into
# test/openai_node/node_modules (`npm ci`: exactly the lockfile). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    if [ "$(id -u)" -eq 0 ]; then
        as_root=()
    elif command -v sudo >/dev/null 2>&1; then
        as_root=(sudo)
    else
        echo "install-node: node/npm missing; run as root or install Node.js 20+ yourself" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    "${as_root[@]}" apt-get update -q
    "${as_root[@]}" apt-get install -y -q --no-install-recommends nodejs npm
fi

major="$(node -p 'process.versions.node.split(".")[0]')"
if [ "$major" -lt 20 ]; then
    echo "install-node: Node.js $(node --version) is too old; the openai SDK tests need 20+" >&2
    exit 1
fi

cd test/openai_node
npm ci --no-audit --no-fund
node -e "import('openai').then(() => console.log('openai', require('./node_modules/openai/package.json').version, 'on node', process.version))"
