"""Publish: the enclosures, chapters and the RSS feed under feed/, for podcast apps.

feed/feed.xml is RSS 2.0 with the iTunes tags Apple requires and the Podcasting 2.0
namespace (https://podcastindex.org/namespace/1.0), written by feedgen; the podcast:
tags live in one feedgen extension pair, as feedgen's own iTunes extension does.
"""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path

# feedgen.util uses lxml.etree without importing it: import it first.
from lxml import etree

# isort: split
from feedgen.ext.base import BaseEntryExtension, BaseExtension
from feedgen.ext.podcast import PodcastExtension
from feedgen.ext.podcast_entry import PodcastEntryExtension
from feedgen.feed import FeedGenerator
from feedgen.util import xml_elem

from . import __version__
from .audio import publish_audio, published_audio_info
from .errors import PodarchiveError
from .formats import WRITERS, episode_dir
from .model import Archive, Episode, Outcome, Transcript
from .privacy import published_episode, silenced_spans, through_the_gate
from .storage import dump_json, write_if_changed

PODCAST_NS = "https://podcastindex.org/namespace/1.0"
ITUNES_NS = "http://www.itunes.com/dtds/podcast-1.0.dtd"
# The namespace the Podcasting 2.0 spec fixes for podcast:guid (UUIDv5 of the feed URL).
PODCAST_GUID_NAMESPACE = uuid.UUID("ead4c236-bf58-58c6-a2c6-a6b28d128cb6")
FEED_FILE = "feed.xml"

TRANSCRIPT_TYPES = {
    "vtt": ("text/vtt", "captions"),
    "srt": ("application/x-subrip", "captions"),
    "json": ("application/json", None),
    "html": ("text/html", None),
    "txt": ("text/plain", None),
}
# Our roles, as the Podcasting 2.0 person taxonomy names them (group "cast").
PERSON_ROLES = {"host": "host", "guest": "guest", "narrator": "narrator", "interviewer": "reporter"}


class PodcastIndexExtension(BaseExtension):
    """Channel-level Podcasting 2.0 tags: podcast:guid and podcast:locked."""

    def __init__(self):
        self._guid: str | None = None
        self._locked: tuple[bool, str | None] | None = None

    def extend_ns(self):
        return {"podcast": PODCAST_NS}

    def guid(self, value: str) -> None:
        self._guid = value

    def locked(self, locked: bool, owner: str | None = None) -> None:
        self._locked = (locked, owner)

    def extend_rss(self, rss_feed):
        channel = rss_feed[0]
        if self._guid:
            xml_elem(f"{{{PODCAST_NS}}}guid", channel).text = self._guid
        if self._locked:
            element = xml_elem(f"{{{PODCAST_NS}}}locked", channel)
            element.text = "yes" if self._locked[0] else "no"
            if self._locked[1]:
                element.attrib["owner"] = self._locked[1]
        return rss_feed


class PodcastIndexEntryExtension(BaseEntryExtension):
    """Item-level Podcasting 2.0 tags: transcripts, chapters, persons, season, episode."""

    def __init__(self):
        self._transcripts: list[dict[str, str]] = []
        self._chapters: str | None = None
        self._persons: list[dict[str, str]] = []
        self._season: int | None = None
        self._episode: int | None = None

    def extend_ns(self):
        return {"podcast": PODCAST_NS}

    def transcript(self, url: str, mime_type: str, language: str, rel: str | None = None) -> None:
        attributes = {"url": url, "type": mime_type, "language": language}
        if rel:
            attributes["rel"] = rel
        self._transcripts.append(attributes)

    def chapters(self, url: str) -> None:
        self._chapters = url

    def person(self, name: str, role: str, href: str | None = None, img: str | None = None) -> None:
        attributes = {"name": name, "role": role, "group": "cast"}
        attributes.update({k: v for k, v in (("href", href), ("img", img)) if v})
        self._persons.append(attributes)

    def season(self, number: int) -> None:
        self._season = number

    def episode(self, number: int) -> None:
        self._episode = number

    def extend_rss(self, entry):
        for attributes in self._transcripts:
            xml_elem(f"{{{PODCAST_NS}}}transcript", entry, **attributes)
        if self._chapters:
            xml_elem(f"{{{PODCAST_NS}}}chapters", entry, url=self._chapters,
                     type="application/json+chapters")
        for attributes in self._persons:
            attributes = dict(attributes)
            name = attributes.pop("name")
            xml_elem(f"{{{PODCAST_NS}}}person", entry, **attributes).text = name
        if self._season is not None:
            xml_elem(f"{{{PODCAST_NS}}}season", entry).text = str(self._season)
        if self._episode is not None:
            xml_elem(f"{{{PODCAST_NS}}}episode", entry).text = str(self._episode)
        return entry


def _apple_explicit(element):
    """Apple now asks for itunes:explicit as true or false; feedgen writes yes or no."""
    for explicit in element.iter(f"{{{ITUNES_NS}}}explicit"):
        explicit.text = {"yes": "true", "no": "false"}.get(explicit.text, explicit.text)
    return element


