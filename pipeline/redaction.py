"""Finding a withheld name in text the way a reader would read it there.

Text is cut into word pieces: runs of letters and digits, split where letters meet
digits and where a lower-case letter meets an upper-case one ("EricJoanis"), folded
(compatibility forms such as 𝐉 or Ⓙ, case, accents, ligatures, Cyrillic and Greek
look-alikes; invisible and blank characters dropped). Everything else separates pieces:
spaces, every apostrophe and dash, quotes, brackets. Pieces with no space between them
(or only a line-break hyphen) are *glued*, and glued pieces make one word
("Joanis-Smith", "d'Éric", "EricJoanis"); so do single letters in a row, spelled out
("J. O. A. N. I. S.").

A term such as "Marie Tremblay" is found where the pieces say it, whatever separates
them ("Marie-Tremblay", "MARIE  TREMBLAY", "Marie\u200bTremblay's"), where words spell
it in other parts ("MarieTremblay", "Jo-a-nis", "Marie Trem-blay"), surname first
("Tremblay, Marie"), and read through markup, character references, percent-encoding
and punycode ("&Eacute;ric", "Jo<b></b>anis", "%C3%89ric", "xn--ric-9la"). Names of
six letters or more are also found a letter or two off (one for up to eight letters,
two beyond), as whisper misspells names ("Joannis" for "Joanis"), and inside a longer
word that is no word of a dictionary ("@ericjoanis", "JOANISSMITH", but not
"transparent" for "Parent"). A near form must start with a capital, as whisper writes
names, so that "français" is not taken for "François" — except in identifiers (slugs,
guids, URLs), which are read ``loose``.

``fold`` is the one folding podarchive has: search, alignment and the privacy audit
use it too.
"""

from __future__ import annotations

import codecs
import functools
import gzip
import hashlib
import html
import json
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import NamedTuple
from urllib.parse import unquote

import regex
from rapidfuzz import fuzz, process
from rapidfuzz.distance import OSA

from .errors import PodarchiveError
from .storage import atomic_write_text, cache_dir
from .text import fold

REDACTED = "[redacted]"

# A raw word piece: letters and digits with the combining marks and invisible format
# characters inside them, and the enclosed letters (Ⓙ, 🅙, 🇯) that read as letters; not
# the letters some keyboards use as apostrophes.
_PIECE = regex.compile(r"[[\p{L}\p{N}\p{M}\p{Cf}\u2800\u2460-\u24ff\u3200-\u32ff\U0001f100-\U0001f1ff]"
                       r"--[\u02b9\u02bb-\u02bf\ua78b\ua78c]]+", regex.V1)
# A line-break hyphen glues what it breaks: "Jo-\nanis" is one word.
_LINE_BREAK_HYPHEN = regex.compile(r"[-\u2010\u2011]\s+")
# Whitespace parts words, but not spaces too narrow to see: "Jo\u200aanis" reads "Joanis".
_APART = regex.compile(r"[\s--[\u2006\u2008\u2009\u200a\u202f]]", regex.V1)
_TRANSITION = regex.compile(r"(?<=\p{Ll}[\p{M}\p{Cf}]*)(?=\p{Lu})|(?<=\p{L}[\p{M}\p{Cf}]*)(?=\p{N})"
                            r"|(?<=\p{N}[\p{M}\p{Cf}]*)(?=\p{L})", regex.V1)
# Cyrillic and Greek letters that look Latin, and regional indicator letters: a name
# written with them reads the same.
_LOOK_ALIKES = str.maketrans({
    "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p",
    "с": "c", "т": "t", "у": "y", "х": "x", "і": "i", "ї": "i", "ј": "j", "ѕ": "s", "ԁ": "d",
    "һ": "h", "ԛ": "q", "ԝ": "w", "α": "a", "ε": "e", "ι": "i", "κ": "k", "ν": "v", "ο": "o",
    "ρ": "p", "τ": "t", "υ": "u", "χ": "x",
    **{chr(0x1F1E6 + n): chr(ord("a") + n) for n in range(26)}})


@functools.lru_cache(maxsize=1 << 16)
def _fold_piece(piece: str) -> str:
    return fold(piece).translate(_LOOK_ALIKES)


class Piece(NamedTuple):
    """A word piece: folded text, where it stands in the original, whether it is glued to
    the piece before it, and whether it starts with a capital."""

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
        gap = text[previous_end:start] if previous_end is not None else " "
        glued = not _APART.search(gap) or bool(_LINE_BREAK_HYPHEN.fullmatch(gap))
        bounds = [0, *_cuts(raw), len(raw)]
        for part_start, part_end in pairwise(bounds):
            part = raw[part_start:part_end]
            folded = _fold_piece(part)
            if folded:
                capital = unicodedata.normalize("NFKD", part[:1])[:1].isupper()
                found.append(Piece(folded, start + part_start, start + part_end, glued, capital))
            glued = True
        previous_end = match.end()
    return found


def words(found: list[Piece]) -> list[tuple[int, int]]:
    """The pieces that make one word, as (first, last): glued ones, and single letters in
    a row (a name spelled out)."""
    spans: list[tuple[int, int]] = []
    for index, piece in enumerate(found):
        spelled = len(piece.folded) == 1 and index and len(found[index - 1].folded) == 1
        if spans and (piece.glued or spelled):
            spans[-1] = (spans[-1][0], index)
        else:
            spans.append((index, index))
    return spans


def allowed_distance(letters: int) -> int:
    """How many letters a form may be off and still be taken for a name this long."""
    if letters < 6:
        return 0
    return 1 if letters <= 8 else 2


# Names shorter than this are found only as whole words, never inside a longer one.
INSIDE_A_WORD_LETTERS = 6
# How many more pieces than a term has a glued run may split it into.
_SPLIT_PARTS = 2


@dataclass(frozen=True)
class Term:
    """A withheld name or phrase, as the producer wrote it and as pieces."""

    text: str
    parts: tuple[str, ...]
    joined: str = field(init=False)
    distance: int = field(init=False)
    letters: int = field(init=False)

    def __post_init__(self):
        joined = "".join(self.parts)
        object.__setattr__(self, "joined", joined)
        object.__setattr__(self, "letters", sum(ch.isalpha() for ch in joined))
        object.__setattr__(self, "distance", allowed_distance(self.letters))

    def orders(self) -> list[str]:
        """The term's parts joined as written, and surname first ("Tremblay, Marie")."""
        if len(self.parts) < 2:
            return [self.joined]
        return [self.joined, "".join((self.parts[-1], *self.parts[:-1]))]


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

    def __bool__(self) -> bool:
        return bool(self.terms)

    def find(self, text: str, found: list[Piece] | None = None, *, loose: bool = False) -> list[Match]:
        """Every place ``text`` says a term, in order; overlapping places are all kept.
        ``found``: the pieces of ``text``, when they were cut already; ``loose``: near
        forms need no capital (for identifiers such as slugs, guids and URLs)."""
        if not self.terms or not text:
            return []
        matches = self._find(pieces(text) if found is None else found, loose)
        if _ENCODED.search(text):
            decoded, origin = _decoded(text)
            matches += [Match(origin[m.start][0], origin[m.end - 1][1], m.term, m.kind)
                        for m in self._find(pieces(decoded), loose)]
        # "Joanis's" says "Joanis" exactly and, a letter off, "Joaniss": keep the exact place.
        tightest = [m for m in matches if m.exact or not any(
            other.exact and other.term == m.term and m.start <= other.start and other.end <= m.end
            for other in matches)]
        return sorted(set(tightest), key=lambda m: (m.start, m.end))

    def _find(self, found: list[Piece], loose: bool) -> list[Match]:
        # Most texts say none of the terms: a glance at all their letters in a row tells.
        letters = "".join(piece.folded for piece in found)
        terms = [term for term in self.terms if _might_say(term, letters)]
        if not terms:
            return []
        # A term is read over as many pieces as it has, whatever separates them (and a
        # word split in two or three, "Jo-Annis", whole), and over as many words as it
        # has or fewer, whatever they are made of.
        glued = [piece.glued for piece in found]
        # A name of several parts may also be one piece, run together ("AAAA's" says "Aa Aa").
        split = {(parts, extra): _Places.of_pieces(found, glued, parts + extra, extra)
                 for parts in {1, *(len(term.parts) for term in terms)} for extra in range(_SPLIT_PARTS + 1)}
        spans = words(found)
        most_parts = max(len(term.parts) for term in terms)
        by_words = {width: _Places.of_words(found, spans, width) for width in range(1, most_parts + 1)}
        matches = []
        for term in terms:
            parts = len(term.parts)
            places = [*(split[parts, extra] for extra in range(_SPLIT_PARTS + 1)),
                      *(by_words[w] for w in range(1, parts + 1)), *([split[1, 0]] if parts > 1 else [])]
            for candidates in places:
                for first, last, kind in candidates.of(term):
                    if kind == "near" and not (loose or found[first].capital):
                        continue
                    matches.append(Match(found[first].start, found[last].end, term, kind))
        return matches

    def says(self, text: str, *, loose: bool = False) -> bool:
        return bool(self.find(text, loose=loose))

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


def _might_say(term: Term, letters: str) -> bool:
    """Whether the letters of a text, run together, could say ``term``: it is in them, or
    some stretch of them is close enough to be a near form (a near form is at most
    ``distance`` edits away, so a stretch as long as the term is at most 3/2 of that)."""
    for joined in term.orders():
        if joined in letters:
            return True
        if term.distance:
            cutoff = 100 * (1 - 1.5 * term.distance / len(joined)) - 1
            if fuzz.partial_ratio(joined, letters, score_cutoff=cutoff):
                return True
    return False


