"""The spool folder: where uploads are written while they arrive, and who may delete what there.

Every gateway process takes an instance id at startup and holds an exclusive `flock` on its own
lock file, ``aymurai-gateway-<id>.lock``, for as long as it runs. Its uploads are named
``aymurai-upload-<id>-<random>.audio``. At startup `Spool.remove_orphans` deletes the uploads of
instances that no longer hold their lock (killed with ``kill -9``, crashed, or from before a
reboot), and nothing else:

* files without our naming are never touched, so the folder may be a shared temporary folder;
* the uploads of another live gateway sharing the folder are kept: its lock is held (the kernel
  drops a `flock` when its process dies, however it dies);
* paths in `keep` are kept even when orphaned (spooled files of jobs that survive a restart).

We lock one file per process, not one per upload, because an upload changes hands (receiver, then
the job that decodes it) and a per-file lock would have to follow it. We do not name files with
pid and boot id: in containers every gateway is pid 1, and another container's live pid cannot be
checked. The lock file is created under a temporary name, locked, then renamed into place, so no
other instance ever sees it unlocked.

The folder is also checked for readiness (exists, writable, enough free space) and counts the
uploads in progress, which are capped.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Collection, Iterator
from pathlib import Path

from aymurai.errors import SpoolUnavailableError, TooManyUploadsError

__all__ = ["Spool"]

logger = logging.getLogger(__name__)

UPLOAD_PREFIX = "aymurai-upload-"
UPLOAD_SUFFIX = ".audio"
LOCK_PREFIX = "aymurai-gateway-"
LOCK_SUFFIX = ".lock"
_UPLOAD_NAME = re.compile(r"^aymurai-upload-([0-9a-f]{32})-[A-Za-z0-9_]+\.audio$")
_LOCK_NAME = re.compile(r"^\.?aymurai-gateway-([0-9a-f]{32})\.lock(\.tmp)?$")
# Seconds a client is told to wait when too many uploads are in progress.
RETRY_AFTER_SECONDS = 5


class Spool:
    """The spool folder of one gateway process.

    Args:
        directory: the folder; None means the system temporary folder.
        min_free_bytes: below this much free space the folder counts as full.
        max_uploads: uploads that may be in progress at once.
    """

    def __init__(self, directory: str | None, *, min_free_bytes: int, max_uploads: int) -> None:
        self.directory = Path(directory) if directory else Path(tempfile.gettempdir())
        self.min_free_bytes = min_free_bytes
        self.max_uploads = max_uploads
        self.instance_id = uuid.uuid4().hex
        self.uploads_in_progress = 0
        self._lock_fd: int | None = None

    @property
    def lock_path(self) -> Path:
        return self.directory / f"{LOCK_PREFIX}{self.instance_id}{LOCK_SUFFIX}"

    # --- lifetime -------------------------------------------------------------------------
    def open(self) -> None:
        """Create the folder if needed and take this instance's lock (blocking; at startup).

        A failure is logged, not raised: the gateway still serves cached results and `/readyz`
        reports the spool as not ready.
        """
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            staging = self.directory / f".{LOCK_PREFIX}{self.instance_id}{LOCK_SUFFIX}.tmp"
            fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.rename(staging, self.lock_path)
        except OSError as exc:
            logger.error("spool folder %s is not usable: %s", self.directory, exc)
            return
        self._lock_fd = fd

    def close(self) -> None:
        """Release the lock and remove the lock file (at shutdown)."""
        if self._lock_fd is None:
            return
        with contextlib.suppress(OSError):
            self.lock_path.unlink()
        os.close(self._lock_fd)
        self._lock_fd = None

    def remove_orphans(self, keep: Collection[Path] = ()) -> list[Path]:
        """Delete uploads left by gateways that are no longer running; return what was deleted.

        Args:
            keep: paths never deleted, orphaned or not (spooled files of unfinished jobs).
        """
        kept = {os.path.realpath(path) for path in keep}
        try:
            names = os.listdir(self.directory)
        except OSError as exc:
            logger.warning("cannot list spool folder %s: %s", self.directory, exc)
            return []
        # Listed before locks are checked: an instance renames its lock into place before it
        # creates any upload, so every upload seen here has its lock file in place if it is live.
        uploads: dict[str, list[Path]] = {}
        for name in names:
            match = _UPLOAD_NAME.match(name)
            if match:
                uploads.setdefault(match.group(1), []).append(self.directory / name)
        removed: list[Path] = []
        for instance, paths in uploads.items():
            if instance == self.instance_id:
                continue
            with self._holding_dead_lock(instance) as dead:
                if not dead:
                    continue
                for path in paths:
                    if os.path.realpath(path) in kept:
                        continue
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()
                        removed.append(path)
        self._remove_dead_lock_files(names)
        if removed:
            logger.info("removed %d orphaned uploads from %s", len(removed), self.directory)
        return removed

    @contextlib.contextmanager
    def _holding_dead_lock(self, instance: str) -> Iterator[bool]:
        """Yield True while holding `instance`'s lock if its process is gone, else False."""
        path = self.directory / f"{LOCK_PREFIX}{instance}{LOCK_SUFFIX}"
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            yield True  # it never locked, or it shut down cleanly and left files behind
            return
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False  # that gateway is alive
                return
            yield True
        finally:
            os.close(fd)

    def _remove_dead_lock_files(self, names: list[str]) -> None:
        for name in names:
            match = _LOCK_NAME.match(name)
            if not match or match.group(1) == self.instance_id:
                continue
            path = self.directory / name
            try:
                fd = os.open(path, os.O_RDONLY)
            except OSError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                path.unlink()
            except OSError:
                pass  # locked: alive (or already gone)
            finally:
                os.close(fd)

    # --- uploads --------------------------------------------------------------------------
    def problem(self) -> str | None:
        """None when uploads can be spooled, else `"SPOOL_UNAVAILABLE: why"` (for readiness)."""
        code = SpoolUnavailableError.code
        if self._lock_fd is None:
            return f"{code}: the spool folder {self.directory} could not be set up"
        if not self.directory.is_dir():
            return f"{code}: the spool folder {self.directory} is missing"
        if not os.access(self.directory, os.W_OK | os.X_OK):
            return f"{code}: the spool folder {self.directory} is not writable"
        try:
            free = shutil.disk_usage(self.directory).free
        except OSError as exc:
            return f"{code}: {exc.strerror}"
        if free < self.min_free_bytes:
            return f"{code}: {free} bytes free in {self.directory}, under {self.min_free_bytes}"
        return None

    @contextlib.contextmanager
    def reserve_upload(self) -> Iterator[None]:
        """Count one upload in progress for the block.

        Raises:
            TooManyUploadsError: `max_uploads` are already in progress.
            SpoolUnavailableError: the folder is missing, unwritable or full.
        """
        if self.uploads_in_progress >= self.max_uploads:
            raise TooManyUploadsError(RETRY_AFTER_SECONDS)
        problem = self.problem()
        if problem is not None:
            logger.error("cannot accept an upload: %s", problem)
            raise SpoolUnavailableError()
        self.uploads_in_progress += 1
        try:
            yield
        finally:
            self.uploads_in_progress -= 1

    def create_file(self) -> tuple[int, Path]:
        """A new empty upload file with this instance's naming: (open fd, path).

        Raises:
            SpoolUnavailableError: it cannot be created (folder removed, disk full, …).
        """
        try:
            fd, name = tempfile.mkstemp(
                prefix=f"{UPLOAD_PREFIX}{self.instance_id}-",
                suffix=UPLOAD_SUFFIX,
                dir=self.directory,
            )
        except OSError as exc:
            logger.error("cannot create a spool file in %s: %s", self.directory, exc)
            raise SpoolUnavailableError() from exc
        return fd, Path(name)
