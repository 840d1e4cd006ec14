"""Run the stages in order over an archive, under one lock, skipping what is up to date.

Every command that publishes goes the same way: the gate builds the public view,
withdrawal makes everything already published agree with it (removing what it no
longer lets through), the transcripts are rendered from it, and then the command's own
work (the index, the audio and feed.xml) is done from it too.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from filelock import FileLock, Timeout

from . import feed as feed_stage
from . import layout
from .align import align_archive
from .archive import Archive, Episode, load_archive, read_transcript
from .audit import audit
from .cluster import Cluster
from .enclosure import clip as cut_clip
from .enclosure import still_safe
from .errors import PodarchiveError
from .feed import check_feed, publish_archive
from .formats import clock, render_archive, withdraw_folders
from .importer import import_podcast, read_podcast
from .model import Outcome, Status
from .ohms import write_ohms
from .privacy import PublicView, as_podarchive_error, next_release, now_utc, public_view
from .search import index_archive, index_problems, withdraw_from_index
from .stamps import forget_run, record_run, unchanged_since_last_run
from .storage import remove_stale_temporaries, scratch_files_in
from .transcribe import (
    DEFAULT_OPTIONS,
    TranscribeOptions,
    plan,
    transcribe_archive,
    untranscribed_speech,
)


@dataclass(frozen=True)
class Waiting:
    """What to do when another run holds the archive: wait (telling ``on_wait``) or fail."""

    wait: bool = True
    on_wait: Callable[[], None] | None = None


WAIT = Waiting()


@dataclass
class RunReport:
    # None when nothing changed since the last run: the archive is not even loaded.
    archive: Archive | None
    problems: list[PodarchiveError] = field(default_factory=list)
    stages: dict[str, list[Outcome]] = field(default_factory=dict)
    # What a producer should know without anything having failed.
    warnings: list[PodarchiveError] = field(default_factory=list)

    @property
    def failures(self) -> list[PodarchiveError]:
        failed = [outcome.error for outcomes in self.stages.values() for outcome in outcomes
                  if outcome.status == Status.FAILED and outcome.error is not None]
        # A broken file stops each stage that reads it: say so once.
        unique = {str(error): error for error in [*self.problems, *failed]}
        return list(unique.values())

    @property
    def ok(self) -> bool:
        return not self.failures


@contextmanager
def locked(root: Path, waiting: Waiting = WAIT) -> Iterator[None]:
    """The archive's lock, held for the block: two runs interleaving writes could mix
    their outputs. The run's scratch files are kept in the archive meanwhile."""
    lock = FileLock(str(layout.lock_file(root)))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        if not waiting.wait:
            raise PodarchiveError(layout.lock_file(root), None,
                                  "another podarchive run holds this archive (--no-wait given)") from None
        if waiting.on_wait:
            waiting.on_wait()
        lock.acquire()
    try:
        # Holding the lock, no other run is writing: any temporary file left is a killed run's.
        remove_stale_temporaries(root)
        with scratch_files_in(layout.scratch_dir(root)):
            yield
    finally:
        lock.release()


def _load(root: Path) -> RunReport:
    archive = load_archive(root)
    return RunReport(archive, problems=list(archive.problems))


def check(root: Path, *, now: dt.datetime | None = None) -> RunReport:
    """Every problem in the archive's metadata and transcripts, and in what is published,
    without changing anything."""
    report = _load(root)
    view = public_view(report.archive, now)
    # A published episode's transcript was read by the gate, and a bad one is in its report.
    published = view.slugs
    for episode in report.archive.episodes:
        if episode.slug not in published:
            try:
                read_transcript(episode.transcript_path)
            except PodarchiveError as error:
                report.problems.append(error)
    report.problems += [o.error for o in view.report if o.status == Status.FAILED]
    report.problems += check_feed(report.archive.root, report.archive.base_url)
    report.problems += audit(report.archive, view)
    report.problems += index_problems(report.archive.root)
    report.problems = list({str(problem): problem for problem in report.problems}.values())
    report.warnings += _untranscribed(report.archive.episodes)
    if report.archive.image is None:
        report.warnings.append(PodarchiveError(
            report.archive.root / layout.ARCHIVE_FILE, "image",
            f"not given: the feed's cover is drawn with the title ({layout.FEED_DIR / layout.COVER_FILE}); give a "
            "square PNG or JPEG of 1400 to 3000 pixels for a cover of your own"))
    return report


