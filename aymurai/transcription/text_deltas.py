"""Append-only text deltas from WLK's full-state snapshots (pure: no I/O, no asyncio).

OpenAI's streaming transcription sends `transcript.text.delta` events whose concatenation is the
final text, so a delta can never be taken back. WLK, by contrast, sends its whole state every
time, and part of it is volatile: `buffer_transcription` (the newest hypothesis) and
`buffer_diarization` get rewritten as more audio arrives. We therefore stream only *committed*
text — the words of the speech lines — and only while it extends what was already sent:

- the committed text of a snapshot is the words of its non-silence lines joined by single spaces
  (the same normalisation as `formats.plain_text`), so a line split or merged by diarization does
  not look like a change;
- a delta is the part of the committed text after what was already sent, when the committed text
  starts with it; otherwise (WLK revised or pruned committed text) nothing is sent until it does
  again;
- at the end the stored transcript (committed lines plus the end-of-stream tail that 0.2.17 leaves
  in its buffers) is the reference: whatever it adds after the sent text is the last delta.

Words are sent one *snapshot* late: a word goes out once a later snapshot still has it committed
and something after it, so the last committed word, the one most likely to be re-split or
re-punctuated, waits for the end-of-stream commit. Should the final text still not start with what
was sent (only a WLK that drops committed text does that), `finish` says so and the caller sends the
stored text as the `done` text; it never invents or removes words to hide the difference.
"""

from __future__ import annotations

from dataclasses import dataclass

from aymurai.transcription.wlk_protocol import StatusSnapshot


def committed_text(snapshot: StatusSnapshot | None) -> str:
    """The committed words of a snapshot (silence lines and buffers left out), space-joined.

    Args:
        snapshot: WLK's latest full state; None (nothing recognised yet) gives "".
    """
    if snapshot is None:
        return ""
    return " ".join(word for line in snapshot.speech_lines for word in line.text.split())


def _stable_prefix(text: str) -> str:
    """`text` without its last word (which a later snapshot may still extend or re-punctuate)."""
    cut = text.rfind(" ")
    return text[:cut] if cut > 0 else ""


@dataclass(frozen=True)
class Finish:
    """The end of a stream: the last delta, and whether the deltas add up to `text`."""

    delta: str
    text: str
    consistent: bool


class CommittedTextDeltas:
    """Turns successive committed texts into append-only deltas; one instance per stream."""

    def __init__(self) -> None:
        self.sent = ""

    def _extend_to(self, target: str) -> str:
        if not target.startswith(self.sent) or len(target) <= len(self.sent):
            return ""
        delta = target[len(self.sent) :]
        self.sent = target
        return delta

    def advance(self, committed: str) -> str:
        """The new delta for this committed text ("" when nothing new can be sent yet).

        The last word is held back; see the module docstring.
        """
        stable = _stable_prefix(committed)
        if self.sent and not stable.startswith(self.sent + " "):
            return ""  # nothing new, or WLK revised text we already sent: wait
        return self._extend_to(stable)

    def finish(self, final_text: str) -> Finish:
        """The last delta, given the stored transcript's text (`formats.plain_text`).

        `consistent` is False when the final text does not start with what was sent; the delta is
        then "" and the caller should report `text` (the stored transcript) as authoritative.
        """
        if final_text == self.sent:
            return Finish("", final_text, True)
        if self.sent and not final_text.startswith(self.sent + " "):
            return Finish("", final_text, False)
        return Finish(self._extend_to(final_text), final_text, True)
