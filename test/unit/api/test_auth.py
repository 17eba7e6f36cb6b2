"""The signed token of a job's events_url."""

from __future__ import annotations

from aymurai.api.auth import EventTokens


def test_event_tokens_is_for_one_job_and_expires_after_the_end() -> None:
    """A token verifies for its job only, while it runs, and for the TTL after the end."""
    tokens = EventTokens(b"secret", ttl_seconds=60)
    token = tokens.sign("job1", now=1000)
    assert tokens.verify("job1", token, ended_at=None, now=1_000_000)  # still running
    assert not tokens.verify("job2", token, ended_at=None, now=1000)
    assert tokens.verify("job1", token, ended_at=2000, now=2059)
    assert not tokens.verify("job1", token, ended_at=2000, now=2061)
    assert tokens.verify("job1", token, ended_at=900, now=1059)  # issued after the end
    tampered = token[:-1] + ("A" if token[-1] != "A" else "B")
    assert not tokens.verify("job1", tampered, ended_at=None, now=1000)
    assert not tokens.verify("job1", "2000." + token.partition(".")[2], ended_at=None, now=3000)
    assert not EventTokens(b"other", ttl_seconds=60).verify("job1", token, ended_at=None)
    assert not tokens.verify("job1", "garbage", ended_at=None)
    assert not tokens.verify("job1", tokens.sign("job1", now=10_000), ended_at=None, now=1000)
