import contextlib
import datetime as dt
import gc
import json
import os
import shutil
from pathlib import Path

import pytest
from whoosh import index as whoosh_index
from whoosh import scoring
from whoosh.codec import whoosh3

from pipeline import search as search_module
from pipeline.archive import load_archive
from pipeline.errors import PodarchiveError
from pipeline.layout import ENGINE_DIR
from pipeline.model import Segment, Word
from pipeline.privacy import public_view
from pipeline.search import QueryError, index_archive, search, withdraw_from_index

from conftest import copy_archive, raw_index_bytes, write_transcript

WORD_SECONDS = 0.5
FIRST_WORD_AT = 10.0
FRENCH, ENGLISH, MIXED = "conservateur-des-eaux-et-forets", "kennedy-inaugural-1961", "mit-licence-en-de"
SEGMENTS = {
    FRENCH: [
        ("La libération des chanteuses fut célébrée.", "Anne", "fr"),
        ("Elle travaille avec l'équipe du consulat.", "Anne", "fr"),
        ("Libre est la chanteuse qui chante.", "Anne", "fr"),
        ("Les chanteuses libres arrivent demain.", "Anne", "fr"),
        ("Ce soir une chanteuse libre chante.", "Anne", "fr"),
    ],
    ENGLISH: [
        ("The liberation of Paris came in August.", "John F. Kennedy", "en"),
        ("Our connection to the world runs deep.", "John F. Kennedy", "en"),
        ("And so ask not what your country can do for you.", "John F. Kennedy", "en"),
        ("The country is proud, ask anyone.", "Jacqueline Kennedy", "en"),
    ],
    MIXED: [
        ("Permission is hereby granted to any person.", "", "en"),
        ("Die Befreiung der Sängerinnen war großartig.", "", "de"),
    ],
}


def write_segments(root: Path, slug: str, segments: list[tuple[str, str, str]]) -> None:
    """A transcript whose words are each said for WORD_SECONDS, segments one after another."""
    built, clock = [], FIRST_WORD_AT
    for number, (text, speaker, language) in enumerate(segments):
        words = [Word(word, clock + n * WORD_SECONDS, clock + (n + 1) * WORD_SECONDS - 0.1, 0.9)
                 for n, word in enumerate(text.split())]
        built.append(Segment(number, clock, words[-1].end, text, speaker, language, words))
        clock = words[-1].end + 1.0
    write_transcript(root, slug, built, language=segments[0][2], duration=clock)


def word_start(slug: str, segment: int, word: int) -> float:
    clock = FIRST_WORD_AT
    for text, _, _ in SEGMENTS[slug][:segment]:
        clock += len(text.split()) * WORD_SECONDS - 0.1 + 1.0
    return clock + word * WORD_SECONDS


@pytest.fixture
def archive(tmp_path):
    root = copy_archive(tmp_path / "a", slugs=list(SEGMENTS))
    for slug, segments in SEGMENTS.items():
        write_segments(root, slug, segments)
    outcomes = reindex(root)
    assert {o.slug: o.status for o in outcomes} == dict.fromkeys(SEGMENTS, "indexed")
    return root


def reindex(root: Path, **options) -> list:
    return index_archive(public_view(load_archive(root)), **options)


def texts(root: Path, query: str, **filters) -> list[str]:
    return [hit["text"] for hit in search(root, query, **filters)]


def index_files(root: Path) -> dict[str, tuple[bytes, int]]:
    return {str(path.relative_to(root)): (path.read_bytes(), path.stat().st_mtime_ns)
            for path in sorted((root / "index").rglob("*")) if path.is_file()}


def test_accents_and_case_are_ignored_both_ways(archive):
    for query in ("liberation", "libération", "LIBÉRATION"):
        assert sorted(texts(archive, query)) == sorted([SEGMENTS[FRENCH][0][0], SEGMENTS[ENGLISH][0][0]])
    assert texts(archive, "grossartig") == [SEGMENTS[MIXED][1][0]]  # ß folds to ss


def test_word_forms_match_through_stemming(archive):
    singular = texts(archive, "chanteuses")
    assert "Ce soir une chanteuse libre chante." in singular
    assert "La libération des chanteuses fut célébrée." in singular
    assert texts(archive, "travaillé") == ["Elle travaille avec l'équipe du consulat."]
    assert texts(archive, "connected") == ["Our connection to the world runs deep."]
    assert texts(archive, "befreiungen") == [SEGMENTS[MIXED][1][0]]  # German has its stemmer too


