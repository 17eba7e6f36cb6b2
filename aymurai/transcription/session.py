"""Driving one WLK `/asr` session: send paced PCM, read snapshots, finish on `ready_to_stop`.

Three concurrent stages in one task group, the first failure cancelling the others:
- the sender pulls decoded PCM chunks, waits for room under the lead budget, sends them as binary
  frames, then exactly one empty frame;
- the reader is dedicated to the socket: it never waits on anyone (the HTTP client only sees the
  latest state through a callback), so WLK's messages and pings are always consumed promptly;
- the watchdog enforces the idle timeout (no message for too long) and the `ready_to_stop`
  deadline after the end of audio, extended by the audio WLK has not yet processed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import anyio
from anyio.abc import ObjectReceiveStream

from aymurai.errors import (
    UpstreamProtocolError,
    UpstreamServiceError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from aymurai.transcription.concurrency import open_task_group
from aymurai.transcription.pacing import LeadPacer, is_quiet, sound_span
from aymurai.transcription.upstream import WLKConnection
from aymurai.transcription.wlk_protocol import (
    ConfigMessage,
    ErrorMessage,
    ReadyToStop,
    StatusSnapshot,
    UnknownMessage,
)

logger = logging.getLogger(__name__)

PCM_BYTES_PER_SECOND = 16000 * 2


@dataclass(frozen=True)
class SessionOptions:
    lead_budget_seconds: float = 20.0
    lead_initial_grace_seconds: float = 20.0
    idle_timeout_seconds: float = 60.0
    ready_timeout_seconds: float = 120.0
    config_timeout_seconds: float = 10.0


@dataclass(frozen=True)
class SessionProgress:
    """What the reader hands out after each snapshot."""

    snapshot: StatusSnapshot
    processed_seconds: float
    sent_seconds: float
    audible_until_seconds: float | None = None
    """End of the audible audio sent before `processed_seconds` (the pacer's level check): where
    words not yet committed can end at the latest. None: take `processed_seconds`."""


async def expect_config(connection: WLKConnection, timeout_seconds: float) -> None:
    """Read WLK's first message; refuse a server that is not in `--pcm-input` mode.

    Raises:
        UpstreamUnavailableError: no message within `timeout_seconds` (the server accepted the
            socket but is not serving: counts against it like a refused handshake).
        UpstreamServiceError: WLK rejected the session parameters (0.2.25+ error message).
        UpstreamProtocolError: WLK expects encoded audio (`useAudioWorklet: false`).
    """
    try:
        with anyio.fail_after(timeout_seconds):
            message = await connection.receive()
    except TimeoutError:
        raise UpstreamUnavailableError(
            "The speech recognition server sent no config message within "
            f"{timeout_seconds:g} seconds."
        ) from None
    if isinstance(message, ErrorMessage):
        raise UpstreamServiceError(
            f"The speech recognition server rejected the session: {message.error}"
        )
    if isinstance(message, ConfigMessage):
        if message.use_audio_worklet is False:
            raise UpstreamProtocolError(
                "The speech recognition server expects encoded audio, not raw PCM: start "
                "WhisperLiveKit with --pcm-input."
            )
        return
    # Servers older than 0.2.10 send no config; we cannot know their input mode.
    logger.warning("WLK sent no config message first (got %s); assuming --pcm-input", message)


# WLK closes an overloaded session (audio queue full for 30 s, WhisperLiveKit PR #435) with an
# error message then 1011; we wait this long for that close to tell it from a final error.
ERROR_CLOSE_WAIT_SECONDS = 1.0


async def _raise_session_error(
    connection: WLKConnection, message: ErrorMessage, timeout_seconds: float
) -> None:
    """Raise for an error message mid-session, chained to the close that follows, if any.

    Chaining to the close (`close_code_of` then sees 1011) is what lets the pipeline resume after
    an overload close, and not after an error that closes with 4400 or not at all.
    """
    detail = f"The speech recognition server reported an error: {message.error}"
    try:
        with anyio.move_on_after(min(ERROR_CLOSE_WAIT_SECONDS, timeout_seconds)):
            while True:
                await connection.receive()
    except UpstreamServiceError as closed:
        raise UpstreamServiceError(f"{detail} ({closed.detail})") from closed.__cause__
    raise UpstreamServiceError(detail)


async def run_session(
    connection: WLKConnection,
    pcm_chunks: ObjectReceiveStream[bytes],
    *,
    options: SessionOptions,
    on_progress: Callable[[SessionProgress], None],
    config_received: bool = False,
) -> StatusSnapshot | None:
    """Stream all PCM through an open session; return WLK's last snapshot before `ready_to_stop`.

    Args:
        pcm_chunks: 16 kHz mono s16le chunks of at most one second; closed at end of audio.
        on_progress: called from the reader after each status snapshot; must not block.
        config_received: the caller already read WLK's config (`expect_config`).

    Returns:
        The final snapshot (None if WLK recognised nothing and sent none).

    Raises:
        UpstreamServiceError: WLK reported an error or the connection was lost.
        UpstreamProtocolError: WLK is not in PCM mode, or finished before the end of audio.
        UpstreamTimeoutError: idle for too long, or no `ready_to_stop` in time.
    """
    if not config_received:
        await expect_config(connection, options.config_timeout_seconds)
    pacer = LeadPacer(
        budget_seconds=options.lead_budget_seconds,
        initial_grace_seconds=options.lead_initial_grace_seconds,
    )
    last_message_at = anyio.current_time()
    end_sent_at: float | None = None
    latest: StatusSnapshot | None = None

    async def send_audio() -> None:
        nonlocal end_sent_at
        async with pcm_chunks:
            async for chunk in pcm_chunks:
                seconds = len(chunk) / PCM_BYTES_PER_SECOND
                audible = not is_quiet(chunk)
                await pacer.wait_for_room(seconds, audible=audible)
                await connection.send_audio(chunk)
                pacer.on_sent(seconds, audible=audible, sound=sound_span(chunk))
                logger.debug(
                    "sent %.2f s of %s PCM (total %.1f s, audible lead %.1f s)",
                    seconds,
                    "audible" if audible else "quiet",
                    pacer.sent_seconds,
                    pacer.audible_lead_seconds(),
                )
        await connection.send_end_of_audio()
        end_sent_at = anyio.current_time()
        logger.debug("sent end of audio after %.1f s of PCM", pacer.sent_seconds)

    async def watch_deadlines() -> None:
        while True:
            now = anyio.current_time()
            idle_deadline = last_message_at + options.idle_timeout_seconds
            if now >= idle_deadline:
                raise UpstreamTimeoutError(
                    "The speech recognition server sent nothing for "
                    f"{options.idle_timeout_seconds:g} seconds."
                )
            next_check = idle_deadline
            if end_sent_at is not None:
                unprocessed = max(0.0, pacer.sent_seconds - pacer.reported_progress_seconds)
                ready_deadline = end_sent_at + options.ready_timeout_seconds + unprocessed
                if now >= ready_deadline:
                    raise UpstreamTimeoutError(
                        "The speech recognition server did not finish the transcription in time "
                        f"({ready_deadline - end_sent_at:.0f} seconds after the end of audio)."
                    )
                next_check = min(next_check, ready_deadline)
            await anyio.sleep(min(max(next_check - now, 0.01), 1.0))

    async def read_until_ready() -> StatusSnapshot | None:
        nonlocal last_message_at, latest
        while True:
            message = await connection.receive()
            last_message_at = anyio.current_time()
            if isinstance(message, StatusSnapshot):
                if message.is_error:
                    raise UpstreamServiceError(
                        "The speech recognition server reported an error: "
                        f"{message.error or 'status error'}"
                    )
                latest = message
                processed = min(message.processed_seconds(), pacer.sent_seconds)
                pacer.on_progress(processed, message.received_seconds())
                on_progress(
                    SessionProgress(
                        message, processed, pacer.sent_seconds, pacer.audible_until(processed)
                    )
                )
            elif isinstance(message, ReadyToStop):
                if end_sent_at is None:
                    raise UpstreamProtocolError(
                        "The speech recognition server ended the session before the end of audio."
                    )
                return latest
            elif isinstance(message, ErrorMessage):
                await _raise_session_error(connection, message, options.config_timeout_seconds)
            elif isinstance(message, UnknownMessage):
                logger.warning("ignoring WLK message: %s %r", message.reason, message.raw)
            else:  # a repeated config message is harmless
                logger.debug("ignoring WLK message %s", message)

    result: StatusSnapshot | None = None
    async with open_task_group() as group:
        group.start_soon(send_audio)
        group.start_soon(watch_deadlines)
        result = await read_until_ready()
        group.cancel_scope.cancel()
    return result
