"""The data that flows between stages, and its JSON form."""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

TRANSCRIPT_SCHEMA_VERSION = 1
# A language as whisper and podcast apps name it: "fr", "fr-CA", "zh-Hant", "es-419".
LANGUAGE_CODE = re.compile(r"[a-z]{2,3}(?:-[A-Z][a-z]{3})?(?:-(?:[A-Z]{2}|\d{3}))?")
# Characters no published text may hold (NUL, escape…): line breaks and tabs aside.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


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
class Gap:
    """Speech heard between ``start`` and ``end`` (seconds) that no word transcribes."""

    start: float
    end: float


@dataclass
class Turn:
    """``speaker`` talks from ``start`` to ``end`` (seconds), as diarization named them."""

    start: float
    end: float
    speaker: str


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
    # Speech the model could not transcribe, for a producer to listen to.
    gaps: list[Gap] = field(default_factory=list)
    # Who speaks when as diarization found it: a segment whose speaker differs was
    # corrected by a producer, and keeps that speaker when voices are found again.
    turns: list[Turn] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"schema_version": TRANSCRIPT_SCHEMA_VERSION, **asdict(self)}

    @classmethod
    def from_json(cls, data: Any) -> Transcript:
        """The transcript ``data`` describes; ``InvalidTranscript`` names the first field
        that is missing or of the wrong kind (a hand edit must not pass silently)."""
        table = _table(data, "")
        if table.get("schema_version", TRANSCRIPT_SCHEMA_VERSION) != TRANSCRIPT_SCHEMA_VERSION:
            raise InvalidTranscript("schema_version", f"{table['schema_version']!r} is not a version "
                                    f"this podarchive reads ({TRANSCRIPT_SCHEMA_VERSION})")
        fields = {name: _field(table, name, kind, "") for name, kind in _TRANSCRIPT_FIELDS.items()
                  if name in table or name not in _OPTIONAL}
        _refuse_unknown(table, {*_TRANSCRIPT_FIELDS, "schema_version"}, "")
        fields["segments"] = [_segment(item, f"segments[{n}].")
                              for n, item in enumerate(_list(table, "segments", ""))]
        fields["gaps"] = [_gap(item, f"gaps[{n}].") for n, item in enumerate(fields.get("gaps", []))]
        fields["turns"] = [_turn(item, f"turns[{n}].") for n, item in enumerate(fields.get("turns", []))]
        return cls(**fields)

    @property
    def text(self) -> str:
        return " ".join(segment.text.strip() for segment in self.segments).strip()

    def words_digest(self) -> str:
        words = [[s.speaker, [[w.text, w.start, w.end] for w in s.words]] for s in self.segments]
        return hashlib.sha256(json.dumps(words, ensure_ascii=False).encode()).hexdigest()


@dataclass
class Cue:
    """A caption: derived from the words (pipeline/cues.py), never stored as the source of truth."""

    start: float
    end: float
    lines: list[str]
    speaker: str = ""
    language: str = ""
    words: list[Word] = field(default_factory=list, repr=False)
    # The speaker changes at this cue: SRT starts it with the speaker's name (named_lines).
    named: bool = False

    @property
    def text(self) -> str:
        return " ".join(self.lines)

# transcript.json's model for a transcript taken from a podcast's feed (podarchive
# import): whisper never made it, and is not run over it unless asked to.
IMPORTED_MODEL = "imported"


class Status(StrEnum):
    """What a stage did with an episode (or a file of the archive)."""

    TRANSCRIBED = "transcribed"
    DIARIZED = "voices found again"
    UP_TO_DATE = "up-to-date"
    KEPT = "kept"
    ALIGNED = "aligned"
    RENDERED = "rendered"
    INDEXED = "indexed"
    REBUILT = "rebuilt"
    PUBLISHED = "published"
    WRITTEN = "written"
    GENERATED = "generated"
    WITHDRAWN = "withdrawn"
    IMPORTED = "imported"
    SKIPPED = "skipped"
    REMOVED = "removed"
    NOT_PUBLISHED = "not published"
    MASKED = "masked"
    UNMATCHED = "unmatched"
    WAITING = "waiting"
    FAILED = "failed"


