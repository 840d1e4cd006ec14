"""Search the published transcripts: one whoosh document per segment of every publishable episode.

Text reaches the index only through the privacy gate (``privacy.publishable`` and
``privacy.published_transcript``), so a restricted episode, a restricted segment or a
redacted name can never be found, and no file under index/ holds them.

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
import datetime as dt
import functools
import hashlib
import json
import re
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from itertools import pairwise
from pathlib import Path
from typing import NamedTuple

from whoosh import index as whoosh_index
from whoosh import query as q
from whoosh.analysis import SpaceSeparatedTokenizer, StopFilter
from whoosh.fields import ID, STORED, TEXT, Schema
from whoosh.lang import has_stemmer, stemmer_for_language
from whoosh.lang.stopwords import stoplists

from .archive import load_archive
from .errors import PodarchiveError
from .formats import segment_text
from .model import Archive, Episode, Outcome, Transcript, read_current_transcript
from .privacy import REDACTED, fold, publishable, published_episode, published_transcript

INDEX_DIR = Path("index")
ENGINE_DIR = INDEX_DIR / "whoosh"
# Recorded in the index: an index made with another analysis of the text is rebuilt.
INDEX_FORMAT = 1
WRITE_LOCK_SECONDS = 10.0
HIGHLIGHT_OPEN, HIGHLIGHT_CLOSE = "**", "**"

# The exact (folded, unstemmed) form of a word outranks a stemmed variant of it, and an
# exact phrase outranks a stemmed variant of the phrase by a margin no length or
# frequency difference makes up.
EXACT_BOOST = 2.0
EXACT_PHRASE_BOOST = 20.0
# Unquoted words that are adjacent in a segment, in the query's order, rank it higher.
ADJACENT_BOOST = 2.0

# A word: letters and digits, with the combining accents of decomposed text kept inside it.
_TOKEN = re.compile(re.escape(REDACTED) + r"|[^\W_](?:[^\W_]|[\u0300-\u036f])*")
# Stands for a redacted word: it keeps positions honest (the words around it are not
# adjacent) and no query can produce it, since query words never contain "|".
_GAP = "|"
_PAIR_JOINER = "_"
# Casefolding already makes "ß" "ss"; these it keeps, though people type them as two letters.
_LIGATURES = str.maketrans({"œ": "oe", "æ": "ae"})
_QUOTES = str.maketrans({"“": '"', "”": '"', "«": '"', "»": '"', "„": '"'})
_QUERY_PIECE = re.compile(r'(-?)"([^"]*)"|([^\s"]+)')
_OPERATORS = ("AND", "OR", "NOT")


class QueryError(PodarchiveError):
    """A search query that cannot be read; the message says why."""


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


def episode_documents(archive: Archive, episode: Episode, transcript: Transcript) -> list[SegmentDocument]:
    """The documents of one publishable episode: its published (redacted, cut) segments."""
    public = published_transcript(archive, episode, transcript)
    title = published_episode(archive, episode).title
    documents = []
    for segment in public.segments:
        text = segment_text(segment)
        if not text:
            continue
        documents.append(SegmentDocument(
            episode=episode.slug, title=title, date=episode.date.isoformat(), segment=segment.id,
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
    return re.sub(r"[\s_]", "", fold(word).translate(_LIGATURES))


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
    for atoms in alternatives:
        if not atoms:
            raise fail("nothing to search for")
        if all(atom.excluded for atom in atoms):
            raise fail("each alternative needs a word to find, not only words to exclude")
    return alternatives


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
    found: q.Query = q.And(wanted) if len(wanted) > 1 else wanted[0]
    loose = [atom.words[0] for atom in atoms if not atom.excluded and not atom.quoted
             and len(atom.words) == 1]
    if len(loose) > 1:
        adjacent = [_phrase_in("exact", "pairs", pair, _common_words(None), boost=ADJACENT_BOOST)
                    for pair in pairwise(loose)]
        found = q.AndMaybe(found, q.Or(adjacent))
    excluded = [_atom_query(atom, languages) for atom in atoms if atom.excluded]
    return q.AndNot(found, q.Or(excluded)) if excluded else found


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
    # made with) and "episode" (one per episode, with its digest).
    kind=ID(),
    version=STORED(),
    digest=STORED(),
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


class _WhooshBatch:
    """Changes to a whoosh index, committed together by ``WhooshEngine.writing``."""

    def __init__(self, writer):
        self._writer = writer

    def replace_episode(self, slug: str, digest: str, documents: list[SegmentDocument]) -> None:
        """Index ``documents`` as the whole of episode ``slug``, made from ``digest``."""
        self.remove_episode(slug)
        self._writer.add_document(kind="episode", episode=slug, digest=digest)
        for document in documents:
            self._writer.add_document(**self._fields(document))

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
    hits after segments merge).
    """

    def __init__(self, folder: Path, *, create: bool = False):
        """Open the index in ``folder``; with ``create``, make it (anew if it is outdated)."""
        self.folder = Path(folder)
        self._searcher = None
        self._languages: list[str] = []
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
        if self._searcher is None or not self._searcher.up_to_date():
            self.close()
            self._searcher = self._index.searcher()
            self._languages = sorted(term.decode() for term in self._searcher.lexicon("lang"))
        return self._searcher

    def indexed(self) -> dict[str, str]:
        """The digest of every indexed episode, by slug."""
        searcher = self._fresh_searcher()
        return {fields["episode"]: fields["digest"] for fields in searcher.documents(kind="episode")}

    @contextmanager
    def writing(self) -> Iterator[_WhooshBatch]:
        """A batch of changes, committed at once (atomically) when the block ends without error."""
        try:
            writer = self._index.writer(timeout=WRITE_LOCK_SECONDS)
        except whoosh_index.LockError:
            raise PodarchiveError(self.folder, None, "another process is writing the search "
                                  "index; try again when it ends") from None
        try:
            yield _WhooshBatch(writer)
        except BaseException:
            writer.cancel()
            raise
        writer.commit()
        self.close()

    def search(self, query: str, *, limit: int = 10, episode: str | None = None,
               speaker: str | None = None, lang: str | None = None) -> list[dict]:
        """The best ``limit`` segments for ``query``, best first, with when the matched words are said.

        Each hit has episode, title, segment, start, end (seconds), speaker, language,
        text and snippet (the text with matched words between ``**``).
        """
        alternatives = parse_query(query, self.folder)
        searcher = self._fresh_searcher()
        languages = [_primary_language(lang)] if lang else self._languages
        found = [_alternative_query(atoms, languages) for atoms in alternatives]
        # Filters score nothing: they only narrow the intersection.
        filters = [q.Term("episode", episode, boost=0.0)] if episode else []
        if lang:
            filters.append(q.Term("lang", _primary_language(lang), boost=0.0))
        filters += [q.Term("speaker_words", token.folded, boost=0.0) for token in _tokens(speaker or "")]
        whole = found[0] if len(found) == 1 else q.Or(found)
        if filters:
            whole = q.And([whole, *filters])
        results = searcher.search(whole, limit=limit)
        scored = sorted(((hit.score, hit.fields()) for hit in results),
                        key=lambda pair: (-pair[0], pair[1]["episode"], pair[1]["segment"]))
        wanted = [atom for atoms in alternatives for atom in atoms if not atom.excluded]
        return [_hit(fields, wanted) for _, fields in scored]


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


