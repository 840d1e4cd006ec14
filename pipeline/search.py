"""Search the published transcripts: one whoosh document per segment of every publishable episode.

Text reaches the index only from the public view (``privacy.public_view``), so a
restricted episode, a restricted segment or a withheld name can never be found. When
consent changes (an episode withdrawn, a name newly withheld, a passage restricted),
the segments of the index that held the old documents are written anew without them:
no byte of what was withdrawn stays under index/, not even as a deleted document. And
``search`` asks the gate again at query time, so an index that lags behind the archive
shows nothing the archive withholds now.

Matching ignores case and accents, and French, English (and other snowball languages')
word forms match through stemming in each segment's own language: ``liberation`` finds
"libération", ``chanteuses`` finds "chanteuse". Accents are folded before stemming, so
the query and the transcript need not agree on them.

Query syntax: words (every one must match; ``AND`` may be written), ``"quoted phrases"``
(the words adjacent, in order; a stemmed variant of the phrase matches too but ranks
after the exact one), ``OR`` between alternatives, ``NOT word``, ``-word`` or
``-"a phrase"`` to exclude. Operators are upper case; lower-case "and", "or", "not"
are words. A bad query raises ``QueryError``. Matched words are shown in a hit's
``snippet`` between ``**`` and ``**``.

Phrase queries are fast because each pair of adjacent words that holds a very common
word ("de la", "the wizard") is also indexed as one term, at its first word's position,
as Lucene's CommonGrams does. A phrase is then looked up position by position as the
pair starting there, where indexed, or else as its word, which is then rare: no posting
list of a word like "de" or "the" is read, and the short lists left are intersected and
checked for adjacent positions. Pairs of two rarer words are not indexed: their own
lists are short already, and indexing every pair made the index much bigger.
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import json
import os
import re
import shutil
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
from itertools import pairwise
from pathlib import Path
from typing import NamedTuple

from whoosh import collectors, scoring, writing
from whoosh import index as whoosh_index
from whoosh import query as q
from whoosh.analysis import SpaceSeparatedTokenizer, StopFilter
from whoosh.codec import whoosh3
from whoosh.fields import ID, STORED, TEXT, Schema
from whoosh.lang import has_stemmer, stemmer_for_language
from whoosh.lang.stopwords import stoplists
from whoosh.reading import SegmentReader
from whoosh.util.filelock import try_for

from . import layout
from .errors import PodarchiveError
from .formats import segment_text
from .model import Outcome, Status
from .privacy import PublicEpisode, PublicView, QueryGate, as_podarchive_error
from .redaction import REDACTED
from .storage import archive_cache, write_to_cache
from .text import fold

# Recorded in the index: an index made with another analysis of the text is rebuilt.
INDEX_FORMAT = 2
WRITE_LOCK_SECONDS = 10.0
HIGHLIGHT_OPEN, HIGHLIGHT_CLOSE = "**", "**"

# The exact (folded, unstemmed) form of a word outranks a stemmed variant of it, and an
# exact phrase outranks a stemmed variant of the phrase by a margin no length or
# frequency difference makes up.
EXACT_BOOST = 2.0
EXACT_PHRASE_BOOST = 20.0
# Unquoted words that are adjacent in a segment, in the query's order, rank it higher.
ADJACENT_BOOST = 2.0
# whoosh scores a match in about 5 µs: a query matched by more segments than this (a word
# as common as "the" or "de") is ranked among the first this many it matches, in the
# order they were indexed, so that none takes much over 30 ms. Rarer words (a theme said
# in 4 % of 100,000 segments) are ranked among all their matches.
MOST_SCORED = 5000
# A query of stop words alone ("the", "and", "de"; _common_words) matches most segments
# and tells them apart by little but their lengths: it is ranked among the first this
# many. Measured on bench/serve.py's archive (100,000 segments): such a word query took
# 42 ms on average, the other word queries 8 ms.
MOST_SCORED_COMMON = 500

# A word: letters and digits, with the combining accents of decomposed text kept inside it.
_TOKEN = re.compile(re.escape(REDACTED) + r"|[^\W_](?:[^\W_]|[\u0300-\u036f])*")
# Stands for a redacted word: it keeps positions honest (the words around it are not
# adjacent) and no query can produce it, since query words never contain "|".
_GAP = "|"
_PAIR_JOINER = "_"
_QUOTES = str.maketrans({"“": '"', "”": '"', "«": '"', "»": '"', "„": '"'})
_QUERY_PIECE = re.compile(r'(-?)"([^"]*)"|([^\s"]+)')
_OPERATORS = ("AND", "OR", "NOT")
# Longer queries are refused: each word costs a posting list read on every search.
MAX_QUERY_WORDS = 1000
# whoosh nests the matchers of an AND (and of an OR of alike posting lists) one inside
# the next, a Python frame each: subqueries are grouped this many at a time, so that a
# long query nests logarithmically deep instead of past the recursion limit.
_MOST_SUBQUERIES = 16


class QueryError(PodarchiveError):
    """A search query that cannot be read; the message says why."""


class DamagedIndex(PodarchiveError):
    """A file of the index that cannot be read (truncated, gone, garbled): only making the
    index anew from the public view helps."""

    def __init__(self, folder: Path, error: Exception):
        kind = type(error)
        self.cause = kind.__name__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__name__}"
        super().__init__(folder, None, f"a file of the index cannot be read ({self.cause}): "
                         "rebuild it with `podarchive index --rebuild`")


@dataclass(frozen=True)
class SegmentDocument:
    """One published segment, as every search engine receives it."""

    episode: str
    title: str
    date: str
    segment: int
    start: float
    end: float
    speaker: str
    language: str
    text: str
    # (text, start, end) of each word; empty when the segment has no word times.
    words: tuple[tuple[str, float, float], ...] = ()


def episode_documents(episode: PublicEpisode) -> list[SegmentDocument]:
    """The documents of one episode of the public view: its published segments."""
    public = episode.transcript
    documents = []
    for segment in public.segments:
        text = segment_text(segment)
        if not text:
            continue
        documents.append(SegmentDocument(
            episode=episode.slug, title=episode.title, date=episode.date.isoformat(), segment=segment.id,
            start=segment.start, end=segment.end, speaker=segment.speaker,
            language=segment.language or public.language or episode.language,
            text=text, words=tuple((w.text, w.start, w.end) for w in segment.words if w.text),
        ))
    return documents


def documents_digest(documents: list[SegmentDocument]) -> str:
    """What an episode's index entry is made from: any change to it means re-indexing.

    The documents are the published text, so a new redaction, a restricted segment or a
    new title changes the digest too.
    """
    content = [asdict(document) for document in documents]
    return hashlib.sha256(json.dumps(content, ensure_ascii=False).encode()).hexdigest()


# --- Analysis: the same words for the index and the query ---------------------------------


class _Token(NamedTuple):
    start: int
    end: int
    folded: str  # _GAP for a redacted word


@functools.lru_cache(maxsize=1 << 16)
def _fold_word(word: str) -> str:
    return re.sub(r"[\s_]", "", fold(word))


def _tokens(text: str) -> list[_Token]:
    return [_Token(m.start(), m.end(), _GAP if m.group() == REDACTED else _fold_word(m.group()))
            for m in _TOKEN.finditer(text)]


def _primary_language(language: str) -> str:
    return language.split("-")[0].lower()


@functools.cache
def _stemmer(language: str) -> Callable[[str], str]:
    """The snowball stemmer of a language (fed folded words), or no stemming at all."""
    if not language or not has_stemmer(language):
        return str
    stem = stemmer_for_language(language)
    return functools.lru_cache(maxsize=1 << 16)(stem)


def _stems(folded: list[str], language: str) -> list[str]:
    stem = _stemmer(language)
    return [word if word == _GAP else stem(word) for word in folded]


@functools.cache
def _common_words(language: str | None) -> frozenset[str]:
    """Words too frequent to find phrases by their positions fast: every stop word whoosh
    knows, folded; given a language, their stems in it."""
    words = [_fold_word(word) for stoplist in stoplists.values() for word in stoplist]
    return frozenset(words if language is None else _stems(words, language))


def _common_pairs(words: list[str] | tuple[str, ...], common: frozenset[str]) -> list[str | None]:
    """The pair each word starts with the next one, where either is common; else None."""
    return [a + _PAIR_JOINER + b if _GAP not in (a, b) and (a in common or b in common) else None
            for a, b in pairwise(words)]


# --- Queries ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Atom:
    """A word or a quoted phrase of the query, as folded words."""

    words: tuple[str, ...]
    quoted: bool
    excluded: bool


def parse_query(text: str, where: Path) -> list[list[_Atom]]:
    """The query as alternatives (joined by OR), each a list of atoms that must all match.

    ``where`` locates the error (the index folder) when the query cannot be read.
    """
    def fail(message: str) -> QueryError:
        return QueryError(where, "query", f"{message}: {text!r}")

    text = text.translate(_QUOTES)
    if text.count('"') % 2:
        raise fail("a quote is not closed")
    alternatives: list[list[_Atom]] = [[]]
    pending: str | None = None  # the operator waiting for its right-hand side
    for match in _QUERY_PIECE.finditer(text):
        minus, phrase, word = match.groups()
        if word in _OPERATORS:
            if pending == "NOT" or (pending and word != "NOT"):
                raise fail(f"{word} cannot follow {pending}")
            if word != "NOT" and not alternatives[-1]:
                raise fail(f"{word} needs something to search for before it")
            if word == "OR":
                alternatives.append([])
            pending = word
            continue
        excluded = pending == "NOT" or bool(minus)
        if word is not None and word.startswith("-") and len(word) > 1:
            excluded, word = True, word[1:]
        words = tuple(token.folded for token in _tokens(phrase if word is None else word))
        if not words and word is None:
            raise fail("a quoted phrase is empty")
        if words:
            alternatives[-1].append(_Atom(words, quoted=word is None, excluded=excluded))
        pending = None
    if pending:
        raise fail(f"{pending} needs something to search for after it")
    words = sum(len(atom.words) for atoms in alternatives for atom in atoms)
    if words > MAX_QUERY_WORDS:
        raise QueryError(where, "query", f"too long: {words} words, at most {MAX_QUERY_WORDS} words")
    for atoms in alternatives:
        if not atoms:
            raise fail("nothing to search for")
        if all(atom.excluded for atom in atoms):
            raise fail("each alternative needs a word to find, not only words to exclude")
    # A word said twice asks nothing more.
    unique = dict.fromkeys(tuple(dict.fromkeys(atoms)) for atoms in alternatives)
    return [list(atoms) for atoms in unique]


def _joined(compound: type[q.CompoundQuery], queries: list[q.Query]) -> q.Query:
    """``compound`` (``q.And`` or ``q.Or``) of ``queries``, nested _MOST_SUBQUERIES at a time."""
    while len(queries) > _MOST_SUBQUERIES:
        queries = [compound(queries[n:n + _MOST_SUBQUERIES]) if len(queries) - n > 1 else queries[n]
                   for n in range(0, len(queries), _MOST_SUBQUERIES)]
    return queries[0] if len(queries) == 1 else compound(queries)


def _word_query(word: str, languages: list[str]) -> q.Query:
    stems = dict.fromkeys(_stemmer(language)(word) for language in languages)
    return q.Or([q.Term("exact", word, boost=EXACT_BOOST), *(q.Term("stem", s) for s in stems)])


def _phrase_in(field: str, pair_field: str, words: tuple[str, ...], common: frozenset[str],
               boost: float = 1.0) -> q.Query:
    """Documents whose ``field`` holds ``words`` adjacent.

    Each position of the phrase is looked up as the pair it starts where that pair is
    indexed, else as its word, which is then rare; a pair sits at its first word's
    position, so the terms must follow each other one position apart whatever their
    field. No posting list of a very common word is ever read.
    """
    pairs = _common_pairs(words, common)
    if len(words) == 2 and pairs[0]:
        return q.Term(pair_field, pairs[0], boost=boost)
    terms = [q.Term(pair_field, pair, boost=boost) if pair else q.Term(field, word, boost=boost)
             for word, pair in zip(words, pairs)]
    if not pairs[-1]:
        terms.append(q.Term(field, words[-1], boost=boost))
    return q.SpanNear2(terms, slop=1, ordered=True, mindist=1)


def _phrase_query(words: tuple[str, ...], languages: list[str]) -> q.Query:
    variants = dict.fromkeys(
        _phrase_in("stem", "stem_pairs", tuple(_stems(list(words), language)), _common_words(language))
        for language in languages)
    exact = _phrase_in("exact", "pairs", words, _common_words(None), boost=EXACT_PHRASE_BOOST)
    return q.AndMaybe(q.Or(list(variants)), exact)


def _atom_query(atom: _Atom, languages: list[str]) -> q.Query:
    if len(atom.words) == 1:
        return _word_query(atom.words[0], languages)
    return _phrase_query(atom.words, languages)


def _alternative_query(atoms: list[_Atom], languages: list[str]) -> q.Query:
    wanted = [_atom_query(atom, languages) for atom in atoms if not atom.excluded]
    found = _joined(q.And, wanted)
    loose = [atom.words[0] for atom in atoms if not atom.excluded and not atom.quoted
             and len(atom.words) == 1]
    if len(loose) > 1:
        adjacent = [_phrase_in("exact", "pairs", pair, _common_words(None), boost=ADJACENT_BOOST)
                    for pair in pairwise(loose)]
        found = q.AndMaybe(found, _joined(q.Or, adjacent))
    excluded = [_atom_query(atom, languages) for atom in atoms if atom.excluded]
    return q.AndNot(found, _joined(q.Or, excluded)) if excluded else found


# --- Locating the matched words in a hit -----------------------------------------------------


def _matched_tokens(tokens: list[_Token], language: str, atoms: list[_Atom]) -> set[int]:
    """Indexes of the tokens that match a wanted atom, exactly or through their stem."""
    folded = [token.folded for token in tokens]
    stems = _stems(folded, language)
    matched: set[int] = set()
    for atom in atoms:
        wanted = atom.words
        wanted_stems = _stems(list(wanted), language)
        for first in range(len(tokens) - len(wanted) + 1):
            if all(folded[first + k] == word or stems[first + k] == wanted_stems[k]
                   for k, word in enumerate(wanted)):
                matched.update(range(first, first + len(wanted)))
    return matched


def _snippet(text: str, tokens: list[_Token], matched: set[int]) -> str:
    """The text with each run of matched words highlighted, as one when only spaces or
    a word's own punctuation ("l'équipe") part them."""
    spans: list[list[int]] = []
    for index in sorted(matched):
        token = tokens[index]
        gap = text[spans[-1][1]:token.start] if spans else ""
        if spans and (not gap.strip() or not any(ch.isspace() for ch in gap)):
            spans[-1][1] = token.end
        else:
            spans.append([token.start, token.end])
    pieces, done = [], 0
    for start, end in spans:
        pieces += [text[done:start], HIGHLIGHT_OPEN, text[start:end], HIGHLIGHT_CLOSE]
        done = end
    return "".join(pieces) + text[done:]


