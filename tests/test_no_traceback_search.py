"""Search and the index never answer with a traceback: any query text gives hits or one
clear line, a damaged index is rebuilt or named, a full disk names the folder."""

import errno
import os

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_search import ENGLISH, FRENCH, SEGMENTS, index_files, reindex, texts, write_segments
from whoosh.filedb.filestore import FileStorage
from whoosh.index import TOC

from pipeline.archive import load_archive
from pipeline.cli import cli
from pipeline.errors import PodarchiveError
from pipeline.layout import ENGINE_DIR
from pipeline.privacy import public_view
from pipeline.search import MAX_QUERY_WORDS, DamagedIndex, QueryError, index_archive, search

from conftest import copy_archive


@pytest.fixture(scope="module")
def indexed(tmp_path_factory):
    """An indexed archive the query tests only read."""
    root = copy_archive(tmp_path_factory.mktemp("queries") / "a", slugs=list(SEGMENTS))
    for slug, segments in SEGMENTS.items():
        write_segments(root, slug, segments)
    reindex(root)
    return root


def invoked(root, *command: str):
    """The command's result, which must have ended by exiting, never by an exception."""
    result = CliRunner().invoke(cli, ["--archive", str(root), *command])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert "Traceback" not in result.output and "Aborted!" not in result.output
    return result


# --- Any query text: hits, or one clear line -------------------------------------------------

WORDS = ["ask", "not", "what", "your", "country", "can", "do", "for", "you"]


