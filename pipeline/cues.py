"""Caption cues built from timed words.

Caption rules (those of the BBC, Netflix and DCMP guidelines that agree): at most 2 lines
of at most 42 characters; a cue lasts 1 to 7 seconds (shorter only when the speech
itself leaves no room); at most 20 characters per second where the timing allows;
breaks preferred at sentence ends, then clause punctuation, then pauses; never inside a
word, never across a change of speaker; cues never overlap and stay in time order.
"""

from __future__ import annotations

from dataclasses import dataclass

from .model import Cue, Segment, Transcript, Word
from .text import CLAUSE_END, SENTENCE_END, join_words

MAX_LINE_CHARS = 42
MAX_LINES = 2
MIN_CUE_SECONDS = 1.0
MAX_CUE_SECONDS = 7.0
MAX_CHARS_PER_SECOND = 20.0
# What the cue builder pays for a turn's first cue whose first line cannot also hold
# the speaker's name (see named_lines): the name would make that line too long.
NAME_OVERFLOW_COST = 3.0
PAUSE_SECONDS = 0.5


def build_cues(transcript: Transcript) -> list[Cue]:
    """Caption cues from a transcript's words, meeting the rules in this module's docstring."""
    cues = [cue for turn in _turns(transcript.segments) for cue in _cues_of_turn(turn)]
    cues.sort(key=lambda cue: (cue.start, cue.end))
    _name_speaker_changes(cues)
    _time_cues(cues, transcript.duration)
    return cues


def _name_speaker_changes(cues: list[Cue]) -> None:
    """Mark each cue whose speaker differs from the cue before it, in time order: also
    where speakers interleave."""
    previous = None
    for cue in cues:
        cue.named = bool(cue.speaker) and cue.speaker != previous
        previous = cue.speaker


def _speaker_label(speaker: str) -> str:
    return f"{speaker}: "


def named_lines(cue: Cue) -> list[str]:
    """A named cue's lines as SRT shows them: "Name: " first, as the Podcasting 2.0
    transcript guidance asks. The words are broken again to leave the name room on the
    first line (the first cue of a turn is built to allow it); where they cannot be, the
    name goes before the cue's own first line."""
    label = _speaker_label(cue.speaker)
    lines = _split_lines([word.text for word in cue.words], len(label)) or cue.lines
    return [label + lines[0], *lines[1:]]


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
    penalises reading faster than 20 characters a second and cues under a second, and
    a first cue with no room left for the speaker's name.
    """
    words = turn.words
    n = len(words)
    name_chars = len(_speaker_label(turn.speaker)) if turn.speaker else 0
    # Characters of any words[i:j] joined, and the sentence ends among them, from running
    # sums: this loop runs for every word of every transcript rendered.
    letters, shown, ends = [0], [0], [0]
    for word in words:
        letters.append(letters[-1] + len(word.text))
        shown.append(shown[-1] + bool(word.text))
        ends.append(ends[-1] + word.text.endswith(SENTENCE_END))

    def chars(i: int, j: int) -> int:
        return letters[j] - letters[i] + max(0, shown[j] - shown[i] - 1)

    def fits(i: int, j: int, taken: int) -> bool:
        """Whether words[i:j] fit one line, or two, with ``taken`` characters of the first kept."""
        return taken + chars(i, j) <= MAX_LINE_CHARS or any(
            taken + chars(i, k) <= MAX_LINE_CHARS and chars(k, j) <= MAX_LINE_CHARS for k in range(i + 1, j))

    best = [0.0] + [float("inf")] * n
    back = [0] * (n + 1)
    for j in range(1, n + 1):
        for i in range(j - 1, -1, -1):
            length = chars(i, j)
            if j - i > 1 and length > MAX_LINE_CHARS * MAX_LINES + MAX_LINES - 1:
                break
            if j - i > 1 and words[j - 1].end - words[i].start > MAX_CUE_SECONDS:
                break
            # A word longer than a line (a URL) cannot be broken: it stands alone.
            if j - i > 1 and not fits(i, j, 0):
                continue
            line_count = 1 if length <= MAX_LINE_CHARS or j - i == 1 else 2
            cost = best[i] + _cue_cost(words, i, j, length, line_count, ends[j - 1] - ends[i])
            if i == 0 and not fits(i, j, name_chars):
                cost += NAME_OVERFLOW_COST
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


def _cue_cost(words: list[Word], i: int, j: int, chars: int, line_count: int, sentences_within: int) -> float:
    """What cue words[i:j] costs; ``sentences_within``: the sentence ends before its last word."""
    last = words[j - 1].text
    if j == len(words) or last.endswith(SENTENCE_END):
        cost = 0.0
    elif last.endswith(CLAUSE_END):
        cost = 1.5
    elif words[j].start - words[j - 1].end >= PAUSE_SECONDS:
        cost = 2.0
    else:
        cost = 4.0
    if cost and sentences_within:
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


def _split_lines(texts: list[str], first_line_taken: int = 0) -> list[str] | None:
    """One line if it fits, else the most balanced two-line split that fits (None if none),
    with ``first_line_taken`` characters of the first line kept for a speaker's name."""
    lengths = [len(text) for text in texts if text]
    whole = sum(lengths) + max(0, len(lengths) - 1)
    if first_line_taken + whole <= MAX_LINE_CHARS:
        return [join_words(texts)]
    best: tuple[float, int] | None = None
    first = -1  # characters of texts[:k] joined, kept as k grows: one pass, not one join a split
    for k in range(1, len(texts)):
        if texts[k - 1]:
            first += len(texts[k - 1]) + 1
        joined_first = max(first, 0)
        second = whole - joined_first - (1 if joined_first and joined_first < whole else 0)
        if first_line_taken + joined_first > MAX_LINE_CHARS or second > MAX_LINE_CHARS:
            continue
        score = abs(first_line_taken + joined_first - second)
        if texts[k - 1].endswith(SENTENCE_END + CLAUSE_END):
            score -= 12  # a line that ends a clause reads more easily than a balanced one
        if best is None or score < best[0]:
            best = (score, k)
    return None if best is None else [join_words(texts[:best[1]]), join_words(texts[best[1]:])]


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
