"""Render a transcript into the files people read: WebVTT, SRT, text, Podcasting 2.0 JSON, HTML.

One writer per format behind ``WRITERS``; the caption writers share one list of cues
(align.build_cues), the reading formats one list of paragraphs.
"""

from __future__ import annotations

import hashlib
import html
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import jinja2

from . import layout
from .cues import build_cues, named_lines
from .model import Cue, Outcome, Segment, Status, Transcript
from .privacy import PublicArchive, PublicEpisode, PublicView, each_episode, withdraw_file
from .stamps import code_stamp, file_state
from .storage import dump_json, write_if_changed
from .text import join_words

# A new paragraph after this long a pause, or once a paragraph is this long at a sentence end.
PARAGRAPH_PAUSE_SECONDS = 2.0
PARAGRAPH_CHARS = 600


@dataclass
class Paragraph:
    number: int
    speaker: str
    language: str
    segments: list[Segment] = field(default_factory=list)

    @property
    def start(self) -> float:
        return spoken_span(self.segments[0])[0]

    @property
    def anchor(self) -> str:
        return f"p{self.number}"

    @property
    def timestamp(self) -> str:
        return clock(self.start)

    @property
    def text(self) -> str:
        return " ".join(segment_text(segment) for segment in self.segments)


@dataclass
class Document:
    """What every writer gets: the same cues and paragraphs for one episode."""

    archive: PublicArchive
    episode: PublicEpisode
    cues: list[Cue]
    paragraphs: list[Paragraph]

    @property
    def transcript(self) -> Transcript:
        return self.episode.transcript

    @property
    def language(self) -> str:
        return self.episode.content_language


def segment_text(segment: Segment) -> str:
    """A segment's words are its text: a producer's correction of the words shows everywhere."""
    return join_words([word.text for word in segment.words]) if segment.words else segment.text.strip()


def spoken_span(segment: Segment) -> tuple[float, float]:
    """When a segment's words are said. ``align`` re-times the words of a corrected
    segment but leaves the segment's bounds where whisper put them."""
    if segment.words:
        return segment.words[0].start, segment.words[-1].end
    return segment.start, segment.end


def clock(seconds: float) -> str:
    """A moment as HH:MM:SS, to the second it falls in: one who seeks there hears it."""
    whole = int(seconds)
    return f"{whole // 3600:02d}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def timestamp(seconds: float, separator: str) -> str:
    millis = round(seconds * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def paragraphs(transcript: Transcript) -> list[Paragraph]:
    """Speaker turns, cut at long pauses and, when long, at a sentence end."""
    result: list[Paragraph] = []
    for segment in sorted(transcript.segments, key=spoken_span):
        if not segment_text(segment):
            continue
        current = result[-1] if result else None
        if (
            current is None
            or current.speaker != segment.speaker
            or current.language != segment.language
            or spoken_span(segment)[0] - spoken_span(current.segments[-1])[1] >= PARAGRAPH_PAUSE_SECONDS
            or (len(current.text) >= PARAGRAPH_CHARS and current.text.endswith((".", "?", "!", "…")))
        ):
            result.append(Paragraph(len(result) + 1, segment.speaker, segment.language))
        result[-1].segments.append(segment)
    return result


def _vtt_escape(text: str) -> str:
    return html.escape(text, quote=False)


def write_vtt(doc: Document) -> str:
    # No cue identifiers (WebVTT makes them optional): Castopod's importer expects each
    # cue's timing line right after the blank line.
    blocks = ["WEBVTT"]
    for cue in doc.cues:
        text = "\n".join(_vtt_escape(line) for line in cue.lines)
        if cue.speaker:
            text = f"<v {_vtt_escape(cue.speaker)}>{text}"
        blocks.append(f"{timestamp(cue.start, '.')} --> {timestamp(cue.end, '.')}\n{text}")
    return "\n\n".join(blocks) + "\n"


def write_srt(doc: Document) -> str:
    blocks = []
    for number, cue in enumerate(doc.cues, 1):
        # SRT has no voice tag: the speaker's name starts the cue where the speaker changes.
        lines = named_lines(cue) if cue.named else cue.lines
        # SRT has no escaping: an arrow in the text is all a parser could mistake for timing.
        text = "\n".join(line.replace("-->", "->") for line in lines)
        blocks.append(f"{number}\n{timestamp(cue.start, ',')} --> {timestamp(cue.end, ',')}\n{text}")
    return "\n\n".join(blocks) + "\n"


def write_txt(doc: Document) -> str:
    parts = [doc.episode.title, ""]
    for paragraph in doc.paragraphs:
        speaker = f"{paragraph.speaker}: " if paragraph.speaker else ""
        parts += [f"[{paragraph.timestamp}] {speaker}{paragraph.text}", ""]
    return "\n".join(parts)


def write_podcast_json(doc: Document) -> str:
    """The Podcasting 2.0 JSON transcript: https://github.com/Podcastindex-org/podcast-namespace"""
    segments = []
    for cue in doc.cues:
        segment = {"startTime": round(cue.start, 3), "endTime": round(cue.end, 3), "body": cue.text}
        if cue.speaker:
            segment = {"speaker": cue.speaker, **segment}
        segments.append(segment)
    return json.dumps({"version": "1.0.0", "segments": segments}, ensure_ascii=False, indent=1) + "\n"


_PAGE_WORDS = {
    "en": {"transcript": "Transcript", "published": "Published", "duration": "Duration",
           "speakers": "Speakers:", "colon": ":",
           "machine": "Transcribed automatically by podarchive: it may contain errors."},
    "fr": {"transcript": "Transcription", "published": "Publié le", "duration": "Durée",
           "speakers": "Voix :", "colon": "\u00a0:",
           "machine": "Transcription automatique par podarchive : elle peut contenir des erreurs."},
}
_REVIEWED = {"en": "Transcript reviewed by the producers.", "fr": "Transcription revue par l'équipe."}

TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("pipeline", "templates"),
    autoescape=True,
    keep_trailing_newline=True,
    trim_blocks=True,
    lstrip_blocks=True,
)


