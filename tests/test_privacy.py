"""Consent by construction: publishing stages see only what the gate lets out.

Each section follows one promise the issue found broken: decorated names, fields that
skipped the gate, half-done withdrawal, one broken input stopping another's withdrawal,
bad consent values, files from outside the archive. The lost-feed cases live in
test_faults.py, the matcher's own cases and properties in test_redaction.py.
"""

import builtins
import datetime as dt
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from pydub import AudioSegment

from pipeline.archive import load_archive, read_transcript
from pipeline.cli import cli
from pipeline.feed import publish_archive
from pipeline.formats import render_archive
from pipeline.model import Segment, Word
from pipeline.privacy import public_view, publishable
from pipeline.redaction import fold
from pipeline.search import index_archive

from conftest import REPO, copy_archive, write_transcript

NOW = dt.datetime.now(dt.UTC)
TOMORROW = (NOW + dt.timedelta(days=1)).date()
KENNEDY, FOREST, EJ, STEREO = ("kennedy-inaugural-1961", "conservateur-des-eaux-et-forets",
                               "eric-joanis-readalongs", "two-voices-stereo")


def invoke(root, *arguments):
    return CliRunner().invoke(cli, ["--archive", str(root), *arguments])


def set_toml(root, slug, first_lines="", replace=None):
    path = root / "episodes" / slug / "episode.toml"
    text = path.read_text("utf-8")
    for old, new in (replace or {}).items():
        assert old in text, old
        text = text.replace(old, new)
    path.write_text(first_lines + text, "utf-8")


def set_archive_toml(root, replace):
    path = root / "archive.toml"
    text = path.read_text("utf-8")
    for old, new in replace.items():
        assert old in text, old
        text = text.replace(old, new)
    path.write_text(text, "utf-8")


def published_texts(root):
    """(path, folded text) of every file under feed/ and index/: what the world may read."""
    for folder in ("feed", "index"):
        for path in sorted((root / folder).rglob("*")):
            if path.is_file():
                yield path, fold(path.read_bytes().decode("utf-8", errors="ignore"))


def assert_published_nowhere(root, *needles):
    for path, text in published_texts(root):
        for needle in needles:
            assert fold(needle) not in text, (path, needle)


def level_dbfs(path, start, end):
    sound = AudioSegment.from_file(path)
    samples = np.array(sound.get_array_of_samples(), dtype=np.float64) / 32768.0
    samples = samples.reshape(-1, sound.channels)[int(start * sound.frame_rate):int(end * sound.frame_rate)]
    return 20 * np.log10(np.sqrt(np.mean(samples ** 2)) + 1e-12)


def words_of(root, slug):
    transcript = read_transcript(root / "episodes" / slug / "transcript.json")
    return [w for s in transcript.segments for w in s.words]


def hand_made(root, slug, texts, *, start=0.5, word_seconds=0.4, language="en"):
    """A transcript with one segment per text, each word said for ``word_seconds``."""
    segments, clock = [], start
    for number, text in enumerate(texts):
        words = [Word(w, clock + n * word_seconds, clock + (n + 1) * word_seconds - 0.05, 0.9)
                 for n, w in enumerate(text.split())]
        segments.append(Segment(number, words[0].start, words[-1].end, text, "", language, words))
        clock = words[-1].end + 0.3
    write_transcript(root, slug, segments, language=language, duration=max(clock, 11.0))


@pytest.fixture
def kennedy(tmp_path):
    """The Kennedy recording with a hand-made transcript: the gate without the model."""
    root = copy_archive(tmp_path / "a", slugs=[KENNEDY])
    hand_made(root, KENNEDY, ["And so my fellow Americans", "ask not what your country can do"])
    return root


# --- The gate decides with exact moments, in the archive's time zone ----------------------