def _spoken_span(text: str, words: list[list], tokens: list[_Token],
                 matched: set[int]) -> tuple[int, int] | None:
    """When the matched words are said (milliseconds), from the words' own times."""
    if not words or not matched or " ".join(word[0] for word in words) != text:
        return None
    starts, offset = [], 0
    for word in words:
        starts.append(offset)
        offset += len(word[0]) + 1
    said = [words[bisect.bisect_right(starts, tokens[index].start) - 1] for index in matched]
    return min(word[1] for word in said), max(word[2] for word in said)


# --- The engine ------------------------------------------------------------------------------

# Space-separated words, each at its own position; a _GAP holds a position and is dropped.
_TOKENS = SpaceSeparatedTokenizer() | StopFilter(stoplist=[_GAP], minsize=1, renumber=False)
SCHEMA = Schema(
    # Only bookkeeping documents have a kind: "format" (one, with the INDEX_FORMAT it was
    # made with) and "episode" (one per episode, with what it was made from: digest,
    # withheld and consent, see ``Indexed``).
    kind=ID(),
    version=STORED(),
    digest=STORED(),
    withheld=STORED(),
    consent=STORED(),
    episode=ID(stored=True),
    title=STORED(),
    date=STORED(),
    segment=STORED(),
    # Milliseconds: whoosh-reloaded's sortable float fields crash on insert.
    start=STORED(),
    end=STORED(),
    speaker=STORED(),
    speaker_words=TEXT(analyzer=_TOKENS, phrase=False),
    lang=ID(),
    language=STORED(),
    text=STORED(),
    words=STORED(),  # compact JSON: [[text, start ms, end ms], ...]
    exact=TEXT(analyzer=_TOKENS, phrase=True),
    stem=TEXT(analyzer=_TOKENS, phrase=True),
    pairs=TEXT(analyzer=_TOKENS, phrase=True),
    stem_pairs=TEXT(analyzer=_TOKENS, phrase=True),
)