class AppleExtension(PodcastExtension):
    def extend_rss(self, rss_feed):
        return _apple_explicit(super().extend_rss(rss_feed))


class AppleEntryExtension(PodcastEntryExtension):
    def extend_rss(self, entry):
        return _apple_explicit(super().extend_rss(entry))


def feed_url(archive: Archive) -> str:
    return archive.base_url + FEED_FILE


def podcast_guid(archive: Archive) -> str:
    """UUIDv5 of the feed URL without its scheme and trailing slashes, as the spec says."""
    bare = feed_url(archive).split("://", 1)[-1].rstrip("/")
    return str(uuid.uuid5(PODCAST_GUID_NAMESPACE, bare))


def episode_guid(archive: Archive, episode: Episode) -> str:
    return episode.guid or str(uuid.uuid5(uuid.UUID(podcast_guid(archive)), episode.slug))


def public_url(archive: Archive, path: Path) -> str:
    """The URL of a file under feed/."""
    return archive.base_url + path.relative_to(archive.root / "feed").as_posix()


def _image_url(archive: Archive, image: str | None, folder: Path, target: Path) -> str | None:
    """An image given as a URL stays one; a file is copied under feed/ and linked."""
    if not image:
        return None
    if image.startswith(("http://", "https://")):
        return image
    source = folder / image
    if not source.is_file():
        raise PodarchiveError(folder / ("archive.toml" if folder == archive.root else "episode.toml"),
                              "image", f"file not found: {source}")
    published = target / f"cover{source.suffix.lower()}"
    write_if_changed(published, source.read_bytes())
    return public_url(archive, published)


def chapters_json(episode: Episode) -> str:
    """The Podcasting 2.0 JSON chapters file."""
    chapters = []
    for chapter in episode.chapters:
        entry = {"startTime": chapter.start, "title": chapter.title}
        if chapter.url:
            entry["url"] = chapter.url
        chapters.append(entry)
    return dump_json({"version": "1.2.0", "chapters": chapters})


def publish_episode_audio(archive: Archive, episode: Episode, transcript: Transcript) -> bool:
    """feed/episodes/<slug>/audio.mp3: redacted and restricted spans silenced, tagged.

    ``episode`` is the published one (privacy.published_episode); ``transcript`` the
    private one, whose words locate what must be silenced.
    """
    tags = {"title": episode.title, "artist": archive.author,
            "album": archive.title, "date": episode.date.isoformat(), "genre": "Podcast"}
    if episode.number:
        tags["track"] = str(episode.number)
    if episode.season:
        tags["disc"] = str(episode.season)
    return publish_audio(
        episode.audio_path, episode_dir(archive, episode.slug) / "audio.mp3",
        silence=silenced_spans(archive, episode, transcript), tags=tags,
        chapters=[(c.start, c.title) for c in episode.chapters],
    )


def publish_archive(archive: Archive, today: dt.date) -> list[Outcome]:
    """Every publishable episode's audio and chapters, then feed.xml listing them."""
    published: list[tuple[Episode, Transcript]] = []

    def publish(private: Episode, transcript: Transcript) -> Outcome:
        episode = published_episode(archive, private)
        changed = publish_episode_audio(archive, episode, transcript)
        chapters = episode_dir(archive, episode.slug) / "chapters.json"
        if episode.chapters:
            changed |= write_if_changed(chapters, chapters_json(episode).encode())
        elif chapters.exists():
            chapters.unlink()
            changed = True
        published.append((episode, transcript))
        return Outcome(episode.slug, "published" if changed else "up-to-date")

    outcomes = through_the_gate(archive, today, publish)
    try:
        if write_if_changed(archive.root / "feed" / FEED_FILE, build_feed(archive, published)):
            outcomes.append(Outcome(FEED_FILE, "written", f"{len(published)} episode(s)"))
    except PodarchiveError as error:
        outcomes.append(Outcome(FEED_FILE, "failed", str(error), error=error))
    return outcomes


def build_feed(archive: Archive, published: list[tuple[Episode, Transcript]]) -> bytes:
    """feed.xml's bytes: the same episodes always give the same bytes (no build-time clock)."""
    fg = FeedGenerator()
    fg.register_extension("podcast", AppleExtension, AppleEntryExtension, atom=False)
    fg.register_extension("podcastindex", PodcastIndexExtension, PodcastIndexEntryExtension, atom=False)
    fg.title(archive.title)
    fg.description(archive.description)
    fg.link(href=feed_url(archive), rel="self")
    fg.link(href=archive.base_url, rel="alternate")
    fg.language(archive.language)
    fg.generator(f"podarchive {__version__}")
    if archive.license:
        fg.rights(archive.license)
    image = _image_url(archive, archive.image, archive.root, archive.root / "feed")
    fg.podcast.itunes_author(archive.author)
    fg.podcast.itunes_summary(archive.description)
    fg.podcast.itunes_explicit("yes" if archive.explicit else "no")
    fg.podcast.itunes_type("episodic")
    if image:
        fg.image(url=image, title=archive.title, link=archive.base_url)
        fg.podcast.itunes_image(image)
    if archive.categories:
        fg.podcast.itunes_category([{"cat": category} for category in archive.categories])
    if archive.owner:
        fg.podcast.itunes_owner(name=archive.owner.get("name", archive.author),
                                email=archive.owner.get("email"))
    fg.podcastindex.guid(podcast_guid(archive))
    # Locked: other platforms must not import these testimonies without the owner.
    fg.podcastindex.locked(True, archive.owner.get("email"))

    newest_first = sorted(published, key=lambda item: (item[0].date, item[0].number or 0, item[0].slug),
                          reverse=True)
    for episode, transcript in newest_first:
        _add_item(fg, archive, episode, transcript)
    released = [_release_time(episode) for episode, _ in published]
    stamp = max(released) if released else dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    fg.lastBuildDate(stamp)
    fg.pubDate(stamp)
    return fg.rss_str(pretty=True, encoding="UTF-8", xml_declaration=True)