class _Places:
    """Runs of pieces (first, last) by the text they spell, and by its length."""

    def __init__(self, single_words: bool):
        # Only a run that is one word may hold a name inside it.
        self.single_words = single_words
        self.spans: dict[str, list[tuple[int, int]]] = defaultdict(list)
        self.by_length: dict[int, list[str]] = defaultdict(list)

    @classmethod
    def of_pieces(cls, found: list[Piece], glued: list[bool], width: int, split: int) -> _Places:
        """Every ``width`` consecutive pieces of which at least ``split`` are glued to the
        one before: a term's own parts may be apart, the pieces a word was split into not."""
        places = cls(single_words=False)
        for first in range(len(found) - width + 1):
            if split == 0 or sum(glued[first + 1:first + width]) >= split:
                places._add("".join(p.folded for p in found[first:first + width]), first, first + width - 1)
        return places

    @classmethod
    def of_words(cls, found: list[Piece], spans: list[tuple[int, int]], width: int) -> _Places:
        """Every ``width`` consecutive words."""
        places = cls(single_words=width == 1)
        for index in range(len(spans) - width + 1):
            first, last = spans[index][0], spans[index + width - 1][1]
            places._add("".join(p.folded for p in found[first:last + 1]), first, last)
        return places

    def _add(self, text: str, first: int, last: int) -> None:
        if text not in self.spans:
            self.by_length[len(text)].append(text)
        self.spans[text].append((first, last))

    def of(self, term: Term) -> Iterator[tuple[int, int, str]]:
        """(first, last, kind) of each run that spells ``term``, a near form of it, or
        (one word, for a long term) holds it."""
        for joined in term.orders():
            for first, last in self.spans.get(joined, ()):
                yield first, last, "exact"
            if term.distance:
                candidates = [text for length in range(len(joined) - term.distance,
                                                       len(joined) + term.distance + 1)
                              for text in self.by_length.get(length, ()) if text != joined]
                for text, _, _ in process.extract(joined, candidates, scorer=OSA.distance,
                                                  score_cutoff=term.distance, limit=None):
                    for first, last in self.spans[text]:
                        yield first, last, "near"
            if self.single_words and term.letters >= INSIDE_A_WORD_LETTERS:
                for length, texts in self.by_length.items():
                    if length > len(joined):
                        for text in texts:
                            if joined in text and not is_a_word(text):
                                for first, last in self.spans[text]:
                                    yield first, last, "inside"


_DICTIONARY_LANGUAGES = ("en", "fr", "de", "es")


@functools.cache
def _dictionary() -> frozenset[str]:
    """The words of English, French, German and Spanish (pyspellchecker's lists), folded;
    folded once into the user cache, then read from there."""
    import spellchecker

    folder = Path(spellchecker.__file__).parent / "resources"
    sources = [folder / f"{language}.json.gz" for language in _DICTIONARY_LANGUAGES]
    made_from = hashlib.sha256(json.dumps([[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in sources])
                               .encode()).hexdigest()[:16]
    cached = cache_dir() / f"dictionary-{made_from}.txt"
    try:
        return frozenset(cached.read_text("utf-8").split("\n"))
    except (OSError, UnicodeDecodeError):
        pass
    lists = []
    for source in sources:
        with gzip.open(source, "rt", encoding="utf-8") as opened:
            lists.append("\n".join(json.load(opened)))
    folded = fold("\n".join(lists))
    try:
        atomic_write_text(cached, folded)
    except PodarchiveError:
        pass  # a read-only cache: fold again next time
    return frozenset(folded.split("\n"))


def is_a_word(folded: str) -> bool:
    """Whether a folded word is a word of the dictionaries ("transparent" holds "parent"
    and is one; "ericjoanis" is not)."""
    return folded in _dictionary()


# What decodes to other characters: markup and comments, character references (with or
# without their semicolon), percent-encoding, punycode labels, JSON and JavaScript escapes.
_ENCODED = regex.compile(
    r"<!--.*?-->|<[^<>]*>|&(?:#\d+|#[xX][0-9a-fA-F]+|[A-Za-z][A-Za-z0-9]*);?|(?:%[0-9A-Fa-f]{2})+"
    r"|(?i:xn--[a-z0-9-]+)|(?:\\u[0-9a-fA-F]{4})+", regex.DOTALL)


def _decode_one(piece: str) -> str:
    if piece.startswith("&"):
        return html.unescape(piece)
    if piece.startswith("%"):
        return unquote(piece)
    if piece.startswith("\\u"):
        return codecs.decode(piece, "unicode_escape", errors="replace")
    if piece[:4].lower() == "xn--":
        try:
            return piece[4:].encode("ascii").decode("punycode")
        except UnicodeError:
            return piece
    return ""  # a tag or a comment: "Jo<b></b>anis" reads "Joanis"


def _decoded(text: str) -> tuple[str, list[tuple[int, int]]]:
    """``text`` with markup removed and everything encoded decoded, and for each character
    of it the span of ``text`` it comes from."""
    out: list[str] = []
    origin: list[tuple[int, int]] = []
    done = 0
    for match in _ENCODED.finditer(text):
        out.extend(text[done:match.start()])
        origin.extend((index, index + 1) for index in range(done, match.start()))
        decoded = _decode_one(match.group())
        out.extend(decoded)
        origin.extend([match.span()] * len(decoded))
        done = match.end()
    out.extend(text[done:])
    origin.extend((index, index + 1) for index in range(done, len(text)))
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