def _positioned(words: list[str | None]) -> str:
    return " ".join(word or _GAP for word in words)


def _milliseconds(seconds: float) -> int:
    return round(seconds * 1000)


class Indexed(NamedTuple):
    """What an episode's documents in the index were made from."""

    digest: str  # the published documents themselves
    withheld: str = ""  # what the gate withheld (privacy.PublicEpisode.withheld_key)
    consent: str = ""  # what search checks at query time (privacy.consent_key)


def _rewrite_segments_with_deletions(writer, segments):
    """A whoosh merge policy: every segment that holds deleted documents is written anew
    without them (their stored text and terms stay readable in it until then), and small
    segments are merged as whoosh's default policy does."""
    kept = []
    for segment in segments:
        if segment.has_deletions():
            reader = SegmentReader(writer.storage, writer.schema, segment)
            writer.add_reader(reader)
            reader.close()
        else:
            kept.append(segment)
    return writing.MERGE_SMALL(writer, kept)


class _WhooshBatch:
    """Changes to a whoosh index, committed together by ``WhooshEngine.writing``."""

    def __init__(self, writer):
        self._writer = writer

    def replace_episode(self, slug: str, made_from: Indexed | str, documents: list[SegmentDocument]) -> None:
        """Index ``documents`` as the whole of episode ``slug``, made from ``made_from``."""
        self.remove_episode(slug)  # its record too
        self._add_record(slug, made_from)
        for document in documents:
            self._writer.add_document(**self._fields(document))

    def record(self, slug: str, made_from: Indexed | str) -> None:
        """Record anew what episode ``slug``'s documents (left as they are) were made from."""
        self._writer.delete_by_query(q.And([q.Term("kind", "episode"), q.Term("episode", slug)]))
        self._add_record(slug, made_from)

    def _add_record(self, slug: str, made_from: Indexed | str) -> None:
        made_from = Indexed(made_from) if isinstance(made_from, str) else made_from
        self._writer.add_document(kind="episode", episode=slug, **made_from._asdict())

    def remove_episode(self, slug: str) -> None:
        self._writer.delete_by_term("episode", slug)

    @staticmethod
    def _fields(document: SegmentDocument) -> dict:
        folded = [token.folded for token in _tokens(document.text)]
        language = _primary_language(document.language)
        stems = _stems(folded, language)
        words = [[text, _milliseconds(start), _milliseconds(end)] for text, start, end in document.words]
        return {
            "episode": document.episode, "title": document.title, "date": document.date,
            "segment": document.segment, "start": _milliseconds(document.start),
            "end": _milliseconds(document.end), "speaker": document.speaker,
            "speaker_words": " ".join(token.folded for token in _tokens(document.speaker)),
            "lang": language, "language": document.language, "text": document.text,
            "words": json.dumps(words, ensure_ascii=False, separators=(",", ":")),
            "exact": " ".join(folded), "stem": " ".join(stems),
            "pairs": _positioned(_common_pairs(folded, _common_words(None))),
            "stem_pairs": _positioned(_common_pairs(stems, _common_words(language))),
        }


