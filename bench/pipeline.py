"""The time of each stage of `podarchive run` on the bundled archive, and of a no-op re-run;
with --episodes N, the same commands on a large synthetic archive.

    python bench/pipeline.py [--episodes 2000 [--segments 50] [--keep DIR]]

Works on a fresh copy of the bundled archive (nothing transcribed yet); each stage is
timed through the library in this process, then `podarchive run` is timed again as a
user runs it (a new process: imports included) when nothing has changed.

With --episodes, an archive of N published episodes (bench/search.py's synthetic
segments, as transcript.json files the current code takes as up to date, each over the
same 20-second recording) is published once, then timed as a user meets it: a run with
nothing changed, `check`, a run after adding one short real episode (transcribed) and
`check` right after it.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Python puts this script's folder first on the path, where bench/pipeline.py would
# shadow the pipeline package itself.
sys.path = [entry for entry in sys.path if Path(entry or ".").resolve() != Path(__file__).resolve().parent]

from pipeline import align, build, feed, formats, privacy, search, transcribe
from pipeline.archive import load_archive
from pipeline.embedded_model import Placement, model_identity, resolve_model
from pipeline.model import Segment, Transcript, Word
from pipeline.storage import sha256_file
from pipeline.timing import WORD_TIMING, WORD_TIMING_METHOD

# bench/search.py's synthetic segments (this folder is off the path: see above).
_spec = importlib.util.spec_from_file_location("bench_search", Path(__file__).resolve().parent / "search.py")
bench_search = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_search)

RECORDING_SECONDS = 20.0

REPO = Path(__file__).resolve().parent.parent


def stages(archive):
    """The stages of `run`, in order, as (name, thunk); the gate's view is made after align."""
    views = []

    def gate():
        views.append(privacy.public_view(archive))
        return views[-1].report

    return [
        ("transcribe", lambda: transcribe.transcribe_archive(archive, archive.episodes)),
        ("align", lambda: align.align_archive(archive.episodes)),
        ("gate", gate),
        ("withdraw", lambda: [*formats.withdraw_folders(views[-1]), *feed.withdraw(views[-1]),
                              *search.withdraw_from_index(views[-1])]),
        ("render", lambda: formats.render_archive(views[-1])),
        ("index", lambda: search.index_archive(views[-1])),
        ("feed", lambda: feed.publish_archive(views[-1])),
    ]


def synthetic_archive(root: Path, count: int, segments: int, rng: random.Random) -> None:
    """``count`` published-ready episodes of ``segments`` synthetic segments each."""
    (root / "episodes").mkdir(parents=True)
    shutil.copy(REPO / "archive.toml", root)
    shutil.copy(REPO / "cover.png", root)
    recording = root / "tone.mp3"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i",
                    f"sine=frequency=220:duration={RECORDING_SECONDS}", "-af", "volume=-30dB", "-ac", "1",
                    "-b:a", "32k", str(recording)], check=True)
    audio_sha256 = sha256_file(recording)
    corpus = bench_search.Corpus(rng)
    options = None
    for n in range(count):
        slug = f"episode-{n:04d}"
        documents = corpus.episode(slug, segments)
        folder = root / "episodes" / slug
        folder.mkdir()
        shutil.copy(recording, folder / "audio.mp3")
        (folder / "episode.toml").write_text(
            f'title = "Episode {n}"\ndate = 2025-01-01\naudio = "audio.mp3"\nlanguage = "{documents[0].language}"\n',
            "utf-8")
        if options is None:  # what the current code records: it takes these transcripts as up to date
            archive = load_archive(root)
            options = transcribe.decoding_options(archive, archive.episodes[0], transcribe.DEFAULT_OPTIONS, Placement()).recorded()
        scale = (RECORDING_SECONDS - 1) / documents[-1].end
        transcript = Transcript(
            slug, documents[0].language, RECORDING_SECONDS, model_identity(None),
            {**options, "language": documents[0].language, WORD_TIMING: WORD_TIMING_METHOD}, audio_sha256,
            [Segment(d.segment, round(d.start * scale, 3), round(d.end * scale, 3), d.text, d.speaker, d.language,
                     [Word(text, round(start * scale, 3), round(end * scale, 3), 0.9) for text, start, end in d.words])
             for d in documents])
        transcript.timing_sha256 = transcript.words_digest()
        (folder / "transcript.json").write_text(json.dumps(transcript.to_json(), ensure_ascii=False), "utf-8")
    recording.unlink()