# --- The stage -------------------------------------------------------------------------------


def index_archive(archive: Archive, today: dt.date, *, rebuild: bool = False) -> list[Outcome]:
    """Bring index/ up to date with what may be published today.

    Only episodes whose published content changed are re-indexed; those no longer
    publishable are removed. With nothing changed, no file under index/ is touched.
    ``rebuild`` starts from an empty index.
    """
    folder = archive.root / ENGINE_DIR
    if rebuild:
        shutil.rmtree(folder, ignore_errors=True)
    engine = WhooshEngine(folder, create=True)
    try:
        indexed = engine.indexed()
        outcomes, changes = _plan(archive, today, indexed)
        if changes:
            with engine.writing() as batch:
                for slug, change in changes.items():
                    if change is None:
                        batch.remove_episode(slug)
                    else:
                        batch.replace_episode(slug, *change)
    finally:
        engine.close()
    return outcomes


def _plan(archive: Archive, today: dt.date, indexed: dict[str, str]):
    """What to report and what to change: slug -> (digest, documents), or None to remove."""
    outcomes: list[Outcome] = []
    changes: dict[str, tuple[str, list[SegmentDocument]] | None] = {}

    def drop(slug: str, status: str, message: str) -> None:
        if slug in indexed:
            changes[slug] = None
            outcomes.append(Outcome(slug, "removed", message))
        else:
            outcomes.append(Outcome(slug, status, message))

    for episode in archive.episodes:
        if not publishable(episode, today):
            drop(episode.slug, "not published", "not publishable today")
            continue
        try:
            transcript = read_current_transcript(episode)
        except PodarchiveError as error:
            # What cannot be read cannot be checked against the gate: keep none of it.
            if episode.slug in indexed:
                changes[episode.slug] = None
            outcomes.append(Outcome(episode.slug, "failed", str(error), error=error))
            continue
        if transcript is None:
            drop(episode.slug, "not indexed", "no transcript yet")
            continue
        documents = episode_documents(archive, episode, transcript)
        digest = documents_digest(documents)
        if indexed.get(episode.slug) == digest:
            outcomes.append(Outcome(episode.slug, "up-to-date"))
        else:
            changes[episode.slug] = (digest, documents)
            outcomes.append(Outcome(episode.slug, "indexed", f"{len(documents)} segments"))
    known = {episode.slug for episode in archive.episodes}
    for slug in sorted(set(indexed) - known):
        changes[slug] = None
        outcomes.append(Outcome(slug, "removed", "no longer in the archive, or its episode.toml "
                                                 "cannot be read"))
    return outcomes, changes


def search(archive: Path | str, query: str, *, limit: int = 10, episode: str | None = None,
           speaker: str | None = None, lang: str | None = None) -> list[dict]:
    """The best ``limit`` published segments for ``query`` in the archive folder ``archive``.

    ``episode`` keeps one episode (its slug), ``speaker`` the segments whose speaker's
    name holds all its words (any case or accents: "kennedy"), ``lang`` one language
    ("fr" also keeps "fr-CA"). Each hit is a dict: episode (slug), title, start and end
    (seconds: when the matched words are said), speaker, language, text, snippet
    (matched words between ``**``), url (the published audio at ``start``) and
    transcript_url (the segment in the HTML transcript). Raises ``QueryError`` for a
    query that cannot be read, and ``PodarchiveError`` when there is no index yet.
    """
    root = Path(archive)
    base_url = load_archive(root).base_url
    engine = WhooshEngine(root / ENGINE_DIR)
    try:
        hits = engine.search(query, limit=limit, episode=episode, speaker=speaker, lang=lang)
    finally:
        engine.close()
    for hit in hits:
        slug, segment = hit["episode"], hit.pop("segment")
        hit["url"] = f"{base_url}episodes/{slug}/audio.mp3#t={hit['start']:.2f}"
        hit["transcript_url"] = f"{base_url}episodes/{slug}/transcript.html#s{segment}"
    return hits
