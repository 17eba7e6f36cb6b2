"""Live audio pieces: incremental WebM/Opus decoding, the rate guard, rechunking, the bounded
buffer, final paragraphs and the `line` events of a live job."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import anyio
import pytest

from aymurai.errors import InvalidAudioError
from aymurai.simulator.recognizer import recognize_pcm
from aymurai.transcription.channel import JobEvent, MemoryEventLog
from aymurai.transcription.jobs import Done, JobUpdate, Transcribing, TranscriptionJob
from aymurai.transcription.live import LIVE_CHUNK_BYTES, LiveAudio, RateGuard, Rechunker
from aymurai.transcription.schemas import ASRDocument, ASRParagraph
from aymurai.transcription.transcript import build_paragraphs, final_paragraph_count
from aymurai.transcription.webm import DecoderAborted, GrowingBuffer, decode_growing_webm
from aymurai.transcription.wlk_protocol import StatusSnapshot, TranscriptLine
from test.audio_fixtures import make_audio_file
from test.e2e import seconds

DOC_ID = uuid.uuid4()


def _webm(directory: Path) -> bytes:
    """4 s of WebM/Opus as MediaRecorder writes it (live Matroska: no sizes, no cues)."""
    path = make_audio_file(
        directory,
        fmt="webm_opus",
        seconds=4.0,
        sample_rate=48000,
        tone_hz=[(440.0, 2.0), (660.0, 2.0)],
        name="recording",
    )
    return path.read_bytes()


def test_webm_decodes_incrementally_while_the_recording_grows(tmp_path: Path) -> None:
    """Fed in slices like MediaRecorder's, PCM comes out before the end; all of it is right."""
    data = _webm(tmp_path)
    source = GrowingBuffer(max_bytes=1 << 20)
    pcm = bytearray()
    first_pcm = threading.Event()

    def emit(block: bytes) -> None:
        pcm.extend(block)
        first_pcm.set()

    decoder = threading.Thread(target=decode_growing_webm, args=(source, emit))
    decoder.start()
    slices = [data[i : i + 2048] for i in range(0, len(data), 2048)]
    half = len(slices) // 2
    for piece in slices[:half]:
        assert source.feed(piece)
    # Half the recording is there and the stream is still open: PCM is already decoded.
    assert first_pcm.wait(seconds(5))
    assert decoder.is_alive()
    for piece in slices[half:]:
        source.feed(piece)
    source.finish()
    decoder.join(seconds(10))
    assert not decoder.is_alive()
    assert len(pcm) / 32000 == pytest.approx(4.0, abs=0.05)
    words = recognize_pcm(bytes(pcm))
    assert words[:4] == ["f440"] * 4 and words[-3:] == ["f660"] * 3


def test_webm_abort_stops_a_decoder_waiting_for_bytes(tmp_path: Path) -> None:
    """`abort()` ends a decoder blocked on `read` with DecoderAborted, at once."""
    data = _webm(tmp_path)
    source = GrowingBuffer(max_bytes=1 << 20)
    source.feed(data[:3000])
    raised: list[BaseException] = []

    def run() -> None:
        try:
            decode_growing_webm(source, lambda _block: None)
        except BaseException as exc:
            raised.append(exc)

    decoder = threading.Thread(target=run)
    decoder.start()
    time.sleep(0.2)  # let it block on read
    source.abort()
    decoder.join(seconds(5))
    assert not decoder.is_alive()
    assert [type(exc) for exc in raised] == [DecoderAborted]


def test_webm_refuses_what_is_not_webm() -> None:
    """Bytes that are not Matroska: InvalidAudioError, and the buffer's bound holds."""
    source = GrowingBuffer(max_bytes=100)
    assert source.feed(b"RIFF" + b"\0" * 60)
    assert not source.feed(b"\0" * 64)  # would pass max_bytes: refused, nothing kept
    source.finish()
    with pytest.raises(InvalidAudioError):
        decode_growing_webm(source, lambda _block: None)


def test_live_rate_guard_allows_bursts_and_real_time_but_not_sustained_floods() -> None:
    """Real time passes; a 5 s burst at the start passes; 3x real time over 10 s does not."""
    steady = RateGuard()
    assert not any(steady.add(0.1, t / 10) for t in range(600))  # 60 s in real time
    burst = RateGuard()
    assert not burst.add(5.0, 0.0)  # e.g. a client flushing what it recorded before connecting
    assert not any(burst.add(0.1, 0.1 + t / 10) for t in range(300))
    flood = RateGuard()
    flagged = [flood.add(0.3, t / 10) for t in range(200)]  # 3x real time
    assert not any(flagged[:99]) and any(flagged[100:])


