"""Corrections: a producer's corrected words timed again against the recording by forced
alignment (whisper's cross-attention given the words, refined on the sound): see
``find_correction`` for what counts as a correction and ``timed_on_sound`` for the
refinement."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from difflib import SequenceMatcher
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .archive import Episode, inside_archive, read_transcript
from .audio import SAMPLE_RATE, as_float, speaker_tracks
from .embedded_model import LazyWhisper
from .errors import PodarchiveError
from .model import IMPORTED_MODEL, Outcome, Segment, Status, Transcript, Word
from .redaction import REDACTED
from .speech import Region, untranscribed
from .stamps import code_stamp
from .storage import atomic_write_json, remember, remembered
from .text import SENTENCE_END, join_words, word_key
from .timing import (
    WORD_TIMING,
    WORD_TIMING_METHOD,
    SpeechActivity,
    clean_word_times,
    timed_on_sound,
)

if TYPE_CHECKING:  # the cluster retimes with this module's functions
    from .cluster import Cluster


@dataclass(frozen=True)
class Retiming:
    """A transcript whose words are to be timed again, and why."""

    episode: Episode
    transcript: Transcript
    correction: Correction | None
    own_words: bool  # timed by an older method: its own words are force-aligned


def align_archive(episodes: list[Episode], cluster: Cluster | None = None) -> list[Outcome]:
    """Re-time the words of every transcript edited since podarchive last timed it, or
    timed by an older method; on ``cluster``'s workers where one is given, written here.

    A producer's correction (see ``find_correction``) is force-aligned to the recording;
    hand-edited times are only cleaned. A transcript timed by an older method than
    WORD_TIMING_METHOD has its own words force-aligned, unless a producer reviewed it
    or edited its words: their times are kept. The whisper model is loaded once, and
    only if some segment needs it.
    """
    outcomes = []
    todo: list[Retiming] = []
    for episode in episodes:
        try:
            # Found up to date before, with the same bytes: not read again.
            verdict = _timed_key(episode)
            if verdict and remembered(TIMED_VERDICT, verdict):
                outcomes.append(Outcome(episode.slug, Status.UP_TO_DATE))
                continue
            transcript = read_transcript(episode.transcript_path)
            if transcript is None:
                continue
            correction = find_correction(episode, transcript)
            timed_before = timed_by_older_method(transcript)
            if correction is None and not timed_before and transcript.timing_sha256 == transcript.words_digest():
                outcomes.append(Outcome(episode.slug, Status.UP_TO_DATE))
                if verdict:
                    remember(TIMED_VERDICT, verdict)
                continue
            todo.append(Retiming(episode, transcript, correction, timed_before))
        except PodarchiveError as error:
            outcomes.append(Outcome(episode.slug, Status.FAILED, str(error), error=error))
    retimed = cluster.align(todo) if cluster is not None and todo else _retimed_here(todo)
    for job, transcript in retimed:
        if isinstance(transcript, PodarchiveError):
            outcomes.append(Outcome(job.episode.slug, Status.FAILED, str(transcript), error=transcript))
            continue
        atomic_write_json(job.episode.transcript_path, transcript.to_json())
        detail = (f"{len(job.correction.segments)} corrected segment(s)" if job.correction
                  else f"word times refined (timing method {WORD_TIMING_METHOD})" if job.own_words else "")
        outcomes.append(Outcome(job.episode.slug, Status.ALIGNED, detail))
    order = {episode.slug: n for n, episode in enumerate(episodes)}
    return sorted(outcomes, key=lambda outcome: order[outcome.slug])


TIMED_VERDICT = "timed"


def _timed_key(episode: Episode) -> str | None:
    """A digest of all that decides whether ``episode``'s words are timed as they should
    be: its transcript's bytes, a corrected transcript.txt's, its metadata, podarchive's
    code. None without a transcript."""
    try:
        data = episode.transcript_path.read_bytes()
        corrected = (episode.folder / CORRECTED_TEXT).read_bytes() if (episode.folder / CORRECTED_TEXT).exists() \
            else None
    except FileNotFoundError:
        return None
    return hashlib.sha256(repr([code_stamp(), hashlib.sha256(data).hexdigest(),
                                corrected and hashlib.sha256(corrected).hexdigest(), repr(episode)]).encode()).hexdigest()


def _retimed_here(todo: list[Retiming]) -> Iterator[tuple[Retiming, Transcript | PodarchiveError]]:
    aligner = ForcedAligner()
    for job in todo:
        try:
            yield job, retime(job, aligner)
        except PodarchiveError as error:
            yield job, error


def retime(job: Retiming, aligner: ForcedAligner, tracks: dict[str, np.ndarray] | None = None) -> Transcript:
    """``job``'s transcript timed again, on its recording's ``tracks`` (read when not given)."""
    episode, transcript, correction = job.episode, job.transcript, job.correction
    tracks = tracks if tracks is not None else dict(speaker_tracks(episode))
    if job.own_words:
        _align_own_words(transcript, tracks, aligner, corrected=set(correction.segments) if correction else set())
    if correction is not None:
        _apply(episode, transcript, correction, tracks, aligner)
    activity = {speaker: SpeechActivity(samples, SAMPLE_RATE) for speaker, samples in tracks.items()}
    for segment in transcript.segments:
        clean_word_times([segment], activity.get(segment.speaker))
    # A gap a producer's words now fill is no longer one.
    words = [word for segment in transcript.segments for word in segment.words]
    transcript.gaps = [gap for gap in transcript.gaps if untranscribed(Region(gap.start, gap.end), words)]
    transcript.timing_sha256 = transcript.words_digest()
    return transcript


def _aligning_model(transcript: Transcript) -> str | None:
    """The whisper that times ``transcript``'s words: the one that found them, or for a
    transcript imported from a feed, the embedded model."""
    return None if transcript.model == IMPORTED_MODEL else transcript.model


def timed_by_older_method(transcript: Transcript) -> bool:
    """Whether ``transcript``'s words, neither reviewed nor edited by a producer, were
    timed by an older method than WORD_TIMING_METHOD."""
    return (not transcript.reviewed and not _words_edited(transcript)
            and transcript.options.get(WORD_TIMING, 1) != WORD_TIMING_METHOD)


def _align_own_words(transcript: Transcript, tracks: dict[str, np.ndarray], aligner: ForcedAligner,
                     corrected: set[int]) -> None:
    """Each segment's own words (but the ``corrected`` ones, aligned as corrections) force-
    aligned again, their texts and probabilities kept: whisper's words timed as a
    correction is, without transcribing them again.

    Consecutive segments of one speaker and language are aligned together, up to
    MAX_WINDOW_SECONDS at a time: measured on a 12.9-minute French recording (107
    segments), a segment at a time took 43 s, longer than transcribing it.
    """
    runs: list[list[Segment]] = [[]]
    for n, segment in enumerate(transcript.segments):
        if not segment.words or tracks.get(segment.speaker) is None or n in corrected:
            runs.append([])  # a run never spans a segment it leaves out
            continue
        run = runs[-1]
        if run and ((run[0].speaker, run[0].language) != (segment.speaker, segment.language)
                    or segment.end - run[0].start > MAX_WINDOW_SECONDS - WINDOW_TAIL_SECONDS):
            runs.append(run := [])
        run.append(segment)
    for run in filter(None, runs):
        samples = tracks[run[0].speaker]
        start, end = run[0].start, _window_end(transcript, run[-1], len(samples) / SAMPLE_RATE)
        if end - start > MAX_WINDOW_SECONDS:
            continue  # a hand-made segment longer than whisper hears: its times are kept
        words = [word for segment in run for word in segment.words]
        timed = aligner.align(_aligning_model(transcript), samples, start, end, [word.text for word in words],
                              run[0].language or transcript.language)
        for word, aligned in zip(words, timed):
            word.start, word.end = aligned.start, aligned.end
        for segment in run:
            segment.start, segment.end = segment.words[0].start, segment.words[-1].end
    transcript.options[WORD_TIMING] = WORD_TIMING_METHOD


# --- A producer's correction --------------------------------------------------------------
#
# A correction says which words are spoken; podarchive finds when. It comes either from
# transcript.json itself or from a plain-text file dropped beside it:
#
# - transcript.json: a segment whose "text" no longer says its words. The text is the
#   correction, unless the words were edited and the text left as it was (the recorded
#   timing_sha256 comes back when the text is put back into the words): then the words
#   are. When both were edited and disagree, the producer is asked which one to keep.
#   A segment whose words were emptied ([]) gets its text timed anew.
# - transcript.txt: the whole corrected text, with line breaks anywhere. Lines may start
#   as the published transcript.txt's paragraphs do, with "[HH:MM:SS]" and a speaker's
#   name and a colon; a first line that is the episode's title is skipped. It applies
#   while it says other words than transcript.json; once aligned, the two agree and it
#   changes nothing (keep it or delete it). Corrections made later in transcript.json
#   are never silently undone by a transcript.txt left behind: the two are refused
#   until they agree.
#
# Changes of case, accents or punctuation keep their word times; any other change
# re-times the whole segment it falls in, and no other segment.

CORRECTED_TEXT = "transcript.txt"

# A text sharing fewer of its words than this with the transcript is another recording's.
# Measured on the bundled episodes (SequenceMatcher ratio over folded words): whisper
# base's transcript against the true text 0.72-1.00 (0.72: the reference covers only the
# English half of mit-licence-en-de), against the other recordings' texts 0.00-0.04.
MIN_SIMILARITY = 0.4
# A corrected segment whose words whisper finds this unlikely in its sound is refused.
# Measured on the 16 bundled segments: their own words 0.68-0.96 (mean token probability
# of the alignment), 64 other segments' words 0.00-0.21, their own words shuffled
# 0.04-0.36; espeak-ng French, which whisper base barely understands, 0.21-0.73.
MIN_ALIGNED_PROBABILITY = 0.3

_TIMESTAMP_PREFIX = re.compile(r"^\s*\[\d{1,2}:\d{2}:\d{2}(?:[.,]\d{1,3})?\]\s*")


@dataclass
class Correction:
    """The corrected words of each changed segment, and the file that said them."""

    source: Path
    segments: dict[int, list[str]]  # segment index -> its corrected words
    timed: dict[int, list[str]]  # segment index -> its words as podarchive last timed them


def find_correction(episode: Episode, transcript: Transcript) -> Correction | None:
    """What a producer corrected in ``transcript`` (None if nothing), or an error naming
    the file when the correction is ambiguous or does not belong to this recording."""
    current = [_word_texts(segment) for segment in transcript.segments]
    in_json = _json_correction(episode.transcript_path, transcript)
    corrected = [in_json[n][0] if n in in_json else words for n, words in enumerate(current)]
    text_path = episode.folder / CORRECTED_TEXT
    if text_path.exists():
        inside_archive(text_path, episode.root)
        text = read_corrected_text(text_path, transcript, episode.title)
        if text != [word for words in corrected for word in words]:
            if in_json or _words_edited(transcript):
                raise PodarchiveError(
                    text_path, "text",
                    "says other words than transcript.json, which was corrected too since it "
                    "was last timed: keep one correction (update or delete transcript.txt)")
            _check_similarity(text_path, [w for words in current for w in words], text)
            private = {n for n, segment in enumerate(transcript.segments)
                       if segment.restricted or any(start < segment.end and segment.start < end
                                                    for start, end in episode.restrict)}
            shared = map_words_to_segments(current, text, private=private)
            # A restricted passage is absent from the published text a producer may have
            # copied and corrected: its words are kept, not deleted.
            changed = {n: words for n, words in enumerate(shared)
                       if words != current[n] and not (n in private and not words)}
            return Correction(text_path, changed, {n: current[n] for n in changed})
    if not in_json:
        return None
    _check_similarity(episode.transcript_path,
                      [w for _, timed in in_json.values() for w in timed],
                      [w for words, _ in in_json.values() for w in words])
    return Correction(episode.transcript_path, {n: words for n, (words, _) in in_json.items()},
                      {n: timed for n, (_, timed) in in_json.items()})


def _word_texts(segment: Segment) -> list[str]:
    return join_words([word.text for word in segment.words]).split()


def _words_edited(transcript: Transcript) -> bool:
    """Whether words, times or speakers changed since podarchive last timed them (a
    transcript that never recorded its timing counts as unedited)."""
    return bool(transcript.timing_sha256) and transcript.timing_sha256 != transcript.words_digest()


def _json_correction(path: Path, transcript: Transcript) -> dict[int, tuple[list[str], list[str]]]:
    """Segments whose text and words disagree: (corrected words, words as last timed)."""
    segments = transcript.segments
    disagree = {n: segment.text.split() for n, segment in enumerate(segments)
                if segment.text.split() != _word_texts(segment)}
    emptied = {n: (text, []) for n, text in disagree.items() if not segments[n].words}
    disagree = {n: text for n, text in disagree.items() if n not in emptied}
    if not disagree or not _words_edited(transcript):
        return {**emptied, **{n: (text, _word_texts(segments[n])) for n, text in disagree.items()}}
    if not emptied and _stale_text_restores_digest(transcript, disagree):
        return {n: (_word_texts(segments[n]), text) for n, text in disagree.items()}
    ids = ", ".join(str(segments[n].id) for n in disagree)
    raise PodarchiveError(
        path, "segments",
        f"segment(s) {ids}: the text and the words disagree, and words were edited too since "
        "they were last timed, so which one is the correction cannot be told: make the text "
        'say the corrected words and empty those segments\' "words" ([]) to have them timed '
        "anew, or make the text say the same as the words to keep them")


def _stale_text_restores_digest(transcript: Transcript, disagree: dict[int, list[str]]) -> bool:
    """Whether the words were edited in place and the texts left as they were: putting
    the texts back into the words gives the recorded timing digest again."""
    segments = list(transcript.segments)
    for n, text in disagree.items():
        words = segments[n].words
        if len(words) != len(text):
            return False
        segments[n] = replace(segments[n], words=[replace(w, text=t) for w, t in zip(words, text)])
    return replace(transcript, segments=segments).words_digest() == transcript.timing_sha256


def read_corrected_text(path: Path, transcript: Transcript, title: str = "") -> list[str]:
    """The words of a corrected plain-text transcript (see the rules above)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as error:
        raise PodarchiveError(path, "text", f"not UTF-8 text ({error})") from None
    speakers = {segment.speaker for segment in transcript.segments if segment.speaker}
    lines = [line.strip() for line in lines if line.strip()]
    if lines and title and lines[0] == title.strip() and any(map(_TIMESTAMP_PREFIX.match, lines)):
        lines = lines[1:]
    words: list[str] = []
    for line in lines:
        line = _TIMESTAMP_PREFIX.sub("", line)
        name, colon, rest = line.partition(":")
        if colon and name.strip() in speakers:
            line = rest
        words += line.split()
    if not words:
        raise PodarchiveError(path, "text", "holds no words")
    if any(word.startswith(REDACTED) for word in words):
        raise PodarchiveError(
            path, "text", f"holds {REDACTED}: correct the private text (transcript.json's "
            "words), not the published transcript, which lacks redacted and restricted words")
    return words


