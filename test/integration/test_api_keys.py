"""API keys over real sockets: scopes, 401/403, admin-only surfaces, own jobs, events tokens,
the per-key limit and the keys CLI."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

from aymurai.api.main import create_app
from aymurai.keys import KeysFileError
from aymurai.simulator import WLKSimulator
from test.e2e import (
    RunningGateway,
    eventually,
    iter_sse,
    make_settings,
    raw_http_request,
    run_gateway,
    seconds,
    upload_files,
)
from test.keyed import Keys, make_distinct_audio, make_keys_file
from test.live import BYTES_PER_SECOND, LiveResult, collect, make_live_speech, read_pcm, ws_url
from test.postgres import fresh_postgres_database

pytestmark = pytest.mark.integration


@pytest.fixture
def keys(tmp_path: Path) -> Keys:
    return make_keys_file(tmp_path)


@pytest.fixture
async def keyed_gateway(
    tmp_path: Path, wlk_simulator: WLKSimulator, keys: Keys
) -> AsyncIterator[RunningGateway]:
    """The gateway with API keys on (alice, bob: transcribe; reviewer: validate; ops: admin)."""
    settings = make_settings(
        tmp_path, transcribe_ws_uri=wlk_simulator.url, transcribe_api_keys_file=str(keys.file)
    )
    async with run_gateway(settings) as running:
        yield running


@pytest.fixture
async def slow_simulator() -> AsyncIterator[WLKSimulator]:
    """A simulator at 2x real time: a 25 s file keeps its job running for seconds."""
    async with WLKSimulator(profile="0.2.26", speed=2.0) as simulator:
        yield simulator


async def _create(
    client: httpx.AsyncClient, path: Path, headers: dict[str, str] | None = None
) -> httpx.Response:
    return await client.post("/asr/transcriptions", files=upload_files(path), headers=headers)


def _assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["code"] == code
    assert body["request_id"] == response.headers["x-request-id"]
    return body


async def test_keys_missing_or_unknown_key_is_401_with_www_authenticate(
    tmp_path: Path, keyed_gateway: RunningGateway
) -> None:
    """No key, an unknown key, a key in the wrong header form: 401 UNAUTHENTICATED, Bearer."""
    audio = make_distinct_audio(tmp_path, 0)
    async with keyed_gateway.client() as client:
        for headers in (
            {},
            {"Authorization": "Bearer aym_not-a-key"},
            {"X-API-Key": "aym_not-a-key"},
            {"Authorization": "Basic YWxpY2U6c2VjcmV0"},
            {"Authorization": "Bearer " + "x" * 5000},
        ):
            for method, path in (
                ("POST", "/asr/transcribe/stream"),
                ("POST", "/asr/transcribe"),
                ("POST", "/asr/transcriptions"),
                ("GET", "/asr/transcriptions"),
                ("GET", "/asr/transcriptions/abc"),
                ("DELETE", "/asr/transcriptions/abc"),
                ("GET", "/asr/transcriptions/abc/events"),
                ("GET", "/asr/validation/document/00000000-0000-0000-0000-000000000000"),
                ("GET", "/metrics"),
                ("GET", "/docs"),
                ("GET", "/openapi.json"),
            ):
                files = upload_files(audio) if method == "POST" else None
                response = await client.request(method, path, headers=headers, files=files)
                _assert_error(response, 401, "UNAUTHENTICATED")
                assert response.headers["www-authenticate"] == "Bearer"


async def test_keys_open_routes_stay_open(keyed_gateway: RunningGateway) -> None:
    """/healthz, /readyz, the web page and its assets need no key."""
    async with keyed_gateway.client() as client:
        assert (await client.get("/healthz")).status_code == 200
        assert (await client.get("/readyz")).status_code == 200
        assert (await client.get("/")).status_code == 200
        assert (await client.get("/static/app.js")).status_code == 200


async def test_keys_each_scope_reaches_its_routes_only(
    tmp_path: Path, keyed_gateway: RunningGateway, keys: Keys
) -> None:
    """transcribe, validate and admin each open their routes and get 403 FORBIDDEN elsewhere."""
    audio = make_distinct_audio(tmp_path, 1, bursts=1)
    async with keyed_gateway.client() as client:
        # transcribe: the upload routes, with either header form.
        created = await _create(client, audio, {"X-API-Key": keys.by_name["alice"]})
        assert created.status_code == 202
        job_id = created.json()["id"]
        blocking = await client.post(
            "/asr/transcribe", files=upload_files(audio), headers=keys.header("alice")
        )
        assert blocking.status_code == 200
        document_id = blocking.json()["document_id"]
        for name in ("reviewer", "ops"):
            _assert_error(await _create(client, audio, keys.header(name)), 403, "FORBIDDEN")
            forbidden = await client.post(
                "/asr/transcribe/stream", files=upload_files(audio), headers=keys.header(name)
            )
            _assert_error(forbidden, 403, "FORBIDDEN")
        # Reading a document: transcribe or validate; storing a validation: validate only.
        path = f"/asr/validation/document/{document_id}"
        for name in ("alice", "reviewer"):
            assert (await client.get(path, headers=keys.header(name))).status_code == 200
        _assert_error(await client.get(path, headers=keys.header("ops")), 403, "FORBIDDEN")
        paragraphs = [{"speaker_no": 0, "start": 0.0, "end": 1.0, "text": "revisado"}]
        for name in ("alice", "ops"):
            refused = await client.post(path, json=paragraphs, headers=keys.header(name))
            _assert_error(refused, 403, "FORBIDDEN")
        stored = await client.post(path, json=paragraphs, headers=keys.header("reviewer"))
        assert stored.status_code == 200
        assert stored.json()["document"][0]["text"] == "revisado"
        # admin: metrics, docs, the schema; nobody else.
        for surface in ("/metrics", "/docs", "/openapi.json"):
            for name in ("alice", "reviewer"):
                refused = await client.get(surface, headers=keys.header(name))
                _assert_error(refused, 403, "FORBIDDEN")
            assert (await client.get(surface, headers=keys.header("ops"))).status_code == 200
        schema = (await client.get("/openapi.json", headers=keys.header("ops"))).json()
        assert {"HTTPBearer", "APIKeyHeader"} <= set(schema["components"]["securitySchemes"])
        await client.delete(f"/asr/transcriptions/{job_id}", headers=keys.header("alice"))


async def test_keys_a_key_sees_only_its_own_jobs_admin_sees_all(
    tmp_path: Path, keyed_gateway: RunningGateway, keys: Keys
) -> None:
    """The list shows a key its own jobs; another key's job is 404 to GET, DELETE and events."""
    async with keyed_gateway.client() as client:
        mine = await _create(
            client, make_distinct_audio(tmp_path, 2, bursts=1), keys.header("alice")
        )
        theirs = await _create(
            client, make_distinct_audio(tmp_path, 3, bursts=1), keys.header("bob")
        )
        assert mine.status_code == theirs.status_code == 202
        mine_id, theirs_id = mine.json()["id"], theirs.json()["id"]
        service = keyed_gateway.app.state.service
        await eventually(lambda: not service.jobs, timeout_seconds=30, what="the jobs to end")

        async def listed(name: str) -> set[str]:
            response = await client.get("/asr/transcriptions", headers=keys.header(name))
            assert response.status_code == 200
            return {item["id"] for item in response.json()}

        assert await listed("alice") == {mine_id}
        assert await listed("bob") == {theirs_id}
        assert await listed("ops") == {mine_id, theirs_id}
        _assert_error(
            await client.get("/asr/transcriptions", headers=keys.header("reviewer")),
            403,
            "FORBIDDEN",
        )
        assert (
            await client.get(f"/asr/transcriptions/{mine_id}", headers=keys.header("alice"))
        ).status_code == 200
        for method, suffix in (("GET", ""), ("DELETE", ""), ("GET", "/events")):
            response = await client.request(
                method, f"/asr/transcriptions/{mine_id}{suffix}", headers=keys.header("bob")
            )
            _assert_error(response, 404, "NOT_FOUND")
        admin_view = await client.get(
            f"/asr/transcriptions/{theirs_id}", headers=keys.header("ops")
        )
        assert admin_view.json()["status"] == "done"


