"""`podarchive init` and `podarchive add`: an archive started and filled without writing TOML."""

import shutil
import tomllib
from pathlib import Path

import feedparser
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.archive import _SLUG, load_archive, load_episode
from pipeline.cli import cli
from pipeline.create import slug_of
from pipeline.errors import PodarchiveError

REPO = Path(__file__).resolve().parent.parent
LEOPARD = REPO / "episodes/conservateur-des-eaux-et-forets/leopard-fr.wav"
OPTIONAL_ARCHIVE_KEYS = ("owner", "image", "categories", "explicit", "license", "glossary", "redact", "model",
                         "timezone")


def invoke(*arguments):
    return CliRunner().invoke(cli, [str(argument) for argument in arguments])


def test_init_writes_an_archive_that_loads_with_every_key_explained(tmp_path):
    root = tmp_path / "show"
    result = invoke("init", root, "--title", 'En fleurs, plus en feu ! "Témoignages"', "--language", "fr")
    assert result.exit_code == 0, result.output
    archive = load_archive(root)
    assert archive.title == 'En fleurs, plus en feu ! "Témoignages"' and archive.language == "fr"
    text = (root / "archive.toml").read_text("utf-8")
    for key in OPTIONAL_ARCHIVE_KEYS:
        assert f"\n# {key} = " in text, key
    assert (root / "episodes").is_dir()
    ignored = (root / ".gitignore").read_text("utf-8").split()
    assert {"index/", "feed/", ".podarchive.lock"} <= set(ignored)

    again = invoke("init", root)
    assert again.exit_code == 1 and "archive.toml: already exists" in again.stderr
    assert load_archive(root).title == archive.title  # the first one is kept


def test_init_refuses_what_the_archive_would_refuse_and_leaves_nothing(tmp_path):
    result = invoke("init", tmp_path, "--language", "klingon")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ") and "language" in result.stderr
    assert not (tmp_path / "archive.toml").exists()


@pytest.fixture
def archive(tmp_path):
    root = tmp_path / "show"
    assert invoke("init", root, "--language", "fr", "--author", "Collectif", "--email", "archive@example.org").exit_code == 0
    return root


def test_init_with_an_email_names_the_owner_directories_write_to(archive):
    assert load_archive(archive).owner == {"name": "Collectif", "email": "archive@example.org"}


def test_add_copies_the_recording_and_writes_an_episode_that_loads(archive):
    result = invoke("--archive", archive, "add", LEOPARD, "--title", "Le léopard : épisode 1",
                    "--date", "2025-05-02", "--person", "Marie Tremblay:guest", "--person", "Éric Joanis:host")
    assert result.exit_code == 0, result.output
    folder = archive / "episodes" / "le-leopard-episode-1"
    episode = load_episode(folder)
    assert episode.title == "Le léopard : épisode 1" and str(episode.date)[:10] == "2025-05-02"
    assert [(p.name, p.role) for p in episode.persons] == [("Marie Tremblay", "guest"), ("Éric Joanis", "host")]
    assert (folder / LEOPARD.name).read_bytes() == LEOPARD.read_bytes()
    assert sorted(p.name for p in (archive / "episodes").iterdir()) == ["le-leopard-episode-1"]


def test_add_with_a_time_and_a_language_of_its_own(archive):
    result = invoke("--archive", archive, "add", LEOPARD, "--title", "Live", "--date", "2025-05-02T18:30:00",
                    "--language", "auto", "--slug", "live-1")
    assert result.exit_code == 0, result.output
    toml = tomllib.loads((archive / "episodes/live-1/episode.toml").read_text("utf-8"))
    assert toml["language"] == "auto" and toml["date"].hour == 18


@pytest.mark.parametrize(("arguments", "message"), [
    (["README.md", "--title", "x", "--date", "2025-01-01"], "README.md: not a supported audio file"),
    (["missing.wav", "--title", "x", "--date", "2025-01-01"], "missing.wav: no such file"),
    ([LEOPARD, "--title", "x", "--date", "2025-01-01", "--person", "Bob:boss"], "Bob:boss: --person: give NAME:ROLE"),
    ([LEOPARD, "--title", "x", "--date", "2025-01-01", "--language", "xx-nope"], "language"),
    ([LEOPARD, "--title", "!!!", "--date", "2025-01-01"], "--title: has no letter or digit"),
    ([LEOPARD, "--title", "x", "--date", "2025-13-01"], "is not a date"),
])
def test_add_refuses_bad_input_and_leaves_nothing(archive, arguments, message):
    arguments = [REPO / a if a == "README.md" else a for a in arguments]
    result = invoke("--archive", archive, "add", *arguments)
    assert result.exit_code != 0
    assert message in result.stderr and "Traceback" not in result.output
    assert list((archive / "episodes").iterdir()) == []


def test_add_never_replaces_an_episode(archive):
    assert invoke("--archive", archive, "add", LEOPARD, "--title", "Un", "--date", "2025-01-01").exit_code == 0
    before = (archive / "episodes/un/episode.toml").read_bytes()
    result = invoke("--archive", archive, "add", LEOPARD, "--title", "Un", "--date", "2026-01-01")
    assert result.exit_code == 1 and "episodes/un: already exists" in result.stderr
    assert (archive / "episodes/un/episode.toml").read_bytes() == before


def test_a_corrupt_recording_is_refused_before_anything_is_written(archive, tmp_path):
    fake = tmp_path / "fake.mp3"
    fake.write_text("not audio at all")
    result = invoke("--archive", archive, "add", fake, "--title", "x", "--date", "2025-01-01")
    assert result.exit_code == 1 and "fake.mp3" in result.stderr
    assert list((archive / "episodes").iterdir()) == []


def test_add_outside_an_archive_says_so(tmp_path):
    result = invoke("--archive", tmp_path, "add", LEOPARD, "--title", "x", "--date", "2025-01-01")
    assert result.exit_code == 1 and "archive.toml" in result.stderr


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(max_size=80))
def test_every_title_gives_a_valid_slug_or_asks_for_one(title):
    try:
        slug = slug_of(title)
    except PodarchiveError as error:
        assert "--slug" in str(error)
        return
    assert _SLUG.fullmatch(slug) and len(slug) <= 60


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(min_size=1, max_size=60))
def test_any_title_is_written_as_given_or_refused_with_a_line(tmp_path, title):
    root = tmp_path / "any"
    shutil.rmtree(root, ignore_errors=True)
    result = invoke("init", root, "--title", title)
    if result.exit_code == 0:
        assert load_archive(root).title == title
    else:
        assert result.exit_code == 1 and result.stderr.startswith("error: ")
        assert not (root / "archive.toml").exists()


@pytest.mark.model
def test_a_new_archive_is_published_from_two_commands(archive):
    """The README's walkthrough: init, add, run; the feed lists the episode with its transcript."""
    result = invoke("--archive", archive, "add", LEOPARD, "--title", "Le léopard", "--date", "2025-05-02")
    assert result.exit_code == 0, result.output
    result = invoke("--archive", archive, "run")
    assert result.exit_code == 0, result.output
    parsed = feedparser.parse((archive / "feed/feed.xml").read_bytes())
    assert not parsed.bozo
    [item] = parsed.entries
    assert item.title == "Le léopard" and item.enclosures
    assert (archive / "feed/episodes/le-leopard/transcript.vtt").is_file()
    result = invoke("--archive", archive, "check")
    assert result.exit_code == 0, result.output  # the drawn cover is only a warning
