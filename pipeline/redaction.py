"""Finding a withheld name in text the way a reader would read it there.

Text is cut into word pieces: runs of letters and digits, split where letters meet
digits and where a lower-case letter meets an upper-case one ("EricJoanis"), folded
(case, accents, ligatures, compatibility forms; invisible characters such as zero-width
spaces and soft hyphens dropped). Everything else separates pieces: spaces, every
apostrophe and dash, quotes, brackets. Pieces with no space between them are *glued*
("Joanis-Smith", "d'Éric", "EricJoanis").

A term such as "Marie Tremblay" is found where the pieces say it, whatever separates
them ("Marie-Tremblay", "MARIE  TREMBLAY", "Marie\u200bTremblay's"), and where glued
pieces spell it in fewer or more parts ("MarieTremblay", "Jo-anis"). Names of six
letters or more are also found a letter or two off (one for up to eight letters, two
beyond), as whisper misspells names ("Joannis" for "Joanis"); such a near form must
start with a capital, as whisper writes names, so that "français" is not taken for
"François".

``fold`` is the one folding podarchive has: search, alignment and the privacy audit
use it too.
"""

from __future__ import annotations

import functools
import html
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import pairwise
from typing import NamedTuple
from urllib.parse import unquote

import regex
from rapidfuzz import process
from rapidfuzz.distance import OSA

REDACTED = "[redacted]"

# A raw word piece: letters and digits with the combining marks and invisible format
# characters inside them, but not the letters some keyboards use as apostrophes.
_PIECE = regex.compile(r"[[\p{L}\p{N}\p{M}\p{Cf}\u2800]--[\u02b9\u02bb-\u02bf\ua78b\ua78c]]+", regex.V1)
# Invisible characters and marks; the blank "letters" (Hangul fillers, the braille blank)
# that show nothing either.
_INVISIBLE_OR_MARK = regex.compile(r"[\p{Cf}\p{M}\u115f\u1160\u3164\uffa0\u2800]")
_SPACE = regex.compile(r"\s")
_TRANSITION = regex.compile(r"(?<=\p{Ll}[\p{M}\p{Cf}]*)(?=\p{Lu})|(?<=\p{L}[\p{M}\p{Cf}]*)(?=\p{N})"
                            r"|(?<=\p{N}[\p{M}\p{Cf}]*)(?=\p{L})", regex.V1)
_LIGATURES = str.maketrans({"œ": "oe", "æ": "ae", "ĳ": "ij", "ø": "o", "ł": "l", "đ": "d", "ð": "d",
                            "ı": "i"})
# Cyrillic and Greek letters that look Latin: a name written with them reads the same.
_LOOK_ALIKES = str.maketrans({
    "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p",
    "с": "c", "т": "t", "у": "y", "х": "x", "і": "i", "ї": "i", "ј": "j", "ѕ": "s", "ԁ": "d",
    "һ": "h", "ԛ": "q", "ԝ": "w", "α": "a", "ε": "e", "ι": "i", "κ": "k", "ν": "v", "ο": "o",
    "ρ": "p", "τ": "t", "υ": "u", "χ": "x"})