@pytest.mark.postgres
async def test_keys_own_jobs_on_postgres(
    tmp_path: Path, wlk_simulator: WLKSimulator, keys: Keys
) -> None:
    """On PostgreSQL too, job rows record their key's name and a key lists its own only."""
    with fresh_postgres_database() as uri:
        settings = make_settings(
            tmp_path,
            transcribe_ws_uri=wlk_simulator.url,
            transcribe_api_keys_file=str(keys.file),
            sqlalchemy_database_uri=uri,
        )
        async with run_gateway(settings) as gateway, gateway.client() as client:
            ids = {}
            for index, name in enumerate(("alice", "bob")):
                audio = make_distinct_audio(tmp_path, 40 + index, bursts=1)
                created = await _create(client, audio, keys.header(name))
                assert created.status_code == 202
                ids[name] = created.json()["id"]
            for name, job_id in ids.items():
                listed = await client.get("/asr/transcriptions", headers=keys.header(name))
                assert [item["id"] for item in listed.json()] == [job_id]
            everything = await client.get("/asr/transcriptions", headers=keys.header("ops"))
            assert {item["id"] for item in everything.json()} == set(ids.values())
            rows = await gateway.app.state.service.store.list_jobs(status=None, limit=10)
            assert {row.key_name for row in rows} == {"alice", "bob"}
            service = gateway.app.state.service
            await eventually(lambda: not service.jobs, timeout_seconds=30, what="the jobs to end")