def test_an_embargo_with_a_time_of_day_holds_until_that_moment(kennedy):
    set_toml(kennedy, KENNEDY, 'status = "embargoed"\nembargo_until = 2026-12-01T23:30:00Z\n')
    episode = load_archive(kennedy).episode(KENNEDY)
    assert not publishable(episode, dt.datetime(2026, 12, 1, 23, 29, 59, tzinfo=dt.UTC))
    assert publishable(episode, dt.datetime(2026, 12, 1, 23, 30, tzinfo=dt.UTC))


def test_dates_without_a_time_follow_the_archive_time_zone(kennedy):
    set_toml(kennedy, KENNEDY, 'status = "embargoed"\nembargo_until = 2026-06-01\n')
    before_toronto_midnight = dt.datetime(2026, 6, 1, 3, 30, tzinfo=dt.UTC)  # 23:30 in Toronto
    after_toronto_midnight = dt.datetime(2026, 6, 1, 4, 30, tzinfo=dt.UTC)
    episode = load_archive(kennedy).episode(KENNEDY)
    assert publishable(episode, before_toronto_midnight)  # UTC by default
    set_archive_toml(kennedy, {'language = "en"': 'language = "en"\ntimezone = "America/Toronto"'})
    archive = load_archive(kennedy)
    episode = archive.episode(KENNEDY)
    assert not publishable(episode, before_toronto_midnight, archive.timezone)
    assert publishable(episode, after_toronto_midnight, archive.timezone)
    # A time without an offset is the archive's local time too.
    set_toml(kennedy, KENNEDY, replace={"embargo_until = 2026-06-01": "embargo_until = 2026-06-01T01:00:00"})
    episode = load_archive(kennedy).episode(KENNEDY)
    assert not publishable(episode, after_toronto_midnight, "America/Toronto")
    assert publishable(episode, after_toronto_midnight + dt.timedelta(hours=1), "America/Toronto")


def test_a_release_time_is_the_feed_date(kennedy):
    set_toml(kennedy, KENNEDY, replace={"date = 2025-01-20": "date = 2025-01-20T17:00:00-05:00"})
    view = public_view(load_archive(kennedy))
    assert view.episode(KENNEDY).released == dt.datetime(2025, 1, 20, 22, 0, tzinfo=dt.UTC)


# --- Bad consent values: one clear error, and the episode is not published ------------------


@pytest.mark.parametrize(("toml", "field", "words"), [
    ("restrict = [[nan, 5.0]]\n", "restrict", "number of seconds from 0 up, got nan"),
    ("restrict = [[1.0, inf]]\n", "restrict", "got inf"),
    ("restrict = [[-1.0, 2.0]]\n", "restrict", "got -1.0"),
    ("restrict = [[5.0, 2.0]]\n", "restrict", "end must come after start"),
    ("restrict = [[1.0]]\n", "restrict", "[start, end]"),
    ('status = "Restricted"\n', "status", "must be one of public, restricted, embargoed"),
    ('status = "embargoed"\nembargo_until = "soon"\n', "embargo_until", 'not a date: "soon"'),
    ('redact = ["Jo\\u0000annis"]\n', "redact", "control character"),
    ('redact = "Joannis"\n', "redact", "must be a list of text"),
    ('explicit = "false"\n', "explicit", "must be true or false"),
])
def test_bad_consent_values_are_refused_naming_file_and_field(kennedy, toml, field, words):
    invoke(kennedy, "render")
    assert (kennedy / "feed/episodes" / KENNEDY).exists()
    set_toml(kennedy, KENNEDY, toml)
    result = invoke(kennedy, "render")
    assert result.exit_code == 1
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert line.startswith(f"error: episodes/{KENNEDY}/episode.toml: {field}: ") and words in line, line
    assert not (kennedy / "feed/episodes" / KENNEDY).exists()  # when in doubt, do not publish


