"""Word start accuracy: our forced alignment of the true text against faster-whisper's own
word timestamps, on speech whose word starts are known without whisper.

    .venv/bin/python bench/alignment.py [--seed 1]

Needs espeak-ng's library (Debian: apt-get install espeak-ng). A few minutes on 2 cores.

The speech, one file per row of ``cases()``, each at most 30 s (one alignment window):

- synthetic sentences: English and French sentences spoken whole by espeak-ng (its C
  library, through ctypes); a word starts at the synthesizer's own word event. A word
  is heard from its first sound, so where the event falls on a stop's silent closure
  the start is the release (the first sample above 1e-3 within 150 ms).
- synthetic words, gaps / run together: the same words synthesised one by one, each
  trimmed to its first and last sample above 1e-3, joined with 80-400 ms of silence, or
  with none: each word starts where its clip was put.
- real: jfk, hand-labelled words: 16 of the 22 words of jfk.flac, their starts read off
  a spectrogram (2.5 ms hop) and the level envelope: the first sound of the word, the
  release for a stop after a closure; the six left out ("for you," and, in the second
  half, "you" after "what" and "for your country.") have no clear onset. About +-20 ms.
- real: clips joined at pauses / with no pause: the bundled recordings cut into pieces
  inside their pauses, shuffled and joined again (pieces of one language per file),
  either with the pause each piece had, or cut tight from the first word's onset to
  the last word's end so that no pause is left. The first word of each piece starts
  at its onset, measured on the level envelope (5 ms frames, 12 dB over the pause) and
  checked on a spectrogram (PIECES below); jfk's pieces also keep the hand labels.

Methods, each timing the same file:

- faster-whisper: the pipeline's own transcription (transcribe.transcribe_episode, word
  timestamps cleaned as stored); only the words it recognised (matched on folded text)
  are counted, so its n is smaller where it misheard.
- attention only: the true text aligned with whisper's cross-attention (align.attention_times).
- forced alignment: the same, refined as the align stage does it (align.ForcedAligner).
"""

from __future__ import annotations

import argparse
import ctypes
import datetime as dt
import statistics
import sys
import tempfile
import time
from difflib import SequenceMatcher
from pathlib import Path

import numpy as np
from scipy.io import wavfile
from scipy.signal import resample_poly

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline.align import ForcedAligner, attention_times
from pipeline.archive import Episode
from pipeline.audio import SAMPLE_RATE
from pipeline.embedded_model import EMBEDDED_MODEL
from pipeline.text import fold
from pipeline.transcribe import DEFAULT_OPTIONS, DecodingOptions, transcribe_episode

MAX_MEDIAN_MS = 80.0  # the target on the synthetic speech, whose every start is known
LEAD_SECONDS = 0.5

SENTENCES = {
    "en-us": [
        "The river keeps its own time, and the old ferryman counts the boats that pass before the bridge.",
        "Margaret Holloway recorded forty interviews in the mining towns of northern Ontario.",
        "Please check the archive before you publish the second episode of the series.",
        "We walked along the harbour until the lighthouse disappeared behind the fog.",
        "Nobody expected the committee to approve the budget on a Friday afternoon.",
        "Her grandfather built canoes from birch bark and taught every child to paddle.",
    ],
    "fr": [
        "Le conservateur a classé les lettres de la famille dans une boîte en bois.",
        "Nous avons enregistré la chanson au bord du lac pendant un orage d'été.",
        "Madeleine Tremblay raconte son enfance dans un petit village de la Gaspésie.",
        "Le programme de la soirée commence par une lecture de poèmes inédits.",
        "Les pêcheurs partaient avant l'aube et revenaient avec des paniers pleins.",
        "Il faut vérifier chaque nom propre avant de publier la transcription.",
    ],
}
LANGUAGE = {"en-us": "en", "fr": "fr"}

JFK = "kennedy-inaugural-1961/jfk.flac"
JFK_TEXT = ("And so my fellow Americans, ask not what your country can do for you, "
            "ask what you can do for your country.")
# word index in JFK_TEXT -> start (s), hand-labelled as the module docstring says
JFK_STARTS = {0: 0.32, 1: 0.53, 2: 0.99, 3: 1.25, 4: 1.70, 5: 3.28, 6: 4.00, 7: 5.41,
              8: 5.58, 9: 5.88, 10: 6.42, 11: 6.62, 14: 8.18, 15: 8.59, 17: 9.17, 18: 9.35}
