"""Timing: word times a caption or a search hit can rely on."""

from __future__ import annotations

from .model import Segment


def clean_word_times(segments: list[Segment]) -> list[Segment]:
    """Make word times ordered and non-overlapping, each word inside its segment.

    The model's word times can run backwards by a frame or step past the segment's
    bounds; captions and search hits rely on them being ordered.
    """
    for segment in segments:
        if not segment.words:
            continue
        segment.end = max(segment.end, segment.start)
        cursor = segment.start
        for word in segment.words:
            word.start = min(max(word.start, cursor), segment.end)
            word.end = min(max(word.end, word.start), segment.end)
            cursor = word.end
    return segments
