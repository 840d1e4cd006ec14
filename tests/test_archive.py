import datetime as dt
import shutil
import textwrap
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline.archive import load_archive, load_episode
from pipeline.cli import cli
from pipeline.errors import InvalidFile, PodarchiveError
from pipeline.model import Segment, Word

from conftest import REPO, copy_archive, write_transcript

GOOD = """\
title = "Mon savoir est valide"
date = 2025-05-02
language = "fr"
audio = "interview.wav"
"""


RECORDING = REPO / "episodes" / "conservateur-des-eaux-et-forets" / "leopard-fr.wav"  # 6.672 s


def make_episode(root: Path, toml: str, slug: str = "mon-savoir", audio: str = "interview.wav"):
    folder = root / "episodes" / slug
    folder.mkdir(parents=True)
    shutil.copy(RECORDING, folder / audio)
    (folder / "episode.toml").write_text(textwrap.dedent(toml), encoding="utf-8")
    return folder


def problems_of(folder: Path) -> list[PodarchiveError]:
    with pytest.raises(PodarchiveError) as caught:
        load_episode(folder)
    error = caught.value
    return error.problems if isinstance(error, InvalidFile) else [error]


def test_bundled_archive_loads_every_episode():
    archive = load_archive(REPO)
    assert archive.problems == []
    slugs = [episode.slug for episode in archive.episodes]
    assert slugs == sorted(slugs) and len(slugs) >= 5
    joanis = archive.episode("eric-joanis-readalongs")
    assert joanis.language == "fr" and "Éric Joanis" in joanis.glossary
    assert joanis.date == dt.date(2025, 2, 3)
    stereo = archive.episode("two-voices-stereo")
    assert [person.channel for person in stereo.persons] == [1, 2]


def test_a_good_episode_loads(tmp_path):
    episode = load_episode(make_episode(tmp_path, GOOD))
    assert episode.slug == "mon-savoir"
    assert episode.status == "public"
    assert episode.audio_path.name == "interview.wav"


@pytest.mark.parametrize("toml, field, words", [
    (GOOD + 'stauts = "restricted"\n', "stauts", "unknown key"),
    (GOOD.replace('title = "Mon savoir est valide"\n', ""), "title", "required"),
    (GOOD.replace("date = 2025-05-02", 'date = "2025-13-02"'), "date", 'not a date: "2025-13-02" (use YYYY-MM-DD'),
    (GOOD.replace("date = 2025-05-02", "date = 2025-13-02"), "syntax", "not valid TOML"),
    (GOOD.replace('"interview.wav"', '"missing.wav"'), "audio", "audio file not found"),
    (GOOD.replace('"interview.wav"', '"../interview.wav"'), "audio", "inside the episode folder"),
    (GOOD + 'status = "secret"\n', "status", "must be one of public, restricted, embargoed"),
    (GOOD + 'status = "embargoed"\n', "embargo_until", "required when"),
    (GOOD + "embargo_until = 2026-01-01\n", "embargo_until", 'status is "public"'),
    (GOOD.replace('"fr"', '"French"'), "language", "not a language code"),
    (GOOD + "season = 0\n", "season", "whole number"),
    (GOOD + "restrict = [[5, 2]]\n", "restrict", "end must come after start"),
    (GOOD + 'redact = "Samia"\n', "redact", "must be a list"),
    (GOOD + '[[persons]]\nname = "Samia"\nchanel = 1\n', "persons[1].chanel", "unknown key"),
    (GOOD + '[[persons]]\nname = "Samia"\nrole = "star"\n', "persons[1].role", "must be one of"),
    (GOOD + '[[persons]]\nname = "Samia"\nchannel = 3\n', "persons[1].channel", "1 (left) or 2"),
    (GOOD + '[[chapters]]\ntitle = "Intro"\n', "chapters[1].start", "required"),
    (GOOD + '[[chapters]]\nstart = 7.0\ntitle = "Late"\n', "chapters[1].start",
     "chapter 'Late' starts at 7 s, after the end of the recording (6.7 s)"),
])
def test_each_invalid_case_names_file_and_field(tmp_path, toml, field, words):
    folder = make_episode(tmp_path, toml)
    problems = problems_of(folder)
    assert [p.field for p in problems] == [field], [str(p) for p in problems]
    message = str(problems[0])
    assert message.startswith(str(folder / "episode.toml") + f": {field}: ")
    assert words in message


def test_bad_slug_names_the_folder(tmp_path):
    folder = make_episode(tmp_path, GOOD, slug="Mon_Savoir")
    (problem,) = problems_of(folder)
    assert problem.field == "slug" and problem.path == folder
    assert "lowercase letters, digits and hyphens" in str(problem)


def test_every_problem_of_one_file_is_reported_at_once(tmp_path):
    toml = GOOD.replace("date = 2025-05-02", 'date = "soon"') + 'colour = "blue"\nseason = -1\n'
    fields = {p.field for p in problems_of(make_episode(tmp_path, toml))}
    assert fields == {"date", "colour", "season"}


def test_archive_toml_problems_name_the_field(tmp_path):
    root = copy_archive(tmp_path / "a", slugs=[])
    text = (root / "archive.toml").read_text(encoding="utf-8")
    (root / "archive.toml").write_text(
        text.replace('base_url = "https://example.org/podarchive/"', 'base_url = "example.org"')
        .replace('author = "podarchive contributors"\n', ""), encoding="utf-8")
    with pytest.raises(InvalidFile) as caught:
        load_archive(root)
    located = caught.value.located(root)
    assert "archive.toml: base_url: not an absolute http(s) URL" in located
    assert "archive.toml: author: required but missing" in located