def _untranscribed(episodes: list[Episode]) -> list[PodarchiveError]:
    return [PodarchiveError(episode.folder, None, f"{clock(gap.start)}–{clock(gap.end)} speech not transcribed")
            for episode, gap in untranscribed_speech(episodes)]


def _one_stage(root: Path, waiting: Waiting, name: str,
               stage: Callable[[Archive], list[Outcome]]) -> RunReport:
    """Load the archive under its lock and run one stage over it."""
    with locked(root, waiting):
        report = _load(root)
        _run_stage(report, name, lambda: stage(report.archive))
    return report


def transcribe(
    root: Path,
    options: TranscribeOptions = DEFAULT_OPTIONS,
    *,
    slugs: list[str] | None = None,
    force: bool = False,
    on_start: Callable[[float], None] | None = None,
    progress: Callable[[float], None] | None = None,
    on_done: Callable[[Outcome], None] | None = None,
    waiting: Waiting = WAIT,
    cluster: Cluster | None = None,
) -> RunReport:
    """Transcribe the named episodes (all when none) that are stale, on ``cluster``'s
    workers where one is given."""
    chosen: list[Episode] = []

    def stage(archive: Archive) -> list[Outcome]:
        chosen.extend(plan(archive, slugs))
        try:
            return transcribe_archive(archive, chosen, options, force=force, on_start=on_start,
                                      progress=progress, on_done=on_done, cluster=cluster)
        finally:  # inside the lock, before the run's scratch folder (the LocalCluster's) goes
            if cluster is not None:
                cluster.close()

    report = _one_stage(root, waiting, "transcribe", stage)
    report.warnings += _untranscribed(chosen)
    return report


def align(root: Path, *, slugs: list[str] | None = None, waiting: Waiting = WAIT) -> RunReport:
    """Re-time the words of transcripts edited since they were last timed."""
    return _one_stage(root, waiting, "align", lambda archive: align_archive(plan(archive, slugs)))


def _publish(report: RunReport, now: dt.datetime | None, *, render: bool = True,
             index: bool = False, rebuild: bool = False, feed: bool = False) -> None:
    """The gate, withdrawal, then the publishing stages asked for, all from the public view."""
    view = public_view(report.archive, now)
    report.stages["privacy"] = view.report
    withdrawn = [*withdraw_folders(view), *feed_stage.withdraw(view), *withdraw_from_index(view)]
    report.stages["withdraw"] = withdrawn
    # An episode whose withdrawal failed somewhere is published nowhere by this run.
    view = view.without(o.slug for o in withdrawn if o.status == Status.FAILED)
    stages: list[tuple[str, Callable[[PublicView], list[Outcome]]]] = []
    if render:
        stages.append(("render", render_archive))
    if index:
        stages.append(("index", lambda v: index_archive(v, rebuild=rebuild)))
    if feed:
        stages.append(("feed", publish_archive))
    for name, stage in stages:
        _run_stage(report, name, lambda stage=stage: stage(view))


def _run_stage(report: RunReport, name: str, stage: Callable[[], list[Outcome]]) -> None:
    """A stage that cannot run at all (a locked index, say) fails alone, on one line: the
    stages after it still do what they can."""
    try:
        report.stages[name] = stage()
    except Exception as error:  # noqa: BLE001 - any failure, ours or not, is one line
        failure = as_podarchive_error(error, report.archive.root)
        report.stages[name] = [Outcome(name, Status.FAILED, str(failure), error=failure)]


def _publishing(root: Path, waiting: Waiting, now: dt.datetime | None, **stages: bool) -> RunReport:
    with locked(root, waiting):
        report = _load(root)
        _publish(report, now, **stages)
    return report


def render(root: Path, *, now: dt.datetime | None = None, waiting: Waiting = WAIT) -> RunReport:
    """Write the captions and transcripts of every publishable episode into feed/."""
    return _publishing(root, waiting, now)


