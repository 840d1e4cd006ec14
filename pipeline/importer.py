"""Bring an existing podcast in: each item of its feed becomes an episode folder, with its
recording downloaded and its published transcript kept as the starting transcript.

Re-running an import adds the items it has not seen (by guid) and touches nothing else:
a producer's edits to an imported episode are never overwritten. A download cut off
midway is resumed where it stopped (an HTTP range request) on the next run.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import html
import io
import json
import re
import shutil
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from urllib.parse import urljoin, urlsplit

from . import __version__, layout
from .archive import AUDIO_SUFFIXES, load_archive
from .audio import probe
from .create import init_archive, place_episode, slug_of, toml_string
from .errors import PodarchiveError
from .model import IMPORTED_MODEL, Outcome, Segment, Status, Transcript, Word
from .redaction import Matcher
from .storage import atomic_write_json, sha256_file
from .text import join_words
from .transcribe import sentences

PODCAST_NAMESPACES = ("https://podcastindex.org/namespace/1.0",
                      "https://github.com/Podcastindex-org/podcast-namespace/blob/main/docs/1.0.md")
USER_AGENT = f"podarchive/{__version__} (+https://pypi.org/project/podarchive/)"
TIMEOUT_SECONDS = 30
_CHUNK = 1 << 16
# Transcript formats podarchive reads, best first: the JSON says who speaks and may time
# every word; captions time their lines. HTML and plain text hold no times.
TRANSCRIPT_TYPES = {"application/json": "json", "text/vtt": "vtt", "application/x-subrip": "srt",
                    "application/srt": "srt", "text/srt": "srt"}
# Podcasting 2.0 roles (its taxonomy) as podarchive's.
ROLE_OF = {"host": "host", "co-host": "host", "guest-host": "host", "guest": "guest", "narrator": "narrator",
           "interviewer": "interviewer", "announcer": "narrator", "voice actor": "narrator"}
AUDIO_TYPES = {"audio/mpeg": ".mp3", "audio/mp3": ".mp3", "audio/mp4": ".m4a", "audio/x-m4a": ".m4a",
               "audio/aac": ".m4a", "audio/ogg": ".ogg", "audio/opus": ".opus", "audio/flac": ".flac",
               "audio/x-flac": ".flac", "audio/wav": ".wav", "audio/x-wav": ".wav"}


@dataclass
class Enclosure:
    url: str
    type: str = ""
    length: int = 0


@dataclass
class Item:
    """What one item of a feed says of its episode."""

    guid: str
    title: str
    published: dt.datetime | None
    description: str = ""
    season: int | None = None
    number: int | None = None
    language: str = ""
    enclosure: Enclosure | None = None
    persons: list[dict[str, str]] = field(default_factory=list)
    chapters_url: str | None = None
    transcripts: list[tuple[str, str, str]] = field(default_factory=list)  # url, format, language


@dataclass
class Podcast:
    """What a feed's channel says of the podcast, and its items."""

    source: str
    title: str
    description: str
    author: str
    language: str
    link: str
    owner_email: str
    locked_by: str | None
    items: list[Item]


def read_podcast(source: str) -> Podcast:
    """The feed at ``source`` (an http(s) URL or a file), read with feedparser, the
    Podcasting 2.0 tags it leaves out read from the XML itself."""
    import feedparser
    from lxml import etree

    data = _fetch(source) if _is_url(source) else _read_file(source)
    try:
        root = etree.fromstring(data, etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False))
    except etree.XMLSyntaxError as error:
        raise PodarchiveError(source, None, f"not a well-formed feed: {error}") from None
    channel = root.find("channel")
    if root.tag != "rss" or channel is None:
        raise PodarchiveError(source, None, f"not an RSS feed (its root is <{etree.QName(root).localname}>)")
    parsed = feedparser.parse(data)
    info = parsed.feed
    language = _language(info.get("language", ""))
    base = source if _is_url(source) else ""
    elements = channel.findall("item")
    if len(elements) != len(parsed.entries):
        raise PodarchiveError(source, None, f"its {len(elements)} <item>s read as {len(parsed.entries)}: "
                                            "not a feed podarchive can import item by item")
    items = [_item(entry, element, base, language) for entry, element in zip(parsed.entries, elements)]
    locked = _podcast_tag(channel, "locked")
    owner = info.get("publisher_detail", {}) or {}
    return Podcast(
        source=source, title=info.get("title", "").strip(), description=_plain(info.get("summary", "")),
        author=info.get("author", "") or owner.get("name", ""), language=language or "en",
        link=info.get("link", ""), owner_email=owner.get("email", ""),
        locked_by=(locked.get("owner", "") if locked is not None and (locked.text or "").strip().lower() == "yes"
                   else None),
        items=items,
    )