class WhooshEngine:
    """The search index in one folder, behind the small interface every engine offers.

    One searcher is reused between queries; after any commit (ours or another
    process's) a fresh one is opened, never ``refresh()``-ed (it returns duplicate
    hits after segments merge). Not for two threads at once.
    """

    def __init__(self, folder: Path, *, create: bool = False):
        """Open the index in ``folder``; with ``create``, make it (anew if it is outdated)."""
        self.folder = Path(folder)
        self._searcher = None
        self._searched_state: tuple[int, int] | None = None
        self._languages: list[str] = []
        self._records: dict[str, Indexed] | None = None
        with self._guarded("read"):
            if not whoosh_index.exists_in(self.folder):
                problem = "no search index yet: run `podarchive index`"
            else:
                self._index = whoosh_index.open_dir(str(self.folder))
                made_with = self._fresh_searcher().document(kind="format")
                if made_with and made_with["version"] == INDEX_FORMAT:
                    return
                self.close()
                problem = "made by another version of podarchive: run `podarchive index`"
        if not create:
            raise PodarchiveError(self.folder, None, problem)
        with self._guarded("write"):
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder.mkdir(parents=True)
            self._index = whoosh_index.create_in(str(self.folder), SCHEMA)
            with self._index.writer() as writer:
                writer.add_document(kind="format", version=INDEX_FORMAT)

    def close(self) -> None:
        if self._searcher is not None:
            self._searcher.close()
            self._searcher = None

    def _fresh_searcher(self):
        # A commit renames a new table of contents into the folder, which changes its
        # time; an index made anew in its place is another folder. whoosh's up_to_date()
        # alone compares generations, which a rebuilt index can repeat.
        state = _folder_state(self.folder)
        if self._searcher is None or state != self._searched_state or not self._searcher.up_to_date():
            self.close()
            self._searcher = self._index.searcher(weighting=_BM25F())
            self._searched_state = state
            self._languages = sorted(term.decode() for term in self._searcher.lexicon("lang"))
            self._records = None
        return self._searcher

    @contextmanager
    def _guarded(self, doing: str) -> Iterator[None]:
        """Whatever whoosh raises while ``doing`` ("read", "write") as one PodarchiveError:
        the file system's refusal (a full disk, say) as it is, anything else as damage
        (whoosh says so by EOFError, struct.error, a segment file not found…)."""
        try:
            yield
        except PodarchiveError:
            self.close()
            raise
        except OSError as error:
            self.close()
            if isinstance(error, FileNotFoundError):
                raise DamagedIndex(self.folder, error) from error
            raise PodarchiveError(self.folder, None, f"cannot {doing}: {error.strerror or error}") from error
        except Exception as error:
            self.close()
            raise DamagedIndex(self.folder, error) from error

    def deleted_episodes(self) -> set[str]:
        """The episodes of which deleted documents are still readable in a segment file."""
        found = set()
        with self._guarded("read"):
            for segment in self._index._segments():
                if not segment.has_deletions():
                    continue
                reader = SegmentReader(self._index.storage, self._index.schema, segment)
                try:
                    found.update(reader.stored_fields(docnum).get("episode") for docnum in segment.deleted_docs())
                finally:
                    reader.close()
        return found - {None}

    def indexed(self) -> dict[str, Indexed]:
        """What every indexed episode was made from, by slug."""
        with self._guarded("read"):
            searcher = self._fresh_searcher()
            if self._records is None:
                self._records = {fields["episode"]: Indexed(fields["digest"], fields.get("withheld", ""),
                                                            fields.get("consent", ""))
                                 for fields in searcher.documents(kind="episode")}
            return self._records

    @contextmanager
    def writing(self, *, expunge: bool = False) -> Iterator[_WhooshBatch]:
        """A batch of changes, committed at once (atomically) when the block ends without error.

        ``expunge``: the batch deletes for consent, so every segment holding deleted
        documents (of this batch or an earlier one) is written anew without them. A
        batch that fails (a full disk, say) leaves the index as it was, and unlocked.
        """
        # The lock is held here, not by the writer: a writer that fails half made (on a
        # full disk) would keep its lock until the process ends.
        lock = self._index.lock("WRITELOCK")
        with self._guarded("write"):
            locked = try_for(lock.acquire, timeout=WRITE_LOCK_SECONDS, delay=0.1)
        if not locked:
            raise PodarchiveError(self.folder, None, "another process is writing the search "
                                  "index; try again when it ends")
        try:
            with self._guarded("write"):
                writer = self._index.writer(_lk=False)
            try:
                try:
                    yield _WhooshBatch(writer)
                except OSError as error:
                    raise PodarchiveError(self.folder, None, f"cannot write: {error.strerror or error}") from error
                with self._guarded("write"):
                    writer.commit(mergetype=_rewrite_segments_with_deletions if expunge else None)
            except BaseException:
                if not writer.is_closed:
                    # Its scratch folder, if closing fails too, goes with the next writer's.
                    with suppress(Exception):
                        writer.cancel()
                raise
        finally:
            lock.release()
            self.close()

    def search(self, query: str, *, limit: int = 10, episode: str | None = None,
               speaker: str | None = None, lang: str | None = None,
               gate: QueryGate | None = None) -> list[dict]:
        """The best ``limit`` segments for ``query``, best first, with when the matched words are said.

        Each hit has episode, title, segment, start, end (seconds), speaker, language,
        text and snippet (the text with matched words between ``**``). With a ``gate``,
        only the hits it allows are kept.
        """
        alternatives = parse_query(query, self.folder)
        with self._guarded("read"):
            searcher = self._fresh_searcher()
            languages = [_primary_language(lang)] if lang else self._languages
            found = [_alternative_query(atoms, languages) for atoms in alternatives]
            # Filters score nothing: they only narrow the intersection.
            filters = [q.Term("episode", episode, boost=0.0)] if episode else []
            if lang:
                filters.append(q.Term("lang", _primary_language(lang), boost=0.0))
            filters += [q.Term("speaker_words", token.folded, boost=0.0) for token in _tokens(speaker or "")]
            whole = _joined(q.Or, found)
            if filters:
                whole = q.And([whole, *filters])
            wanted = [atom for atoms in alternatives for atom in atoms if not atom.excluded]
            common = _common_words(None)
            most = (MOST_SCORED_COMMON if all(word in common for atom in wanted for word in atom.words)
                    else MOST_SCORED)
            if gate is None:
                return [_hit(fields, wanted) for fields in self._best(searcher, whole, limit, most)]
            records = self.indexed()
            # Left out by the gate: usually none or a few episodes, so they are masked
            # rather than every other one allowed by a filter.
            hidden = {slug for slug in records if not gate.publishable(slug)}
            refused: set[str] = set()  # a hit of theirs was refused
            while True:
                if hidden | refused >= records.keys():
                    return []
                best = self._best(searcher, whole, limit + len(refused), most, without=hidden | refused)
                kept, again = [], False
                for fields in best:
                    slug = fields["episode"]
                    if slug in records and gate.allows(slug, records[slug].consent, fields["text"],
                                                       fields["title"], fields["speaker"]):
                        kept.append(fields)
                    elif slug not in refused:
                        refused.add(slug)
                        again = True
                if not again or len(kept) >= limit:
                    return [_hit(fields, wanted) for fields in kept[:limit]]

    @staticmethod
    def _best(searcher, query: q.Query, limit: int, most: int, without: set[str] = frozenset()) -> list[dict]:
        collector = _TopOfFirstMatches(limit, most)
        if without:
            collector = collectors.FilterCollector(
                collector, restrict=_joined(q.Or, [q.Term("episode", slug) for slug in sorted(without)]))
        searcher.search_with_collector(query, collector)
        results = collector.results()
        scored = sorted(((hit.score, hit.fields()) for hit in results),
                        key=lambda pair: (-pair[0], pair[1]["episode"], pair[1]["segment"]))
        return [fields for _, fields in scored]


