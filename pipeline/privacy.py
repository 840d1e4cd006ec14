"""The gate: the public view of the archive, and nothing else, reaches the publishing stages.

``public_view`` reads the private archive (every episode.toml and transcript.json) once
and builds what may be published at a given moment:

- the episodes that are public, or embargoed past their moment, and released (dates are
  moments in the archive's ``timezone``, UTC unless set; a date alone means midnight);
- every text field that will be published with the withheld names masked, persons
  whose name is withheld left out, and URLs or a guid that say a withheld name dropped
  or refused;
- each transcript with withheld names masked (found as ``redaction`` finds them, across
  word and segment boundaries) and restricted segments and spans cut by the words' own
  times;
- the spans of each recording to silence: every masked word and every cut passage.

Withheld names are the archive's ``redact`` list and every episode's: a name withheld
in one testimony is withheld everywhere. Publishing stages (render, feed, index, search,
clip) take only a ``PublicView``; they never read episode.toml or transcript.json.

``QueryGate`` is the same gate asked at query time, for an index that may lag behind:
a hit is kept only if its episode is publishable now, was indexed from the transcript
and restrictions it has now, and says no withheld name.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import hashlib
import json
import pickle
import shutil
import zoneinfo
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from . import layout
from .archive import Archive, Episode, Person, load_archive, read_current_transcript
from .errors import PodarchiveError
from .model import Outcome, Segment, Status, Transcript, Word
from .redaction import REDACTED, Matcher, merge_spans
from .stamps import code_stamp
from .storage import archive_cache, file_digest, sha256_file, write_to_cache

# Silence reaches this far beyond a withheld word, so no syllable of it stays audible.
REDACTION_PADDING_SECONDS = 0.15


@dataclass(frozen=True)
class PublicPerson:
    name: str
    role: str
    href: str | None = None
    img: str | None = None


@dataclass(frozen=True)
class PublicChapter:
    start: float
    title: str
    url: str | None = None
    synopsis: str = ""
    keywords: tuple[str, ...] = ()
    title_alt: str = ""
    synopsis_alt: str = ""
    keywords_alt: tuple[str, ...] = ()


@dataclass(frozen=True)
class PublicArchive:
    """The archive's own fields, as they may be published."""

    root: Path
    title: str
    description: str
    author: str
    language: str
    base_url: str
    # podcast:guid, derived from the feed's URL.
    guid: str
    owner: dict[str, str]
    image: Path | str | None
    categories: tuple[str, ...]
    explicit: bool
    license: str | None


@dataclass
class PublicEpisode:
    """One episode as it may be published now."""

    slug: str
    title: str
    description: str
    released: dt.datetime
    language: str
    season: int | None
    number: int | None
    # The producer's, or one derived from the podcast's guid and the slug.
    guid: str
    explicit: bool
    image: Path | str | None
    persons: list[PublicPerson]
    chapters: list[PublicChapter]
    # The original recording (a file of the archive) and what must not be heard of it.
    audio: Path
    audio_sha256: str
    silence: list[tuple[float, float]]
    # What the gate withheld from this episode, as a digest: when it changes, whatever
    # was published before may hold words that are private now.
    withheld_key: str
    # What search checks at query time (see QueryGate).
    consent_key: str
    # A digest of all the episode is made from (see _remembered_public_episode), its
    # transcript included: that transcript is read when first asked for (``transcript``),
    # and what the episode's repr says must change when it does.
    made_from: str = ""
    transcript_of: Callable[[], Transcript] | None = field(default=None, repr=False, compare=False)

    @functools.cached_property
    def transcript(self) -> Transcript:
        """The transcript as it may be published (masked, restricted passages cut)."""
        return self.transcript_of()

    @property
    def date(self) -> dt.date:
        return self.released.date()

    @property
    def content_language(self) -> str:
        return self.language if self.language != "auto" else self.transcript.language