def test_exact_phrase_ranks_before_stemmed_phrase_and_scattered_words(archive):
    phrase = texts(archive, '"chanteuse libre"')
    assert phrase == ["Ce soir une chanteuse libre chante.", "Les chanteuses libres arrivent demain."]
    loose = texts(archive, "chanteuse libre")
    assert loose[0] == "Ce soir une chanteuse libre chante."
    assert "Libre est la chanteuse qui chante." in loose


def test_phrase_words_must_be_adjacent_and_in_order(archive):
    assert texts(archive, '"your country"') == ["And so ask not what your country can do for you."]
    assert texts(archive, '"country ask"') == []
    assert texts(archive, '"ask your"') == []
    assert len(texts(archive, "country ask")) == 2


def test_hit_times_are_when_the_matched_words_are_said(archive):
    (hit,) = search(archive, '"ask not what"')
    assert hit["start"] == pytest.approx(word_start(ENGLISH, 2, 2))
    assert hit["end"] == pytest.approx(word_start(ENGLISH, 2, 4) + WORD_SECONDS - 0.1)
    assert hit["start"] > word_start(ENGLISH, 2, 0) + 0.5  # not the segment's start
    assert hit["snippet"] == "And so **ask not what** your country can do for you."
    base = "https://example.org/podarchive/episodes/kennedy-inaugural-1961/"
    assert hit["url"] == f"{base}audio.mp3#t={hit['start']:.2f}"
    assert hit["transcript_url"] == f"{base}transcript.html#s2"
    assert hit["episode"] == ENGLISH and hit["speaker"] == "John F. Kennedy"
    assert hit["title"] == "Ask not what your country can do for you" and hit["language"] == "en"
    (stemmed,) = search(archive, "travaillé")
    assert stemmed["start"] == pytest.approx(word_start(FRENCH, 1, 1))
    assert stemmed["snippet"] == "Elle **travaille** avec l'équipe du consulat."
    assert search(archive, "L'EQUIPE")[0]["snippet"] == "Elle travaille avec **l'équipe** du consulat."
    assert search(archive, "equipes")[0]["snippet"] == "Elle travaille avec l'**équipe** du consulat."


def test_filters_by_episode_speaker_and_language(archive):
    assert len(texts(archive, "liberation", episode=FRENCH)) == 1
    assert texts(archive, "liberation", lang="en") == [SEGMENTS[ENGLISH][0][0]]
    assert texts(archive, "befreiung", lang="de") == [SEGMENTS[MIXED][1][0]]
    assert texts(archive, "befreiung", lang="fr") == []
    assert texts(archive, "country", speaker="jacqueline") == [SEGMENTS[ENGLISH][3][0]]
    assert len(texts(archive, "country", speaker="KENNEDY")) == 2
    assert texts(archive, "country", speaker="Anne") == []


def test_or_and_exclusions(archive):
    assert len(texts(archive, "befreiung OR connected")) == 2
    assert texts(archive, "country -proud") == [SEGMENTS[ENGLISH][2][0]]
    assert texts(archive, "country NOT proud") == [SEGMENTS[ENGLISH][2][0]]
    assert texts(archive, 'country -"your country"') == [SEGMENTS[ENGLISH][3][0]]


@pytest.mark.parametrize("query", ["", "   ", '"not closed', "AND", "OR", "NOT", "country OR",
                                   "AND country", "country AND OR world", "NOT country",
                                   "-country", "!!!", '""'])
def test_unreadable_queries_raise_a_clear_error(archive, query):
    with pytest.raises(QueryError) as error:
        search(archive, query)
    assert isinstance(error.value, PodarchiveError) and error.value.field == "query"


def test_an_archive_without_transcripts_has_an_empty_index(tmp_path):
    root = copy_archive(tmp_path / "a", slugs=[ENGLISH])
    view = public_view(load_archive(root))
    assert [(o.slug, o.status) for o in view.report] == [(ENGLISH, "waiting")]
    assert index_archive(view) == []
    assert search(root, '"ask not"') == [] and search(root, "country") == []


