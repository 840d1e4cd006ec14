"""Word timing: the word starts and ends `podarchive run` publishes, bare faster-whisper's,
and forced alignment's of a corrected text, on speech whose word times are known
without whisper.

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
  The ends of the five words before a pause too (tests/data/references/jfk.words.json).
- real: clips joined at pauses / with no pause: the bundled recordings cut into pieces
  inside their pauses, shuffled and joined again (pieces of one language per file),
  either with the pause each piece had, or cut tight from the first word's onset to
  the last word's end so that no pause is left. The first word of each piece starts
  at its onset, measured on the level envelope (5 ms frames, 12 dB over the pause) and
  checked on a spectrogram (PIECES below); jfk's pieces also keep the hand labels.

- real: praatio examples / real, tool-aligned: recordings that alignment tools ship
  with their word times (tests/data/word-alignments, tests/data/LICENSES.md): two
  sentences of praatio's, placed by hand it seems; the reference alignments of MFA's
  own tests (unscripted speech with fillers, which whisper leaves out: the word after
  one takes its time). An aligner's times are themselves some 10-30 ms off: a pool of
  their own.
- pocketsphinx's own alignment: LibriVox sentences as pocketsphinx's tests align them.
  podarchive places English words with pocketsphinx's model, so these references are
  not independent of it: shown, held to no target.

Word ends are known for the synthetic words (each ends where its clip ends), for the last
word of each synthetic sentence, and for the last word of each real piece.

Methods, each timing the same file:

- podarchive run (no correction): the transcript as published when nobody corrects it
  (transcribe.transcribe_episode: whisper's words refined on the sound, English ones
  placed by the acoustic model, cleaned as stored); only the words it recognised
  (matched on folded text) are counted, so its n is smaller where it misheard. Targets
  for its starts: TARGETS.
- bare faster-whisper: WhisperModel.transcribe(word_timestamps=True, vad_filter=True).
- forced alignment (correction): the true text aligned as the align stage aligns a
  producer's correction (align.ForcedAligner).
"""

from __future__ import annotations

import argparse
import ctypes
import datetime as dt
import json
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

from pipeline.align import ForcedAligner
from pipeline.archive import Episode
from pipeline.audio import SAMPLE_RATE
from pipeline.embedded_model import EMBEDDED_MODEL, Placement
from pipeline.text import word_key
from pipeline.transcribe import DEFAULT_OPTIONS, DecodingOptions, transcribe_episode

# Word starts `podarchive run` publishes: (median, 90th percentile) at most, in ms, for
# each pool of speech (a set belongs to the first its name starts with); None: no target.
TARGETS = {"synthetic": (40, 120), "real, tool-aligned": (30, 120), "real": (30, 120),
           "pocketsphinx's own alignment": None}
ALIGNMENTS = ROOT / "tests" / "data" / "word-alignments"
# folder of ALIGNMENTS -> the set its recordings make (see tests/data/LICENSES.md)
ALIGNED_RECORDINGS = {
    "praatio": "real: praatio examples, hand-placed",
    "mfa": "real, tool-aligned: MFA's test data, unscripted",
    "pocketsphinx_librivox": "pocketsphinx's own alignment: LibriVox read",
}
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
# jfk's words, hand-labelled as the module docstring says (the tests use them too)
JFK_LABELS = json.loads((ROOT / "tests" / "data" / "references" / "jfk.words.json").read_text("utf-8"))["words"]
JFK_TEXT = " ".join(label["word"] for label in JFK_LABELS)
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
    spoken = sounding(audio)
    words, offset = [], 0
    for word in sentence.split():
        offset = sentence.index(word, offset)
        # espeak-ng gives some short words no event of their own: their start is unknown
        start = LEAD_SECONDS + first_sound(audio, events[offset]) - onset if offset in events else None
        words.append((word, start, None))
        offset += len(word)
    # Inside a sentence a word's end is not known; the last one ends with the sound.
    words[-1] = (*words[-1][:2], LEAD_SECONDS + len(spoken) / SAMPLE_RATE)
    return np.concatenate([silence(LEAD_SECONDS), spoken, silence(0.5)]), words


def word_list_case(espeak: Espeak, sentence: str, voice: str, rng, gaps: tuple[float, float]):
    parts, words, cursor = [silence(LEAD_SECONDS)], [], LEAD_SECONDS
    for word in sentence.split():
        audio = sounding(espeak.speak(word, voice)[0])
        gap = silence(rng.uniform(*gaps))
        words.append((word, cursor, cursor + len(audio) / SAMPLE_RATE))
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
                said = text.split()
                for n, word in enumerate(said):
                    start = onset if n == 0 else _jfk_start(text, n) if path == JFK else None
                    words.append((word, None if start is None else cursor + start - lo,
                                  cursor + end - lo if n == len(said) - 1 else None))
                piece = recordings[path][int(lo * SAMPLE_RATE):int(hi * SAMPLE_RATE)]
                parts.append(piece)
                cursor += len(piece) / SAMPLE_RATE
            cases.append((name, "en" if english else "fr", np.concatenate(parts), words))
    return cases


def _jfk_start(piece_text: str, n: int) -> float | None:
    return JFK_LABELS[len(JFK_TEXT[:JFK_TEXT.index(piece_text)].split()) + n]["start"]