@dataclass
class PublicView:
    """Everything the publishing stages may see, at the moment it was built for."""

    archive: PublicArchive
    episodes: list[PublicEpisode]
    # What the gate did: per episode, the names it masked and the terms that matched
    # nothing, why an episode is withheld, and the episodes it could not read.
    report: list[Outcome] = field(default_factory=list)
    _matcher: Matcher = field(default_factory=lambda: Matcher([]), repr=False)
    # False when the archive's own base URL says a withheld name: then nothing that
    # holds it (feed.xml, any URL) may be published.
    open_to_publish: bool = True

    @property
    def slugs(self) -> set[str]:
        return {episode.slug for episode in self.episodes}

    def episode(self, slug: str) -> PublicEpisode | None:
        return next((episode for episode in self.episodes if episode.slug == slug), None)

    def says_withheld_name(self, text: str) -> bool:
        """Whether ``text`` says a withheld name (for what was published before this view)."""
        return self._matcher.says(text)

    def without(self, slugs: Iterable[str]) -> PublicView:
        """The view with these episodes left out (their withdrawal failed, say)."""
        dropped = set(slugs)
        return dataclasses.replace(self, episodes=[e for e in self.episodes if e.slug not in dropped])


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def moment(value: dt.date | dt.datetime, timezone: str) -> dt.datetime:
    """A date or a date and time from episode.toml as an exact moment: a date alone is
    midnight, a time without an offset is local, both in the archive's time zone."""
    zone = zoneinfo.ZoneInfo(timezone)
    if isinstance(value, dt.datetime) and value.tzinfo:
        return value
    local = value if isinstance(value, dt.datetime) else dt.datetime.combine(value, dt.time(0))
    # A local time the clocks pass twice, or skip, has two readings: the later one, so
    # that nothing is released before its time.
    return max((local.replace(tzinfo=zone, fold=fold) for fold in (0, 1)),
               key=lambda reading: reading.astimezone(dt.UTC))


def withheld_because(episode: Episode, now: dt.datetime, timezone: str = "UTC") -> str | None:
    """Why ``episode`` may not be published at ``now``; None when it may."""
    if episode.status == "restricted":
        return "restricted"
    if moment(episode.date, timezone) > now:
        return f"to be released on {episode.date.isoformat()}"
    until = episode.embargo_until
    if episode.status == "embargoed" and (until is None or moment(until, timezone) > now):
        return f"embargoed until {until.isoformat() if until else '?'}"
    return None


def next_release(archive: Archive, now: dt.datetime) -> dt.datetime | None:
    """The first moment after ``now`` at which an episode's date or the end of its
    embargo lets it out: until then, time alone changes nothing that is published."""
    moments = []
    for episode in archive.episodes:
        if episode.status == "restricted":
            continue
        for value in (episode.date, episode.embargo_until if episode.status == "embargoed" else None):
            if value is not None and (at := moment(value, archive.timezone)) > now:
                moments.append(at)
    return min(moments, default=None)


def publishable(episode: Episode, now: dt.datetime, timezone: str = "UTC") -> bool:
    return withheld_because(episode, now, timezone) is None


def withheld_terms(archive: Archive) -> list[str]:
    """Every name the archive withholds: its own list, every episode's, and those of
    episodes that could not be loaded."""
    terms = [*archive.redact, *(t for e in archive.episodes for t in e.redact),
             *archive.redact_of_unloaded]
    return list(dict.fromkeys(terms))


def public_view(archive: Archive, now: dt.datetime | None = None, *,
                only: set[str] | None = None) -> PublicView:
    """What of ``archive`` may be published at ``now`` (default: this moment); ``only``:
    of these episodes alone."""
    now = now or now_utc()
    matcher = Matcher(withheld_terms(archive))
    report: list[Outcome] = []
    public_archive, matched_terms = _public_archive(archive, matcher, report)
    if matcher.says(archive.base_url, loose=True):
        failure = PodarchiveError(archive.root / "archive.toml", "base_url",
                                  "says a withheld name, and it is in every published URL: nothing is "
                                  "published until it changes")
        report.append(Outcome("archive.toml", Status.FAILED, str(failure), error=failure))
        return PublicView(public_archive, [], report, matcher, open_to_publish=False)
    episodes = []
    for episode in archive.episodes:
        if only is not None and episode.slug not in only:
            continue
        why = withheld_because(episode, now, archive.timezone)
        if why:
            report.append(Outcome(episode.slug, Status.NOT_PUBLISHED, why))
            continue
        try:
            public, terms, outcomes = _remembered_public_episode(archive, episode, matcher)
        except Exception as error:  # noqa: BLE001 - one episode's failure must not stop the others
            failure = as_podarchive_error(error, episode.folder)
            report.append(Outcome(episode.slug, Status.FAILED, str(failure), error=failure))
            continue
        if public is None:
            report.append(Outcome(episode.slug, Status.WAITING, "no transcript yet"))
            continue
        episodes.append(public)
        matched_terms.update(terms)
        report += outcomes
    unmatched = [term for term in archive.redact if term not in matched_terms]
    if unmatched and episodes and only is None:
        report.append(Outcome("archive.toml", Status.UNMATCHED,
                              "redact term(s) found in no published episode nor field: "
                              + ", ".join(repr(t) for t in unmatched)))
    return PublicView(public_archive, episodes, report, matcher)


