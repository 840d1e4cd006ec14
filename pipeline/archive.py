"""Load and validate archive.toml and every episodes/<slug>/episode.toml.

Unknown keys are errors: a typo such as ``stauts = "restricted"`` must never silently
publish a testimony that was meant to stay private.
"""

from __future__ import annotations

import datetime as dt
import re
import tomllib
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path
from typing import Any

from .errors import InvalidFile, PodarchiveError
from .model import Archive, Chapter, Episode, Person
from .privacy import redact, redaction_terms

ARCHIVE_FILE = "archive.toml"
EPISODE_FILE = "episode.toml"
AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".m4a", ".ogg", ".opus")
STATUSES = ("public", "restricted", "embargoed")
MAX_DESCRIPTION_CHARS = 4000
ROLES = ("host", "guest", "interviewer", "narrator")

_SLUG = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_LANGUAGE = re.compile(r"[a-z]{2,3}(?:-[A-Za-z0-9]{2,8})*")
_URL = re.compile(r"https?://[^\s/]+[^\s]*")


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
    if not isinstance(value, str) or not value.strip():
        raise _Invalid(f"must be non-empty text, got {value!r}")
    return value


def _language(value: Any) -> str:
    value = _text(value)
    if value != "auto" and not _LANGUAGE.fullmatch(value):
        raise _Invalid(f'not a language code such as "fr", "en" or "auto": {value!r}')
    return value


def _date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            pass
    raise _Invalid(f'not a date (use YYYY-MM-DD): "{value}"')


def _url(value: Any) -> str:
    value = _text(value)
    if not _URL.fullmatch(value):
        raise _Invalid(f"not an absolute http(s) URL: {value!r}")
    return value


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _Invalid(f"must be true or false, got {value!r}")
    return value


def _positive_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _Invalid(f"must be a whole number from 1 up, got {value!r}")
    return value


