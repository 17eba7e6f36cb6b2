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
# Environment:
#   PYTHON            interpreter for the venvs (default: python3.11, else python3; must be 3.11)
#   TORCH_WHEEL_DIR   directory holding torch-2.13.0+cpu-cp311-*.whl (default /opt/wheels);
#                     without it torch comes from https://download.pytorch.org/whl/cpu
#   WLK_0217          0 = do not build .venv-wlk-0217 (default 1)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

PIP_VERSION="26.3"
TORCH_WHEEL_DIR="${TORCH_WHEEL_DIR:-/opt/wheels}"
WLK_0217="${WLK_0217:-1}"

log() { printf '[install-contract] %s\n' "$*" >&2; }

# --- Debian packages -----------------------------------------------------------------------------
apt_install() {
    local sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1; then
            sudo="sudo -n"
        else
            log "not root and no sudo: install these Debian packages yourself: $*"
            exit 1
        fi
    fi
    export DEBIAN_FRONTEND=noninteractive
    # A fresh machine has no package lists; a stale one may point at removed versions.
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq --no-install-recommends "$@"
}

if command -v espeak-ng >/dev/null 2>&1; then
    log "espeak-ng present: $(espeak-ng --version | head -n1)"
else
    log "installing espeak-ng"
    apt_install espeak-ng
fi

# --- Python --------------------------------------------------------------------------------------
if [ -z "${PYTHON:-}" ]; then
    if command -v python3.11 >/dev/null 2>&1; then PYTHON=python3.11; else PYTHON=python3; fi
fi
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
    log "$PYTHON is not Python 3.11 (the pinned torch wheel is cp311); set PYTHON=..."
    exit 1
fi

torch_source_args() {
    if compgen -G "$TORCH_WHEEL_DIR/torch-2.13.0+cpu-cp311-cp311-*.whl" >/dev/null; then
        printf '%s\n' --find-links "$TORCH_WHEEL_DIR"
    else
        printf '%s\n' --extra-index-url https://download.pytorch.org/whl/cpu
    fi
}

# build_venv DIR REQUIREMENTS: (re)create DIR unless its stamp matches REQUIREMENTS.
build_venv() {
    local venv="$1" req="$2" stamp want
    stamp="$venv/.contract-stamp"
    want="$(sha256sum "$req" | cut -d' ' -f1) pip=$PIP_VERSION python=$("$PYTHON" -c 'import platform; print(platform.python_version())')"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$venv/bin/python" ]; then
        log "$venv is up to date ($req)"
        echo '*' >"$venv/.gitignore"
        return 0
    fi
    log "creating $venv from $req"
    local started=$SECONDS
    rm -rf "$venv"
    "$PYTHON" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "pip==$PIP_VERSION"
    # --no-deps: the requirements file is the exact closure. It keeps WhisperLiveKit's declared
    # heavy deps (faster-whisper, torchaudio, CUDA wheels) out; the stub ASR needs none of them.
    local -a torch_args
    mapfile -t torch_args < <(torch_source_args)
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps \
        "${torch_args[@]}" -r "$req"
    echo '*' >"$venv/.gitignore"  # keep the venv out of git whatever the repo's .gitignore says
    echo "$want" >"$stamp"
    log "$venv ready in $((SECONDS - started)) s, $(du -sh "$venv" | cut -f1)"
}

build_venv .venv-wlk test/contract/requirements-wlk.txt
log "smoke test: building the WLK app with the stub ASR"
.venv-wlk/bin/python test/contract/wlk_stub_server.py --self-check

if [ "$WLK_0217" = "1" ]; then
    build_venv .venv-wlk-0217 test/contract/requirements-wlk-0217.txt
    .venv-wlk-0217/bin/python test/contract/wlk_stub_server.py --self-check
fi
log "done"
