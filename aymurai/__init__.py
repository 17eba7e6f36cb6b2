"""aymurai: an SSE transcription gateway in front of a WhisperLiveKit server.

Importing the package has no side effects; the app is built by ``aymurai.api.main.create_app``.
"""

__version__ = "0.1.0"
