"""WhisperLiveKit protocol simulator: a WLK ``/asr`` server with synthetic transcripts, no GPU.

Used by the gateway's end-to-end tests, and runnable on its own (``python -m aymurai.simulator``)
to try the gateway without a GPU. Transcripts are synthetic but depend on the audio content: each
0.5 s window of sound becomes a word naming its dominant frequency (``"f440"``), so sending the
wrong PCM yields the wrong words.

Modules, pure ones first: ``recognizer`` (audio → words), ``transcript`` (words → lines and
buffers), ``protocol`` (state → JSON per WLK version), ``options`` (faults and per-session
knobs), ``record`` (what is recorded), ``session`` (one connection), ``server`` (the socket
server). Nothing here imports the gateway, and the gateway never imports this package.
"""

from aymurai.simulator.options import Fault
from aymurai.simulator.protocol import PROFILES
from aymurai.simulator.record import SessionRecord
from aymurai.simulator.server import WLKSimulator

__all__ = ["PROFILES", "Fault", "SessionRecord", "WLKSimulator"]