EJ = "eric-joanis-readalongs/ej-fra.m4a"
LEOPARD = "conservateur-des-eaux-et-forets/leopard-fr.wav"
# (recording, cut in the pause before, first word's onset, last word's end, cut in the
# pause after, text)
PIECES = [
    (JFK, 0.0, 0.32, 2.10, 2.6, "And so my fellow Americans,"),
    (JFK, 2.6, 3.28, 3.66, 3.85, "ask"),
    (JFK, 3.85, 4.00, 4.285, 4.9, "not"),
    (JFK, 4.9, 5.41, 7.56, 7.9, "what your country can do for you,"),
    (JFK, 7.9, 8.18, 10.75, 11.0, "ask what you can do for your country."),
    (EJ, 0.5, 0.955, 2.82, 2.95, "Bonjour. Je m'appelle Éric Joanis."),
    (EJ, 2.95, 3.08, 7.44, 7.5, ("Je suis programmeur au sein de l'équipe des technologies pour "
                                "les langues autochtones au CNRC.")),
    (EJ, 7.88, 7.98, 11.07, 11.3, ("J'ai fait une bonne partie de ma carrière en traduction "
                                  "automatique statistique,")),
    (EJ, 11.3, 11.505, 14.085, 14.45, ("mais maintenant cette approche est déclassée par "
                                      "l'apprentissage profond.")),
    (EJ, 14.45, 14.835, 20.135, 20.6, ("En ce moment je travaille à l'alignement du hansard du "
                                      "Nunavut pour produire un corpus bilingue anglais-inuktitut.")),
    (EJ, 20.6, 21.03, 24.835, 25.06, "Ce corpus permettra d'entraîner la TA, neuronale ou statistique,"),
    (EJ, 25.06, 25.285, 28.56, 28.7, "ainsi que d'autres applications de traitement du langage naturel."),
    (EJ, 28.96, 29.15, 33.415, 33.8, ("En parallèle, j'aide à écrire des tests pour rendre le "
                                     "ReadAlong-Studio plus robuste.")),
    (LEOPARD, 0.5, 1.04, 6.09, 6.2, ("Sous le consulat il devient conservateur des eaux et forêts "
                                    "et conseiller général.")),
]


class Espeak:
    """espeak-ng's C library: audio and the synthesizer's own word start times."""

    _SYNCHRONOUS = 2
    _WORD_EVENT = 1

    class _Event(ctypes.Structure):
        _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint),
                    ("text_position", ctypes.c_int), ("length", ctypes.c_int),
                    ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                    ("user_data", ctypes.c_void_p), ("id", ctypes.c_char * 8)]

    def __init__(self):
        try:
            self.lib = ctypes.CDLL("libespeak-ng.so.1")
        except OSError:
            sys.exit("bench/alignment.py needs espeak-ng (apt-get install espeak-ng)")
        self.rate = self.lib.espeak_Initialize(self._SYNCHRONOUS, 0, None, 0)
        callback_type = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                                         ctypes.POINTER(self._Event))
        self._callback = callback_type(self._collect)  # kept: the library holds a pointer to it
        self.lib.espeak_SetSynthCallback(self._callback)
        self._chunks: list[np.ndarray] = []
        self._events: list[tuple[int, int]] = []

    def _collect(self, wav, count, events) -> int:
        if count > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(count,)).copy())
        n = 0
        while events[n].type != 0:
            if events[n].type == self._WORD_EVENT:
                self._events.append((events[n].text_position - 1, events[n].sample))
            n += 1
        return 0

    def speak(self, text: str, voice: str) -> tuple[np.ndarray, dict[int, float]]:
        """16 kHz samples, and {character offset of a word in text: its start in seconds}."""
        self._chunks.clear()
        self._events.clear()
        self.lib.espeak_SetVoiceByName(voice.encode())
        data = text.encode()
        self.lib.espeak_Synth(data, len(data) + 1, 0, 0, 0, 0, None, None)
        audio = np.concatenate(self._chunks).astype(np.float32) / 32768
        audio = resample_poly(audio, SAMPLE_RATE, self.rate).astype(np.float32)
        return audio, {offset: sample / self.rate for offset, sample in self._events}


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * SAMPLE_RATE), np.float32)


