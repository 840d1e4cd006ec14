"""Words placed on their sounds by an acoustic model: pocketsphinx's US English model,
shipped inside its wheel (so offline), force-aligns the words whisper heard to the
recording phone by phone. Whisper's cross-attention knows which words were said, not
to the frame when; measured in bench/alignment.py, English word starts it places land a
median 20 ms from where they sound, against 30-60 ms for refined attention times.

Only English has a model; other languages keep their refined attention times."""

from __future__ import annotations

import re
import threading
import unicodedata
from pathlib import Path

import numpy as np

from .audio import SAMPLE_RATE

LANGUAGES = frozenset({"en"})
FRAMES_PER_SECOND = 100  # pocketsphinx's frame rate
# A part of a clip aligned alone reaches this far past its outer words' estimated times.
MARGIN_SECONDS = 0.3
# Where the whole clip does not align (whisper heard a word the speaker did not quite
# say, or left out a filler), it is cut at its widest pause between these shares of its
# words, so each half is aligned again and a failure costs at most log2(words) passes.
CUT_BETWEEN = (0.25, 0.75)
MIN_CUT_GAP_SECONDS = 0.05
# A word outside the pronouncing dictionary is spelt from the longest dictionary words
# it starts with, and a letter at a time where none fits: close enough for its length
# and kind of sound, which is all the aligner needs to place its neighbours.
LETTER_PHONES = {
    "a": "AE", "b": "B", "c": "K", "d": "D", "e": "EH", "f": "F", "g": "G", "h": "HH", "i": "IH",
    "j": "JH", "k": "K", "l": "L", "m": "M", "n": "N", "o": "AA", "p": "P", "q": "K", "r": "R",
    "s": "S", "t": "T", "u": "AH", "v": "V", "w": "W", "x": "K S", "y": "Y", "z": "Z",
}
# The model's own silence and noise words, and the fillers whisper leaves out ("uh",
# "um"): the aligner may put one between any two words, or the word after a filler takes
# its sound. Measured on MFA's unscripted recordings (bench/alignment.py): starts p90
# 212 ms without them, 134 ms with them.
FILLERS = Path(__file__).parent / "data" / "en-us-fillers.dict"
FILLER_PROBABILITY = 0.01
# The acoustic model scored on every second frame: measured on bench/alignment.py, the
# same accuracy (real starts median 21 ms against 20) for 40 % less time. Its cost is
# in scoring: about 2 % of the audio's duration on one core, every frame scored.
FRAME_STEP = 2
DITHER = 3.0  # standard deviation of the noise added, in 16-bit steps
_FILLER_MARKS = ("<", "[", "+")  # how FILLERS's words are written: none is a word said

_local = threading.local()


def _decoder():
    """This thread's pocketsphinx decoder (one is not safe to share), loaded on first use."""
    decoder = getattr(_local, "decoder", None)
    if decoder is None:
        from pocketsphinx import Decoder

        # No language model: alignment needs only the acoustic model and the dictionary.
        decoder = _local.decoder = Decoder(samprate=SAMPLE_RATE, lm=None, fdict=str(FILLERS),
                                           fillprob=FILLER_PROBABILITY, ds=FRAME_STEP, loglevel="FATAL")
    return decoder


def acoustic_times(clip: np.ndarray, words: list[str], starts: list[float], ends: list[float],
                   language: str | None) -> dict[int, tuple[float, float]]:
    """{index: (start, end)} in seconds of ``clip`` (16 kHz) for each of ``words`` the
    acoustic model placed; nothing for a language without a model. ``starts`` and
    ``ends`` are the words' times as already estimated: where the clip does not align as
    a whole, they say where to cut it."""
    if language not in LANGUAGES or not words:
        return {}
    decoder = _decoder()
    todo = [(n, key, start, end) for n, (word, start, end) in enumerate(zip(words, starts, ends))
            if (key := spoken_key(decoder, word))]
    # Dithered, so that digital silence (all zeros) has a spectrum to normalise; with the
    # same noise every time (pocketsphinx's own dither draws anew), so a clip is timed
    # alike wherever and whenever it is aligned.
    noise = np.random.default_rng(0).normal(0.0, DITHER, len(clip))
    pcm = np.clip(clip * 32767 + noise, -32768, 32767).astype(np.int16)
    return _aligned(decoder, pcm, todo, 0.0, len(clip) / SAMPLE_RATE)