def each_episode(view: PublicView, work: Callable[[PublicEpisode], Outcome]) -> list[Outcome]:
    """``work(episode)`` for every episode of the view; any failure in one (ours or not) is
    reported on one line and does not stop the others."""
    outcomes = []
    for episode in view.episodes:
        try:
            outcomes.append(work(episode))
        except Exception as error:  # noqa: BLE001 - see the docstring
            failure = as_podarchive_error(error, layout.source_dir(view.archive.root, episode.slug))
            outcomes.append(Outcome(episode.slug, Status.FAILED, str(failure), error=failure))
    return outcomes


def withdraw_file(path: Path, slug: str, done: str) -> Outcome:
    """Remove a published file or folder; ``done`` says what that means for the reader."""
    try:
        shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
        return Outcome(slug, Status.WITHDRAWN, done)
    except OSError as error:
        failure = PodarchiveError(path, None, f"cannot withdraw it ({error.strerror or error}): "
                                  "it must not stay published")
        return Outcome(slug, Status.FAILED, str(failure), error=failure)


def as_podarchive_error(error: Exception, where: Path) -> PodarchiveError:
    """Any failure as one line naming where it happened."""
    if isinstance(error, PodarchiveError):
        return error
    return PodarchiveError(where, None, f"unexpected {type(error).__name__}: {error}")


class _Masking:
    """The forms masked in one episode and the terms they matched, for its report."""

    def __init__(self, matcher: Matcher):
        self.matcher = matcher
        self.forms: Counter[str] = Counter()
        self.terms: set[str] = set()
        self.fields: list[str] = []  # where each form was, for the withheld digest

    def text(self, value: str, where: str) -> str:
        masked = self.matcher.mask(value)
        self.note(masked.forms, masked.terms, where)
        return masked.text

    def note(self, forms: list[str], terms: set[str], where: str) -> None:
        self.forms.update(forms)
        self.terms.update(terms)
        self.fields += [f"{where}:{form}" for form in forms]

    def keywords(self, values: tuple[str, ...]) -> tuple[str, ...]:
        """Keywords but those that say a withheld name: a masked keyword finds nothing."""
        return tuple(value for value in values if self.text(value, "chapters.keywords") == value)

    def url(self, value: str | None, where: str) -> str | None:
        """A URL that says a withheld name is dropped: a masked URL would lead nowhere."""
        if value:
            matches = self.matcher.find(value, loose=True)
            if matches:
                self.note([value], {m.term.text for m in matches}, where)
                return None
        return value

    def image(self, value: str | None, folder: Path) -> Path | str | None:
        """An image URL (dropped if it says a withheld name), or the file the loader checked."""
        if value and value.startswith(("http://", "https://")):
            return self.url(value, "image")
        return folder / value if value else None

    def outcomes(self, episode: Episode) -> list[Outcome]:
        outcomes = []
        if self.forms:
            shown = ", ".join(f"{form!r} ×{count}" if count > 1 else repr(form)
                              for form, count in sorted(self.forms.items()))
            outcomes.append(Outcome(episode.slug, Status.MASKED, shown))
        unmatched = [term for term in episode.redact if term not in self.terms]
        if unmatched:
            outcomes.append(Outcome(episode.slug, Status.UNMATCHED,
                                    "redact term(s) found nowhere in this episode: "
                                    + ", ".join(repr(t) for t in unmatched)))
        return outcomes