def sounding(audio: np.ndarray, level: float = 1e-3) -> np.ndarray:
    loud = np.flatnonzero(np.abs(audio) > level)
    return audio[loud[0]:loud[-1] + 1]


def first_sound(audio: np.ndarray, at: float, level: float = 1e-3, within: float = 0.15) -> float:
    start = int(at * SAMPLE_RATE)
    loud = np.flatnonzero(np.abs(audio[start:start + int(within * SAMPLE_RATE)]) > level)
    return at if loud.size == 0 else at + loud[0] / SAMPLE_RATE


def sentence_case(espeak: Espeak, sentence: str, voice: str):
    audio, events = espeak.speak(sentence, voice)
    onset = np.flatnonzero(np.abs(audio) > 1e-3)[0] / SAMPLE_RATE
    words, offset = [], 0
    for word in sentence.split():
        offset = sentence.index(word, offset)
        # espeak-ng gives some short words no event of their own: their start is unknown
        start = LEAD_SECONDS + first_sound(audio, events[offset]) - onset if offset in events else None
        words.append((word, start))
        offset += len(word)
    return np.concatenate([silence(LEAD_SECONDS), sounding(audio), silence(0.5)]), words


def word_list_case(espeak: Espeak, sentence: str, voice: str, rng, gaps: tuple[float, float]):
    parts, words, cursor = [silence(LEAD_SECONDS)], [], LEAD_SECONDS
    for word in sentence.split():
        audio = sounding(espeak.speak(word, voice)[0])
        gap = silence(rng.uniform(*gaps))
        words.append((word, cursor))
        parts += [audio, gap]
        cursor += (len(audio) + len(gap)) / SAMPLE_RATE
    parts.append(silence(0.5))
    return np.concatenate(parts), words


def joined_pieces_cases(recordings: dict[str, np.ndarray], rng, tight: bool):
    name = "real: clips joined, no pause" if tight else "real: clips joined at pauses"
    cases = []
    for english in (True, False):
        same = [p for p in PIECES if (p[0] == JFK) == english]
        order = rng.permutation(len(same))
        for first in range(0, len(order), 3):
            parts, words, cursor = [], [], 0.0
            for k in order[first:first + 3]:
                path, cut_in, onset, end, cut_out, text = same[k]
                # the first piece keeps the recording's own quiet before it, never digital silence
                lo = onset - 0.01 if tight and parts else cut_in
                hi = end + 0.02 if tight else cut_out
                for n, word in enumerate(text.split()):
                    start = onset if n == 0 else _jfk_start(text, n) if path == JFK else None
                    words.append((word, None if start is None else cursor + start - lo))
                piece = recordings[path][int(lo * SAMPLE_RATE):int(hi * SAMPLE_RATE)]
                parts.append(piece)
                cursor += len(piece) / SAMPLE_RATE
            cases.append((name, "en" if english else "fr", np.concatenate(parts), words))
    return cases


def _jfk_start(piece_text: str, n: int) -> float | None:
    index = len(JFK_TEXT[:JFK_TEXT.index(piece_text)].split()) + n
    return JFK_STARTS.get(index)


def cases(seed: int):
    """(set name, language, 16 kHz samples, [(word, known start or None)]) per file."""
    from faster_whisper import decode_audio

    rng = np.random.default_rng(seed)
    espeak = Espeak()
    found = []
    for voice, sentences in SENTENCES.items():
        for sentence in sentences:
            found.append(("synthetic sentences", LANGUAGE[voice], *sentence_case(espeak, sentence, voice)))
            found.append(("synthetic words, gaps", LANGUAGE[voice],
                          *word_list_case(espeak, sentence, voice, rng, (0.08, 0.4))))
            found.append(("synthetic words, run together", LANGUAGE[voice],
                          *word_list_case(espeak, sentence, voice, rng, (0.0, 0.0))))
    recordings = {path: decode_audio(str(ROOT / "episodes" / path), sampling_rate=SAMPLE_RATE)
                  for path in (JFK, EJ, LEOPARD)}
    found.append(("real: jfk, hand-labelled words", "en", recordings[JFK],
                  [(word, JFK_STARTS.get(n)) for n, word in enumerate(JFK_TEXT.split())]))
    for tight in (False, True):
        found += joined_pieces_cases(recordings, rng, tight)
    return found


