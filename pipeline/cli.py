"""The podarchive command line: parses options, calls the stages, prints."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from . import __version__, build
from .errors import PodarchiveError
from .transcribe import TranscribeOptions


class _AudioProgress:
    """A progress bar in seconds of audio, fed fractional seconds by the stages."""

    def __init__(self):
        self.bar = None
        self.done = 0.0
        self.shown = 0

    def start(self, total: float) -> None:
        if total > 0:
            self.bar = click.progressbar(
                length=max(1, round(total)), label="Transcribing (seconds of audio)",
                file=sys.stderr, show_pos=True,
            )
            self.bar.__enter__()

    def advance(self, seconds: float) -> None:
        self.done += max(0.0, seconds)
        if self.bar is not None:
            step = min(round(self.done), self.bar.length) - self.shown
            if step > 0:
                self.bar.update(step)
                self.shown += step

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None


def _archive_root(ctx: click.Context) -> Path:
    return ctx.obj["archive"]


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


def _print_report(report: build.RunReport, root: Path) -> None:
    """One line per thing done, one per stage for what was already up to date."""
    for stage, outcomes in report.stages.items():
        unchanged = 0
        for outcome in outcomes:
            if outcome.status == "up-to-date":
                unchanged += 1
            elif outcome.status != "failed":
                detail = f" ({outcome.message})" if outcome.message else ""
                seconds = f" {outcome.seconds:.1f} s" if outcome.seconds else ""
                click.echo(f"{stage} {outcome.slug}: {outcome.status}{seconds}{detail}")
        if unchanged:
            click.echo(f"{stage}: {unchanged} episode(s) up to date")
    count = _print_errors(report.failures, root)
    if count:
        click.echo(f"{count} problem(s); the other episodes were processed.", err=True)
        sys.exit(1)


def _transcribe_options(model, language, beam_size, batch_size) -> TranscribeOptions:
    defaults = TranscribeOptions()
    return TranscribeOptions(
        model=model, language=language, beam_size=beam_size or defaults.beam_size,
        batch_size=batch_size or defaults.batch_size,
    )


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
@click.pass_context
def check(ctx: click.Context) -> None:
    """Validate archive.toml, every episode.toml and every transcript; print every problem."""
    root = _archive_root(ctx)
    try:
        report = build.check(root)
    except PodarchiveError as error:
        _fail(error, root)
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
@click.option("--force", is_flag=True,
              help="Transcribe again even when up to date (reviewed transcripts are still kept).")
@click.pass_context
def transcribe(ctx, slugs, model, language, beam_size, batch_size, force) -> None:
    """Transcribe episodes (all, or the SLUGS given) into episodes/<slug>/transcript.json."""
    root = _archive_root(ctx)
    progress = _AudioProgress()
    try:
        report = build.transcribe(
            root, _transcribe_options(model, language, beam_size, batch_size), slugs=list(slugs),
            force=force, on_start=progress.start, progress=progress.advance, waiting=_waiting(ctx),
        )
    except PodarchiveError as error:
        _fail(error, root)
    finally:
        progress.close()
    _print_report(report, root)


@cli.command()
@click.argument("slugs", nargs=-1)
@click.pass_context
def align(ctx, slugs) -> None:
    """Re-time the words of transcripts edited by hand (all, or the SLUGS given).

    Word times are made ordered and positive, kept inside their segment, and a word
    stretched over the silence after it ends where its sound ends.
    """
    root = _archive_root(ctx)
    try:
        report = build.align(root, slugs=list(slugs), waiting=_waiting(ctx))
    except PodarchiveError as error:
        _fail(error, root)
    _print_report(report, root)


@cli.command()
@click.pass_context
def render(ctx) -> None:
    """Write captions and transcripts of every publishable episode into feed/episodes/.

    Per episode: transcript.vtt (captions, with speakers), transcript.srt,
    transcript.txt, transcript.json (Podcasting 2.0) and transcript.html (an accessible
    page). Episodes that are restricted, embargoed or not yet released are withdrawn.
    """
    root = _archive_root(ctx)
    try:
        report = build.render(root, waiting=_waiting(ctx))
    except PodarchiveError as error:
        _fail(error, root)
    _print_report(report, root)


@cli.command()
@click.pass_context
def feed(ctx) -> None:
    """Publish feed/: each episode's audio.mp3 and chapters.json, and feed.xml.

    The mp3 is loudness-normalised to -16 LUFS with redacted and restricted spans
    silenced; feed.xml carries the iTunes and Podcasting 2.0 tags and links every
    transcript. Only public episodes whose date has come are listed, newest first.
    """
    root = _archive_root(ctx)
    try:
        report = build.feed(root, waiting=_waiting(ctx))
    except PodarchiveError as error:
        _fail(error, root)
    _print_report(report, root)


@cli.command()
@click.argument("slug")
@click.argument("start", type=float)
@click.argument("end", type=float)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The mp3 file to write.")
@click.pass_context
def clip(ctx, slug, start, end, output) -> None:
    """Export the moment from START to END seconds of a published episode as an mp3.

    Half a second of context is kept on each side. The clip is cut from the published
    audio, so redacted names stay silent in it.
    """
    root = _archive_root(ctx)
    try:
        written = build.clip(root, slug, start, end, output)
    except PodarchiveError as error:
        _fail(error, root)
    click.echo(f"wrote {written}")


@cli.command()
@model_option
@batch_size_option
@click.option("--force", is_flag=True, help="Transcribe again even when up to date.")
@click.pass_context
def run(ctx, model, batch_size, force) -> None:
    """Do the whole job on every episode, skipping what is already up to date."""
    root = _archive_root(ctx)
    progress = _AudioProgress()
    try:
        report = build.run(
            root, _transcribe_options(model, None, None, batch_size), force=force,
            on_start=progress.start, progress=progress.advance, waiting=_waiting(ctx),
        )
    except PodarchiveError as error:
        _fail(error, root)
    finally:
        progress.close()
    _print_report(report, root)


def main() -> None:
    cli(prog_name="podarchive")
