"""Timing: word times a caption or a search hit can rely on, and caption cues built from them.

Caption rules (those of the BBC, Netflix and DCMP guidelines that agree): at most 2 lines
of at most 42 characters; a cue lasts 1 to 7 seconds (shorter only when the speech
itself leaves no room); at most 20 characters per second where the timing allows;
breaks preferred at sentence ends, then clause punctuation, then pauses; never inside a
word, never across a change of speaker; cues never overlap and stay in time order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .audio import SAMPLE_RATE, speaker_tracks
from .errors import PodarchiveError
from .model import Episode, Outcome, Segment, Transcript, Word, read_transcript
from .storage import atomic_write_json

MAX_LINE_CHARS = 42
MAX_LINES = 2
MIN_CUE_SECONDS = 1.0
MAX_CUE_SECONDS = 7.0
MAX_CHARS_PER_SECOND = 20.0

MIN_WORD_SECONDS = 0.02  # one whisper frame
# A word whose last LONG_SILENCE seconds are silent ends where its sound ends, plus a tail.
LONG_SILENCE_SECONDS = 0.4
WORD_TAIL_SECONDS = 0.1
FRAME_SECONDS = 0.01
# Frames quieter than this below the recording's loud speech (95th percentile) are silence.
SILENCE_BELOW_SPEECH_DB = 35.0
PAUSE_SECONDS = 0.5

_SENTENCE_END = (".", "?", "!", "…", ".»", "?»", "!»", '."', '?"', '!"')
_CLAUSE_END = (",", ";", ":", "—", "–")


class SpeechActivity:
    """Which 10 ms frames of a recording hold sound, from their energy."""

    def __init__(self, samples: np.ndarray, sample_rate: int):
        hop = max(1, int(sample_rate * FRAME_SECONDS))
        frames = len(samples) // hop
        if frames == 0:
            self.voiced = np.zeros(0, dtype=bool)
            return
        power = np.square(samples[: frames * hop].astype(np.float64)).reshape(frames, hop).mean(axis=1)
        level = 10 * np.log10(power + 1e-12)
        self.voiced = level > np.percentile(level, 95) - SILENCE_BELOW_SPEECH_DB

    def last_sound_before(self, start: float, end: float) -> float | None:
        """End of the last voiced frame in [start, end), or None if all of it is silent."""
        first, last = int(start / FRAME_SECONDS), min(int(end / FRAME_SECONDS), len(self.voiced))
        voiced = np.flatnonzero(self.voiced[first:last])
        return None if voiced.size == 0 else (first + voiced[-1] + 1) * FRAME_SECONDS


def clean_word_times(segments: list[Segment], activity: SpeechActivity | None = None) -> list[Segment]:
    """Make word times ordered, positive and inside their segment; trim words over silence.

    The model's word times can run backwards by a frame, collapse to zero length, step
    past the segment's bounds, or stretch a word over the pause that follows it;
    captions, search hits and redaction spans rely on them. Idempotent.
    """
    for segment in segments:
        if activity is not None:
            for word in segment.words:
                _end_at_sound(word, activity)
        cursor = segment.start
        for word in segment.words:
            word.start = round(min(max(word.start, cursor), segment.end), 3)
            word.end = round(max(min(word.end, segment.end), word.start + MIN_WORD_SECONDS), 3)
            cursor = word.end
        segment.end = round(max(segment.end, cursor), 3)
    return segments


def _end_at_sound(word: Word, activity: SpeechActivity) -> None:
    sound_end = activity.last_sound_before(word.start, word.end)
    if sound_end is not None and word.end - sound_end >= LONG_SILENCE_SECONDS:
        word.end = round(sound_end + WORD_TAIL_SECONDS, 3)


def align_archive(episodes: list[Episode]) -> list[Outcome]:
    """Re-time the words of every transcript edited since podarchive last timed it."""
    outcomes = []
    for episode in episodes:
        try:
            transcript = read_transcript(episode.transcript_path)
            if transcript is None:
                continue
            if transcript.timing_sha256 == transcript.words_digest():
                outcomes.append(Outcome(episode.slug, "up-to-date"))
                continue
            align_transcript(episode, transcript)
            atomic_write_json(episode.transcript_path, transcript.to_json())
            outcomes.append(Outcome(episode.slug, "aligned"))
        except PodarchiveError as error:
            outcomes.append(Outcome(episode.slug, "failed", str(error), error=error))
    return outcomes


def align_transcript(episode: Episode, transcript: Transcript) -> Transcript:
    """Clean the word times of ``transcript`` against its recording, in place."""
    activity = {speaker: SpeechActivity(samples, SAMPLE_RATE)
                for speaker, samples in speaker_tracks(episode)}
    for segment in transcript.segments:
        clean_word_times([segment], activity.get(segment.speaker))
    transcript.timing_sha256 = transcript.words_digest()
    return transcript


def join_words(words: list[str]) -> str:
    return " ".join(word for word in words if word)


@dataclass
class Cue:
    start: float
    end: float
    lines: list[str]
    speaker: str = ""
    language: str = ""
    words: list[Word] = field(default_factory=list, repr=False)

    @property
    def text(self) -> str:
        return " ".join(self.lines)


def build_cues(transcript: Transcript) -> list[Cue]:
    """Caption cues from a transcript's words, meeting the rules in this module's docstring."""
    cues = [cue for turn in _turns(transcript.segments) for cue in _cues_of_turn(turn)]
    cues.sort(key=lambda cue: (cue.start, cue.end))
    _time_cues(cues, transcript.duration)
    return cues


@dataclass
class _Turn:
    speaker: str
    language: str
    words: list[Word]


def _turns(segments: list[Segment]) -> list[_Turn]:
    """Runs of consecutive segments by one speaker: cues may cross whisper's segment
    boundaries (which often fall mid-sentence) but never a change of speaker."""
    turns: list[_Turn] = []
    for segment in sorted(segments, key=lambda s: (s.start, s.end)):
        if not segment.words:
            continue
        if turns and turns[-1].speaker == segment.speaker and turns[-1].language == segment.language \
                and segment.start >= turns[-1].words[-1].end:
            turns[-1].words.extend(segment.words)
        else:
            turns.append(_Turn(segment.speaker, segment.language, list(segment.words)))
    return turns


def _cues_of_turn(turn: _Turn) -> list[Cue]:
    """Split a turn into cues by dynamic programming over the break positions.

    A cue [i, j) is feasible when its words fit two lines and its speech lasts at most
    7 s; its cost rewards breaking at a sentence end, then a clause, then a pause, and
    penalises reading faster than 20 characters a second and cues under a second.
    """
    words = turn.words
    n = len(words)
    best = [0.0] + [float("inf")] * n
    back = [0] * (n + 1)
    for j in range(1, n + 1):
        for i in range(j - 1, -1, -1):
            chars = len(join_words([w.text for w in words[i:j]]))
            if chars > MAX_LINE_CHARS * MAX_LINES + MAX_LINES - 1:
                break
            if j - i > 1 and words[j - 1].end - words[i].start > MAX_CUE_SECONDS:
                break
            lines = _split_lines([w.text for w in words[i:j]])
            if lines is None:
                continue
            cost = best[i] + _cue_cost(words, i, j, chars, len(lines))
            if cost < best[j]:
                best[j], back[j] = cost, i
    cues = []
    j = n
    while j > 0:
        i = back[j]
        texts = [w.text for w in words[i:j]]
        cues.append(Cue(words[i].start, words[j - 1].end, _split_lines(texts) or [join_words(texts)],
                        turn.speaker, turn.language, words[i:j]))
        j = i
    return cues[::-1]


def _cue_cost(words: list[Word], i: int, j: int, chars: int, line_count: int) -> float:
    last = words[j - 1].text
    if j == len(words) or last.endswith(_SENTENCE_END):
        cost = 0.0
    elif last.endswith(_CLAUSE_END):
        cost = 1.5
    elif words[j].start - words[j - 1].end >= PAUSE_SECONDS:
        cost = 2.0
    else:
        cost = 4.0
    if cost and any(w.text.endswith(_SENTENCE_END) for w in words[i:j - 1]):
        cost += 2.0  # a new sentence starts in this cue but ends in the next one
    # Reading time: the speech itself, or up to the next word when the gap allows it.
    room = (words[j].start if j < len(words) else words[j - 1].end + MAX_CUE_SECONDS) - words[i].start
    shown = min(max(room, 0.001), MAX_CUE_SECONDS)
    if chars / shown > MAX_CHARS_PER_SECOND:
        cost += 6.0 + (chars / shown - MAX_CHARS_PER_SECOND)
    if shown < MIN_CUE_SECONDS:
        cost += 3.0
    # Fewer, fuller cues read better; a second line is fine when it is needed.
    return cost + 0.5 + 0.2 * (line_count - 1)


def _split_lines(texts: list[str]) -> list[str] | None:
    """One line if it fits, else the most balanced two-line split that fits (None if none)."""
    whole = join_words(texts)
    if len(whole) <= MAX_LINE_CHARS:
        return [whole]
    best: tuple[float, list[str]] | None = None
    for k in range(1, len(texts)):
        first, second = join_words(texts[:k]), join_words(texts[k:])
        if len(first) > MAX_LINE_CHARS or len(second) > MAX_LINE_CHARS:
            continue
        score = abs(len(first) - len(second))
        if texts[k - 1].endswith(_SENTENCE_END + _CLAUSE_END):
            score -= 12  # a line that ends a clause reads more easily than a balanced one
        if best is None or score < best[0]:
            best = (score, [first, second])
    return None if best is None else best[1]


def _time_cues(cues: list[Cue], duration: float) -> None:
    """Give each cue time to be read, without overlap.

    A cue extends into the silence after its speech, up to what reading it needs. Where
    speakers talk over each other their cues cannot overlap, so the cluster of
    overlapping cues shares its time in proportion to what each needs to be read.
    """
    limit = max([duration, *(cue.end for cue in cues)])
    clusters: list[list[Cue]] = []
    for cue in cues:
        if clusters and cue.start < max(c.end for c in clusters[-1]):
            clusters[-1].append(cue)
        else:
            clusters.append([cue])
    previous_end = 0.0
    for n, cluster in enumerate(clusters):
        start = max(cluster[0].start, previous_end)
        speech_end = max(cue.end for cue in cluster)
        next_start = clusters[n + 1][0].start if n + 1 < len(clusters) else limit
        needs = [_reading_seconds(cue) for cue in cluster]
        window_end = max(speech_end, min(start + sum(needs), next_start))
        if len(cluster) == 1:
            cluster[0].start, cluster[0].end = round(start, 3), round(window_end, 3)
        else:
            share = (window_end - start) / sum(needs)
            cursor = start
            for cue, need in zip(cluster, needs):
                cue.start, cue.end = round(cursor, 3), round(cursor + min(need * share, MAX_CUE_SECONDS), 3)
                cursor = cue.end
        previous_end = cluster[-1].end


def _reading_seconds(cue: Cue) -> float:
    """How long a cue should stay up: its speech, stretched to what reading it takes."""
    reading = max(MIN_CUE_SECONDS, len(cue.text) / MAX_CHARS_PER_SECOND)
    return min(max(cue.end - cue.start, reading), MAX_CUE_SECONDS)