def test_live_rechunker_cuts_fixed_chunks_and_keeps_whole_samples() -> None:
    """Any frame sizes → chunks of LIVE_CHUNK_BYTES; the rest at the end, whole samples only."""
    rechunker = Rechunker()
    chunks = rechunker.feed(b"\1" * 1000) + rechunker.feed(b"\2" * (LIVE_CHUNK_BYTES * 2 + 7))
    assert [len(c) for c in chunks] == [LIVE_CHUNK_BYTES] * 2
    assert len(rechunker.flush()) == (1000 + 7) // 2 * 2
    assert rechunker.flush() == b""


async def test_live_audio_buffer_is_bounded_in_seconds() -> None:
    """`put` refuses past max_seconds; end() closes the stream after what is buffered."""
    audio = LiveAudio(max_seconds=0.3)
    chunk = b"\0" * LIVE_CHUNK_BYTES
    assert [audio.put(chunk) for _ in range(4)] == [True, True, True, False]
    assert audio.accepted_seconds == pytest.approx(0.3)
    assert audio.buffered_seconds == pytest.approx(0.3)
    audio.end()
    received = [chunk async for chunk in audio.receive]
    assert len(received) == 3
    audio.close()


def _line(text: str, start: float, speaker: int = 1) -> TranscriptLine:
    return TranscriptLine(speaker=speaker, text=text, start=start, end=start + 1)


def _silence(start: float) -> TranscriptLine:
    return TranscriptLine(speaker=-2, text="", start=start, end=start + 1)


def test_transcript_final_paragraphs_are_those_a_later_committed_line_closed() -> None:
    """Every committed paragraph but the last; the tail or a trailing pause closes nothing."""

    def final(*lines: TranscriptLine, tail: str = "") -> int:
        snapshot = _snapshot(*lines, tail=tail)
        return final_paragraph_count(snapshot, build_paragraphs(snapshot, tail_end=10.0))

    assert final() == 0
    assert final(_line("a", 0)) == 0
    assert final(_line("a", 0), _line("b", 1, speaker=2)) == 1
    assert final(_line("a", 0), _silence(1)) == 0  # a pause at the end may still be dropped
    assert final(_line("a", 0), _silence(1), tail="c") == 0  # so may the tail after it
    assert final(_line("a", 0), _silence(1), _line("b", 2), _silence(3)) == 1


def _snapshot(*lines: TranscriptLine, tail: str = "") -> StatusSnapshot:
    return StatusSnapshot(status="active_transcription", lines=lines, buffer_transcription=tail)


async def test_live_job_appends_one_line_per_final_paragraph_in_order() -> None:
    """A live job's recorder: a `line` once per final paragraph, in order, the rest before done."""
    job = TranscriptionJob(document_id=DOC_ID, name="live", total_seconds=0.0, live=True)
    log = MemoryEventLog()
    job.log = log
    first = _snapshot(_line("a", 0), tail="b")
    paused = _snapshot(_line("a", 0), _silence(1), tail="x")
    second = _snapshot(_line("a", 0), _silence(1), _line("b", 2), tail="c")
    last = build_paragraphs(second, tail_end=4.0)
    updates: list[JobUpdate] = [
        Transcribing(DOC_ID, first, 1.0, 1.0),
        Transcribing(DOC_ID, paused, 2.0, 2.0),  # a pause, then a tail: "a" not final yet
        Transcribing(DOC_ID, second, 3.0, 3.0),  # "b" committed after the pause: "a" is final
        Transcribing(DOC_ID, second, 3.0, 3.0),  # nothing new: no second line for "a"
        Done(ASRDocument(document_id=DOC_ID, document=last, current_time=4.0, total_time=4.0)),
    ]
    async with anyio.create_task_group() as group:
        group.start_soon(
            lambda: job.record_events(min_interval_seconds=0, progress_interval_seconds=60)
        )
        for update in updates:
            job.publish(update)
            await anyio.sleep(0.01)
    lines: list[JobEvent] = [event for event in log.kept if event.kind == "line"]
    assert [event.line_index for event in lines] == [0, 1]
    paragraphs: list[ASRParagraph] = [event.line for event in lines if event.line is not None]
    assert [p.text for p in paragraphs] == ["a", "b c"]
    assert log.kept[-1].kind == "done"
    assert '"index":0' in lines[0].document_json and '"paragraph"' in lines[0].document_json


async def test_channel_gap_snapshot_is_the_newest_state_and_the_lines_after_it() -> None:
    """A late reader starts at the newest non-line event, then the lines appended after it."""
    log = MemoryEventLog()
    document = ASRDocument(document_id=DOC_ID)
    paragraph = ASRParagraph(
        paragraph_id="p0", speaker_no=1, speaker_id="S1", start=0, end=1, text="a"
    )
    await log.append(JobEvent(id=1, kind="queued", document=document, position=1))
    await log.append(JobEvent(id=2, kind="line", line=paragraph, line_index=0))
    await log.append(JobEvent(id=3, kind="line", line=paragraph, line_index=1))
    read = await log.read_after(-1, timeout_seconds=0)
    assert read is not None and read.gap
    assert [event.id for event in read.events] == [1, 2, 3]