def _release_time(episode: Episode) -> dt.datetime:
    return dt.datetime.combine(episode.date, dt.time(12, 0), tzinfo=dt.UTC)


def _add_item(fg: FeedGenerator, archive: Archive, episode: Episode, transcript: Transcript) -> None:
    folder = episode_dir(archive, episode.slug)
    audio = published_audio_info(folder / "audio.mp3")
    language = episode.language if episode.language != "auto" else transcript.language
    entry = fg.add_entry(order="append")
    entry.title(episode.title)
    entry.guid(episode_guid(archive, episode), permalink=False)
    entry.link(href=public_url(archive, folder / "transcript.html"))
    entry.description(episode.description or episode.title)
    entry.pubDate(_release_time(episode))
    entry.enclosure(public_url(archive, audio.path), str(audio.length), "audio/mpeg")
    entry.podcast.itunes_duration(round(audio.duration))
    entry.podcast.itunes_explicit("yes" if episode.explicit else "no")
    if episode.season:
        entry.podcast.itunes_season(episode.season)
        entry.podcastindex.season(episode.season)
    if episode.number:
        entry.podcast.itunes_episode(episode.number)
        entry.podcastindex.episode(episode.number)
    image = _image_url(archive, episode.image, episode.folder, folder)
    if image:
        entry.podcast.itunes_image(image)
    for name in WRITERS:
        mime_type, rel = TRANSCRIPT_TYPES[name]
        entry.podcastindex.transcript(public_url(archive, folder / f"transcript.{name}"),
                                      mime_type, language, rel)
    if episode.chapters:
        entry.podcastindex.chapters(public_url(archive, folder / "chapters.json"))
    for person in episode.persons:
        entry.podcastindex.person(person.name, PERSON_ROLES[person.role], person.href, person.img)


def check_feed(archive: Archive) -> list[PodarchiveError]:
    """Problems in the built feed: missing required tags, links to files that are not there."""
    path = archive.root / "feed" / FEED_FILE
    if not path.exists():
        return []
    try:
        channel = etree.parse(str(path)).getroot().find("channel")
    except etree.XMLSyntaxError as error:
        return [PodarchiveError(path, "xml", f"not well-formed: {error}")]
    problems = []
    itunes, podcast = f"{{{ITUNES_NS}}}", f"{{{PODCAST_NS}}}"
    for tag in ("title", "description", "language", f"{itunes}image", f"{itunes}category",
                f"{itunes}explicit", f"{itunes}author", f"{itunes}owner", f"{podcast}guid"):
        if channel is None or channel.find(tag) is None:
            problems.append(PodarchiveError(path, "channel", f"missing <{_short(tag)}>"))
    for item in channel.findall("item") if channel is not None else []:
        name = item.findtext("title", "?")
        for tag in ("title", "guid", "pubDate", "enclosure", f"{itunes}duration", "description"):
            if item.find(tag) is None:
                problems.append(PodarchiveError(path, f"item {name!r}", f"missing <{_short(tag)}>"))
        links = [(e.get("url"), "enclosure") for e in item.findall("enclosure")]
        links += [(e.get("url"), "podcast:transcript") for e in item.findall(f"{podcast}transcript")]
        links += [(e.get("url"), "podcast:chapters") for e in item.findall(f"{podcast}chapters")]
        for url, tag in links:
            target = _local_file(archive, url)
            if target is None or not target.is_file():
                problems.append(PodarchiveError(path, f"item {name!r}",
                                                f"{tag} {url} has no file under feed/"))
        for enclosure in item.findall("enclosure"):
            target = _local_file(archive, enclosure.get("url"))
            if target is not None and target.is_file() and str(target.stat().st_size) != enclosure.get("length"):
                problems.append(PodarchiveError(path, f"item {name!r}",
                                                f"enclosure length {enclosure.get('length')} is not the "
                                                f"file's {target.stat().st_size} bytes"))
    return problems


def _short(tag: str) -> str:
    return tag.replace(f"{{{ITUNES_NS}}}", "itunes:").replace(f"{{{PODCAST_NS}}}", "podcast:")


def _local_file(archive: Archive, url: str | None) -> Path | None:
    if not url or not url.startswith(archive.base_url):
        return None
    return archive.root / "feed" / url[len(archive.base_url):]

