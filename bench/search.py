"""Benchmark the search index on a synthetic archive: build, query latency, incremental add.

    .venv/bin/python bench/search.py [--segments 100000] [--queries 200] [--seed 1]

Segments of 10 to 25 words are drawn from a French and an English vocabulary with a
Zipf-like word distribution (a few hundred episodes, each in one language) and indexed
through the same engine the pipeline uses, in a temporary folder. Phrase queries are
2 to 4 consecutive words of indexed segments, so every one has hits; word queries are
words of indexed segments, so common words come up as often as they are said.
Latencies are those of an open engine reusing its searcher, as a long-running server
would; a one-off search also pays the "cold open" time.
"""

from __future__ import annotations

import argparse
import itertools
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

# Python puts this script's folder first on the path, where bench/pipeline.py would
# shadow the pipeline package itself.
sys.path = [entry for entry in sys.path if Path(entry or ".").resolve() != Path(__file__).resolve().parent]

from pipeline import audit
from pipeline.redaction import Matcher, pieces
from pipeline.search import SegmentDocument, WhooshEngine

TARGETS_MS = {"p50 phrase": 5.0, "p99 phrase": 50.0}
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


def phrase_queries(episodes: list[list[SegmentDocument]], count: int, rng: random.Random) -> list[str]:
    queries = []
    for _ in range(count):
        document = rng.choice(rng.choice(episodes))
        words = document.text.split()
        size = rng.randint(2, 4)
        first = rng.randrange(len(words) - size + 1)
        queries.append('"' + " ".join(words[first:first + size]) + '"')
    return queries


def latencies_ms(engine: WhooshEngine, queries: list[str]) -> tuple[list[float], int]:
    """Each query's latency (ms) and how many queries found nothing."""
    for query in queries[:5]:  # warm the searcher and the stemmer caches
        engine.search(query)
    times, empty = [], 0
    for query in queries:
        began = time.perf_counter()
        hits = engine.search(query, limit=10)
        times.append((time.perf_counter() - began) * 1000)
        empty += not hits
    return times, empty


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def report(name: str, times: list[float], empty: int) -> None:
    p50, p99 = statistics.median(times), percentile(times, 0.99)
    line = f"{name:<14} p50 {p50:7.2f} ms   p99 {p99:7.2f} ms   max {max(times):7.2f} ms"
    for label, value in ((f"p50 {name.split()[0]}", p50), (f"p99 {name.split()[0]}", p99)):
        if label in TARGETS_MS:
            target = TARGETS_MS[label]
            line += f"   [{label} {value / target:.2f}x of target < {target:g} ms]"
    if empty:
        line += f"   ({empty} queries found nothing)"
    print(line)


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
        engine = WhooshEngine(Path(temporary) / "index" / "whoosh", create=True)
        began = time.perf_counter()
        with engine.writing() as batch:
            for documents in episodes:
                batch.replace_episode(documents[0].episode, "bench", documents)
        build = time.perf_counter() - began
        size = folder_size(Path(temporary) / "index")
        print(f"build          {build:.1f} s ({total / build:.0f} segments/s), "
              f"{size / 2**20:.1f} MiB on disk ({size / total:.0f} bytes/segment)")

        phrases = phrase_queries(episodes, args.queries, rng)
        words = [rng.choice(rng.choice(rng.choice(episodes)).text.split())
                 for _ in range(args.queries)]
        began = time.perf_counter()
        cold = WhooshEngine(Path(temporary) / "index" / "whoosh")
        cold.search(phrases[0])
        cold.close()
        print(f"cold open      {(time.perf_counter() - began) * 1000:.1f} ms to open the index "
              "and answer one phrase query (what one CLI search pays)")
        report("phrase", *latencies_ms(engine, phrases))
        report("word", *latencies_ms(engine, words))

        extra = corpus.episode("episode-extra", INCREMENTAL_SEGMENTS)
        began = time.perf_counter()
        with engine.writing() as batch:
            batch.replace_episode("episode-extra", "bench", extra)
        added = time.perf_counter() - began
        print(f"incremental    {INCREMENTAL_SEGMENTS}-segment episode added in {added:.2f} s "
              f"[{added / INCREMENTAL_TARGET_S:.2f}x of target < {INCREMENTAL_TARGET_S:g} s]")
        report("phrase after", *latencies_ms(engine, phrase_queries([extra, *episodes], args.queries, rng)))

        corrected = corpus.episode(episodes[1][0].episode, SEGMENTS_PER_EPISODE)
        began = time.perf_counter()
        with engine.writing() as batch:
            batch.replace_episode(corrected[0].episode, "corrected", corrected)
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

        # check's privacy audit reads every term and stored document: a planted passage is found.
        planted = tuple(piece.folded for piece in pieces(episodes[2][7].text))[:audit.SEQUENCE_WORDS]
        reader = audit.Reader(Matcher(["Célestine Dupré", "Marie Tremblay"]), {planted: "planted"}, [])
        began = time.perf_counter()
        found = {finding for findings in audit.scan(Path(temporary), reader).values() for finding in findings}
        print(f"audit          check read the index in {time.perf_counter() - began:.1f} s "
              f"and found {sorted(found)}")


if __name__ == "__main__":
    main()