class _BM25F(scoring.BM25F):
    """whoosh's BM25F, with each segment's field lengths read once into a list: asked of
    whoosh, a length costs a microsecond, a third of the time spent on a match."""

    def scorer(self, searcher, fieldname, text, qf=1):
        scorer = super().scorer(searcher, fieldname, text, qf)
        if searcher.is_atomic() and isinstance(scorer, scoring.BM25FScorer):  # one segment's
            scorer.dfl = _field_lengths(searcher.reader(), fieldname).__getitem__
        return scorer


class _DecodedBlocks:
    """whoosh's posting blocks kept decoded, the last KEPT_BLOCKS read in this process.

    whoosh inflates and unpickles a block of 128 postings each time a query reads it:
    measured on bench/serve.py's archive (100,000 segments), a fifth of a search's time,
    spent again on the same blocks of the same common words and pairs by every query.
    A segment's posting file is written once under a random name and never changed
    (deletions are kept apart, merges write new segments), so a block is known by the
    file's name and its place in it.
    """

    KEPT_BLOCKS = 8_000  # about 4 KB each decoded: 30 MB
    whoosh_read_data = staticmethod(whoosh3.W3LeafMatcher._read_data)

    def __init__(self):
        self._blocks: OrderedDict[tuple[str, int], tuple] = OrderedDict()
        self._lock = threading.Lock()

    def read_data(self, matcher) -> None:
        """W3LeafMatcher._read_data, from the kept blocks where it can."""
        if matcher._postfile._name is None:  # a file whoosh did not name: nothing to know it by
            self.whoosh_read_data(matcher)
            return
        key = (matcher._postfile._name, matcher._dataoffset)
        with self._lock:
            data = self._blocks.get(key)
            if data is not None:
                self._blocks.move_to_end(key)
        if data is None:
            self.whoosh_read_data(matcher)
            with self._lock:
                self._blocks[key] = matcher._data
                while len(self._blocks) > self.KEPT_BLOCKS:
                    self._blocks.popitem(last=False)
        else:
            matcher._data = data