def index(root: Path, *, rebuild: bool = False, now: dt.datetime | None = None,
          waiting: Waiting = WAIT) -> RunReport:
    """Bring index/ up to date with what may be published (``rebuild``: from scratch)."""
    return _publishing(root, waiting, now, index=True, rebuild=rebuild)


def feed(root: Path, *, now: dt.datetime | None = None, waiting: Waiting = WAIT) -> RunReport:
    """Publish the enclosures, chapters and feed.xml of every publishable episode."""
    return _publishing(root, waiting, now, feed=True)


def clip(root: Path, slug: str, start: float, end: float, target: Path,
         *, now: dt.datetime | None = None) -> Path:
    """Cut a moment of a published episode (its public, silenced mp3) into ``target``."""
    archive = load_archive(root)
    view = public_view(archive, now, only={slug})
    episode = view.episode(slug)
    if episode is None:
        raise PodarchiveError(archive.episodes_dir / slug, None, "no such published episode")
    source = layout.audio_file(root, slug)
    if not source.exists() or not still_safe(source, episode.silence, view.says_withheld_name):
        raise PodarchiveError(source, None, "not published yet: run `podarchive run` first")
    return cut_clip(source, start, end, target)


def export_ohms(root: Path, slug: str, target: Path, *, now: dt.datetime | None = None) -> Path:
    """One published interview as OHMS XML in ``target``: only what the gate publishes now."""
    archive = load_archive(root)
    view = public_view(archive, now, only={slug})
    episode = view.episode(slug)
    if episode is None:
        raise PodarchiveError(archive.episodes_dir / slug, None,
                              "not published (no such episode, not transcribed yet, restricted or embargoed)")
    return write_ohms(view.archive, episode, target)


def import_feed(
    root: Path,
    source: str,
    *,
    retranscribe: bool = False,
    owner_ok: bool = False,
    on_start: Callable[[int], None] | None = None,
    progress: Callable[[int], None] | None = None,
    waiting: Waiting = WAIT,
) -> RunReport:
    """The items of the podcast feed at ``source`` not imported yet, as episodes of the
    archive at ``root`` (made from the feed's channel when there is none)."""
    podcast = read_podcast(source)  # a feed that does not read changes nothing
    Path(root).mkdir(parents=True, exist_ok=True)
    with locked(root, waiting):
        outcomes = import_podcast(root, podcast, retranscribe=retranscribe, owner_ok=owner_ok,
                                  on_start=on_start, progress=progress)
        report = _load(root)
        report.stages["import"] = outcomes
    return report


def run(
    root: Path,
    options: TranscribeOptions = DEFAULT_OPTIONS,
    *,
    force: bool = False,
    now: dt.datetime | None = None,
    on_start: Callable[[float], None] | None = None,
    progress: Callable[[float], None] | None = None,
    on_done: Callable[[Outcome], None] | None = None,
    waiting: Waiting = WAIT,
    cluster: Cluster | None = None,
) -> RunReport:
    """The whole job over every episode, each stage skipping what is up to date; nothing
    at all when nothing has changed since the last complete run (see stamps.py).
    Transcription runs on ``cluster``'s workers where one is given."""
    moment = now or now_utc()
    asked = json.loads(json.dumps(asdict(options)))
    with locked(root, waiting):
        unchanged = None if force else unchanged_since_last_run(root, asked, moment)
        if unchanged is not None:
            episodes, warnings = unchanged
            return RunReport(None, stages={"run": [Outcome(f"{n}", Status.UP_TO_DATE) for n in range(episodes)]},
                             warnings=warnings)
        forget_run(root)
        report = _load(root)
        archive = report.archive
        try:
            _run_stage(report, "transcribe", lambda: transcribe_archive(
                archive, archive.episodes, options, force=force, on_start=on_start, progress=progress,
                on_done=on_done, cluster=cluster))
            _run_stage(report, "align", lambda: align_archive(archive.episodes, cluster))
        finally:
            if cluster is not None:
                cluster.close()
        _publish(report, now, index=True, feed=True)
        report.warnings += _untranscribed(archive.episodes)
        if report.ok:
            record_run(root, asked, now=moment, episodes=len(archive.episodes),
                       next_release=next_release(archive, moment),
                       warnings=report.warnings)
    return report
