"""Publish: the enclosures, chapters and the RSS feed under feed/, for podcast apps, and
with the feed the website's pages (site.py), which list the same episodes.

feed/feed.xml is RSS 2.0 with the iTunes tags Apple requires and the Podcasting 2.0
namespace (https://podcastindex.org/namespace/1.0), written by feedgen; the podcast:
tags live in one feedgen extension pair, as feedgen's own iTunes extension does.
"""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

# feedgen.util uses lxml.etree without importing it: import it first.
from lxml import etree

# isort: split
from feedgen.ext.base import BaseEntryExtension, BaseExtension
from feedgen.ext.podcast import PodcastExtension
from feedgen.ext.podcast_entry import PodcastEntryExtension
from feedgen.feed import FeedGenerator
from feedgen.util import xml_elem
from PIL import Image, ImageDraw, ImageFont

from . import __version__, layout
from .enclosure import PublishedAudio, publish_audio, published_audio_info, still_safe
from .errors import PodarchiveError
from .formats import WRITERS
from .model import Outcome, Status
from .privacy import (
    PublicArchive,
    PublicEpisode,
    PublicView,
    as_podarchive_error,
    each_episode,
    withdraw_file,
)
from .site import newest_first, write_site
from .storage import write_if_changed
from .text import without_accents

PODCAST_NS = "https://podcastindex.org/namespace/1.0"
ITUNES_NS = "http://www.itunes.com/dtds/podcast-1.0.dtd"

TRANSCRIPT_TYPES = {
    "vtt": ("text/vtt", "captions"),
    "srt": ("application/x-subrip", "captions"),
    "json": ("application/json", None),
    "html": ("text/html", None),
    "txt": ("text/plain", None),
}
# Apple refuses a feed without a category: this one fits an archive of testimonies and talks.
DEFAULT_CATEGORY = "Society & Culture"
# Apple refuses a feed without a cover, and asks for a square of 1400 to 3000 pixels: when
# archive.toml gives none, one is drawn with the title.
COVER_PIXELS = 1400
COVER_MARGIN = 140
COVER_FONT_SIZES = range(160, 39, -8)
COVER_BACKGROUND = (31, 45, 61)
COVER_INK = (244, 239, 228)
# Most systems have it, with accents and many scripts; Pillow's own font has ASCII alone.
COVER_FONT = "DejaVuSans.ttf"
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


def _url(archive: PublicArchive, path: Path) -> str:
    return layout.public_url(archive.base_url, archive.root, path)


def _image_url(archive: PublicArchive, image: Path | str | None, target: Path) -> str | None:
    """An image given as a URL stays one; a file (checked by the gate) is published under
    feed/ as its pixels alone."""
    if image is None or isinstance(image, str):
        return image
    published = target / f"cover{image.suffix.lower()}"
    write_if_changed(published, _pixels_only(image))
    return _url(archive, published)


def _drawn_cover(archive: PublicArchive) -> str:
    """feed/cover.png, drawn with the archive's title: the same title, the same bytes."""
    published = layout.cover_file(archive.root)
    write_if_changed(published, cover_png(archive.title))
    return _url(archive, published)


