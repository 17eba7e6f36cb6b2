"""A corpus of hostile uploads, made in the tests, and a local HTTP server that records requests.

Each file tries to make FFmpeg read something other than the upload: a concat script or an HLS/DASH
playlist pointing at a planted file or at `canary` (a local HTTP server that records every
connection), an SDP session, image sequences, archives, text, and truncated or lying headers. The
gateway must answer 415 or 413 to every one, read no planted file and connect to no server.
"""

from __future__ import annotations

import asyncio
import gzip
import io
import struct
import tarfile
import zipfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from test.audio_fixtures import make_audio_file
from test.e2e import seconds


@dataclass
class Canary:
    """A TCP server on 127.0.0.1:0 that records every connection (its peer port, on accept)."""

    port: int = 0
    connections: list[int] = field(default_factory=list)
    arrived: asyncio.Condition = field(default_factory=asyncio.Condition)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def settle(self) -> None:
        """Return once every connection made before this call is recorded.

        Connections are accepted in arrival order, so once a connection of our own is recorded,
        any earlier one (from FFmpeg) is too: no sleep needed.
        """
        _reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        own_port = writer.get_extra_info("sockname")[1]
        try:
            async with asyncio.timeout(seconds(5)), self.arrived:
                await self.arrived.wait_for(lambda: own_port in self.connections)
        finally:
            writer.close()
        self.connections.remove(own_port)


@asynccontextmanager
async def run_canary() -> AsyncIterator[Canary]:
    canary = Canary()

    async def handle(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async with canary.arrived:
            canary.connections.append(writer.get_extra_info("peername")[1])
            canary.arrived.notify_all()
        writer.write(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    canary.port = server.sockets[0].getsockname()[1]
    async with server:
        yield canary


def _zip_of(name: str, data: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(name, data)
    return buffer.getvalue()


def _tar_of(name: str, data: bytes) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _wav_header(*, data_bytes: int, rate: int = 16000) -> bytes:
    return (
        b"RIFF"
        + struct.pack("<I", 36 + data_bytes)
        + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16)
        + b"data"
        + struct.pack("<I", data_bytes)
    )


def plant_audio(directory: Path) -> Path:
    """A real WAV an attacker would like the gateway to read (a tone, so any leak is audible)."""
    return make_audio_file(directory, fmt="wav_s16", seconds=2.0, name="planted")


def hostile_corpus(planted: Path, canary_url: str) -> dict[str, bytes]:
    """Name → file content. `planted` is a real audio file the uploads point at."""
    wav = planted.read_bytes()
    remote = f"{canary_url}/leak.wav"
    hls = "#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10.0,\n{}\n#EXT-X-ENDLIST\n"
    corpus: dict[str, str | bytes] = {
        "ffconcat-relative": "ffconcat version 1.0\n" + f"file {planted.name}\n" * 200,
        "ffconcat-absolute": f"ffconcat version 1.0\nfile '{planted}'\n",
        "ffconcat-url": f"ffconcat version 1.0\nfile '{remote}'\n",
        "ffconcat-subfile": f"ffconcat version 1.0\nfile 'subfile,,start,0,end,0,,:{planted}'\n",
        "hls-file": hls.format(planted),
        "hls-relative": hls.format(planted.name),
        "hls-url": hls.format(remote),
        "hls-after-id3": b"ID3\x04\x00\x00\x00\x00\x00\x00" + hls.format(remote).encode(),
        "dash-mpd": (
            '<?xml version="1.0"?><MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static">'
            f"<Period><AdaptationSet><Representation><BaseURL>{remote}</BaseURL>"
            "</Representation></AdaptationSet></Period></MPD>"
        ),
        "sdp-rtp": (
            "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=x\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            f"m=audio {canary_url.rsplit(':', 1)[1]} RTP/AVP 0\r\n"
        ),
        "ffmetadata": ";FFMETADATA1\ntitle=x\n",
        "tee-url-text": f"tee:{planted}|{remote}\n",
        "png-image": b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(64),
        "jpeg-image": b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(64),
        "text": "Hola, esto no es audio.\n" * 100,
        "zip-of-wav": _zip_of("a.wav", wav),
        "tar-of-wav": _tar_of("a.wav", wav),
        "gzip-of-wav": gzip.compress(wav),
        "flac-magic-only": b"fLaC",
        "ogg-magic-junk": b"OggS" + bytes(200),
        "mp4-ftyp-only": struct.pack(">I", 24) + b"ftypisom" + bytes(16),
        "matroska-magic-only": b"\x1a\x45\xdf\xa3" + bytes(32),
        "wav-header-only": _wav_header(data_bytes=0)[:30],
        "mp3-sync-junk": b"\xff\xfb" + bytes(400),
    }
    return {name: v.encode() if isinstance(v, str) else v for name, v in corpus.items()}
