"""Text as podarchive reads it: words joined, sentence and clause ends, and the one
folding that search, redaction and corrections match words by."""

from __future__ import annotations

import unicodedata

import regex

SENTENCE_END = (".", "?", "!", "…", ".»", "?»", "!»", '."', '?"', '!"')
CLAUSE_END = (",", ";", ":", "—", "–")


def join_words(words: list[str]) -> str:
    return " ".join(word for word in words if word)


# Invisible characters and marks; the blank "letters" (Hangul fillers, the braille blank)
# that show nothing either.
_INVISIBLE_OR_MARK = regex.compile(r"[\p{Cf}\p{M}\u115f\u1160\u3164\uffa0\u2800]")
_LIGATURES = str.maketrans({"œ": "oe", "æ": "ae", "ĳ": "ij", "ø": "o", "ł": "l", "đ": "d", "ð": "d",
                            "ı": "i"})


def fold(text: str) -> str:
    """Case-, accent- and invisible-character-insensitive form: "Éric", "ERIC", "𝐄𝐑𝐈𝐂"
    and "E\u200bric" all fold to "eric"; "Œuvre" to "oeuvre"."""
    # Compatibility forms first (𝐉 is J), then case, then what case folding composed.
    decomposed = unicodedata.normalize("NFKD", unicodedata.normalize("NFKD", text).casefold())
    return _INVISIBLE_OR_MARK.sub("", decomposed).translate(_LIGATURES)


def word_key(word: str) -> str:
    """A word as matching compares it: folded, without its punctuation ("Américains,"
    is "americains"), so a correction or a reference matches whisper's spelling."""
    return regex.sub(r"\W", "", fold(word))


def without_accents(text: str) -> str:
    """``text`` with its accents left out and its case kept: "Écoute" reads "Ecoute"."""
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