def whisper_own_starts(whisper, folder: Path, audio: np.ndarray, language: str,
                       truth: list[tuple[str, float | None]]) -> dict[int, float]:
    """faster-whisper's start for each true word it recognised, through the pipeline."""
    path = folder / "bench.wav"
    wavfile.write(path, SAMPLE_RATE, audio)
    episode = Episode(slug="bench", folder=folder, title="bench", date=dt.date(2025, 1, 1),
                      audio=path.name)
    options = DecodingOptions(language=language, beam_size=DEFAULT_OPTIONS.beam_size,
                              compute_type=DEFAULT_OPTIONS.compute_type, hotwords=(), channels=())
    transcript = transcribe_episode(whisper, episode, options, model_id=EMBEDDED_MODEL,
                                    audio_sha256="")
    heard = [word for segment in transcript.segments for word in segment.words]
    keys = [fold(word.text).strip(".,;:!?«»\"'") for word in heard]
    matcher = SequenceMatcher(None, keys, [fold(w).strip(".,;:!?«»\"'") for w, _ in truth],
                              autojunk=False)
    return {j + k: heard[i + k].start for i, j, size in matcher.get_matching_blocks()
            for k in range(size)}


def errors_ms(starts, truth) -> list[float]:
    return [abs(starts[n] - start) * 1000 for n, (_, start) in enumerate(truth)
            if start is not None and starts.get(n) is not None]


def row(name: str, method: str, errors: list[float]) -> str:
    if not errors:
        return f"| {name} | {method} | 0 | | | | | |"
    e = np.array(errors)
    return (f"| {name} | {method} | {len(e)} | {np.median(e):.0f} | {np.percentile(e, 90):.0f} "
            f"| {np.mean(e <= 50):.0%} | {np.mean(e <= 100):.0%} | {np.mean(e <= 200):.0%} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    began = time.perf_counter()
    aligner = ForcedAligner()
    whisper = aligner.whisper(EMBEDDED_MODEL)
    results: dict[tuple[str, str], dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, language, audio, truth in cases(args.seed):
            seconds = len(audio) / SAMPLE_RATE
            assert seconds <= 30.0, (name, seconds)
            words = [word for word, _ in truth]
            own = whisper_own_starts(whisper, Path(tmp), audio, language, truth)
            attention = {n: t[0] for n, t in enumerate(attention_times(whisper, audio, words, language))}
            aligned = {n: w.start for n, w in
                       enumerate(aligner.align(EMBEDDED_MODEL, audio, 0.0, seconds, words, language))}
            pooled = results.setdefault((name, language), {"faster-whisper": [], "attention only": [],
                                                           "forced alignment": []})
            pooled["faster-whisper"] += errors_ms(own, truth)
            pooled["attention only"] += errors_ms(attention, truth)
            pooled["forced alignment"] += errors_ms(aligned, truth)
    print("Word start error, ms (absolute): median, 90th percentile, share within 50/100/200 ms\n")
    print("| speech | method | words | median | p90 | <=50 | <=100 | <=200 |")
    print("|---|---|---|---|---|---|---|---|")
    verdicts = []
    for (name, language), methods in results.items():
        for method, errors in methods.items():
            print(row(f"{name} ({language})", method, errors))
        ours, theirs = methods["forced alignment"], methods["faster-whisper"]
        if theirs:
            verdicts.append(statistics.median(ours) <= statistics.median(theirs)
                            and np.percentile(ours, 90) <= np.percentile(theirs, 90))
    synthetic = [e for (name, _), m in results.items() if name.startswith("synthetic")
                 for e in m["forced alignment"]]
    print(f"\nforced alignment at least as accurate as faster-whisper (median and p90): "
          f"{sum(verdicts)} of {len(verdicts)} rows")
    print(f"forced alignment median on the synthetic speech: {statistics.median(synthetic):.0f} ms "
          f"(target <= {MAX_MEDIAN_MS:.0f})")
    print(f"{time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()
