"""Word times a caption, a search hit or a silenced name can rely on: ordered, positive,
inside their segment, and ending where the word's sound ends."""

from __future__ import annotations

import numpy as np

from .model import Segment, Word
from .speech import FRAME_SECONDS, frame_levels

MIN_WORD_SECONDS = 0.02  # one whisper frame
# A word whose last LONG_SILENCE seconds are silent ends where its sound ends, plus a tail.
LONG_SILENCE_SECONDS = 0.4
WORD_TAIL_SECONDS = 0.1
# Frames quieter than this below the recording's loud speech (95th percentile) are silence.
SILENCE_BELOW_SPEECH_DB = 35.0


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