_DECODED_BLOCKS = _DecodedBlocks()
whoosh3.W3LeafMatcher._read_data = lambda matcher: _DECODED_BLOCKS.read_data(matcher)


# A segment's field lengths never change (deleting documents leaves them): kept by
# segment, for the segments of the indexes search() keeps open.
_LENGTHS: OrderedDict[tuple[str, str], list[int]] = OrderedDict()
_KEPT_LENGTHS = 64
_lengths_lock = threading.Lock()


def _field_lengths(reader, fieldname: str) -> list[int]:
    key = (reader.segment().segment_id(), fieldname)
    with _lengths_lock:
        lengths = _LENGTHS.pop(key, None)
        if lengths is None:
            lengths = [reader.doc_field_length(document, fieldname, 1) for document in range(reader.doc_count_all())]
        _LENGTHS[key] = lengths
        while len(_LENGTHS) > _KEPT_LENGTHS:
            _LENGTHS.popitem(last=False)
    return lengths


class _TopOfFirstMatches(collectors.TopCollector):
    """whoosh's collector of the best ``limit`` documents, scoring ``most`` at most."""

    def __init__(self, limit: int, most: int):
        super().__init__(limit)
        self._left = most

    def matches(self) -> Iterator[int]:
        for document in super().matches():
            if not self._left:
                return
            self._left -= 1
            yield document


def _hit(fields: dict, atoms: list[_Atom]) -> dict:
    text = fields["text"]
    tokens = _tokens(text)
    matched = _matched_tokens(tokens, _primary_language(fields["language"]), atoms)
    start, end = _spoken_span(text, json.loads(fields["words"]), tokens, matched) or (
        fields["start"], fields["end"])
    return {
        "episode": fields["episode"], "title": fields["title"], "segment": fields["segment"],
        "start": start / 1000, "end": end / 1000, "speaker": fields["speaker"],
        "language": fields["language"], "text": text, "snippet": _snippet(text, tokens, matched),
    }


# --- The stage ---------------------------------------------------------------------------


def _open_for_writing(root: Path, *, rebuild: bool = False) -> WhooshEngine:
    """The archive's index, made if missing or outdated (``rebuild``: made anew)."""
    folder = layout.engine_dir(root)
    if rebuild:
        shutil.rmtree(folder, ignore_errors=True)
    return WhooshEngine(folder, create=True)


def index_problems(root: Path) -> list[PodarchiveError]:
    """What keeps the archive's index from being read as search reads it (none when there is
    no index yet): a damaged file, an index of another version. Changes nothing."""
    folder = layout.engine_dir(root)
    try:
        if not whoosh_index.exists_in(folder):
            return []
    except Exception as error:  # noqa: BLE001 - whoosh reads its table of contents to say
        return [DamagedIndex(folder, error)]
    try:
        engine = WhooshEngine(folder)
        try:
            with engine._guarded("read"):
                engine.indexed()
                engine.deleted_episodes()
        finally:
            engine.close()
    except PodarchiveError as problem:
        return [problem]
    return []


def withdraw_from_index(view: PublicView) -> list[Outcome]:
    """Delete, for good, the documents of every episode the view no longer lets through,
    or whose withheld words changed since it was indexed (they may hold words that are
    private now); `index` adds the latter back as they are now.

    If the index cannot be changed, every episode it holds is reported failed, so that
    none of them is published further by this run."""
    folder = layout.engine_dir(view.archive.root)
    if not folder.exists():
        return []
    current = {episode.slug: episode.withheld_key for episode in view.episodes}
    indexed: dict[str, Indexed] = {}
    try:
        engine = _open_for_writing(view.archive.root)
        try:
            indexed = engine.indexed()
            gone = {slug: "withdrawn" if slug not in current else "withheld words changed"
                    for slug, made_from in indexed.items()
                    if slug not in current or made_from.withheld != current[slug]}
            # Deleted before, and still readable: written anew without them too.
            gone.update((slug, "deleted documents left") for slug in engine.deleted_episodes() - set(current))
            if gone:
                with engine.writing(expunge=True) as batch:
                    for slug in gone:
                        batch.remove_episode(slug)
        finally:
            engine.close()
    except DamagedIndex as damage:
        # What cannot be read cannot be checked against the gate: it goes whole.
        shutil.rmtree(folder, ignore_errors=True)
        return [Outcome(layout.ENGINE_DIR.as_posix(), Status.REMOVED,
                        f"a file of it could not be read ({damage.cause}); "
                        "`podarchive index` makes it anew from the public view")]
    except PodarchiveError as error:
        return [Outcome(slug, Status.FAILED, str(error), error=error) for slug in indexed or current]
    return [Outcome(slug, Status.WITHDRAWN, f"removed from the index ({why})") for slug, why in sorted(gone.items())]


