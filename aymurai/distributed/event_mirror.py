"""Follow a job that another replica runs: its Redis stream, replayed into a local job.

`mirror_job(shared, job)` feeds `job` (built by the caller from the job's SQL row, with its own
`MemoryEventLog`) with the events the owner writes (`events.py`), each rebuilt exactly
(`entries.py`) and handed to `job.replay_event()`: `follow()`, `wait_for_result()` and
`updates()` then work unchanged on this replica. It returns once the terminal event is mirrored
(`job.log.latest`).

It starts from the newest full state in the stream (XREVRANGE back to it), then reads on with
XREAD BLOCK (never longer than `MAX_BLOCK_MS`, under the socket timeout). Deltas need the
paragraphs of the entry just before: an entry that does not follow the last one read (trimmed
away while this reader was behind, lost while Redis was down, or a new epoch after a takeover)
and is a delta sends the mirror back to the newest full state; when that is no newer (the owner
could not write some events), deltas are skipped until the next full state, which the owner
writes soon after a failed write. Entries of an epoch older than the job's are history: skipped.

A `suspended` entry (the owner released the run at shutdown) is not the end here: the job is
taken over in a new epoch, and the mirror goes on with it.

Redis unavailable: retried with a backoff up to `RETRY_MAX_SECONDS`, never raised. The caller
cancels the mirror when nobody needs it any more.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import anyio

from aymurai.distributed.connection import MAX_BLOCK_MS, SharedRedis
from aymurai.distributed.entries import decode_entry, is_full_state, stream_key
from aymurai.errors import SharedStateUnavailableError
from aymurai.transcription.channel import EPOCH_SPAN, NOTICE_KINDS, JobEvent, MemoryEventLog
from aymurai.transcription.jobs import TranscriptionJob
from aymurai.transcription.schemas import ASRDocument, ASRParagraph

logger = logging.getLogger(__name__)

READ_COUNT = 256
"""Entries per XREAD: bounds a reply's memory; a mirror behind by more reads again at once."""
SCAN_PAGE = 64
SCAN_LIMIT = 4096
"""Entries looked at, newest first, for a full state to start from (the stream is capped)."""
RETRY_MIN_SECONDS = 0.1
RETRY_MAX_SECONDS = 2.0

Entry = tuple[bytes, dict[bytes, bytes]]


async def mirror_job(shared: SharedRedis, job: TranscriptionJob) -> None:
    """Replay the events of `job`'s stream into `job` until its terminal one."""
    await _Mirror(shared, job).run()


async def newest_document(shared: SharedRedis, job_id: str) -> ASRDocument | None:
    """The newest transcription state in a job's stream, None if there is none.

    For a takeover: the job goes on from what its clients last saw. Replays the entries from
    the newest full state into a throwaway job, as a mirror starting now would.
    """
    probe = TranscriptionJob(
        job_id=job_id, document_id=uuid.UUID(int=0), name="", total_seconds=0.0, remote=True
    )
    await _Mirror(shared, probe)._start_from_full_state()
    kept = probe.log.kept if isinstance(probe.log, MemoryEventLog) else []
    states = [event for event in kept if event.kind == "transcription"]
    return states[-1].document if states else None


