"""Hostile uploads and bodies over real HTTP: 4xx with a code, nothing read, nothing stored."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from aymurai.simulator import WLKSimulator
from test.audio_fixtures import make_audio_file, make_flac_silence
from test.e2e import (
    RunningGateway,
    make_settings,
    run_gateway,
    seconds,
    spooled_files,
    stream_transcription,
    upload_files,
)
from test.hostile import hostile_corpus, plant_audio, run_canary
from test.postgres import fresh_postgres_database

pytestmark = pytest.mark.integration

ENDPOINTS = ["/asr/transcribe/stream", "/asr/transcribe"]


def _assert_error(
    response: httpx.Response, status: int | tuple[int, ...], code: str | None
) -> None:
    statuses = (status,) if isinstance(status, int) else status
    assert response.status_code in statuses, response.text
    body = response.json()
    if code is not None:
        assert body["code"] == code, body
    assert body["request_id"] == response.headers["x-request-id"]
    assert "Traceback" not in body["detail"]


def _assert_no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    bad = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert bad == [], [r.getMessage() for r in bad]


@pytest.fixture
async def limited_gateway(
    tmp_path: Path, wlk_simulator: WLKSimulator
) -> AsyncIterator[RunningGateway]:
    """A gateway with a 60 s audio limit and a 64 kB JSON body limit."""
    settings = make_settings(
        tmp_path,
        transcribe_ws_uri=wlk_simulator.url,
        transcribe_max_audio_seconds=60.0,
        transcribe_max_json_body_bytes=64 * 1024,
    )
    async with run_gateway(settings) as running:
        yield running


@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_upload_hostile_corpus_is_refused_unread(
    gateway: RunningGateway,
    wlk_simulator: WLKSimulator,
    endpoint: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Playlists, scripts, images, archives and broken headers → 415; no planted file read, no
    request to the canary server, no WLK session, no spool file left."""
    caplog.set_level(logging.INFO)
    assert gateway.settings.transcribe_spool_dir is not None
    planted = plant_audio(Path(gateway.settings.transcribe_spool_dir))  # concat is relative
    async with run_canary() as canary, gateway.client() as client:
        for name, content in hostile_corpus(planted, canary.url).items():
            for filename in ("upload.wav", "playlist.m3u8", "img%03d.png", "list.ffconcat"):
                files = {"file": (filename, content, "application/octet-stream")}
                response = await client.post(endpoint, files=files)
                assert response.status_code in (413, 415), (name, response.text)
                _assert_error(response, (413, 415), None)
        await canary.settle()
        assert canary.connections == []
    assert wlk_simulator.sessions == []
    assert spooled_files(gateway.settings) == []
    _assert_no_traceback(caplog)


async def test_upload_flac_duration_bomb_is_413_at_once(
    gateway: RunningGateway, wlk_simulator: WLKSimulator, tmp_path: Path
) -> None:
    """A ~130 kB FLAC of 10 h of silence → 413 AUDIO_TOO_LONG from the probe (default 6 h)."""
    bomb = make_flac_silence(tmp_path, seconds=36000.0)
    async with gateway.client() as client:
        for endpoint in ENDPOINTS:
            started = time.monotonic()
            response = await client.post(endpoint, files=upload_files(bomb))
            elapsed = time.monotonic() - started
            _assert_error(response, 413, "AUDIO_TOO_LONG")
            assert elapsed < seconds(2.0)
    assert wlk_simulator.sessions == []
    assert spooled_files(gateway.settings) == []


async def test_stream_lying_header_ends_with_audio_too_long(
    limited_gateway: RunningGateway, tmp_path: Path
) -> None:
    """A FLAC claiming 10 s but holding 120 s is cut at the 60 s limit: `event: error`."""
    liar = make_flac_silence(tmp_path, seconds=120.0, declared_seconds=10.0)
    async with limited_gateway.client() as client:
        result = await stream_transcription(client, liar, timeout_seconds=60)
    assert result.status == 200
    assert result.last.event == "error"
    assert result.last.json()["code"] == "AUDIO_TOO_LONG"


MALFORMED_MULTIPART: dict[str, tuple[str, bytes]] = {
    "header-without-colon": (
        "xyz",
        b"--xyz\r\nContent-Disposition form-data; name=file\r\n\r\nRIFF\r\n--xyz--\r\n",
    ),
    "boundary-mismatch": (
        "abc",
        b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\n'
        b"RIFF....\r\n--xyz--\r\n",
    ),
    "filename-over-4kB": (
        "xyz",
        b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="'
        + b"a" * 5000
        + b'.wav"\r\n\r\nRIFF\r\n--xyz--\r\n',
    ),
    "nine-part-headers": (
        "xyz",
        b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n'
        + b"".join(b"X-H%d: v\r\n" % i for i in range(9))
        + b"\r\nRIFF\r\n--xyz--\r\n",
    ),
    "boundary-over-70-chars": ("b" * 200, b"--" + b"b" * 200 + b"\r\n\r\n"),
    "only-an-opening-boundary": ("xyz", b"--xyz"),
    "garbage-before-boundary": ("xyz", b"garbage\r\n--xyz\r\n\r\n"),
    "nul-in-header-name": (
        "xyz",
        b'--xyz\r\nContent-Dis\x00position: form-data; name="file"\r\n\r\nRIFF\r\n--xyz--\r\n',
    ),
    "bare-lf-lines": (
        "xyz",
        b'--xyz\nContent-Disposition: form-data; name="file"\n\nRIFF\n--xyz--\n',
    ),
    "empty-body": ("xyz", b""),
    "binary-header-value": (
        "xyz",
        b"--xyz\r\nContent-Disposition: form-data; name=\xff\xfe\x00\r\n\r\nRIFF\r\n--xyz--\r\n",
    ),
}