def index_archive(view: PublicView, *, rebuild: bool = False) -> list[Outcome]:
    """Bring index/ up to date with the public view.

    Only episodes whose published content changed are re-indexed; those no longer in
    the view are removed, for good. With nothing changed, no file under index/ is
    touched. ``rebuild`` starts from an empty index, as a damaged one does (saying so).
    """
    try:
        return _update_index(view, rebuild=rebuild)
    except DamagedIndex as damage:
        note = Outcome(layout.ENGINE_DIR.as_posix(), Status.REBUILT,
                       f"a file of the index could not be read ({damage.cause}): "
                       "removed, and made anew from the public view")
        return [note, *_update_index(view, rebuild=True)]


def _update_index(view: PublicView, *, rebuild: bool) -> list[Outcome]:
    engine = _open_for_writing(view.archive.root, rebuild=rebuild)
    outcomes: list[Outcome] = []
    try:
        indexed = engine.indexed()
        digests = _DigestMemory(view.archive.root)
        changes: dict[str, tuple[Indexed, list[SegmentDocument] | None] | None] = {}
        expunge = False
        for episode in view.episodes:
            known = digests.of(episode)
            if known is not None and indexed.get(episode.slug) == Indexed(known, episode.withheld_key,
                                                                          episode.consent_key):
                outcomes.append(Outcome(episode.slug, Status.UP_TO_DATE))  # its transcript left unread
                continue
            try:
                documents = episode_documents(episode)
            except Exception as error:  # noqa: BLE001 - one episode's failure is one line
                failure = as_podarchive_error(error, layout.engine_dir(view.archive.root))
                outcomes.append(Outcome(episode.slug, Status.FAILED, str(failure), error=failure))
                continue
            made_from = Indexed(documents_digest(documents), episode.withheld_key, episode.consent_key)
            digests.remember(episode, made_from.digest)
            before = indexed.get(episode.slug)
            if before == made_from:
                outcomes.append(Outcome(episode.slug, Status.UP_TO_DATE))
            elif before is not None and before.digest == made_from.digest:
                changes[episode.slug] = (made_from, None)  # the same text: only the record
                outcomes.append(Outcome(episode.slug, Status.UP_TO_DATE))
            else:
                expunge |= before is not None and before.withheld != made_from.withheld
                changes[episode.slug] = (made_from, documents)
                outcomes.append(Outcome(episode.slug, Status.INDEXED, f"{len(documents)} segments"))
        for slug in sorted(set(indexed) - view.slugs):
            changes[slug] = None
            expunge = True
            outcomes.append(Outcome(slug, Status.REMOVED, "not published now"))
        if changes:
            with engine.writing(expunge=expunge) as batch:
                for slug, change in changes.items():
                    if change is None:
                        batch.remove_episode(slug)
                    elif change[1] is None:
                        batch.record(slug, change[0])
                    else:
                        batch.replace_episode(slug, *change)
        digests.keep()
    finally:
        engine.close()
    return outcomes


class _DigestMemory:
    """The digest of each episode's documents, remembered in the cache under what the
    episode was made from (``PublicEpisode.made_from``: code, metadata, transcript, withheld
    names): an episode the index holds as it is needs no transcript read to say so."""

    def __init__(self, root: Path):
        self.path = archive_cache(root, "index-digests").with_suffix(".json")
        try:
            self.known: dict[str, list[str]] = json.loads(self.path.read_text("utf-8"))
        except (OSError, ValueError):
            self.known = {}
        self.changed = False

    def of(self, episode: PublicEpisode) -> str | None:
        made_from, digest = self.known.get(episode.slug, ("", ""))
        return digest if episode.made_from and made_from == episode.made_from else None

    def remember(self, episode: PublicEpisode, digest: str) -> None:
        if episode.made_from and self.of(episode) != digest:
            self.known[episode.slug] = [episode.made_from, digest]
            self.changed = True

    def keep(self) -> None:
        if self.changed:
            write_to_cache(self.path, json.dumps(self.known).encode())


# --- search(): the index and the gate kept open between calls -------------------------------

# Opening the index (170 ms at 100k segments) and reading the archive for the gate (90 ms
# at 500 episodes) cost more than a query: search() keeps both, for this many archives.
_OPEN_ARCHIVES = 4
# The gate is read anew when a file that says what may be published changes, and at
# least this often: time alone can release an episode (an embargo ends), never withhold
# one; and the loader reads other files too (a recording gone fails its episode).
GATE_SECONDS = 60.0


def _folder_state(folder: Path) -> tuple[int, int]:
    state = os.stat(folder)
    return state.st_ino, state.st_mtime_ns