class _Mirror:
    def __init__(self, shared: SharedRedis, job: TranscriptionJob) -> None:
        self._shared = shared
        self._job = job
        self._key = stream_key(shared, job.id)
        self._seen: int | None = None  # the id of the last entry looked at
        self._paragraphs: Sequence[ASRParagraph] | None = None  # after it (None: unknown)
        self._restart = True  # (re)start from the newest full state
        # From a restart until a state is mirrored: a delta that cannot apply is skipped (the
        # restart found nothing newer to start from), not a reason for another restart.
        self._waiting_for_full = False
        self._end: JobEvent | None = None

    async def run(self) -> None:
        backoff = RETRY_MIN_SECONDS
        while self._end is None:
            try:
                if self._restart:
                    await self._start_from_full_state()
                else:
                    await self._read_on()
            except SharedStateUnavailableError:
                # SharedRedis logs the outage; the mirror just waits for Redis to answer again.
                await anyio.sleep(backoff)
                backoff = min(backoff * 2, RETRY_MAX_SECONDS)
                continue
            backoff = RETRY_MIN_SECONDS

    async def _start_from_full_state(self) -> None:
        newest_first: list[Entry] = []
        upper = "+"
        while len(newest_first) < SCAN_LIMIT:
            page = await self._page(upper)
            found = done = False
            for entry_id, fields in page:
                if self._seen is not None and _id(entry_id) <= self._seen:
                    done = True  # what this mirror has is newer than anything further back
                    break
                newest_first.append((entry_id, fields))
                if _full_state(fields):
                    found = True
                    break
            if found or done or len(page) < SCAN_PAGE:
                break
            upper = "(" + page[-1][0].decode()
        logger.debug("job %s: mirroring from %d entries", self._job.id, len(newest_first))
        self._restart = False
        self._waiting_for_full = True
        await self._take(reversed(newest_first))

    async def _page(self, upper: str) -> list[Entry]:
        """Up to `SCAN_PAGE` entries at or below `upper`, newest first."""
        rows = await self._shared.call(
            lambda: self._shared.client.xrevrange(self._key, max=upper, min="-", count=SCAN_PAGE)
        )
        return _entries(rows)

    async def _read_on(self) -> None:
        cursor = f"{self._seen}-0" if self._seen is not None else "0-0"
        reply = await self._shared.call(
            lambda: self._shared.client.xread(
                {self._key: cursor}, count=READ_COUNT, block=MAX_BLOCK_MS
            )
        )
        # RESP2 answers [[key, entries]], RESP3 {key: entries}; nothing new: empty.
        streams = reply.values() if isinstance(reply, dict) else [rows for _, rows in reply or ()]
        for rows in streams:
            await self._take(_entries(rows))

    async def _take(self, entries: Iterable[Entry]) -> None:
        """Replay `entries` (oldest first) that follow what this mirror has seen."""
        for raw_id, fields in entries:
            entry_id = _id(raw_id)
            if self._seen is not None and entry_id <= self._seen:
                continue
            if self._seen is None or entry_id != self._seen + 1:
                self._paragraphs = None  # something is missing: a delta has nothing to apply to
            if entry_id // EPOCH_SPAN < self._job.epoch:
                self._seen = entry_id  # a run before the job's current one: history
                continue
            try:
                event = decode_entry(entry_id, fields, self._paragraphs)
            except (ValueError, KeyError, TypeError) as exc:
                logger.warning("job %s: entry %d unreadable: %r", self._job.id, entry_id, exc)
                self._seen, self._paragraphs = entry_id, None
                continue
            if event is None:  # a delta without the paragraphs it applies to
                if not self._waiting_for_full:
                    logger.debug("job %s: gap before entry %d", self._job.id, entry_id)
                    self._restart = True
                    return
                self._seen = entry_id
                continue
            self._seen = entry_id
            if event.kind == "suspended":
                # Its replica released the run at shutdown; another replica takes the job over
                # in a new epoch, which this mirror goes on with (its followers wait meanwhile).
                continue
            if event.kind not in NOTICE_KINDS:
                self._waiting_for_full = False  # a state: the next gap may look for a newer one
            if event.kind == "transcription":
                assert event.document is not None
                self._paragraphs = event.document.document
            await self._job.replay_event(event)
            if event.is_terminal:
                self._end = event
                return


def _entries(rows: Any) -> list[Entry]:
    """Stream entries as redis-py gives them (bytes: the client does not decode)."""
    return [(entry_id, fields) for entry_id, fields in rows or () if fields is not None]


def _id(raw: bytes) -> int:
    return int(raw.split(b"-", 1)[0])


def _full_state(fields: dict[bytes, bytes]) -> bool:
    try:
        return is_full_state(fields)
    except (ValueError, KeyError, TypeError):
        return False
