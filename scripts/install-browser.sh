#!/usr/bin/env bash
# Install what the browser tests (test/browser, marker `browser`) need, from Debian packages only.
#
# Playwright's own browser download (`playwright install`) is never used: CI machines have no
# access to its CDN, and Debian's chromium is patched and updated by the distribution. The tests
# start it with `executable_path=/usr/bin/chromium`. The Python `playwright` package comes from
# the dev extra (`make install`). Debian's `firefox-esr` is driven without Playwright or
# geckodriver, over WebDriver BiDi (test/browser/bidi.py).
#
# Idempotent: packages already present are skipped; safe to run on every CI job. Needs root
# (or sudo when available).
set -euo pipefail

packages=(chromium chromium-driver firefox-esr fonts-liberation fonts-dejavu-core)

if [ "$(id -u)" -eq 0 ]; then
    as_root=()
elif command -v sudo >/dev/null 2>&1; then
    as_root=(sudo)
else
    echo "install-browser: run as root (or install sudo): apt-get install ${packages[*]}" >&2
    exit 1
fi

missing=()
for package in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$package")
    fi
done

if [ "${#missing[@]}" -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    "${as_root[@]}" apt-get update -q
    "${as_root[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

chromium --version
firefox-esr --version
venv_python="${VENV:-.venv}/bin/python"
if [ -x "$venv_python" ]; then
    "$venv_python" -c "import playwright; print('playwright (python) is installed')" \
        || echo "install-browser: the playwright package is missing; run make install" >&2
fi