async def _read_events(client: httpx.AsyncClient, url: str) -> tuple[int, list[str]]:
    async with asyncio.timeout(seconds(60)):
        async with client.stream("GET", url) as response:
            if response.status_code != 200:
                await response.aread()
                return response.status_code, []
            return 200, [frame.event async for frame in iter_sse(response) if frame.event]


async def test_keys_events_url_token_opens_that_job_only(
    tmp_path: Path, keyed_gateway: RunningGateway, keys: Keys
) -> None:
    """The token of events_url opens that job's stream without a key, never another job or
    DELETE; a tampered token is 401."""
    async with keyed_gateway.client() as client:
        first = (
            await _create(client, make_distinct_audio(tmp_path, 4), keys.header("alice"))
        ).json()
        second = (
            await _create(client, make_distinct_audio(tmp_path, 5), keys.header("alice"))
        ).json()
    url, other_url = first["events_url"], second["events_url"]
    path, _, token = url.partition("?token=")
    assert token and keys.by_name["alice"] not in url
    async with keyed_gateway.client() as anonymous:  # no key: the token alone
        status, events = await _read_events(anonymous, url)
        assert status == 200 and events[-1] == "done"
        other_token = other_url.partition("?token=")[2]
        tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
        for bad in (
            f"{path}?token={other_token}",
            f"{path}?token={tampered}",
            f"{path}?token=1.{token.partition('.')[2]}",
            f"{path}?token=",
            path,
            f"/asr/transcriptions/{'0' * 32}/events?token={token}",
        ):
            response = await anonymous.get(bad)
            _assert_error(response, 401, "UNAUTHENTICATED")
        # Read-only: the token is no key for anything else.
        job_path = f"/asr/transcriptions/{first['id']}"
        _assert_error(await anonymous.delete(f"{job_path}?token={token}"), 401, "UNAUTHENTICATED")
        _assert_error(await anonymous.get(f"{job_path}?token={token}"), 401, "UNAUTHENTICATED")
        status, events = await _read_events(anonymous, other_url)
        assert status == 200 and events[-1] == "done"


