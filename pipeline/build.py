"""Run the stages in order over an archive, under one lock, skipping what is up to date."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from filelock import FileLock, Timeout

from .archive import load_archive
from .errors import PodarchiveError
from .model import Archive
from .transcribe import (
    DEFAULT_OPTIONS,
    Outcome,
    TranscribeOptions,
    plan,
    read_transcript,
    transcribe_archive,
)

LOCK_FILE = ".podarchive.lock"
LOCK_TIMEOUT_SECONDS = 10.0


@dataclass
class RunReport:
    archive: Archive
    problems: list[PodarchiveError] = field(default_factory=list)
    transcribed: list[Outcome] = field(default_factory=list)

    @property
    def failures(self) -> list[PodarchiveError]:
        failed = [o.error for o in self.transcribed if o.status == "failed" and o.error]
        return [*self.problems, *failed]

    @property
    def ok(self) -> bool:
        return not self.failures


def locked(root: Path) -> FileLock:
    """The archive's lock, held: two runs interleaving writes could mix their outputs."""
    lock = FileLock(str(Path(root) / LOCK_FILE), timeout=LOCK_TIMEOUT_SECONDS)
    try:
        lock.acquire()
    except Timeout:
        raise PodarchiveError(Path(root) / LOCK_FILE, None,
                              "another podarchive run holds this archive; try again when it ends") from None
    return lock


def check(root: Path) -> RunReport:
    """Every problem in the archive's metadata and transcripts, without changing anything."""
    archive = load_archive(root)
    report = RunReport(archive, problems=list(archive.problems))
    for episode in archive.episodes:
        try:
            read_transcript(episode)
        except PodarchiveError as error:
            report.problems.append(error)
    return report


def transcribe(
    root: Path,
    options: TranscribeOptions = DEFAULT_OPTIONS,
    *,
    slugs: list[str] | None = None,
    force: bool = False,
    on_start: Callable[[float], None] | None = None,
    progress: Callable[[float], None] | None = None,
) -> RunReport:
    """Transcribe the named episodes (all when none) that are stale."""
    with locked(root):
        archive = load_archive(root)
        report = RunReport(archive, problems=list(archive.problems))
        report.transcribed = transcribe_archive(
            archive, plan(archive, slugs), options,
            force=force, on_start=on_start, progress=progress,
        )
    return report


def run(
    root: Path,
    options: TranscribeOptions = DEFAULT_OPTIONS,
    *,
    force: bool = False,
    on_start: Callable[[float], None] | None = None,
    progress: Callable[[float], None] | None = None,
) -> RunReport:
    """The whole job over every episode, incrementally: for now, validate and transcribe."""
    return transcribe(root, options, force=force, on_start=on_start, progress=progress)
