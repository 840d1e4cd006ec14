import datetime as dt
import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner
from pydub import AudioSegment

from pipeline.archive import load_archive
from pipeline.cli import cli
from pipeline.model import read_transcript
from pipeline.privacy import fold, publishable, published_transcript, redact
from pipeline.search import search

from conftest import REPO, copy_archive

TODAY = dt.date.today()


def test_redaction_ignores_case_accents_and_spacing():
    text = "Je m'appelle ÉRIC Joanis. eric-joanis, Éric\u00a0JOANÍS et Ericjoanis."
    assert redact(text, ["Eric Joanis"]) == "Je m'appelle [redacted]. [redacted], [redacted] et Ericjoanis."
    assert redact("Samia Dumais a dit", ["samia dumaïs"]) == "[redacted] a dit"
    assert redact("rien à cacher", ["Samia"]) == "rien à cacher"
    assert redact("a text", ["..."]) == "a text"  # a term with no word in it masks nothing
    assert fold("Ça, LIBÉRATION") == "ca, liberation"


def test_a_slug_that_says_a_redacted_name_is_refused(tmp_path):
    root = copy_archive(tmp_path / "a", slugs=["eric-joanis-readalongs"])
    set_toml(root, "eric-joanis-readalongs", 'redact = ["Éric Joanis"]\n')
    result = CliRunner().invoke(cli, ["--archive", str(root), "check"])
    assert result.exit_code == 1
    assert "episodes/eric-joanis-readalongs: slug: folder name 'eric-joanis-readalongs' says a redacted term" in result.stderr


def test_publishable_follows_status_dates_and_embargo():
    archive = load_archive(REPO)
    episode = archive.episode("kennedy-inaugural-1961")
    tomorrow = TODAY + dt.timedelta(days=1)
    assert publishable(episode, TODAY)
    episode.status = "restricted"
    assert not publishable(episode, TODAY)
    episode.status, episode.embargo_until = "embargoed", tomorrow
    assert not publishable(episode, TODAY) and publishable(episode, tomorrow)
    episode.status, episode.embargo_until, episode.date = "public", None, tomorrow
    assert not publishable(episode, TODAY)


def words_of_ej(transcript):
    return [w for s in transcript["segments"] for w in s["words"]]


def level_dbfs(path, start, end):
    sound = AudioSegment.from_file(path)
    samples = np.array(sound.get_array_of_samples(), dtype=np.float64) / 32768.0
    samples = samples.reshape(-1, sound.channels)[int(start * sound.frame_rate):int(end * sound.frame_rate)]
    return 20 * np.log10(np.sqrt(np.mean(samples ** 2)) + 1e-12)


def set_toml(root, slug, first_lines):
    path = root / "episodes" / slug / "episode.toml"
    path.write_text(first_lines + path.read_text("utf-8"), "utf-8")


@pytest.fixture
def consent_archive(transcribed_archive, tmp_path):
    """The bundled archive, transcribed, with promises to keep: one episode restricted,
    one embargoed until tomorrow, and a name really spoken in a public one redacted."""
    source, _ = transcribed_archive
    root = tmp_path / "consent"
    shutil.copytree(source, root, ignore=shutil.ignore_patterns("feed", "index", ".podarchive.lock"))
    set_toml(root, "kennedy-inaugural-1961", 'status = "restricted"\n')
    set_toml(root, "conservateur-des-eaux-et-forets",
             f'status = "embargoed"\nembargo_until = {TODAY + dt.timedelta(days=1)}\n')
    # A producer names the folder of a testimony without the name it redacts.
    (root / "episodes/eric-joanis-readalongs").rename(root / "episodes/interview-cnrc")
    set_toml(root, "interview-cnrc", 'redact = ["Éric Joanis"]\n')
    result = CliRunner().invoke(cli, ["--archive", str(root), "run"])
    assert result.exit_code == 0, result.output
    return root


def published_bytes(root):
    for folder in ("feed", "index"):
        for path in sorted((root / folder).rglob("*")):
            if path.is_file():
                yield path, fold(path.read_bytes().decode("utf-8", errors="ignore"))