def map_words_to_segments(old: list[list[str]], new: list[str], *,
                          private: set[int] = frozenset()) -> list[list[str]]:
    """Share the corrected words ``new`` out to the segments whose words were ``old``.

    Words are matched by sequence alignment, ignoring case, accents and punctuation: a
    kept or replaced word goes to the segment of the old word it stands for, an inserted
    one to the segment of its neighbours (the following one after a sentence end) — to
    a ``private`` (restricted) neighbour whenever there is one, so that words added to
    a restricted passage are never published.
    """
    flat = [(n, word) for n, words in enumerate(old) for word in words]
    shared: list[list[str]] = [[] for _ in old]
    if not flat:
        if shared:
            shared[0] = list(new)
        return shared
    matcher = SequenceMatcher(None, [word_key(w) for _, w in flat], [word_key(w) for w in new],
                              autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag in ("equal", "replace"):
            for k in range(j2 - j1):
                shared[flat[i1 + (k * (i2 - i1)) // (j2 - j1)][0]].extend(new[j1 + k:j1 + k + 1])
        elif tag == "insert":
            shared[_insertion_segment(flat, i1, private)].extend(new[j1:j2])
    return shared


def _insertion_segment(flat: list[tuple[int, str]], position: int, private: set[int]) -> int:
    before = flat[position - 1] if position else None
    after = flat[position] if position < len(flat) else None
    for neighbour in (before, after):
        if neighbour is not None and neighbour[0] in private:
            return neighbour[0]
    if before is None:
        return after[0]
    if after is None:
        return before[0]
    return after[0] if before[1].endswith(SENTENCE_END) else before[0]


def similarity(old: list[str], new: list[str]) -> float:
    """Share of words two texts have in common, in order (0 to 1), ignoring case,
    accents and punctuation."""
    return SequenceMatcher(None, [word_key(w) for w in old], [word_key(w) for w in new],
                           autojunk=False).ratio()


def _check_similarity(path: Path, old: list[str], new: list[str]) -> None:
    """A correction changes some words; a text that shares almost none with the old one
    is most likely another recording's. Rewrites of whole segments (where whisper heard
    nothing right) are let through here and judged by how well they align instead."""
    if len(old) >= 20 and similarity(old, new) < MIN_SIMILARITY:
        raise PodarchiveError(path, "text", f"does not match the recording: it shares "
                              f"{similarity(old, new):.0%} of its words with the transcript")


def _apply(episode: Episode, transcript: Transcript, correction: Correction,
           tracks: dict[str, np.ndarray], aligner: ForcedAligner) -> None:
    """Give each corrected segment its words: old times where only spelling changed,
    forced-aligned times otherwise."""
    for n, words in sorted(correction.segments.items()):
        segment = transcript.segments[n]
        if [word_key(w) for w in words] == [word_key(w) for w in correction.timed[n]] \
                and len(words) == len(segment.words):
            for word, text in zip(segment.words, words):
                word.text = text
            continue
        if not words:
            segment.words = []
            continue
        samples = tracks.get(segment.speaker)
        if samples is None:
            raise PodarchiveError(episode.transcript_path, "segments",
                                  f"segment {segment.id}: no recording of speaker {segment.speaker!r}")
        end = _window_end(transcript, segment, len(samples) / SAMPLE_RATE)
        if end - segment.start > MAX_WINDOW_SECONDS:
            raise PodarchiveError(episode.transcript_path, "segments",
                                  f"segment {segment.id} is longer than {MAX_WINDOW_SECONDS:.0f} s, "
                                  "more than whisper hears at once: split it")
        segment.words = aligner.align(_aligning_model(transcript), samples, segment.start, end, words,
                                      segment.language or transcript.language)
        probability = float(np.mean([word.probability for word in segment.words]))
        if probability < MIN_ALIGNED_PROBABILITY:
            raise PodarchiveError(
                correction.source, "text",
                f"does not match the recording: the corrected words of segment {segment.id} "
                f"({segment.start:.1f}-{segment.end:.1f} s) align with a mean probability of "
                f"{probability:.2f} (under {MIN_ALIGNED_PROBABILITY})")
    for n in correction.segments:
        segment = transcript.segments[n]
        segment.text = join_words([word.text for word in segment.words])
    transcript.reviewed = True


def _window_end(transcript: Transcript, segment: Segment, track_seconds: float) -> float:
    """Where the audio given to the aligner for ``segment`` ends: a little past the
    segment, since whisper may end it before its last word's sound does, but not into
    the next segment of the same speaker."""
    following = [s.start for s in transcript.segments
                 if s.speaker == segment.speaker and s.start >= segment.end and s is not segment]
    return min([segment.end + WINDOW_TAIL_SECONDS, track_seconds, *following])


# --- Forced alignment -------------------------------------------------------------------

WINDOW_TAIL_SECONDS = 0.3
MAX_WINDOW_SECONDS = 30.0  # whisper's encoder hears 30 s at most


class ForcedAligner:
    """Times given words against a recording: whisper's cross-attention alignment
    (faster-whisper's ``find_alignment``), then each start refined on the sound.

    Models load on first use, once per model name, and are shared by every episode;
    ``threads`` and ``workers`` as LazyWhisper takes them.
    """

    def __init__(self, *, threads: int | None = None, workers: int = 1):
        self._models: dict[str | None, LazyWhisper] = {}
        self.threads = threads
        self.workers = workers

    def whisper(self, name: str | None):
        if name not in self._models:
            self._models[name] = LazyWhisper(name, threads=self.threads, workers=self.workers)
        return self._models[name].get()

    def align(self, model: str | None, samples: np.ndarray, start: float, end: float,
              words: list[str], language: str) -> list[Word]:
        """``words`` timed inside [start, end] (at most MAX_WINDOW_SECONDS) of ``samples``
        (16 kHz), in seconds from the start of ``samples``."""
        if not words:
            return []
        whisper = self.whisper(model)
        clip = as_float(samples[int(start * SAMPLE_RATE):int(end * SAMPLE_RATE)])
        times = attention_times(whisper, clip, words, language)
        placed = timed_on_sound(words, [t[0] for t in times], [t[1] for t in times], clip, language)
        return [Word(text, round(start + s, 3), round(start + e, 3), round(p, 4))
                for text, (s, e), (_, _, p) in zip(words, placed, times)]


def attention_times(whisper, clip: np.ndarray, words: list[str],
                    language: str) -> list[tuple[float, float, float]]:
    """(start, end, probability) of each word in ``clip`` (16 kHz, at most 30 s), from
    whisper's cross-attention: faster-whisper's own word timing, given the words."""
    from faster_whisper.audio import pad_or_trim
    from faster_whisper.tokenizer import Tokenizer

    features = whisper.feature_extractor(clip)
    frames = features.shape[-1] - 1
    encoded = whisper.encode(pad_or_trim(features[:, :frames]))
    if whisper.model.is_multilingual and language not in whisper.supported_languages:
        language = whisper.model.detect_language(encoded)[0][0][0][2:-2]
    tokenizer = Tokenizer(whisper.hf_tokenizer, whisper.model.is_multilingual,
                          task="transcribe", language=language)
    # Each word with its leading space, as whisper writes it, so word boundaries are
    # token boundaries and whisper's own pieces can be put back into our words.
    tokens = [tokenizer.encode(" " + word) for word in words]
    pieces = whisper.find_alignment(tokenizer, [[t for ts in tokens for t in ts]], encoded, frames)[0]
    starts, ends, probabilities = {}, {}, []
    position = 0
    for piece in pieces:
        starts.setdefault(position, float(piece["start"]))
        position += len(piece["tokens"])
        ends[position] = float(piece["end"])
        probabilities += [float(piece["probability"])] * len(piece["tokens"])
    bounds = np.cumsum([0] + [len(t) for t in tokens])
    return [(starts[bounds[n]], ends[bounds[n + 1]],
             float(np.mean(probabilities[bounds[n]:bounds[n + 1]])))
            for n in range(len(words))]
