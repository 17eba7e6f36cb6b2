"""`aymurai-asr`: a command-line client that speaks only the gateway's public HTTP API.

Modules: `stream` (HTTP + SSE, no terminal), `formats` (pure renderers), `live` (the terminal
view), `main` (argparse, exit codes). Imports point one way: `main → live, stream, formats`.
The client never imports the gateway's server code; it shares only `transcription.schemas`.
"""
