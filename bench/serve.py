"""Benchmark `podarchive serve` under load: 32 clients on loopback against a 100k-segment archive.

    .venv/bin/python bench/serve.py [--segments 100000] [--clients 32] [--seconds 20] [--seed 1]

The archive is bench/search.py's (same corpus, same index, each episode with its
episode.toml, so the gate is asked as in production), plus a feed/ of plain pages: the
home page, each episode's page and its transcript.vtt. The server runs in its own
process; each client is a thread with one keep-alive connection that sends a mix of
requests for the whole time: result pages for phrases and words of the archive,
/api/search, the home page, episode pages and transcripts. Any answer but 200 is an
error. Target: p99 under 250 ms, and no error.
"""

from __future__ import annotations

import argparse
import http.client
import importlib.util
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Python puts this script's folder first on the path, where bench/pipeline.py would
# shadow the pipeline package itself.
sys.path = [entry for entry in sys.path if Path(entry or ".").resolve() != HERE]

from pipeline import layout
from pipeline.embedded_model import usable_cores
from pipeline.formats import timestamp
from pipeline.search import WhooshEngine


def _bench_search():
    spec = importlib.util.spec_from_file_location("bench_search", HERE / "search.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bench_search = _bench_search()

P99_TARGET_MS = 250.0
# How often each kind of request is sent, in parts of the whole.
MIX = {"search phrase": 20, "search word": 15, "api search": 20, "home": 10, "episode page": 20,
       "transcript": 15}


def archive_episodes(segments: int, rng: random.Random) -> list[list]:
    """bench/search.py's episodes: the same ``rng`` gives the same ones."""
    corpus = bench_search.Corpus(rng)
    count = max(1, segments // bench_search.SEGMENTS_PER_EPISODE)
    return [corpus.episode(f"episode-{n:04d}", bench_search.SEGMENTS_PER_EPISODE) for n in range(count)]


def build_archive(root: Path, episodes: list[list]) -> None:
    """bench/search.py's archive of ``episodes`` in ``root``, and a feed/ of plain pages for it."""
    (root / "archive.toml").write_text(
        'title = "Bench"\ndescription = "A synthetic archive"\nauthor = "bench"\nlanguage = "en"\n'
        'base_url = "https://example.org/bench/"\n', "utf-8")
    engine = WhooshEngine(layout.engine_dir(root), create=True)
    try:
        bench_search.index_episodes(root, engine, episodes)
    finally:
        engine.close()
    feed = layout.feed_dir(root)
    feed.mkdir()
    (feed / "feed.xml").write_text(
        "<?xml version='1.0' encoding='UTF-8'?>\n<rss version=\"2.0\"><channel><title>Bench</title>"
        "<language>en</language></channel></rss>\n", "utf-8")
    items = "".join(f'<li><a href="episodes/{d[0].episode}/">{d[0].title}</a></li>\n' for d in episodes)
    (feed / "index.html").write_text(f"<!DOCTYPE html><title>Bench</title><ol>{items}</ol>\n", "utf-8")
    for documents in episodes:
        folder = layout.episode_dir(root, documents[0].episode)
        folder.mkdir(parents=True)
        text = "".join(f'<p id="s{d.segment}">{d.text}</p>\n' for d in documents)
        (folder / "index.html").write_text(f"<!DOCTYPE html><title>{documents[0].title}</title>{text}", "utf-8")
        cues = "".join(f"\n{timestamp(d.start, '.')} --> {timestamp(d.end, '.')}\n{d.text}\n" for d in documents)
        (folder / "transcript.vtt").write_text("WEBVTT\n" + cues, "utf-8")


def request_paths(episodes: list[list], rng: random.Random) -> dict[str, list[str]]:
    """For each kind of request, the paths a client draws from."""
    phrases = bench_search.phrase_queries(episodes, 500, rng)
    words = [rng.choice(rng.choice(rng.choice(episodes)).text.split()) for _ in range(500)]
    slugs = [documents[0].episode for documents in episodes]

    def search(path: str, query: str) -> str:
        page = rng.choice([1, 1, 1, 2])
        return f"{path}?" + urllib.parse.urlencode({"q": query, "page": page})

    return {
        "search phrase": [search("/search", query) for query in phrases],
        "search word": [search("/search", query) for query in words],
        "api search": [search("/api/search", query) for query in phrases[:250] + words[:250]],
        "home": ["/"],
        "episode page": [f"/episodes/{slug}/" for slug in slugs],
        "transcript": [f"/episodes/{slug}/transcript.vtt" for slug in slugs],
    }


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(root: Path, port: int, workers: int) -> subprocess.Popen:
    server = subprocess.Popen([sys.executable, "-m", "pipeline", "--archive", str(root), "serve", "--port", str(port),
                               "--workers", str(workers)],
                              cwd=HERE.parent, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return server
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the server did not start") from None
            time.sleep(0.1)


class Client(threading.Thread):
    """One keep-alive connection sending requests of the mix until ``until``."""

    def __init__(self, port: int, paths: dict[str, list[str]], until: float, seed: int):
        super().__init__(daemon=True)
        self.port, self.paths, self.until = port, paths, until
        self.rng = random.Random(seed)
        self.results: list[tuple[str, float, bool]] = []  # kind, milliseconds, answered 200

    def run(self) -> None:
        kinds, weights = list(MIX), list(MIX.values())
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        while time.monotonic() < self.until:
            kind = self.rng.choices(kinds, weights)[0]
            path = self.rng.choice(self.paths[kind])
            began = time.perf_counter()
            try:
                connection.request("GET", path)
                answer = connection.getresponse()
                answer.read()
                ok = answer.status == 200
            except (OSError, http.client.HTTPException):
                ok = False
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            self.results.append((kind, (time.perf_counter() - began) * 1000, ok))
        connection.close()


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def report(results: list[tuple[str, float, bool]], seconds: float) -> None:
    print(f"{'kind':<15}{'requests':>9}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'errors':>8}")
    for kind in [*MIX, "all"]:
        chosen = [(ms, ok) for name, ms, ok in results if kind in (name, "all")]
        times = [ms for ms, _ in chosen]
        errors = sum(not ok for _, ok in chosen)
        print(f"{kind:<15}{len(chosen):>9}{len(chosen) / seconds:>9.1f}{statistics.median(times):>9.1f}"
              f"{percentile(times, 0.99):>9.1f}{max(times):>9.1f}{errors:>8}")
    times = [ms for _, ms, _ in results]
    errors = sum(not ok for _, _, ok in results)
    p99 = percentile(times, 0.99)
    print(f"p99 {p99:.1f} ms: {p99 / P99_TARGET_MS:.2f}x of target < {P99_TARGET_MS:g} ms; "
          f"{errors} error(s) (target: none)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--segments", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=usable_cores(),
                        help="server processes (serve --workers; default, as serve's: one per core)")
    parser.add_argument("--keep", type=Path, help="a folder to build the archive in once, and reuse after")
    args = parser.parse_args()
    rng = random.Random(args.seed)

    with tempfile.TemporaryDirectory() as temporary:
        root = args.keep or Path(temporary)
        began = time.perf_counter()
        episodes = archive_episodes(args.segments, rng)
        made = "reused from an earlier run"
        if not (args.keep and (root / "feed").is_dir()):
            root.mkdir(parents=True, exist_ok=True)
            build_archive(root, episodes)
            made = f"indexed with feed/ written in {time.perf_counter() - began:.1f} s"
        print(f"archive        {sum(map(len, episodes))} segments in {len(episodes)} episodes, {made}")
        paths = request_paths(episodes, rng)
        port = free_port()
        server = start_server(root, port, args.workers)
        try:
            # A few of each first, on connections of their own (each process answers some):
            # the index opened, the gate read, as a server that has run a while.
            for _ in range(4 * args.workers):
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                for kind in MIX:
                    connection.request("GET", paths[kind][0])
                    connection.getresponse().read()
                connection.close()
            until = time.monotonic() + args.seconds
            clients = [Client(port, paths, until, args.seed + n) for n in range(args.clients)]
            began = time.monotonic()
            for client in clients:
                client.start()
            for client in clients:
                client.join()
            elapsed = time.monotonic() - began
        finally:
            server.terminate()
            server.wait(10)
        print(f"load           {args.clients} clients, {args.workers} server process(es), keep-alive, for {elapsed:.1f} s on loopback")
        report([result for client in clients for result in client.results], elapsed)


if __name__ == "__main__":
    main()
