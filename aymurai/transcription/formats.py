"""Pure renderers: ASRDocument → JSON, plain text, SubRip (SRT) or WebVTT.

Every function takes a document and returns a string; there is no I/O here, so the web page's
JavaScript renderers (`aymurai/web/static/formats.js`) can be checked against these by eye. The CLI
and the OpenAI-compatible API (`api/routes/openai.py`) both render through this module.

Choices, and why:
- Subtitles skip paragraphs whose text is empty: an SRT cue with no text ends the file for some
  parsers, and a WebVTT cue with no text is pointless.
- A cue's end is never before its start (clamped), and negative times become 0, so a glitch in
  upstream timestamps cannot make the file invalid.
- Line breaks inside a paragraph are folded into spaces: a blank line ends a cue in both formats.
- The speaker goes in front of the text ("Ana: …"), not in a WebVTT `<v Ana>` voice span, because
  browsers and most players do not display voice names and SRT has no equivalent. The OpenAI API
  asks for no label unless the transcript is diarized (`label_speakers=False`): OpenAI's own
  subtitles carry the words only.
- `plain_text` is the transcript as one string, words separated by single spaces: the same
  normalisation as `transcription/text_deltas.py`, so streamed text and stored text compare equal.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from aymurai.transcription.schemas import ASRDocument, ASRParagraph

Format = Literal["json", "txt", "srt", "vtt"]
FORMATS: tuple[Format, ...] = ("json", "txt", "srt", "vtt")


def speaker_label(paragraph: ASRParagraph) -> str:
    """The name a reader sees: the reviewer's name when set, else "Speaker N"."""
    if paragraph.speaker_name and paragraph.speaker_name.strip():
        return paragraph.speaker_name.strip()
    return f"Speaker {paragraph.speaker_no}"


def format_clock(seconds: float) -> str:
    """`HH:MM:SS`, hours unbounded (a 30-hour hearing is `30:00:00`)."""
    total = int(max(seconds, 0.0))
    return f"{total // 3600:02d}:{total // 60 % 60:02d}:{total % 60:02d}"


def _split_millis(seconds: float) -> tuple[int, int, int, int]:
    millis = round(max(seconds, 0.0) * 1000)
    return millis // 3_600_000, millis // 60_000 % 60, millis // 1000 % 60, millis % 1000


def format_srt_time(seconds: float) -> str:
    hours, minutes, secs, millis = _split_millis(seconds)
    return f"{hours:02d}:{minutes:02d}:{secs:02d},{millis:03d}"


def format_vtt_time(seconds: float) -> str:
    hours, minutes, secs, millis = _split_millis(seconds)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}.{millis:03d}"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def plain_text(document: ASRDocument) -> str:
    """Every paragraph's words, in order, joined by single spaces."""
    return " ".join(word for paragraph in document.document for word in paragraph.text.split())


def is_diarized(document: ASRDocument) -> bool:
    """Whether speakers tell anything: more than one speaker, or a reviewer named one.

    WLK without diarization calls everyone speaker 1; it never says whether diarization is on.
    """
    return any(p.speaker_no != 1 or (p.speaker_name or "").strip() for p in document.document)


def render_json(document: ASRDocument) -> str:
    return document.model_dump_json(indent=2) + "\n"


def render_txt(document: ASRDocument) -> str:
    """One paragraph per line: `[HH:MM:SS] Speaker N: text`."""
    lines = [
        f"[{format_clock(p.start)}] {speaker_label(p)}: {_one_line(p.text)}"
        for p in document.document
    ]
    return "".join(line + "\n" for line in lines)


def _cues(document: ASRDocument, *, label_speakers: bool) -> list[tuple[float, float, str]]:
    cues = []
    for paragraph in document.document:
        text = _one_line(paragraph.text)
        if not text:
            continue
        start = max(paragraph.start, 0.0)
        if label_speakers:
            text = f"{speaker_label(paragraph)}: {text}"
        cues.append((start, max(paragraph.end, start), text))
    return cues


def render_srt(document: ASRDocument, *, label_speakers: bool = True) -> str:
    blocks = [
        f"{index}\n{format_srt_time(start)} --> {format_srt_time(end)}\n{text}\n"
        for index, (start, end, text) in enumerate(
            _cues(document, label_speakers=label_speakers), start=1
        )
    ]
    return "\n".join(blocks)


def _escape_vtt(text: str) -> str:
    # "-->" may not appear in cue text; escaping ">" covers it.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def render_vtt(document: ASRDocument, *, label_speakers: bool = True) -> str:
    blocks = [
        f"{format_vtt_time(start)} --> {format_vtt_time(end)}\n{_escape_vtt(text)}\n"
        for start, end, text in _cues(document, label_speakers=label_speakers)
    ]
    return "WEBVTT\n\n" + "\n".join(blocks)


RENDERERS: dict[Format, Callable[[ASRDocument], str]] = {
    "json": render_json,
    "txt": render_txt,
    "srt": render_srt,
    "vtt": render_vtt,
}


def render(document: ASRDocument, fmt: Format) -> str:
    """Render `document` in `fmt`; the result ends with a newline unless it is empty."""
    return RENDERERS[fmt](document)