def _public_archive(archive: Archive, matcher: Matcher,
                    report: list[Outcome]) -> tuple[PublicArchive, set[str]]:
    masking = _Masking(matcher)
    owner = {key: masking.text(value, f"owner.{key}") for key, value in archive.owner.items()
             if key != "email"}
    email = masking.url(archive.owner.get("email"), "owner.email")
    if email:
        owner["email"] = email
    public = PublicArchive(
        root=archive.root,
        title=masking.text(archive.title, "title"),
        description=masking.text(archive.description, "description"),
        author=masking.text(archive.author, "author"),
        language=archive.language,
        base_url=archive.base_url,
        guid=archive.guid,
        owner=owner,
        image=masking.image(archive.image, archive.root),
        # Apple's categories are a fixed list: one that says a name is left out, not masked.
        categories=tuple(c for c in archive.categories if masking.url(c, "categories")),
        explicit=archive.explicit,
        license=masking.text(archive.license, "license") if archive.license else None,
    )
    if masking.forms:
        report.append(Outcome("archive.toml", Status.MASKED, ", ".join(repr(f) for f in sorted(masking.forms))))
    return public, masking.terms


def _remembered_public_episode(archive: Archive, episode: Episode,
                               matcher: Matcher) -> tuple[PublicEpisode | None, set[str], list[Outcome]]:
    """An episode's public form, the withheld names it matched and what its masking
    reports, remembered in the cache under all it is made from: podarchive's code, the
    episode's metadata, its transcript's bytes, its recording's digest, the names
    withheld, the archive's time zone and guid. An archive of thousands of episodes then
    reads and masks again only those that changed, at every run and every `check`; the
    public transcript of one that did not is read from the cache when a stage asks for it."""
    transcript = episode.transcript_path
    key = _digest([code_stamp(), repr(episode), archive.timezone, archive.guid_of(episode),
                   sorted(term.text for term in matcher.terms),
                   hashlib.sha256(transcript.read_bytes()).hexdigest() if transcript.exists() else None,
                   file_digest(episode.audio_path) if episode.audio_path.exists() else None])
    folder = archive_cache(archive.root, "public")
    remembered, remembered_transcript = folder / f"{episode.slug}.pickle", folder / f"{episode.slug}.transcript.pickle"

    def made_again() -> Transcript:
        return _public_episode(archive, episode, matcher, key)[0].transcript

    found = _unpickled(remembered, key)
    if found is not None:
        public, terms, outcomes = found
        public.transcript_of = functools.partial(_remembered_or, remembered_transcript, key, made_again)
        return public, terms, outcomes
    public, masking = _public_episode(archive, episode, matcher, key)
    made = (public, masking.terms, masking.outcomes(episode))
    if public is not None:
        # The transcript first: an episode is remembered only once its transcript is.
        write_to_cache(remembered_transcript, pickle.dumps((key, public.transcript), pickle.HIGHEST_PROTOCOL))
        if remembered_transcript.exists():
            light = dataclasses.replace(public, transcript_of=None)
            write_to_cache(remembered, pickle.dumps((key, (light, *made[1:])), pickle.HIGHEST_PROTOCOL))
    return made


def _unpickled(path: Path, key: str):
    """What ``path`` remembers under ``key``; None if nothing, or under another key."""
    try:
        with open(path, "rb") as source:
            found_key, found = pickle.load(source)
        return found if found_key == key else None
    except (OSError, pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError):
        return None  # none yet, or of another podarchive


def _remembered_or(path: Path, key: str, make: Callable[[], Transcript]) -> Transcript:
    found = _unpickled(path, key)
    return found if found is not None else make()