async def test_keys_events_token_refused_after_ttl(
    tmp_path: Path, wlk_simulator: WLKSimulator, keys: Keys
) -> None:
    """After the job ends, its token works for TRANSCRIBE_EVENTS_TOKEN_TTL_SECONDS, then 401."""
    ttl = seconds(1.0)
    settings = make_settings(
        tmp_path,
        transcribe_ws_uri=wlk_simulator.url,
        transcribe_api_keys_file=str(keys.file),
        transcribe_events_token_ttl_seconds=ttl,
    )
    async with run_gateway(settings) as gateway, gateway.client() as client:
        created = await _create(
            client, make_distinct_audio(tmp_path, 6, bursts=1), keys.header("alice")
        )
        url = created.json()["events_url"]
        status, events = await _read_events(client, url)  # no key header on this client
        assert status == 200 and events[-1] == "done"
        # Still within the TTL of the end (or of the issue): the reconnect of an EventSource.
        assert (await _read_events(client, url))[0] == 200
        await asyncio.sleep(
            ttl + 1.1
        )  # the TTL itself is what is tested; whole seconds on the wire
        _assert_error(await client.get(url), 401, "UNAUTHENTICATED")
        # A key still reads it; the fresh events_url it is given works again.
        fresh = await client.get(
            f"/asr/transcriptions/{created.json()['id']}", headers=keys.header("alice")
        )
        assert (await _read_events(client, fresh.json()["events_url"]))[0] == 200


async def test_keys_limit_429_for_one_key_while_another_gets_through(
    tmp_path: Path, slow_simulator: WLKSimulator, keys: Keys
) -> None:
    """A key at TRANSCRIBE_API_KEY_MAX_JOBS gets 429 KEY_LIMIT with Retry-After; another key is
    accepted; joining an identical job at the limit is allowed and adds no job."""
    settings = make_settings(
        tmp_path,
        transcribe_ws_uri=slow_simulator.url,
        transcribe_api_keys_file=str(keys.file),
        transcribe_api_key_max_jobs=2,
        transcribe_max_concurrent_sessions=1,
    )
    audio = [make_distinct_audio(tmp_path, 10 + i) for i in range(4)]
    async with run_gateway(settings) as gateway, gateway.client() as client:
        alice = keys.header("alice")
        first = await _create(client, audio[0], alice)
        second = await _create(client, audio[1], alice)
        assert first.status_code == second.status_code == 202
        refused = await _create(client, audio[2], alice)
        body = _assert_error(refused, 429, "KEY_LIMIT")
        assert int(refused.headers["retry-after"]) > 0
        assert "limit" in body["detail"]
        joined = await _create(client, audio[0], alice)  # identical to a running job: no work
        assert joined.status_code == 202
        assert joined.json()["id"] == first.json()["id"]
        by_bob = await _create(client, audio[2], keys.header("bob"))
        assert by_bob.status_code == 202
        bob_joins = await _create(client, audio[1], keys.header("bob"))
        assert bob_joins.json()["id"] == second.json()["id"]
        # The joiner may follow and cancel the job it joined.
        assert (
            await client.get(
                f"/asr/transcriptions/{second.json()['id']}", headers=keys.header("bob")
            )
        ).status_code == 200
        metrics = (await client.get("/metrics", headers=keys.header("ops"))).text
        assert 'aymurai_api_key_requests_total{key="alice",outcome="KEY_LIMIT"} 1.0' in metrics
        assert 'aymurai_api_key_jobs{key="alice"} 2.0' in metrics
        assert 'aymurai_api_key_jobs{key="bob"} 1.0' in metrics
        for secret in keys.by_name.values():
            assert secret not in metrics
        for job in (first, second, by_bob):
            await client.delete(
                f"/asr/transcriptions/{job.json()['id']}", headers=keys.header("ops")
            )
        # Ended jobs free the key's share at once.
        again = await _create(client, audio[3], alice)
        assert again.status_code == 202
        await client.delete(f"/asr/transcriptions/{again.json()['id']}", headers=alice)