@pytest.mark.model
def test_no_published_byte_holds_a_promise_broken(consent_archive):
    root = consent_archive
    assert not (root / "feed/episodes/kennedy-inaugural-1961").exists()
    assert not (root / "feed/episodes/conservateur-des-eaux-et-forets").exists()
    for path, text in published_bytes(root):
        for forbidden in ("joanis", "ask not what your country", "my fellow americans",
                          "conservateur des eaux", "kennedy-inaugural", "conservateur-des-eaux"):
            assert forbidden not in text, (path, forbidden)
    html = (root / "feed/episodes/interview-cnrc/transcript.html").read_text("utf-8")
    assert "je m&#39;appelle [redacted]" in html
    private = json.loads((root / "episodes/interview-cnrc/transcript.json").read_text("utf-8"))
    assert "Joanis," in [w["text"] for w in words_of_ej(private)]  # the producers keep the words
    result = CliRunner().invoke(cli, ["--archive", str(root), "check"])
    assert result.exit_code == 0, result.output
    for query in ("Joanis", "joanis", "JOANÍS", '"Éric Joanis"', "ask not", "conservateur", "horizon"):
        found = [hit["episode"] for hit in search(root, query)]
        assert found == [] or (query == "horizon" and found == ["two-voices-stereo"]), (query, found)
    assert search(root, "programmateur OR programmable")  # the rest of the testimony is found


@pytest.mark.model
def test_the_redacted_name_is_silent_in_the_published_mp3(consent_archive):
    root = consent_archive
    private = json.loads((root / "episodes/interview-cnrc/transcript.json").read_text("utf-8"))
    words = words_of_ej(private)
    first = next(i for i, w in enumerate(words) if fold(w["text"]) == "eric")
    start, end = words[first]["start"], words[first + 1]["end"]
    mp3 = root / "feed/episodes/interview-cnrc/audio.mp3"
    silent, spoken = level_dbfs(mp3, start, end), level_dbfs(mp3, 2.9, 4.0)
    print(f"redacted span {start:.2f}-{end:.2f} s: {silent:.1f} dBFS; speech after it: {spoken:.1f} dBFS")
    assert silent < -60 and spoken > -35


@pytest.mark.model
def test_a_restricted_segment_is_cut_and_silenced(consent_archive):
    root = consent_archive
    path = root / "episodes/interview-cnrc/transcript.json"
    data = json.loads(path.read_text("utf-8"))
    segment = next(s for s in data["segments"] if "produire" in s["text"])
    segment["restricted"] = True
    path.write_text(json.dumps(data, ensure_ascii=False), "utf-8")
    assert CliRunner().invoke(cli, ["--archive", str(root), "run"]).exit_code == 0
    for name in ("transcript.vtt", "transcript.srt", "transcript.txt", "transcript.json", "transcript.html"):
        assert "produire" not in (root / "feed/episodes/interview-cnrc" / name).read_text("utf-8")
    mp3 = root / "feed/episodes/interview-cnrc/audio.mp3"
    assert level_dbfs(mp3, segment["start"] + 0.05, segment["end"] - 0.05) < -60
    archive = load_archive(root)
    transcript = published_transcript(archive, archive.episode("interview-cnrc"), read_transcript(path))
    assert all(s.id != segment["id"] for s in transcript.segments)


@pytest.mark.model
def test_check_fails_loudly_on_a_leak(consent_archive):
    root = consent_archive
    page = root / "feed/episodes/interview-cnrc/transcript.txt"
    page.write_text(page.read_text("utf-8") + "\nÉRIC JOANIS\n", "utf-8")
    leaked = root / "feed/stray.txt"
    leaked.write_text("And so, my fellow Americans, ask not what your country can do for you", "utf-8")
    result = CliRunner().invoke(cli, ["--archive", str(root), "check"])
    assert result.exit_code == 1
    assert "feed/episodes/interview-cnrc/transcript.txt: privacy: contains redacted term 'Éric Joanis'" in result.stderr
    assert "feed/stray.txt: privacy: contains words of unpublished episode kennedy-inaugural-1961" in result.stderr


@pytest.mark.model
def test_an_episode_restricted_after_publication_is_withdrawn_everywhere(consent_archive):
    root = consent_archive
    assert (root / "feed/episodes/two-voices-stereo/audio.mp3").exists()
    set_toml(root, "two-voices-stereo", 'status = "restricted"\n')
    result = CliRunner().invoke(cli, ["--archive", str(root), "run"])
    assert result.exit_code == 0, result.output
    assert "two-voices-stereo: withdrawn" in result.stdout
    assert not (root / "feed/episodes/two-voices-stereo").exists()
    assert "two-voices-stereo" not in (root / "feed/feed.xml").read_text("utf-8")
    for path, text in published_bytes(root):
        assert "the horizon seems extremely distant" not in text, path