@pytest.mark.parametrize(("shape", "found"), [
    (lambda n: " ".join(["country"] * n), True),
    (lambda n: " ".join(WORDS[i % len(WORDS)] for i in range(n)), True),
    (lambda n: " OR ".join(f"x{i}" for i in range(n - 1)) + " OR country", True),
    (lambda n: "country " + " ".join(f"-x{i}" for i in range(n - 1)), True),
    (lambda n: " ".join(f"{WORDS[i % len(WORDS)]}{i}" for i in range(n)), False),
    (lambda n: " ".join(f'"{WORDS[i % len(WORDS)]} x{i}"' for i in range(n // 2)), False),
    (lambda n: '"' + " ".join(WORDS[i % len(WORDS)] for i in range(n)) + '"', False),
], ids=["one word repeated", "words cycled", "alternatives", "exclusions", "distinct words",
        "phrases", "one long phrase"])
def test_a_query_of_a_thousand_words_is_answered(indexed, shape, found):
    hits = search(indexed, shape(MAX_QUERY_WORDS))
    assert bool(hits) == found


def test_a_query_longer_than_the_limit_says_so(indexed):
    with pytest.raises(QueryError, match=f"at most {MAX_QUERY_WORDS} words"):
        search(indexed, " ".join(["country"] * (MAX_QUERY_WORDS + 1)))
    result = invoked(indexed, "search", " ".join(["country"] * 5000))
    assert result.exit_code == 1
    assert result.stderr.startswith("error: index/whoosh: query: ")
    assert len(result.stderr.splitlines()) == 1 and len(result.stderr) < 300


QUERY_TEXT = st.text(st.characters(exclude_categories=()), max_size=60) | st.lists(
    st.sampled_from([*WORDS, "AND", "OR", "NOT", "-", '"', "“", "»", "-country", "l'équipe", "",
                     "[redacted]", "|", "_", "é", "\u0301", "\x00", "\ud800"]),
    max_size=12).map(" ".join)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(query=QUERY_TEXT)
def test_any_query_text_gives_hits_or_a_query_error(indexed, query):
    try:
        hits = search(indexed, query)
    except QueryError as error:
        assert error.field == "query" and "\n" not in error.message.replace(repr(query), "")
    else:
        assert all(hit["episode"] in SEGMENTS for hit in hits)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(query=QUERY_TEXT, speaker=st.text(max_size=12), lang=st.text(max_size=8),
       episode=st.text(max_size=12))
def test_any_filter_text_gives_hits_or_a_query_error(indexed, query, speaker, lang, episode):
    try:
        search(indexed, query, speaker=speaker, lang=lang, episode=episode)
    except QueryError:
        pass


def test_the_search_command_answers_a_long_query_in_one_line(indexed):
    result = invoked(indexed, "search", " ".join(["country"] * MAX_QUERY_WORDS))
    assert result.exit_code == 0
    assert "**country**" in result.stdout
    assert search(indexed, "country", episode=ENGLISH)


# --- A damaged index: rebuilt by `index`, named by `search` ----------------------------------


@pytest.fixture
def archive(tmp_path):
    root = copy_archive(tmp_path / "a", slugs=list(SEGMENTS))
    for slug, segments in SEGMENTS.items():
        write_segments(root, slug, segments)
    reindex(root)
    return root


def damage(root, which: str, how: str) -> None:
    engine = root / ENGINE_DIR
    path = max(engine.glob("_MAIN_*.toc" if which == "table of contents" else "MAIN_*.seg"),
               key=lambda p: p.stat().st_size)
    if how == "deleted":
        path.unlink()
    else:
        path.write_bytes(path.read_bytes()[:path.stat().st_size // 2] if how == "cut in half" else b"")


DAMAGES = [(which, how) for which in ("table of contents", "segment")
           for how in ("deleted", "emptied", "cut in half")]


@pytest.mark.parametrize(("which", "how"), DAMAGES)
def test_searching_a_damaged_index_says_how_to_rebuild_it(archive, which, how):
    damage(archive, which, how)
    result = invoked(archive, "search", "country")
    assert result.exit_code == 1
    (line,) = result.stderr.splitlines()
    if (which, how) == ("table of contents", "deleted"):  # no index at all, as whoosh sees it
        assert line == "error: index/whoosh: no search index yet: run `podarchive index`"
    else:
        assert line.startswith("error: index/whoosh: a file of the index cannot be read (")
        assert line.endswith("): rebuild it with `podarchive index --rebuild`")
        with pytest.raises(DamagedIndex):
            search(archive, "country")


@pytest.mark.parametrize(("which", "how"), [damage for damage in DAMAGES if damage != ("table of contents", "deleted")])
def test_check_names_a_damaged_index_and_changes_nothing(archive, which, how):
    assert not [line for line in invoked(archive, "check").stderr.splitlines() if "index/whoosh" in line]
    damage(archive, which, how)
    files = {path: path.read_bytes() for path in (archive / ENGINE_DIR).iterdir()}
    result = invoked(archive, "check")
    assert result.exit_code == 1
    assert any(line.startswith("error: index/whoosh: a file of the index cannot be read (")
               for line in result.stderr.splitlines()), result.stderr
    assert {path: path.read_bytes() for path in (archive / ENGINE_DIR).iterdir()} == files


@pytest.mark.parametrize(("which", "how"), DAMAGES)
def test_the_index_command_makes_a_damaged_index_anew(archive, which, how):
    queries = ["country", '"chanteuse libre"', "befreiung OR connected"]
    before = [search(archive, query) for query in queries]
    damage(archive, which, how)
    result = invoked(archive, "index")
    assert result.exit_code == 0, result.output
    if (which, how) != ("table of contents", "deleted"):
        assert ("withdraw index/whoosh: removed (a file of it could not be read (" in result.stdout
                and "`podarchive index` makes it anew from the public view)" in result.stdout)
    assert result.stdout.count(": indexed") == len(SEGMENTS)
    assert [search(archive, query) for query in queries] == before


@pytest.mark.parametrize(("which", "how"), DAMAGES[1:])
def test_the_index_stage_rebuilds_a_damaged_index_saying_so(archive, which, how):
    before = search(archive, "country")
    damage(archive, which, how)
    outcomes = index_archive(public_view(load_archive(archive)))
    assert outcomes[0].slug == "index/whoosh" and outcomes[0].status == "rebuilt"
    assert outcomes[0].message.startswith("a file of the index could not be read (")
    assert {o.status for o in outcomes[1:]} == {"indexed"}
    assert search(archive, "country") == before


def test_rendering_removes_a_damaged_index_it_cannot_check(archive):
    damage(archive, "segment", "cut in half")
    result = invoked(archive, "render")
    assert result.exit_code == 0, result.output
    assert "withdraw index/whoosh: removed (a file of it could not be read (EOFError)" in result.stdout
    assert not (archive / ENGINE_DIR).exists()
    with pytest.raises(PodarchiveError, match="no search index yet"):
        search(archive, "country")


# --- A full disk while the index is written --------------------------------------------------


def no_space(*_args, **_kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize("where", ["a new segment file", "the table of contents"])
def test_a_full_disk_while_indexing_names_the_folder_and_keeps_the_index(archive, monkeypatch, where):
    before = index_files(archive)
    write_segments(archive, ENGLISH, [("A new country speech.", "John F. Kennedy", "en")])
    with monkeypatch.context() as patch:
        if where == "a new segment file":
            patch.setattr(FileStorage, "create_file", no_space)
        else:
            patch.setattr(TOC, "write", no_space)
        result = invoked(archive, "index")
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == "error: index/whoosh: cannot write: No space left on device"
    after = index_files(archive)
    assert {path: after.get(path) for path in before} == before
    assert texts(archive, "consulat") == [SEGMENTS[FRENCH][1][0]]
    again = invoked(archive, "index")  # the lock and scratch files were let go
    assert again.exit_code == 0, again.output
    assert texts(archive, "country") == ["A new country speech."]
    assert [p.name for p in (archive / ENGINE_DIR).iterdir() if not p.name.startswith(("MAIN_", "_MAIN_"))] == []


def test_a_full_disk_while_withdrawing_fails_the_episode_in_one_line(archive, monkeypatch):
    toml = archive / "episodes" / ENGLISH / "episode.toml"
    toml.write_text('status = "restricted"\n' + toml.read_text("utf-8"), "utf-8")
    with monkeypatch.context() as patch:
        patch.setattr(FileStorage, "create_file", no_space)
        result = invoked(archive, "index")
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == "error: index/whoosh: cannot write: No space left on device"
    assert texts(archive, "country") == []  # the gate still hides it from search
    assert invoked(archive, "index").exit_code == 0
    assert ENGLISH not in {hit["episode"] for hit in search(archive, "the")}