@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_upload_malformed_multipart_is_4xx_with_request_id(
    gateway: RunningGateway, endpoint: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Every malformed multipart variant → 4xx with a code and X-Request-ID, no traceback."""
    caplog.set_level(logging.INFO)
    async with gateway.client() as client:
        for name, (boundary, body) in MALFORMED_MULTIPART.items():
            response = await client.post(
                endpoint,
                content=body,
                headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
            )
            assert 400 <= response.status_code < 500, (name, response.text)
            _assert_error(response, response.status_code, None)
            assert response.json()["code"] in (
                "MALFORMED_REQUEST",
                "VALIDATION_ERROR",
                "EMPTY_UPLOAD",
                "INVALID_AUDIO",
            ), name
    assert spooled_files(gateway.settings) == []
    _assert_no_traceback(caplog)


async def test_upload_malformed_multipart_codes(gateway: RunningGateway) -> None:
    """The parser's refusals are 400 MALFORMED_REQUEST (the issue's four examples)."""
    async with gateway.client() as client:
        for name in (
            "header-without-colon",
            "boundary-mismatch",
            "filename-over-4kB",
            "nine-part-headers",
        ):
            boundary, body = MALFORMED_MULTIPART[name]
            response = await client.post(
                "/asr/transcribe/stream",
                content=body,
                headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
            )
            _assert_error(response, 400, "MALFORMED_REQUEST")


POISONED_PARAGRAPHS: dict[str, str] = {
    "lone-surrogate": '{"speaker_no": 0, "start": 0, "end": 1, "text": "a\\ud800b"}',
    "lone-surrogate-in-name": (
        '{"speaker_no": 0, "speaker_name": "\\udfff", "start": 0, "end": 1, "text": "a"}'
    ),
    "nul-in-text": '{"speaker_no": 0, "start": 0, "end": 1, "text": "a\\u0000b"}',
    "infinite-end": '{"speaker_no": 0, "start": 0, "end": Infinity, "text": "a"}',
    "overflowing-end": '{"speaker_no": 0, "start": 0, "end": 1e400, "text": "a"}',
    "nan-start": '{"speaker_no": 0, "start": NaN, "end": 1, "text": "a"}',
    "negative-start": '{"speaker_no": 0, "start": -1, "end": 1, "text": "a"}',
    "end-before-start": '{"speaker_no": 0, "start": 5, "end": 1, "text": "a"}',
    "speaker-too-big": '{"speaker_no": 1001, "start": 0, "end": 1, "text": "a"}',
    "speaker-negative": '{"speaker_no": -1, "start": 0, "end": 1, "text": "a"}',
    "speaker-huge": '{"speaker_no": 1e30, "start": 0, "end": 1, "text": "a"}',
    "text-too-long": '{"speaker_no": 0, "start": 0, "end": 1, "text": "' + "a" * 100_001 + '"}',
}


async def _stored_document_id(client: httpx.AsyncClient, tmp_path: Path) -> str:
    audio = make_audio_file(tmp_path, fmt="wav_s16", seconds=1.0)
    result = await stream_transcription(client, audio)
    assert result.last.event == "done"
    return str(result.headers["x-document-id"])


async def test_validation_poisoned_paragraphs_are_422_and_not_stored(
    gateway: RunningGateway, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Lone surrogates, NUL, non-finite or reversed times, bad speakers → 422; the document
    still reads back and streams from the cache."""
    caplog.set_level(logging.INFO)
    async with gateway.client() as client:
        document_id = await _stored_document_id(client, tmp_path)
        url = f"/asr/validation/document/{document_id}"
        before = (await client.get(url)).json()
        for name, paragraph in POISONED_PARAGRAPHS.items():
            response = await client.post(
                url, content=f"[{paragraph}]", headers={"Content-Type": "application/json"}
            )
            assert response.status_code == 422, (name, response.text)
            _assert_error(response, 422, "VALIDATION_ERROR")
        after = await client.get(url)
        assert after.status_code == 200
        assert after.json() == before
        cached = await stream_transcription(client, tmp_path / "wav_s16-16000hz-1ch-1s.wav")
        assert cached.last.event == "done"
    _assert_no_traceback(caplog)


