"""The podarchive command line: parses options, calls the stages, prints."""

from __future__ import annotations

import json
import math
import sys
from datetime import date
from pathlib import Path

import click

from . import __version__, build, create, layout
from .archive import COMPUTE_TYPES, DEVICES, parse_moment
from .cluster import Cluster
from .embedded_model import usable_cores
from .errors import PodarchiveError
from .formats import clock
from .model import Status
from .search import search
from .transcribe import REVIEWED_NOTICE, TranscribeOptions


class _Progress:
    """A progress bar in seconds of audio, fed fractional seconds by the stages; and where
    no terminal shows one (a log, a cron mail), each episode's line as soon as it is
    transcribed rather than all of them at the end."""

    def __init__(self):
        self.bar = None
        self.seconds_done = 0.0
        self.shown = 0
        self.windows = 0
        self.said: set[int] = set()

    def start(self, total: float) -> None:
        if total > 0:
            self.bar = click.progressbar(
                length=max(1, round(total)), label="Transcribing (seconds of audio)",
                file=sys.stderr, show_pos=True,
            )
            self.bar.__enter__()

    def advance(self, seconds: float) -> None:
        self.seconds_done += max(0.0, seconds)
        if self.bar is not None:
            step = min(round(self.seconds_done), self.bar.length) - self.shown
            if step > 0:
                self.bar.update(step)
                self.shown += step

    def window(self) -> None:
        """A window decoded on a cluster: the bar says how many, and how many hours."""
        self.windows += 1
        if self.bar is not None:
            self.bar.label = (f"Transcribing on the cluster: {self.windows} windows, "
                              f"{self.seconds_done / 3600:.2f} h of audio (seconds)")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None

    def done(self, outcome) -> None:
        if outcome.status != Status.FAILED and not sys.stderr.isatty():
            click.echo(_outcome_line("transcribe", outcome))
            self.said.add(id(outcome))


def _archive_root(ctx: click.Context) -> Path:
    """The archive the command works on; a folder without archive.toml is said to be none."""
    root = ctx.obj["archive"]
    if not (root / layout.ARCHIVE_FILE).is_file():
        where = root.resolve()
        reason = "no such folder" if not where.is_dir() else f"no {layout.ARCHIVE_FILE} in it"
        _fail(PodarchiveError(where, None, f"not an archive ({reason}): give --archive PATH, "
                                           f"or start one with `podarchive init {root}`"), None)
    return root


def _waiting(ctx: click.Context) -> build.Waiting:
    return ctx.obj["waiting"]


def _print_errors(errors: list[PodarchiveError], root: Path) -> int:
    """Each problem on its own line, prefixed so scripts can grep them; returns the count."""
    lines = [line for error in errors for line in error.lines(root)]
    for line in lines:
        click.echo(f"error: {line}", err=True)
    return len(lines)


def _fail(error: PodarchiveError, root: Path) -> None:
    _print_errors([error], root)
    sys.exit(1)


def _print_warnings(warnings: list[PodarchiveError], root: Path) -> None:
    for line in [line for warning in warnings for line in warning.lines(root)]:
        click.echo(f"warning: {line}", err=True)


def _outcome_line(stage: str, outcome) -> str:
    detail = f" ({outcome.message})" if outcome.message else ""
    seconds = f" {outcome.seconds:.1f} s" if outcome.seconds else ""
    return f"{stage} {outcome.slug}: {outcome.status}{seconds}{detail}"


def _print_report(report: build.RunReport, root: Path, said: set[int] = frozenset()) -> None:
    """One line per thing done (but those ``said`` already), one per stage for what was
    already up to date."""
    for stage, outcomes in report.stages.items():
        unchanged = reviewed = 0
        for outcome in outcomes:
            if outcome.status == Status.UP_TO_DATE:
                unchanged += 1
                reviewed += outcome.message == REVIEWED_NOTICE
            elif outcome.status != Status.FAILED and id(outcome) not in said:
                click.echo(_outcome_line(stage, outcome))
        if unchanged:
            kept = f" ({reviewed} {REVIEWED_NOTICE})" if reviewed else ""
            click.echo(f"{stage}: {unchanged} episode(s) up to date{kept}")
    _print_warnings(report.warnings, root)
    count = _print_errors(report.failures, root)
    if count:
        click.echo(f"{count} problem(s); the other episodes were processed.", err=True)
        sys.exit(1)


