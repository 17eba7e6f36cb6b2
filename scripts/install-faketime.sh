#!/usr/bin/env bash
# Install libfaketime for the clock-skew tests (test/distributed: replicas whose wall clocks
# disagree), from Debian packages only.
#
# The tests run a replica with LD_PRELOAD=<libfaketime.so.1> and FAKETIME="+45s"; they find the
# library with test/cluster.py:faketime_library() (Debian puts it under the multiarch lib folder,
# e.g. /usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1). The `faketime` package brings the
# command-line wrapper and depends on `libfaketime`, the preloadable library.
#
# Idempotent: packages already present are skipped; safe to run on every CI job. Needs root
# (or sudo when available).
set -euo pipefail

LOG_TAG=install-faketime
# shellcheck source=scripts/venv-lib.sh
source "$(dirname "$0")/venv-lib.sh"

ensure_debian_packages faketime libfaketime

library=$(dpkg -L libfaketime | grep -m1 '/libfaketime\.so\.1$' || true)
if [ -z "$library" ]; then
    echo "install-faketime: libfaketime.so.1 not found in the libfaketime package" >&2
    exit 1
fi
echo "libfaketime: $library"
# A smoke check: the preloaded library must shift what `date` sees.
LD_PRELOAD="$library" FAKETIME="+1d" date -u +"faketime works: +1d is %F (today is $(date -u +%F))"
