import json
import shutil
import subprocess
import time

import pytest
from click.testing import CliRunner

from pipeline.cli import cli

from conftest import REPO, reference, word_error_rate

BAD = REPO / "tests" / "bad" / "episodes"

# slug -> what stderr must say about it (file: field: cause), one line each.
ERRORS = {
    "empty-audio": "episodes/empty-audio/episode.toml: audio: audio file is empty",
    "truncated-mp3": "episodes/truncated-mp3/truncated.mp3: audio: the recording is truncated or damaged",
    "corrupt-flac": "episodes/corrupt-flac/corrupt.flac: audio: not a readable audio file (Invalid data",
    "text-named-mp3": "episodes/text-named-mp3/notes.mp3: audio: not a readable audio file (Invalid data",
    "unsupported-extension": "episodes/unsupported-extension/episode.toml: audio: 'recording.aiff' is not a supported audio file",
    "missing-audio": "episodes/missing-audio/episode.toml: audio: audio file not found",
    "link-outside-archive": "episodes/link-outside-archive/episode.toml: audio: 'outside.wav' leads to",
    "bad..slug": "episodes/bad..slug: slug: folder name 'bad..slug' must use only lowercase letters, digits and hyphens",
    "duplicate-guid-a": "episodes/duplicate-guid-a/episode.toml: guid: 'same-guid' is used by several episodes",
    "duplicate-guid-b": "episodes/duplicate-guid-b/episode.toml: guid: 'same-guid' is used by several episodes",
    "bad-toml": "episodes/bad-toml/episode.toml: syntax: not valid TOML",
    "unknown-key": "episodes/unknown-key/episode.toml: stauts: unknown key",
    "wrong-types": "episodes/wrong-types/episode.toml: title: must be non-empty text, got 3",
    "bad-date": 'episodes/bad-date/episode.toml: date: not a date: "2025-02-30"',
    "corrupt-transcript": "episodes/corrupt-transcript/transcript.json: syntax: not valid JSON",
    "transcript-of-another-recording": "episodes/transcript-of-another-recording/transcript.json: audio_sha256: "
                                       "made from another recording than note.flac",
    "huge-description": "episodes/huge-description/episode.toml: description: 1044000 characters; "
                        "podcast apps take at most 4000",
}
MORE_ERRORS = [
    "episodes/wrong-types/episode.toml: season: must be a whole number from 1 up, got 'one'",
    "episodes/wrong-types/episode.toml: explicit: must be true or false, got 'no'",
]
# Unusual but valid: each must come out right.
VALID = ("pure-silence", "ten-minutes-of-silence", "one-millisecond", "telephone-8khz", "six-channels",
         "unicode-title", "right-to-left-title", "future-date")


def prepare(root, outside):
    """What cannot be committed as it is: made here, in the copy of the corpus."""
    episodes = root / "episodes"
    (outside / "outside.wav").write_bytes((BAD / "telephone-8khz/phone.wav").read_bytes())
    (episodes / "link-outside-archive/outside.wav").symlink_to(outside / "outside.wav")
    toml = episodes / "huge-description/episode.toml"
    toml.write_text(toml.read_text("utf-8") + 'description = "' + "Une très longue description. " * 36000 + '"\n',
                    "utf-8")
    (episodes / "corrupt-transcript/transcript.json").write_text('{"schema_version": 1, "segments": [', "utf-8")
    good = json.loads((episodes / "conservateur-des-eaux-et-forets/transcript.json").read_text("utf-8"))
    good["reviewed"] = True
    (episodes / "transcript-of-another-recording/transcript.json").write_text(json.dumps(good), "utf-8")


@pytest.fixture(scope="module")
def bad_run(transcribed_archive, tmp_path_factory):
    source, _ = transcribed_archive
    root = tmp_path_factory.mktemp("bad")
    shutil.copy(source / "archive.toml", root / "archive.toml")
    shutil.copy(source / "cover.png", root / "cover.png")
    shutil.copytree(source / "episodes/conservateur-des-eaux-et-forets",
                    root / "episodes/conservateur-des-eaux-et-forets")
    for case in BAD.iterdir():
        shutil.copytree(case, root / "episodes" / case.name)
    prepare(root, tmp_path_factory.mktemp("outside"))
    started = time.monotonic()
    result = CliRunner().invoke(cli, ["--archive", str(root), "run"])
    return root, result, time.monotonic() - started


def test_the_corpus_has_at_least_25_cases():
    assert len(list(BAD.iterdir())) >= 25