def _run_stage(ctx: click.Context, stage, said: set[int] = frozenset(), **options) -> None:
    """Call a stage of build with the archive and the lock policy, then report and exit."""
    root = _archive_root(ctx)
    try:
        report = stage(root, waiting=_waiting(ctx), **options)
    except PodarchiveError as error:
        _fail(error, root)
    _print_report(report, root, said)


def _run_with_progress(ctx: click.Context, stage, *, cluster: str | None = None, workers: int | None = None,
                       ship_audio: bool = False, **options) -> None:
    """_run_stage with a progress bar in seconds of audio transcribed, on a Dask cluster
    where one is asked for (a scheduler's address, or a LocalCluster of ``workers``)."""
    if cluster and workers:
        raise click.UsageError("--cluster and --workers exclude each other: workers join the scheduler")
    progress = _Progress()
    on_cluster = Cluster(cluster, workers, ship_audio, on_window=progress.window) if cluster or workers else None
    try:
        if cluster:  # an unreachable scheduler is said before anything else happens
            try:
                on_cluster.connect()
            except PodarchiveError as error:
                _fail(error, None)
        _run_stage(ctx, stage, said=progress.said, on_start=progress.start, progress=progress.advance,
                   on_done=progress.done, cluster=on_cluster, **options)
    finally:
        progress.close()
        if on_cluster is not None:
            on_cluster.close()


def _transcribe_options(model, language, beam_size, batch_size, device, compute_type) -> TranscribeOptions:
    defaults = TranscribeOptions()
    return TranscribeOptions(
        model=model, language=language, beam_size=beam_size or defaults.beam_size,
        batch_size=batch_size or defaults.batch_size, device=device, compute_type=compute_type,
    )


def cluster_options(command):
    """--cluster, --workers, --ship-audio: transcription as Dask tasks."""
    command = click.option(
        "--ship-audio", is_flag=True,
        help="Send each window's samples to the workers instead of their reading the recordings "
             "from storage they share with this machine.")(command)
    command = click.option(
        "--workers", type=click.IntRange(1, 256), default=None,
        help="Start a local Dask cluster of N single-threaded worker processes.")(command)
    return click.option(
        "--cluster", envvar="PODARCHIVE_CLUSTER", default=None, metavar="tcp://HOST:8786",
        help="Transcribe on the workers of this Dask scheduler (also PODARCHIVE_CLUSTER).")(command)


def device_options(command):
    """--device and --compute-type: where whisper runs (archive.toml's device and
    compute_type otherwise)."""
    command = click.option(
        "--compute-type", type=click.Choice(COMPUTE_TYPES), default=None,
        help="CTranslate2 arithmetic (default: float16 on a GPU, int8 on a CPU).")(command)
    return click.option(
        "--device", type=click.Choice(DEVICES), default=None,
        help="Where whisper runs: auto takes a GPU when CTranslate2 sees one (default auto).")(command)


batch_size_option = click.option(
    "--batch-size", type=click.IntRange(1, 64), default=None,
    help=f"Speech regions decoded together (default {TranscribeOptions().batch_size}); "
         "changes speed and memory, not the words.",
)


model_option = click.option(
    "--model", default=None, metavar="NAME|PATH",
    help="Whisper model: a local CTranslate2 folder or a faster-whisper name (small, large-v3: "
         "needs the network once). Default: the embedded base model, offline.",
)


class _Seconds(click.ParamType):
    """A moment in seconds: a finite number, never below zero."""

    name = "seconds"

    def convert(self, value, param, ctx):
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number of seconds", param, ctx)
        if not math.isfinite(seconds) or seconds < 0:
            self.fail(f"{value!r} is not a moment of the recording (a finite number of seconds, 0 or more)",
                      param, ctx)
        return seconds


class _Moment(click.ParamType):
    """A date (2025-05-02) or a date and time (2025-05-02T18:00:00, with or without an offset)."""

    name = "date"

    def convert(self, value, param, ctx):
        if isinstance(value, date):
            return value
        if (found := parse_moment(value)) is not None:
            return found
        self.fail(f"{value!r} is not a date (YYYY-MM-DD) or a date and time (YYYY-MM-DDTHH:MM:SS)", param, ctx)


@click.group()
@click.version_option(__version__, prog_name="podarchive")
@click.option("--archive", "archive", type=click.Path(file_okay=False, path_type=Path),
              default=".", show_default=True, help="The archive folder (holds archive.toml).")
@click.option("--no-wait", is_flag=True,
              help="Fail at once if another podarchive run holds the archive, instead of waiting.")