def timed_command(root: Path, *command: str) -> float:
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "pipeline", "--archive", str(root), *command], check=True,
                   capture_output=True, cwd=REPO)
    return time.monotonic() - started


def large(count: int, segments: int, keep: Path | None) -> None:
    """The commands a producer of a large archive meets, timed."""
    with tempfile.TemporaryDirectory(prefix="podarchive-bench-") as scratch:
        root = (keep or Path(scratch)) / "archive"
        if not (root / "feed" / "feed.xml").exists():
            shutil.rmtree(root, ignore_errors=True)
            synthetic_archive(root, count, segments, random.Random(7))
            print(f"synthetic archive: {count} episodes, {count * segments} segments", flush=True)
            print(f"first publication     {timed_command(root, 'run'):8.1f} s", flush=True)
        print(f"no-op run             {timed_command(root, 'run'):8.1f} s   (target < 5 s)", flush=True)
        print(f"check                 {timed_command(root, 'check'):8.1f} s   (target < 10 s)", flush=True)
        added = root / "episodes" / "added-short-episode"
        shutil.rmtree(added, ignore_errors=True)
        shutil.copytree(REPO / "episodes" / "kennedy-inaugural-1961", added,
                        ignore=shutil.ignore_patterns("transcript.json"))
        (added / "episode.toml").write_text(
            (added / "episode.toml").read_text("utf-8").replace("guid", "# guid"), "utf-8")
        print(f"run, one episode added {timed_command(root, 'run'):7.1f} s   (target < 60 s)", flush=True)
        print(f"check after that run  {timed_command(root, 'check'):8.1f} s   (target < 10 s)", flush=True)
        shutil.rmtree(added)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--episodes", type=int, help="time a synthetic archive of this many episodes instead")
    parser.add_argument("--segments", type=int, default=50, help="segments in each synthetic episode")
    parser.add_argument("--keep", type=Path, help="build (or reuse) the synthetic archive in this folder")
    arguments = parser.parse_args()
    if arguments.episodes:
        resolve_model(None)
        large(arguments.episodes, arguments.segments, arguments.keep)
        return
    resolve_model(None)  # the embedded model is joined once, outside the timings
    with tempfile.TemporaryDirectory(prefix="podarchive-bench-") as scratch:
        root = Path(scratch) / "archive"
        (root / "episodes").mkdir(parents=True)
        shutil.copy(REPO / "archive.toml", root)
        shutil.copy(REPO / "cover.png", root)
        for episode in sorted((REPO / "episodes").iterdir()):
            if episode.is_dir():
                shutil.copytree(episode, root / "episodes" / episode.name,
                                ignore=shutil.ignore_patterns("transcript.json"))
        archive = load_archive(root)
        print(f"bundled archive: {len(archive.episodes)} episodes\n")
        print(f"{'stage':12} {'seconds':>8}")
        total = 0.0
        with build.locked(root):
            for name, step in stages(archive):
                started = time.monotonic()
                outcomes = step()
                seconds = time.monotonic() - started
                total += seconds
                failed = [o for o in outcomes if o.status == "failed"]
                print(f"{name:12} {seconds:8.2f}" + (f"   {len(failed)} failed" if failed else ""))
        print(f"{'all':12} {total:8.2f}")
        started = time.monotonic()
        subprocess.run([sys.executable, "-m", "pipeline", "--archive", str(root), "run"],
                       check=True, capture_output=True)
        again = time.monotonic() - started
        print(f"\nno-op `podarchive run` (new process, nothing changed): {again:.2f} s (target < 2 s)")


if __name__ == "__main__":
    main()
