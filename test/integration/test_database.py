"""Migrations and persistence on SQLite and PostgreSQL (PostgreSQL tests fail in CI if absent)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from aymurai.db.engine import downgrade_to_base, make_engine, migrate_to_head
from aymurai.db.models import metadata
from aymurai.db.store import StoredJob, TranscriptStore
from aymurai.simulator import WLKSimulator
from aymurai.transcription.channel import EPOCH_SPAN
from test.audio_fixtures import make_audio_file
from test.e2e import document_words, make_settings, run_gateway, stream_transcription
from test.postgres import fresh_postgres_database

pytestmark = pytest.mark.integration


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_uri(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'migrations.db'}"
    else:
        with fresh_postgres_database() as uri:
            yield uri


def _tables(uri: str) -> set[str]:
    engine = create_engine(uri)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_migrations_upgrade_downgrade_upgrade(database_uri: str) -> None:
    """head creates audio_transcription, base removes it, head again restores it."""
    migrate_to_head(database_uri)
    assert "audio_transcription" in _tables(database_uri)
    downgrade_to_base(database_uri)
    assert "audio_transcription" not in _tables(database_uri)
    migrate_to_head(database_uri)
    assert "audio_transcription" in _tables(database_uri)


def test_migrations_match_the_models(database_uri: str) -> None:
    """After upgrading to head, the schema equals the SQLModel metadata (no pending change)."""
    migrate_to_head(database_uri)
    engine = create_engine(database_uri)
    try:
        with engine.connect() as connection:
            diff = compare_metadata(MigrationContext.configure(connection), metadata)
    finally:
        engine.dispose()
    assert diff == []


async def test_store_concurrent_upserts_never_conflict(database_uri: str) -> None:
    """Twenty concurrent saves of the same document id all succeed; the last write wins."""
    migrate_to_head(database_uri)
    engine = make_engine(database_uri)
    store = TranscriptStore(engine, max_threads=8)
    document_id = uuid.uuid4()
    try:
        async with anyio.create_task_group() as group:
            for n in range(20):
                group.start_soon(
                    lambda n=n: store.save_transcription(
                        document_id=document_id,
                        name=f"upload-{n}.wav",
                        duration_seconds=1.0,
                        paragraphs=[{"text": str(n)}],
                    )
                )
        stored = await store.get(document_id)
        await store.save_validation(document_id=document_id, paragraphs=[{"text": "ok"}])
        await store.save_transcription(
            document_id=document_id, name="again.wav", duration_seconds=2.0, paragraphs=[]
        )
        after = await store.get(document_id)
    finally:
        engine.dispose()
    assert stored is not None and stored.transcription is not None
    assert after is not None
    assert after.validation == [{"text": "ok"}], "a re-transcription erased the validation"
    assert after.duration_seconds == 2.0


@pytest.mark.postgres
async def test_gateway_on_postgres_same_bytes_at_once(tmp_path: Path) -> None:
    """On PostgreSQL, three simultaneous uploads of the same bytes all finish and store once."""
    with fresh_postgres_database() as uri:
        async with WLKSimulator(speed=20.0) as simulator:
            settings = make_settings(
                tmp_path, transcribe_ws_uri=simulator.url, sqlalchemy_database_uri=uri
            )
            audio = make_audio_file(tmp_path, fmt="wav_s16", seconds=2.0, tone_hz=700)
            async with run_gateway(settings) as gateway, gateway.client() as client:
                results = await asyncio.gather(
                    *(stream_transcription(client, audio, use_cache=False) for _ in range(3))
                )
                stored = await client.get(
                    f"/asr/validation/document/{results[0].headers['x-document-id']}"
                )
    for result in results:
        assert result.last.event == "done"
        assert document_words(result.last.json()) == ["f700"] * 4
    assert stored.json() == results[0].last.json()


async def test_store_jobs_round_trip_list_and_unfinished(database_uri: str) -> None:
    """Job rows: insert, update, newest-first list with a status filter, unfinished ones, and a
    64-bit terminal event id (epochs go past 2**31)."""
    migrate_to_head(database_uri)
    engine = make_engine(database_uri)
    store = TranscriptStore(engine, max_threads=4)
    start = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)
    rows = [
        StoredJob(
            id=f"job{n}",
            document_id=uuid.uuid4(),
            name=f"a{n}.wav",
            status="queued",
            runs_unwatched=n % 2 == 0,
            spool_path=f"/spool/{n}",
            total_seconds=60.0,
            current_seconds=0.0,
            epoch=0,
            terminal_event_id=None,
            error_code=None,
            error_detail=None,
            created_at=start + timedelta(seconds=n),
            updated_at=start + timedelta(seconds=n),
        )
        for n in range(4)
    ]
    try:
        for row in rows:
            await store.insert_job(row)
        await store.update_job(
            "job1", status="done", terminal_event_id=5 * EPOCH_SPAN + 7, spool_path=None
        )
        await store.update_job("job2", status="running", epoch=3)
        newest = await store.list_jobs(status=None, limit=3)
        done = await store.list_jobs(status="done", limit=10)
        unfinished = await store.unfinished_jobs()
        one = await store.get_job("job1")
        missing = await store.get_job("nope")
    finally:
        engine.dispose()
    assert [row.id for row in newest] == ["job3", "job2", "job1"]
    assert [row.id for row in done] == ["job1"]
    assert [row.id for row in unfinished] == ["job0", "job2", "job3"]
    assert one is not None and one.terminal_event_id == 5 * EPOCH_SPAN + 7
    assert one.spool_path is None and one.updated_at != one.created_at
    assert unfinished[1].epoch == 3 and unfinished[1].runs_unwatched
    assert missing is None
