"""Snapshot → paragraphs: what a person reads, built from one WLK status snapshot.

Silence lines (speaker −2) never reach the client. The not-yet-committed tail
(`buffer_diarization` + `buffer_transcription`) is shown too: a person watching sees words as they
come, and on 0.2.17 the final snapshot keeps the last words there, so dropping it would lose the end
of the audio. The tail joins the last speech paragraph unless a silence line came after it, in which
case it starts a new paragraph after the pause; joined to the last paragraph, it extends that
paragraph's end to `tail_end` (the words run up to where WLK has heard, not to its last commit).
The pipeline passes where the sound WLK has processed stops, not its processed position: inside a
pause that position runs on, and a published end never comes back (`StreamTimeline`).

Text without a single letter or digit is dropped (issue 10): Whisper hallucinates runs of
punctuation (". . . .") in pauses of compressed audio, and WLK passes them on as lines or tail.
`keep_punctuation_only=True` (TRANSCRIBE_KEEP_PUNCTUATION_ONLY) keeps them.
"""

from __future__ import annotations

from aymurai.transcription.schemas import ASRParagraph, speaker_id_for
from aymurai.transcription.wlk_protocol import StatusSnapshot


def has_words(text: str) -> bool:
    """True when `text` holds at least one letter or digit (in any script)."""
    return any(c.isalnum() for c in text)


def build_paragraphs(
    snapshot: StatusSnapshot | None, *, tail_end: float, keep_punctuation_only: bool = False
) -> list[ASRParagraph]:
    """Paragraphs of a snapshot, tail included.

    Args:
        snapshot: the latest full state from WLK; None means nothing was recognised yet.
        tail_end: seconds up to which the tail's words run: the end of a paragraph made of tail
            text only, and the least end of the paragraph the tail joins.
        keep_punctuation_only: keep lines and tails without a letter or digit.
    """
    if snapshot is None:
        return []
    paragraphs: list[ASRParagraph] = []
    last_line_is_silence = False
    silence_end = 0.0
    for line in snapshot.lines:
        if line.is_silence:
            last_line_is_silence = True
            silence_end = max(silence_end, line.end)
            continue
        text = line.text.strip()
        if not text or not (keep_punctuation_only or has_words(text)):
            continue
        last_line_is_silence = False
        paragraphs.append(
            ASRParagraph(
                paragraph_id=f"p{len(paragraphs)}",
                speaker_no=line.speaker,
                speaker_id=speaker_id_for(line.speaker),
                start=line.start,
                end=line.end,
                text=text,
                language=line.language,
            )
        )
    tail = snapshot.tail_text
    if not tail or not (keep_punctuation_only or has_words(tail)):
        return paragraphs
    if paragraphs and not last_line_is_silence:
        last = paragraphs[-1]
        paragraphs[-1] = last.model_copy(
            update={"text": f"{last.text} {tail}", "end": max(last.end, tail_end)}
        )
    else:
        speaker = paragraphs[-1].speaker_no if paragraphs else 1
        start = max(silence_end, paragraphs[-1].end if paragraphs else 0.0)
        paragraphs.append(
            ASRParagraph(
                paragraph_id=f"p{len(paragraphs)}",
                speaker_no=speaker,
                speaker_id=speaker_id_for(speaker),
                start=start,
                end=max(start, tail_end),
                text=tail,
            )
        )
    return paragraphs
