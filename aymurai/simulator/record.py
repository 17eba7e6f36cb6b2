"""What the simulator records about each session, for test assertions.

One ``SessionRecord`` per accepted WebSocket connection, appended in connection order. The session
code writes it as frames arrive and messages leave; tests only read it. Times are
``time.monotonic()`` seconds, comparable with the test's own monotonic clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aymurai.simulator.options import Fault


@dataclass
class SessionRecord:
    """Everything observable about one session, from the server's side."""

    path: str
    query: str
    profile: str
    fault: Fault | None
    opened_at: float
    pcm: bytearray = field(default_factory=bytearray, repr=False)
    """Every audio byte received before the empty end frame, in order (dropped bytes included)."""
    frame_sizes: list[int] = field(default_factory=list)
    """Size of every binary frame, the empty end frame and any frame after it included."""
    empty_frames: int = 0
    end_frame_at: float | None = None
    frames_after_end: int = 0
    """Binary frames received after the first empty frame (ignored, like the real server)."""
    text_frames: list[str] = field(default_factory=list)
    ready_to_stop_sent_at: float | None = None
    closed_at: float | None = None
    close_code: int | None = None
    """Code of the close frame received from the client; None if none arrived (e.g. TCP drop)."""
    max_lead_seconds: float = 0.0
    """Most audio received but not yet processed, measured as each frame arrived."""
    messages_sent: int = 0
    max_frame_bytes: int = 0
    fault_fired: bool = False
    """The session's fault fired (False when ``fault_times`` was used up by earlier sessions)."""
    dropped_pcm_bytes: int = 0
    """Received audio never processed: the 0.2.17 end-of-stream drop of the unprocessed tail."""

    @property
    def is_closed(self) -> bool:
        return self.closed_at is not None

    @property
    def audio_seconds(self) -> float:
        """Seconds of 16 kHz s16le mono audio received before the end frame."""
        return len(self.pcm) / 32_000