def _public_episode(archive: Archive, episode: Episode, matcher: Matcher,
                    made_from: str) -> tuple[PublicEpisode | None, _Masking]:
    masking = _Masking(matcher)
    # The slug and the guid are in every URL and every podcast app: they cannot be masked.
    if matcher.says(episode.slug, loose=True):
        raise PodarchiveError(episode.folder, "slug",
                              f"folder name {episode.slug!r} says a withheld name, and it would be "
                              "published in every URL: rename the folder")
    if episode.guid and matcher.says(episode.guid, loose=True):
        raise PodarchiveError(episode.metadata_path, "guid",
                              "says a withheld name, and a guid cannot be masked: choose another one")
    transcript = read_current_transcript(episode)
    if transcript is None:
        return None, masking
    public_transcript, silence, cut = _public_transcript(episode, transcript, masking)
    # A person whose name is withheld is left out altogether, with their links.
    persons = [PublicPerson(p.name, p.role, masking.url(p.href, "href"), masking.url(p.img, "img"))
               for p in _credited(episode, {segment.speaker for segment in public_transcript.segments})
               if masking.text(p.name, "persons") == p.name]
    chapters = [PublicChapter(c.start, masking.text(c.title, "chapters"), masking.url(c.url, "chapters.url"),
                              masking.text(c.synopsis, "chapters.synopsis"), masking.keywords(c.keywords),
                              masking.text(c.title_alt, "chapters.title_alt"),
                              masking.text(c.synopsis_alt, "chapters.synopsis_alt"), masking.keywords(c.keywords_alt))
                for c in episode.chapters]
    public = PublicEpisode(
        slug=episode.slug,
        title=masking.text(episode.title, "title"),
        description=masking.text(episode.description, "description"),
        released=moment(episode.date, archive.timezone),
        language=episode.language,
        season=episode.season,
        number=episode.number,
        guid=archive.guid_of(episode),
        explicit=episode.explicit,
        image=masking.image(episode.image, episode.folder),
        persons=persons,
        chapters=chapters,
        audio=episode.audio_path,
        audio_sha256=transcript.audio_sha256,
        silence=silence,
        withheld_key=_digest([masking.fields, cut]),
        consent_key=consent_key(episode, [term.text for term in matcher.terms]),
        made_from=made_from,
    )
    public.transcript = public_transcript
    return public, masking


def consent_key(episode: Episode, terms: list[str]) -> str:
    """What an episode's published text was made from, as far as consent goes: its
    transcript file as it is, its restricted spans and every name withheld. Cheap to
    compute at query time."""
    transcript = sha256_file(episode.transcript_path) if episode.transcript_path.exists() else ""
    return _digest([transcript, episode.restrict, sorted(terms)])


def _digest(value) -> str:
    return hashlib.sha256(json.dumps(value, ensure_ascii=False, sort_keys=True).encode()).hexdigest()


def _credited(episode: Episode, heard: set[str]) -> list[Person]:
    """The persons credited with ``episode``: those listed, under the name their voice is
    given where episode.toml's ``speakers`` table renames it, then the other voices it
    names that are ``heard`` (say, "Speaker 3" = "Ana Lima", a guest)."""
    renames = {voice: name for voice, name in episode.speaker_names.items() if name in heard}
    persons = [dataclasses.replace(person, name=renames[person.name])
               if person.name in renames and person.name not in heard else person for person in episode.persons]
    listed = {person.name for person in persons}
    return persons + [Person(name) for name in dict.fromkeys(renames.values()) if name not in listed]


def _public_transcript(episode: Episode, transcript: Transcript, masking: _Masking):
    """The transcript as it may be published, the spans to silence, and what was cut.

    Diarization's bookkeeping stays private: its turns and the options that name persons
    (speakers, channels) are not part of the view, so no stage can publish them unmasked.
    """
    public = dataclasses.replace(transcript, turns=[], options={
        key: value for key, value in transcript.options.items() if key not in _OPTIONS_NAMING_PERSONS}, segments=[
        dataclasses.replace(s, words=[dataclasses.replace(w) for w in s.words]) for s in transcript.segments])
    silence: list[tuple[float, float]] = []
    # Names first, over all the words (restricted ones too) read as one text, so that a
    # name that straddles two segments or a restricted passage is still found whole.
    for segment, word in _mask_names(public.segments, masking):
        if word is None:
            silence.append(_extent(segment))  # where in a wordless segment it was said is not known
        else:
            silence.append((word.start - REDACTION_PADDING_SECONDS, word.end + REDACTION_PADDING_SECONDS))
    kept, cut = [], []
    for segment in public.segments:
        extent = _extent(segment)
        if segment.restricted or (not segment.words and any(_overlaps(extent, s) for s in episode.restrict)):
            silence.append(extent)
            cut.append(["segment", segment.id])
            continue
        if segment.words:
            inside = [w for w in segment.words if any(_overlaps((w.start, w.end), s) for s in episode.restrict)]
            silence += [(w.start, w.end) for w in inside]
            cut += [["word", segment.id, w.start] for w in inside]
            segment.words = [w for w in segment.words if not any(w is cut_word for cut_word in inside)]
            if not segment.words:
                continue
            _merge_masked_runs(segment)
            segment.text = " ".join(word.text for word in segment.words)
        segment.speaker = masking.text(segment.speaker, "speaker") if segment.speaker else ""
        kept.append(segment)
    public.segments = kept
    silence += list(episode.restrict)
    return public, [(max(0.0, start), end) for start, end in merge_spans(silence)], cut