def import_podcast(root: Path, podcast: Podcast, *, retranscribe: bool = False, owner_ok: bool = False,
                   on_start: Callable[[int], None] | None = None,
                   progress: Callable[[int], None] | None = None) -> list[Outcome]:
    """Each item of ``podcast`` not in the archive at ``root`` yet, as a new episode
    folder; the archive itself made from the channel when there is none. One item that
    fails does not stop the others."""
    root = Path(root)
    settings = root / layout.ARCHIVE_FILE
    if podcast.locked_by is not None and not owner_ok:
        ours = load_archive(root).owner.get("email", "") if settings.exists() else ""
        if not podcast.locked_by or ours.lower() != podcast.locked_by.lower():
            raise PodarchiveError(podcast.source, "podcast:locked", (
                f"its owner ({podcast.locked_by or 'not named'}) locked it against imports elsewhere; "
                "if you are that owner, pass --owner-ok"))
    if not settings.exists():
        init_archive(root, title=podcast.title or None, author=podcast.author, email=podcast.owner_email,
                     language=podcast.language, description=podcast.description,
                     **({"base_url": podcast.link.rstrip("/") + "/"} if _is_url(podcast.link) else {}))
    archive = load_archive(root)
    known = {archive.guid_of(episode): episode.slug for episode in archive.episodes}
    taken = {path.name for path in layout.sources_dir(root).iterdir()}
    withheld = Matcher(archive.redact)
    todo: list[Item] = []
    outcomes: list[Outcome] = []
    seen: dict[str, Item] = {}
    for item in podcast.items:
        if item.guid in known:
            outcomes.append(Outcome(known[item.guid], Status.UP_TO_DATE))
        elif item.guid in seen:
            outcomes.append(Outcome(item.title, Status.SKIPPED,
                                    f"its guid {item.guid!r} is also the guid of {seen[item.guid].title!r}"))
        elif item.enclosure is None:
            outcomes.append(Outcome(item.title, Status.SKIPPED, "no enclosure: the item has no recording"))
        else:
            seen[item.guid] = item
            todo.append(item)
    if on_start:
        on_start(sum(item.enclosure.length for item in todo))
    for item in todo:
        slug = _unique(slug_of(withheld.mask(item.title).text if withheld else item.title), taken)
        try:
            left_out = _import_item(root, item, slug, retranscribe=retranscribe, progress=progress)
            taken.add(slug)
            imported = (layout.source_dir(root, slug) / layout.TRANSCRIPT_FILE).exists()
            outcomes.append(Outcome(slug, Status.IMPORTED, "; ".join(
                ["transcript imported" if imported else "to transcribe", *left_out])))
        except PodarchiveError as error:
            outcomes.append(Outcome(slug, Status.FAILED, str(error), error=error))
    return outcomes


def _import_item(root: Path, item: Item, slug: str, *, retranscribe: bool,
                 progress: Callable[[int], None] | None) -> list[str]:
    """The episode folder of ``item``, built beside its final place (where a cut-off
    download waits for the next run) and renamed into place once whole; what was left
    out of it, and why."""
    # Named by the guid, not the slug: the next run finds its part-downloaded recording.
    building = layout.sources_dir(root) / f".import-{hashlib.sha256(item.guid.encode()).hexdigest()[:16]}"
    audio = building / _audio_name(item.enclosure)
    building.mkdir(exist_ok=True)
    for stale in building.iterdir():  # what an earlier, unfinished attempt wrote beside the recording
        if stale != audio:
            stale.unlink()
    try:
        download(item.enclosure.url, audio, progress)
    except PodarchiveError:
        if not audio.exists() or not audio.stat().st_size:  # nothing to resume from
            shutil.rmtree(building)
        raise
    try:
        info = probe(audio)
    except PodarchiveError as error:
        shutil.rmtree(building)
        raise PodarchiveError(item.enclosure.url, None, f"not a recording podarchive can read: {error.message}") from None
    notes = []
    chapters = []
    if item.chapters_url:
        try:
            chapters = [c for c in read_chapters(_fetch(item.chapters_url), item.chapters_url)
                        if c["start"] < info.duration]
        except PodarchiveError as error:
            notes.append(f"chapters left out: {error}")
    transcript = None
    if not retranscribe:
        transcript = _first_transcript(item, slug, audio, info.duration, notes)
    language = (transcript.language if transcript else "") or item.language
    (building / layout.EPISODE_FILE).write_text(
        episode_toml(item, audio.name, language, chapters), encoding="utf-8")
    if transcript is not None:
        atomic_write_json(building / layout.TRANSCRIPT_FILE, transcript.to_json())
    place_episode(building, layout.source_dir(root, slug))
    return notes


