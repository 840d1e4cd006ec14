"""Benchmark search on a synthetic archive: build, repeated and cold searches, increments.

    .venv/bin/python bench/search.py [--segments 100000] [--queries 200] [--seed 1]

Segments of 10 to 25 words are drawn from a French and an English vocabulary with a
Zipf-like word distribution (a few hundred episodes, each in one language, each with its
own episode.toml in a temporary archive) and indexed through the same engine the
pipeline uses. Searches go through ``pipeline.search.search``, as the CLI, a script or
the server call it: the gate is asked for every hit. Query kinds: phrases of 2 to 4
consecutive words of indexed segments (each has hits); words of indexed segments (so
common words come up as often as they are said); theme words, found in about 4 % of the
segments; and words found nowhere. A repeated call reuses the open index and gate of
the calls before; the cold open is a process's first search.
"""

from __future__ import annotations

import argparse
import collections
import io
import itertools
import random
import statistics
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

# Python puts this script's folder first on the path, where bench/pipeline.py would
# shadow the pipeline package itself.
sys.path = [entry for entry in sys.path if Path(entry or ".").resolve() != Path(__file__).resolve().parent]

from pipeline import audit, layout
from pipeline import search as search_module
from pipeline.archive import load_archive
from pipeline.privacy import consent_key
from pipeline.redaction import Matcher, pieces
from pipeline.search import Indexed, SegmentDocument, WhooshEngine, documents_digest, search

# Repeated calls: p99 of every query kind, p50 of phrases.
P99_TARGET_MS, PHRASE_P50_TARGET_MS = 50.0, 5.0
# A theme word is found in this share of the segments.
THEME_SHARE = (0.035, 0.045)
INCREMENTAL_TARGET_S = 2.0
SEGMENTS_PER_EPISODE = 200
INCREMENTAL_SEGMENTS = 500
VOCABULARY_SIZE = 30_000  # distinct words per language
WORD_SECONDS = 0.35

# The most frequent words of each language, most frequent first; rarer words are made up.
COMMON = {
    "en": "the of and to a in that is was it for on you he be with as by at have are this not "
          "but had his they from she which or we an there her were one do been all their has "
          "would will what if can when so no said who more about up them some could him into "
          "its then two out time like only my did other me your now over just may these new "
          "also people any know very see first well after should than where most way back "
          "work country years think government music women singer running connection world "
          "city life story school family history water forest river voice question",
    "fr": "de la le et les des en un une du est que il dans qui pour pas au sur ne se plus par "
          "ce avec elle sont a ils on mais nous comme ou être été fait son sa je tout vous "
          "aussi bien cette ont très leur deux même où sans peut entre après autres faire "
          "temps avant encore chez ans depuis quand pays vie travail monde histoire femmes "
          "chanteuse libération forêts rivière école famille ville question voix été "
          "général conseiller consulat eaux travaillé équipe technologies langues",
}
SYLLABLES = {
    "en": "ba be bi bo bu ca co da de di do fa fe fi ga go ha he hi ka la le li lo lu ma me "
          "mi mo na ne no pa pe pi po ra re ri ro sa se si so ta te ti to va ve vi wa we wi "
          "ing er ed tion ly ness",
    "fr": "ba bé bi bo ca cé co da dé di do fa fé fi ga gé go la lé li lo ma mé mi mo na né "
          "ni no pa pé pi po ra ré ri ro sa sé si so ta té ti to va vé vi ment tion eur euse "
          "ée ès ais ait ons ez",
}


def vocabulary(language: str, rng: random.Random) -> list[str]:
    words = list(dict.fromkeys(COMMON[language].split()))
    seen = set(words)
    while len(words) < VOCABULARY_SIZE:
        word = "".join(rng.choices(SYLLABLES[language].split(), k=rng.randint(2, 4)))
        if word not in seen:
            seen.add(word)
            words.append(word)
    return words


def zipf_weights(size: int) -> list[float]:
    """Zipf-Mandelbrot cumulative weights: rank r has weight 1 / (r + 2.7)."""
    return list(itertools.accumulate(1.0 / (rank + 2.7) for rank in range(size)))