def cover_png(title: str) -> bytes:
    """A square cover with ``title`` wrapped, in the largest size at which it fits."""
    image = Image.new("RGB", (COVER_PIXELS, COVER_PIXELS), COVER_BACKGROUND)
    draw = ImageDraw.Draw(image)
    room = COVER_PIXELS - 2 * COVER_MARGIN
    for size in COVER_FONT_SIZES:
        font, shown = _cover_font(title, size)
        text = "\n".join(_wrapped(shown, font, room))
        left, top, right, bottom = draw.multiline_textbbox((0, 0), text, font=font, spacing=size // 4)
        if right - left <= room and bottom - top <= room:
            break
    draw.multiline_text((COVER_PIXELS / 2, COVER_PIXELS / 2), text, font=font, fill=COVER_INK,
                        anchor="mm", align="center", spacing=size // 4)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def _cover_font(title: str, size: int) -> tuple[ImageFont.FreeTypeFont, str]:
    """COVER_FONT and the title, or else Pillow's own font and the title without accents,
    which that font lacks."""
    try:
        return ImageFont.truetype(COVER_FONT, size), title
    except OSError:
        return ImageFont.load_default(size=size), without_accents(title)


def _wrapped(text: str, font: ImageFont.FreeTypeFont, room: float) -> list[str]:
    """``text`` in lines no wider than ``room``: broken between words, and inside a word
    too long for a line."""
    lines: list[str] = []
    for word in text.split():
        if lines and font.getlength(f"{lines[-1]} {word}") <= room:
            lines[-1] += f" {word}"
            continue
        lines.append("")
        for character in word:
            if lines[-1] and font.getlength(lines[-1] + character) > room:
                lines.append("")
            lines[-1] += character
    return lines


def _pixels_only(path: Path) -> bytes:
    """The image without what a file can say besides its pixels (text chunks, EXIF,
    comments): a name or a place could hide there."""
    with Image.open(path) as image:
        image.load()
        kind = image.format
        clean = image.copy()
    clean.info = {}
    buffer = io.BytesIO()
    if kind == "JPEG":
        clean.save(buffer, "JPEG", quality=95)
    else:
        clean.save(buffer, "PNG")
    return buffer.getvalue()


def publish_episode_audio(archive: PublicArchive, episode: PublicEpisode) -> bool:
    """feed/episodes/<slug>/audio.mp3: the withheld spans silenced, tagged."""
    tags = {"title": episode.title, "artist": archive.author,
            "album": archive.title, "date": episode.date.isoformat(), "genre": "Podcast"}
    if episode.number:
        tags["track"] = str(episode.number)
    if episode.season:
        tags["disc"] = str(episode.season)
    return publish_audio(
        episode.audio, layout.audio_file(archive.root, episode.slug),
        source_sha256=episode.audio_sha256, silence=episode.silence, tags=tags,
        chapters=[(c.start, c.title) for c in episode.chapters],
    )


def withdraw_unsafe_audio(view: PublicView) -> list[Outcome]:
    """Remove every published mp3 that no longer keeps what must be kept: a span that
    must be silent now was not silenced in it, or a tag says a withheld name."""
    unsafe = [(episode.slug, mp3) for episode in view.episodes
              if (mp3 := layout.audio_file(view.archive.root, episode.slug)).exists()
              and not still_safe(mp3, episode.silence, view.says_withheld_name)]
    return [withdraw_file(mp3, slug, "audio.mp3 removed until it is made again with what must be "
                                     "silent now") for slug, mp3 in unsafe]


def publish_archive(view: PublicView) -> list[Outcome]:
    """Every episode's chapters and audio, then feed.xml listing the episodes whose every
    published file is in place.

    All or previous: an episode whose mp3 cannot be made keeps the one published before
    (withdrawal has already removed it if it is no longer safe); feed.xml is replaced
    only once every file it points to is there, and stays as it was if it cannot be.
    """
    archive = view.archive
    listed: list[tuple[PublicEpisode, PublishedAudio]] = []

    def publish(episode: PublicEpisode) -> Outcome:
        kept, changed = None, False
        try:
            changed = publish_episode_audio(archive, episode)
        except Exception as error:
            if not layout.audio_file(archive.root, episode.slug).exists():
                raise
            kept = as_podarchive_error(error, episode.audio)
        listed.append((episode, _in_place(archive, episode)))
        if kept is not None:
            kept = kept.noting("the audio published before stays")
            return Outcome(episode.slug, Status.FAILED, str(kept), error=kept)
        return Outcome(episode.slug, Status.PUBLISHED if changed else "up-to-date")

    outcomes = each_episode(view, publish)
    return outcomes + _write_feed(view, listed) + _drawn_cover_notice(view)


def _drawn_cover_notice(view: PublicView) -> list[Outcome]:
    """Said at every run: the producer should know the feed's cover is not theirs."""
    if view.archive.image is not None or not view.open_to_publish:
        return []
    return [Outcome(layout.COVER_FILE, Status.GENERATED,
                    f"archive.toml gives no image: {layout.FEED_DIR / layout.COVER_FILE} shows the title; give image "
                    "(a square PNG or JPEG of 1400 to 3000 pixels) for a cover of your own")]


def withdraw(view: PublicView) -> list[Outcome]:
    """Remove every mp3 that is no longer safe, then write feed.xml and the website's
    pages (if there are any) anew with only the episodes the view lets through and whose
    files are in place."""
    outcomes = withdraw_unsafe_audio(view)
    root = view.archive.root
    if not layout.feed_file(root).exists() and not layout.home_page(root).exists():
        return outcomes
    listed = []
    for episode in view.episodes:
        try:
            listed.append((episode, _in_place(view.archive, episode)))
        except Exception:  # noqa: BLE001, S112 - not in place: it is simply not listed
            continue
    return outcomes + _write_feed(view, listed)


def _in_place(archive: PublicArchive, episode: PublicEpisode) -> PublishedAudio:
    """The published audio of an episode whose every published file is in place."""
    mp3 = layout.audio_file(archive.root, episode.slug)
    if not mp3.exists():
        raise PodarchiveError(mp3, None, "not made yet: the episode stays out of feed.xml")
    rendered = [layout.transcript_file(archive.root, episode.slug, name) for name in WRITERS]
    if episode.chapters:
        rendered.append(layout.episode_dir(archive.root, episode.slug) / layout.CHAPTERS_FILE)
    for path in rendered:
        if not path.exists():
            raise PodarchiveError(path, None, "not rendered: the episode stays out of feed.xml")
    return published_audio_info(mp3)


def _write_feed(view: PublicView, listed: list[tuple[PublicEpisode, PublishedAudio]]) -> list[Outcome]:
    path = layout.feed_file(view.archive.root)
    if not view.open_to_publish:
        return [withdraw_file(published, published.name, "removed")
                for published in (path, layout.home_page(view.archive.root)) if published.exists()]
    try:
        cover = cover_url(view.archive)
        written = write_if_changed(path, build_feed(view.archive, listed, cover))
        site = write_site(view, listed, cover)
        said = [Outcome(layout.FEED_FILE, Status.WRITTEN, f"{len(listed)} episode(s)")] if written else []
        return said + site
    except Exception as error:  # noqa: BLE001 - the previous feed.xml stays, if it may
        failure = as_podarchive_error(error, path)
        removed = _withdraw_previous_feed(view, path)
        if path.exists():
            failure = failure.noting("the previous feed.xml stays")
        return [Outcome(layout.FEED_FILE, Status.FAILED, str(failure), error=failure), *removed]


def _withdraw_previous_feed(view: PublicView, path: Path) -> list[Outcome]:
    """The feed.xml that could not be replaced stays only if it lists nothing withdrawn."""
    try:
        channel = etree.parse(str(path)).getroot().find("channel")
        slugs = {url.split("/episodes/", 1)[-1].split("/", 1)[0]
                 for url in channel.xpath("item/enclosure/@url")}
        if slugs <= view.slugs and not view.says_withheld_name(path.read_text("utf-8")):
            return []
    except (OSError, etree.XMLSyntaxError, AttributeError):
        if not path.exists():
            return []
    path.unlink(missing_ok=True)
    return [Outcome(layout.FEED_FILE, Status.WITHDRAWN, "removed: it listed what may not be published "
                                                   "now and could not be written anew")]


def cover_url(archive: PublicArchive) -> str:
    """The archive's cover, published under feed/ (drawn when archive.toml gives none)."""
    return _image_url(archive, archive.image, layout.feed_dir(archive.root)) or _drawn_cover(archive)


def build_feed(archive: PublicArchive, episodes: list[tuple[PublicEpisode, PublishedAudio]], image: str) -> bytes:
    """feed.xml's bytes: the same episodes always give the same bytes (no build-time clock)."""
    fg = FeedGenerator()
    fg.register_extension("podcast", AppleExtension, AppleEntryExtension, atom=False)
    fg.register_extension("podcastindex", PodcastIndexExtension, PodcastIndexEntryExtension, atom=False)
    fg.title(archive.title)
    fg.description(archive.description)
    fg.link(href=layout.feed_url(archive.base_url), rel="self")
    fg.link(href=archive.base_url, rel="alternate")
    fg.language(archive.language)
    fg.generator(f"podarchive {__version__}")
    if archive.license:
        fg.rights(archive.license)
    fg.podcast.itunes_author(archive.author)
    fg.podcast.itunes_summary(archive.description)
    fg.podcast.itunes_explicit("yes" if archive.explicit else "no")
    fg.podcast.itunes_type("episodic")
    fg.image(url=image, title=archive.title, link=archive.base_url)
    fg.podcast.itunes_image(image)
    fg.podcast.itunes_category([{"cat": category} for category in archive.categories or [DEFAULT_CATEGORY]])
    if archive.owner.get("email"):
        fg.podcast.itunes_owner(name=archive.owner.get("name", archive.author), email=archive.owner["email"])
    fg.podcastindex.guid(archive.guid)
    # Locked: other platforms must not import these testimonies without the owner.
    fg.podcastindex.locked(True, archive.owner.get("email"))

    for episode, audio in newest_first(episodes):
        _add_item(fg, archive, episode, audio)
    stamp = max((e.released for e, _ in episodes), default=dt.datetime(1970, 1, 1, tzinfo=dt.UTC))
    fg.lastBuildDate(stamp)
    fg.pubDate(stamp)
    return fg.rss_str(pretty=True, encoding="UTF-8", xml_declaration=True)


def _add_item(fg: FeedGenerator, archive: PublicArchive, episode: PublicEpisode,
              audio: PublishedAudio) -> None:
    folder = layout.episode_dir(archive.root, episode.slug)
    entry = fg.add_entry(order="append")
    entry.title(episode.title)
    entry.guid(episode.guid, permalink=False)
    entry.link(href=layout.episode_page_url(archive.base_url, episode.slug))  # player, read-along transcript
    entry.description(episode.description or episode.title)
    entry.pubDate(episode.released)
    entry.enclosure(_url(archive, audio.path), str(audio.length), "audio/mpeg")
    entry.podcast.itunes_duration(round(audio.duration))
    entry.podcast.itunes_explicit("yes" if episode.explicit else "no")
    if episode.season:
        entry.podcast.itunes_season(episode.season)
        entry.podcastindex.season(episode.season)
    if episode.number:
        entry.podcast.itunes_episode(episode.number)
        entry.podcastindex.episode(episode.number)
    image = _image_url(archive, episode.image, folder)
    if image:
        entry.podcast.itunes_image(image)
    for name in WRITERS:
        mime_type, rel = TRANSCRIPT_TYPES[name]
        entry.podcastindex.transcript(_url(archive, layout.transcript_file(archive.root, episode.slug, name)),
                                      mime_type, episode.content_language, rel)
    if episode.chapters:
        entry.podcastindex.chapters(_url(archive, folder / layout.CHAPTERS_FILE))
    for person in episode.persons:
        entry.podcastindex.person(person.name, PERSON_ROLES[person.role], person.href, person.img)


def check_feed(root: Path, base_url: str) -> list[PodarchiveError]:
    """Problems in the built feed: missing required tags, links to files that are not there."""
    path = layout.feed_file(root)
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
            target = layout.local_file(root, base_url, url)
            if target is None or not target.is_file():
                problems.append(PodarchiveError(path, f"item {name!r}",
                                                f"{tag} {url} has no file under feed/"))
        for enclosure in item.findall("enclosure"):
            target = layout.local_file(root, base_url, enclosure.get("url"))
            if target is not None and target.is_file() and str(target.stat().st_size) != enclosure.get("length"):
                problems.append(PodarchiveError(path, f"item {name!r}",
                                                f"enclosure length {enclosure.get('length')} is not the "
                                                f"file's {target.stat().st_size} bytes"))
    return problems


def _short(tag: str) -> str:
    return tag.replace(f"{{{ITUNES_NS}}}", "itunes:").replace(f"{{{PODCAST_NS}}}", "podcast:")
