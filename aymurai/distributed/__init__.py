"""Distributed mode: several gateway replicas sharing one Redis and one SQL database.

Each module implements, on Redis, one of the small async interfaces the transcription package
defines with an in-memory implementation (STYLE §9): the job event log (`events.py`; its
entries, `entries.py`; other replicas follow it with `event_mirror.py`), admission
and its global queue (`admission.py`), the slots and health of the WLK servers (`pool_state.py`),
the claims that make identical uploads share a session and the ownership of jobs (`jobs.py`).
`connection.py` holds the client and the health of Redis itself.

Imports point one way: api → distributed → transcription. Nothing here is used unless
TRANSCRIBE_REDIS_URL is set.
"""