def cases(seed: int):
    """(set name, language, 16 kHz samples, [(word, known start or None, known end or
    None)]) per file."""
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
                  [(label["word"], label["start"], label["end"]) for label in JFK_LABELS]))
    for tight in (False, True):
        found += joined_pieces_cases(recordings, rng, tight)
    for folder, name in ALIGNED_RECORDINGS.items():
        for path in sorted((ALIGNMENTS / folder).glob("*.words.json")):
            labels = json.loads(path.read_text("utf-8"))
            audio = decode_audio(str(path.parent / labels["recording"]), sampling_rate=SAMPLE_RATE)
            found.append((name, "en", audio, [(label["word"], label["start"], label["end"])
                                              for label in labels["words"] if not label["word"].startswith(("[", "<"))]))
    return found


def group(name: str) -> str:
    """The pool a set of speech belongs to: its targets are the pool's."""
    return next(kind for kind in TARGETS if name.startswith(kind))


def matched(heard: list[tuple[str, float, float]], truth) -> dict[int, tuple[float, float]]:
    """(start, end) of each true word a method heard, matched on folded text: a word it
    misheard is not counted, so its n is smaller where it misheard."""
    matcher = SequenceMatcher(None, [word_key(word) for word, _, _ in heard], [word_key(word) for word, *_ in truth],
                              autojunk=False)
    return {j + k: heard[i + k][1:] for i, j, size in matcher.get_matching_blocks() for k in range(size)}


def podarchive_words(whisper, folder: Path, audio: np.ndarray, language: str) -> list[tuple[str, float, float]]:
    """The words `podarchive run` publishes for ``audio`` when nobody corrects them."""
    path = folder / "bench.wav"
    wavfile.write(path, SAMPLE_RATE, audio)
    episode = Episode(slug="bench", folder=folder, title="bench", date=dt.date(2025, 1, 1),
                      audio=path.name)
    options = DecodingOptions(language=language, beam_size=DEFAULT_OPTIONS.beam_size,
                              placement=Placement(), hotwords=(), channels=())
    transcript = transcribe_episode(whisper, episode, options, model_id=EMBEDDED_MODEL, audio_sha256="")
    return [(word.text, word.start, word.end) for segment in transcript.segments for word in segment.words]


def bare_words(whisper, audio: np.ndarray, language: str) -> list[tuple[str, float, float]]:
    """faster-whisper's own word timestamps, as its transcribe() gives them."""
    segments, _ = whisper.transcribe(audio, language=language, beam_size=DEFAULT_OPTIONS.beam_size,
                                     word_timestamps=True, vad_filter=True)
    return [(word.word.strip(), word.start, word.end) for segment in segments for word in segment.words]


def errors_ms(times: dict[int, tuple[float, float]], truth, which: int) -> list[float]:
    """Absolute errors of the starts (``which`` 0) or ends (1) whose truth is known."""
    return [abs(times[n][which] - known[which]) * 1000 for n, (_, *known) in enumerate(truth)
            if known[which] is not None and n in times]


def stats(errors: list[float]) -> str:
    if not errors:
        return "0 | | "
    return f"{len(errors)} | {np.median(errors):.0f} | {np.percentile(errors, 90):.0f}"


METHODS = ("podarchive run (no correction)", "bare faster-whisper", "forced alignment (correction)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    began = time.perf_counter()
    aligner = ForcedAligner()
    whisper = aligner.whisper(EMBEDDED_MODEL)
    # (speech, language) -> method -> (start errors, end errors)
    results: dict[tuple[str, str], dict[str, tuple[list[float], list[float]]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, language, audio, truth in cases(args.seed):
            seconds = len(audio) / SAMPLE_RATE
            assert seconds <= 30.0, (name, seconds)
            words = [word for word, *_ in truth]
            aligned = aligner.align(EMBEDDED_MODEL, audio, 0.0, seconds, words, language)
            times = {
                METHODS[0]: matched(podarchive_words(whisper, Path(tmp), audio, language), truth),
                METHODS[1]: matched(bare_words(whisper, audio, language), truth),
                METHODS[2]: {n: (word.start, word.end) for n, word in enumerate(aligned)},
            }
            pooled = results.setdefault((name, language), {method: ([], []) for method in METHODS})
            for method, found in times.items():
                pooled[method][0].extend(errors_ms(found, truth, 0))
                pooled[method][1].extend(errors_ms(found, truth, 1))
    print("Word start and end errors, ms (absolute): n, median, 90th percentile\n")
    print("| speech | method | starts | median | p90 | ends | median | p90 |")
    print("|---|---|---|---|---|---|---|---|")
    for (name, language), methods in results.items():
        for method, (starts, ends) in methods.items():
            print(f"| {name} ({language}) | {method} | {stats(starts)} | {stats(ends)} |")
    verdicts = []
    print("\nPooled: | speech | method | starts | median | p90 | ends | median | p90 |")
    for kind, targets in TARGETS.items():
        for method in METHODS:
            starts = [e for (name, _), m in results.items() if group(name) == kind for e in m[method][0]]
            ends = [e for (name, _), m in results.items() if group(name) == kind for e in m[method][1]]
            print(f"| {kind} | {method} | {stats(starts)} | {stats(ends)} |")
            if method == METHODS[0] and targets:
                median, p90 = np.median(starts), np.percentile(starts, 90)
                met = median <= targets[0] and p90 <= targets[1]
                verdicts.append(f"{kind}: starts median {median:.0f} ms, p90 {p90:.0f} ms "
                                f"(target <= {targets[0]}, <= {targets[1]}): {'met' if met else 'NOT met'}")
    print("\nWhat `podarchive run` publishes:")
    print("\n".join(verdicts))
    print(f"{time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()
