"""What the last complete run was made from, so that a run with nothing changed does
nothing: on an archive of thousands of episodes, checking stamps (sizes and modification
times) takes a fraction of a second where re-deriving every output takes minutes.

A run is skipped only when all of these are as the last run that completed without a
failure left them: every file under episodes/ and beside archive.toml (the archive's
inputs), every file under feed/ and index/ (its outputs: one edited or deleted by hand
is made again), podarchive's own code, the options of the run; and no episode's release
date or embargo has come since (``next_release``). Anything else, and the run does its
whole job, each stage skipping what it finds up to date.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import os
from pathlib import Path

from . import __version__, layout
from .errors import PodarchiveError
from .storage import atomic_write_text

STAMPS_FILE = ".podarchive.run.json"
_PACKAGE = Path(__file__).resolve().parent


def file_state(path: Path | str) -> list[int] | None:
    """A file's size and modification time, which change when it is edited; None where it
    is gone."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return [stat.st_size, stat.st_mtime_ns]


def _files(folder: Path, root: Path) -> dict[str, list[int]]:
    found = {}
    for top, folders, names in os.walk(folder):
        folders[:] = sorted(name for name in folders if name != "__pycache__")
        for name in names:
            path = os.path.join(top, name)
            if (state := file_state(path)) is not None:  # None: gone between listing and looking
                found[os.path.relpath(path, root)] = state
    return found


@functools.cache
def code_stamp() -> str:
    """podarchive's version and the stamps of its code, as one digest."""
    return hashlib.sha256(json.dumps([__version__, _files(_PACKAGE, _PACKAGE)]).encode()).hexdigest()


def _stamps(root: Path, options: dict) -> dict:
    root = Path(root)
    beside = {}
    for entry in os.scandir(root):
        if entry.is_file() and not entry.name.startswith(".podarchive"):
            stat = entry.stat()
            beside[entry.name] = [stat.st_size, stat.st_mtime_ns]
    return {
        "code": code_stamp(),
        "options": options,
        "inputs": {**beside, **_files(root / layout.SOURCES_DIR, root)},
        "outputs": {**_files(root / layout.FEED_DIR, root), **_files(root / layout.INDEX_DIR, root)},
    }


def forget_run(root: Path) -> None:
    """Before a run changes anything: until it completes, no earlier run vouches for the archive."""
    (Path(root) / STAMPS_FILE).unlink(missing_ok=True)


def record_run(root: Path, options: dict, *, now: dt.datetime, episodes: int, next_release: dt.datetime | None,
               warnings: list[PodarchiveError]) -> None:
    """What a run that completed without a failure at ``now`` left the archive as."""
    stamps = _stamps(root, options)
    stamps.update(at=now.isoformat(), episodes=episodes,
                  next_release=next_release.isoformat() if next_release else None,
                  warnings=[[str(w.path), w.field, w.message] for w in warnings])
    atomic_write_text(Path(root) / STAMPS_FILE, json.dumps(stamps, ensure_ascii=False))


def unchanged_since_last_run(root: Path, options: dict, now: dt.datetime) -> tuple[int, list[PodarchiveError]] | None:
    """The episodes the last run counted and the warnings it gave, when nothing has
    changed since it; None otherwise."""
    try:
        recorded = json.loads((Path(root) / STAMPS_FILE).read_text("utf-8"))
        release = recorded["next_release"]
        # The published view holds from the run's moment until the next release.
        if dt.datetime.fromisoformat(recorded["at"]) > now or (
                release is not None and dt.datetime.fromisoformat(release) <= now):
            return None
        if {key: recorded[key] for key in ("code", "options", "inputs", "outputs")} \
                != _stamps(root, options):
            return None
        return recorded["episodes"], [PodarchiveError(path, field, message)
                                      for path, field, message in recorded["warnings"]]
    except (OSError, ValueError, KeyError, TypeError):  # none, or not ours: the run does its job
        return None
