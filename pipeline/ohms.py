"""An interview handed on to oral-history tools: OHMS XML, the format of the University of
Kentucky's OHMS viewer (also read by Aviary and Omeka S's OHMS module), made from the
public view only.

Written as the viewer reads it (uklibraries/ohms-viewer, app/Ohms/Transcript.php and
Interview/Version3.php): the default namespace (a prefixed one is invisible to it), a
<version> (without one it takes its legacy path), and timing in <sync>, where each
minute points at the transcript line it begins on (lines are counted from 0; the
viewer shows the minute as an [HH:MM:SS] link there). A literal [HH:MM:SS] in the text
would be shown as text, so a line is cut where each minute begins instead, and the
link lands on the word. A speaker's turn opens with "NAME:" in capitals, the only form
the viewer takes for a speaker; turns are paragraphs (a blank line between them).
"""

from __future__ import annotations

import html
import math
import re
import zlib
from pathlib import Path

from lxml import etree

from . import layout
from .formats import clock
from .model import Segment, Word
from .privacy import PublicArchive, PublicChapter, PublicEpisode
from .storage import atomic_write_bytes
from .text import join_words, without_accents

NAMESPACE = "https://www.weareavp.com/nunncenter/ohms"
SCHEMA_VERSION = "5.4"
LANGUAGE_NAMES = {"en": "English", "fr": "French", "de": "German", "es": "Spanish", "it": "Italian"}
INTERVIEWEE_ROLES = ("guest", "narrator")
INTERVIEWER_ROLES = ("interviewer", "host")
# The viewer's pattern for a speaker: capitals, spaces, hyphens, dots and apostrophes.
SPEAKER_CHARACTERS = re.compile(r"[^A-Z .'-]")


def ohms_xml(archive: PublicArchive, episode: PublicEpisode) -> bytes:
    """The OHMS XML of one published episode."""
    lines, sync = transcript_lines(episode.transcript.segments)
    record_fields: list[tuple[str, str]] = [
        ("version", SCHEMA_VERSION),
        ("title", episode.title),
        ("accession", episode.slug),
        ("duration", clock(episode.transcript.duration)),
        ("collection_name", archive.title),
        ("repository", archive.author),
        ("interviewee", _names(episode, INTERVIEWEE_ROLES)),
        ("interviewer", _names(episode, INTERVIEWER_ROLES)),
        ("file_name", layout.audio_file(archive.root, episode.slug).name),
        ("sync", sync),
        ("media_url", layout.audio_url(archive.base_url, episode.slug)),
    ]
    ns = f"{{{NAMESPACE}}}"
    root = etree.Element(ns + "ROOT", nsmap={None: NAMESPACE})
    record = etree.SubElement(root, ns + "record", id=str(zlib.crc32(episode.guid.encode()) & 0x7FFFFFFF),
                              dt=episode.date.isoformat())
    for name, value in record_fields:
        etree.SubElement(record, ns + name).text = _shown(value)
        if name == "version":  # the schema's order, which the viewer does not mind
            etree.SubElement(record, ns + "date", value=episode.date.isoformat(), format="yyyy-mm-dd")
    media = etree.SubElement(record, ns + "mediafile")
    etree.SubElement(media, ns + "host").text = "Other"
    etree.SubElement(media, ns + "clip_format").text = "audio"
    etree.SubElement(record, ns + "language").text = LANGUAGE_NAMES.get(episode.content_language,
                                                                       episode.content_language)
    index = etree.SubElement(record, ns + "index")
    for chapter in episode.chapters:
        _index_point(index, ns, chapter, episode.transcript.segments)
    etree.SubElement(record, ns + "type").text = "Interview"
    etree.SubElement(record, ns + "description").text = _shown(episode.description)
    # Line numbers in <sync> count from the transcript's first character: nothing before it.
    etree.SubElement(record, ns + "transcript").text = "".join(f"{_shown(line)}\n" for line in lines)
    etree.SubElement(record, ns + "rights").text = _shown(archive.license or "")
    etree.SubElement(record, ns + "fmt").text = "audio"
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=False) + b"\n"