def test_a_missing_index_says_how_to_make_one(tmp_path):
    root = copy_archive(tmp_path / "a", slugs=[ENGLISH])
    with pytest.raises(PodarchiveError, match="run `podarchive index`"):
        search(root, "country")


def test_nothing_changed_touches_no_file(archive):
    before = index_files(archive)
    outcomes = reindex(archive)
    assert {o.status for o in outcomes} == {"up-to-date"}
    assert index_files(archive) == before


def test_rebuilding_keeps_the_committed_readme(archive):
    readme = archive / "index" / "README.md"
    readme.write_text("# index/\n", "utf-8")
    outcomes = reindex(archive, rebuild=True)
    assert {o.status for o in outcomes} == {"indexed"}
    assert readme.read_text("utf-8") == "# index/\n"
    assert texts(archive, "connected") == ["Our connection to the world runs deep."]


def test_only_changed_episodes_are_reindexed(archive):
    changed = [*SEGMENTS[FRENCH][:-1], ("Ce soir une pianiste libre joue.", "Anne", "fr")]
    write_segments(archive, FRENCH, changed)
    outcomes = {o.slug: o.status for o in reindex(archive)}
    assert outcomes == {FRENCH: "indexed", ENGLISH: "up-to-date", MIXED: "up-to-date"}
    assert texts(archive, "pianiste") == ["Ce soir une pianiste libre joue."]
    assert texts(archive, '"chanteuse libre"') == ["Les chanteuses libres arrivent demain."]


def test_restricted_episodes_leave_the_index(archive):
    toml = archive / "episodes" / ENGLISH / "episode.toml"
    toml.write_text('status = "restricted"\n' + toml.read_text("utf-8"), "utf-8")
    outcomes = {o.slug: o.status for o in reindex(archive)}
    assert outcomes == {FRENCH: "up-to-date", ENGLISH: "removed", MIXED: "up-to-date"}
    assert texts(archive, "country") == []
    assert texts(archive, "liberation") == [SEGMENTS[FRENCH][0][0]]
    again = {o.slug: o.status for o in reindex(archive)}
    assert ENGLISH not in again


def test_an_unreadable_transcript_fails_and_leaves_the_index(archive):
    (archive / "episodes" / ENGLISH / "transcript.json").write_text("{not json", "utf-8")
    view = public_view(load_archive(archive))
    (failed,) = [o for o in view.report if o.slug == ENGLISH]
    assert failed.status == "failed" and "not valid JSON" in failed.message
    outcomes = {o.slug: o for o in index_archive(view)}
    assert outcomes[ENGLISH].status == "removed"
    assert {outcomes[FRENCH].status, outcomes[MIXED].status} == {"up-to-date"}
    assert texts(archive, "country") == []


def test_a_held_index_lock_is_a_clear_error(archive, monkeypatch):
    monkeypatch.setattr(search_module, "WRITE_LOCK_SECONDS", 0.2)
    lock = whoosh_index.open_dir(str(archive / ENGINE_DIR)).lock("WRITELOCK")
    assert lock.acquire()
    try:
        write_segments(archive, FRENCH, SEGMENTS[FRENCH][:2])
        with pytest.raises(PodarchiveError, match="another process is writing"):
            reindex(archive)
    finally:
        lock.release()
    assert {o.status for o in reindex(archive)} == {"indexed", "up-to-date"}


def test_a_rebuilt_index_gives_the_same_results(archive):
    write_segments(archive, MIXED, [*SEGMENTS[MIXED], ("Free of charge, granted.", "", "en")])
    reindex(archive)
    queries = ["liberation", '"chanteuse libre"', "country", "granted", "chanteuse libre"]
    before = [search(archive, query) for query in queries]
    shutil.rmtree(archive / ENGINE_DIR)
    reindex(archive)
    assert [search(archive, query) for query in queries] == before
    reindex(archive, rebuild=True)
    assert [search(archive, query) for query in queries] == before


def every_indexed_text(root: Path) -> str:
    """Every term and stored value in the index, decompressed, as one folded string."""
    with whoosh_index.open_dir(str(root / ENGINE_DIR)).reader() as reader:
        terms = [term.decode("utf-8", "replace") for field in reader.indexed_field_names()
                 for term in reader.lexicon(field)]
        stored = [json.dumps(fields, ensure_ascii=False) for fields in reader.all_stored_fields()]
    return " ".join(terms + stored).casefold()