@dataclass
class Outcome:
    """What a stage did with one episode, for the report at the end of a run."""

    slug: str
    status: Status
    message: str = ""
    seconds: float = 0.0
    error: Exception | None = field(default=None, repr=False)

    def __post_init__(self):
        self.status = Status(self.status)  # a status nobody reports on is a typo


class InvalidTranscript(ValueError):
    """A transcript.json field that is missing or of the wrong kind."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def _number(value: Any) -> bool:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # a whole number past what a float holds: JSON allows it
        return False


# What each field must hold: a check and how to say it.
_KINDS = {
    "text": (lambda v: isinstance(v, str) and not CONTROL_CHARACTERS.search(v),
             "text without control characters"),
    "number": (_number, "a finite number"),
    "integer": (lambda v: isinstance(v, int) and not isinstance(v, bool), "a whole number"),
    "boolean": (lambda v: isinstance(v, bool), "true or false"),
    "table": (lambda v: isinstance(v, dict), "an object"),
    "list": (lambda v: isinstance(v, list), "a list"),
    "language": (lambda v: isinstance(v, str) and (v == "" or LANGUAGE_CODE.fullmatch(v) is not None),
                 'a language code such as "fr" or "fr-CA"'),
}
_TRANSCRIPT_FIELDS = {"episode": "text", "language": "language", "duration": "number", "model": "text",
                      "options": "table", "audio_sha256": "text", "segments": "list",
                      "reviewed": "boolean", "podarchive_version": "text", "timing_sha256": "text",
                      "gaps": "list", "turns": "list"}
_SEGMENT_FIELDS = {"id": "integer", "start": "number", "end": "number", "text": "text",
                   "speaker": "text", "language": "language", "words": "list", "restricted": "boolean"}
_WORD_FIELDS = {"text": "text", "start": "number", "end": "number", "probability": "number"}
_GAP_FIELDS = {"start": "number", "end": "number"}
_TURN_FIELDS = {"start": "number", "end": "number", "speaker": "text"}
_OPTIONAL = {"reviewed", "podarchive_version", "timing_sha256", "speaker", "language", "words",
             "restricted", "gaps", "turns"}


def _table(value: Any, where: str) -> dict:
    if not isinstance(value, dict):
        raise InvalidTranscript(where.rstrip(".") or "transcript", "must be an object")
    return value


def _field(table: dict, name: str, kind: str, where: str) -> Any:
    if name not in table:
        raise InvalidTranscript(where + name, "required but missing")
    check, said = _KINDS[kind]
    value = table[name]
    if not check(value):
        raise InvalidTranscript(where + name, f"must be {said}, got {json.dumps(value)[:40]}")
    return value


def _list(table: dict, name: str, where: str) -> list:
    return _field(table, name, "list", where)


def _refuse_unknown(table: dict, known: set[str], where: str) -> None:
    for name in table:
        if name not in known:
            raise InvalidTranscript(where + name, "unknown field (a typo?)")


def _segment(value: Any, where: str) -> Segment:
    table = _table(value, where)
    _refuse_unknown(table, set(_SEGMENT_FIELDS), where)
    fields = {name: _field(table, name, kind, where) for name, kind in _SEGMENT_FIELDS.items()
              if name in table or name not in _OPTIONAL}
    words = [Word(**_record(item, f"{where}words[{n}].", _WORD_FIELDS))
             for n, item in enumerate(fields.pop("words", []))]
    return Segment(**fields, words=words)


def _record(value: Any, where: str, kinds: dict[str, str]) -> dict[str, Any]:
    """The fields of an object whose every field is required and of the kind ``kinds`` says."""
    table = _table(value, where)
    _refuse_unknown(table, set(kinds), where)
    return {name: _field(table, name, kind, where) for name, kind in kinds.items()}


def _gap(value: Any, where: str) -> Gap:
    gap = Gap(**_record(value, where, _GAP_FIELDS))
    if not 0 <= gap.start < gap.end:
        raise InvalidTranscript(where + "end", f"must come after start ({gap.start}), both positive")
    return gap


def _turn(value: Any, where: str) -> Turn:
    return Turn(**_record(value, where, _TURN_FIELDS))