@pytest.mark.model
def test_each_bad_input_gets_a_one_line_error_naming_file_and_cause(bad_run):
    _root, result, _ = bad_run
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    for slug, message in ERRORS.items():
        assert sum(message in line for line in errors) == 1, (slug, message, result.stderr)
    for message in MORE_ERRORS:
        assert any(message in line for line in errors), message
    assert f"{len(errors)} problem(s); the other episodes were processed." in result.stderr


@pytest.mark.model
def test_the_good_episode_and_the_unusual_ones_still_complete(bad_run):
    root, result, _seconds = bad_run
    feed = root / "feed"
    assert (feed / "episodes/conservateur-des-eaux-et-forets/audio.mp3").is_file()
    published = {p.name for p in (feed / "episodes").iterdir()}
    assert published == {"conservateur-des-eaux-et-forets", *VALID} - {"future-date"}
    assert not (set(ERRORS) & published)
    xml = (feed / "feed.xml").read_text("utf-8")
    assert "Paroles · 声音 · 🎙️ «Ça va» — Ł ø ß" in xml and "صوت الذاكرة — קול הזיכרון" in xml
    html = (feed / "episodes/right-to-left-title/transcript.html").read_text("utf-8")
    assert '<h1 dir="auto">صوت الذاكرة — קול הזיכרון</h1>' in html
    assert "future-date: not published (to be released on 2999-01-01)" in result.stdout


def transcript(root, slug):
    return json.loads((root / "episodes" / slug / "transcript.json").read_text("utf-8"))


@pytest.mark.model
def test_silence_gives_an_empty_transcript_not_a_hallucination(bad_run):
    root, _, seconds = bad_run
    for slug in ("pure-silence", "ten-minutes-of-silence", "one-millisecond"):
        assert transcript(root, slug)["segments"] == [], slug
    assert transcript(root, "ten-minutes-of-silence")["duration"] == 600.0
    # The whole run, ten minutes of silence included, is a matter of seconds, not minutes.
    assert seconds < 120


@pytest.mark.model
def test_telephone_and_surround_recordings_are_transcribed(bad_run):
    root, _, _ = bad_run
    # Degraded audio: the words differ with the core count, the error rate stays bounded.
    phone = " ".join(s["text"] for s in transcript(root, "telephone-8khz")["segments"])
    assert word_error_rate(reference("leopard-fr.txt"), phone) <= 0.5, phone
    surround = " ".join(s["text"] for s in transcript(root, "six-channels")["segments"])
    said_in_the_first_three_seconds = "And so my fellow Americans"
    assert word_error_rate(said_in_the_first_three_seconds, surround) <= 0.4, surround


@pytest.fixture
def published_copy(transcribed_archive, tmp_path):
    source, _ = transcribed_archive
    root = tmp_path / "copy"
    shutil.copytree(source, root, ignore=shutil.ignore_patterns(".podarchive.lock"))
    return root


def retitle(root, slug, title):
    toml = root / "episodes" / slug / "episode.toml"
    text = toml.read_text("utf-8")
    toml.write_text(text.replace(text.splitlines()[0], f'title = "{title}"', 1), "utf-8")


@pytest.mark.model
def test_a_locked_index_fails_that_stage_alone(published_copy, monkeypatch):
    from whoosh import index as whoosh_index

    from pipeline import layout, search

    monkeypatch.setattr(search, "WRITE_LOCK_SECONDS", 0.2)
    retitle(published_copy, "kennedy-inaugural-1961", "Ask not, again")
    lock = whoosh_index.open_dir(str(published_copy / layout.ENGINE_DIR)).lock("WRITELOCK")
    assert lock.acquire()
    try:
        result = CliRunner().invoke(cli, ["--archive", str(published_copy), "run"])
    finally:
        lock.release()
    assert result.exit_code == 1
    assert "error: index/whoosh: another process is writing the search index" in result.stderr
    assert "Ask not, again" in (published_copy / "feed/feed.xml").read_text("utf-8")  # feed still ran


@pytest.mark.model
def test_a_read_only_feed_folder_fails_its_episode_alone(published_copy):
    folder = published_copy / "feed/episodes/kennedy-inaugural-1961"
    if subprocess.run(["chattr", "+i", str(folder)], capture_output=True, check=False).returncode != 0:
        pytest.skip("this filesystem cannot make a folder immutable")
    try:
        retitle(published_copy, "kennedy-inaugural-1961", "Ask not, again")
        retitle(published_copy, "two-voices-stereo", "Two voices, again")
        result = CliRunner().invoke(cli, ["--archive", str(published_copy), "run"])
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)
    assert result.exit_code == 1
    assert "error: feed/episodes/kennedy-inaugural-1961/transcript.txt: cannot write: Operation not permitted" \
        in result.stderr
    assert "Two voices, again" in (published_copy / "feed/episodes/two-voices-stereo/transcript.html").read_text("utf-8")