def test_redacted_names_never_reach_the_index(archive):
    toml = archive / "episodes" / FRENCH / "episode.toml"
    toml.write_text('redact = ["Célestine Dupré"]\n' + toml.read_text("utf-8").replace(
        'title = "Conservateur des eaux et forêts"', 'title = "Entretien avec Célestine Dupré"'),
        "utf-8")
    write_segments(archive, FRENCH, [*SEGMENTS[FRENCH],
                                       ("Je parle avec CÉLESTINE dupre demain matin.", "Anne", "fr"),
                                       ("Célestine Dupré, chanteuse libre.", "Célestine Dupré", "fr")])
    outcomes = {o.slug: o.status for o in reindex(archive)}
    assert outcomes[FRENCH] == "indexed"
    for query in ("celestine", "Célestine", "dupre", "DUPRÉ", '"celestine dupre"', "redacted"):
        assert texts(archive, query) == []
    assert texts(archive, '"avec demain"') == []  # the words around a redaction are not adjacent
    (hit,) = search(archive, "matin")
    assert hit["text"] == "Je parle avec [redacted] demain matin."
    assert hit["title"] == "Entretien avec [redacted]"
    indexed = every_indexed_text(archive)
    assert "matin" in indexed  # the check can see what is there
    raw = raw_index_bytes(archive)
    assert b"matin" in raw
    for variant in ("célestine", "celestine", "celestin", "dupré", "dupre", "dupr"):
        assert variant not in indexed
        assert variant.encode() not in raw


def reference_time(root: Path, slug: str, phrase: str) -> float:
    """When the transcript's words say ``phrase`` (the start of its first word)."""
    wanted = phrase.split()
    transcript = json.loads((root / "episodes" / slug / "transcript.json").read_text("utf-8"))
    words = [w for s in transcript["segments"] for w in s["words"]]
    keys = ["".join(ch for ch in w["text"].lower() if ch.isalnum()) for w in words]
    for first in range(len(words) - len(wanted) + 1):
        if keys[first:first + len(wanted)] == wanted:
            return words[first]["start"]
    raise AssertionError(f"{phrase!r} not in the transcript of {slug}")


@pytest.mark.model
@pytest.mark.parametrize(("slug", "phrase"), [
    ("kennedy-inaugural-1961", "ask not what your country"),
    ("conservateur-des-eaux-et-forets", "conservateur des eaux et forêts"),
    ("eric-joanis-readalongs", "corpus bilingue"),
])
def test_phrases_of_the_bundled_episodes_are_found_where_they_are_said(transcribed_archive, slug, phrase):
    root, _ = transcribed_archive
    outcomes = reindex(root)
    assert {o.status for o in outcomes} <= {"indexed", "up-to-date"}
    hits = search(root, f'"{phrase}"')
    assert hits and hits[0]["episode"] == slug
    assert abs(hits[0]["start"] - reference_time(root, slug, phrase)) <= 1.5
    if slug == "kennedy-inaugural-1961":
        assert abs(hits[0]["start"] - 2.8) <= 1.5


@pytest.mark.model
def test_search_command_lands_on_the_moment(transcribed_archive, tmp_path):
    from click.testing import CliRunner

    from pipeline.cli import cli

    root, _ = transcribed_archive
    runner = CliRunner()
    result = runner.invoke(cli, ["--archive", str(root), "search", '"ask not what your country"', "--json"])
    assert result.exit_code == 0, result.output
    (hit, *_) = json.loads(result.stdout)
    assert set(hit) >= {"episode", "title", "start", "end", "speaker", "text", "snippet", "url", "transcript_url"}
    assert hit["episode"] == ENGLISH and hit["speaker"] == "John F. Kennedy"
    assert hit["url"].endswith(f"/episodes/{ENGLISH}/audio.mp3#t={hit['start']:.2f}")
    assert "**ask not what your country**" in hit["snippet"].lower()
    printed = runner.invoke(cli, ["--archive", str(root), "search", "libération des forêts OR conseiller"])
    assert printed.exit_code == 0 and "Conservateur des eaux et forêts  00:00:0" in printed.stdout
    clips = tmp_path / "clips"
    clipped = runner.invoke(cli, ["--archive", str(root), "search", "conseiller", "--clip", str(clips), "--limit", "1"])
    assert clipped.exit_code == 0, clipped.output
    assert len(list(clips.glob("*.mp3"))) == 1
    for bad in ('"unbalanced', "AND", ""):
        refused = runner.invoke(cli, ["--archive", str(root), "search", bad])
        assert refused.exit_code == 1 and refused.stderr.startswith("error: index/whoosh: query: ")
        assert "Traceback" not in refused.output


