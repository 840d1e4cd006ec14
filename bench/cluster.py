"""Transcription on a Dask cluster: audio hours per wall hour, and what a window costs to schedule.

Assembles a recording of about --minutes (default 20) from the repository's real clips,
French and English alternating (language "auto", as bench/longform.py makes its
bilingual one), and transcribes it with `podarchive transcribe --force`, each run in a
process of its own, model loading and the LocalCluster's start included:

  one process   this machine's cores, no cluster
  1 worker      --workers 1 (a LocalCluster of one single-threaded process)
  2 workers     --workers 2

Then, in this process, the scheduling overhead per window: --windows silent windows of
STRETCH_SECONDS each go through a one-worker LocalCluster one after the other, read from
shared storage and then shipped (--ship-audio); each window's round trip less its
compute time on the worker (Dask's task stream) is what scheduling, transfer and result
costs, per window.

    python bench/cluster.py [--minutes 20] [--windows 20]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy.io import wavfile

# Python puts this script's folder first on the path, where bench/pipeline.py would
# shadow the pipeline package itself; the package is imported first, longform after.
sys.path = [entry for entry in sys.path if Path(entry or ".").resolve() != Path(__file__).resolve().parent]

from pipeline.archive import Episode
from pipeline.audio import SAMPLE_RATE
from pipeline.cluster import Recording, decode_on_worker
from pipeline.embedded_model import Asked, Placement
from pipeline.transcribe import DEFAULT_OPTIONS, STRETCH_SECONDS, DecodingOptions, Stretch

sys.path.append(str(Path(__file__).resolve().parent))
from longform import archive_with, bilingual_order, write_recording


def transcribe(folder: Path, *options: str) -> float:
    """Seconds `podarchive transcribe --force OPTIONS` took on ``folder``, in a process of its own."""
    began = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pipeline", "--archive", str(folder), "transcribe", "--force", *options],
                   check=True, capture_output=True, env={**os.environ})
    return time.perf_counter() - began


def scheduling_overhead(work: Path, windows: int) -> dict[str, tuple[float, float]]:
    """Per way of reaching the samples: (median round trip, median worker compute) in s."""
    from distributed import Client, LocalCluster, get_task_stream

    silence = np.zeros(STRETCH_SECONDS * SAMPLE_RATE, np.int16)
    path = work / "silence.wav"
    wavfile.write(path, SAMPLE_RATE, silence)
    episode = Episode(slug="silence", folder=work, title="silence", date=dt.date(2025, 1, 1), audio=path.name)
    stat = path.stat()
    options = DecodingOptions(language="en", beam_size=DEFAULT_OPTIONS.beam_size, placement=Placement(),
                              hotwords=(), channels=())
    stretch = Stretch(0, 0, len(silence))
    found = {}
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        client.submit(decode_on_worker, None, Asked(), client.scatter(silence), stretch, options, 6,
                      pure=False).result()
        for way in ("shared storage", "shipped samples"):
            trips = []
            with get_task_stream(client) as stream:
                for _ in range(windows):
                    began = time.perf_counter()
                    source = (Recording(episode, stat.st_size, stat.st_mtime_ns) if way == "shared storage"
                              else client.scatter(silence, hash=False))
                    client.submit(decode_on_worker, None, Asked(), source, stretch, options, 6,
                                  pure=False).result()
                    trips.append(time.perf_counter() - began)
            computes = [sum(part["stop"] - part["start"] for part in task["startstops"] if part["action"] == "compute")
                        for task in stream.data if str(task["key"]).startswith("decode_on_worker")]
            found[way] = (statistics.median(trips), statistics.median(computes))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--windows", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        recording = work / "long.wav"
        write_recording(bilingual_order(args.minutes, random.Random(17)), recording)
        audio_hours = len(wavfile.read(recording, mmap=True)[1]) / SAMPLE_RATE / 3600
        folder = archive_with(work / "archive", {"long-interview": (recording, "auto")})
        print(f"recording: {audio_hours * 60:.1f} min, French and English (auto), "
              f"{os.cpu_count()} cores here")
        walls = {}
        for label, options in (("one process", ()), ("1 worker", ("--workers", "1")),
                               ("2 workers", ("--workers", "2"))):
            walls[label] = transcribe(folder, *options)
            print(f"  {label:<12} {walls[label]:7.1f} s wall   {audio_hours / (walls[label] / 3600):6.1f} "
                  f"audio hours per wall hour")
        print(f"  2 workers / 1 worker: {walls['1 worker'] / walls['2 workers']:.2f}x as fast; "
              f"2 workers / one process: {walls['one process'] / walls['2 workers']:.2f}x")
        for way, (trip, compute) in scheduling_overhead(work, args.windows).items():
            print(f"scheduling overhead per window ({way}): {1000 * (trip - compute):.0f} ms "
                  f"(round trip {1000 * trip:.0f} ms, worker compute {1000 * compute:.0f} ms, "
                  f"median of {args.windows} silent {STRETCH_SECONDS} s windows)")


if __name__ == "__main__":
    main()