async def test_keys_queue_serves_keys_round_robin(
    tmp_path: Path, slow_simulator: WLKSimulator, keys: Keys
) -> None:
    """One session, alice queues three files, bob one: bob's waits behind one of alice's only."""
    settings = make_settings(
        tmp_path,
        transcribe_ws_uri=slow_simulator.url,
        transcribe_api_keys_file=str(keys.file),
        transcribe_max_concurrent_sessions=1,
    )
    async with run_gateway(settings) as gateway, gateway.client() as client:
        alice = [
            (
                await _create(client, make_distinct_audio(tmp_path, 20 + i), keys.header("alice"))
            ).json()
            for i in range(3)
        ]
        bob = (await _create(client, make_distinct_audio(tmp_path, 30), keys.header("bob"))).json()

        async def positions() -> list[int | None]:
            found = []
            for job in (*alice, bob):
                url = f"/asr/transcriptions/{job['id']}"
                found.append((await client.get(url, headers=keys.header("ops"))).json()["position"])
            return found

        expected = [None, 2, 3, 1]  # alice's first runs; bob's is next, then alice's others
        async with asyncio.timeout(seconds(10)):
            seen = await positions()
            while seen != expected:  # each job's position is recorded by its own task
                await asyncio.sleep(0.05)
                seen = await positions()
        assert seen == expected
        for job in (*alice, bob):
            await client.delete(f"/asr/transcriptions/{job['id']}", headers=keys.header("ops"))


def test_keys_cli_add_list_remove_as_a_subprocess(tmp_path: Path) -> None:
    """`aymurai-api keys add` prints a new key once (stdout), stores only its hash; list shows
    names and scopes; remove deletes; bad scopes exit 2."""
    file = tmp_path / "conf" / "keys.json"
    env = {**os.environ, "TRANSCRIBE_API_KEYS_FILE": str(file)}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "aymurai", "keys", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=seconds(60),
            check=False,
        )

    added = run("add", "court-7", "--scopes", "transcribe,validate")
    assert added.returncode == 0, added.stderr
    key = added.stdout.strip()
    assert key.startswith("aym_") and len(key) > 40
    assert key not in file.read_text()
    assert oct(file.stat().st_mode & 0o777) == "0o600"
    listed = run("list")
    assert listed.stdout.split("\t")[:2] == ["court-7", "transcribe,validate"]
    assert key not in listed.stdout + listed.stderr
    assert run("add", "court-7", "--scopes", "admin").returncode == 2  # the name is taken
    assert run("add", "x", "--scopes", "root").returncode == 2
    assert run("remove", "court-7").returncode == 0
    assert run("list").stdout == ""
    assert run("remove", "court-7").returncode == 1


async def _run_asr_cli(*args: str, api_key: str | None) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"AYMURAI_URL", "AYMURAI_API_KEY"}}
    if api_key is not None:
        env["AYMURAI_API_KEY"] = api_key
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).with_name("aymurai-asr")),
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        async with asyncio.timeout(seconds(60)):
            stdout, stderr = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


async def test_keys_cli_takes_the_key_from_aymurai_api_key(
    tmp_path: Path, keyed_gateway: RunningGateway, keys: Keys
) -> None:
    """`aymurai-asr` sends $AYMURAI_API_KEY (or --api-key); no key exits 4 UNAUTHENTICATED, a key
    without `transcribe` exits 4 FORBIDDEN."""
    audio = str(make_distinct_audio(tmp_path, 50, bursts=1))
    url = keyed_gateway.base_url
    code, out, err = await _run_asr_cli(
        "transcribe", audio, "--url", url, "--format", "json", api_key=keys.by_name["alice"]
    )
    assert code == 0, err
    assert '"document_id"' in out
    code, _, err = await _run_asr_cli("transcribe", audio, "--url", url, api_key=None)
    assert code == 4
    assert err.startswith("aymurai-asr: error: UNAUTHENTICATED: ")
    reviewer = keys.by_name["reviewer"]
    code, _, err = await _run_asr_cli(
        "transcribe", audio, "--url", url, "--api-key", reviewer, api_key=None
    )
    assert code == 4
    assert err.startswith("aymurai-asr: error: FORBIDDEN: ")