def write_html(doc: Document) -> str:
    lang = doc.language or doc.archive.language
    words = dict(_PAGE_WORDS.get(lang.split("-")[0], _PAGE_WORDS["en"]))
    if doc.transcript.reviewed:
        words["machine"] = _REVIEWED.get(lang.split("-")[0], _REVIEWED["en"])
    speakers = list(dict.fromkeys(p.speaker for p in doc.paragraphs if p.speaker))
    return TEMPLATES.get_template("transcript.html").render(
        archive=doc.archive, episode=doc.episode, lang=lang, words=words,
        paragraphs=[{"anchor": p.anchor, "timestamp": p.timestamp, "speaker": p.speaker,
                     "language": p.language,
                     "segments": [{"id": s.id, "text": segment_text(s)} for s in p.segments]}
                    for p in doc.paragraphs],
        # A length, rounded as feed.xml's itunes:duration rounds it: the page and the
        # feed state one duration.
        duration=clock(round(doc.transcript.duration)), speakers=speakers,
    )


WRITERS: dict[str, Callable[[Document], str]] = {
    "vtt": write_vtt,
    "srt": write_srt,
    "txt": write_txt,
    "json": write_podcast_json,
    "html": write_html,
}


def chapters_json(episode: PublicEpisode) -> str:
    """The Podcasting 2.0 JSON chapters file."""
    chapters = []
    for chapter in episode.chapters:
        entry = {"startTime": chapter.start, "title": chapter.title}
        if chapter.url:
            entry["url"] = chapter.url
        chapters.append(entry)
    return dump_json({"version": "1.2.0", "chapters": chapters})


def render_episode(archive: PublicArchive, episode: PublicEpisode) -> list[Path]:
    """Write every format of one episode, and its chapters, into feed/episodes/<slug>/;
    returns what changed."""
    transcript = episode.transcript
    doc = Document(archive, episode, build_cues(transcript), paragraphs(transcript))
    changed = []
    for name, writer in WRITERS.items():
        path = layout.transcript_file(archive.root, episode.slug, name)
        if write_if_changed(path, writer(doc).encode("utf-8")):
            changed.append(path)
    chapters = layout.episode_dir(archive.root, episode.slug) / layout.CHAPTERS_FILE
    if episode.chapters and write_if_changed(chapters, chapters_json(episode).encode()):
        changed.append(chapters)
    elif not episode.chapters and chapters.exists():
        chapters.unlink()
        changed.append(chapters)
    return changed


def withdraw_folders(view: PublicView) -> list[Outcome]:
    """Remove from feed/ every episode folder the gate does not let through now."""
    root = layout.episodes_dir(view.archive.root)
    if not root.is_dir():
        return []
    published = view.slugs
    return [withdraw_file(folder, folder.name, "removed from feed/")
            for folder in sorted(root.iterdir()) if folder.name not in published]


def render_archive(view: PublicView) -> list[Outcome]:
    """Render every episode of the public view into feed/, but those whose public view,
    podarchive's code and rendered files are as the last render left them (recorded in
    layout.RENDER_STAMPS_FILE): deriving cues and pages is what costs, not comparing them."""
    stamps_file = view.archive.root / layout.RENDER_STAMPS_FILE
    try:
        recorded = json.loads(stamps_file.read_text("utf-8"))
    except (OSError, ValueError):
        recorded = {}
    fresh: dict[str, list] = {}

    def render(episode: PublicEpisode) -> Outcome:
        made_from = hashlib.sha256(f"{code_stamp()}{view.archive!r}{episode!r}".encode()).hexdigest()
        if recorded.get(episode.slug) == [made_from, _rendered_files(view.archive.root, episode)]:
            fresh[episode.slug] = recorded[episode.slug]
            return Outcome(episode.slug, Status.UP_TO_DATE)
        changed = render_episode(view.archive, episode)
        fresh[episode.slug] = [made_from, _rendered_files(view.archive.root, episode)]
        return Outcome(episode.slug, Status.RENDERED if changed else Status.UP_TO_DATE)

    outcomes = each_episode(view, render)
    write_if_changed(stamps_file, json.dumps(fresh).encode())  # a run that renders nothing changes no byte
    return outcomes


def _rendered_files(root: Path, episode: PublicEpisode) -> list[list[int] | None]:
    """Size and modification time of each file rendered for ``episode``: one edited or
    deleted since is rendered again."""
    paths = [layout.transcript_file(root, episode.slug, name) for name in WRITERS]
    if episode.chapters:
        paths.append(layout.episode_dir(root, episode.slug) / layout.CHAPTERS_FILE)
    return [file_state(path) for path in paths]
