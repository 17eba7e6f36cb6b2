"""SQLite database names → the file beside which folders and lock files are made."""

from __future__ import annotations

from pathlib import Path

import pytest

from aymurai.db.engine import sqlite_file


@pytest.mark.parametrize(
    ("database", "expected"),
    [
        ("./data/aymurai.db", Path("data/aymurai.db")),
        ("/srv/x.db", Path("/srv/x.db")),
        ("file:/srv/x.db?mode=ro&uri=true", Path("/srv/x.db")),
        ("file:/srv/x.db", Path("/srv/x.db")),
        (":memory:", None),
        ("file::memory:?cache=shared", None),
        (None, None),
    ],
)
def test_sqlite_file_names_the_database_file(database: str | None, expected: Path | None) -> None:
    """URI filenames name their file (never a folder called `file:`); memory has none."""
    assert sqlite_file(database) == expected
