# Shared shell functions for the install scripts (sourced, never run): Debian packages, the
# Python 3.11 check, the CPU torch wheel source and pinned venvs rebuilt only when their
# requirements change. Used by install-contract.sh (stub-ASR WLK), install-local.sh (real
# Whisper on CPU), install-browser.sh and install-faketime.sh (Debian packages only). The caller
# sets LOG_TAG before sourcing.
#
# Environment:
#   PYTHON            interpreter for the venvs (default: python3.11, else python3; must be 3.11)
#   TORCH_WHEEL_DIR   directory holding torch-2.13.0+cpu-cp311-*.whl (default /opt/wheels);
#                     without it torch comes from https://download.pytorch.org/whl/cpu

PIP_VERSION="26.3"
TORCH_WHEEL_DIR="${TORCH_WHEEL_DIR:-/opt/wheels}"

log() { printf '[%s] %s\n' "${LOG_TAG:-install}" "$*" >&2; }

# apt_install PACKAGE...: as root directly, otherwise through `sudo -n`.
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

# ensure_debian_packages PACKAGE...: install those not installed yet (idempotent, no apt-get
# update when nothing is missing).
ensure_debian_packages() {
    local missing=() package
    for package in "$@"; do
        if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
            missing+=("$package")
        fi
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        log "installing ${missing[*]}"
        apt_install "${missing[@]}"
    fi
}

# ensure_espeak: espeak-ng synthesises the speech the tests (and the local warm-up) use.
ensure_espeak() {
    if command -v espeak-ng >/dev/null 2>&1; then
        log "espeak-ng present: $(espeak-ng --version | head -n1)"
    else
        log "installing espeak-ng"
        apt_install espeak-ng
    fi
}

# select_python: set PYTHON to a Python 3.11 (the pinned torch wheel is cp311) or exit.
select_python() {
    if [ -z "${PYTHON:-}" ]; then
        if command -v python3.11 >/dev/null 2>&1; then PYTHON=python3.11; else PYTHON=python3; fi
    fi
    if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
        log "$PYTHON is not Python 3.11 (the pinned torch wheel is cp311); set PYTHON=..."
        exit 1
    fi
}

torch_source_args() {
    if compgen -G "$TORCH_WHEEL_DIR/torch-2.13.0+cpu-cp311-cp311-*.whl" >/dev/null; then
        printf '%s\n' --find-links "$TORCH_WHEEL_DIR"
    else
        printf '%s\n' --extra-index-url https://download.pytorch.org/whl/cpu
    fi
}

# requirements_digest FILE: sha256 over FILE and the files it includes with `-r` (one level), so
# a venv built from a file that includes another is rebuilt when either changes.
requirements_digest() {
    local req="$1" dir included
    dir="$(dirname "$req")"
    {
        cat "$req"
        while read -r included; do
            cat "$dir/$included"
        done < <(sed -n 's/^-r[[:space:]]*//p' "$req")
    } | sha256sum | cut -d' ' -f1
}

# build_venv DIR REQUIREMENTS [STAMP_NAME]: (re)create DIR unless its stamp matches REQUIREMENTS.
build_venv() {
    local venv="$1" req="$2" stamp want
    stamp="$venv/${3:-.contract-stamp}"
    want="$(requirements_digest "$req") pip=$PIP_VERSION python=$("$PYTHON" -c 'import platform; print(platform.python_version())')"
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
    # heavy deps (torchaudio, CUDA wheels) out.
    local -a torch_args
    mapfile -t torch_args < <(torch_source_args)
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps \
        "${torch_args[@]}" -r "$req"
    echo '*' >"$venv/.gitignore"  # keep the venv out of git whatever the repo's .gitignore says
    echo "$want" >"$stamp"
    log "$venv ready in $((SECONDS - started)) s, $(du -sh "$venv" | cut -f1)"
}