@pytest.mark.parametrize(("field", "value"), [
    ("title", "Ask not\\u0000"), ("description", "Escape \\u001b[31m"), ("title", "Two\\nlines"),
])
def test_control_characters_in_text_fields_are_refused(kennedy, field, value):
    path = kennedy / "episodes" / KENNEDY / "episode.toml"
    lines = [f'{field} = "{value}"' if line.startswith(f"{field} = ") else line
             for line in path.read_text("utf-8").splitlines()]
    path.write_text("\n".join(lines) + "\n", "utf-8")
    result = invoke(kennedy, "check")
    assert result.exit_code == 1
    assert f"episodes/{KENNEDY}/episode.toml: {field}: " in result.stderr


@pytest.mark.parametrize(("edit", "field", "words"), [
    (lambda t: t["segments"][0].update(restricted="false"), "segments[0].restricted", "must be true or false"),
    (lambda t: t["segments"][1]["words"][0].update(start=float("nan")), "segments[1].words[0].start",
     "must be a finite number, got NaN"),
    (lambda t: t["segments"][0].update(end=None), "segments[0].end", "must be a finite number, got null"),
    (lambda t: t["segments"][0].update(text="a\u0000b"), "segments[0].text",
     "must be text without control characters"),
    (lambda t: t["segments"][0].update(restrcted=True), "segments[0].restrcted", "unknown field"),
])
def test_a_hand_edited_transcript_with_bad_values_is_not_published(kennedy, edit, field, words):
    invoke(kennedy, "render")
    path = kennedy / "episodes" / KENNEDY / "transcript.json"
    data = json.loads(path.read_text("utf-8"))
    edit(data)
    path.write_text(json.dumps(data), "utf-8")
    result = invoke(kennedy, "render")
    assert result.exit_code == 1
    assert f"error: episodes/{KENNEDY}/transcript.json: {field}: {words}" in result.stderr
    assert not (kennedy / "feed/episodes" / KENNEDY).exists()


def test_a_restricted_segment_is_silenced_by_its_words_own_times(kennedy):
    path = kennedy / "episodes" / KENNEDY / "transcript.json"
    data = json.loads(path.read_text("utf-8"))
    second = data["segments"][1]
    second["restricted"] = True
    second["start"], second["end"] = second["start"] + 0.5, second["end"] - 0.5  # words run past it
    path.write_text(json.dumps(data), "utf-8")
    episode = public_view(load_archive(kennedy)).episode(KENNEDY)
    first_word, last_word = second["words"][0], second["words"][-1]
    assert any(a <= first_word["start"] and last_word["end"] <= b for a, b in episode.silence)
    assert [s.id for s in episode.transcript.segments] == [0]


def test_restricted_spans_cut_every_word_they_touch(kennedy):
    words = words_of(kennedy, KENNEDY)
    country = next(w for w in words if w.text == "country")
    set_toml(kennedy, KENNEDY, f"restrict = [[{country.start + 0.1}, {country.end - 0.1}]]\n")
    episode = public_view(load_archive(kennedy)).episode(KENNEDY)
    published = [w.text for s in episode.transcript.segments for w in s.words]
    assert "country" not in published and "your" in published and "can" in published
    assert any(a <= country.start and country.end <= b for a, b in episode.silence)


# --- Every published field goes through the gate --------------------------------------------


