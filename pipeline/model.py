"""The data that flows between stages, and its JSON form."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .errors import PodarchiveError
from .storage import sha256_file

TRANSCRIPT_SCHEMA_VERSION = 1


@dataclass
class Word:
    text: str
    start: float
    end: float
    probability: float


@dataclass
class Segment:
    id: int
    start: float
    end: float
    text: str
    speaker: str = ""
    language: str = ""
    words: list[Word] = field(default_factory=list)
    # Set by a producer: the segment is cut from every published text and silenced.
    restricted: bool = False


@dataclass
class Transcript:
    episode: str
    language: str
    duration: float
    model: str
    options: dict[str, Any]
    audio_sha256: str
    segments: list[Segment]
    reviewed: bool = False
    podarchive_version: str = ""
    # Digest of the words as podarchive last timed them: a mismatch means someone edited them.
    timing_sha256: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"schema_version": TRANSCRIPT_SCHEMA_VERSION, **asdict(self)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Transcript:
        fields = {key: value for key, value in data.items() if key != "schema_version"}
        fields["segments"] = [
            Segment(**{**seg, "words": [Word(**word) for word in seg.get("words", [])]})
            for seg in data["segments"]
        ]
        return cls(**fields)

    @property
    def text(self) -> str:
        return " ".join(segment.text.strip() for segment in self.segments).strip()

    def words_digest(self) -> str:
        words = [[s.speaker, [[w.text, w.start, w.end] for w in s.words]] for s in self.segments]
        return hashlib.sha256(json.dumps(words, ensure_ascii=False).encode()).hexdigest()


def read_transcript(path: Path) -> Transcript | None:
    """The transcript at ``path``, None if there is none, or an error naming what is wrong."""
    if not path.exists():
        return None
    try:
        return Transcript.from_json(json.loads(path.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise PodarchiveError(path, "syntax", f"not valid JSON: {error}") from None
    except (KeyError, TypeError, AttributeError) as error:
        raise PodarchiveError(path, "segments", f"not a podarchive transcript: {error}") from None


def read_current_transcript(episode: Episode) -> Transcript | None:
    """The episode's transcript, refused if it was made from another recording than the
    one episode.toml names now: its times would point at the wrong moments."""
    transcript = read_transcript(episode.transcript_path)
    if transcript is not None and transcript.audio_sha256 != sha256_file(episode.audio_path):
        raise PodarchiveError(episode.transcript_path, "audio_sha256",
                              f"made from another recording than {episode.audio}: "
                              "run `podarchive transcribe` (a reviewed transcript must be un-reviewed first)")
    return transcript


@dataclass
class Outcome:
    """What a stage did with one episode, for the report at the end of a run."""

    slug: str
    status: str  # e.g. transcribed, up-to-date, reviewed, aligned, rendered, withdrawn, failed
    message: str = ""
    seconds: float = 0.0
    error: PodarchiveError | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Person:
    name: str
    role: str = "guest"
    channel: int | None = None
    href: str | None = None
    img: str | None = None


@dataclass(frozen=True)
class Chapter:
    start: float
    title: str
    url: str | None = None


@dataclass
class Episode:
    slug: str
    folder: Path
    title: str
    date: dt.date
    audio: str
    description: str = ""
    language: str = "auto"
    glossary: list[str] = field(default_factory=list)
    season: int | None = None
    number: int | None = None
    status: str = "public"
    embargo_until: dt.date | None = None
    redact: list[str] = field(default_factory=list)
    restrict: list[tuple[float, float]] = field(default_factory=list)
    persons: list[Person] = field(default_factory=list)
    chapters: list[Chapter] = field(default_factory=list)
    guid: str | None = None
    explicit: bool = False
    image: str | None = None

    @property
    def audio_path(self) -> Path:
        return self.folder / self.audio

    @property
    def transcript_path(self) -> Path:
        return self.folder / "transcript.json"

    @property
    def metadata_path(self) -> Path:
        return self.folder / "episode.toml"


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
    episodes: list[Episode] = field(default_factory=list)
    # Episodes whose metadata could not be read: the others still go through the run.
    problems: list[Exception] = field(default_factory=list)

    @property
    def episodes_dir(self) -> Path:
        return self.root / "episodes"

    def episode(self, slug: str) -> Episode:
        for episode in self.episodes:
            if episode.slug == slug:
                return episode
        raise KeyError(slug)