def transcript_lines(segments: list[Segment]) -> tuple[list[str], str]:
    """The transcript's lines (a speaker's turn opening with "NAME:", a blank line between
    turns, a line cut where each minute begins) and the <sync> that points at them."""
    lines: list[str] = []
    marks: list[str] = []
    minute = 1
    speaker: str | None = None
    for segment in segments:
        label = speaker_label(segment.speaker) if segment.speaker != speaker else ""
        if segment.speaker != speaker and lines:
            lines.append("")
        speaker = segment.speaker
        for piece in _cut_at_minutes(segment.words, minute) or [[]]:  # a segment without words: its text
            while piece and piece[0].start >= minute * 60:  # this line begins the minute (or minutes without words)
                marks.append(f"{len(lines)}({len(label.split()) + 1})")
                minute += 1
            text = join_words([w.text for w in piece]) if piece else segment.text
            lines.append(f"{label} {text}" if label else text)
            label = ""
    return lines, "1:|" + "|".join(marks) if marks else ""


def _cut_at_minutes(words: list[Word], minute: int) -> list[list[Word]]:
    """``words`` cut before each word that begins a new minute (from ``minute`` on)."""
    pieces: list[list[Word]] = [[]]
    for word in words:
        if pieces[-1] and word.start >= minute * 60:
            pieces.append([])
        while word.start >= minute * 60:
            minute += 1
        pieces[-1].append(word)
    return [piece for piece in pieces if piece]


def speaker_label(name: str) -> str:
    """A speaker's name as the viewer recognises one: "Éric Joanis" -> "ERIC JOANIS:",
    "Speaker 2" -> "SPEAKER B:"."""
    if not name:
        return ""
    lettered = re.sub(r"\d+", lambda n: _letters(int(n.group())), without_accents(name).upper())
    label = " ".join(SPEAKER_CHARACTERS.sub(" ", lettered).split())
    return f"{label}:" if label else ""


def _letters(number: int) -> str:
    """1 -> A, 26 -> Z, 27 -> AA: a number where the viewer takes no digit."""
    letters = ""
    while number > 0:
        number, rest = divmod(number - 1, 26)
        letters = chr(ord("A") + rest) + letters
    return letters or "A"


def _index_point(index, ns: str, chapter: PublicChapter, segments: list[Segment]) -> None:
    point = etree.SubElement(index, ns + "point")
    said = next((segment.text for segment in segments if segment.end > chapter.start), "")
    for name, value in (("time", str(math.floor(chapter.start))), ("title", chapter.title),
                        ("title_alt", chapter.title_alt), ("partial_transcript", said),
                        ("partial_transcript_alt", ""), ("synopsis", chapter.synopsis),
                        ("synopsis_alt", chapter.synopsis_alt),
                        ("keywords", ";".join(chapter.keywords)), ("keywords_alt", ";".join(chapter.keywords_alt)),
                        ("subjects", ""), ("subjects_alt", "")):
        etree.SubElement(point, ns + name).text = _shown(value)
    # Written even when empty: without them the viewer falls back to a path of its own.
    gps = etree.SubElement(point, ns + "gpspoints")
    for name in ("gps", "gps_zoom", "gps_text", "gps_text_alt"):
        etree.SubElement(gps, ns + name).text = ""
    links = etree.SubElement(point, ns + "hyperlinks")
    for name, value in (("hyperlink", chapter.url or ""), ("hyperlink_text", chapter.title if chapter.url else ""),
                        ("hyperlink_text_alt", "")):
        etree.SubElement(links, ns + name).text = _shown(value)


def _names(episode: PublicEpisode, roles: tuple[str, ...]) -> str:
    # The viewer joins repeated elements with nothing between them: one element, "; " inside.
    return "; ".join(person.name for person in episode.persons if person.role in roles)


def _shown(text: str) -> str:
    """``text`` as the viewer shows it: it writes what it reads into the page as HTML, and
    reads [[…]] as footnotes."""
    return html.escape(text, quote=False).replace("[[", "[ [")


def write_ohms(archive: PublicArchive, episode: PublicEpisode, target: Path) -> Path:
    """The OHMS XML of ``episode`` written to ``target`` (whole, or not at all)."""
    atomic_write_bytes(target, ohms_xml(archive, episode))
    return target