def spoken_key(decoder, word: str) -> str | None:
    """``word`` as a pronouncing dictionary entry, added to ``decoder``'s dictionary when it
    was not there; None for a word with no letter or digit (a dash)."""
    folded = unicodedata.normalize("NFKD", word).lower()
    key = "".join(c for c in folded if c.isascii() and (c.isalnum() or c == "'")).strip("'")
    if not key:
        return None
    if decoder.lookup_word(key) is None:
        phones = pronunciation(decoder, key)
        if not phones:  # pocketsphinx crashes on a word without phones
            return None
        decoder.add_word(key, phones, False)
    return key


def pronunciation(decoder, key: str) -> str:
    """Phones for a word outside the dictionary: digits as their number said in words
    ("21st" as "twenty first"), letters as the longest dictionary words they start with
    (see LETTER_PHONES)."""
    phones = []
    for number, suffix, letters in _NUMBER_OR_LETTERS.findall(key):
        said = _number_words(number, ordinal=bool(suffix)) if number else [letters]
        phones += [_spelt(decoder, word) for word in said]
    return " ".join(filter(None, phones))


_NUMBER_OR_LETTERS = re.compile(r"(\d+)(st|nd|rd|th)?|(\D+)")


def _number_words(digits: str, *, ordinal: bool) -> list[str]:
    from num2words import num2words

    number = int(digits)
    if ordinal:
        said = num2words(number, to="ordinal")
    elif digits.startswith("0") and len(digits) > 1:  # "007" digit by digit
        said = " ".join(num2words(int(digit)) for digit in digits)
    elif len(digits) == 4 and 1100 <= number < 2100:  # "1961" said as a year
        said = num2words(number, to="year")
    else:
        said = num2words(number)
    return said.replace("-", " ").replace(",", " ").split()


def _spelt(decoder, letters: str) -> str:
    phones = []
    at = 0
    while at < len(letters):
        for end in range(len(letters), at + 1, -1):  # single letters are spelt as letters
            found = decoder.lookup_word(letters[at:end])
            if found:
                phones.append(found)
                at = end
                break
        else:
            phones.append(LETTER_PHONES.get(letters[at], ""))
            at += 1
    return " ".join(filter(None, phones))


def _aligned(decoder, pcm: np.ndarray, todo: list[tuple[int, str, float, float]],
             start: float, end: float) -> dict[int, tuple[float, float]]:
    """The words of ``todo`` (index, dictionary key, estimated start, end) aligned inside
    [start, end] seconds of ``pcm``, the clip cut in two where that fails."""
    if not todo:
        return {}
    found = _align_once(decoder, pcm, start, end, [key for _, key, _, _ in todo])
    if found is not None:
        return {n: times for (n, *_), times in zip(todo, found)}
    if len(todo) == 1:
        return {}
    first, last = int(len(todo) * CUT_BETWEEN[0]), max(int(len(todo) * CUT_BETWEEN[1]), 1)
    gaps = {k: todo[k][2] - todo[k - 1][3] for k in range(max(first, 1), last + 1) if k < len(todo)}
    widest = max(gaps, key=gaps.get)
    cut = widest if gaps[widest] >= MIN_CUT_GAP_SECONDS else len(todo) // 2
    left, right = todo[:cut], todo[cut:]
    return {**_aligned(decoder, pcm, left, start, min(end, left[-1][3] + MARGIN_SECONDS)),
            **_aligned(decoder, pcm, right, max(start, right[0][2] - MARGIN_SECONDS), end)}


def _align_once(decoder, pcm: np.ndarray, start: float, end: float,
                keys: list[str]) -> list[tuple[float, float]] | None:
    first, last = int(start * SAMPLE_RATE), int(end * SAMPLE_RATE)
    if last - first < SAMPLE_RATE // FRAMES_PER_SECOND * 3 * len(keys):
        return None  # shorter than three frames a word: no alignment can fit
    decoder.set_align_text(" ".join(keys))
    # A fresh front end: its noise estimate (the model's remove_noise) would otherwise
    # carry over from the last clip, and a clip be timed by what came before it.
    decoder.reinit_feat()
    decoder.start_utt()
    decoder.process_raw(pcm[first:last].tobytes(), full_utt=True)
    decoder.end_utt()
    spoken = [s for s in decoder.seg() or [] if not s.word.startswith(_FILLER_MARKS)]
    if len(spoken) != len(keys):
        return None
    return [(start + s.start_frame / FRAMES_PER_SECOND, start + (s.end_frame + 1) / FRAMES_PER_SECOND)
            for s in spoken]