def fold(text: str) -> str:
    """Case-, accent- and invisible-character-insensitive form: "Éric", "ERIC" and
    "E\u200bric" all fold to "eric"; "Œuvre" to "oeuvre"."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return _INVISIBLE_OR_MARK.sub("", decomposed).translate(_LIGATURES)


@functools.lru_cache(maxsize=1 << 16)
def _fold_piece(piece: str) -> str:
    return fold(piece).translate(_LOOK_ALIKES)


class Piece(NamedTuple):
    """A word piece: folded text, where it stands in the original, and whether it is
    glued to the piece before it (no space between them)."""

    folded: str
    start: int
    end: int
    glued: bool
    capital: bool


def _cuts(raw: str) -> list[int]:
    """Where one raw piece splits again: where letters meet digits and where an upper-case
    letter follows a lower-case one (marks and invisible characters aside)."""
    if raw.isalpha() and (raw.islower() or raw.isupper() or raw[1:].islower()):
        return []  # the common case, at a glance
    return [match.start() for match in _TRANSITION.finditer(raw)]


def pieces(text: str) -> list[Piece]:
    """The word pieces of ``text``, in order."""
    found: list[Piece] = []
    previous_end = None
    for match in _PIECE.finditer(text):
        start, raw = match.start(), match.group()
        glued = previous_end is not None and not _SPACE.search(text, previous_end, start)
        bounds = [0, *_cuts(raw), len(raw)]
        for part_start, part_end in pairwise(bounds):
            part = raw[part_start:part_end]
            folded = _fold_piece(part)
            if folded:
                found.append(Piece(folded, start + part_start, start + part_end, glued, part[:1].isupper()))
            glued = True
        previous_end = match.end()
    return found


def allowed_distance(letters: int) -> int:
    """How many letters a form may be off and still be taken for a name this long."""
    if letters < 6:
        return 0
    return 1 if letters <= 8 else 2


@dataclass(frozen=True)
class Term:
    """A withheld name or phrase, as the producer wrote it and as pieces."""

    text: str
    parts: tuple[str, ...]
    joined: str = field(init=False)
    distance: int = field(init=False)

    def __post_init__(self):
        joined = "".join(self.parts)
        object.__setattr__(self, "joined", joined)
        object.__setattr__(self, "distance", allowed_distance(sum(ch.isalpha() for ch in joined)))


@dataclass(frozen=True)
class Match:
    """Where a term was found: ``text[start:end]`` says it, ``exact``ly, as a near form
    (``near``), or inside a longer word (``inside``)."""

    start: int
    end: int
    term: Term
    kind: str

    @property
    def exact(self) -> bool:
        return self.kind == "exact"


class Masked(NamedTuple):
    """A masked text, the forms replaced (as they were written) and the terms they said."""

    text: str
    forms: list[str]
    terms: set[str]


class Matcher:
    """Finds any of a list of withheld terms in text (see the module's docstring)."""

    def __init__(self, terms: Iterable[str]):
        built = []
        for text in dict.fromkeys(terms):
            parts = tuple(piece.folded for piece in pieces(text))
            if parts:
                built.append(Term(text, parts))
        self.terms: tuple[Term, ...] = tuple(built)
        self._widths = sorted({len(term.parts) for term in self.terms})

    def __bool__(self) -> bool:
        return bool(self.terms)

    def find(self, text: str, found: list[Piece] | None = None) -> list[Match]:
        """Every place ``text`` says a term, in order; overlapping places are all kept.
        ``found``: the pieces of ``text``, when they were cut already.

        Text that markup, character references or percent-encoding could turn into a
        name ("&Eacute;ric", "Jo<b></b>anis", "%C3%89ric") is read decoded too."""
        if not self.terms or not text:
            return []
        matches = self._find(pieces(text) if found is None else found)
        if _ENCODED.search(text):
            decoded, origin = _decoded(text)
            matches += [Match(origin[m.start][0], origin[m.end - 1][1], m.term, m.kind)
                        for m in self._find(pieces(decoded))]
        # "Joanis's" says "Joanis" exactly and, a letter off, "Joaniss": keep the exact place.
        tightest = [m for m in matches if m.exact or not any(
            other.exact and other.term == m.term and m.start <= other.start and other.end <= m.end
            for other in matches)]
        return sorted(set(tightest), key=lambda m: (m.start, m.end))

    def _find(self, found: list[Piece]) -> list[Match]:
        # A term is read over as many pieces as it has, whatever separates them, and over
        # each run of glued pieces, whatever its length ("Jo-a-nis", "@ericjoanis").
        places = [_Places.windows(found, width) for width in self._widths]
        runs = _Places.glued_runs(found)
        matches = []
        for term in self.terms:
            for candidates in (*(p for p in places if p.width == len(term.parts)), runs):
                for first, last, kind in candidates.of(term):
                    if kind == "near" and not found[first].capital:
                        continue
                    matches.append(Match(found[first].start, found[last].end, term, kind))
        return matches

    def says(self, text: str) -> bool:
        return bool(self.find(text))

    def spans(self, text: str) -> tuple[list[tuple[int, int]], set[str]]:
        """Where ``text`` says a term (overlapping places joined), and the terms said."""
        matches = self.find(text)
        return merge_spans([(m.start, m.end) for m in matches]), {m.term.text for m in matches}

    def mask(self, text: str) -> Masked:
        """``text`` with every place that says a term replaced by REDACTED."""
        spans, terms = self.spans(text)
        forms = [text[start:end] for start, end in spans]
        for start, end in reversed(spans):
            text = text[:start] + REDACTED + text[end:]
        return Masked(text, forms, terms)


# Names shorter than this are found only as whole words or glued runs, never inside one.
INSIDE_A_WORD_LETTERS = 6


class _Places:
    """Runs of pieces (first, last) by the text they spell, and by its length."""

    def __init__(self, width: int | None):
        self.width = width
        self.spans: dict[str, list[tuple[int, int]]] = defaultdict(list)
        self.by_length: dict[int, list[str]] = defaultdict(list)

    @classmethod
    def windows(cls, found: list[Piece], width: int) -> _Places:
        """Every ``width`` consecutive pieces."""
        places = cls(width)
        for first in range(len(found) - width + 1):
            places._add("".join(p.folded for p in found[first:first + width]), first, first + width - 1)
        return places

    @classmethod
    def glued_runs(cls, found: list[Piece]) -> _Places:
        """Every run of pieces glued together, as long as it goes."""
        places, first = cls(None), 0
        for index in range(1, len(found) + 1):
            if index == len(found) or not found[index].glued:
                places._add("".join(p.folded for p in found[first:index]), first, index - 1)
                first = index
        return places

    def _add(self, text: str, first: int, last: int) -> None:
        if text not in self.spans:
            self.by_length[len(text)].append(text)
        self.spans[text].append((first, last))

    def of(self, term: Term) -> Iterator[tuple[int, int, str]]:
        """(first, last, kind) of each run that spells ``term``, a near form of it, or
        (a glued run, for a long term) holds it."""
        joined = term.joined
        for first, last in self.spans.get(joined, ()):
            yield first, last, "exact"
        if term.distance:
            candidates = [text for length in range(len(joined) - term.distance, len(joined) + term.distance + 1)
                          for text in self.by_length.get(length, ()) if text != joined]
            for text, _, _ in process.extract(joined, candidates, scorer=OSA.distance,
                                              score_cutoff=term.distance, limit=None):
                for first, last in self.spans[text]:
                    yield first, last, "near"
        if self.width is None and sum(ch.isalpha() for ch in joined) >= INSIDE_A_WORD_LETTERS:
            for length, texts in self.by_length.items():
                if length > len(joined):
                    for text in texts:
                        if joined in text:
                            for first, last in self.spans[text]:
                                yield first, last, "inside"


# Markup, character references and percent-encoding: what decodes to other characters.
_ENCODED = regex.compile(r"<[^<>]*>|&(?:#\d+|#[xX][0-9a-fA-F]+|[A-Za-z][A-Za-z0-9]*);|(?:%[0-9A-Fa-f]{2})+")


def _decoded(text: str) -> tuple[str, list[tuple[int, int]]]:
    """``text`` with markup removed and references and percent-encoding decoded, and for
    each character of it the span of ``text`` it comes from."""
    out: list[str] = []
    origin: list[tuple[int, int]] = []
    done = 0
    for match in _ENCODED.finditer(text):
        for index in range(done, match.start()):
            out.append(text[index])
            origin.append((index, index + 1))
        piece = match.group()
        if piece.startswith("&"):
            decoded = html.unescape(piece)
        elif piece.startswith("%"):
            decoded = unquote(piece)
        else:
            decoded = ""  # a tag: "Jo<b></b>anis" reads "Joanis"
        out.extend(decoded)
        origin.extend([match.span()] * len(decoded))
        done = match.end()
    for index in range(done, len(text)):
        out.append(text[index])
        origin.append((index, index + 1))
    return "".join(out), origin


def merge_spans(spans: Iterable[tuple]) -> list[tuple]:
    """Overlapping or touching spans joined, in order."""
    merged: list[tuple] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged
