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
import tomllib
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from names import FILLER, assume_name_is_distinct, decorated, names
from pydub import AudioSegment

from pipeline.archive import load_archive, read_transcript
from pipeline.cli import cli
from pipeline.feed import publish_archive
from pipeline.formats import render_archive
from pipeline.model import Segment, Word
from pipeline.privacy import public_view, publishable
from pipeline.search import index_archive, search
from pipeline.text import fold

from conftest import (
    REPO,
    copy_archive,
    published_texts,
    raw_index_bytes,
    set_archive_toml,
    write_transcript,
)

NOW = dt.datetime.now(dt.UTC)
TOMORROW = (NOW + dt.timedelta(days=1)).date()
KENNEDY, FOREST, EJ, STEREO = ("kennedy-inaugural-1961", "conservateur-des-eaux-et-forets",
                               "eric-joanis-readalongs", "two-voices-stereo")


def invoke(root, *arguments):
    return CliRunner().invoke(cli, ["--archive", str(root), *arguments])


class Published(NamedTuple):
    exit_code: int
    stdout: str
    stderr: str


def publish_all(root):
    """index and feed (each renders): the whole publication of hand-made transcripts,
    without the model."""
    results = [invoke(root, "index"), invoke(root, "feed")]
    return Published(max(r.exit_code for r in results), "".join(r.stdout for r in results),
                     "".join(r.stderr for r in results))


def set_toml(root, slug, first_lines="", replace=None):
    path = root / "episodes" / slug / "episode.toml"
    text = path.read_text("utf-8")
    for old, new in (replace or {}).items():
        assert old in text, old
        text = text.replace(old, new)
    path.write_text(first_lines + text, "utf-8")


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


def a_long_word(root, slug, *, avoid=()):
    """A word whisper wrote in this episode (its words vary with the core count)."""
    words = {fold(w.text.strip(".,;:!?")) for w in words_of(root, slug)} - {fold(a) for a in avoid}
    # One token to the index: no hyphen or apostrophe splits it.
    return min((w for w in words if w.isalpha()), key=lambda w: (-len(w), w))


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
    result = publish_all(kennedy)
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


# --- Properties: whatever a name looks like and wherever it is, no published byte says it -------

METADATA_FIELDS = ["title", "description", "chapter", "person", "archive title", "archive description",
                   "archive author", "archive license", "owner name"]


@pytest.fixture(scope="module")
def property_archive(tmp_path_factory):
    return copy_archive(tmp_path_factory.mktemp("property") / "a", slugs=[KENNEDY])


def toml_string(text):
    return json.dumps(text, ensure_ascii=False)


def publish_in_memory(root, *, words, boundary, field, form, name):
    """Write the example's episode.toml, archive.toml and transcript, and return every
    byte the publishing stages would write from the public view, and the view."""
    fields = {key: "Plain words" for key in METADATA_FIELDS}
    if field is not None:
        fields[field] = f"Plain {form} words"
    (root / "archive.toml").write_text(
        f"title = {toml_string(fields['archive title'])}\n"
        f"description = {toml_string(fields['archive description'])}\n"
        f"author = {toml_string(fields['archive author'])}\n"
        f"license = {toml_string(fields['archive license'])}\n"
        f'owner = {{ name = {toml_string(fields["owner name"])}, email = "owner@example.org" }}\n'
        'language = "en"\nbase_url = "https://example.org/a/"\n'
        f"redact = [{toml_string(name)}]\n", "utf-8")
    (root / "episodes" / KENNEDY / "episode.toml").write_text(
        f"title = {toml_string(fields['title'])}\ndate = 2025-01-20\nlanguage = \"en\"\n"
        f'audio = "jfk.flac"\ndescription = {toml_string(fields["description"])}\n'
        f"[[chapters]]\nstart = 0.0\ntitle = {toml_string(fields['chapter'])}\n"
        f"[[persons]]\nname = {toml_string(fields['person'])}\n", "utf-8")
    texts = [" ".join(words[:boundary]) or "river", " ".join(words[boundary:]) or "river"]
    hand_made(root, KENNEDY, texts, word_seconds=0.2)
    view = public_view(load_archive(root))
    from pipeline.cues import build_cues
    from pipeline.enclosure import PublishedAudio
    from pipeline.feed import build_feed, cover_url
    from pipeline.formats import WRITERS, Document, chapters_json, paragraphs
    from pipeline.search import _WhooshBatch, episode_documents
    from pipeline.site import episode_page, home_page

    (episode,) = view.episodes
    doc = Document(view.archive, episode, build_cues(episode.transcript), paragraphs(episode.transcript))
    published = [writer(doc).encode() for writer in WRITERS.values()]
    audio = PublishedAudio(root / "feed/x.mp3", 1000, 11.0)
    cover = cover_url(view.archive)
    published.append(build_feed(view.archive, [(episode, audio)], cover))
    published.append(episode_page(view.archive, episode, audio, cover).encode())
    published.append(home_page(view.archive, [(episode, audio)], cover).encode())
    published.append(chapters_json(episode).encode())
    published += [json.dumps(_WhooshBatch._fields(d), ensure_ascii=False).encode()
                  for d in episode_documents(episode)]
    return fold(b"\n".join(published).decode()), view


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(data=st.data(), name=names)
def test_no_published_byte_says_a_withheld_name_wherever_it_is(property_archive, data, name):
    root = property_archive
    parts = assume_name_is_distinct(name)
    for part in parts:
        assume(len(part) >= 3)
    form = data.draw(decorated(name))
    words = data.draw(st.lists(st.sampled_from(FILLER), min_size=2, max_size=10))
    field = data.draw(st.sampled_from([None, *METADATA_FIELDS]))  # None: in the words
    if field is not None:
        form = form.replace("\n", " ")  # these fields are one line
    position = data.draw(st.integers(0, len(words)))
    spoken = form.split() if field is None else []
    said = [*words[:position], *spoken, *words[position:]]
    # The name may straddle two segments.
    boundary = data.draw(st.integers(0, len(said)))
    baseline, _ = publish_in_memory(root, words=words, boundary=min(boundary, len(words)), field=None,
                                    form="", name=name)
    for part in parts:
        assume(part not in baseline)  # the boilerplate itself does not hold it
    published, view = publish_in_memory(root, words=said, boundary=boundary, field=field, form=form,
                                        name=name)
    for part in parts:
        assert part not in published, (form, field)
    if field is None:
        (episode,) = view.episodes
        private = [w for s in read_transcript(root / "episodes" / KENNEDY / "transcript.json").segments
                   for w in s.words]
        for word in private:
            if any(part in fold(word.text) for part in parts):
                assert any(a <= word.start and word.end <= b for a, b in episode.silence), word


# --- What an attacker or a careless producer tried, and what must hold ---------------------


@pytest.fixture
def two(tmp_path):
    root = copy_archive(tmp_path / "two", slugs=[KENNEDY, FOREST])
    hand_made(root, KENNEDY, ["And so my fellow Americans", "ask not what your country can do"])
    hand_made(root, FOREST, ["Sous le consulat il devient", "conservateur des eaux et forêts"], language="fr")
    return root


def test_a_name_across_segments_without_word_times_is_masked_and_silenced(kennedy):
    path = kennedy / "episodes" / KENNEDY / "transcript.json"
    data = json.loads(path.read_text("utf-8"))
    data["segments"][0].update(text="And so my fellow Éric", words=[])
    data["segments"][1].update(text="Joanis ask not what your country can do", words=[])
    path.write_text(json.dumps(data), "utf-8")
    set_toml(kennedy, KENNEDY, 'redact = ["Éric Joanis"]\n')
    assert invoke(kennedy, "render").exit_code == 0
    assert_published_nowhere(kennedy, "joanis")
    assert "fellow [redacted]" in (kennedy / "feed/episodes" / KENNEDY / "transcript.txt").read_text("utf-8")
    episode = public_view(load_archive(kennedy)).episode(KENNEDY)
    for segment in data["segments"]:  # where in them the name is said is not known
        assert any(a <= segment["start"] and segment["end"] <= b for a, b in episode.silence)


def test_a_name_withheld_later_leaves_no_stale_chapter(two):
    set_toml(two, KENNEDY, replace={"[[persons]]": '[[chapters]]\nstart = 0.0\ntitle = "Thanks to Joanis"\n\n'
                                                   "[[persons]]"})
    assert publish_all(two).exit_code == 0
    set_archive_toml(two, {"glossary = []": 'glossary = []\nredact = ["Joanis"]'})
    assert invoke(two, "index").exit_code == 0  # not the feed command: withdrawal does it
    assert_published_nowhere(two, "joanis")


@pytest.mark.parametrize(("where", "edit"), [
    ("transcript.json: segments[1].language", lambda root: _set_segment(root, language="x-joanis")),
    ("episode.toml: language", lambda root: set_toml(root, KENNEDY, replace={'language = "en"': 'language = "en-Joanis"'})),
])
def test_a_language_must_be_a_language_code(kennedy, where, edit):
    edit(kennedy)
    result = invoke(kennedy, "render")
    assert result.exit_code == 1 and f"episodes/{KENNEDY}/{where}: " in result.stderr
    assert_published_nowhere(kennedy, "joanis")


def _set_segment(root, **values):
    path = root / "episodes" / KENNEDY / "transcript.json"
    data = json.loads(path.read_text("utf-8"))
    data["segments"][1].update(values)
    path.write_text(json.dumps(data), "utf-8")


def test_a_base_url_that_says_a_withheld_name_publishes_nothing(two):
    assert publish_all(two).exit_code == 0
    assert search(two, "consulat")
    set_archive_toml(two, {'base_url = "https://example.org/podarchive/"': 'base_url = "https://joanis.example.org/"',
                           "glossary = []": 'glossary = []\nredact = ["Joanis"]'})
    assert search(two, "consulat") == []
    result = publish_all(two)
    assert result.exit_code == 1
    assert "error: archive.toml: base_url: says a withheld name" in result.stderr
    assert not (two / "feed/feed.xml").exists() and list((two / "feed/episodes").iterdir()) == []
    assert_published_nowhere(two, "joanis")


def test_an_image_is_published_as_its_pixels_alone(kennedy):
    from PIL import Image, PngImagePlugin

    text = PngImagePlugin.PngInfo()
    text.add_text("Description", "Portrait of Eric Joanis", zip=True)
    text.add_text("Author", "Joanis")
    Image.open(REPO / "cover.png").save(kennedy / "episodes" / KENNEDY / "cover.png", pnginfo=text)
    set_toml(kennedy, KENNEDY, 'image = "cover.png"\nredact = ["Joanis"]\n')
    assert publish_all(kennedy).exit_code == 0
    published = kennedy / "feed/episodes" / KENNEDY / "cover.png"
    with Image.open(published) as image, Image.open(REPO / "cover.png") as original:
        assert image.info.get("Description") is None and image.tobytes() == original.convert(image.mode).tobytes()
    assert_published_nowhere(kennedy, "joanis")
    assert invoke(kennedy, "check").exit_code == 0


@pytest.mark.parametrize("hide", [
    lambda root: set_toml(root, FOREST, 'redact = "Joanis"\n'),  # an invalid value: not loaded
    lambda root: (root / "episodes" / FOREST).rename(root / "episodes" / f".{FOREST}"),  # a hidden folder
])
def test_names_of_episodes_that_are_not_loaded_are_withheld_anyway(two, hide):
    set_toml(two, FOREST, 'redact = ["Joanis"]\n')
    set_toml(two, KENNEDY, replace={'description = "John F. Kennedy': 'description = "Thanks to Joanis. John F. Kennedy'})
    set_toml(two, FOREST, replace={'redact = ["Joanis"]\n': ""})
    hide(two)
    if (two / "episodes" / f".{FOREST}").exists():
        set_toml_path = two / "episodes" / f".{FOREST}" / "episode.toml"
        set_toml_path.write_text('redact = ["Joanis"]\n' + set_toml_path.read_text("utf-8"), "utf-8")
    invoke(two, "render")
    assert (two / "feed/episodes" / KENNEDY / "transcript.html").exists()
    assert_published_nowhere(two, "joanis")


def test_check_reads_files_as_any_reader_could(kennedy):
    import gzip

    set_toml(kennedy, KENNEDY, 'redact = ["Joanis"]\n')
    assert invoke(kennedy, "render").exit_code == 0
    feed = kennedy / "feed"
    (feed / "wide.txt").write_bytes("Thanks to Joanis".encode("utf-16"))
    (feed / "packed.gz").write_bytes(gzip.compress(b"Thanks to Joanis"))
    (feed / "page.svg").write_text("<text>&#74;oanis</text>", "utf-8")
    (feed / "Joanis-photo.png").write_bytes((REPO / "cover.png").read_bytes())
    (feed / "private").symlink_to(kennedy / "episodes")
    result = invoke(kennedy, "check")
    assert result.exit_code == 1
    for name in ("wide.txt", "packed.gz", "page.svg", "Joanis-photo.png"):
        assert f"feed/{name}: privacy: contains redacted term 'Joanis'" in result.stderr, name
    assert "feed/private: privacy: a link to" in result.stderr


def test_a_local_time_the_clocks_pass_twice_is_the_later_one(kennedy):
    set_archive_toml(kennedy, {'language = "en"': 'language = "en"\ntimezone = "America/Toronto"'})
    set_toml(kennedy, KENNEDY, 'status = "embargoed"\nembargo_until = 2025-11-02T01:30:00\n')
    archive = load_archive(kennedy)
    episode = archive.episode(KENNEDY)
    first_pass = dt.datetime(2025, 11, 2, 5, 45, tzinfo=dt.UTC)  # 01:45 EDT, before the clocks go back
    assert not publishable(episode, first_pass, archive.timezone)
    assert publishable(episode, dt.datetime(2025, 11, 2, 6, 30, tzinfo=dt.UTC), archive.timezone)


@pytest.mark.parametrize(("start", "end", "field"), [("nan", "2", "START"), ("0", "inf", "END")])
def test_clip_refuses_times_that_are_not_numbers_of_seconds(kennedy, tmp_path, start, end, field):
    publish_all(kennedy)
    result = invoke(kennedy, "clip", KENNEDY, start, end, "-o", str(tmp_path / "c.mp3"))
    assert result.exit_code == 2 and f"Invalid value for '{field}'" in result.stderr
    assert "Traceback" not in result.output


def test_a_split_surname_in_the_words_is_masked_and_silenced(kennedy):
    hand_made(kennedy, KENNEDY, ["And so my fellow Éric Jo-Annis, ask not", "what your Joa- nis can do"])
    set_toml(kennedy, KENNEDY, 'redact = ["Éric Joanis", "Joanis"]\n')
    assert invoke(kennedy, "render").exit_code == 0
    assert_published_nowhere(kennedy, "annis", "nis can")
    episode = public_view(load_archive(kennedy)).episode(KENNEDY)
    for word in (w for w in words_of(kennedy, KENNEDY) if w.text.startswith(("Jo", "nis", "Éric"))):
        assert any(a <= word.start and word.end <= b for a, b in episode.silence), word


def test_identifiers_that_say_a_name_loosely_are_refused_or_dropped(two):
    set_toml(two, KENNEDY, 'redact = ["Joanis"]\nguid = "urn:oral-history:eric-jo-annis:2019"\n')
    path = two / "episodes" / FOREST / "episode.toml"
    path.write_text(path.read_text("utf-8") + '\n[[persons]]\nname = "Host"\n'
                    'href = "https://xn--ricjoanis-93a.example/"\n', "utf-8")
    set_archive_toml(two, {'categories = ["Education"]': 'categories = ["Education", "Joanis Studies"]'})
    result = publish_all(two)
    assert f"error: episodes/{KENNEDY}/episode.toml: guid: says a withheld name" in result.stderr
    xml = (two / "feed/feed.xml").read_text("utf-8")
    assert "xn--" not in xml and "Host</podcast:person>" in xml
    assert '<itunes:category text="Education"/>' in xml and "[redacted]" not in xml


def test_a_new_name_hides_stale_hits_even_when_split_across_segments(two):
    hand_made(two, KENNEDY, ["And so my fellow Éric", "Joanis ask not what your country can do"])
    assert publish_all(two).exit_code == 0
    assert search(two, "fellow") and search(two, "country")
    set_toml(two, FOREST, 'redact = ["Éric Joanis"]\n')  # withheld in another episode, for all
    assert search(two, "fellow") == [] and search(two, "country") == []  # no hit says the name whole
    assert invoke(two, "index").exit_code == 0
    assert search(two, "fellow") and search(two, "country")
    assert_published_nowhere(two, "joanis")


@pytest.mark.parametrize("typo", [
    lambda text: text.replace('redact = ["Joanis"]', 'redacted = ["Joanis"]'),  # a misspelled key
    lambda text: text.replace('title = "', 'title = "unclosed '),  # and not TOML at all
])
def test_names_of_a_broken_episode_toml_are_withheld_anyway(two, typo):
    set_toml(two, KENNEDY, replace={'description = "John F. Kennedy': 'description = "Thanks to Joanis. JFK'})
    path = two / "episodes" / FOREST / "episode.toml"
    path.write_text(typo('redact = ["Joanis"]\n' + path.read_text("utf-8")), "utf-8")
    if "unclosed" in path.read_text("utf-8"):
        path.write_text(path.read_text("utf-8").replace("unclosed ", "unclosed\n", 1), "utf-8")
    invoke(two, "render")
    assert (two / "feed/episodes" / KENNEDY / "transcript.html").exists()
    assert_published_nowhere(two, "joanis")


def test_a_time_the_clocks_skip_is_read_as_the_later_moment(kennedy):
    set_archive_toml(kennedy, {'language = "en"': 'language = "en"\ntimezone = "America/Santiago"'})
    set_toml(kennedy, KENNEDY, 'status = "embargoed"\nembargo_until = 2025-09-07\n')  # no midnight that day
    archive = load_archive(kennedy)
    episode = archive.episode(KENNEDY)
    assert not publishable(episode, dt.datetime(2025, 9, 7, 3, 30, tzinfo=dt.UTC), archive.timezone)
    assert publishable(episode, dt.datetime(2025, 9, 7, 4, 0, tzinfo=dt.UTC), archive.timezone)


def test_check_reads_archives_escapes_tags_and_the_index_bytes_whoosh_skips(kennedy, tmp_path):
    import bz2
    import io as bytes_io
    import tarfile
    import zipfile

    from mutagen.apev2 import APEv2

    set_toml(kennedy, KENNEDY, 'redact = ["Joanis"]\n')
    assert publish_all(kennedy).exit_code == 0
    feed, secret = kennedy / "feed", b"Thanks to Joanis"
    with zipfile.ZipFile(feed / "transcripts.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("a.txt", secret)
    (feed / "notes.bz2").write_bytes(bz2.compress(secret))
    packed = bytes_io.BytesIO()
    with tarfile.open(fileobj=packed, mode="w") as archive:
        info = tarfile.TarInfo("inner.txt")
        info.size = len(secret)
        archive.addfile(info, bytes_io.BytesIO(secret))
    (feed / "bundle.tar").write_bytes(packed.getvalue())
    (feed / "app.js").write_text('var who = "\\u004aoanis";', "utf-8")
    (feed / "notes.mp3").write_text("Joanis said so", "utf-8")  # not an mp3 at all
    (feed / "narrow.txt").write_bytes("Thanks to Joanis".encode("utf-16-le"))
    (feed / "dl" / "Éric Joanis").mkdir(parents=True)
    tagged = feed / "copy.mp3"
    shutil.copy(feed / "episodes" / KENNEDY / "audio.mp3", tagged)
    tags = APEv2()
    tags["Comment"] = "Joanis"
    tags.save(tagged)
    shutil.copy(kennedy / "episodes" / KENNEDY / "jfk.flac", feed / "original.flac")
    segment = next((kennedy / "index/whoosh").glob("*.seg"))
    with open(segment, "ab") as appended:
        appended.write(b" Joanis ")
    (kennedy / "index/whoosh/MAIN_x.notes").write_bytes(secret)
    result = invoke(kennedy, "check")
    assert result.exit_code == 1
    for name in ("transcripts.zip", "notes.bz2", "bundle.tar", "app.js", "notes.mp3", "narrow.txt",
                 "dl/Éric Joanis", "copy.mp3"):
        assert f"feed/{name}: privacy: contains redacted term 'Joanis'" in result.stderr, name
    for name in ("copy.mp3", "original.flac"):
        assert f"feed/{name}: privacy: a recording podarchive did not publish" in result.stderr, name
    for path in (segment.relative_to(kennedy), "index/whoosh/MAIN_x.notes"):
        assert f"{path}: privacy: contains redacted term 'Joanis'" in result.stderr, path


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


def test_check_finds_short_passages_of_unpublished_episodes(kennedy):
    hand_made(kennedy, KENNEDY, ["Tout est confidentiel ici", "and so my fellow Americans",
                                 "the secret plan for Monday night"])
    set_toml(kennedy, KENNEDY, "restrict = [[4.0, 60.0]]\n")  # the third segment
    assert invoke(kennedy, "render").exit_code == 0
    (kennedy / "feed/plan.txt").write_text("Their plan: the SECRET plan, for Monday night.", "utf-8")
    assert invoke(kennedy, "check").exit_code == 1
    set_toml(kennedy, KENNEDY, 'status = "restricted"\n')
    assert invoke(kennedy, "render").exit_code == 0
    (kennedy / "feed/stray.txt").write_text("« Tout est confidentiel, ici. »", "utf-8")
    result = invoke(kennedy, "check")
    assert result.exit_code == 1
    assert f"feed/plan.txt: privacy: contains words of unpublished episode {KENNEDY}" in result.stderr
    assert f"feed/stray.txt: privacy: contains words of unpublished episode {KENNEDY}" in result.stderr
    set_toml(kennedy, KENNEDY, replace={'status = "restricted"\n': ""})
    assert invoke(kennedy, "render").exit_code == 0
    result = invoke(kennedy, "check")
    assert f"feed/plan.txt: privacy: contains restricted words of {KENNEDY}" in result.stderr
    assert "feed/stray.txt" not in result.stderr  # public again: its words may be published


@settings(max_examples=200, deadline=None)
@given(public=st.lists(st.lists(st.sampled_from(["la", "Forêt", "forêt", "de", "nuit", "the", "plan", "l'été"]),
                                max_size=12), max_size=4),
       private=st.lists(st.sampled_from(["la", "foret", "de", "nuit", "the", "plan", "l", "ete"]),
                        min_size=3, max_size=6))
def test_a_private_sequence_counts_as_public_exactly_when_a_public_text_says_it(public, private):
    """check's fingerprints of what the public view says answer as the sequences
    themselves would: a private sequence said in public is no finding, any other is."""
    from pipeline.audit import _fingerprints, _sequences, _text_fingerprints, _word_code

    texts = [" ".join(words) for words in public]
    said = {tuple(words[first:first + len(private)]) for text in texts
            for words in [[piece for piece in fold(text).replace("'", " ").split()]]
            for first in range(len(words) - len(private) + 1)}
    sequence = _sequences(" ".join(private))[0]
    assert sequence == tuple(private)
    fingerprint = _fingerprints(np.array([[_word_code(word) for word in sequence]], np.uint64))[0]
    assert (fingerprint in _text_fingerprints(texts)) == (sequence in said)


# --- Publishing stages read the public view, nothing else ------------------------------------


def test_publishing_stages_read_no_episode_toml_nor_transcript(kennedy, monkeypatch):
    publish_all(kennedy)
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
    """pyproject.toml's import-linter contracts: publishing modules never import the loader,
    nor the decoder or the timing code; transcription and loading keep to their own."""
    lint_imports = Path(sys.executable).parent / "lint-imports"
    finished = subprocess.run([str(lint_imports)], cwd=REPO, capture_output=True, text=True, check=False)
    assert finished.returncode == 0, finished.stdout + finished.stderr
    contracts = tomllib.loads((REPO / "pyproject.toml").read_text("utf-8"))["tool"]["importlinter"]["contracts"]
    assert f"Contracts: {len(contracts)} kept, 0 broken" in finished.stdout and len(contracts) >= 4


# --- On real speech: the bundled archive, transcribed once per test run -------------------


def copy_transcribed(transcribed_archive, target, slugs=None):
    source, _ = transcribed_archive
    ignored = ["feed", "index", ".podarchive.lock"]
    if slugs is not None:
        ignored += [folder.name for folder in (source / "episodes").iterdir() if folder.name not in slugs]
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(*ignored))
    return target


@pytest.fixture
def consent_archive(transcribed_archive, tmp_path):
    """The bundled archive, transcribed, with promises to keep: one episode restricted,
    one embargoed until tomorrow, and a name really spoken in a public one withheld."""
    root = copy_transcribed(transcribed_archive, tmp_path / "consent")
    set_toml(root, KENNEDY, 'status = "restricted"\n')
    set_toml(root, FOREST, f'status = "embargoed"\nembargo_until = {TOMORROW}\n')
    # A producer names the folder of a testimony without the name it withholds.
    (root / "episodes" / EJ).rename(root / "episodes/interview-cnrc")
    set_toml(root, "interview-cnrc", 'redact = ["Éric Joanis"]\n')
    result = invoke(root, "run")
    assert result.exit_code == 0, result.output
    return root


@pytest.mark.model
def test_no_published_byte_holds_a_promise_broken(consent_archive):
    root = consent_archive
    assert not (root / "feed/episodes" / KENNEDY).exists()
    assert not (root / "feed/episodes" / FOREST).exists()
    assert_published_nowhere(root, "joanis", "ask not what your country", "my fellow americans",
                             "conservateur des eaux", "kennedy-inaugural", "conservateur-des-eaux")
    raw = raw_index_bytes(root)
    for needle in (b"joanis", b"fellow", b"conservateur"):
        assert needle not in raw, needle
    html = (root / "feed/episodes/interview-cnrc/transcript.html").read_text("utf-8")
    assert "je m&#39;appelle [redacted]" in html
    # The producers keep the words.
    assert "joanis" in [fold(w.text).strip(".,;:!?") for w in words_of(root, "interview-cnrc")]
    result = invoke(root, "check")
    assert result.exit_code == 0, result.output
    for query in ("Joanis", "joanis", "JOANÍS", '"Éric Joanis"', "ask not", "conservateur", "horizon"):
        found = [hit["episode"] for hit in search(root, query)]
        assert found == [] or (query == "horizon" and found == [STEREO]), (query, found)
    assert search(root, a_long_word(root, "interview-cnrc", avoid=["Joanis"]))  # the rest is found


@pytest.mark.model
def test_the_withheld_name_is_silent_in_the_published_mp3(consent_archive):
    root = consent_archive
    words = words_of(root, "interview-cnrc")
    first = next(i for i, w in enumerate(words) if fold(w.text) == "eric")
    start, end = words[first].start, words[first + 1].end
    mp3 = root / "feed/episodes/interview-cnrc/audio.mp3"
    silent, spoken = level_dbfs(mp3, start, end), level_dbfs(mp3, 2.9, 4.0)
    print(f"withheld span {start:.2f}-{end:.2f} s: {silent:.1f} dBFS; speech after it: {spoken:.1f} dBFS")
    assert silent < -60 and spoken > -35


@pytest.mark.model
def test_whispers_misspelling_of_a_withheld_name_is_masked_and_silenced(transcribed_archive, tmp_path):
    root = copy_transcribed(transcribed_archive, tmp_path / "a", slugs=[EJ])
    (root / "episodes" / EJ).rename(root / "episodes/interview")
    set_toml(root, "interview", 'redact = ["Joannis"]\n')  # whisper hears and writes "Joanis"
    result = invoke(root, "run")
    assert result.exit_code == 0, result.output
    assert "privacy interview: masked ('Joanis'" in result.stdout
    assert_published_nowhere(root, "joanis", "joannis")
    assert b"joanis" not in raw_index_bytes(root)
    mp3 = root / "feed/episodes/interview/audio.mp3"
    for word in (w for w in words_of(root, "interview") if fold(w.text).startswith("joanis")):
        assert level_dbfs(mp3, word.start, word.end) < -60, word
    assert invoke(root, "check").exit_code == 0


@pytest.mark.model
def test_a_restricted_segment_is_cut_and_silenced(consent_archive):
    root = consent_archive
    path = root / "episodes/interview-cnrc/transcript.json"
    data = json.loads(path.read_text("utf-8"))
    segment = data["segments"][-1]
    segment["restricted"] = True
    path.write_text(json.dumps(data, ensure_ascii=False), "utf-8")
    said_elsewhere = {fold(w["text"]) for s in data["segments"][:-1] for w in s["words"]}
    said_in_segment = [w["text"].strip(".,;:!?") for w in segment["words"]]
    word = max((w["text"] for w in segment["words"] if fold(w["text"]) not in said_elsewhere
                and w["text"].isalpha()), key=len)
    assert search(root, word) == []  # the gate is asked before the index is updated
    assert invoke(root, "run").exit_code == 0
    for name in ("transcript.vtt", "transcript.srt", "transcript.txt", "transcript.json", "transcript.html"):
        assert word not in (root / "feed/episodes/interview-cnrc" / name).read_text("utf-8")
    assert fold(word).encode() not in raw_index_bytes(root)
    mp3 = root / "feed/episodes/interview-cnrc/audio.mp3"
    assert level_dbfs(mp3, segment["start"] + 0.05, segment["end"] - 0.05) < -60
    assert search(root, a_long_word(root, "interview-cnrc", avoid=[*said_in_segment, "Joanis"]))  # the rest is found


@pytest.mark.model
def test_check_audits_every_published_byte(consent_archive, transcribed_archive, tmp_path):
    root = consent_archive
    page = root / "feed/episodes/interview-cnrc/transcript.txt"
    page.write_text(page.read_text("utf-8") + "\nÉRIC-JOANIS’s\n", "utf-8")
    (root / "feed/stray.txt").write_text("And so, my fellow Americans, ask not what your country can do",
                                         "utf-8")
    (root / "feed/title.html").write_text("<p>Ask&#160;not <b>what</b> your country can do</p>", "utf-8")
    (root / "feed/link.txt").write_text(f"https://example.org/podarchive/episodes/{FOREST}/", "utf-8")
    # The published mp3 replaced by one where the withheld name can be heard.
    unsilenced = tmp_path / "unsilenced"
    copy_transcribed(transcribed_archive, unsilenced, slugs=[EJ])
    assert invoke(unsilenced, "run").exit_code == 0
    shutil.copy(unsilenced / "feed/episodes" / EJ / "audio.mp3", root / "feed/episodes/interview-cnrc/audio.mp3")
    result = invoke(root, "check")
    assert result.exit_code == 1
    for expected in (
        "feed/episodes/interview-cnrc/transcript.txt: privacy: contains redacted term 'Éric Joanis'",
        f"feed/stray.txt: privacy: contains words of unpublished episode {KENNEDY}",
        f"feed/title.html: privacy: contains words of unpublished episode {KENNEDY}",
        f"feed/link.txt: privacy: links to unpublished episode {FOREST}",
        "feed/episodes/interview-cnrc/audio.mp3: privacy: ",
    ):
        assert expected in result.stderr, (expected, result.stderr)
    assert "where the gate silences a withheld name or passage" in result.stderr



@pytest.mark.model
def test_an_episode_restricted_after_publication_is_withdrawn_everywhere(consent_archive):
    root = consent_archive
    assert (root / "feed/episodes" / STEREO / "audio.mp3").exists()
    assert search(root, '"the horizon"')
    set_toml(root, STEREO, 'status = "restricted"\n')
    assert search(root, '"the horizon"') == []  # asked at query time, before any command runs
    result = invoke(root, "feed")  # the feed alone withdraws it from everything
    assert result.exit_code == 0, result.output
    assert f"{STEREO}: withdrawn (removed from feed/)" in result.stdout
    assert not (root / "feed/episodes" / STEREO).exists()
    assert STEREO not in (root / "feed/feed.xml").read_text("utf-8")
    assert_published_nowhere(root, "the horizon seems extremely distant", "horizon")
    assert b"horizon" not in raw_index_bytes(root)  # not even as a deleted document
    assert invoke(root, "check").exit_code == 0


@pytest.mark.model
def test_a_name_withheld_later_leaves_no_byte_in_the_index(consent_archive):
    root = consent_archive
    word = a_long_word(root, "interview-cnrc")
    assert word.encode() in raw_index_bytes(root)
    set_archive_toml(root, {"glossary = []": f'glossary = []\nredact = ["{word}"]'})
    assert search(root, word) == []
    result = invoke(root, "index")
    assert result.exit_code == 0, result.output
    assert word.encode() not in raw_index_bytes(root)
    assert_published_nowhere(root, word)  # the index command withdrew it from feed/ too
    assert search(root, a_long_word(root, "interview-cnrc", avoid=[word]))
    assert invoke(root, "check").exit_code == 0


@pytest.mark.model
def test_one_broken_input_stops_no_other_episodes_withdrawal(transcribed_archive, tmp_path):
    root = copy_transcribed(transcribed_archive, tmp_path / "a")
    assert invoke(root, "run").exit_code == 0
    # In one edit: a NaN word time, a NUL in a title, a damaged index file, and an
    # episode restricted.
    path = root / "episodes/mit-licence-en-de/transcript.json"
    data = json.loads(path.read_text("utf-8"))
    data["segments"][0]["words"][0]["start"] = float("nan")
    path.write_text(json.dumps(data), "utf-8")  # Python writes it as NaN, as a hand edit may
    set_toml(root, STEREO, replace={'title = "Two voices, one per channel"': 'title = "Two voices\\u0000"'})
    for segment in (root / "index/whoosh").glob("*.seg"):
        segment.write_bytes(segment.read_bytes()[:100])
    set_toml(root, KENNEDY, 'status = "restricted"\n')
    result = invoke(root, "run")
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert any(line.startswith("error: episodes/mit-licence-en-de/transcript.json: segments[") for line in errors)
    assert any(line.startswith(f"error: episodes/{STEREO}/episode.toml: title: holds a control character")
               for line in errors), errors
    # A damaged index cannot be checked against the gate: withdrawal removes it, index makes it anew.
    assert "withdraw index/whoosh: removed (a file of it could not be read" in result.stdout
    assert "index eric-joanis-readalongs: indexed" in result.stdout
    for withdrawn in (KENNEDY, STEREO, "mit-licence-en-de"):  # when in doubt, do not publish
        assert not (root / "feed/episodes" / withdrawn).exists()
        assert withdrawn not in (root / "feed/feed.xml").read_text("utf-8")
    assert b"fellow" not in raw_index_bytes(root) and b"horizon" not in raw_index_bytes(root)
    assert search(root, a_long_word(root, FOREST)) and search(root, a_long_word(root, EJ))  # the others go on
    assert (root / "feed/episodes" / FOREST / "audio.mp3").exists()


@pytest.mark.model
def test_corrections_never_publish_nor_wipe_a_restricted_passage(transcribed_archive, tmp_path):
    root = copy_transcribed(transcribed_archive, tmp_path / "a", slugs=[EJ])
    path = root / "episodes" / EJ / "transcript.json"
    data = json.loads(path.read_text("utf-8"))
    data["segments"][0]["restricted"] = True
    path.write_text(json.dumps(data, ensure_ascii=False), "utf-8")
    assert invoke(root, "run").exit_code == 0
    restricted_words = [w["text"] for w in data["segments"][0]["words"]]
    # The published text, copied, one word corrected and dropped in: it lacks the
    # restricted passage, which must not be deleted from the private transcript.
    published = (root / "feed/episodes" / EJ / "transcript.txt").read_text("utf-8")
    (root / "episodes" / EJ / "transcript.txt").write_text(published.replace("Nunavut", "Nunavik", 1), "utf-8")
    invoke(root, "run")
    after = json.loads(path.read_text("utf-8"))
    assert after["segments"][0]["restricted"] is True
    assert [w["text"] for w in after["segments"][0]["words"]] == restricted_words
    # The private text with a sentence added at the end of the restricted passage.
    (root / "episodes" / EJ / "transcript.txt").unlink()
    lines = [" ".join(w["text"] for w in s["words"]) for s in after["segments"]]
    lines[0] += " Mon salaire secret est de quatre-vingt mille dollars."
    (root / "episodes" / EJ / "transcript.txt").write_text("\n".join(lines), "utf-8")
    invoke(root, "run")  # aligned into the restricted passage, or refused: never published
    assert_published_nowhere(root, "salaire secret", "quatre-vingt mille")
    assert search(root, "salaire") == []


# --- What the gate and check remember never outlives a change ------------------------------

def test_the_gate_remembers_an_episode_only_while_nothing_it_is_made_from_changes(kennedy, monkeypatch):
    from pipeline import privacy

    made = []
    real = privacy._public_episode
    monkeypatch.setattr(privacy, "_public_episode", lambda *args: made.append(args[1].slug) or real(*args))

    def said() -> str:
        return " ".join(s.text for s in public_view(load_archive(kennedy)).episode(KENNEDY).transcript.segments)

    assert said() == "And so my fellow Americans ask not what your country can do" and made == [KENNEDY]
    assert said() and made == [KENNEDY]  # remembered
    set_archive_toml(kennedy, {'language = "': 'redact = ["Americans"]\nlanguage = "'})
    assert "Americans" not in said() and len(made) == 2  # a name withheld anew
    hand_made(kennedy, KENNEDY, ["And so my fellow citizens", "ask not what your country can do"])
    assert "citizens" in said() and len(made) == 3  # the transcript's bytes
    set_toml(kennedy, KENNEDY, "restrict = [[0.0, 2.0]]\n")
    assert not said().startswith("And so") and len(made) == 4  # the episode's metadata


def test_check_remembers_what_a_file_said_only_while_the_file_is_as_it_was(kennedy, monkeypatch):
    from pipeline import audit

    set_toml(kennedy, KENNEDY, 'redact = ["Joanis"]\n')
    assert invoke(kennedy, "render").exit_code == 0
    note = kennedy / "feed" / "note.txt"
    note.write_text("Thanks to everyone", "utf-8")
    assert invoke(kennedy, "check").exit_code == 0
    read = []
    real = audit._readable_texts
    monkeypatch.setattr(audit, "_readable_texts", lambda path: read.append(path.name) or real(path))
    assert invoke(kennedy, "check").exit_code == 0 and read == []  # nothing changed: nothing read
    note.write_text("Thanks to Joanis!!", "utf-8")  # the same size, written at once
    result = invoke(kennedy, "check")
    assert result.exit_code == 1 and read == ["note.txt"]
    assert "feed/note.txt: privacy: contains redacted term 'Joanis'" in result.stderr
    note.write_text("Thanks to everyone", "utf-8")
    set_toml(kennedy, KENNEDY, replace={'redact = ["Joanis"]': 'redact = ["everyone"]'})
    result = invoke(kennedy, "check")  # another name withheld: every file is read again
    assert "feed/note.txt: privacy: contains redacted term 'everyone'" in result.stderr


def test_an_index_that_holds_an_episode_as_it_is_reads_no_transcript(kennedy, monkeypatch):
    from pipeline import privacy

    assert invoke(kennedy, "index").exit_code == 0
    read = []
    real = privacy._remembered_or
    monkeypatch.setattr(privacy, "_remembered_or", lambda *args: read.append(args[0].name) or real(*args))
    result = invoke(kennedy, "index")
    assert result.exit_code == 0 and "index: 1 episode(s) up to date" in result.stdout and read == []
    hand_made(kennedy, KENNEDY, ["And so my fellow citizens", "ask not what your country can do"])
    result = invoke(kennedy, "index")
    assert f"index {KENNEDY}: indexed" in result.stdout
    assert search(kennedy, "\"fellow citizens\"")
