"""Hypothesis strategies for withheld names as people and whisper write them."""

from hypothesis import assume
from hypothesis import strategies as st

from pipeline.redaction import REDACTED
from pipeline.text import fold

LETTERS = "abcdefghijklmnopqrstuvwxyzéèàçôîïüñ"
# Filler words: none of them can hold a generated name's part, which the tests assume away.
FILLER = ["le", "la", "et", "mais", "the", "and", "work", "voice", "river", "parle", "said", "avec",
          "forêt", "ville", "école", "question", "night", "told", "us", "de", "un"]
APOSTROPHES = ["'", "’", "ʼ", "‘", "`", "´", "＇"]
DASHES = ["-", "‐", "‑", "–", "—", "−", "_"]
INVISIBLE = ["\u200b", "\u00ad", "\u2060", "\ufeff", "\u200c", "\u200d", "\u200e"]
QUOTES = [('"', '"'), ("«\u00a0", "\u00a0»"), ("“", "”"), ("(", ")"), ("[", "]"), ("<", ">"), ("*", "*")]

name_part = st.text(LETTERS, min_size=2, max_size=10).map(str.capitalize)
names = st.lists(name_part, min_size=1, max_size=3).map(" ".join)


@st.composite
def decorated(draw, name: str) -> str:
    """``name`` as it may be written around and inside a sentence."""
    parts = name.split()
    case = draw(st.sampled_from([str, str.upper, str.lower, str.title]))
    parts = [case(part) for part in parts]
    if draw(st.booleans()):  # an invisible character inside a part
        index = draw(st.integers(0, len(parts) - 1))
        cut = draw(st.integers(1, len(parts[index]) - 1))
        parts[index] = parts[index][:cut] + draw(st.sampled_from(INVISIBLE)) + parts[index][cut:]
    joiner = draw(st.sampled_from([" ", "  ", "\u00a0", "\n", *DASHES, ""]))
    text = joiner.join(parts)
    if draw(st.booleans()):
        text += draw(st.sampled_from(APOSTROPHES)) + draw(st.sampled_from(["s", "S", ""]))
    if draw(st.booleans()):
        text += draw(st.sampled_from(DASHES)) + draw(st.sampled_from(["Smith", "jr", "2024"]))
    if draw(st.booleans()):
        opening, closing = draw(st.sampled_from(QUOTES))
        text = opening + text + closing
    return text


def assume_name_is_distinct(name: str) -> list[str]:
    parts = [fold(part) for part in name.split()]
    for part in parts:
        assume(len(part) >= 2)
        assume(all(part not in fold(word) for word in FILLER))
        assume(part not in fold(REDACTED) and part not in "smith jr")
    return parts


