"""Long recordings: is any speech silently lost?

Assembles long recordings from the repository's real clips (tests/data/clips and the
bundled episodes), each clip's place known:

  bilingual  about 22 minutes, French and English alternating every 5 to 50 s with
             0.5 s pauses, the soft voice of fleurs-fr-000 (about 40 dB below the
             others) among them; language "auto"
  french     about 12 minutes of French only, the soft voice among them; language "fr"
  bundled    the bundled episodes as they are (short clips: nothing is lost there)

and transcribes each with `podarchive transcribe` of this checkout and of an earlier
revision (--against, default the last main before long recordings were guarded), each
in a process of its own, model loading included, in --repeat rounds (the revisions take
turns). Each distinct clip is also transcribed alone. Prints, per recording and
revision: the fastest wall time, pooled word error rate against the same clips
transcribed alone, the lowest coverage of any clip (words found / reference words), the
gaps recorded; then the time ratios: each round's (its two runs one right after the
other: this machine's speed drifts by a fifth over minutes, by as much between two
benches) and their median.

    python bench/longform.py [--against REV] [--minutes 22] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jiwer
import numpy as np
from scipy.io import wavfile

# Python puts this script's folder first on the path, where bench/pipeline.py would
# shadow the pipeline package itself.
sys.path = [entry for entry in sys.path if Path(entry or ".").resolve() != Path(__file__).resolve().parent]

from pipeline.audio import SAMPLE_RATE, decode, probe

REPO = Path(__file__).resolve().parent.parent
CLIPS = REPO / "tests" / "data" / "clips"
REFERENCES = REPO / "tests" / "data" / "references"
EPISODES = REPO / "episodes"
# The last main before this bench: long recordings lost whole passages there.
BEFORE_GUARD = "f271d08"
PAUSE_SECONDS = 0.5
QUIET = "fleurs-fr-000"

# clip name -> (recording, reference, language, seconds kept or None for all)
FRENCH = {
    "leopard-fr": (EPISODES / "conservateur-des-eaux-et-forets/leopard-fr.wav", REFERENCES / "leopard-fr.txt"),
    "ej-fra": (EPISODES / "eric-joanis-readalongs/ej-fra.m4a", REFERENCES / "ej-fra.txt"),
    "cheetah-fr": (CLIPS / "cheetah-fr.wav", CLIPS / "cheetah-fr.txt"),
    **{f"fleurs-fr-00{n}": (CLIPS / f"fleurs-fr-00{n}.ogg", CLIPS / f"fleurs-fr-00{n}.txt") for n in range(5)},
}
ENGLISH = {
    "jfk": (EPISODES / "kennedy-inaugural-1961/jfk.flac", REFERENCES / "jfk.txt"),
    "three-speakers-en": (CLIPS / "three-speakers-en.wav", CLIPS / "three-speakers-en.txt"),
    "mit-licence-en": (EPISODES / "mit-licence-en-de/multilingual.mp3", REFERENCES / "multilingual.en.txt"),
    "sonnet001": (CLIPS / "sonnet001.mp3", CLIPS / "sonnet001.txt"),
}
KEPT_SECONDS = {"mit-licence-en": 29.5}  # its reference covers the English first half


def normalise(text: str, language: str) -> str:
    """Lower case, no punctuation, numbers spelt out: FLEURS references say "dix-sept"
    where whisper writes "17", one word where the reference counts two."""
    import re

    from num2words import num2words

    text = text.lower().replace("\u2019", "'")
    text = re.sub(r"\d+", lambda number: num2words(int(number.group()), lang=language), text)
    return " ".join(re.sub(r"[^\w\s]", " ", text).split())


def language_of(name: str) -> str:
    return "fr" if name in FRENCH else "en"


def samples(name: str) -> np.ndarray:
    path = {**FRENCH, **ENGLISH}[name][0]
    found = decode(path, probe(path), SAMPLE_RATE, stereo=False)[:, 0]
    kept = KEPT_SECONDS.get(name)
    return found[: int(kept * SAMPLE_RATE)] if kept else found


def reference(name: str) -> str:
    return normalise({**FRENCH, **ENGLISH}[name][1].read_text(encoding="utf-8"), language_of(name))


def bilingual_order(minutes: float, rng: random.Random) -> list[str]:
    order, seconds, french = [], 0.0, True
    while seconds < minutes * 60:
        name = rng.choice(sorted(FRENCH if french else ENGLISH))
        order.append(name)
        seconds += len(samples(name)) / SAMPLE_RATE + PAUSE_SECONDS
        french = not french
    return order


def french_order(minutes: float, rng: random.Random) -> list[str]:
    order, seconds = [], 0.0
    while seconds < minutes * 60:
        names = sorted(FRENCH)
        rng.shuffle(names)
        for name in names:
            order.append(name)
            seconds += len(samples(name)) / SAMPLE_RATE + PAUSE_SECONDS
    return order


def write_recording(order: list[str], path: Path) -> list[dict]:
    """The clips of ``order`` one after another into a WAV file; where each one lies."""
    pause = np.zeros(int(PAUSE_SECONDS * SAMPLE_RATE), np.int16)
    cache: dict[str, np.ndarray] = {}
    places, parts, at = [], [], 0
    for name in order:
        clip = cache.setdefault(name, samples(name))
        places.append({"clip": name, "start": at / SAMPLE_RATE, "end": (at + len(clip)) / SAMPLE_RATE})
        parts += [clip, pause]
        at += len(clip) + len(pause)
    wavfile.write(path, SAMPLE_RATE, np.concatenate(parts))
    return places


def archive_with(folder: Path, episodes: dict[str, tuple[Path, str]]) -> Path:
    """An archive of one episode per (recording, language)."""
    (folder / "episodes").mkdir(parents=True)
    shutil.copy(REPO / "archive.toml", folder / "archive.toml")
    shutil.copy(REPO / "cover.png", folder / "cover.png")
    for slug, (recording, language) in episodes.items():
        target = folder / "episodes" / slug
        target.mkdir()
        shutil.copy(recording, target / recording.name)
        (target / "episode.toml").write_text(
            f'title = "{slug}"\ndate = 2025-01-01\nlanguage = "{language}"\naudio = "{recording.name}"\n')
    return folder


def transcribe(folder: Path, code: Path) -> float:
    """Seconds `podarchive transcribe --force` of the checkout at ``code`` took on ``folder``."""
    began = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pipeline", "--archive", str(folder), "transcribe", "--force"],
                   check=True, capture_output=True, cwd=code, env={**os.environ, "PYTHONPATH": str(code)})
    return time.perf_counter() - began


def timed(runs: dict[str, tuple[Path, Path]], repeat: int) -> dict[str, list[float]]:
    """The seconds each of ``runs`` (label: archive, checkout) took in each of ``repeat``
    rounds, the labels taking turns."""
    took: dict[str, list[float]] = {label: [] for label in runs}
    for _ in range(repeat):
        for label, (folder, code) in runs.items():
            took[label].append(transcribe(folder, code))
    return took


def words_of(folder: Path, slug: str) -> tuple[list[dict], list[dict]]:
    data = json.loads((folder / "episodes" / slug / "transcript.json").read_text(encoding="utf-8"))
    return [w for s in data["segments"] for w in s["words"]], data.get("gaps", [])


def said_in(words: list[dict], place: dict) -> str:
    start, end = place["start"], place["end"]
    return normalise(" ".join(w["text"] for w in words if start - 0.25 <= (w["start"] + w["end"]) / 2 < end + 0.25),
                     language_of(place["clip"]))


def score(words: list[dict], places: list[dict], alone: dict[str, str]) -> dict:
    """Pooled WER, here and for the clips alone; each clip's coverage: the words found
    where it lies against its reference's words, and against the words whisper finds in
    the clip alone."""
    references = [reference(place["clip"]) for place in places]
    found = [said_in(words, place) for place in places]
    coverage = [(min(1.0, len(hyp.split()) / len(ref.split())), place)
                for place, ref, hyp in zip(places, references, found)]
    kept = [(min(1.0, len(hyp.split()) / max(1, len(alone[place["clip"]].split()))), place)
            for place, hyp in zip(places, found)]
    lowest, where = min(coverage, key=lambda item: item[0])
    lowest_kept, where_kept = min(kept, key=lambda item: item[0])
    quiet = [c for c, place in coverage if place["clip"] == QUIET]
    return {
        "wer": jiwer.wer(references, [hyp or "" for hyp in found]),
        "alone": jiwer.wer(references, [alone[place["clip"]] for place in places]),
        "lowest": lowest, "lowest_clip": f"{where['clip']} at {where['start']:.0f} s",
        "lowest_kept": lowest_kept, "lowest_kept_clip": f"{where_kept['clip']} at {where_kept['start']:.0f} s",
        "quiet": min(quiet) if quiet else None,
        "below_09": sum(c < 0.9 for c, _ in coverage), "kept_below_09": sum(c < 0.9 for c, _ in kept),
        "clips": len(places),
    }


def alone_texts(work: Path, names: list[str], language: str) -> dict[str, str]:
    """Each clip transcribed on its own, as this checkout does."""
    folder = work / f"alone-{language}"
    episodes = {}
    for name in names:
        path = folder / "audio" / f"{name}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_recording([name], path)
        episodes[name] = (path, language)
    archive_with(folder / "archive", episodes)
    transcribe(folder / "archive", REPO)
    return {name: normalise(" ".join(w["text"] for w in words_of(folder / "archive", name)[0]), language_of(name))
            for name in names}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--against", default=BEFORE_GUARD, help="the earlier revision to time")
    parser.add_argument("--minutes", type=float, default=22.0, help="length of the bilingual recording")
    parser.add_argument("--repeat", type=int, default=3, help="rounds to time")
    arguments = parser.parse_args()
    rng = random.Random(12)
    with tempfile.TemporaryDirectory(prefix="longform-") as scratch:
        work = Path(scratch)
        os.environ.setdefault("PODARCHIVE_CACHE_DIR", str(work / "cache"))
        before = work / "before"
        subprocess.run(["git", "worktree", "add", "--detach", str(before), arguments.against],
                       check=True, capture_output=True, cwd=REPO)
        try:
            run(work, before, arguments.minutes, arguments.repeat, rng)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(before)], check=False, capture_output=True,
                           cwd=REPO)


def run(work: Path, before: Path, minutes: float, repeat: int, rng: random.Random) -> None:
    recordings = {
        "bilingual": (bilingual_order(minutes, rng), "auto"),
        "french": (french_order(minutes * 12 / 22, rng), "fr"),
    }
    print(f"clips alone ({sys.executable}) …", flush=True)
    alone = {"auto": alone_texts(work, sorted({**FRENCH, **ENGLISH}), "auto"),
             "fr": alone_texts(work, sorted(FRENCH), "fr")}
    ratios = {}
    for name, (order, language) in recordings.items():
        path = work / "audio" / f"{name}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        places = write_recording(order, path)
        seconds = places[-1]["end"]
        runs = {label: (archive_with(work / f"{name}-{label}", {name: (path, language)}), code)
                for label, code in (("before", before), ("now", REPO))}
        took = timed(runs, repeat)
        ratios[name] = [now / before for before, now in zip(took["before"], took["now"])]
        for label, rounds in took.items():
            words, gaps = words_of(runs[label][0], name)
            print_row((name, label, seconds, min(rounds), score(words, places, alone[language]), gaps))
    runs = {}
    for label, code in (("before", before), ("now", REPO)):
        folder = work / f"bundled-{label}"
        shutil.copytree(EPISODES, folder / "episodes", ignore=shutil.ignore_patterns("transcript.json"))
        shutil.copy(REPO / "archive.toml", folder / "archive.toml")
        shutil.copy(REPO / "cover.png", folder / "cover.png")
        runs[label] = (folder, code)
    took = timed(runs, repeat)
    ratios["bundled"] = [now / before for before, now in zip(took["before"], took["now"])]
    for label, rounds in took.items():
        print(f"bundled    {label:6} {min(rounds):7.1f} s wall", flush=True)
    print()
    for name, each in ratios.items():
        ratio = float(np.median(each))
        print(f"time now / before, {name:9}: {ratio:.2f} ({100 * (ratio - 1):+.0f} %)   "
              f"rounds: {', '.join(f'{r:.2f}' for r in each)}")


def print_row(row) -> None:
    name, label, seconds, took, scores, gaps = row
    quiet = "—" if scores["quiet"] is None else f"{scores['quiet']:.2f}"
    print(f"{name:10} {label:6} {seconds / 60:5.1f} min  {took:7.1f} s wall  "
          f"WER {scores['wer']:.3f} (clips alone {scores['alone']:.3f})  "
          f"gaps {len(gaps)}\n{'':17} coverage of the reference: lowest {scores['lowest']:.2f} "
          f"({scores['lowest_clip']}), clips < 0.9: {scores['below_09']}/{scores['clips']}, quiet clip {quiet}"
          f"\n{'':17} of the clip alone: lowest {scores['lowest_kept']:.2f} ({scores['lowest_kept_clip']}), "
          f"clips < 0.9: {scores['kept_below_09']}/{scores['clips']}", flush=True)


if __name__ == "__main__":
    main()
