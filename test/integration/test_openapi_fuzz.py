"""Schemathesis over the gateway's own OpenAPI, against a real server: no 5xx, and every response
matches the schema (status documented, body shape, headers). Bounded to well under a minute.

Run as the `schemathesis` CLI in a subprocess (its pytest plugin loads the schema at collection
time, before our gateway runs on its free port). `positive_data_acceptance` is excluded: random
bytes that satisfy the schema's `format: binary` are still not audio, and 415 is the right answer.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
from pathlib import Path

import pytest

from aymurai.keys import add_key, parse_scopes
from aymurai.simulator import WLKSimulator
from test.e2e import RunningGateway, make_settings, require, run_gateway, seconds

pytestmark = pytest.mark.integration

BUDGET_SECONDS = 40
EXCLUDED_CHECKS = "positive_data_acceptance"


async def test_openapi_schemathesis_finds_no_5xx_and_no_schema_mismatch(
    gateway: RunningGateway, tmp_path: Path
) -> None:
    """Fuzz every operation for at most 40 s: no server error, responses conform to the schema."""
    await _run_schemathesis(gateway.base_url, tmp_path)


async def test_openapi_schemathesis_with_api_keys_on(
    tmp_path: Path, wlk_simulator: WLKSimulator
) -> None:
    """Keys on, with a key of every scope: the same checks, plus schemathesis's own auth checks
    (a request without or with a wrong key must be refused)."""
    path = tmp_path / "keys.json"
    key = add_key(path, "fuzzer", parse_scopes("transcribe,validate,admin"))
    settings = make_settings(
        tmp_path, transcribe_ws_uri=wlk_simulator.url, transcribe_api_keys_file=str(path)
    )
    async with run_gateway(settings) as gateway:
        await _run_schemathesis(
            gateway.base_url, tmp_path, "--header", f"Authorization: Bearer {key}"
        )


async def _run_schemathesis(base_url: str, tmp_path: Path, *extra: str) -> None:
    cli = Path(sys.executable).parent / "schemathesis"
    require(cli.exists() or shutil.which("schemathesis") is not None, "schemathesis not installed")
    process = await asyncio.create_subprocess_exec(
        str(cli),
        "run",
        f"{base_url}/openapi.json",
        *extra,
        "--checks",
        "all",
        "--exclude-checks",
        EXCLUDED_CHECKS,
        "--max-time",
        str(BUDGET_SECONDS),
        "--max-examples",
        "25",
        "--phases",
        "examples,coverage,fuzzing",
        "--workers",
        "1",
        "--seed",
        "8",
        "--request-timeout",
        "10",
        "--report-dir",
        str(tmp_path / "report"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=tmp_path,
    )
    async with asyncio.timeout(seconds(BUDGET_SECONDS + 30)):
        output, _ = await process.communicate()
    text = output.decode("utf-8", "replace")
    assert process.returncode == 0, text[-20000:]
