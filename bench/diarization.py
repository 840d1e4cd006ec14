"""Who is speaking: diarization error, speaker counts, and what it costs.

Conversations are assembled from the repository's real single-voice recordings (each
file's speaker a different person; the FLEURS clips do not say who read which, and two
of them sound as alike as one voice's own halves, so a conversation takes one FLEURS
clip at most): 2, 3 and 4 voices, turns of 1 to 20 s, pauses of 0.15 to 0.8 s, a few
sub-second back-channel turns, each voice at its own level within ±3 dB.

Voices are found (pipeline.speakers.voices_of_words) on the speech silero VAD finds in
the assembled recording, cut into 0.4 s stand-ins for words, with no count given.
Prints, per voice count: diarization error rate with a 0.25 s collar (missed, false
alarm and confused speech over the reference speech, voices mapped one to one), and
how often the count is right; then the counts found in three-speakers-en.wav,
stereo_diarization.wav downmixed to mono, and single voices; then, on one-hour
recordings of two voices and of one, the time and peak memory diarization adds, and on
--minutes recordings of two voices and of one the share of `transcribe`'s time it takes.

    python bench/diarization.py [--seeds 10] [--first-seed 0] [--minutes 8]
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import tempfile
import time
from itertools import pairwise
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment

# Python puts this script's folder first on the path, where bench/pipeline.py would
# shadow the pipeline package itself.
sys.path = [entry for entry in sys.path if Path(entry or ".").resolve() != Path(__file__).resolve().parent]


from pipeline.audio import SAMPLE_RATE, as_float, decode, probe
from pipeline.model import Word
from pipeline.speakers import voices_of_words
from pipeline.speech import at_speech_level, speech_regions

REPO = Path(__file__).resolve().parent.parent
CLIPS = REPO / "tests" / "data" / "clips"
VOICES = {
    "multilingual": [REPO / "episodes/mit-licence-en-de/multilingual.mp3"],
    "sonnet": [CLIPS / "sonnet001.mp3"],
    "ej-fra": [REPO / "episodes/eric-joanis-readalongs/ej-fra.m4a"],
    "jfk": [REPO / "episodes/kennedy-inaugural-1961/jfk.flac"],
    "leopard-fr": [REPO / "episodes/conservateur-des-eaux-et-forets/leopard-fr.wav"],
    "cheetah-fr": [CLIPS / "cheetah-fr.wav"],
    **{f"fleurs-fr-00{n}": [CLIPS / f"fleurs-fr-00{n}.ogg"] for n in range(5)},
}
COLLAR = 0.25
WORD_SECONDS = 0.4


def samples(path: Path) -> np.ndarray:
    return as_float(decode(path, probe(path), SAMPLE_RATE, stereo=False)[:, 0])


_UTTERANCES: dict[str, list[np.ndarray]] = {}


def utterances(voice: str) -> list[np.ndarray]:
    """The voice's speech regions, as found by silero VAD."""
    if voice not in _UTTERANCES:
        clips = []
        for path in VOICES[voice]:
            audio = samples(path)
            clips += [audio[int(r.start * SAMPLE_RATE):int(r.end * SAMPLE_RATE)]
                      for r in speech_regions(at_speech_level(audio, SAMPLE_RATE), SAMPLE_RATE) if r.seconds > 0.3]
        _UTTERANCES[voice] = clips
    return _UTTERANCES[voice]


def conversation(voices: int, seconds: float, seed: int) -> tuple[np.ndarray, list[tuple[float, float, str]]]:
    """A recording of ``voices`` voices taking turns for about ``seconds``, and its
    reference turns (start, end, voice)."""
    rng = random.Random(seed)
    while True:
        names = rng.sample(sorted(VOICES), voices)
        if sum(name.startswith("fleurs") for name in names) <= 1:
            break
    pools: dict[str, list[np.ndarray]] = {name: [] for name in names}
    levels = {name: 10 ** (rng.uniform(-3, 3) / 20) for name in names}
    pieces, turns, now, speaker = [], [], 0.0, None
    spoken = dict.fromkeys(names, 0.0)
    while now < seconds:
        # Whoever has said least is likelier to speak next: every voice takes part (picked
        # evenly, a 4-voice conversation could leave a voice out or give it 1 s).
        others = [name for name in names if name != speaker] or names
        speaker = rng.choices(others, weights=[1 / (1 + spoken[name]) for name in others])[0]
        backchannel = bool(turns) and rng.random() < 0.08
        target = rng.uniform(0.4, 0.9) if backchannel else rng.uniform(1, 20)
        said = 0.0
        while said < target:
            if not pools[speaker]:
                pools[speaker] = list(utterances(speaker))
                rng.shuffle(pools[speaker])
            clip = pools[speaker].pop()
            if backchannel or said + len(clip) / SAMPLE_RATE > target + 3:
                clip = clip[:int((target - said) * SAMPLE_RATE) + 1]
            if len(clip) < 0.3 * SAMPLE_RATE and not backchannel:
                break
            clip = clip / (np.sqrt(np.mean(clip ** 2)) + 1e-9) * 0.05 * levels[speaker]
            pause = rng.uniform(0.15, 0.4) if said else rng.uniform(0.2, 0.8)
            pieces += [np.zeros(int(pause * SAMPLE_RATE), np.float32), clip.astype(np.float32)]
            now += pause
            turns.append((round(now, 3), round(now + len(clip) / SAMPLE_RATE, 3), speaker))
            now += len(clip) / SAMPLE_RATE
            said += len(clip) / SAMPLE_RATE
            spoken[speaker] += len(clip) / SAMPLE_RATE
    audio = np.concatenate(pieces)
    audio += np.random.default_rng(seed).normal(0, 0.0005, len(audio)).astype(np.float32)  # a room's floor
    return audio, turns