class Corpus:
    """Episodes of synthetic segments, each episode in one language."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.words = {language: vocabulary(language, rng) for language in COMMON}
        self.weights = zipf_weights(VOCABULARY_SIZE)

    def episode(self, slug: str, segments: int) -> list[SegmentDocument]:
        language = self.rng.choice(sorted(COMMON))
        speakers = [f"Speaker {n}" for n in range(self.rng.randint(1, 3))]
        documents, clock = [], 0.0
        for number in range(segments):
            size = self.rng.randint(10, 25)
            texts = self.rng.choices(self.words[language], cum_weights=self.weights, k=size)
            words = tuple((text, clock + n * WORD_SECONDS, clock + (n + 1) * WORD_SECONDS - 0.05)
                          for n, text in enumerate(texts))
            documents.append(SegmentDocument(
                episode=slug, title=f"Episode {slug}", date="2025-01-01", segment=number,
                start=clock, end=words[-1][2], speaker=self.rng.choice(speakers),
                language=language, text=" ".join(texts), words=words))
            clock = words[-1][2] + 0.5
        return documents


def folder_size(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def silence_wav() -> bytes:
    """A tenth of a second of silence: the recording each episode.toml must name."""
    data = io.BytesIO()
    with wave.open(data, "wb") as recording:
        recording.setnchannels(1)
        recording.setsampwidth(2)
        recording.setframerate(16_000)
        recording.writeframes(b"\0\0" * 1600)
    return data.getvalue()


def write_episode_folder(root: Path, documents: list[SegmentDocument]) -> None:
    """The episode.toml (and a stand-in recording) the gate reads for one episode."""
    first = documents[0]
    folder = root / "episodes" / first.episode
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "audio.wav").write_bytes(silence_wav())
    (folder / "episode.toml").write_text(
        f'title = "{first.title}"\ndate = {first.date}\naudio = "audio.wav"\nlanguage = "{first.language}"\n',
        "utf-8")


def index_episodes(root: Path, engine: WhooshEngine, episodes: list[list[SegmentDocument]]) -> None:
    """Index ``episodes`` as `index` would, each recorded with the consent key the gate expects."""
    for documents in episodes:
        write_episode_folder(root, documents)
    archive = {episode.slug: episode for episode in load_archive(root).episodes}
    with engine.writing() as batch:
        for documents in episodes:
            slug = documents[0].episode
            made_from = Indexed(documents_digest(documents), "", consent_key(archive[slug], []))
            batch.replace_episode(slug, made_from, documents)


def phrase_queries(episodes: list[list[SegmentDocument]], count: int, rng: random.Random) -> list[str]:
    queries = []
    for _ in range(count):
        document = rng.choice(rng.choice(episodes))
        words = document.text.split()
        size = rng.randint(2, 4)
        first = rng.randrange(len(words) - size + 1)
        queries.append('"' + " ".join(words[first:first + size]) + '"')
    return queries


def theme_words(episodes: list[list[SegmentDocument]]) -> list[str]:
    """Words found in THEME_SHARE of the segments, as a story's subject is."""
    found_in = collections.Counter(word for documents in episodes for document in documents
                                   for word in set(document.text.split()))
    total = sum(len(documents) for documents in episodes)
    low, high = THEME_SHARE
    return sorted(word for word, count in found_in.items() if low <= count / total <= high)


def latencies_ms(root: Path, queries: list[str]) -> tuple[list[float], int]:
    """Each query's latency (ms) through search(), and how many queries found nothing."""
    for query in queries[:5]:  # warm the stemmer caches
        search(root, query)
    times, empty = [], 0
    for query in queries:
        began = time.perf_counter()
        hits = search(root, query, limit=10)
        times.append((time.perf_counter() - began) * 1000)
        empty += not hits
    return times, empty


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def report(name: str, times: list[float], empty: int) -> None:
    p50, p99 = statistics.median(times), percentile(times, 0.99)
    targets = [f"p99 {p99 / P99_TARGET_MS:.2f}x of target < {P99_TARGET_MS:g} ms"]
    if name.startswith("phrase"):
        targets.insert(0, f"p50 {p50 / PHRASE_P50_TARGET_MS:.2f}x of target < {PHRASE_P50_TARGET_MS:g} ms")
    print(f"{name:<14} p50 {p50:7.2f} ms   p99 {p99:7.2f} ms   max {max(times):7.2f} ms   [{', '.join(targets)}]"
          + (f"   ({empty} of {len(times)} found nothing)" if empty else ""))