def test_check_finds_the_text_a_deleted_document_leaves_in_the_index(archive):
    from pipeline.build import check

    toml = archive / "episodes" / ENGLISH / "episode.toml"
    toml.write_text('status = "restricted"\n' + toml.read_text("utf-8"), "utf-8")
    writer = whoosh_index.open_dir(str(archive / ENGINE_DIR)).writer()
    writer.delete_by_term("episode", ENGLISH)
    writer.commit(merge=False)  # deleted as whoosh deletes: the text stays in the segment
    assert b"country" in raw_index_bytes(archive) and texts(archive, "country") == []
    problems = [str(problem) for problem in check(archive).problems]
    assert any("index/whoosh/" in p and f"contains words of unpublished episode {ENGLISH}" in p
               for p in problems), problems
    outcomes = withdraw_from_index(public_view(load_archive(archive)))
    assert [(o.slug, o.message) for o in outcomes] == [
        (ENGLISH, "removed from the index (deleted documents left)")]
    assert b"country" not in raw_index_bytes(archive)
    assert check(archive).problems == []


# --- search() keeps the index open between calls, and sees every change ---------------------


def open_files() -> list[str]:
    """The files this process holds open (a deleted one ends with " (deleted)")."""
    gc.collect()  # whoosh's writer leaves cycles that hold segment files until collected
    found = []
    for descriptor in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the listing's own, closed by now
            found.append(os.readlink(f"/proc/self/fd/{descriptor}"))
    return found


@pytest.fixture
def counted_opens(monkeypatch):
    """How many times the index is opened from its folder."""
    opens = []
    real = whoosh_index.open_dir
    monkeypatch.setattr(whoosh_index, "open_dir", lambda *args, **kwargs: opens.append(args) or real(*args, **kwargs))
    search_module.forget_open_archives()
    yield opens
    search_module.forget_open_archives()


def test_search_keeps_the_index_open_and_sees_an_episode_the_next_index_run_adds(archive, counted_opens):
    assert texts(archive, "fjord") == []
    opened = len(counted_opens)
    assert texts(archive, "country") and texts(archive, "libération")
    assert len(counted_opens) == opened
    copy_archive(archive, slugs=["two-voices-stereo"])
    write_segments(archive, "two-voices-stereo", [("We sailed up the fjord at dawn.", "Left", "en")])
    assert {o.slug: o.status for o in reindex(archive)}["two-voices-stereo"] == "indexed"
    opened = len(counted_opens)  # the index run's own
    assert texts(archive, "fjord") == ["We sailed up the fjord at dawn."]
    assert len(counted_opens) == opened


def test_an_episode_withdrawn_from_the_index_leaves_the_next_search(archive, counted_opens):
    assert texts(archive, "country")
    toml = archive / "episodes" / ENGLISH / "episode.toml"
    toml.write_text('status = "restricted"\n' + toml.read_text("utf-8"), "utf-8")
    assert texts(archive, "country") == []  # the gate, read anew: episode.toml changed
    assert {o.slug: o.status for o in reindex(archive)}[ENGLISH] == "removed"
    assert texts(archive, "country") == [] and len(texts(archive, "liberation")) == 1


def test_a_commit_by_another_writer_is_seen_by_the_next_search(archive, counted_opens):
    assert len(texts(archive, "liberation")) == 2
    engine = search_module.WhooshEngine(archive / ENGINE_DIR)
    with engine.writing(expunge=True) as batch:
        batch.remove_episode(FRENCH)
    engine.close()
    assert texts(archive, "liberation") == [SEGMENTS[ENGLISH][0][0]]


def test_an_index_made_anew_or_removed_under_an_open_search_is_seen(archive, counted_opens):
    before = search(archive, "country")
    assert texts(archive, "pianiste") == []
    write_segments(archive, FRENCH, [*SEGMENTS[FRENCH][:-1], ("Ce soir une pianiste libre joue.", "Anne", "fr")])
    reindex(archive, rebuild=True)  # a new folder, at the generation the old one had reached
    assert texts(archive, "pianiste") == ["Ce soir une pianiste libre joue."]
    shutil.rmtree(archive / ENGINE_DIR)
    with pytest.raises(PodarchiveError, match="no search index yet"):
        search(archive, "country")
    reindex(archive)
    assert search(archive, "country") == before


