import itertools

import numpy as np

from pipeline.cues import build_cues, named_lines
from pipeline.model import Segment, Transcript, Word
from pipeline.timing import SpeechActivity, clean_word_times


def test_word_times_are_made_ordered_and_kept_inside_the_segment():
    segment = Segment(id=0, start=1.0, end=3.0, text="a b c d", words=[
        Word("a", 0.8, 1.2, 0.9),   # starts before its segment
        Word("b", 1.1, 1.0, 0.9),   # ends before it starts, and overlaps a
        Word("c", 2.0, 2.5, 0.9),
        Word("d", 2.9, 3.4, 0.9),   # ends after its segment
    ])
    (cleaned,) = clean_word_times([segment])
    times = [(w.start, w.end) for w in cleaned.words]
    assert times == [(1.0, 1.2), (1.2, 1.22), (2.0, 2.5), (2.9, 3.0)]
    assert all(end > start for start, end in times)


def test_a_word_stretched_over_silence_ends_where_its_sound_ends():
    rate = 16000
    t = np.arange(rate * 2) / rate
    samples = np.where(t < 0.6, 0.3 * np.sin(2 * np.pi * 220 * t), 0.0).astype(np.float32)
    samples += np.random.default_rng(0).normal(0, 1e-4, samples.size).astype(np.float32)
    segment = Segment(id=0, start=0.0, end=1.9, text="long", words=[Word("long", 0.1, 1.8, 0.9)])
    clean_word_times([segment], SpeechActivity(samples, rate))
    assert 0.6 <= segment.words[0].end <= 0.75
    # Idempotent: a second pass changes nothing.
    again = clean_word_times([segment], SpeechActivity(samples, rate))
    assert again[0].words[0].end == segment.words[0].end


def test_a_word_that_is_sound_throughout_keeps_its_end():
    rate = 16000
    t = np.arange(rate * 2) / rate
    samples = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    segment = Segment(id=0, start=0.0, end=1.9, text="long", words=[Word("long", 0.1, 1.8, 0.9)])
    clean_word_times([segment], SpeechActivity(samples, rate))
    assert segment.words[0].end == 1.8


def words_of(text: str, start: float, seconds_per_word: float, pause_after: dict | None = None):
    words, cursor = [], start
    for n, token in enumerate(text.split()):
        words.append(Word(token, round(cursor, 3), round(cursor + seconds_per_word * 0.8, 3), 0.9))
        cursor += seconds_per_word + (pause_after or {}).get(n, 0.0)
    return words


def transcript_of(segments: list[Segment], duration: float) -> Transcript:
    return Transcript("x", "en", duration, "m", {}, "0" * 64, segments)


def test_cues_break_at_sentence_ends_and_never_split_a_speaker():
    first = words_of("This is the first sentence of a long answer. And here a second one follows, "
                     "with a clause that goes on for a while before it stops.", 0.0, 0.3)
    second = words_of("Yes.", first[-1].end + 0.2, 0.4)
    segments = [
        Segment(0, first[0].start, first[-1].end, "", "Alice", "en", first),
        Segment(1, second[0].start, second[-1].end, "", "Bob", "en", second),
    ]
    cues = build_cues(transcript_of(segments, second[-1].end + 3))
    assert cues[0].text.endswith("long answer.")
    assert [cue.speaker for cue in cues][-1] == "Bob" and cues[-1].text == "Yes."
    assert all(len(line) <= 42 for cue in cues for line in cue.lines)
    assert all(len(cue.lines) <= 2 for cue in cues)
    assert " ".join(cue.text for cue in cues).split() == [w.text for w in first + second]
    assert all(a.end <= b.start for a, b in itertools.pairwise(cues))
    # "Yes." is short speech, but there is room after it: it stays up a full second.
    assert cues[-1].end - cues[-1].start >= 1.0


def test_overlapping_speakers_share_the_time_without_overlapping_cues():
    left = words_of("He began a confused complaint against the wizard.", 0.0, 0.4)
    right = words_of("The horizon seems distant.", 0.1, 0.4)
    segments = [Segment(0, 0.0, left[-1].end, "", "Left", "en", left),
                Segment(1, 0.1, right[-1].end, "", "Right", "en", right)]
    cues = build_cues(transcript_of(segments, 5.0))
    assert {cue.speaker for cue in cues} == {"Left", "Right"}
    assert all(a.end <= b.start for a, b in itertools.pairwise(cues))
    assert all(cue.end - cue.start >= 1.0 for cue in cues)


def assert_names_fit(cues) -> None:
    """Where SRT names the speaker, the name and the words still fit two lines of 42."""
    for cue in (cue for cue in cues if cue.named):
        lines = named_lines(cue)
        assert " ".join(lines) == f"{cue.speaker}: {cue.text}"
        assert len(lines) <= 2 and all(len(line) <= 42 for line in lines), lines


def test_the_first_cue_of_a_turn_leaves_room_for_the_speakers_name():
    said = words_of("And so my fellow Americans, ask not what your country can do for you, "
                    "ask what you can do for your country.", 0.0, 0.3)
    reply = words_of("Thank you, Mr President.", said[-1].end + 0.5, 0.3)
    cues = build_cues(transcript_of([Segment(0, 0.0, said[-1].end, "", "John F. Kennedy", "en", said),
                                     Segment(1, reply[0].start, reply[-1].end, "", "Ann", "en", reply)], 20.0))
    assert len(cues) > 2
    assert [cue.named for cue in cues] == [True] + [False] * (len(cues) - 2) + [True]
    assert_names_fit(cues)


def test_a_cue_after_another_speakers_is_named_inside_a_turn_too():
    left = words_of("He began a confused complaint against the wizard, who had vanished into the woods "
                    "at dawn.", 0.0, 0.4)
    right = words_of("The horizon seems distant.", 0.1, 0.4)
    cues = build_cues(transcript_of([Segment(0, 0.0, left[-1].end, "", "Left", "en", left),
                                     Segment(1, 0.1, right[-1].end, "", "Right", "en", right)], 20.0))
    assert [(cue.speaker, cue.named) for cue in cues] == [("Left", True), ("Right", True), ("Left", True)]
    assert_names_fit(cues)


def test_a_word_longer_than_a_line_stands_alone_and_the_turn_is_still_cut():
    url = "https://example.org/archives/en-fleurs-plus-en-feu/episode-12/notes"
    said = words_of(f"The notes are online at {url} and the next episode comes out in May, with the "
                    "second part of the interview and a reading.", 0.0, 0.35)
    cues = build_cues(transcript_of([Segment(0, 0.0, said[-1].end, "", "", "en", said)], said[-1].end + 2))
    assert [cue.lines for cue in cues if url in " ".join(cue.lines)] == [[url]]
    for cue in cues:
        assert cue.end - cue.start <= 7.0 + 1e-6
        assert all(len(line) <= 42 for line in cue.lines if line != url)
