"""Shared fixtures: the WLK simulator and a real gateway on free ports (see test/e2e.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from aymurai.simulator import WLKSimulator
from test.e2e import RunningGateway, make_settings, run_gateway


@pytest.fixture
async def wlk_simulator() -> AsyncIterator[WLKSimulator]:
    """A WLK 0.2.26 simulator on 127.0.0.1:0, fast (50x real time)."""
    async with WLKSimulator(profile="0.2.26", speed=50.0) as simulator:
        yield simulator


@pytest.fixture
async def gateway(tmp_path: Path, wlk_simulator: WLKSimulator) -> AsyncIterator[RunningGateway]:
    """The gateway on 127.0.0.1:0 with a fresh SQLite file, pointed at `wlk_simulator`."""
    settings = make_settings(tmp_path, transcribe_ws_uri=wlk_simulator.url)
    async with run_gateway(settings) as running:
        yield running
