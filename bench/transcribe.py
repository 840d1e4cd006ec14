"""Transcription speed, memory and accuracy: bare faster-whisper against podarchive.

Times, in one run and each in a process of its own (imports and model loading
included, as a user waits for them), on the bundled recordings, then on one French
recording of about two minutes assembled from them:

  (a) bare WhisperModel.transcribe, faster-whisper's defaults plus word timestamps
  (b) bare BatchedInferencePipeline.transcribe, its defaults plus word timestamps
  (c) `podarchive transcribe --force`, end to end
  (c0) the same with the episodes' glossaries emptied: the decoding options of (a), (b)

all with the embedded whisper base model, int8. Prints wall time, real-time factor,
peak memory (the process's maximum resident set) and word error rate, the ratios
(a)/(c) and (b)/(c), and what timing the words on the sound adds to (c), on these and on
an English recording of about seven minutes (where the acoustic model places every
word). `--hour` adds a one-hour recording through (c) alone, for memory.

    python bench/transcribe.py [--hour]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jiwer

# Python puts this script's folder first on the path, where bench/pipeline.py would
# shadow the pipeline package itself.
sys.path = [entry for entry in sys.path if Path(entry or ".").resolve() != Path(__file__).resolve().parent]

REPO = Path(__file__).resolve().parent.parent
REFERENCES = REPO / "tests" / "data" / "references"
LONG_SLUG = "long-french-assembled"
ENGLISH_SLUG = "long-english-assembled"
ENGLISH_HALF_ENDS = 29.5  # multilingual.mp3: the reference covers its English first half
# episode -> reference transcript(s); the stereo episode's two voices overlap, so its
# words have no single order to score: it is timed, not scored.
REFERENCE_FILES = {
    "kennedy-inaugural-1961": ["jfk.txt"],
    "conservateur-des-eaux-et-forets": ["leopard-fr.txt"],
    "eric-joanis-readalongs": ["ej-fra.txt"],
    "mit-licence-en-de": ["multilingual.en.txt"],
    LONG_SLUG: ["ej-fra.txt", "leopard-fr.txt"] * 3,
}


def normalise(text: str) -> str:
    text = text.lower().replace("\u2019", "'")
    return " ".join(re.sub(r"[^\w\s]", " ", text).split())


GLOSSARY = '["Éric Joanis", "CNRC", "Nunavut", "inuktitut", "hansard", "ReadAlong-Studio"]'
FRENCH_PIECES = [REPO / "episodes/eric-joanis-readalongs/ej-fra.m4a",
                 REPO / "episodes/conservateur-des-eaux-et-forets/leopard-fr.wav"] * 3


def empty_archive(folder: Path) -> Path:
    (folder / "episodes").mkdir(parents=True)
    shutil.copy(REPO / "archive.toml", folder / "archive.toml")
    shutil.copy(REPO / "cover.png", folder / "cover.png")
    return folder


def clips_archive(folder: Path) -> list[dict]:
    """A copy of the bundled archive (its short recordings); its manifest."""
    empty_archive(folder)
    for episode in sorted((REPO / "episodes").iterdir()):
        if episode.is_dir():
            shutil.copytree(episode, folder / "episodes" / episode.name,
                            ignore=shutil.ignore_patterns("transcript.json"))
    return manifest_of(folder)


def long_archive(folder: Path) -> list[dict]:
    """One French recording of about two minutes assembled from the bundled ones."""
    empty_archive(folder)
    add_assembled_episode(folder, LONG_SLUG, FRENCH_PIECES)
    return manifest_of(folder)


def add_assembled_episode(archive: Path, slug: str, pieces: list[Path]) -> None:
    folder = archive / "episodes" / slug
    assemble(folder / "recording.flac", pieces)
    (folder / "episode.toml").write_text(
        f'title = "{slug}"\ndate = 2025-06-01\nlanguage = "fr"\naudio = "recording.flac"\n'
        f"glossary = {GLOSSARY}\n", "utf-8")


def manifest_of(folder: Path) -> list[dict]:
    manifest = []
    for episode_toml in sorted((folder / "episodes").glob("*/episode.toml")):
        text = episode_toml.read_text("utf-8")
        audio = re.search(r'^audio = "(.+)"', text, re.MULTILINE).group(1)
        language = re.search(r'^language = "(.+)"', text, re.MULTILINE).group(1)
        manifest.append({"slug": episode_toml.parent.name, "audio": str(episode_toml.parent / audio),
                         "language": None if language == "auto" else language})
    return manifest


def assemble(target: Path, pieces: list[Path]) -> None:
    """Join recordings, one second of silence apart, as 16 kHz mono FLAC."""
    target.parent.mkdir(parents=True, exist_ok=True)
    inputs = [argument for piece in pieces for argument in ("-i", str(piece))]
    chain = "".join(f"[{n}:a]aresample=16000,aformat=channel_layouts=mono,apad=pad_dur=1[p{n}];"
                    for n in range(len(pieces)))
    joined = "".join(f"[p{n}]" for n in range(len(pieces)))
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", *inputs, "-filter_complex",
                    f"{chain}{joined}concat=n={len(pieces)}:v=0:a=1", str(target)], check=True)


def worker(kind: str, manifest_path: Path, output: Path) -> None:
    """Run in a child process: bare faster-whisper over every recording of the manifest."""
    from faster_whisper import BatchedInferencePipeline, WhisperModel

    from pipeline.embedded_model import resolve_model

    model = WhisperModel(resolve_model(None), device="cpu", compute_type="int8")
    engine = BatchedInferencePipeline(model) if kind == "batched" else model
    results = {}
    for item in json.loads(manifest_path.read_text()):
        segments, _info = engine.transcribe(item["audio"], language=item["language"], word_timestamps=True)
        results[item["slug"]] = [[w.word, w.start] for s in segments for w in (s.words or [])]
    output.write_text(json.dumps(results))


def timing_worker(archive: Path, output: Path) -> None:
    """(c) in this process, with English words placed by the acoustic model and without,
    in turns (the fastest of two runs each), and the seconds the refinement on the sound
    took in a run without: what word timing adds to transcription."""
    from pipeline import acoustic, transcribe
    from pipeline.cli import cli

    spent = 0.0
    refine = transcribe._on_pauses

    def counted(*arguments):
        nonlocal spent
        began = time.perf_counter()
        result = refine(*arguments)
        spent += time.perf_counter() - began
        return result

    languages = acoustic.LANGUAGES
    runs: dict[bool, list[float]] = {True: [], False: []}
    refining = []
    for placed in (True, False) * 2:
        acoustic.LANGUAGES = languages if placed else frozenset()
        transcribe._on_pauses = counted
        spent = 0.0
        began = time.perf_counter()
        cli(["--archive", str(archive), "transcribe", "--force"], standalone_mode=False)
        runs[placed].append(time.perf_counter() - began)
        if not placed:
            refining.append(spent)
    output.write_text(json.dumps({"with": min(runs[True]), "without": min(runs[False]),
                                  "refining": min(refining)}))


def measure(command: list[str], env: dict) -> tuple[float, float]:
    """(wall seconds, peak resident memory in MiB) of one child process."""
    started = time.monotonic()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
    _pid, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"failed: {' '.join(command)}")
    return time.monotonic() - started, usage.ru_maxrss / 1024


def podarchive_words(archive: Path) -> dict[str, list]:
    words = {}
    for path in sorted((archive / "episodes").glob("*/transcript.json")):
        data = json.loads(path.read_text("utf-8"))
        words[path.parent.name] = [[w["text"], w["start"]] for s in data["segments"] for w in s["words"]]
    return words


def word_error_rates(words: dict[str, list]) -> tuple[dict[str, float], float]:
    """Per episode, and pooled over every scored word."""
    per_episode, errors, total = {}, 0.0, 0
    for slug, names in REFERENCE_FILES.items():
        if slug not in words:
            continue
        reference = normalise(" ".join((REFERENCES / name).read_text("utf-8") for name in names))
        said = [text for text, start in words.get(slug, [])
                if slug != "mit-licence-en-de" or start < ENGLISH_HALF_ENDS]
        rate = jiwer.wer(reference, normalise(" ".join(said)))
        per_episode[slug] = rate
        errors += rate * len(reference.split())
        total += len(reference.split())
    return per_episode, errors / total


def audio_seconds(manifest: list[dict]) -> float:
    sys.path.insert(0, str(REPO))
    from pipeline.audio import probe

    return sum(probe(Path(item["audio"])).duration for item in manifest)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hour", action="store_true", help="also (c) on a one-hour recording")
    parser.add_argument("--worker", choices=["sequential", "batched", "timing"], help=argparse.SUPPRESS)
    parser.add_argument("--manifest", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--archive", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--output", type=Path, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.worker == "timing":
        timing_worker(options.archive, options.output)
        return
    if options.worker:
        worker(options.worker, options.manifest, options.output)
        return

    env = dict(os.environ)
    join_model = "from pipeline.embedded_model import resolve_model; resolve_model(None)"
    subprocess.run([sys.executable, "-c", join_model], check=True, env=env)  # once, untimed
    print(f"{os.cpu_count()} cores; whisper base, int8; each row is one process, model loading included")
    with tempfile.TemporaryDirectory(prefix="podarchive-bench-") as scratch:
        scratch = Path(scratch)
        for name, build in (("the bundled recordings", clips_archive),
                            ("one recording assembled from them", long_archive)):
            compare(name, scratch / name.replace(" ", "-"), build, env, with_targets=build is long_archive)
        english = scratch / "english"
        seconds = audio_seconds(english_archive(english / "archive"))
        print(f"\none English recording assembled from the clips: {seconds:.1f} s of audio")
        timing_cost(english / "archive", english, env)
        if options.hour:
            hour = empty_archive(scratch / "hour")
            long_recording = (scratch / "one-recording-assembled-from-them" / "archive" / "episodes"
                              / LONG_SLUG / "recording.flac")
            add_assembled_episode(hour, "one-hour", [long_recording] * 28)
            length = audio_seconds(manifest_of(hour))
            wall, memory = measure([sys.executable, "-m", "pipeline", "--archive", str(hour), "transcribe"], env)
            print(f"\none-hour recording ({length / 60:.1f} min) through (c): {wall:.0f} s, "
                  f"RTF {wall / length:.3f}, peak {memory:.0f} MiB (target < 1536 MiB)")


def compare(name: str, folder: Path, build, env: dict, with_targets: bool) -> None:
    """(a), (b) and (c) over one archive, printed as a table with the ratios.

    The speed targets are for the assembled recording: a bundled clip is one or two
    30-second windows, which leaves batching nothing to gain over sequential decoding,
    and podarchive does work there that bare faster-whisper does not (the stereo
    episode is transcribed once per speaker's channel; the code-switching one has its
    language detected in every window).
    """
    manifest = build(folder / "archive")
    (folder / "manifest.json").write_text(json.dumps(manifest))
    seconds = audio_seconds(manifest)
    rows = {}
    for label, kind in (("(a) bare sequential", "sequential"), ("(b) bare batched", "batched")):
        out = folder / f"{kind}.json"
        wall, memory = measure([sys.executable, __file__, "--worker", kind,
                                "--manifest", str(folder / "manifest.json"), "--output", str(out)], env)
        rows[label] = (wall, memory, word_error_rates(json.loads(out.read_text())))
    archive = folder / "archive"
    wall, memory = measure([sys.executable, "-m", "pipeline", "--archive", str(archive),
                            "transcribe", "--force"], env)
    rows["(c) podarchive transcribe"] = (wall, memory, word_error_rates(podarchive_words(archive)))
    # The same without the episodes' glossaries, whose names lengthen every prompt: what
    # podarchive adds around the engine with the very decoding options (a) and (b) use.
    for toml in (archive / "episodes").glob("*/episode.toml"):
        toml.write_text(re.sub(r"^glossary = .*$", "glossary = []", toml.read_text("utf-8"), flags=re.MULTILINE),
                        "utf-8")
    wall, memory = measure([sys.executable, "-m", "pipeline", "--archive", str(archive),
                            "transcribe", "--force"], env)
    rows["(c0) the same, no glossary"] = (wall, memory, word_error_rates(podarchive_words(archive)))

    print(f"\n{name}: {len(manifest)} recording(s), {seconds:.1f} s of audio")
    print(f"{'':28} {'wall s':>7} {'RTF':>6} {'peak MiB':>9} {'WER':>6}   WER per episode")
    for label, (wall, memory, (per_episode, pooled)) in rows.items():
        detail = " ".join(f"{slug.split('-')[0]}={rate:.3f}" for slug, rate in per_episode.items())
        print(f"{label:28} {wall:7.1f} {wall / seconds:6.3f} {memory:9.0f} {pooled:6.3f}   {detail}")
    a, b, c, c0 = (row[0] for row in rows.values())
    wer_a, wer_c = rows["(a) bare sequential"][2][1], rows["(c) podarchive transcribe"][2][1]
    if with_targets:
        print(f"(a)/(c) = {a / c:.2f} (target >= 1.5)   (b)/(c) = {b / c:.2f} (target >= 0.95)   "
              f"WER (c) - WER (a) = {wer_c - wer_a:+.3f} (target <= +0.02)")
    else:
        print(f"(a)/(c) = {a / c:.2f}   (b)/(c) = {b / c:.2f}   WER (c) - WER (a) = {wer_c - wer_a:+.3f}   "
              "(clips of one or two windows: nothing to batch; targets are for the assembled recording)")
    print(f"without glossaries: (a)/(c0) = {a / c0:.2f}   (b)/(c0) = {b / c0:.2f}")
    timing_cost(archive, folder, env)


def timing_cost(archive: Path, folder: Path, env: dict) -> None:
    out = folder / "timing.json"
    subprocess.run([sys.executable, __file__, "--worker", "timing", "--archive", str(archive), "--output", str(out)],
                   check=True, env=env, capture_output=True)
    cost = json.loads(out.read_text())
    alone = cost["without"] - cost["refining"]
    print(f"word timing: {cost['with']:.1f} s transcribing with English words placed by the acoustic model, "
          f"{cost['without']:.1f} s without, {cost['refining']:.2f} s of it refining on the pauses: "
          f"{100 * (cost['with'] - alone) / alone:.1f} % more than transcription alone (target <= 15 %)")


def english_archive(folder: Path) -> list[dict]:
    """One English recording of about seven minutes assembled from the repository's clips (twice over)."""
    empty_archive(folder)
    pieces = [REPO / "episodes/kennedy-inaugural-1961/jfk.flac", REPO / "tests/data/clips/sonnet001.mp3",
              REPO / "tests/data/clips/three-speakers-en.wav",
              *sorted((REPO / "tests/data/word-alignments").glob("*/*.flac"))]
    folder = folder / "episodes" / ENGLISH_SLUG
    assemble(folder / "recording.flac", pieces * 2)
    (folder / "episode.toml").write_text(
        f'title = "{ENGLISH_SLUG}"\ndate = 2025-06-01\nlanguage = "en"\naudio = "recording.flac"\n', "utf-8")
    return manifest_of(folder.parent.parent)


if __name__ == "__main__":
    main()
