"""Word times a caption, a search hit or a silenced name can rely on: ordered, positive,
inside their segment, and ending where the word's sound ends."""

from __future__ import annotations

from bisect import bisect_left, bisect_right

import numpy as np

from .acoustic import acoustic_times
from .audio import SAMPLE_RATE
from .model import Segment, Word
from .speech import FRAME_SECONDS, frame_levels

# How word times are made, recorded in every transcript's options: a transcript timed
# another way is timed again by the align stage (never transcribed again). 1 (or none
# recorded): whisper's cross-attention times, cleaned. 2: refined on the sound, starts
# after pauses and ends where the sound stops (refine_starts, refine_ends). 3: English
# words placed by an acoustic model besides (acoustic.py; see timed_on_sound).
WORD_TIMING = "word_timing"
WORD_TIMING_METHOD = 3
MIN_WORD_SECONDS = 0.02  # one whisper frame
# A word whose last LONG_SILENCE seconds are silent ends where its sound ends, plus a tail.
LONG_SILENCE_SECONDS = 0.4
WORD_TAIL_SECONDS = 0.1
# Frames quieter than this below the recording's loud speech (95th percentile) are silence.
SILENCE_BELOW_SPEECH_DB = 35.0

# Whisper's cross-attention puts word starts early: by a median of 15-135 ms on the
# connected speech of bench/alignment.py (espeak-ng sentences, real recordings); 50 ms
# suits both languages there, where 30 ms left English early and 70 ms made French late.
START_BIAS_SECONDS = 0.05
# A pause inside a word's span: at least this long (stop closures are shorter), and
# quieter than a quarter of the way from the window's floor (5th percentile of 10 ms
# frame levels) to its speech (95th percentile), and at least 20 dB under the speech.
MIN_PAUSE_SECONDS = 0.1
PAUSE_LEVEL_FRACTION = 0.25
PAUSE_BELOW_SPEECH_DB = 20.0
MIN_START_STEP_SECONDS = 0.03
# Measured on the real pieces of bench/alignment.py: "And" after a pause, whisper's span
# 340 ms of "country." then the pause then the word, started 580 ms early.
WORD_AFTER_PAUSE_SECONDS = 0.15


class SpeechActivity:
    """Which 10 ms frames of a recording hold sound, from their energy."""

    def __init__(self, samples: np.ndarray, sample_rate: int):
        level = frame_levels(samples, sample_rate)
        threshold = np.percentile(level, 95) - SILENCE_BELOW_SPEECH_DB if level.size else 0.0
        self.voiced = level > threshold

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


def timed_on_sound(words: list[str], starts: list[float], ends: list[float], clip: np.ndarray,
                   language: str | None) -> list[tuple[float, float]]:
    """(start, end) of each of ``words`` in ``clip`` (16 kHz), from whisper's cross-
    attention times ``starts`` and ``ends``: refined on the pauses, then, in a language
    with an acoustic model, where that model places each word, kept out of the pauses."""
    pauses = find_pauses(clip, SAMPLE_RATE)
    return placed_by_voice(words, _refined(starts, ends, pauses, len(clip) / SAMPLE_RATE), clip, language, pauses)


def timed_on_pauses(starts: list[float], ends: list[float], clip: np.ndarray) -> list[tuple[float, float]]:
    """(start, end) of each word in ``clip`` (16 kHz), from whisper's cross-attention times
    ``starts`` and ``ends``: starts after the pauses, ends where the sound stops."""
    return _refined(starts, ends, find_pauses(clip, SAMPLE_RATE), len(clip) / SAMPLE_RATE)


def _refined(starts: list[float], ends: list[float], pauses: list[tuple[float, float]],
             until: float) -> list[tuple[float, float]]:
    starts = refine_starts(starts, ends, pauses)
    return list(zip(starts, refine_ends(starts, pauses, until)))


def placed_by_voice(words: list[str], times: list[tuple[float, float]], clip: np.ndarray,
                    language: str | None, pauses: list[tuple[float, float]] | None = None) -> list[tuple[float, float]]:
    """``times`` (of ``words`` in ``clip``, 16 kHz) where the acoustic model of
    ``language`` places each word, kept out of the clip's ``pauses`` (found when not
    given); unchanged for a word it does not place, or in a language without a model."""
    placed = acoustic_times(clip, words, [start for start, _ in times], [end for _, end in times], language)
    if not placed:
        return times
    if pauses is None:
        pauses = find_pauses(clip, SAMPLE_RATE)
    pause_starts = [quiet_from for quiet_from, _ in pauses]
    return [_outside_pauses(*placed[n], pauses, pause_starts) if n in placed else times[n]
            for n in range(len(times))]


def _outside_pauses(start: float, end: float, pauses: list[tuple[float, float]],
                    pause_starts: list[float]) -> tuple[float, float]:
    """A word's times moved out of the pauses they fall in (``pause_starts``: where each
    of ``pauses`` starts): the acoustic model lets a word take in some of the quiet
    before or after it (measured on the synthetic words joined with pauses of
    bench/alignment.py: starts 25 ms off, 6 ms once moved)."""
    before = bisect_right(pause_starts, start) - 1
    holding = bisect_left(pause_starts, end) - 1
    starts_quiet = before >= 0 and start < pauses[before][1]
    ends_quiet = holding >= 0 and end <= pauses[holding][1]
    if starts_quiet and ends_quiet and before == holding:
        return start, end  # all of it "quiet": a soft word, not a pause
    if starts_quiet:
        start = pauses[before][1]
    if ends_quiet:
        end = pauses[holding][0]
    return start, max(end, start + MIN_WORD_SECONDS)


def keep_out_of_pauses(segments: list[Segment], samples: np.ndarray) -> None:
    """Every word of ``segments`` (times in seconds of ``samples``) kept out of the pauses
    of the recording itself. Words are placed on clips of speech joined without the
    pauses between them (whisper's windows), where a word before a pause can run on into
    the quiet the clip leaves: measured on jfk's hand-labelled ends, 116 ms late (median)
    without this."""
    pauses = find_pauses(samples, SAMPLE_RATE)
    pause_starts = [quiet_from for quiet_from, _ in pauses]
    for segment in segments:
        for word in segment.words:
            word.start, word.end = _outside_pauses(word.start, word.end, pauses, pause_starts)


def refine_starts(starts: list[float], ends: list[float],
                  pauses: list[tuple[float, float]]) -> list[float]:
    """Word starts moved from where whisper's attention puts them to where the words sound.

    A word whose span holds a pause starts where the sound after the pause starts if
    less of its span lies before the pause than after it, or a word's worth
    (WORD_AFTER_PAUSE_SECONDS) after it: whisper tends to start a word where the
    previous one ends, and ends a sentence's last word early, so a word after a pause
    often spans the end of the previous one. Any other word starts START_BIAS_SECONDS
    later than whisper says. Starts stay in order; measured in bench/alignment.py.
    """
    refined: list[float] = []
    for start, end in zip(starts, ends):
        after_pause = [b for a, b in pauses
                       if start < b < end and (a - start <= end - b or end - b >= WORD_AFTER_PAUSE_SECONDS)]
        moved = after_pause[-1] if after_pause else start + START_BIAS_SECONDS
        if refined:
            moved = max(moved, refined[-1] + MIN_START_STEP_SECONDS)
        refined.append(moved)
    return refined


def refine_ends(starts: list[float], pauses: list[tuple[float, float]], until: float) -> list[float]:
    """Each word ends where the next starts, or where its sound stops before a pause; the
    last one where the sound stops before ``until`` (whisper ends a sentence's last word
    early: by 160-340 ms on the real pieces of bench/alignment.py)."""
    result = []
    for n, start in enumerate(starts):
        end = starts[n + 1] if n + 1 < len(starts) else max(until, start)
        silent_from = [a for a, b in pauses if start < a < end]
        result.append(silent_from[0] if silent_from else end)
    return result


def find_pauses(samples: np.ndarray, sample_rate: int) -> list[tuple[float, float]]:
    """(start, end) seconds of the pauses in ``samples`` (see MIN_PAUSE_SECONDS)."""
    level = frame_levels(samples, sample_rate)
    if level.size == 0:
        return []
    floor, speech = np.percentile(level, 5), np.percentile(level, 95)
    threshold = min(floor + PAUSE_LEVEL_FRACTION * (speech - floor), speech - PAUSE_BELOW_SPEECH_DB)
    quiet = np.concatenate([[False], level < threshold, [False]]).astype(np.int8)
    edges = np.diff(quiet)
    return [(a * FRAME_SECONDS, b * FRAME_SECONDS)
            for a, b in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1))
            if (b - a) * FRAME_SECONDS >= MIN_PAUSE_SECONDS - 1e-9]
