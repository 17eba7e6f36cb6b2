"""Transcript deltas (pure): applying them in order rebuilds every document exactly."""

from __future__ import annotations

import random

import pytest

from aymurai.transcription.deltas import Delta, apply_delta, compute_delta, full_snapshot


def test_deltas_growing_tail_is_one_paragraph() -> None:
    """Only the changed last paragraph travels; from_index points at it."""
    delta = compute_delta(["a", "b", "c"], ["a", "b", "c d"])
    assert delta == Delta(from_index=2, paragraphs=("c d",), length=3)


def test_deltas_shrinking_document_truncates() -> None:
    """A shorter document is a delta with no paragraphs and the new length."""
    delta = compute_delta(["a", "b", "c"], ["a", "b"])
    assert delta == Delta(from_index=2, paragraphs=(), length=2)
    assert apply_delta(["a", "b", "c"], delta) == ["a", "b"]


def test_deltas_full_snapshot_needs_no_previous_state() -> None:
    """from_index 0 carries everything and applies to anything."""
    assert apply_delta(["x", "y", "z"], full_snapshot(["a"])) == ["a"]


def test_deltas_unchanged_document_is_empty() -> None:
    """Equal documents give an empty delta of the same length."""
    assert compute_delta(["a"], ["a"]) == Delta(1, (), 1)


def test_deltas_applied_in_order_rebuild_every_document() -> None:
    """Random edits (appends, rewrites of the tail, truncations): every step rebuilds exactly."""
    rng = random.Random(9)
    previous: list[str] = []
    rebuilt: list[str] = []
    for _ in range(2000):
        current = list(previous)
        action = rng.random()
        if action < 0.4 or not current:
            current.append(f"w{rng.randrange(100)}")
        elif action < 0.8:
            current[-1] = current[-1] + f" w{rng.randrange(100)}"
        elif action < 0.9:
            cut = rng.randrange(len(current))
            current = current[:cut] + [f"r{rng.randrange(100)}"]
        else:
            current = current[: rng.randrange(len(current) + 1)]
        delta = compute_delta(previous, current)
        rebuilt = apply_delta(rebuilt, delta)
        assert rebuilt == current
        previous = current


def test_deltas_that_do_not_fit_are_rejected() -> None:
    """A delta beyond the client's document says a frame was lost (ValueError)."""
    with pytest.raises(ValueError):
        apply_delta(["a"], Delta(from_index=3, paragraphs=("b",), length=4))
    with pytest.raises(ValueError):
        apply_delta(["a"], Delta(from_index=1, paragraphs=(), length=5))
