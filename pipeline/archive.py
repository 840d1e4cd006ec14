"""Load and validate archive.toml, every episodes/<slug>/episode.toml and transcript.json.

This is the private side of the archive: what producers wrote, every name and every
restricted passage included. Publishing stages never read it; they get the public
view that ``privacy`` builds from it.

Unknown keys are errors: a typo such as ``stauts = "restricted"`` must never silently
publish a testimony that was meant to stay private. So are values that would quietly
mean something else: NaN or infinite times, control characters in text, a flag written
as a string.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import tomllib
import uuid
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from . import layout
from .audio import probe
from .errors import InvalidFile, PodarchiveError
from .model import CONTROL_CHARACTERS, LANGUAGE_CODE, InvalidTranscript, Transcript
from .storage import file_digest

AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".m4a", ".ogg", ".opus")
STATUSES = ("public", "restricted", "embargoed")
MAX_DESCRIPTION_CHARS = 4000
ROLES = ("host", "guest", "interviewer", "narrator")
IMAGE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}
# The namespace the Podcasting 2.0 spec fixes for podcast:guid (UUIDv5 of the feed URL).
PODCAST_GUID_NAMESPACE = uuid.UUID("ead4c236-bf58-58c6-a2c6-a6b28d128cb6")

_SLUG = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_URL = re.compile(r"https?://[^\s/]+[^\s]*")


@dataclass(frozen=True)
class Person:
    name: str
    role: str = "guest"
    channel: int | None = None
    # A moment (seconds) at which this person can be heard: names the voice speaking then.
    voice_at: float | None = None
    href: str | None = None
    img: str | None = None


@dataclass(frozen=True)
class Chapter:
    start: float
    title: str
    url: str | None = None
    # An index point's description for oral-history tools (OHMS), and the same in the
    # interview's second language.
    synopsis: str = ""
    keywords: tuple[str, ...] = ()
    title_alt: str = ""
    synopsis_alt: str = ""
    keywords_alt: tuple[str, ...] = ()


@dataclass
class Episode:
    slug: str
    folder: Path
    title: str
    # A date, or a date and time (with or without a UTC offset): when it is released.
    date: dt.date | dt.datetime
    audio: str
    description: str = ""
    language: str = "auto"
    glossary: list[str] = field(default_factory=list)
    season: int | None = None
    number: int | None = None
    status: str = "public"
    embargo_until: dt.date | dt.datetime | None = None
    redact: list[str] = field(default_factory=list)
    restrict: list[tuple[float, float]] = field(default_factory=list)
    persons: list[Person] = field(default_factory=list)
    # How many voices a one-track recording holds (diarization): a count, "auto", or None
    # (found when two persons or more are listed); and names given to the voices found.
    speakers: int | str | None = None
    speaker_names: dict[str, str] = field(default_factory=dict)
    chapters: list[Chapter] = field(default_factory=list)
    guid: str | None = None
    explicit: bool = False
    image: str | None = None

    @property
    def root(self) -> Path:
        """The archive this episode belongs to."""
        return self.folder.parent.parent

    @property
    def audio_path(self) -> Path:
        return self.folder / self.audio

    @property
    def transcript_path(self) -> Path:
        return self.folder / layout.TRANSCRIPT_FILE

    @property
    def metadata_path(self) -> Path:
        return self.folder / layout.EPISODE_FILE


# Where whisper runs (archive.toml's device, compute_type): CTranslate2's names; which
# compute types a device can run is asked of CTranslate2 when it runs (embedded_model.place).
DEVICES = ("auto", "cpu", "cuda")
COMPUTE_TYPES = ("int8", "int8_float32", "int8_float16", "int8_bfloat16", "int16",
                 "float16", "bfloat16", "float32", "default", "auto")


@dataclass
class Archive:
    root: Path
    title: str
    description: str
    author: str
    language: str
    base_url: str
    owner: dict[str, str] = field(default_factory=dict)
    image: str | None = None
    categories: list[str] = field(default_factory=list)
    explicit: bool = False
    license: str | None = None
    glossary: list[str] = field(default_factory=list)
    redact: list[str] = field(default_factory=list)
    model: str | None = None
    device: str | None = None  # None: auto
    compute_type: str | None = None  # None: the device's own (see embedded_model.place)
    timezone: str = "UTC"
    episodes: list[Episode] = field(default_factory=list)
    # Episodes whose metadata could not be read: the others still go through the run.
    problems: list[Exception] = field(default_factory=list)
    # Names that episodes which could not be read still ask to withhold, where their
    # episode.toml was at least valid TOML: they are withheld everywhere all the same.
    redact_of_unloaded: list[str] = field(default_factory=list)

    @property
    def episodes_dir(self) -> Path:
        return layout.sources_dir(self.root)

    @property
    def guid(self) -> str:
        """podcast:guid: UUIDv5 of the feed URL without its scheme and trailing slashes, as
        the spec says."""
        bare = layout.feed_url(self.base_url).split("://", 1)[-1].rstrip("/")
        return str(uuid.uuid5(PODCAST_GUID_NAMESPACE, bare))

    def guid_of(self, episode: Episode) -> str:
        """The guid of an episode's item in the feed: its own, or one derived from the
        podcast's guid and the episode's slug."""
        return episode.guid or str(uuid.uuid5(uuid.UUID(self.guid), episode.slug))

    def episode(self, slug: str) -> Episode:
        for episode in self.episodes:
            if episode.slug == slug:
                return episode
        raise KeyError(slug)


class _Invalid(Exception):
    """A value that breaks the contract; its message says how."""


class _Reader:
    """Reads one TOML table, collecting every problem instead of stopping at the first."""

    def __init__(self, path: Path, table: dict[str, Any], prefix: str = ""):
        self.path = path
        self.table = table
        self.prefix = prefix
        self.problems: list[PodarchiveError] = []
        self._seen: set[str] = set()

    def problem(self, key: str, message: str) -> None:
        self.problems.append(PodarchiveError(self.path, self.prefix + key, message))

    def get(self, key: str, check: Callable[[Any], Any], *, required: bool = False,
            default: Any = None) -> Any:
        self._seen.add(key)
        if key not in self.table:
            if required:
                self.problem(key, "required but missing")
            return default
        try:
            return check(self.table[key])
        except _Invalid as error:
            self.problem(key, str(error))
            return default

    def reject_unknown(self) -> None:
        for key in self.table:
            if key not in self._seen:
                self.problem(key, "unknown key (a typo? see the list of keys in README.md)")


def _text(value: Any) -> str:
    """Non-empty text, line breaks allowed, no other control character."""
    if not isinstance(value, str) or not value.strip():
        raise _Invalid(f"must be non-empty text, got {value!r}")
    if CONTROL_CHARACTERS.search(value):
        raise _Invalid(f"holds a control character ({CONTROL_CHARACTERS.search(value).group()!r}): "
                       "remove it")
    return value


def _line(value: Any) -> str:
    """Non-empty text on one line."""
    value = _text(value)
    if any(ch in value for ch in "\n\r\t"):
        raise _Invalid(f"must be one line of text, got {value!r}")
    return value


def _language(value: Any) -> str:
    value = _text(value)
    if value != "auto" and not LANGUAGE_CODE.fullmatch(value):
        raise _Invalid(f'not a language code such as "fr", "en" or "auto": {value!r}')
    return value


def parse_moment(text: str) -> dt.date | dt.datetime | None:
    """A date, or a date and time with or without a UTC offset, from ISO text; None if neither."""
    for parse in (dt.date.fromisoformat, dt.datetime.fromisoformat):
        try:
            return parse(text)
        except ValueError:
            pass
    return None


def _moment(value: Any) -> dt.date | dt.datetime:
    """A date, or a date and time, with or without a UTC offset (TOML's own values or ISO text)."""
    if isinstance(value, (dt.date, dt.datetime)):
        return value
    if isinstance(value, str) and (found := parse_moment(value)) is not None:
        return found
    raise _Invalid(f'not a date: "{value}" (use YYYY-MM-DD, or YYYY-MM-DDTHH:MM:SS+HH:MM for a moment)')


def _timezone(value: Any) -> str:
    value = _line(value)
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise _Invalid(f'not a time zone name such as "UTC" or "America/Toronto": {value!r}') from None
    return value


def _url(value: Any) -> str:
    value = _line(value)
    if not _URL.fullmatch(value):
        raise _Invalid(f"not an absolute http(s) URL: {value!r}")
    return value


def _base_url(value: Any) -> str:
    """An absolute URL ending in a slash: every published URL is this and a path after it."""
    value = _url(value)
    return value if value.endswith("/") else value + "/"


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _Invalid(f"must be true or false, got {value!r}")
    return value


def _positive_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _Invalid(f"must be a whole number from 1 up, got {value!r}")
    return value


def _seconds(value: Any) -> float:
    if (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
            or value < 0):
        raise _Invalid(f"must be a number of seconds from 0 up, got {value!r}")
    return float(value)


def _line_list(value: Any) -> list[str]:
    if not isinstance(value, list):
        raise _Invalid(f"must be a list of text, got {value!r}")
    for item in value:
        _line(item)
    return list(value)


def _one_of(choices: tuple[str, ...]) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if value not in choices:
            raise _Invalid(f"must be one of {', '.join(choices)}; got {value!r}")
        return value

    return check


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as source:
            return tomllib.load(source)
    except FileNotFoundError:
        raise PodarchiveError(path, None, "file not found") from None
    except tomllib.TOMLDecodeError as error:
        raise PodarchiveError(path, "syntax", f"not valid TOML: {error}") from None
    except UnicodeDecodeError:
        raise PodarchiveError(path, "syntax", "not UTF-8 text") from None


def load_archive(root: Path | str) -> Archive:
    """Read the archive and all its episodes.

    A bad archive.toml raises; a bad episode is recorded in ``Archive.problems`` so that
    the other episodes still go through the run.
    """
    root = Path(root)
    path = root / layout.ARCHIVE_FILE
    reader = _Reader(path, _read_toml(path))
    archive = Archive(
        root=root,
        title=reader.get("title", _line, required=True),
        description=reader.get("description", _text, required=True),
        author=reader.get("author", _line, required=True),
        language=reader.get("language", _language, required=True),
        base_url=reader.get("base_url", _base_url, required=True),
        owner=reader.get("owner", _owner, default={}),
        image=reader.get("image", lambda value: _image(root, root, value)),
        categories=reader.get("categories", _line_list, default=[]),
        explicit=reader.get("explicit", _boolean, default=False),
        license=reader.get("license", _text),
        glossary=reader.get("glossary", _line_list, default=[]),
        redact=reader.get("redact", _line_list, default=[]),
        model=reader.get("model", _line),
        device=reader.get("device", _one_of(DEVICES)),
        compute_type=reader.get("compute_type", _one_of(COMPUTE_TYPES)),
        timezone=reader.get("timezone", _timezone, default="UTC"),
    )
    if archive.language == "auto":
        reader.problem("language", 'the archive needs a real language code, not "auto"')
    reader.reject_unknown()
    if reader.problems:
        raise InvalidFile(reader.problems)

    episodes_dir = layout.sources_dir(root)
    if not episodes_dir.is_dir():
        raise PodarchiveError(episodes_dir, None, "folder not found")
    for folder in sorted(p for p in episodes_dir.iterdir() if p.is_dir()):
        if folder.name.startswith("."):
            # Not an episode, but the names it withholds are withheld all the same.
            archive.redact_of_unloaded += _redact_anyway(folder / layout.EPISODE_FILE)
            continue
        try:
            inside_archive(folder, root)
            archive.episodes.append(load_episode(folder, default_language=archive.language))
        except PodarchiveError as error:
            archive.problems.append(error)
            archive.redact_of_unloaded += _redact_anyway(folder / layout.EPISODE_FILE)
    _refuse_shared_guids(archive)
    return archive


# A key a producer may have meant as ``redact``: "redacted", "Redact", "redcat"…
_LIKE_REDACT = re.compile(r"r[a-z]{0,2}d[a-z]{0,2}c?t[a-z]{0,3}|redact\w*", re.IGNORECASE)
_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"|\'([^\']*)\'')


def _redact_anyway(path: Path) -> list[str]:
    """The names an episode.toml that is not loaded asks to withhold, read as leniently as
    a person would: any key that looks like ``redact``, and if the file is not valid TOML,
    the quoted strings of every line that starts with such a key."""
    try:
        table = _read_toml(path)
    except PodarchiveError:
        try:
            text = path.read_text("utf-8", errors="replace")
        except OSError:
            return []
        return [next(group for group in quoted.groups() if group is not None)
                for line in _lines_of_redact_keys(text) for quoted in _QUOTED.finditer(line)]
    terms: list[str] = []
    for key, value in table.items():
        if _LIKE_REDACT.fullmatch(key):
            values = [value] if isinstance(value, str) else value if isinstance(value, list) else []
            terms += [term for term in values if isinstance(term, str)]
    return terms


def _lines_of_redact_keys(text: str) -> list[str]:
    """What follows each ``redact``-like key, to the end of its array."""
    lines, open_array = [], False
    for line in text.splitlines():
        head, equals, rest = line.partition("=")
        if not open_array and equals and _LIKE_REDACT.fullmatch(head.strip().strip("\"'")):
            lines.append(rest)
            open_array = "[" in rest and "]" not in rest
        elif open_array:
            lines.append(line)
            open_array = "]" not in line
    return lines


def inside_archive(path: Path, root: Path) -> Path:
    """``path``, refused when it (or a link on the way) leads outside the archive ``root``:
    the archive publishes its own files, never one a link points to elsewhere."""
    resolved = Path(path).resolve()
    if not resolved.is_relative_to(Path(root).resolve()):
        raise PodarchiveError(path, None, f"leads to {resolved}, outside the archive: "
                                          "copy the file into the archive instead of linking it")
    return path


def _refuse_shared_guids(archive: Archive) -> None:
    """Two items with one guid make podcast apps drop or merge episodes: keep neither. A
    guid given in one episode.toml may also be the one another episode is given by
    default (derived from its folder name)."""
    by_guid: dict[str, list[Episode]] = {}
    for episode in archive.episodes:
        by_guid.setdefault(archive.guid_of(episode), []).append(episode)
    for guid, episodes in by_guid.items():
        if len(episodes) > 1:
            slugs = ", ".join(e.slug for e in episodes)
            by_default = "".join(f"; {e.slug} gets it by default (derived from its folder name)"
                                 for e in episodes if not e.guid)
            for episode in episodes:
                archive.episodes.remove(episode)
                archive.problems.append(PodarchiveError(
                    episode.metadata_path, "guid", f"{guid!r} is used by several episodes ({slugs}){by_default}"))


def _owner(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise _Invalid('must be a table such as {name = "…", email = "…"}')
    unknown = set(value) - {"name", "email"}
    if unknown:
        raise _Invalid(f"unknown key {min(unknown)!r} (allowed: name, email)")
    for item in value.values():
        _line(item)
    return dict(value)


def load_episode(folder: Path, *, default_language: str = "auto") -> Episode:
    """Read one episode folder, raising every problem of its episode.toml at once."""
    path = folder / layout.EPISODE_FILE
    reader = _Reader(path, _read_toml(path))
    if not _SLUG.fullmatch(folder.name):
        reader.problems.append(PodarchiveError(
            folder, "slug",
            f"folder name {folder.name!r} must use only lowercase letters, digits and hyphens",
        ))
    audio = reader.get("audio", lambda value: _audio(folder, value), required=True)
    duration = _duration(reader, folder / audio) if audio else None
    status = reader.get("status", _one_of(STATUSES), default="public")
    embargo_until = reader.get("embargo_until", _moment)
    if status == "embargoed" and "embargo_until" not in reader.table:
        reader.problem("embargo_until", 'required when status = "embargoed"')
    if embargo_until is not None and status != "embargoed":
        reader.problem("embargo_until", f'given but status is "{status}", not "embargoed"')
    speakers, speaker_names = reader.get("speakers", _speakers, default=(None, {}))
    episode = Episode(
        slug=folder.name,
        folder=folder,
        title=reader.get("title", _line, required=True),
        date=reader.get("date", _moment, required=True),
        audio=audio,
        description=reader.get("description", _description, default=""),
        language=reader.get("language", _language, default=default_language),
        glossary=reader.get("glossary", _line_list, default=[]),
        season=reader.get("season", _positive_int),
        number=reader.get("number", _positive_int),
        status=status,
        embargo_until=embargo_until,
        redact=reader.get("redact", _line_list, default=[]),
        restrict=reader.get("restrict", _spans, default=[]),
        persons=_persons(reader, duration),
        speakers=speakers,
        speaker_names=speaker_names,
        chapters=_chapters(reader, duration),
        guid=reader.get("guid", _line),
        explicit=reader.get("explicit", _boolean, default=False),
        image=reader.get("image", lambda value: _image(folder, folder.parent.parent, value)),
    )
    reader.reject_unknown()
    if reader.problems:
        raise InvalidFile(reader.problems)
    return episode


def _audio(folder: Path, value: Any) -> str:
    value = _line(value)
    if Path(value).name != value:
        raise _Invalid(f"must be a file name inside the episode folder, got {value!r}")
    if Path(value).suffix.lower() not in AUDIO_SUFFIXES:
        raise _Invalid(f"{value!r} is not a supported audio file ({', '.join(AUDIO_SUFFIXES)})")
    path = _own_file(folder, value, folder.parent.parent, "audio file")
    if path.stat().st_size == 0:
        raise _Invalid(f"audio file is empty: {path}")
    return value


def _duration(reader: _Reader, path: Path) -> float | None:
    """How long the recording is, probed now so that ``check`` refuses what the run would:
    a file that is no audio, a WAV cut short."""
    try:
        return probe(path).duration
    except PodarchiveError as error:
        reader.problems.append(error)
        return None


def _own_file(folder: Path, name: str, root: Path, what: str) -> Path:
    """``folder / name``: a file of the archive itself, not a link to one elsewhere."""
    path = folder / name
    if not path.is_file():
        raise _Invalid(f"{what} not found: {path}")
    try:
        inside_archive(path, root)
    except PodarchiveError as error:
        raise _Invalid(f"{name!r} {error.message}") from None
    return path


def _description(value: Any) -> str:
    value = _text(value)
    if len(value) > MAX_DESCRIPTION_CHARS:
        raise _Invalid(f"{len(value)} characters; podcast apps take at most {MAX_DESCRIPTION_CHARS} "
                       "(Apple's limit): shorten it")
    return value


def _image(folder: Path, root: Path, value: Any) -> str:
    """An absolute URL, or a PNG or JPEG file of the archive beside the toml file."""
    value = _line(value)
    if _URL.fullmatch(value):
        return value
    expected = IMAGE_FORMATS.get(Path(value).suffix.lower())
    if Path(value).name != value or expected is None:
        raise _Invalid(f"must be an http(s) URL or a .png/.jpg file name in {folder}, got {value!r}")
    path = _own_file(folder, value, root, "image file")
    try:
        with Image.open(path) as image:
            found = image.format
            image.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise _Invalid(f"{value!r} is not a readable image ({error})") from None
    if found != expected:
        raise _Invalid(f"{value!r} holds a {found} image, not the {expected} its name says")
    return value


def _spans(value: Any) -> list[tuple[float, float]]:
    if not isinstance(value, list):
        raise _Invalid("must be a list of [start, end] pairs in seconds")
    spans = []
    for item in value:
        if not (isinstance(item, list) and len(item) == 2):
            raise _Invalid(f"each entry must be [start, end] in seconds, got {item!r}")
        start, end = _seconds(item[0]), _seconds(item[1])
        if end <= start:
            raise _Invalid(f"end must come after start in {item!r}")
        spans.append((start, end))
    return spans


def _tables(reader: _Reader, key: str) -> list[_Reader]:
    """Sub-readers for an array of tables such as [[persons]], reporting as persons[1].name."""
    value = reader.get(key, lambda v: v, default=[])
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        reader.problem(key, f"must be an array of tables ([[{key}]])")
        return []
    return [_Reader(reader.path, item, prefix=f"{key}[{n}].") for n, item in enumerate(value, 1)]


def _persons(reader: _Reader, duration: float | None) -> list[Person]:
    persons = []
    for sub in _tables(reader, "persons"):
        person = Person(
            name=sub.get("name", _line, required=True),
            role=sub.get("role", _one_of(ROLES), default="guest"),
            channel=sub.get("channel", _channel),
            voice_at=sub.get("voice_at", lambda value: _within(_seconds(value), duration)),
            href=sub.get("href", _url),
            img=sub.get("img", _url),
        )
        sub.reject_unknown()
        reader.problems.extend(sub.problems)
        persons.append(person)
    channels = [person.channel for person in persons if person.channel is not None]
    if len(channels) != len(set(channels)):
        reader.problem("persons", "two persons share one channel")
    return persons


def _speakers(value: Any) -> tuple[int | str, dict[str, str]]:
    """``speakers``: a count of voices, "auto", or a table renaming the voices found
    ({"Speaker 2" = "Name"}: their count then found as with "auto")."""
    if isinstance(value, dict):
        for old, new in value.items():
            _line(old)
            _line(new)
        return "auto", dict(value)
    if value == "auto" or (isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 20):
        return value, {}
    raise _Invalid('must be a number of voices (1 to 20), "auto", or a table renaming voices '
                   f'({{"Speaker 2" = "Name"}}), got {value!r}')


def _within(seconds: float, duration: float | None) -> float:
    if duration is not None and seconds > duration:
        raise _Invalid(f"{seconds:g} s is past the end of the recording ({duration:.1f} s)")
    return seconds


def _channel(value: Any) -> int:
    if value not in (1, 2) or isinstance(value, bool):
        raise _Invalid(f"must be 1 (left) or 2 (right), got {value!r}")
    return value


def _chapters(reader: _Reader, duration: float | None) -> list[Chapter]:
    chapters = []
    for sub in _tables(reader, "chapters"):
        chapter = Chapter(
            start=sub.get("start", _seconds, required=True),
            title=sub.get("title", _line, required=True),
            url=sub.get("url", _url),
            synopsis=sub.get("synopsis", _text, default=""),
            keywords=tuple(sub.get("keywords", _line_list, default=[])),
            title_alt=sub.get("title_alt", _line, default=""),
            synopsis_alt=sub.get("synopsis_alt", _text, default=""),
            keywords_alt=tuple(sub.get("keywords_alt", _line_list, default=[])),
        )
        if chapter.start is not None and duration is not None and chapter.start >= duration:
            sub.problem("start", f"chapter {chapter.title!r} starts at {chapter.start:g} s, after the end of "
                                 f"the recording ({duration:.1f} s)")
        sub.reject_unknown()
        reader.problems.extend(sub.problems)
        chapters.append(chapter)
    starts = [chapter.start for chapter in chapters if chapter.start is not None]
    if any(earlier > later for earlier, later in pairwise(starts)):
        reader.problem("chapters", "chapters must be listed in order of their start time")
    return chapters


def read_transcript(path: Path) -> Transcript | None:
    """The transcript at ``path``, None if there is none, or an error naming what is wrong."""
    if not path.exists():
        return None
    inside_archive(path, path.parent.parent.parent)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as error:  # ValueError: a number past 4300 digits too
        raise PodarchiveError(path, "syntax", f"not valid JSON: {error}") from None
    except RecursionError:
        raise PodarchiveError(path, "syntax", "not valid JSON: nested deeper than any transcript") from None
    try:
        return Transcript.from_json(data)
    except InvalidTranscript as error:
        raise PodarchiveError(path, error.field, error.message) from None


def read_current_transcript(episode: Episode) -> Transcript | None:
    """The episode's transcript, refused if it was made from another recording than the
    one episode.toml names now: its times would point at the wrong moments."""
    transcript = read_transcript(episode.transcript_path)
    if transcript is not None and transcript.audio_sha256 != file_digest(episode.audio_path):
        raise PodarchiveError(episode.transcript_path, "audio_sha256",
                              f"made from another recording than {episode.audio}: "
                              "run `podarchive transcribe` (a reviewed transcript must be un-reviewed first)")
    return transcript