def _first_transcript(item: Item, slug: str, audio: Path, duration: float, notes: list[str]) -> Transcript | None:
    """The best transcript the item links to that reads, as a starting transcript."""
    for url, kind, language in sorted(item.transcripts, key=lambda t: list(TRANSCRIPT_TYPES.values()).index(t[1])):
        try:
            cues = read_cues(_fetch(url).decode("utf-8-sig"), kind, url)
        except (PodarchiveError, UnicodeDecodeError) as error:
            notes.append(f"transcript left out: {error}")
            continue
        if cues:
            return imported_transcript(slug, cues, language or item.language, duration, sha256_file(audio), url)
    return None


# --- Reading the feed -------------------------------------------------------------------


def _item(entry, element, base: str, language: str) -> Item:
    enclosure = next((Enclosure(urljoin(base, e.get("href", "")), e.get("type", ""), _int(e.get("length")) or 0)
                      for e in entry.get("enclosures", []) if e.get("href")), None)
    transcripts = []
    for tag in _podcast_tags(element, "transcript"):
        kind = TRANSCRIPT_TYPES.get((tag.get("type") or "").split(";")[0].strip().lower())
        if kind and tag.get("url"):
            transcripts.append((urljoin(base, tag.get("url")), kind, _language(tag.get("language", ""))))
    persons = [{"name": " ".join((tag.text or "").split()), "role": ROLE_OF.get((tag.get("role") or "").lower(), "guest"),
                **{key: tag.get(key) for key in ("href", "img") if tag.get(key)}}
               for tag in _podcast_tags(element, "person") if (tag.text or "").strip()]
    chapters = next(iter(_podcast_tags(element, "chapters")), None)
    published = entry.get("published_parsed")
    title = " ".join(entry.get("title", "").split())
    return Item(
        guid=entry.get("id") or (enclosure.url if enclosure else title),
        title=title,
        published=dt.datetime(*published[:6], tzinfo=dt.UTC) if published else None,
        description=_plain(entry.get("summary", "")),
        season=_int(entry.get("itunes_season")), number=_int(entry.get("itunes_episode")),
        language=language, enclosure=enclosure, persons=persons,
        chapters_url=urljoin(base, chapters.get("url")) if chapters is not None and chapters.get("url") else None,
        transcripts=transcripts,
    )


def _podcast_tags(element, name: str) -> list:
    return [found for namespace in PODCAST_NAMESPACES for found in element.findall(f"{{{namespace}}}{name}")]


def _podcast_tag(element, name: str):
    return next(iter(_podcast_tags(element, name)), None)


def _int(value) -> int | None:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


def _language(code: str) -> str:
    """A feed's language ("en-us", "fr-CA") as whisper names it ("en", "fr")."""
    primary = code.strip().lower().split("-")[0].split("_")[0]
    return primary if re.fullmatch(r"[a-z]{2,3}", primary) else ""


def _plain(markup: str) -> str:
    """An item's description (HTML, often) as plain text, its paragraphs kept."""
    if "<" not in markup:
        return html.unescape(markup).strip()
    from lxml import html as lxml_html

    markup = re.sub(r"(?i)<br\s*/?>|</p>", "\n", markup)
    text = lxml_html.fromstring(f"<div>{markup}</div>").text_content()
    return "\n".join(" ".join(line.split()) for line in text.splitlines() if line.strip())


