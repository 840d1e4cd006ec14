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
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import pairwise
from typing import NamedTuple

import regex
from rapidfuzz import process
from rapidfuzz.distance import OSA

REDACTED = "[redacted]"

# A raw word piece: letters and digits with the combining marks and invisible format
# characters inside them, but not the letters some keyboards use as apostrophes.
_PIECE = regex.compile(r"[[\p{L}\p{N}\p{M}\p{Cf}]--[\u02b9\u02bb-\u02bf\ua78b\ua78c]]+", regex.V1)
_INVISIBLE_OR_MARK = regex.compile(r"[\p{Cf}\p{M}]")
_SPACE = regex.compile(r"\s")
_TRANSITION = regex.compile(r"(?<=\p{Ll}[\p{M}\p{Cf}]*)(?=\p{Lu})|(?<=\p{L}[\p{M}\p{Cf}]*)(?=\p{N})"
                            r"|(?<=\p{N}[\p{M}\p{Cf}]*)(?=\p{L})", regex.V1)
_LIGATURES = str.maketrans({"œ": "oe", "æ": "ae", "ĳ": "ij", "ø": "o", "ł": "l", "đ": "d", "ð": "d"})


def fold(text: str) -> str:
    """Case-, accent- and invisible-character-insensitive form: "Éric", "ERIC" and
    "E\u200bric" all fold to "eric"; "Œuvre" to "oeuvre"."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return _INVISIBLE_OR_MARK.sub("", decomposed).translate(_LIGATURES)


_fold_piece = functools.lru_cache(maxsize=1 << 16)(fold)


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
    """Where a term was found: ``text[start:end]`` says it (``exact`` or a near form)."""

    start: int
    end: int
    term: Term
    exact: bool


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
        self._widths = sorted({width for term in self.terms
                               for width in range(1, len(term.parts) + 2)})

    def __bool__(self) -> bool:
        return bool(self.terms)

    def find(self, text: str, found: list[Piece] | None = None) -> list[Match]:
        """Every place ``text`` says a term, in order; overlapping places are all kept.
        ``found``: the pieces of ``text``, when they were cut already."""
        if not self.terms or not text:
            return []
        found = pieces(text) if found is None else found
        windows = {width: _Windows(found, width) for width in self._widths}
        matches = []
        for term in self.terms:
            for width in range(1, len(term.parts) + 2):
                for first, exact in windows[width].places(term):
                    chosen = found[first:first + width]
                    # Fewer or more parts than the term has: only glued pieces spell it.
                    if width != len(term.parts) and not all(p.glued for p in chosen[1:]):
                        continue
                    if not exact and not chosen[0].capital:
                        continue
                    matches.append(Match(chosen[0].start, chosen[-1].end, term, exact))
        # "Joanis's" says "Joanis" exactly and, a letter off, "Joaniss": keep the exact place.
        tightest = [m for m in matches if m.exact or not any(
            other.exact and other.term == m.term and m.start <= other.start and other.end <= m.end
            for other in matches)]
        return sorted(tightest, key=lambda m: (m.start, m.end))


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


class _Windows:
    """Every run of ``width`` consecutive pieces, joined, by its text and by its length."""

    def __init__(self, found: list[Piece], width: int):
        self.firsts: dict[str, list[int]] = defaultdict(list)
        for first in range(len(found) - width + 1):
            self.firsts["".join(p.folded for p in found[first:first + width])].append(first)
        self.by_length: dict[int, list[str]] = defaultdict(list)
        for text in self.firsts:
            self.by_length[len(text)].append(text)

    def places(self, term: Term) -> Iterator[tuple[int, bool]]:
        """(first piece, exact) of each run that spells ``term`` or a near form of it."""
        joined = term.joined
        for first in self.firsts.get(joined, ()):
            yield first, True
        if not term.distance:
            return
        candidates = [text for length in range(len(joined) - term.distance, len(joined) + term.distance + 1)
                      for text in self.by_length.get(length, ()) if text != joined]
        for text, _, _ in process.extract(joined, candidates, scorer=OSA.distance,
                                          score_cutoff=term.distance, limit=None):
            for first in self.firsts[text]:
                yield first, False


def merge_spans(spans: Iterable[tuple]) -> list[tuple]:
    """Overlapping or touching spans joined, in order."""
    merged: list[tuple] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged
