"""The one gate every publishing stage asks: may this episode be published today, and
what of its text and sound may be?

Publishing stages (render, index, feed, audio, clip, search) take episodes only through
``publishable`` and transcripts only through ``published_transcript``: redacted names
become ``[redacted]``, restricted segments and time ranges disappear. The private
episodes/<slug>/transcript.json keeps every original word for the producers.
"""

from __future__ import annotations

import copy
import datetime as dt
import re
import unicodedata

from .model import Archive, Episode, Segment, Transcript, Word

REDACTED = "[redacted]"
# Silence reaches this far beyond a redacted word, so no syllable of it stays audible.
REDACTION_PADDING_SECONDS = 0.15

_ELISION = re.compile(r"^(?:[ldjmnstc]|qu|jusqu|lorsqu|puisqu)['’]", re.IGNORECASE)
_EDGE_PUNCTUATION = re.compile(r"^[\W_]+|[\W_]+$")


def publishable(episode: Episode, today: dt.date) -> bool:
    """Public (or embargoed past its date) and already released; restricted never."""
    if episode.date > today:
        return False
    if episode.status == "public":
        return True
    if episode.status == "embargoed":
        return episode.embargo_until is not None and episode.embargo_until <= today
    return False


def fold(text: str) -> str:
    """Case- and accent-insensitive form: "Éric" and "ERIC" both fold to "eric"."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def redaction_terms(archive: Archive, episode: Episode) -> list[str]:
    return list(dict.fromkeys([*archive.redact, *episode.redact]))


def redact(text: str, terms: list[str]) -> str:
    """``text`` with every term (any casing or accents, multi-word) replaced by [redacted]."""
    if not terms or not text:
        return text
    folded, origin = _folded_with_origin(text)
    spans = []
    for term in terms:
        words = fold(term).split()
        if not words:
            continue
        pattern = r"(?<!\w)" + r"\W+".join(re.escape(w) for w in words) + r"(?!\w)"
        spans += [(origin[m.start()], origin[m.end() - 1] + 1) for m in re.finditer(pattern, folded)]
    for start, end in sorted(_merge(spans), reverse=True):
        text = text[:start] + REDACTED + text[end:]
    return text


def _folded_with_origin(text: str) -> tuple[str, list[int]]:
    """The folded text and, for each of its characters, the index it came from."""
    folded, origin = [], []
    for index, ch in enumerate(text):
        for piece in fold(ch):
            folded.append(piece)
            origin.append(index)
    return "".join(folded), origin


def _merge(spans: list[tuple]) -> list[tuple]:
    """Overlapping or touching spans joined, in order."""
    merged: list[tuple] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _word_key(text: str) -> str:
    return _EDGE_PUNCTUATION.sub("", _ELISION.sub("", fold(text)))


def published_transcript(archive: Archive, episode: Episode, transcript: Transcript) -> Transcript:
    """A copy of ``transcript`` fit to publish: restricted parts cut, redacted words masked."""
    public = copy.deepcopy(transcript)
    kept = []
    for segment in public.segments:
        if segment.restricted:
            continue
        segment.words = [w for w in segment.words if not _in_spans(w, episode.restrict)]
        if episode.restrict and not segment.words:
            continue
        kept.append(segment)
    public.segments = kept
    terms = redaction_terms(archive, episode)
    if terms:
        _mask_words(public.segments, terms)
        for segment in public.segments:
            segment.text = redact(segment.text, terms)
            segment.speaker = redact(segment.speaker, terms)
    return public


def _in_spans(word: Word, spans: list[tuple[float, float]]) -> bool:
    middle = (word.start + word.end) / 2
    return any(start <= middle <= end for start, end in spans)


def _mask_words(segments: list[Segment], terms: list[str]) -> None:
    """Replace each run of words that says a term by one [redacted] word spanning it."""
    stream = [(segment, word) for segment in segments for word in segment.words]
    keys = [_word_key(word.text) for _, word in stream]
    drop: set[int] = set()
    for term in terms:
        wanted = [_word_key(piece) for piece in term.split()]
        wanted = [piece for piece in wanted if piece]
        if not wanted:
            continue
        for first in range(len(stream) - len(wanted) + 1):
            if keys[first:first + len(wanted)] == wanted and first not in drop:
                last = first + len(wanted) - 1
                head = stream[first][1]
                trailing = re.search(r"[\W_]*$", stream[last][1].text).group()
                head.text = REDACTED + trailing
                head.end = max(head.end, stream[last][1].end)
                drop.update(range(first + 1, last + 1))
    for index in sorted(drop, reverse=True):
        segment, word = stream[index]
        segment.words.remove(word)


def silenced_spans(archive: Archive, episode: Episode, transcript: Transcript) -> list[tuple[float, float]]:
    """Time spans the published audio must not let anyone hear."""
    public = published_transcript(archive, episode, transcript)
    spans = [(w.start - REDACTION_PADDING_SECONDS, w.end + REDACTION_PADDING_SECONDS)
             for s in public.segments for w in s.words if w.text.startswith(REDACTED)]
    spans += [(s.start, s.end) for s in transcript.segments if s.restricted]
    spans += list(episode.restrict)
    return [(max(0.0, start), end) for start, end in _merge(spans)]
