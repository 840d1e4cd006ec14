"""Run the stages in order over an archive, under one lock, skipping what is up to date."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from filelock import FileLock, Timeout

from .align import align_archive
from .archive import load_archive
from .audio import clip as cut_clip
from .errors import PodarchiveError
from .feed import check_feed, publish_archive
from .formats import episode_dir, render_archive
from .model import Archive, Outcome, read_transcript
from .privacy import leaks, publishable
from .search import index_archive
from .storage import remove_stale_temporaries
from .transcribe import DEFAULT_OPTIONS, TranscribeOptions, plan, transcribe_archive

LOCK_FILE = ".podarchive.lock"


@dataclass(frozen=True)
class Waiting:
    """What to do when another run holds the archive: wait (telling ``on_wait``) or fail."""

    wait: bool = True
    on_wait: Callable[[], None] | None = None


WAIT = Waiting()


@dataclass
class RunReport:
    archive: Archive
    problems: list[PodarchiveError] = field(default_factory=list)
    stages: dict[str, list[Outcome]] = field(default_factory=dict)

    @property
    def failures(self) -> list[PodarchiveError]:
        failed = [outcome.error for outcomes in self.stages.values() for outcome in outcomes
                  if outcome.status == "failed" and outcome.error is not None]
        # A broken file stops each stage that reads it: say so once.
        unique = {str(error): error for error in [*self.problems, *failed]}
        return list(unique.values())

    @property
    def ok(self) -> bool:
        return not self.failures


def locked(root: Path, waiting: Waiting = WAIT) -> FileLock:
    """The archive's lock, held: two runs interleaving writes could mix their outputs."""
    lock = FileLock(str(Path(root) / LOCK_FILE))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        if not waiting.wait:
            raise PodarchiveError(Path(root) / LOCK_FILE, None,
                                  "another podarchive run holds this archive (--no-wait given)") from None
        if waiting.on_wait:
            waiting.on_wait()
        lock.acquire()
    # Holding the lock, no other run is writing: any temporary file left is a killed run's.
    remove_stale_temporaries(root)
    return lock


def _load(root: Path) -> RunReport:
    archive = load_archive(root)
    return RunReport(archive, problems=list(archive.problems))


def check(root: Path, *, today: dt.date | None = None) -> RunReport:
    """Every problem in the archive's metadata and transcripts, without changing anything."""
    report = _load(root)
    for episode in report.archive.episodes:
        try:
            read_transcript(episode.transcript_path)
        except PodarchiveError as error:
            report.problems.append(error)
    report.problems += check_feed(report.archive)
    report.problems += leaks(report.archive, today or dt.date.today())
    return report


def _one_stage(root: Path, waiting: Waiting, name: str,
               stage: Callable[[Archive], list[Outcome]]) -> RunReport:
    """Load the archive under its lock and run one stage over it."""
    with locked(root, waiting):
        report = _load(root)
        report.stages[name] = stage(report.archive)
    return report


def transcribe(
    root: Path,
    options: TranscribeOptions = DEFAULT_OPTIONS,
    *,
    slugs: list[str] | None = None,
    force: bool = False,
    on_start: Callable[[float], None] | None = None,
    progress: Callable[[float], None] | None = None,
    waiting: Waiting = WAIT,
) -> RunReport:
    """Transcribe the named episodes (all when none) that are stale."""
    return _one_stage(root, waiting, "transcribe", lambda archive: transcribe_archive(
        archive, plan(archive, slugs), options, force=force, on_start=on_start, progress=progress))


def align(root: Path, *, slugs: list[str] | None = None, waiting: Waiting = WAIT) -> RunReport:
    """Re-time the words of transcripts edited since they were last timed."""
    return _one_stage(root, waiting, "align", lambda archive: align_archive(plan(archive, slugs)))


def render(root: Path, *, today: dt.date | None = None, waiting: Waiting = WAIT) -> RunReport:
    """Write the captions and transcripts of every publishable episode into feed/."""
    return _one_stage(root, waiting, "render",
                      lambda archive: render_archive(archive, today or dt.date.today()))


def index(root: Path, *, rebuild: bool = False, today: dt.date | None = None,
          waiting: Waiting = WAIT) -> RunReport:
    """Bring index/ up to date with what may be published (``rebuild``: from scratch)."""
    return _one_stage(root, waiting, "index",
                      lambda archive: index_archive(archive, today or dt.date.today(), rebuild=rebuild))


def feed(root: Path, *, today: dt.date | None = None, waiting: Waiting = WAIT) -> RunReport:
    """Publish the enclosures, chapters and feed.xml of every publishable episode."""
    return _one_stage(root, waiting, "feed",
                      lambda archive: publish_archive(archive, today or dt.date.today()))


def clip(root: Path, slug: str, start: float, end: float, target: Path,
         *, today: dt.date | None = None) -> Path:
    """Cut a moment of a published episode (its public, redacted mp3) into ``target``."""
    archive = load_archive(root)
    episode = next((e for e in archive.episodes if e.slug == slug), None)
    if episode is None or not publishable(episode, today or dt.date.today()):
        raise PodarchiveError(archive.episodes_dir / slug, None, "no such published episode")
    source = episode_dir(archive, slug) / "audio.mp3"
    if not source.exists():
        raise PodarchiveError(source, None, "not published yet: run `podarchive run` first")
    return cut_clip(source, start, end, target)


def run(
    root: Path,
    options: TranscribeOptions = DEFAULT_OPTIONS,
    *,
    force: bool = False,
    today: dt.date | None = None,
    on_start: Callable[[float], None] | None = None,
    progress: Callable[[float], None] | None = None,
    waiting: Waiting = WAIT,
) -> RunReport:
    """The whole job over every episode, each stage skipping what is up to date."""
    with locked(root, waiting):
        report = _load(root)
        archive, today = report.archive, today or dt.date.today()
        stages = [
            ("transcribe", lambda: transcribe_archive(archive, archive.episodes, options, force=force,
                                                      on_start=on_start, progress=progress)),
            ("align", lambda: align_archive(archive.episodes)),
            ("render", lambda: render_archive(archive, today)),
            ("index", lambda: index_archive(archive, today)),
            ("feed", lambda: publish_archive(archive, today)),
        ]
        for name, stage in stages:
            # A stage that cannot run at all (a locked index, say) fails alone: the
            # stages after it still publish what they can.
            try:
                report.stages[name] = stage()
            except PodarchiveError as error:
                report.stages[name] = [Outcome(name, "failed", str(error), error=error)]
    return report
