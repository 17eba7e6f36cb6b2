#!/usr/bin/env bash
# Install what the contract-test tier (test/contract, pytest -m contract) needs:
#   * espeak-ng (Debian package): synthesises the speech the tests feed to WLK;
#   * .venv-wlk: the real WhisperLiveKit 0.2.26 server code with its small runtime deps,
#     CPU-only torch, numba and onnxruntime, every version pinned in
#     test/contract/requirements-wlk.txt. No model weights: the tests run WLK with a stub ASR
#     (test/contract/wlk_stub_server.py);
#   * .venv-wlk-0217: PyPI whisperlivekit 0.2.17, the version our users run, with librosa and the
#     fork's fastapi/uvicorn/websockets pins (test/contract/requirements-wlk-0217.txt); skip it with
#     WLK_0217=0 (the 0.2.17 tests then skip locally and fail in CI).
#
# Idempotent and non-interactive: a venv whose stamp matches its requirements file is left alone.
# Safe in CI as root on a fresh Debian machine; as non-root, apt-get goes through sudo.
#
# Environment (PYTHON and TORCH_WHEEL_DIR: see scripts/venv-lib.sh):
#   WLK_0217          0 = do not build .venv-wlk-0217 (default 1)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
LOG_TAG=install-contract
# shellcheck source=scripts/venv-lib.sh
source scripts/venv-lib.sh

WLK_0217="${WLK_0217:-1}"

ensure_espeak
select_python

build_venv .venv-wlk test/contract/requirements-wlk.txt
log "smoke test: building the WLK app with the stub ASR"
.venv-wlk/bin/python test/contract/wlk_stub_server.py --self-check

if [ "$WLK_0217" = "1" ]; then
    build_venv .venv-wlk-0217 test/contract/requirements-wlk-0217.txt
    .venv-wlk-0217/bin/python test/contract/wlk_stub_server.py --self-check
fi
log "done"