def _seconds(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise _Invalid(f"must be a number of seconds from 0 up, got {value!r}")
    return float(value)


def _text_list(value: Any) -> list[str]:
    if not isinstance(value, list):
        raise _Invalid(f"must be a list of text, got {value!r}")
    for item in value:
        _text(item)
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
    path = root / ARCHIVE_FILE
    reader = _Reader(path, _read_toml(path))
    archive = Archive(
        root=root,
        title=reader.get("title", _text, required=True),
        description=reader.get("description", _text, required=True),
        author=reader.get("author", _text, required=True),
        language=reader.get("language", _language, required=True),
        base_url=reader.get("base_url", _url, required=True),
        owner=reader.get("owner", _owner, default={}),
        image=reader.get("image", lambda value: _image(root, value)),
        categories=reader.get("categories", _text_list, default=[]),
        explicit=reader.get("explicit", _boolean, default=False),
        license=reader.get("license", _text),
        glossary=reader.get("glossary", _text_list, default=[]),
        redact=reader.get("redact", _text_list, default=[]),
        model=reader.get("model", _text),
    )
    if archive.language == "auto":
        reader.problem("language", 'the archive needs a real language code, not "auto"')
    reader.reject_unknown()
    if reader.problems:
        raise InvalidFile(reader.problems)

    episodes_dir = root / "episodes"
    if not episodes_dir.is_dir():
        raise PodarchiveError(episodes_dir, None, "folder not found")
    for folder in sorted(p for p in episodes_dir.iterdir() if p.is_dir()):
        if folder.name.startswith("."):
            continue
        try:
            episode = load_episode(folder, default_language=archive.language)
            _check_slug_is_not_redacted(archive, episode)
            archive.episodes.append(episode)
        except PodarchiveError as error:
            archive.problems.append(error)
    _refuse_shared_guids(archive)
    return archive


def _refuse_shared_guids(archive: Archive) -> None:
    """Two items with one guid make podcast apps drop or merge episodes: keep neither."""
    by_guid: dict[str, list[Episode]] = {}
    for episode in archive.episodes:
        if episode.guid:
            by_guid.setdefault(episode.guid, []).append(episode)
    for guid, episodes in by_guid.items():
        if len(episodes) > 1:
            slugs = ", ".join(e.slug for e in episodes)
            for episode in episodes:
                archive.episodes.remove(episode)
                archive.problems.append(PodarchiveError(
                    episode.metadata_path, "guid", f"{guid!r} is used by several episodes ({slugs})"))


def _check_slug_is_not_redacted(archive: Archive, episode: Episode) -> None:
    """The slug is in every published URL: it must not say a name that is redacted."""
    words = episode.slug.replace("-", " ")
    if redact(words, redaction_terms(archive, episode)) != words:
        raise PodarchiveError(episode.folder, "slug",
                              f"folder name {episode.slug!r} says a redacted term, and it would be "
                              "published in every URL: rename the folder")


def _owner(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise _Invalid('must be a table such as {name = "…", email = "…"}')
    unknown = set(value) - {"name", "email"}
    if unknown:
        raise _Invalid(f"unknown key {min(unknown)!r} (allowed: name, email)")
    for item in value.values():
        _text(item)
    return dict(value)


def load_episode(folder: Path, *, default_language: str = "auto") -> Episode:
    """Read one episode folder, raising every problem of its episode.toml at once."""
    path = folder / EPISODE_FILE
    reader = _Reader(path, _read_toml(path))
    if not _SLUG.fullmatch(folder.name):
        reader.problems.append(PodarchiveError(
            folder, "slug",
            f"folder name {folder.name!r} must use only lowercase letters, digits and hyphens",
        ))
    audio = reader.get("audio", lambda value: _audio(folder, value), required=True)
    status = reader.get("status", _one_of(STATUSES), default="public")
    embargo_until = reader.get("embargo_until", _date)
    if status == "embargoed" and embargo_until is None:
        reader.problem("embargo_until", 'required when status = "embargoed"')
    if embargo_until is not None and status != "embargoed":
        reader.problem("embargo_until", f'given but status is "{status}", not "embargoed"')
    episode = Episode(
        slug=folder.name,
        folder=folder,
        title=reader.get("title", _text, required=True),
        date=reader.get("date", _date, required=True),
        audio=audio,
        description=reader.get("description", _description, default=""),
        language=reader.get("language", _language, default=default_language),
        glossary=reader.get("glossary", _text_list, default=[]),
        season=reader.get("season", _positive_int),
        number=reader.get("number", _positive_int),
        status=status,
        embargo_until=embargo_until,
        redact=reader.get("redact", _text_list, default=[]),
        restrict=reader.get("restrict", _spans, default=[]),
        persons=_persons(reader),
        chapters=_chapters(reader),
        guid=reader.get("guid", _text),
        explicit=reader.get("explicit", _boolean, default=False),
        image=reader.get("image", lambda value: _image(folder, value)),
    )
    reader.reject_unknown()
    if reader.problems:
        raise InvalidFile(reader.problems)
    return episode


def _audio(folder: Path, value: Any) -> str:
    value = _text(value)
    if Path(value).name != value:
        raise _Invalid(f"must be a file name inside the episode folder, got {value!r}")
    if Path(value).suffix.lower() not in AUDIO_SUFFIXES:
        raise _Invalid(f"{value!r} is not a supported audio file ({', '.join(AUDIO_SUFFIXES)})")
    path = folder / value
    if not path.is_file():
        raise _Invalid(f"audio file not found: {path}")
    if path.is_symlink() and not path.resolve().is_relative_to(folder.parent.parent.resolve()):
        raise _Invalid(f"{value!r} is a link to {path.resolve()}, outside the archive")
    if path.stat().st_size == 0:
        raise _Invalid(f"audio file is empty: {path}")
    return value


def _description(value: Any) -> str:
    value = _text(value)
    if len(value) > MAX_DESCRIPTION_CHARS:
        raise _Invalid(f"{len(value)} characters; podcast apps take at most {MAX_DESCRIPTION_CHARS} "
                       "(Apple's limit): shorten it")
    return value


def _image(folder: Path, value: Any) -> str:
    """An absolute URL, or a PNG or JPEG file beside the toml file."""
    value = _text(value)
    if _URL.fullmatch(value):
        return value
    if Path(value).name != value or Path(value).suffix.lower() not in (".png", ".jpg", ".jpeg"):
        raise _Invalid(f"must be an http(s) URL or a .png/.jpg file name in {folder}, got {value!r}")
    if not (folder / value).is_file():
        raise _Invalid(f"image file not found: {folder / value}")
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


def _persons(reader: _Reader) -> list[Person]:
    persons = []
    for sub in _tables(reader, "persons"):
        person = Person(
            name=sub.get("name", _text, required=True),
            role=sub.get("role", _one_of(ROLES), default="guest"),
            channel=sub.get("channel", _channel),
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


def _channel(value: Any) -> int:
    if value not in (1, 2) or isinstance(value, bool):
        raise _Invalid(f"must be 1 (left) or 2 (right), got {value!r}")
    return value


def _chapters(reader: _Reader) -> list[Chapter]:
    chapters = []
    for sub in _tables(reader, "chapters"):
        chapter = Chapter(
            start=sub.get("start", _seconds, required=True),
            title=sub.get("title", _text, required=True),
            url=sub.get("url", _url),
        )
        sub.reject_unknown()
        reader.problems.extend(sub.problems)
        chapters.append(chapter)
    starts = [chapter.start for chapter in chapters if chapter.start is not None]
    if any(earlier > later for earlier, later in pairwise(starts)):
        reader.problem("chapters", "chapters must be listed in order of their start time")
    return chapters
