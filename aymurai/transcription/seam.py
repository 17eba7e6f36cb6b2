"""Joining the transcripts of a resumed job: earlier WLK sessions, then the one that took over.

Pure (no I/O). When a session fails mid-file the job reconnects and resends audio from a *seek
point* a little before the end of what WLK had placed in `lines`, so the new session hears the
seam with some context. The two sessions then both transcribe the overlap, and we decide who owns
which word by time, never by matching text (text matching drops words that genuinely repeat:
"no, no, no"):

    file time ──────────────────────────────────────────────────────────────────▶
    earlier sessions  ████████████████████████████████████████│ L (end of their last line)
    new session                                 seek ├────────┼──────────────────
                                                         midpoint
    kept               ◀── earlier sessions own ──────▶│◀── the new session owns ──▶

- L is the end of the last line (silence lines included, buffers not) of the last snapshot before
  the failure, in file time; the seek point is L minus the overlap (never before 0), the midpoint
  lies halfway between them.
- WLK times lines, not words: a word's time is estimated by spreading its line's words evenly over
  the line's start–end; each word goes to the side its estimated centre falls on, exactly on the
  midpoint to the new session. A line cut in two keeps the estimated times of its remaining
  words, so cutting again at a later seam gives the same answer.
- Words that were only in WLK's buffers before the failure are dropped: the new session hears that
  audio again and transcribes it.
- The seam starts no new line: when the earlier sessions' last kept line and the new session's
  first line are both speech of the same speaker, they are one line, as one WLK session would have
  made them. Paragraph times never go backwards on the wire (`StreamTimeline`), so the paragraph
  cut at the seam keeps the end it was published with before the failure (often the tail's end,
  well past the midpoint); continued by the new session's words, that end is covered by audio its
  words really span, and the stored times match a run without the failure (issue 11).
- Every time of a session is shifted by its seek point (the file position of the first sample sent
  to it), so the merged snapshot is in file time. Until the first failure the merge is the
  identity: a job that never resumes sees WLK's snapshots untouched.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from aymurai.transcription.wlk_protocol import StatusSnapshot, TranscriptLine


@dataclass(frozen=True)
class Seam:
    """Where a new session takes over, in seconds of the file."""

    seek_seconds: float
    """File position of the first sample resent; every time of the new session is shifted by it."""
    midpoint_seconds: float
    """Earlier sessions own the audio before it, the new session the audio from it on."""


def plan_seam(last_line_end_seconds: float, *, overlap_seconds: float) -> Seam:
    """The seek point and midpoint for a resume after a failure at `last_line_end_seconds` (L)."""
    end = max(0.0, last_line_end_seconds)
    seek = max(0.0, end - max(0.0, overlap_seconds))
    return Seam(seek_seconds=seek, midpoint_seconds=(seek + end) / 2)


def _ms(seconds: float) -> float:
    """Whole milliseconds: wire times are, and float noise (8.0 + 1.23) must not show."""
    return round(seconds, 3)


def shift_line(line: TranscriptLine, offset_seconds: float) -> TranscriptLine:
    if offset_seconds == 0:
        return line
    return replace(line, start=_ms(line.start + offset_seconds), end=_ms(line.end + offset_seconds))


def _word_bounds(line: TranscriptLine, count: int) -> list[tuple[float, float]]:
    """Estimated (start, end) of each of `count` words spread evenly over the line."""
    step = (line.end - line.start) / count
    return [(line.start + i * step, line.start + (i + 1) * step) for i in range(count)]


def _split_line(
    line: TranscriptLine, midpoint: float
) -> tuple[TranscriptLine | None, TranscriptLine | None]:
    """The part of `line` before `midpoint` and the part from it on (None when empty)."""
    words = line.text.split()
    if line.is_silence or not words:
        # No words to place: a pause (or an empty line) is cut at the midpoint like audio.
        before = replace(line, end=min(line.end, midpoint)) if line.start < midpoint else None
        after = replace(line, start=max(line.start, midpoint)) if line.end > midpoint else None
        if line.start == line.end:  # a point: it belongs to one side only
            return (line, None) if line.start < midpoint else (None, line)
        return before, after
    bounds = _word_bounds(line, len(words))
    # Centre strictly before the midpoint: earlier sessions; on it or after: the new session.
    cut = sum(1 for start, end in bounds if (start + end) / 2 < midpoint)
    if cut == 0:
        return None, line
    if cut == len(words):
        return line, None
    cut_time = _ms(bounds[cut - 1][1])
    before = replace(line, text=" " + " ".join(words[:cut]), end=cut_time)
    after = replace(line, text=" " + " ".join(words[cut:]), start=cut_time)
    return before, after


def lines_before(lines: Iterable[TranscriptLine], midpoint: float) -> tuple[TranscriptLine, ...]:
    """What earlier sessions keep: every word whose estimated centre is before `midpoint`."""
    kept = (_split_line(line, midpoint)[0] for line in lines)
    return tuple(line for line in kept if line is not None)


def lines_from(lines: Iterable[TranscriptLine], midpoint: float) -> tuple[TranscriptLine, ...]:
    """What a new session keeps: every word whose estimated centre is at or after `midpoint`."""
    kept = (_split_line(line, midpoint)[1] for line in lines)
    return tuple(line for line in kept if line is not None)


def _words_from(words: list[str], start: float, end: float, midpoint: float) -> int:
    """How many of `words`, spread over start–end, have their centre before `midpoint`."""
    if not words:
        return 0
    step = (end - start) / len(words)
    return sum(1 for i in range(len(words)) if start + (i + 0.5) * step < midpoint)


def join_at_seam(
    kept: tuple[TranscriptLine, ...], new: tuple[TranscriptLine, ...]
) -> tuple[TranscriptLine, ...]:
    """`kept` then `new`, the two lines that meet at the seam joined when one speaker speaks on."""
    if not kept or not new:
        return kept + new
    last, first = kept[-1], new[0]
    if (
        last.is_silence
        or first.is_silence
        or last.speaker != first.speaker
        or not last.text.strip()
        or not first.text.strip()
    ):
        return kept + new
    joined = replace(
        last, text=f"{last.text.rstrip()} {first.text.strip()}", end=max(last.end, first.end)
    )
    return (*kept[:-1], joined, *new[1:])


def last_line_end(lines: Iterable[TranscriptLine]) -> float:
    """End of the last line, silence lines included (0 when there is none)."""
    return max((line.end for line in lines), default=0.0)


class SeamMerger:
    """The transcript of one job across its sessions, in file time.

    `merge()` turns the current session's snapshot into the job's snapshot; `resume()` records a
    failure and says where the next session starts.
    """

    def __init__(self) -> None:
        self._kept: tuple[TranscriptLine, ...] = ()
        self._seam: Seam | None = None

    @property
    def offset_seconds(self) -> float:
        """File position of the current session's first sample."""
        return 0.0 if self._seam is None else self._seam.seek_seconds

    @property
    def seam(self) -> Seam | None:
        """The latest seam, None before any resume."""
        return self._seam

    def merge(
        self, snapshot: StatusSnapshot | None, *, processed_seconds: float = 0.0
    ) -> StatusSnapshot | None:
        """The job's snapshot: kept lines of earlier sessions, then this session's share.

        Args:
            snapshot: the current session's latest snapshot (session time), None if none yet.
            processed_seconds: audio this session has processed (or, at the end, received), in
                session time: the buffers are spread between the end of its lines and this.
        """
        seam = self._seam
        if seam is None:
            return snapshot
        if snapshot is None:
            if not self._kept:
                return None
            return StatusSnapshot(status="active_transcription", lines=self._kept)
        offset = seam.seek_seconds
        shifted = [shift_line(line, offset) for line in snapshot.lines]
        new_lines = lines_from(shifted, seam.midpoint_seconds)
        buffer_diarization, buffer_transcription = self._buffers_from(
            snapshot, shifted, processed_until=offset + processed_seconds
        )
        return replace(
            snapshot,
            lines=join_at_seam(self._kept, new_lines),
            buffer_diarization=buffer_diarization,
            buffer_transcription=buffer_transcription,
        )

    def _buffers_from(
        self, snapshot: StatusSnapshot, shifted: list[TranscriptLine], *, processed_until: float
    ) -> tuple[str, str]:
        """The buffer words of the new session at or after the midpoint (estimated times)."""
        assert self._seam is not None
        diarization = snapshot.buffer_diarization.split()
        transcription = snapshot.buffer_transcription.split()
        speech_end = max(
            (line.end for line in shifted if not line.is_silence and line.text.strip()),
            default=self._seam.seek_seconds,
        )
        drop = _words_from(
            diarization + transcription,
            speech_end,
            max(speech_end, processed_until),
            self._seam.midpoint_seconds,
        )
        dropped_diarization = min(drop, len(diarization))
        diarization = diarization[dropped_diarization:]
        transcription = transcription[drop - dropped_diarization :]
        # WLK's buffers start with a space when non-empty; keep that shape.
        return (
            " " + " ".join(diarization) if diarization else "",
            " " + " ".join(transcription) if transcription else "",
        )

    def resume(
        self, last_merged: StatusSnapshot | None, *, sent_seconds: float, overlap_seconds: float
    ) -> Seam:
        """Record a failure of the current session; return where the next one starts.

        Args:
            last_merged: the job's snapshot (`merge()`'s result) before the failure.
            sent_seconds: audio sent to the failed session (session time). L never lies beyond
                it: 0.2.17 gives an ongoing pause the wall clock as its end.
            overlap_seconds: TRANSCRIBE_WS_RESUME_OVERLAP_SECONDS.
        """
        lines = last_merged.lines if last_merged is not None else self._kept
        # Earlier sessions really heard what they kept; the failed one heard what we sent it.
        heard_until = max(self.offset_seconds + sent_seconds, last_line_end(self._kept))
        end = min(last_line_end(lines), heard_until)
        seam = plan_seam(end, overlap_seconds=overlap_seconds)
        self._kept = lines_before(lines, seam.midpoint_seconds)
        self._seam = seam
        return seam