async def test_validation_body_over_the_cap_is_413(limited_gateway: RunningGateway) -> None:
    """A JSON body over TRANSCRIBE_MAX_JSON_BODY_BYTES → 413 BODY_TOO_LARGE, declared or not."""
    paragraph = '{"speaker_no": 0, "start": 0, "end": 1, "text": "' + "a" * 1000 + '"}'
    body = ("[" + ",".join([paragraph] * 100) + "]").encode()  # ~100 kB
    url = f"/asr/validation/document/{uuid.uuid4()}"
    async with limited_gateway.client() as client:
        declared = await client.post(
            url, content=body, headers={"Content-Type": "application/json"}
        )

        async def chunked() -> AsyncIterator[bytes]:
            for start in range(0, len(body), 8192):
                yield body[start : start + 8192]

        streamed = await client.post(
            url, content=chunked(), headers={"Content-Type": "application/json"}
        )
    _assert_error(declared, 413, "BODY_TOO_LARGE")
    _assert_error(streamed, 413, "BODY_TOO_LARGE")


async def test_validation_too_many_paragraphs_is_422(gateway: RunningGateway) -> None:
    """More than 50,000 paragraphs → 422 (the count is bounded as well as the bytes)."""
    body = "[" + ",".join(['{"speaker_no":0,"start":0,"end":0,"text":""}'] * 50_001) + "]"
    async with gateway.client() as client:
        response = await client.post(
            f"/asr/validation/document/{uuid.uuid4()}",
            content=body,
            headers={"Content-Type": "application/json"},
        )
    _assert_error(response, 422, "VALIDATION_ERROR")


async def test_stored_unreadable_document_answers_with_a_code(
    tmp_path: Path, wlk_simulator: WLKSimulator
) -> None:
    """A document stored before validation was checked (end: null, lone surrogate) is served
    repaired when it can be, else answered 500 DOCUMENT_UNREADABLE on GET and on a cache hit."""
    settings = make_settings(tmp_path, transcribe_ws_uri=wlk_simulator.url)
    audio = make_audio_file(tmp_path, fmt="wav_s16", seconds=1.0)
    async with run_gateway(settings) as gateway, gateway.client() as client:
        document_id = uuid.UUID(await _stored_document_id(client, tmp_path))
        store = gateway.app.state.service.store
        surrogate = [
            {"paragraph_id": "p0", "speaker_no": 0, "start": 0, "end": 1, "text": "a\ud800b"}
        ]
        await store.save_validation(document_id=document_id, paragraphs=surrogate)
        repaired = await client.get(f"/asr/validation/document/{document_id}")
        assert repaired.status_code == 200
        assert repaired.json()["document"][0]["text"].startswith("a")
        broken = [{"paragraph_id": "p0", "speaker_no": 0, "start": 0, "end": None, "text": "a"}]
        await store.save_validation(document_id=document_id, paragraphs=broken)
        response = await client.get(f"/asr/validation/document/{document_id}")
        _assert_error(response, 500, "DOCUMENT_UNREADABLE")
        cached = await stream_transcription(client, audio)
        assert cached.status == 500
        assert cached.body["code"] == "DOCUMENT_UNREADABLE"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def any_database_uri(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'any.db'}"
    else:
        with fresh_postgres_database() as uri:
            yield uri


async def test_validation_poison_is_422_on_every_database(
    any_database_uri: str, tmp_path: Path, wlk_simulator: WLKSimulator
) -> None:
    """NUL, Infinity and lone surrogates are 422 on SQLite and PostgreSQL alike (PostgreSQL used
    to answer 503 STORAGE_ERROR, as if it were down); then a read-only database is not ready."""
    settings = make_settings(
        tmp_path, transcribe_ws_uri=wlk_simulator.url, sqlalchemy_database_uri=any_database_uri
    )
    async with run_gateway(settings) as gateway, gateway.client() as client:
        document_id = await _stored_document_id(client, tmp_path)
        for name in ("nul-in-text", "infinite-end", "overflowing-end", "lone-surrogate"):
            response = await client.post(
                f"/asr/validation/document/{document_id}",
                content=f"[{POISONED_PARAGRAPHS[name]}]",
                headers={"Content-Type": "application/json"},
            )
            _assert_error(response, 422, "VALIDATION_ERROR")
        assert (await client.get("/readyz")).json()["checks"]["database"] == "ok"
    if any_database_uri.startswith("postgresql"):
        engine = create_engine(any_database_uri, isolation_level="AUTOCOMMIT")
        database = make_url(any_database_uri).database
        with engine.connect() as connection:
            connection.execute(
                text(f'ALTER DATABASE "{database}" SET default_transaction_read_only = on')
            )
        engine.dispose()
        async with run_gateway(settings) as gateway, gateway.client() as client:
            ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["database"].startswith("STORAGE_ERROR")
