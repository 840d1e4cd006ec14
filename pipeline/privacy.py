"""The one gate every publishing stage asks: may this episode be published today, and
what of its text and sound may be?

Publishing stages (render, index, feed, audio, clip, search) take episodes only through
``publishable`` and transcripts only through ``published_transcript``: redacted names
become ``[redacted]``, restricted segments and time ranges disappear. The private
episodes/<slug>/transcript.json keeps every original word for the producers.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import re
import unicodedata
from collections.abc import Callable

from .errors import PodarchiveError
from .model import (
    Archive,
    Episode,
    Outcome,
    Segment,
    Transcript,
    Word,
    read_current_transcript,
    read_transcript,
)

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
    pattern = _folded_pattern(*terms)
    spans = [(origin[m.start()], origin[m.end() - 1] + 1) for m in pattern.finditer(folded)]
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


def published_episode(archive: Archive, episode: Episode) -> Episode:
    """A copy of ``episode`` fit to publish: redacted names masked in every text field,
    and a person whose name is redacted left out altogether."""
    terms = redaction_terms(archive, episode)
    return dataclasses.replace(
        episode,
        title=redact(episode.title, terms),
        description=redact(episode.description, terms),
        chapters=[dataclasses.replace(c, title=redact(c.title, terms)) for c in episode.chapters],
        persons=[p for p in episode.persons if redact(p.name, terms) == p.name],
    )


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


def leaks(archive: Archive, today: dt.date) -> list[PodarchiveError]:
    """Every published byte under feed/ and index/ that breaks a promise: a redacted term
    (any casing or accents), or words of an episode that may not be published.

    Searches the bytes themselves rather than trusting the stages that wrote them.
    """
    needles: list[tuple[re.Pattern, str]] = []
    for episode in archive.episodes:
        for term in redaction_terms(archive, episode):
            needles.append((_folded_pattern(term), f"redacted term {term!r} of {episode.slug}"))
        sentences = [] if publishable(episode, today) else _private_sentences(episode)
        if sentences:
            needles.append((_folded_pattern(*sentences), f"words of unpublished episode {episode.slug}"))
    problems = []
    for folder in (archive.root / "feed", archive.root / "index"):
        for path in sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []:
            folded = fold(path.read_bytes().decode("utf-8", errors="ignore"))
            for pattern, what in needles:
                if pattern.search(folded):
                    problems.append(PodarchiveError(path, "privacy", f"contains {what}"))
    return problems


def _folded_pattern(*texts: str) -> re.Pattern:
    """Any of ``texts``, folded, as whole words with any punctuation or spacing between."""
    alternatives = [r"\W+".join(re.escape(w) for w in re.findall(r"\w+", fold(text))) for text in texts]
    alternatives = [a for a in alternatives if a] or [r"(?!)"]  # nothing to find: never match
    return re.compile(r"(?<!\w)(?:" + "|".join(alternatives) + r")(?!\w)")


def _private_sentences(episode: Episode) -> list[str]:
    """Runs of eight words from an unpublished episode: long enough to be its own words."""
    try:
        transcript = read_transcript(episode.transcript_path)
    except PodarchiveError:
        return []
    words = [w.text for s in transcript.segments for w in s.words] if transcript else []
    return [" ".join(words[i:i + 8]) for i in range(0, max(len(words) - 7, 0), 4)]


def through_the_gate(
    archive: Archive, today: dt.date, work: Callable[[Episode, Transcript], Outcome],
) -> list[Outcome]:
    """``work(episode, transcript)`` for each episode that may be published today and has a
    transcript of its current recording; one failure does not stop the others."""
    outcomes = []
    for episode in archive.episodes:
        if not publishable(episode, today):
            continue
        try:
            transcript = read_current_transcript(episode)
            if transcript is None:
                outcomes.append(Outcome(episode.slug, "waiting", "no transcript yet"))
                continue
            outcomes.append(work(episode, transcript))
        except PodarchiveError as error:
            outcomes.append(Outcome(episode.slug, "failed", str(error), error=error))
    return outcomes