@click.pass_context
def cli(ctx: click.Context, archive: Path, no_wait: bool) -> None:
    """Turn a podcast's recordings into a published, searchable, accessible archive."""
    ctx.ensure_object(dict)
    ctx.obj["archive"] = archive
    ctx.obj["waiting"] = build.Waiting(wait=not no_wait, on_wait=lambda: click.echo(
        "another podarchive run holds this archive: waiting for it to finish…", err=True))


@cli.command()
@click.argument("path", type=click.Path(file_okay=False, path_type=Path), required=False)
@click.option("--title", help="The archive's title (default: the folder's name).")
@click.option("--author", default="", help="Who makes it (default: the title).")
@click.option("--email", default="", help="Where podcast directories write to the owner (the feed's itunes:owner).")
@click.option("--language", default="en", show_default=True, metavar="CODE",
              help="The feed's language; each episode may say its own.")
@click.option("--base-url", default="https://example.org/podcast/", show_default=True, metavar="URL",
              help="Where feed/ will be served.")
@click.pass_context
def init(ctx, path, title, author, email, language, base_url) -> None:
    """Start an archive in PATH (default: --archive, the current folder): archive.toml
    with every key explained, episodes/, and a .gitignore for what podarchive derives."""
    root = path or ctx.obj["archive"]
    try:
        written = create.init_archive(root, title=title, author=author, email=email, language=language,
                                      base_url=base_url)
    except PodarchiveError as error:
        _fail(error, root)
    for item in written:
        click.echo(f"wrote {item}")
    click.echo(f"next: podarchive --archive {root} add RECORDING --title TITLE --date YYYY-MM-DD")