def test_the_gate_is_kept_until_an_embargo_may_have_ended(archive, counted_opens, monkeypatch):
    toml = archive / "episodes" / ENGLISH / "episode.toml"
    toml.write_text('status = "embargoed"\nembargo_until = 2031-01-01\n' + toml.read_text("utf-8"), "utf-8")
    assert texts(archive, "country") == []
    monkeypatch.setattr("pipeline.privacy.now_utc", lambda: dt.datetime(2031, 6, 1, tzinfo=dt.UTC))
    assert texts(archive, "country") == []  # no file changed: the gate read a moment ago stands
    monkeypatch.setattr(search_module, "GATE_SECONDS", 0.0)
    assert len(texts(archive, "country")) == 2


def test_searching_leaks_no_file_descriptor(archive, tmp_path, counted_opens):
    for round_ in range(8):
        write_segments(archive, FRENCH, [*SEGMENTS[FRENCH], (f"Chanson numéro {round_}.", "Anne", "fr")])
        reindex(archive)
        assert texts(archive, "chanson") == [f"Chanson numéro {round_}."]
        held = [path for path in open_files() if path.startswith(str(archive))]
        assert held and not [path for path in held if path.endswith(" (deleted)")]
    others = [copy_archive(tmp_path / f"other-{n}", slugs=[ENGLISH])
              for n in range(search_module._OPEN_ARCHIVES + 2)]  # more archives than are kept open
    for other in others:
        write_segments(other, ENGLISH, SEGMENTS[ENGLISH])
        reindex(other)
        assert texts(other, "country")
    held = {root for root in [archive, *others] if any(path.startswith(str(root)) for path in open_files())}
    assert held == set(others[-search_module._OPEN_ARCHIVES:])
    search_module.forget_open_archives()
    assert not [path for path in open_files() if path.startswith(str(tmp_path))]


def test_field_lengths_read_once_rank_as_whoosh_reads_them(archive, monkeypatch):
    queries = ["liberation", "chanteuse libre", '"chanteuse libre"', "country OR connected", "la"]
    ours = [search(archive, query) for query in queries]
    search_module.forget_open_archives()
    monkeypatch.setattr(search_module, "_BM25F", scoring.BM25F)
    assert [search(archive, query) for query in queries] == ours
    search_module.forget_open_archives()


def test_a_word_matched_by_more_segments_than_are_scored_still_gives_hits(archive, monkeypatch):
    monkeypatch.setattr(search_module, "MOST_SCORED", 2)
    hits = texts(archive, "chanteuse")
    assert len(hits) == 2 and all("chanteuse" in hit.lower() for hit in hits)


def test_a_query_of_stop_words_alone_is_ranked_among_fewer_segments(archive, monkeypatch):
    everywhere = texts(archive, "la")
    assert len(everywhere) >= 2
    monkeypatch.setattr(search_module, "MOST_SCORED_COMMON", 1)
    assert len(texts(archive, "la")) == 1
    assert len(texts(archive, "la de")) == 1
    assert len(texts(archive, "chanteuse")) >= 2  # not a stop word: every match ranked


def test_posting_blocks_kept_decoded_find_what_whoosh_reads_itself(archive, monkeypatch):
    queries = ["liberation", "chanteuse libre", '"chanteuse libre"', "country OR connected", "la", "la de"]
    kept = [search(archive, query) for query in queries]
    read = []
    whoosh_reads = search_module._DecodedBlocks.whoosh_read_data
    monkeypatch.setattr(search_module._DecodedBlocks, "whoosh_read_data",
                        staticmethod(lambda matcher: read.append(matcher) or whoosh_reads(matcher)))
    again = [search(archive, query) for query in queries]
    assert read == []  # every block from those kept
    search_module.forget_open_archives()
    monkeypatch.setattr(whoosh3.W3LeafMatcher, "_read_data", search_module._DecodedBlocks.whoosh_read_data)
    assert [search(archive, query) for query in queries] == kept == again
    search_module.forget_open_archives()
