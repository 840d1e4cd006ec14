"""Search and the index never answer with a traceback: any query text gives hits or one
clear line, a damaged index is rebuilt or named, a full disk names the folder."""

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_search import ENGLISH, SEGMENTS, reindex, write_segments

from pipeline.cli import cli
from pipeline.search import MAX_QUERY_WORDS, QueryError, search

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