@cli.command()
@click.argument("audio", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--title", required=True, help="The episode's title.")
@click.option("--date", "published", type=_Moment(), required=True,
              help="Publication date, YYYY-MM-DD (or a date and time); a future one waits for its day.")
@click.option("--language", default=None, metavar="CODE",
              help="fr, en, … or auto (detected, passage by passage). Default: the archive's.")
@click.option("--person", "persons", multiple=True, metavar="NAME:ROLE",
              help="Someone who speaks: ROLE is host, guest, interviewer or narrator. Repeatable.")
@click.option("--slug", default=None, help="The episode's folder name (default: from the title).")
@click.pass_context
def add(ctx, audio, title, published, language, persons, slug) -> None:
    """Add the recording AUDIO as a new episode: its folder under episodes/, the
    recording copied in, and an episode.toml to complete (description, redact, …)."""
    root = _archive_root(ctx)
    try:
        folder = create.add_episode(root, audio, title=title, published=published, language=language,
                                    persons=persons, slug=slug)
    except PodarchiveError as error:
        _fail(error, root)
    click.echo(f"added {folder / 'episode.toml'}")
    click.echo("next: complete it (description, persons, redact, …), then podarchive run")


@cli.command()
@click.pass_context
def check(ctx: click.Context) -> None:
    """Validate archive.toml, every episode.toml and every transcript; print every problem."""
    root = _archive_root(ctx)
    try:
        report = build.check(root)
    except PodarchiveError as error:
        _fail(error, root)
    _print_warnings(report.warnings, root)
    count = _print_errors(report.problems, root)
    if count:
        click.echo(f"{count} problem(s) found.", err=True)
        sys.exit(1)
    click.echo(f"ok: {len(report.archive.episodes)} episode(s), no problem found.")


@cli.command()
@click.argument("slugs", nargs=-1)
@model_option
@click.option("--language", default=None, metavar="CODE",
              help="Force one language (fr, en, …) for these episodes instead of episode.toml's.")
@click.option("--beam-size", type=click.IntRange(1, 20), default=None,
              help=f"Beam width (default {TranscribeOptions().beam_size}).")
@batch_size_option
@device_options
@cluster_options
@click.option("--force", is_flag=True,
              help="Transcribe again even when up to date (reviewed transcripts are still kept).")
@click.pass_context
def transcribe(ctx, slugs, model, language, beam_size, batch_size, device, compute_type, cluster, workers,
               ship_audio, force) -> None:
    """Transcribe episodes (all, or the SLUGS given) into episodes/<slug>/transcript.json."""
    _run_with_progress(ctx, build.transcribe, slugs=list(slugs), force=force, cluster=cluster, workers=workers,
                       ship_audio=ship_audio,
                       options=_transcribe_options(model, language, beam_size, batch_size, device, compute_type))


@cli.command()
@click.argument("slugs", nargs=-1)
@click.pass_context
def align(ctx, slugs) -> None:
    """Time a producer's corrected words again against the recording (all, or SLUGS).

    A correction is a segment of transcript.json whose text no longer matches its words
    (or whose words were edited), or a corrected episodes/<slug>/transcript.txt. The
    corrected words are forced-aligned offline with the same whisper model; segments
    that did not change keep their times, and the transcript becomes reviewed. A text
    that does not belong to the recording is refused. Other hand-edited times are made
    ordered and positive, kept inside their segment, and a word stretched over the
    silence after it ends where its sound ends. A transcript whose words were timed by
    an older method (and never reviewed nor edited) has them force-aligned again.
    """
    _run_stage(ctx, build.align, slugs=list(slugs))


@cli.command()
@click.pass_context
def render(ctx) -> None:
    """Write captions and transcripts of every publishable episode into feed/episodes/.

    Per episode: transcript.vtt (captions, with speakers), transcript.srt,
    transcript.txt, transcript.json (Podcasting 2.0) and transcript.html (an accessible
    page). Episodes that are restricted, embargoed or not yet released are withdrawn.
    """
    _run_stage(ctx, build.render)


@cli.command()
@click.option("--rebuild", is_flag=True, help="Start from an empty index instead of updating it.")
@click.pass_context
def index(ctx, rebuild) -> None:
    """Bring index/ up to date: one searchable document per segment of every public episode.

    Only episodes whose published text changed are re-indexed; episodes no longer
    publishable are removed. Redacted names and restricted parts are never indexed.
    """
    _run_stage(ctx, build.index, rebuild=rebuild)


@cli.command(name="search")
@click.argument("query")
@click.option("--episode", metavar="SLUG", help="Only this episode.")
@click.option("--speaker", metavar="NAME", help="Only segments by this speaker (any case or accents).")
@click.option("--lang", metavar="CODE", help="Only segments in this language (fr, en, …).")
@click.option("--limit", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the hits as a JSON list.")
@click.option("--clip", "clip_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Also export each hit's moment as an mp3 into this folder.")
@click.pass_context
def search_command(ctx, query, episode, speaker, lang, limit, as_json, clip_dir) -> None:
    """Find QUERY in the published transcripts and land on the moment it is said.

    Words match in any case and without accents, and in their French or English forms
    (chanteuses finds chanteuse); "quoted words" match as a phrase, and an exact phrase
    ranks first. OR, NOT and -word work too. Matched words are shown between ** **.
    """
    root = _archive_root(ctx)
    try:
        hits = search(root, query, limit=limit, episode=episode, speaker=speaker, lang=lang)
        clips = [build.clip(root, hit["episode"], hit["start"], hit["end"],
                            clip_dir / f"{n:02d}-{hit['episode']}-{hit['start']:.0f}s.mp3")
                 for n, hit in enumerate(hits, 1)] if clip_dir else []
    except PodarchiveError as error:
        _fail(error, root)
    if as_json:
        click.echo(json.dumps(hits, ensure_ascii=False, indent=2))
        return
    if not hits:
        click.echo("no match")
    for hit in hits:
        speaker_name = f"  {hit['speaker']}" if hit["speaker"] else ""
        click.echo(f"{hit['title']}  {clock(hit['start'])}{speaker_name}")
        click.echo(f"  {hit['snippet']}")
        click.echo(f"  {hit['url']}")
    for written in clips:
        click.echo(f"wrote {written}")


@cli.command()
@click.pass_context
def feed(ctx) -> None:
    """Publish feed/: each episode's audio.mp3 and chapters.json, and feed.xml.

    The mp3 is loudness-normalised to -16 LUFS with redacted and restricted spans
    silenced; feed.xml carries the iTunes and Podcasting 2.0 tags and links every
    transcript. Only public episodes whose date has come are listed, newest first.
    """
    _run_stage(ctx, build.feed)


@cli.command()
@click.argument("slug")
@click.argument("start", type=_Seconds())
@click.argument("end", type=_Seconds())
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The mp3 file to write.")
@click.pass_context
def clip(ctx, slug, start, end, output) -> None:
    """Export the moment from START to END seconds of a published episode as an mp3.

    Half a second of context is kept on each side. The clip is cut from the published
    audio, so redacted names stay silent in it.
    """
    if end <= start:
        raise click.BadParameter(f"{end:g} must come after START ({start:g})", param_hint="'END'")
    root = _archive_root(ctx)
    try:
        written = build.clip(root, slug, start, end, output)
    except PodarchiveError as error:
        _fail(error, root)
    click.echo(f"wrote {written}")


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="The address to listen on (0.0.0.0: every interface; a reverse proxy is better).")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option("--workers", type=click.IntRange(1, 64), default=None,
              help="Server processes, each searching one query at a time [default: one per core].")
@click.pass_context
def serve(ctx, host, port, workers) -> None:
    """Serve the website of feed/ with search, at http://HOST:PORT/, until Ctrl+C.

    The pages, the feed, the audio and the transcripts, as `podarchive run` published
    them (an episode restricted since is no longer answered), plus /search (results as
    a page) and /api/search (the JSON of `search --json`, 10 hits a page).
    """
    from . import serve as web  # starlette and uvicorn: not loaded by every other command

    root = _archive_root(ctx)
    if not layout.home_page(root).is_file():
        click.echo("warning: feed/index.html does not exist yet: run `podarchive run` first "
                   "to publish the website (serving anyway)", err=True)
    shown = f"[{host}]" if ":" in host else host
    click.echo(f"Serving {web.site_header(root).title} at http://{shown}:{port}/ (Ctrl+C to stop)")
    web.serve(root, host, port, workers=workers or usable_cores())


@cli.group()
def export() -> None:
    """Hand an interview on to another tool."""


@export.command("ohms")
@click.argument("slug")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The XML file to write.")
@click.pass_context
def export_ohms(ctx, slug, output) -> None:
    """Export the published episode SLUG as OHMS XML, for the OHMS viewer, Aviary and
    Omeka S: its metadata, the transcript with a sync point each minute and its
    speakers, and its chapters as index points. Only what `run` would publish goes out."""
    root = _archive_root(ctx)
    try:
        written = build.export_ohms(root, slug, output)
    except PodarchiveError as error:
        _fail(error, root)
    click.echo(f"wrote {written}")


class _Download:
    """A progress bar in bytes downloaded."""

    def __init__(self):
        self.bar = None

    def start(self, total: int) -> None:
        if total > 0:
            self.bar = click.progressbar(length=total, label="Downloading (bytes)", file=sys.stderr, show_pos=True)
            self.bar.__enter__()

    def advance(self, count: int) -> None:
        if self.bar is not None:
            self.bar.update(min(count, self.bar.length - self.bar.pos))

    def window(self) -> None:
        """A window decoded on a cluster: the bar says how many, and how many hours."""
        self.windows += 1
        if self.bar is not None:
            self.bar.label = (f"Transcribing on the cluster: {self.windows} windows, "
                              f"{self.seconds_done / 3600:.2f} h of audio (seconds)")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None


@cli.command("import")
@click.argument("feed")
@click.option("--retranscribe", is_flag=True,
              help="Leave the transcripts the feed links to: whisper transcribes every episode.")
@click.option("--owner-ok", is_flag=True,
              help="Import a feed its owner locked (podcast:locked) against imports elsewhere: you are its owner.")
@click.pass_context
def import_command(ctx, feed, retranscribe, owner_ok) -> None:
    """Bring in an existing podcast from its FEED (an address or a file): each item
    becomes an episode folder, its recording downloaded (resumed if cut off) and the
    transcript it links to (JSON, VTT or SRT) kept as its starting transcript.

    Run it again to add the items published since: items imported already (by guid) are
    left as they are, with any edits made to them. Without an archive.toml, one is made
    from the feed's channel.
    """
    root = ctx.obj["archive"]
    download = _Download()
    try:
        report = build.import_feed(root, feed, retranscribe=retranscribe, owner_ok=owner_ok,
                                   on_start=download.start, progress=download.advance, waiting=_waiting(ctx))
    except PodarchiveError as error:
        download.close()
        _fail(error, root)
    download.close()
    if any(outcome.status == Status.IMPORTED for outcome in report.stages["import"]):
        click.echo("next: check each episode.toml (persons, redact, status), then podarchive run")
    _print_report(report, root)


@cli.command()
@model_option
@batch_size_option
@device_options
@cluster_options
@click.option("--force", is_flag=True, help="Transcribe again even when up to date.")
@click.pass_context
def run(ctx, model, batch_size, device, compute_type, cluster, workers, ship_audio, force) -> None:
    """Do the whole job on every episode, skipping what is already up to date."""
    _run_with_progress(ctx, build.run, force=force, cluster=cluster, workers=workers, ship_audio=ship_audio,
                       options=_transcribe_options(model, None, None, batch_size, device, compute_type))


def main() -> None:
    cli(prog_name="podarchive")
