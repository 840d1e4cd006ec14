"""A run with nothing changed since the last complete run does nothing (stamps.py), and
any change of input, output, code path or time that matters brings the whole job back."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from click.testing import CliRunner

from pipeline import build
from pipeline.cli import cli
from pipeline.model import Segment, Word
from pipeline.stamps import STAMPS_FILE

from conftest import copy_archive, write_transcript

SLUGS = ["kennedy-inaugural-1961", "conservateur-des-eaux-et-forets"]


@pytest.fixture
def archive(tmp_path):
    """Two episodes with reviewed, hand-made transcripts: `run` publishes them without whisper."""
    root = copy_archive(tmp_path / "a", slugs=SLUGS)
    for slug in SLUGS:
        words = [Word(w, 0.5 + n * 0.5, 0.9 + n * 0.5, 0.9) for n, w in enumerate(["ask", "not", "what"])]
        write_transcript(root, slug, [Segment(0, 0.5, 2.0, "ask not what", "", "en", words)])
        path = root / "episodes" / slug / "transcript.json"
        path.write_text(json.dumps({**json.loads(path.read_text("utf-8")), "reviewed": True}), "utf-8")
    return root


def run(root, *options):
    result = CliRunner().invoke(cli, ["--archive", str(root), "run", *options])
    assert result.exit_code == 0, result.output
    return result.output


def published(root):
    return {p: (p.read_bytes(), p.stat().st_mtime_ns) for folder in ("feed", "index")
            for p in (root / folder).rglob("*") if p.is_file()}


def test_a_second_run_with_nothing_changed_does_nothing(archive):
    first = run(archive)
    assert "feed feed.xml: written (2 episode(s))" in first
    before = published(archive)
    again = CliRunner().invoke(cli, ["--archive", str(archive), "run"])
    assert again.exit_code == 0 and again.stdout.strip() == "run: 2 episode(s) up to date"
    assert published(archive) == before


def test_a_changed_episode_toml_brings_the_job_back(archive):
    run(archive)
    toml = archive / "episodes" / SLUGS[0] / "episode.toml"
    toml.write_text(toml.read_text("utf-8").replace('title = "', 'title = "Renamed: '), "utf-8")
    output = run(archive)
    assert "feed feed.xml: written" in output
    assert "Renamed: " in (archive / "feed" / "feed.xml").read_text("utf-8")
    assert CliRunner().invoke(cli, ["--archive", str(archive), "run"]).stdout.strip() == "run: 2 episode(s) up to date"


def test_an_output_deleted_or_edited_by_hand_is_made_again(archive):
    run(archive)
    vtt = archive / "feed" / "episodes" / SLUGS[0] / "transcript.vtt"
    original = vtt.read_bytes()
    vtt.unlink()
    run(archive)
    assert vtt.read_bytes() == original
    vtt.write_bytes(b"WEBVTT\n\nedited by hand\n")
    run(archive)
    assert vtt.read_bytes() == original


def test_force_and_a_failed_run_leave_no_shortcut(archive):
    run(archive)
    assert "feed: 2 episode(s) up to date" in run(archive, "--force")  # each stage looked again
    toml = archive / "episodes" / SLUGS[1] / "episode.toml"
    toml.write_text("not_a_key = 1\n" + toml.read_text("utf-8"), "utf-8")
    failed = CliRunner().invoke(cli, ["--archive", str(archive), "run"])
    assert failed.exit_code == 1 and "not_a_key" in failed.output
    assert not (archive / STAMPS_FILE).exists()
    again = CliRunner().invoke(cli, ["--archive", str(archive), "run"])
    assert again.exit_code == 1 and "not_a_key" in again.output  # still said, every run


def test_an_embargo_ending_is_a_change_though_no_file_changed(archive):
    toml = archive / "episodes" / SLUGS[0] / "episode.toml"
    toml.write_text('status = "embargoed"\nembargo_until = 2030-01-01T00:00:00Z\n' + toml.read_text("utf-8"),
                    "utf-8")
    before = dt.datetime(2029, 12, 31, 23, 0, tzinfo=dt.UTC)
    report = build.run(archive, now=before)
    assert report.ok, [str(f) for f in report.failures]
    assert SLUGS[0] not in (archive / "feed" / "feed.xml").read_text("utf-8")
    skipped = build.run(archive, now=before + dt.timedelta(minutes=30))
    assert skipped.archive is None  # nothing to do: not even loaded
    after = build.run(archive, now=dt.datetime(2030, 1, 1, 0, 1, tzinfo=dt.UTC))
    assert after.archive is not None
    assert SLUGS[0] in (archive / "feed" / "feed.xml").read_text("utf-8")
    # A moment before the last run's (a clock set back) is no shortcut either.
    assert build.run(archive, now=before).archive is not None
    assert SLUGS[0] not in (archive / "feed" / "feed.xml").read_text("utf-8")


def test_warnings_are_said_again_when_nothing_changed(archive):
    """The hand-made transcripts leave speech untranscribed: every run says so."""
    first = CliRunner().invoke(cli, ["--archive", str(archive), "run"])
    second = CliRunner().invoke(cli, ["--archive", str(archive), "run"])
    assert second.exit_code == 0 and second.stdout.strip() == "run: 2 episode(s) up to date"
    warnings = [line for line in first.stderr.splitlines() if line.startswith("warning:")]
    assert any("speech not transcribed" in line for line in warnings)
    assert [line for line in second.stderr.splitlines() if line.startswith("warning:")] == warnings