def test_every_field_that_is_published_is_masked_or_dropped(kennedy):
    set_archive_toml(kennedy, {
        'title = "podarchive : échantillons / samples"': 'title = "Les archives de Joannis"',
        "description = \"Short": 'description = "Edited by JOANNIS. Short',
        'author = "podarchive contributors"': 'author = "Joannis-Smith"',
        'owner = { name = "podarchive contributors", email = "podarchive@example.org" }':
            'owner = { name = "M. Joannis", email = "joannis@example.org" }',
        'license = "Each': 'license = "© Joannis’s family. Each',
        "glossary = []": 'glossary = []\nredact = ["Joannis"]',
    })
    set_toml(kennedy, KENNEDY, replace={
        'description = "John F. Kennedy': 'description = "With Joanis (sic). John F. Kennedy',
        "[[persons]]": '[[chapters]]\nstart = 0.0\ntitle = "Joannis speaks"\nurl = "https://example.org/joannis"\n\n'
                       '[[chapters]]\nstart = 2.0\ntitle = "The rest"\nurl = "https://example.org/rest"\n\n'
                       "[[persons]]",
        'role = "guest"': 'role = "guest"\nhref = "https://example.org/people/joannis"\n'
                          'img = "https://example.org/joannis.jpg"',
    })
    result = invoke(kennedy, "run")
    assert result.exit_code == 0, result.output
    assert_published_nowhere(kennedy, "joannis", "joanis")
    xml = (kennedy / "feed/feed.xml").read_text("utf-8")
    assert "<title>Les archives de [redacted]</title>" in xml
    assert "<itunes:author>[redacted]-Smith</itunes:author>" in xml
    assert "joannis@" not in xml  # an address that says the name is left out, not masked
    assert "https://example.org/rest" in (kennedy / "feed/episodes" / KENNEDY / "chapters.json").read_text()
    assert 'href="https://example.org/people' not in xml and "John F. Kennedy</podcast:person>" in xml
    assert "privacy archive.toml: masked" in result.stdout


def test_a_guid_that_says_a_withheld_name_is_refused(kennedy):
    set_toml(kennedy, KENNEDY, 'redact = ["JFK"]\nguid = "urn:jfk:1961"\n')
    result = invoke(kennedy, "render")
    assert result.exit_code == 1
    assert f"error: episodes/{KENNEDY}/episode.toml: guid: says a withheld name" in result.stderr
    assert not (kennedy / "feed/episodes" / KENNEDY).exists()


def test_a_slug_that_says_a_withheld_name_is_refused(kennedy):
    set_toml(kennedy, KENNEDY, 'redact = ["Kennedy"]\n')
    result = invoke(kennedy, "check")
    assert result.exit_code == 1
    assert f"episodes/{KENNEDY}: slug: folder name '{KENNEDY}' says a withheld name" in result.stderr


def test_a_name_across_segments_and_decorated_words_is_masked_and_silenced(kennedy):
    hand_made(kennedy, KENNEDY, ["And so my friend Marie", "Tremblay’s fellow Americans ask",
                                 "not what Joannis-Smith can do"])
    set_toml(kennedy, KENNEDY, 'redact = ["Marie Tremblay", "Joanis"]\n')
    result = invoke(kennedy, "render")
    assert result.exit_code == 0, result.output
    assert_published_nowhere(kennedy, "marie", "tremblay", "joannis", "joanis")
    vtt = (kennedy / "feed/episodes" / KENNEDY / "transcript.vtt").read_text("utf-8")
    assert "[redacted]’s" in vtt and "[redacted]-Smith" in vtt
    episode = public_view(load_archive(kennedy)).episode(KENNEDY)
    named = [w for w in words_of(kennedy, KENNEDY) if w.text.startswith(("Marie", "Tremblay", "Joannis"))]
    for word in named:
        assert any(a <= word.start - 0.1 and word.end + 0.1 <= b for a, b in episode.silence), word
    assert f"privacy {KENNEDY}: masked ('Joannis', 'Marie Tremblay')" in result.stdout


def test_a_term_that_matches_nothing_is_reported(kennedy):
    set_toml(kennedy, KENNEDY, 'redact = ["Samia Dumais"]\n')
    result = invoke(kennedy, "render")
    assert result.exit_code == 0
    assert f"privacy {KENNEDY}: unmatched (redact term(s) found nowhere in this episode: 'Samia Dumais')" \
        in result.stdout


# --- Only the archive's own files ---------------------------------------------------------