_OPTIONS_NAMING_PERSONS = ("speakers", "channels")


def _extent(segment: Segment) -> tuple[float, float]:
    """From the first sound to the last of a segment: its words may run past its own times."""
    starts = [segment.start, *(w.start for w in segment.words)]
    ends = [segment.end, *(w.end for w in segment.words)]
    return min(starts), max(ends)


def _overlaps(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def _mask_names(segments: list[Segment], masking: _Masking) -> list[tuple[Segment, Word | None]]:
    """Mask the withheld names said in ``segments``: their words, or the text of a segment
    without word times, read one after another as one text. Returns what held a name:
    (segment, word), or (segment, None) for a segment's text."""
    units = [(segment, word) for segment in segments
             for word in (segment.words or [None])]
    texts = [segment.text if word is None else word.text for segment, word in units]
    offsets, position = [], 0
    for text in texts:
        offsets.append(position)
        position += len(text) + 1
    joined = " ".join(texts)
    spans, terms = masking.matcher.spans(joined)
    if not spans:
        return []
    masking.note([joined[start:end] for start, end in spans], terms, "words")
    touched = []
    for (segment, word), text, offset in zip(units, texts, offsets):
        inside = [(max(start, offset) - offset, min(end, offset + len(text)) - offset)
                  for start, end in spans if start < offset + len(text) and end > offset]
        if not inside:
            continue
        for start, end in reversed(inside):
            text = text[:start] + REDACTED + text[end:]
        if word is None:
            segment.text = text
        else:
            word.text = text
        touched.append((segment, word))
    return touched


def _merge_masked_runs(segment: Segment) -> None:
    """A name masked over several words reads as one [redacted], spanning them all."""
    merged: list[Word] = []
    for word in segment.words:
        if merged and merged[-1].text == REDACTED and word.text.startswith(REDACTED):
            word.start = merged[-1].start
            merged[-1] = word
        else:
            merged.append(word)
    segment.words = merged


class QueryGate:
    """The gate at query time: may this hit, from an index made earlier, be shown now?"""

    def __init__(self, archive: Archive, now: dt.datetime | None = None):
        now = now or now_utc()
        self.base_url = archive.base_url
        self._matcher = Matcher(withheld_terms(archive))
        self._episodes = {e.slug: e for e in archive.episodes if publishable(e, now, archive.timezone)
                          and not self._matcher.says(archive.base_url, loose=True)}
        self._keys: dict[str, str] = {}

    @classmethod
    def of(cls, root: Path, now: dt.datetime | None = None) -> QueryGate:
        return cls(load_archive(root), now)

    def publishable(self, slug: str) -> bool:
        return slug in self._episodes

    def allows(self, slug: str, indexed_consent_key: str, *texts: str) -> bool:
        """Whether a hit of episode ``slug``, whose texts are ``texts``, may be shown."""
        episode = self._episodes.get(slug)
        if episode is None:
            return False
        if slug not in self._keys:
            self._keys[slug] = consent_key(episode, [term.text for term in self._matcher.terms])
        if self._keys[slug] != indexed_consent_key:
            return False
        return not any(self._matcher.says(text) for text in texts if text)