def _sources_state(root: Path) -> list:
    """When each file that says what may be published last changed (replaced, or edited
    in place): archive.toml, and each episode folder's episode.toml and transcript.json."""
    def changed(path: Path | str):
        try:
            state = os.stat(path)
        except OSError:  # not there, or not in a folder (episodes/LICENSES.md/episode.toml)
            return None
        return state.st_ino, state.st_mtime_ns, state.st_size

    sources = root / layout.SOURCES_DIR
    found = [changed(root / layout.ARCHIVE_FILE), changed(sources)]
    with suppress(FileNotFoundError, NotADirectoryError), os.scandir(sources) as folders:
        for folder in folders:  # a thousand files at 500 episodes: os.path.join costs more than stat
            found += [folder.name, changed(f"{folder.path}{os.sep}{layout.EPISODE_FILE}"),
                      changed(f"{folder.path}{os.sep}{layout.TRANSCRIPT_FILE}")]
    return found


class _OpenArchive:
    """An archive's index, open, and its gate, kept between searches while they are current."""

    def __init__(self, root: Path):
        self.root = root
        # Opened at the first search: the gate alone (published_now) needs no index.
        self._engine: WhooshEngine | None = None
        # One search at a time: whoosh's searcher is not shared between threads.
        self.lock = threading.Lock()
        # published_now asks the gate outside ``lock``: a gate and the state it was read
        # from are replaced together.
        self._gate_lock = threading.Lock()
        self._gate: QueryGate | None = None
        self._gate_read_from: list = []
        self._gate_read_at = 0.0
        self._sources_seen_at = 0.0

    @property
    def engine(self) -> WhooshEngine:
        if self._engine is None:
            self._engine = WhooshEngine(layout.engine_dir(self.root))
        return self._engine

    def gate(self, seen_within: float = 0.0) -> QueryGate:
        """The gate, read anew if the archive's files changed since; they are looked at
        again only if last looked at over ``seen_within`` seconds ago."""
        with self._gate_lock:
            if self._gate is not None and time.monotonic() - self._sources_seen_at < seen_within:
                return self._gate
            self._sources_seen_at = time.monotonic()
            read_from = _sources_state(self.root)
            if (self._gate is None or read_from != self._gate_read_from
                    or time.monotonic() - self._gate_read_at > GATE_SECONDS):
                self._gate = QueryGate.of(self.root)
                self._gate_read_from, self._gate_read_at = read_from, time.monotonic()
            return self._gate

    def close(self) -> None:
        with self.lock:
            if self._engine is not None:
                self._engine.close()


_open_archives: OrderedDict[Path, _OpenArchive] = OrderedDict()
_open_archives_lock = threading.Lock()


def _open_archive(root: Path) -> _OpenArchive:
    with _open_archives_lock:
        opened = _open_archives.pop(root, None) or _OpenArchive(root)
        _open_archives[root] = opened
        while len(_open_archives) > _OPEN_ARCHIVES:
            _open_archives.popitem(last=False)[1].close()
    return opened


def _forget_open_archive(root: Path) -> None:
    with _open_archives_lock:
        opened = _open_archives.pop(root, None)
    if opened is not None:
        opened.close()


def forget_open_archives() -> None:
    """Close every index search() keeps open (a server stopping; a benchmark timing a
    process's first search)."""
    with _open_archives_lock:
        while _open_archives:
            _open_archives.popitem()[1].close()


def published_now(root: Path, slug: str, *, seen_within: float = 0.0) -> bool:
    """Whether the gate lets episode ``slug`` be published now, whatever feed/ still holds
    from the last run (the server asks before answering any file of an episode). An
    archive that cannot be read publishes nothing. ``seen_within``: as for search()."""
    try:
        return _open_archive(Path(root).resolve()).gate(seen_within).publishable(slug)
    except PodarchiveError:
        return False


def search(archive: Path | str, query: str, *, limit: int = 10, episode: str | None = None,
           speaker: str | None = None, lang: str | None = None, seen_within: float = 0.0) -> list[dict]:
    """The best ``limit`` published segments for ``query`` in the archive folder ``archive``.

    ``episode`` keeps one episode (its slug), ``speaker`` the segments whose speaker's
    name holds all its words (any case or accents: "kennedy"), ``lang`` one language
    ("fr" also keeps "fr-CA"). Each hit is a dict: episode (slug), title, start and end
    (seconds: when the matched words are said), speaker, language, text, snippet
    (matched words between ``**``), url (the published audio at ``start``) and
    transcript_url (the segment in the HTML transcript). Raises ``QueryError`` for a
    query that cannot be read, and ``PodarchiveError`` when there is no index yet.

    The gate is asked again for every hit (``privacy.QueryGate``): an episode withdrawn,
    a passage restricted or a name withheld since the index was made is not shown.

    The index stays open between calls (``forget_open_archives`` closes it), and so does
    the gate: each call sees the index's last commit, and the gate is read anew when
    archive.toml, an episode.toml or a transcript.json changes. Whether they changed is
    looked at on every call, or, given ``seen_within``, only once that many seconds have
    passed since the last look (a server: a thousand files at 500 episodes).
    """
    root = Path(archive).resolve()
    options = {"limit": limit, "episode": episode, "speaker": speaker, "lang": lang, "seen_within": seen_within}
    try:
        gate, hits = _search_open(root, query, **options)
    except DamagedIndex:
        # Opened before the index was removed or made anew in its place, perhaps:
        # opened again, it is found current, missing, or damaged indeed.
        _forget_open_archive(root)
        gate, hits = _search_open(root, query, **options)
    for hit in hits:
        slug, segment = hit["episode"], hit.pop("segment")
        hit["url"] = layout.audio_url(gate.base_url, slug, hit["start"])
        hit["transcript_url"] = layout.segment_url(gate.base_url, slug, segment)
    return hits


def _search_open(root: Path, query: str, seen_within: float, **options) -> tuple[QueryGate, list[dict]]:
    opened = _open_archive(root)
    with opened.lock:
        gate = opened.gate(seen_within)
        return gate, opened.engine.search(query, gate=gate, **options)
