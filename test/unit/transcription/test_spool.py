"""Spool folder: which leftovers are removed at startup, and which are never touched."""

from __future__ import annotations

import fcntl
import os
import uuid
from pathlib import Path

import pytest

from aymurai.errors import SpoolUnavailableError, TooManyUploadsError
from aymurai.transcription.spool import Spool


def _spool(directory: Path, **kwargs: int) -> Spool:
    kwargs.setdefault("min_free_bytes", 0)
    kwargs.setdefault("max_uploads", 4)
    spool = Spool(str(directory), **kwargs)
    spool.open()
    return spool


def _upload_of(directory: Path, instance: str, tag: str = "abc") -> Path:
    path = directory / f"aymurai-upload-{instance}-{tag}.audio"
    path.write_bytes(b"x")
    return path


def test_spool_remove_orphans_keeps_live_kept_and_foreign_files(tmp_path: Path) -> None:
    """Dead instances' uploads go; a live instance's, `keep` paths and foreign files stay."""
    live_instance, dead_instance, lockless = (uuid.uuid4().hex for _ in range(3))
    live_lock = tmp_path / f"aymurai-gateway-{live_instance}.lock"
    live_fd = os.open(live_lock, os.O_RDWR | os.O_CREAT)
    fcntl.flock(live_fd, fcntl.LOCK_EX)
    (tmp_path / f"aymurai-gateway-{dead_instance}.lock").write_bytes(b"")
    live = _upload_of(tmp_path, live_instance)
    dead = _upload_of(tmp_path, dead_instance)
    dead_kept = _upload_of(tmp_path, dead_instance, "kept")
    orphan = _upload_of(tmp_path, lockless)
    foreign = [tmp_path / "other.tmp", tmp_path / "aymurai-upload-x.audio"]
    for path in foreign:
        path.write_bytes(b"x")
    spool = _spool(tmp_path)
    own_fd, own = spool.create_file()
    os.close(own_fd)
    try:
        removed = spool.remove_orphans(keep={dead_kept})
    finally:
        spool.close()
        os.close(live_fd)
    assert sorted(removed) == sorted([dead, orphan])
    assert live.exists() and dead_kept.exists() and own.exists()
    assert all(path.exists() for path in foreign)
    assert not (tmp_path / f"aymurai-gateway-{dead_instance}.lock").exists()
    assert live_lock.exists()


def test_spool_reserve_upload_caps_uploads_in_progress(tmp_path: Path) -> None:
    """Past `max_uploads` in progress, TooManyUploadsError; a slot frees when one ends."""
    spool = _spool(tmp_path, max_uploads=1)
    with spool.reserve_upload():
        with pytest.raises(TooManyUploadsError), spool.reserve_upload():
            pass
    with spool.reserve_upload():
        assert spool.uploads_in_progress == 1
    spool.close()


def test_spool_problem_reports_missing_and_full_folders(tmp_path: Path) -> None:
    """A missing folder or one under the free-space floor is a SPOOL_UNAVAILABLE problem."""
    spool = _spool(tmp_path / "spool")
    assert spool.problem() is None
    spool.min_free_bytes = 2**62
    assert (spool.problem() or "").startswith("SPOOL_UNAVAILABLE")
    spool.min_free_bytes = 0
    os.rename(tmp_path / "spool", tmp_path / "away")
    assert "missing" in (spool.problem() or "")
    with pytest.raises(SpoolUnavailableError):
        spool.create_file()
    spool.close()
