"""The local ASR launcher's WLK command line (`make run-local`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from aymurai.local_asr import LocalAsrError, wlk_command, wlk_environment


def _install(tmp_path: Path) -> tuple[Path, Path]:
    venv, models = tmp_path / ".venv-local", tmp_path / ".models"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "whisperlivekit-server").touch()
    for model in ("tiny.en", "base"):
        (models / model).mkdir(parents=True)
        (models / model / "model.bin").touch()
    (models / "warmup.wav").touch()
    return venv, models


def test_wlk_command_is_offline_cpu_localagreement(tmp_path: Path) -> None:
    """PCM input, faster-whisper + localagreement, the local model and warm-up clip, the port."""
    venv, models = _install(tmp_path)
    command = wlk_command(venv=venv, models_dir=models, model="base", language="es", port=8123)
    joined = " ".join(command)
    for expected in (
        "--pcm-input",
        "--backend faster-whisper",
        "--backend-policy localagreement",
        f"--model_dir {models / 'base'}",
        "--lan es",
        f"--warmup-file {models / 'warmup.wav'}",
        "--port 8123",
        "--host 127.0.0.1",
    ):
        assert expected in joined
    assert wlk_environment()["HF_HUB_OFFLINE"] == "1"


def test_wlk_command_refuses_a_missing_install(tmp_path: Path) -> None:
    """No .venv-local or model: a clear error naming `make install-local`."""
    with pytest.raises(LocalAsrError, match="make install-local"):
        wlk_command(
            venv=tmp_path / "none", models_dir=tmp_path, model="tiny.en", language="en", port=1
        )


def test_wlk_command_refuses_non_english_on_tiny_en(tmp_path: Path) -> None:
    """tiny.en is English only; an unknown model name is refused too."""
    venv, models = _install(tmp_path)
    with pytest.raises(LocalAsrError, match="English only"):
        wlk_command(venv=venv, models_dir=models, model="tiny.en", language="es", port=1)
    with pytest.raises(LocalAsrError, match="LOCAL_ASR_MODEL"):
        wlk_command(venv=venv, models_dir=models, model="large", language="en", port=1)