def diarization_error_rate(reference: list[tuple[float, float, str]], hypothesis: list[tuple[float, float, str]],
                           collar: float = COLLAR, step: float = 0.01) -> float:
    """(missed + false alarm + confused speech) / reference speech, in steps of ``step``
    seconds, leaving out ``collar`` seconds either side of each reference boundary, the
    hypothesis' speakers mapped one to one onto the reference's for the least error
    (the standard definition, as NIST md-eval and pyannote.metrics compute it)."""
    end = max(turn[1] for turn in reference + hypothesis)
    count = int(np.ceil(end / step)) + 1

    def labelled(turns):
        names = sorted({turn[2] for turn in turns})
        labels = np.full(count, -1)
        for start, stop, who in turns:
            labels[round(start / step):round(stop / step)] = names.index(who)
        return labels, len(names)

    ref, ref_count = labelled(reference)
    hyp, hyp_count = labelled(hypothesis)
    scored = np.ones(count, bool)
    for start, stop, _ in reference:
        for boundary in (start, stop):
            scored[max(0, round((boundary - collar) / step)):round((boundary + collar) / step)] = False
    ref, hyp = ref[scored], hyp[scored]
    speech = np.sum(ref >= 0)
    missed = np.sum((ref >= 0) & (hyp < 0))
    false_alarm = np.sum((ref < 0) & (hyp >= 0))
    both = (ref >= 0) & (hyp >= 0)
    together = np.zeros((ref_count, max(hyp_count, 1)))
    np.add.at(together, (ref[both], hyp[both]), 1)
    rows, columns = linear_sum_assignment(-together)
    confused = np.sum(both) - together[rows, columns].sum()
    return float((missed + false_alarm + confused) / speech)


def speech_words(audio: np.ndarray) -> list[Word]:
    """Stand-ins for words: the speech VAD finds, cut every WORD_SECONDS."""
    words = []
    for region in speech_regions(at_speech_level(audio, SAMPLE_RATE), SAMPLE_RATE):
        edges = np.linspace(region.start, region.end, max(1, round(region.seconds / WORD_SECONDS)) + 1)
        words += [Word("w", float(a), float(b), 1.0) for a, b in pairwise(edges)]
    return words


def diarized(audio: np.ndarray, count: int | None = None) -> list[tuple[float, float, str]]:
    words = speech_words(audio)
    return [(word.start, word.end, str(voice)) for word, voice in zip(words, voices_of_words(audio, words, count))]


def _memory_mb(field: str) -> float:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field + ":")) / 1024


def _peak_memory_child(minutes: float, voices: int) -> None:
    """Run in a process of its own: diarize a recording of ``voices`` voices held as 16-bit
    samples (as transcription holds it), print seconds and the peak memory it adds in MB."""
    audio, _ = conversation(voices, minutes * 60, 1)
    words = speech_words(audio)
    samples16 = (np.clip(audio, -1, 1) * 32767).astype(np.int16)
    del audio
    voices_of_words(samples16[:SAMPLE_RATE * 30], words[:50])  # the models loaded, as transcription has whisper
    with open("/proc/self/clear_refs", "w") as refs:  # the peak (VmHWM) starts again from here
        refs.write("5")
    before = _memory_mb("VmRSS")
    start = time.perf_counter()
    voices_of_words(samples16, words)
    seconds = time.perf_counter() - start
    print(f"{seconds:.1f} {_memory_mb('VmHWM') - before:.0f} {len(samples16) / SAMPLE_RATE:.0f}")