def test_check_prints_every_problem_and_exits_1(tmp_path):
    root = copy_archive(tmp_path / "a", slugs=["kennedy-inaugural-1961"])
    make_episode(root, GOOD + 'stauts = "restricted"\n', slug="typo")
    make_episode(root, GOOD.replace('"interview.wav"', '"gone.wav"'), slug="no-audio")
    result = CliRunner().invoke(cli, ["--archive", str(root), "check"])
    assert result.exit_code == 1
    assert "episodes/typo/episode.toml: stauts: unknown key" in result.stderr
    assert "episodes/no-audio/episode.toml: audio: audio file not found" in result.stderr
    assert "2 problem(s)" in result.stderr


def test_check_passes_on_the_bundled_archive():
    result = CliRunner().invoke(cli, ["--archive", str(REPO), "check"])
    assert result.exit_code == 0, result.output
    assert "no problem found" in result.stdout


def test_check_flags_a_broken_transcript(tmp_path):
    root = copy_archive(tmp_path / "a", slugs=["kennedy-inaugural-1961"])
    (root / "episodes/kennedy-inaugural-1961/transcript.json").write_text("{not json", "utf-8")
    result = CliRunner().invoke(cli, ["--archive", str(root), "check"])
    assert result.exit_code == 1
    assert "episodes/kennedy-inaugural-1961/transcript.json: syntax: not valid JSON" in result.stderr


def test_missing_archive_toml_is_a_clear_error(tmp_path):
    result = CliRunner().invoke(cli, ["--archive", str(tmp_path), "check"])
    assert result.exit_code == 1
    assert "not an archive (no archive.toml in it)" in result.stderr


def test_a_base_url_gets_its_trailing_slash(tmp_path):
    root = copy_archive(tmp_path / "a", slugs=["kennedy-inaugural-1961"])
    text = (root / "archive.toml").read_text("utf-8")
    (root / "archive.toml").write_text(text.replace('podarchive/"', 'podarchive"'), "utf-8")
    assert load_archive(root).base_url == "https://example.org/podarchive/"


def test_a_guid_given_that_another_episode_gets_by_default_is_refused(tmp_path):
    root = copy_archive(tmp_path / "a", slugs=["kennedy-inaugural-1961", "conservateur-des-eaux-et-forets"])
    podcast = uuid.uuid5(uuid.UUID("ead4c236-bf58-58c6-a2c6-a6b28d128cb6"), "example.org/podarchive/feed.xml")
    kennedys = str(uuid.uuid5(podcast, "kennedy-inaugural-1961"))
    toml = root / "episodes/conservateur-des-eaux-et-forets/episode.toml"
    toml.write_text(f'guid = "{kennedys}"\n' + toml.read_text("utf-8"), "utf-8")
    result = CliRunner().invoke(cli, ["--archive", str(root), "check"])
    assert result.exit_code == 1
    both = "is used by several episodes (conservateur-des-eaux-et-forets, kennedy-inaugural-1961)"
    for slug in ("conservateur-des-eaux-et-forets", "kennedy-inaugural-1961"):
        assert f"error: episodes/{slug}/episode.toml: guid: '{kennedys}' {both}" in result.stderr
    assert "kennedy-inaugural-1961 gets it by default (derived from its folder name)" in result.stderr


def test_check_and_run_refuse_what_the_recording_contradicts(tmp_path):
    """A text named .mp3, a WAV cut short, a chapter after the end: each named on one line by
    check and by run alike, and none of them published."""
    root = copy_archive(tmp_path / "a", slugs=["kennedy-inaugural-1961"])
    write_transcript(root, "kennedy-inaugural-1961", [Segment(0, 0.5, 2.0, "", "", "en", [Word("ask", 0.5, 0.9, 0.9)])])
    make_episode(root, GOOD.replace("interview.wav", "notes.mp3"), slug="text-named-mp3", audio="notes.mp3")
    (root / "episodes/text-named-mp3/notes.mp3").write_text("These are my interview notes, not audio.\n", "utf-8")
    make_episode(root, GOOD, slug="cut-short")
    wav = root / "episodes/cut-short/interview.wav"
    wav.write_bytes(wav.read_bytes()[:44 + 2 * 16000 * 85 // 100])  # 0.85 s of 6.7 s
    make_episode(root, GOOD + '[[chapters]]\nstart = 0.0\ntitle = "Start"\n[[chapters]]\nstart = 9.5\ntitle = "Late"\n',
                 slug="late-chapter")
    errors = [
        "error: episodes/text-named-mp3/notes.mp3: audio: not a readable audio file (Invalid data",
        ("error: episodes/cut-short/interview.wav: audio: the recording is truncated or damaged: "
         "only 0.8 s of the 6.7 s it declares could be decoded"),
        ("error: episodes/late-chapter/episode.toml: chapters[2].start: chapter 'Late' starts at 9.5 s, "
         "after the end of the recording (6.7 s)"),
    ]
    for command in ("check", "run"):
        result = CliRunner().invoke(cli, ["--archive", str(root), command])
        assert result.exit_code == 1, result.output
        lines = result.stderr.splitlines()
        for error in errors:
            assert sum(line.startswith(error) for line in lines) == 1, (command, error, result.stderr)
    assert [p.name for p in (root / "feed/episodes").iterdir()] == ["kennedy-inaugural-1961"]
