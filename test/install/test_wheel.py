"""A normal, non-editable install works: fresh virtualenv, `pip install .`, migrate, serve.

The repository is copied first (links kept: the migrations ship through `aymurai/db/migrations`),
so the build never writes into the working tree and leftovers of an earlier build cannot hide a
file missing from the package. pip reaches the package registry; without it the test skips
locally and fails in CI.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from aymurai.simulator import WLKSimulator
from test.audio_fixtures import make_audio_file
from test.e2e import document_words, require, seconds, stream_transcription
from test.processes import gateway_env, run_gateway_process

pytestmark = pytest.mark.install

ROOT = Path(__file__).resolve().parents[2]
NOT_SOURCE = shutil.ignore_patterns(
    ".git", ".venv*", "data", "build", "*.egg-info", "__pycache__", ".*_cache", "test-output",
    "node_modules", "models", ".models",
)  # fmt: skip


@pytest.fixture(scope="module")
def installed_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bin folder of a fresh virtualenv with the gateway pip-installed from a copy."""
    base = tmp_path_factory.mktemp("wheel")
    source = base / "source"
    shutil.copytree(ROOT, source, symlinks=True, ignore=NOT_SOURCE)
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=seconds(120))
    pip = subprocess.run(
        [
            str(venv / "bin" / "pip"),
            "install",
            "--quiet",
            "--disable-pip-version-check",
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=seconds(600),
    )
    require(pip.returncode == 0, f"pip install . failed:\n{pip.stdout}\n{pip.stderr}")
    return venv / "bin"


def test_wheel_install_is_not_editable(installed_bin: Path) -> None:
    """The installed package lives in the venv's site-packages, migrations included."""
    probe = subprocess.run(
        [
            str(installed_bin / "python"),
            "-c",
            "import aymurai.db.engine as e; print(e.__file__); print(e.MIGRATIONS_DIR)",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd="/",
        timeout=seconds(60),
    )
    module_file, migrations = probe.stdout.split()
    assert "site-packages" in module_file
    assert not Path(migrations).is_symlink()
    assert list(Path(migrations, "versions").glob("*.py"))


async def test_wheel_install_migrates_and_transcribes(installed_bin: Path, tmp_path: Path) -> None:
    """`aymurai-api migrate`, then `aymurai-api` from the wheel: a transcription streams to done."""
    database = f"sqlite:///{tmp_path / 'gateway.db'}"
    migrate = await asyncio.to_thread(
        subprocess.run,
        [str(installed_bin / "aymurai-api"), "migrate"],
        env=gateway_env(SQLALCHEMY_DATABASE_URI=database),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=seconds(120),
    )
    assert migrate.returncode == 0, migrate.stderr
    audio = make_audio_file(tmp_path, fmt="flac", seconds=2.0, tone_hz=440)
    async with (
        WLKSimulator(speed=20.0) as simulator,
        run_gateway_process(
            tmp_path,
            ws_uri=simulator.url,
            grace_seconds=2.0,
            bin_dir=installed_bin,
            TRANSCRIBE_MIGRATE_ON_START="false",
        ) as gateway,
        httpx.AsyncClient(base_url=gateway.base_url, timeout=seconds(30)) as client,
    ):
        async with asyncio.timeout(seconds(30)):
            result = await stream_transcription(client, audio)
        page = await client.get("/")
        ready = await client.get("/readyz")

    assert result.last.event == "done", result.events
    assert document_words(result.last.json()) == ["f440"] * 4
    assert page.status_code == 200 and "<html" in page.text.lower()
    assert ready.status_code == 200, ready.json()