def _archive_of(root: Path, audio: np.ndarray, *, persons: int) -> None:
    from scipy.io import wavfile

    episode = root / "episodes" / "talk"
    episode.mkdir(parents=True)
    (root / "archive.toml").write_text(
        'title = "Bench"\ndescription = "Bench"\nauthor = "Bench"\nlanguage = "en"\n'
        'base_url = "https://example.org/"\n', encoding="utf-8")
    wavfile.write(episode / "talk.wav", SAMPLE_RATE, (np.clip(audio, -1, 1) * 32767).astype(np.int16))
    people = "".join(f'[[persons]]\nname = "Person {n + 1}"\n' for n in range(persons))
    (episode / "episode.toml").write_text(
        f'title = "Talk"\ndate = 2025-01-01\naudio = "talk.wav"\nlanguage = "auto"\n{people}', encoding="utf-8")


def transcription_seconds(minutes: float, voices: int) -> tuple[float, float]:
    """Seconds `transcribe` takes on one --minutes recording of ``voices`` voices (listed as
    two persons), and of those the seconds diarization takes, measured in the same run
    (this machine's speed drifts by a tenth between two runs, more than diarization costs)."""
    from pipeline import transcribe
    from pipeline.archive import load_archive

    audio, _ = conversation(voices, minutes * 60, 2)
    spent = []
    diarize = transcribe.diarize

    def timed(*args, **kwargs):
        start = time.perf_counter()
        found = diarize(*args, **kwargs)
        spent.append(time.perf_counter() - start)
        return found

    transcribe.diarize = timed
    try:
        with tempfile.TemporaryDirectory() as folder:
            root = Path(folder)
            _archive_of(root, audio, persons=2)
            archive = load_archive(root)
            start = time.perf_counter()
            transcribe.transcribe_archive(archive, archive.episodes)
            total = time.perf_counter() - start
    finally:
        transcribe.diarize = diarize
    return total, sum(spent)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=10, help="conversations per voice count")
    parser.add_argument("--first-seed", type=int, default=0,
                        help="the first conversation's seed (10: those the thresholds were not chosen on)")
    parser.add_argument("--seconds", type=float, default=150, help="length of each conversation")
    parser.add_argument("--minutes", type=float, default=8, help="length of the recording transcribed")
    parser.add_argument("--hour-child", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--child-voices", type=int, default=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.hour_child:
        _peak_memory_child(args.hour_child, args.child_voices)
        return

    print("| voices | conversations | DER mean | DER pooled | DER worst | count right |")
    print("|---|---|---|---|---|---|")
    all_right = all_count = 0
    for voices in (2, 3, 4):
        rates, errors, speech, right = [], 0.0, 0.0, 0
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            audio, reference = conversation(voices, args.seconds, seed)
            hypothesis = diarized(audio)
            rate = diarization_error_rate(reference, hypothesis)
            seconds = sum(end - start for start, end, _ in reference)
            rates.append(rate)
            errors += rate * seconds
            speech += seconds
            right += len({who for *_, who in hypothesis}) == len({who for *_, who in reference})
        all_right += right
        all_count += args.seeds
        print(f"| {voices} | {args.seeds} | {np.mean(rates):.3f} | {errors / speech:.3f} | {max(rates):.3f} "
              f"| {right}/{args.seeds} |")
    print(f"count right overall: {all_right}/{all_count}")

    print("\n| recording | voices | found | found with speakers = voices |")
    print("|---|---|---|---|")
    singles = [("three-speakers-en.wav", samples(CLIPS / "three-speakers-en.wav"), 3),
               ("stereo_diarization.wav (mono)", samples(REPO / "episodes/two-voices-stereo/stereo_diarization.wav"), 2)]
    singles += [(f"{name} alone", np.concatenate([samples(path) for path in VOICES[name]]), 1)
                for name in ("multilingual", "sonnet", "ej-fra", "jfk")]
    for name, audio, voices in singles:
        print(f"| {name} | {voices} | {len({who for *_, who in diarized(audio)})} "
              f"| {len({who for *_, who in diarized(audio, voices)})} |")

    print()
    for voices, said in ((2, "two voices"), (1, "one voice")):
        hour = subprocess.run([sys.executable, __file__, "--hour-child", "60", "--child-voices", str(voices)],
                              check=True, capture_output=True, text=True).stdout.split()
        print(f"one hour, {said} ({hour[2]} s): diarization {hour[0]} s, peak memory added {hour[1]} MB")
    for voices, said in ((2, "two-voice recording"), (1, "one-voice recording listed as two persons")):
        total, diarizing = transcription_seconds(args.minutes, voices)
        print(f"transcribe, {args.minutes:g} min {said}: {total:.1f} s, of which diarization "
              f"{diarizing:.1f} s: {100 * diarizing / (total - diarizing):.1f} % added to transcription")


if __name__ == "__main__":
    main()