def test_keys_off_on_a_public_address_warns_at_startup(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Keys off and API_HOST not loopback: one WARNING; loopback or keys on: none."""
    with caplog.at_level(logging.WARNING, logger="aymurai.api.main"):
        create_app(make_settings(tmp_path, api_host="0.0.0.0"))
    assert [r.levelno for r in caplog.records] == [logging.WARNING]
    assert "TRANSCRIBE_API_KEYS_FILE" in caplog.records[0].getMessage()
    caplog.clear()
    keys = make_keys_file(tmp_path)
    with caplog.at_level(logging.WARNING, logger="aymurai.api.main"):
        create_app(make_settings(tmp_path, api_host="127.0.0.1"))
        create_app(
            make_settings(tmp_path, api_host="0.0.0.0", transcribe_api_keys_file=str(keys.file))
        )
    assert caplog.records == []


def test_keys_file_not_ours_stops_the_startup(tmp_path: Path) -> None:
    """A keys file that does not parse refuses to build the app (never start open by mistake)."""
    broken = tmp_path / "keys.json"
    broken.write_text('{"keys": [{"name": "a"}]}')
    with pytest.raises(KeysFileError):
        create_app(make_settings(tmp_path, transcribe_api_keys_file=str(broken)))


async def test_keys_validation_body_is_not_read_without_a_key(
    tmp_path: Path, wlk_simulator: WLKSimulator, keys: Keys
) -> None:
    """An anonymous POST of a validation gets 401 before its (large) body is read."""
    settings = make_settings(
        tmp_path,
        transcribe_ws_uri=wlk_simulator.url,
        transcribe_api_keys_file=str(keys.file),
        transcribe_max_json_body_bytes=200 * 1024 * 1024,
    )
    path = "/asr/validation/document/00000000-0000-0000-0000-000000000000"
    block = b" " * 65536
    total_chunks = 1600  # 100 MiB offered, under the cap: only the missing key stops it
    head = (
        f"POST {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        f"Content-Length: {total_chunks * len(block)}\r\n\r\n"
    ).encode()
    async with run_gateway(settings) as gateway:
        status, sent = await raw_http_request(
            gateway.base_url, head, (block for _ in range(total_chunks)), timeout_seconds=30
        )
        assert status.startswith(b"HTTP/1.1 401"), status
        assert sent < total_chunks * len(block) // 4, f"read {sent} bytes before answering"
        # With a key the same route reads the body (and answers about the document).
        async with gateway.client() as client:
            response = await client.post(path, json=[], headers=keys.header("reviewer"))
        assert response.status_code == 404


async def _live_refusal(url: str, **connect_args: Any) -> LiveResult:
    result = LiveResult()
    async with asyncio.timeout(seconds(10)), connect(url, **connect_args) as socket:
        await collect(socket, result)
    return result


async def test_api_keys_live_socket_needs_a_transcribe_key(
    keyed_gateway: RunningGateway, keys: Keys, tmp_path: Path
) -> None:
    """WS /asr/live with keys on: no key or a validate-only key is an error and close 1008 after
    the accept; a transcribe key (header, or the `aymurai.key.<key>` subprotocol a browser can
    send) gets a session owned by that key."""
    url = ws_url(keyed_gateway.base_url)
    anonymous = await _live_refusal(url)
    reviewer = await _live_refusal(url, additional_headers=keys.header("reviewer"))
    pcm = read_pcm(make_live_speech(tmp_path))[: BYTES_PER_SECOND * 2]
    async with asyncio.timeout(seconds(30)):
        async with connect(
            url,
            subprotocols=[
                Subprotocol("aymurai.live"),
                Subprotocol(f"aymurai.key.{keys.by_name['alice']}"),
            ],
        ) as socket:
            selected = socket.subprotocol
            session = json.loads(await socket.recv())
            await socket.send(pcm)
            await socket.send(b"")
            result = LiveResult()
            await collect(socket, result)
    async with keyed_gateway.client() as client:
        alices = await client.get("/asr/transcriptions", headers=keys.header("alice"))
        bobs = await client.get("/asr/transcriptions", headers=keys.header("bob"))

    assert anonymous.kinds == ["error"] and anonymous.messages[0]["code"] == "UNAUTHENTICATED"
    assert anonymous.close_code == 1008
    assert reviewer.kinds == ["error"] and reviewer.messages[0]["code"] == "FORBIDDEN"
    assert reviewer.close_code == 1008
    assert selected == "aymurai.live"
    assert session["type"] == "session"
    assert result.kinds[-1] == "done", result.kinds
    assert session["id"] in [job["id"] for job in alices.json()]
    assert session["id"] not in [job["id"] for job in bobs.json()]