def read_chapters(data: bytes, source: str) -> list[dict]:
    """A Podcasting 2.0 chapters file's chapters (start, title, url), in order."""
    try:
        chapters = json.loads(data)["chapters"]
        found = [{"start": float(c["startTime"]), "title": " ".join(str(c["title"]).split()),
                  **({"url": c["url"]} if c.get("url") else {})}
                 for c in chapters if c.get("title") and c.get("toc", True) is not False]
    except (ValueError, KeyError, TypeError) as error:
        raise PodarchiveError(source, "chapters", f"not a Podcasting 2.0 chapters file ({error})") from None
    return sorted(found, key=lambda chapter: chapter["start"])


# --- Transcripts ------------------------------------------------------------------------


@dataclass
class Cue:
    start: float
    end: float
    text: str
    speaker: str = ""


def read_cues(text: str, kind: str, source: str) -> list[Cue]:
    """The timed lines of a transcript in ``kind`` (json, vtt or srt)."""
    try:
        if kind == "json":
            cues = [Cue(float(s["startTime"]), float(s["endTime"]), str(s["body"]), str(s.get("speaker") or ""))
                    for s in json.loads(text)["segments"]]
        elif kind == "vtt":
            import webvtt

            cues = [Cue(c.start_time.in_milliseconds() / 1000, c.end_time.in_milliseconds() / 1000, c.text,
                        c.voice or "") for c in webvtt.from_buffer(io.StringIO(text))]
        else:
            import srt

            cues = [Cue(c.start.total_seconds(), c.end.total_seconds(), c.content) for c in srt.parse(text)]
    except Exception as error:  # noqa: BLE001 - each reader raises its own kinds
        raise PodarchiveError(source, None, f"not a readable {kind} transcript ({error})") from None
    cleaned = []
    for cue in cues:
        words = html.unescape(re.sub(r"<[^>]*>", "", cue.text)).split()
        if words and cue.end > cue.start >= 0:
            cleaned.append(Cue(cue.start, cue.end, " ".join(words), cue.speaker.strip()))
    return sorted(cleaned, key=lambda cue: cue.start)


def imported_transcript(slug: str, cues: list[Cue], language: str, duration: float, audio_sha256: str,
                        source: str) -> Transcript:
    """``cues`` as a starting transcript: its words spread over their cue by length (the
    align stage times them against the recording), cut into segments as whisper's are."""
    segments: list[Segment] = []
    for speaker_cues in _runs_of_one_speaker(cues):
        words = [word for cue in speaker_cues for word in _spread(cue)]
        run = Segment(0, words[0].start, words[-1].end, join_words([w.text for w in words]),
                      speaker=speaker_cues[0].speaker, words=words)
        segments += sentences(run, language)
    for number, segment in enumerate(segments):
        segment.id = number
    transcript = Transcript(episode=slug, language=language, duration=round(duration, 3), model=IMPORTED_MODEL,
                            options={"imported_from": source}, audio_sha256=audio_sha256, segments=segments,
                            podarchive_version=__version__)
    transcript.timing_sha256 = transcript.words_digest()
    return transcript


def _runs_of_one_speaker(cues: list[Cue]) -> list[list[Cue]]:
    runs: list[list[Cue]] = []
    for cue in cues:
        if runs and runs[-1][-1].speaker == cue.speaker:
            runs[-1].append(cue)
        else:
            runs.append([cue])
    return runs


def _spread(cue: Cue) -> list[Word]:
    texts = cue.text.split()
    weights = [len(text) + 1 for text in texts]
    step = (cue.end - cue.start) / sum(weights)
    words, at = [], cue.start
    for text, weight in zip(texts, weights):
        words.append(Word(text, round(at, 3), round(at + weight * step, 3), 1.0))
        at += weight * step
    return words


# --- Writing the episode ----------------------------------------------------------------


def episode_toml(item: Item, audio: str, language: str, chapters: list[dict]) -> str:
    """The episode.toml of an imported item."""
    lines = [f"title = {toml_string(item.title or 'Untitled')}",
             f"date = {(item.published or dt.datetime.now(dt.UTC).replace(microsecond=0)).isoformat()}",
             f"audio = {toml_string(audio)}",
             f"guid = {toml_string(item.guid)}"]
    if language:
        lines.append(f"language = {toml_string(language)}")
    if item.description:
        lines.append(f"description = {toml_string(item.description)}")
    lines += [f"{key} = {value}" for key, value in (("season", item.season), ("number", item.number))
              if value is not None and value > 0]
    for person in item.persons:
        lines += ["", "[[persons]]", *(f"{key} = {toml_string(value)}" for key, value in person.items())]
    for chapter in chapters:
        lines += ["", "[[chapters]]", f"start = {chapter['start']}", f"title = {toml_string(chapter['title'])}",
                  *([f"url = {toml_string(chapter['url'])}"] if chapter.get("url") else [])]
    return "\n".join(lines) + "\n"


