"""How transcript words read as text: joined, and where sentences and clauses end."""

from __future__ import annotations

SENTENCE_END = (".", "?", "!", "…", ".»", "?»", "!»", '."', '?"', '!"')
CLAUSE_END = (",", ";", ":", "—", "–")


def join_words(words: list[str]) -> str:
    return " ".join(word for word in words if word)