def cold_search_ms(root: Path, query: str) -> float:
    """A process's first search (a CLI search): the archive read, the index opened, one
    query answered; Python's start and imports aside."""
    child = ("import sys, time\nfrom pipeline.search import search\nbegan = time.perf_counter()\n"
             "search(sys.argv[1], sys.argv[2])\nprint((time.perf_counter() - began) * 1000)\n")
    finished = subprocess.run([sys.executable, "-c", child, str(root), query], cwd=Path(__file__).parent.parent,
                              capture_output=True, text=True, check=True)
    return float(finished.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--segments", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    corpus = Corpus(rng)

    began = time.perf_counter()
    count = max(1, args.segments // SEGMENTS_PER_EPISODE)
    episodes = [corpus.episode(f"episode-{n:04d}", SEGMENTS_PER_EPISODE) for n in range(count)]
    total = sum(len(documents) for documents in episodes)
    print(f"corpus         {total} segments in {count} episodes, "
          f"{sum(len(d.words) for e in episodes for d in e)} words "
          f"(generated in {time.perf_counter() - began:.1f} s)")

    with tempfile.TemporaryDirectory() as temporary:
        root = Path(temporary)
        (root / "archive.toml").write_text(
            'title = "Bench"\ndescription = "A synthetic archive"\nauthor = "bench"\nlanguage = "en"\n'
            'base_url = "https://example.org/bench/"\n', "utf-8")
        engine = WhooshEngine(layout.engine_dir(root), create=True)
        began = time.perf_counter()
        index_episodes(root, engine, episodes)
        build = time.perf_counter() - began
        size = folder_size(root / "index")
        print(f"build          {build:.1f} s ({total / build:.0f} segments/s), "
              f"{size / 2**20:.1f} MiB on disk ({size / total:.0f} bytes/segment)")

        themes = theme_words(episodes)
        kinds = {
            "phrase": phrase_queries(episodes, args.queries, rng),
            "word": [rng.choice(rng.choice(rng.choice(episodes)).text.split()) for _ in range(args.queries)],
            "theme word": [rng.choice(themes) for _ in range(args.queries)],
            "no hit": [f"zq{n}xv" for n in range(args.queries)],
        }
        print(f"theme words    {len(themes)} words each in {THEME_SHARE[0]:.1%} to {THEME_SHARE[1]:.1%} "
              f"of the segments, e.g. {', '.join(themes[:3])}")
        for kind, queries in kinds.items():
            cold = [cold_search_ms(root, query) for query in queries[:3]]
            print(f"cold {kind:<9} {statistics.median(cold):7.1f} ms (median of 3): a process's first "
                  "search() reads the archive and opens the index")
        for kind, queries in kinds.items():
            report(kind, *latencies_ms(root, queries))

        extra = corpus.episode("episode-extra", INCREMENTAL_SEGMENTS)
        began = time.perf_counter()
        index_episodes(root, engine, [extra])
        added = time.perf_counter() - began
        print(f"incremental    {INCREMENTAL_SEGMENTS}-segment episode added in {added:.2f} s "
              f"[{added / INCREMENTAL_TARGET_S:.2f}x of target < {INCREMENTAL_TARGET_S:g} s]")
        after = phrase_queries([extra], args.queries, rng)
        report("phrase after", *latencies_ms(root, after))

        corrected = corpus.episode(episodes[1][0].episode, SEGMENTS_PER_EPISODE)
        began = time.perf_counter()
        index_episodes(root, engine, [corrected])
        print(f"correction     a {SEGMENTS_PER_EPISODE}-segment episode re-indexed in "
              f"{time.perf_counter() - began:.2f} s (its old documents deleted as whoosh does)")
        began = time.perf_counter()
        with engine.writing(expunge=True) as batch:
            batch.remove_episode(episodes[0][0].episode)
        withdrawn = time.perf_counter() - began
        print(f"withdrawal     a {SEGMENTS_PER_EPISODE}-segment episode removed for consent in "
              f"{withdrawn:.1f} s: every segment file that held deleted documents written anew "
              f"({total + INCREMENTAL_SEGMENTS} documents)")
        engine.close()
        search_module.forget_open_archives()

        # check's privacy audit reads every term and stored document: a planted passage is found.
        planted = tuple(piece.folded for piece in pieces(episodes[2][7].text))[:audit.SEQUENCE_WORDS]
        reader = audit.Reader(Matcher(["Célestine Dupré", "Marie Tremblay"]), {planted: "planted"}, [])
        began = time.perf_counter()
        found = {finding for findings in audit.scan(root, lambda: reader).values() for finding in findings}
        print(f"audit          check read the index in {time.perf_counter() - began:.1f} s "
              f"and found {sorted(found)}")


if __name__ == "__main__":
    main()