def _audio_name(enclosure: Enclosure) -> str:
    name = PurePosixPath(urlsplit(enclosure.url).path).name
    stem, suffix = PurePosixPath(name).stem, PurePosixPath(name).suffix.lower()
    if suffix not in AUDIO_SUFFIXES:
        suffix = AUDIO_TYPES.get(enclosure.type.split(";")[0].strip().lower(), "")
        if not suffix:
            raise PodarchiveError(enclosure.url, "enclosure", f"not a recording podarchive reads "
                                  f"({enclosure.type or 'no type'}; {', '.join(AUDIO_SUFFIXES)})")
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip("-.") or "audio"
    return f"{stem[:60]}{suffix}"


def _unique(slug: str, taken: set[str]) -> str:
    found, n = slug, 2
    while found in taken:
        found, n = f"{slug}-{n}", n + 1
    return found


# --- HTTP -------------------------------------------------------------------------------


def _is_url(source: str) -> bool:
    return urlsplit(source).scheme in ("http", "https")


def _read_file(source: str) -> bytes:
    try:
        return Path(source).read_bytes()
    except OSError as error:
        raise PodarchiveError(source, None, f"cannot read: {error.strerror or error}") from None


def _open(url: str, headers: dict[str, str] | None = None):
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, **(headers or {})})
    try:
        return urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS)
    except urllib.error.HTTPError as error:
        if error.code == 416:  # asked for bytes past the end: the caller knows what it has
            return error
        raise PodarchiveError(url, None, f"HTTP {error.code} {error.reason}") from None
    except (urllib.error.URLError, TimeoutError, OSError) as error:
        raise PodarchiveError(url, None, f"cannot download: {getattr(error, 'reason', error)}") from None


def _fetch(url: str) -> bytes:
    if not _is_url(url):
        raise PodarchiveError(url, None, "not an http(s) address")
    with _open(url) as response:
        try:
            return response.read()
        except OSError as error:
            raise PodarchiveError(url, None, f"download cut off: {error}") from None


def download(url: str, target: Path, progress: Callable[[int], None] | None = None) -> None:
    """``url`` into ``target``, resumed from what ``target`` already holds, checked
    against the length the server announces."""
    if not _is_url(url):
        raise PodarchiveError(url, "enclosure", "not an http(s) address")
    have = target.stat().st_size if target.exists() else 0
    with _open(url, {"Range": f"bytes={have}-"} if have else None) as response:
        status = getattr(response, "status", None) or response.getcode()
        if status == 416:  # nothing past what we have: whole if the server says so
            total = _int((response.headers.get("Content-Range") or "").rpartition("/")[2])
            if total == have:
                return
            target.unlink()
            raise PodarchiveError(url, None, "the server refused to resume the download: run import again")
        if status == 206:
            first, total = _content_range(response.headers.get("Content-Range", ""))
            if first != have:
                raise PodarchiveError(url, None, f"the server resumed at byte {first}, not {have}")
            mode = "ab"
        else:  # a server that ignores ranges sends it all again
            have, mode = 0, "wb"
            length = _int(response.headers.get("Content-Length"))
            total = length
        if progress and have:
            progress(have)
        with open(target, mode) as out:
            try:
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    if progress:
                        progress(len(chunk))
            except OSError as error:
                raise PodarchiveError(url, None, f"download cut off ({error}): run import again to resume") from None
    size = target.stat().st_size
    if total is not None and size != total:
        raise PodarchiveError(url, None, f"download cut off at {size} of {total} bytes: run import again to resume")


def _content_range(header: str) -> tuple[int | None, int | None]:
    match = re.fullmatch(r"\s*bytes\s+(\d+)-\d+/(\d+|\*)\s*", header)
    if not match:
        return None, None
    return int(match.group(1)), _int(match.group(2))
