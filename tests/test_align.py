from pipeline.align import clean_word_times
from pipeline.model import Segment, Word


def test_word_times_are_made_ordered_and_kept_inside_the_segment():
    segment = Segment(id=0, start=1.0, end=3.0, text="a b c d", words=[
        Word("a", 0.8, 1.2, 0.9),   # starts before its segment
        Word("b", 1.1, 1.0, 0.9),   # ends before it starts, and overlaps a
        Word("c", 2.0, 2.5, 0.9),
        Word("d", 2.9, 3.4, 0.9),   # ends after its segment
    ])
    (cleaned,) = clean_word_times([segment])
    times = [(w.start, w.end) for w in cleaned.words]
    assert times == [(1.0, 1.2), (1.2, 1.2), (2.0, 2.5), (2.9, 3.0)]