def test_an_image_that_links_outside_the_archive_is_refused(kennedy):
    (kennedy / "episodes" / KENNEDY / "cover.png").symlink_to(REPO / "cover.png")
    set_toml(kennedy, KENNEDY, 'image = "cover.png"\n')
    result = invoke(kennedy, "check")
    assert result.exit_code == 1
    assert f"episodes/{KENNEDY}/episode.toml: image: 'cover.png' leads to {REPO / 'cover.png'}, " \
           "outside the archive" in result.stderr


@pytest.mark.parametrize(("content", "words"), [
    (b"root:x:0:0:root:/root:/bin/bash\n", "is not a readable image"),
    ((REPO / "tests/data/LICENSES.md").read_bytes(), "is not a readable image"),
])
def test_an_image_must_be_an_image(kennedy, content, words):
    (kennedy / "episodes" / KENNEDY / "cover.png").write_bytes(content)
    set_toml(kennedy, KENNEDY, 'image = "cover.png"\n')
    result = invoke(kennedy, "check")
    assert result.exit_code == 1 and f"image: 'cover.png' {words}" in result.stderr


def test_an_image_named_for_another_format_is_refused(kennedy):
    shutil.copy(REPO / "cover.png", kennedy / "episodes" / KENNEDY / "cover.jpg")
    set_toml(kennedy, KENNEDY, 'image = "cover.jpg"\n')
    result = invoke(kennedy, "check")
    assert "image: 'cover.jpg' holds a PNG image, not the JPEG its name says" in result.stderr


def test_an_episode_folder_that_links_outside_the_archive_is_refused(kennedy, tmp_path):
    outside = tmp_path / "elsewhere"
    shutil.copytree(kennedy / "episodes" / KENNEDY, outside)
    (kennedy / "episodes" / "linked").symlink_to(outside)
    result = invoke(kennedy, "check")
    assert result.exit_code == 1
    assert f"episodes/linked: leads to {outside.resolve()}, outside the archive" in result.stderr


def test_a_dropped_in_transcript_that_links_outside_is_refused(kennedy, tmp_path):
    (tmp_path / "elsewhere.txt").write_text("And so my fellow Americans ask not", "utf-8")
    (kennedy / "episodes" / KENNEDY / "transcript.txt").symlink_to(tmp_path / "elsewhere.txt")
    result = invoke(kennedy, "align")
    assert result.exit_code == 1 and "transcript.txt: leads to" in result.stderr


# --- Publishing stages read the public view, nothing else ------------------------------------


def test_publishing_stages_read_no_episode_toml_nor_transcript(kennedy, monkeypatch):
    invoke(kennedy, "run")
    (kennedy / "feed/feed.xml").unlink()
    view = public_view(load_archive(kennedy))
    private = {"episode.toml", "transcript.json", "archive.toml", "transcript.txt"}
    opened = []

    def guarded(opener):
        def open_only_public(file, *args, **kwargs):
            if not isinstance(file, int) and os.path.basename(file) in private \
                    and not os.path.abspath(file).startswith(str(kennedy / "feed")):
                opened.append(file)
                raise AssertionError(f"a publishing stage read {file}")
            return opener(file, *args, **kwargs)
        return open_only_public

    monkeypatch.setattr(builtins, "open", guarded(builtins.open))
    monkeypatch.setattr(io, "open", guarded(io.open))
    outcomes = [*render_archive(view), *index_archive(view), *publish_archive(view)]
    monkeypatch.undo()
    assert opened == [] and all(o.status != "failed" for o in outcomes), outcomes
    assert (kennedy / "feed/feed.xml").exists()


def test_the_import_contracts_hold():
    """pyproject.toml's import-linter contracts: publishing modules never import the loader."""
    lint_imports = Path(sys.executable).parent / "lint-imports"
    finished = subprocess.run([str(lint_imports)], cwd=REPO, capture_output=True, text=True, check=False)
    assert finished.returncode == 0, finished.stdout + finished.stderr
    assert "Contracts: 1 kept, 0 broken" in finished.stdout
