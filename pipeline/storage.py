"""Files written so that a run killed at any moment leaves each one either old or new."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import platformdirs

from . import layout
from .errors import PodarchiveError

_CHUNK = 1 << 20
TEMPORARY_SUFFIX = ".tmp"
CACHE_ENV = "PODARCHIVE_CACHE_DIR"


def cache_dir() -> Path:
    """Where podarchive keeps what it can rebuild: $PODARCHIVE_CACHE_DIR or the user cache."""
    override = os.environ.get(CACHE_ENV)
    return Path(override) if override else Path(platformdirs.user_cache_dir("podarchive"))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder.

    A full disk or a read-only folder becomes a PodarchiveError naming the file.
    """
    path = Path(path)
    try:
        _write_through_temporary(path, data)
    except OSError as error:
        raise PodarchiveError(path, None, f"cannot write: {error.strerror or error}") from None


def _write_through_temporary(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMPORARY_SUFFIX, dir=path.parent)
    try:
        # mkstemp makes the file private; published files must be readable like any other.
        os.fchmod(fd, _FILE_MODE)
        with os.fdopen(fd, "wb") as tmp:
            tmp.write(data)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def write_if_changed(path: Path, data: bytes) -> bool:
    """Write atomically unless the file already holds these bytes (so re-runs keep mtimes)."""
    path = Path(path)
    try:
        if path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    atomic_write_bytes(path, data)
    return True


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def dump_json(data: Any) -> str:
    """Stable JSON: the same data always gives the same bytes, so re-runs change nothing."""
    return json.dumps(data, ensure_ascii=False, indent=2) + "\n"


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, dump_json(data))


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as source:
        while chunk := source.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def archive_cache(root: Path, kind: str) -> Path:
    """Where the cache keeps what it remembers of ``kind`` for the archive at ``root``
    (a name of its own per archive folder; without a suffix)."""
    return cache_dir() / kind / hashlib.sha256(str(Path(root).resolve()).encode()).hexdigest()[:16]


def write_to_cache(path: Path, data: bytes) -> None:
    """Atomically, as any file; a cache that cannot be written costs time, not correctness."""
    try:
        atomic_write_bytes(path, data)
    except PodarchiveError:
        pass


def file_digest(path: Path) -> str:
    """sha256 of a file, remembered under its stamp (device, inode, size, modification and
    change times to the nanosecond: no write leaves the change time as it was) in the
    cache: an archive of thousands of hour-long recordings reads each again only when it
    changes, not at every run."""
    stat = os.stat(path)
    stamp = (f"{os.path.abspath(path)} {stat.st_dev} {stat.st_ino} {stat.st_size} {stat.st_mtime_ns} "
             f"{stat.st_ctime_ns}")
    key = hashlib.sha256(stamp.encode()).hexdigest()
    remembered = cache_dir() / "digests" / key[:2] / key
    try:
        digest = remembered.read_text("ascii")
        if len(digest) == 64:
            return digest
    except (OSError, UnicodeDecodeError):
        pass
    digest = sha256_file(path)
    write_to_cache(remembered, digest.encode())
    return digest


def remembered(kind: str, key: str) -> bool:
    """Whether a verdict of ``kind`` was recorded under ``key``, a digest of everything it
    depends on (so it never needs forgetting: other inputs are another key)."""
    return (cache_dir() / "verdicts" / kind / key).exists()


def remember(kind: str, key: str) -> None:
    write_to_cache(cache_dir() / "verdicts" / kind / key, b"")


def remove_stale_temporaries(root: Path) -> list[Path]:
    """Delete the temporary files a killed run left behind, and its scratch folder (call
    it holding the archive lock)."""
    removed = []
    for folder in (layout.SOURCES_DIR, layout.FEED_DIR, layout.INDEX_DIR):
        for path in sorted((Path(root) / folder).rglob(f".*{TEMPORARY_SUFFIX}")):
            if path.is_file():
                path.unlink()
                removed.append(path)
    scratch = layout.scratch_dir(root)
    if scratch.exists():
        shutil.rmtree(scratch, ignore_errors=True)
        removed.append(scratch)
    return removed


@contextmanager
def scratch_files_in(folder: Path) -> Iterator[Path]:
    """For the block, every temporary file this process makes through ``tempfile`` (ours,
    ffmpeg's output, a library's) is made in ``folder``, which goes at its end. A run
    killed before then leaves them there, for the next run to remove, rather than in
    /tmp where nothing would."""
    folder = Path(folder)
    try:
        folder.mkdir(exist_ok=True)
    except OSError as error:
        raise PodarchiveError(folder, None, f"cannot write: {error.strerror or error}") from None
    previous, tempfile.tempdir = tempfile.tempdir, str(folder.resolve())
    try:
        yield folder
    finally:
        tempfile.tempdir = previous
        shutil.rmtree(folder, ignore_errors=True)
