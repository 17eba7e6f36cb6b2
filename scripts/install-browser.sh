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

LOG_TAG=install-browser
# shellcheck source=scripts/venv-lib.sh
source "$(dirname "$0")/venv-lib.sh"

ensure_debian_packages chromium chromium-driver firefox-esr fonts-liberation fonts-dejavu-core

chromium --version
firefox-esr --version
venv_python="${VENV:-.venv}/bin/python"
if [ -x "$venv_python" ]; then
    "$venv_python" -c "import playwright; print('playwright (python) is installed')" \
        || echo "install-browser: the playwright package is missing; run make install" >&2
fi
