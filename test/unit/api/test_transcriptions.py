"""Resume ids of the events stream (pure): anything but a plain integer counts as unknown."""

from __future__ import annotations

import pytest

from aymurai.api.routes.transcriptions import parse_event_id


@pytest.mark.parametrize(
    ("raw", "parsed"),
    [
        ("7", 7),
        (" 1000000003 ", 1_000_000_003),
        ("9" * 19, int("9" * 19)),
        (None, None),
        ("", None),
        ("-1", None),
        ("1.5", None),
        ("abc", None),
        ("٣", None),  # a non-ASCII digit
        ("9" * 20, None),
        ("1-2", None),
    ],
)
def test_transcriptions_parse_event_id_only_plain_integers(
    raw: str | None, parsed: int | None
) -> None:
    """Decimal ASCII integers up to 19 digits; everything else → None (full snapshot)."""
    assert parse_event_id(raw) == parsed
