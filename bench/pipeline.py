"""The time of each stage of `podarchive run` on the bundled archive, and of a no-op re-run.

    python bench/pipeline.py

Works on a fresh copy of the bundled archive (nothing transcribed yet); each stage is
timed through the library in this process, then `podarchive run` is timed again as a
user runs it (a new process: imports included) when nothing has changed.
"""

from __future__ import annotations

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
from pipeline.embedded_model import resolve_model

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


def main() -> None:
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
