import itertools
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from pipeline import align as align_module
from pipeline import transcribe as transcribe_module
from pipeline.archive import load_archive, read_transcript
from pipeline.cli import cli
from pipeline.embedded_model import Placement
from pipeline.errors import PodarchiveError
from pipeline.model import Transcript
from pipeline.stamps import STAMPS_FILE
from pipeline.transcribe import (
    SPEECH_REGIONS_METHOD,
    TranscribeOptions,
    decoding_options,
    hotwords,
    transcribe_archive,
)

from conftest import REPO, copy_archive, reference, word_error_rate


def load(root: Path, slug: str) -> Transcript:
    data = json.loads((root / "episodes" / slug / "transcript.json").read_text(encoding="utf-8"))
    assert data["schema_version"] == 1
    return Transcript.from_json(data)


def test_glossary_is_the_archives_then_the_episodes(tmp_path):
    root = copy_archive(tmp_path / "a", slugs=["eric-joanis-readalongs", "kennedy-inaugural-1961"])
    toml = root / "archive.toml"
    toml.write_text(toml.read_text("utf-8").replace("glossary = []", 'glossary = ["podarchive", "CNRC"]'), "utf-8")
    archive = load_archive(root)
    joanis = archive.episode("eric-joanis-readalongs")
    assert hotwords(archive, joanis) == ["podarchive", "CNRC", "Éric Joanis", "Nunavut",
                                         "inuktitut", "hansard", "ReadAlong-Studio"]
    # A name belongs to its episode: Kennedy's episode gets only the archive-wide words.
    assert hotwords(archive, archive.episode("kennedy-inaugural-1961")) == ["podarchive", "CNRC"]
    options = decoding_options(archive, joanis, TranscribeOptions(), Placement())
    assert options.language == "fr" and options.recorded()["speech_regions"] == SPEECH_REGIONS_METHOD


@pytest.mark.model
@pytest.mark.parametrize("slug, ref, ceiling", [
    ("kennedy-inaugural-1961", "jfk.txt", 0.05),
    ("conservateur-des-eaux-et-forets", "leopard-fr.txt", 0.05),
    ("eric-joanis-readalongs", "ej-fra.txt", 0.12),
])
def test_word_error_rate(transcribed_archive, slug, ref, ceiling):
    root, _ = transcribed_archive
    transcript = load(root, slug)
    wer = word_error_rate(reference(ref), transcript.text)
    print(f"{slug}: WER {wer:.3f}")
    assert wer <= ceiling, transcript.text


@pytest.mark.model
def test_code_switching_episode_keeps_both_languages(transcribed_archive):
    root, _ = transcribed_archive
    transcript = load(root, "mit-licence-en-de")
    assert transcript.options["language"] == "auto"
    english_half = " ".join(w.text for s in transcript.segments for w in s.words if w.start < 29.5)
    wer = word_error_rate(reference("multilingual.en.txt"), english_half)
    print(f"multilingual English half: WER {wer:.3f}")
    assert wer <= 0.10
    german = [s for s in transcript.segments if s.start > 30]
    assert german and all(s.language == "de" for s in german)
    assert "Software" in " ".join(s.text for s in german)
    assert {s.language for s in transcript.segments if s.end < 29} == {"en"}


@pytest.mark.model
def test_stereo_channels_give_two_speakers_in_time_order(transcribed_archive):
    root, _ = transcribed_archive
    transcript = load(root, "two-voices-stereo")
    by_speaker = {}
    for segment in transcript.segments:
        by_speaker.setdefault(segment.speaker, []).append(segment.text)
    assert set(by_speaker) == {"Left speaker", "Right speaker"}
    assert word_error_rate(reference("stereo_diarization.left.txt"), " ".join(by_speaker["Left speaker"])) <= 0.1
    assert word_error_rate(reference("stereo_diarization.right.txt"), " ".join(by_speaker["Right speaker"])) <= 0.1
    starts = [segment.start for segment in transcript.segments]
    assert starts == sorted(starts)


@pytest.mark.model
def test_word_times_are_ordered_and_inside_their_segment(transcribed_archive):
    root, _ = transcribed_archive
    counted = 0
    for folder in sorted(path.parent for path in (root / "episodes").glob("*/episode.toml")):
        transcript = load(root, folder.name)
        assert transcript.segments, folder.name
        assert 0 < transcript.duration
        for segment in transcript.segments:
            assert 0 <= segment.start <= segment.end <= transcript.duration + 0.05
            previous_end = segment.start
            for word in segment.words:
                assert word.start <= word.end, (folder.name, word)
                assert segment.start <= word.start and word.end <= segment.end, (folder.name, word)
                assert word.start >= previous_end, (folder.name, word)
                previous_end = word.end
                counted += 1
    assert counted > 250


@pytest.mark.model
def test_transcript_records_what_it_was_made_from(transcribed_archive):
    root, _ = transcribed_archive
    transcript = load(root, "eric-joanis-readalongs")
    assert transcript.model == "embedded:whisper-base"
    assert transcript.options["hotwords"][0] == "Éric Joanis"
    assert len(transcript.audio_sha256) == 64
    assert transcript.language == "fr" and not transcript.reviewed
    assert (transcript.options["device"], transcript.options["compute_type"]) == ("cpu", "int8")  # what ran
    assert all(s.speaker == "Éric Joanis" for s in transcript.segments)  # the sole person
    assert all(s.speaker == "" for s in load(root, "mit-licence-en-de").segments)  # nobody listed


def snapshot(root: Path) -> dict:
    return {str(p): (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.model
def test_second_run_transcribes_nothing_and_changes_no_file(transcribed_archive, monkeypatch):
    root, first = transcribed_archive
    assert first.stdout.count(": transcribed") == 5
    before = snapshot(root)
    before.pop(str(root / ".podarchive.lock"), None)
    second = CliRunner().invoke(cli, ["--archive", str(root), "run"])
    assert second.exit_code == 0, second.output
    assert second.stdout.strip() == "run: 5 episode(s) up to date"  # nothing changed since the last run
    after = snapshot(root)
    after.pop(str(root / ".podarchive.lock"), None)
    assert after == before
    # Without the record of the last run, each stage finds its own work up to date.
    (root / STAMPS_FILE).unlink()
    third = CliRunner().invoke(cli, ["--archive", str(root), "run"])
    assert third.exit_code == 0, third.output
    assert "transcribe: 5 episode(s) up to date" in third.stdout
    assert "render: 5 episode(s) up to date" in third.stdout
    assert "transcribed" not in third.stdout and "rendered" not in third.stdout
    after = snapshot(root)
    after.pop(str(root / ".podarchive.lock"), None)
    assert {path: stamp for path, stamp in after.items() if not path.endswith(STAMPS_FILE)} == \
        {path: stamp for path, stamp in before.items() if not path.endswith(STAMPS_FILE)}
    # Found up to date once, a transcript whose bytes and options are the same is not read again.
    (root / STAMPS_FILE).unlink()
    read = []
    for stage in (transcribe_module, align_module):
        monkeypatch.setattr(stage, "read_transcript", lambda path, real=stage.read_transcript: read.append(path)
                            or real(path))
    fourth = CliRunner().invoke(cli, ["--archive", str(root), "run"])
    assert fourth.exit_code == 0, fourth.output
    assert "transcribe: 5 episode(s) up to date" in fourth.stdout and "align: 5 episode(s) up to date" in fourth.stdout
    assert read == []


@pytest.fixture
def small_archive(tmp_path):
    return copy_archive(tmp_path / "small", slugs=["conservateur-des-eaux-et-forets"])


@pytest.mark.model
def test_reviewed_transcript_is_never_overwritten(small_archive):
    runner = CliRunner()
    assert runner.invoke(cli, ["--archive", str(small_archive), "transcribe"]).exit_code == 0
    path = small_archive / "episodes/conservateur-des-eaux-et-forets/transcript.json"
    data = json.loads(path.read_text("utf-8"))
    data["reviewed"] = True
    data["segments"][0]["text"] = "Corrigé à la main."
    path.write_text(json.dumps(data, ensure_ascii=False), "utf-8")
    before = path.read_bytes()
    result = runner.invoke(cli, ["--archive", str(small_archive), "transcribe", "--force"])
    assert result.exit_code == 0
    assert "conservateur-des-eaux-et-forets: kept (reviewed by a producer: never overwritten)" in result.stdout
    assert path.read_bytes() == before
    # Asked for nothing, a run says it once among what is up to date, not line by line.
    for _ in range(2):
        result = runner.invoke(cli, ["--archive", str(small_archive), "transcribe"])
        assert result.exit_code == 0
        assert result.stdout.strip() == ("transcribe: 1 episode(s) up to date "
                                         "(1 reviewed by a producer: never overwritten)")
    assert path.read_bytes() == before


@pytest.mark.model
def test_changed_options_or_force_transcribe_again(small_archive):
    runner = CliRunner()
    path = small_archive / "episodes/conservateur-des-eaux-et-forets/transcript.json"
    assert "transcribed" in runner.invoke(cli, ["--archive", str(small_archive), "transcribe"]).stdout
    assert "up to date" in runner.invoke(cli, ["--archive", str(small_archive), "transcribe"]).stdout
    # Where whisper runs is recorded, not deciding: a collection moved onto a GPU keeps its transcripts.
    result = runner.invoke(cli, ["--archive", str(small_archive), "transcribe", "--compute-type", "float32"])
    assert "up to date" in result.stdout and json.loads(path.read_text("utf-8"))["options"]["compute_type"] == "int8"
    result = runner.invoke(cli, ["--archive", str(small_archive), "transcribe", "--beam-size", "2"])
    assert "transcribed" in result.stdout
    assert json.loads(path.read_text("utf-8"))["options"]["beam_size"] == 2
    result = runner.invoke(cli, ["--archive", str(small_archive), "transcribe", "--beam-size", "2", "--force"])
    assert "transcribed" in result.stdout


@pytest.mark.model
def test_one_bad_episode_does_not_stop_the_others(small_archive):
    broken = small_archive / "episodes/broken-audio"
    shutil.copytree(small_archive / "episodes/conservateur-des-eaux-et-forets", broken)
    (broken / "leopard-fr.wav").write_bytes(b"RIFF not really a wave file")
    (small_archive / "episodes/Bad_Slug").mkdir()
    (small_archive / "episodes/Bad_Slug/episode.toml").write_text('title = "x"\n', "utf-8")
    result = CliRunner().invoke(cli, ["--archive", str(small_archive), "run"])
    assert result.exit_code == 1
    assert "conservateur-des-eaux-et-forets: transcribed" in result.stdout
    assert "episodes/broken-audio/leopard-fr.wav: audio:" in result.stderr
    assert "episodes/Bad_Slug: slug:" in result.stderr
    assert not (broken / "transcript.json").exists()


@pytest.mark.model
def test_progress_counts_seconds_of_audio(small_archive):
    archive = load_archive(small_archive)
    totals, advances = [], []
    outcomes = transcribe_archive(archive, archive.episodes, on_start=totals.append,
                                  progress=advances.append)
    assert [o.status for o in outcomes] == ["transcribed"]
    assert totals == [pytest.approx(6.672, abs=0.01)]
    assert sum(advances) == pytest.approx(totals[0], abs=0.01)
    assert all(step >= 0 for step in advances)


def test_long_recordings_are_cut_in_windows_at_quiet_moments():
    from pipeline.transcribe import CUT_SEARCH_SECONDS, SAMPLE_RATE, STRETCH_SECONDS, _stretches

    minutes = 25
    samples = np.random.default_rng(1).normal(0, 0.1, minutes * 60 * SAMPLE_RATE).astype(np.float32)
    quiet = [STRETCH_SECONDS + 12.0, 2 * STRETCH_SECONDS - 8.0]  # where a pause really is
    for at in quiet:
        samples[int(at * SAMPLE_RATE):int((at + 0.3) * SAMPLE_RATE)] = 0.0
    windows = _stretches(samples)
    assert windows[0][0] == 0 and windows[-1][1] == len(samples)
    assert all(a[1] == b[0] for a, b in itertools.pairwise(windows))
    cuts = [first / SAMPLE_RATE for first, _ in windows[1:]]
    assert cuts == pytest.approx(quiet, abs=0.31)
    assert all(last - first <= (STRETCH_SECONDS + CUT_SEARCH_SECONDS) * SAMPLE_RATE for first, last in windows)


@pytest.mark.model
def test_a_recording_transcribed_in_windows_keeps_its_words_and_times(tmp_path, monkeypatch):
    from pipeline import transcribe

    root = copy_archive(tmp_path / "a", slugs=["mit-licence-en-de"])
    monkeypatch.setattr(transcribe, "STRETCH_SECONDS", 20)
    monkeypatch.setattr(transcribe, "CUT_SEARCH_SECONDS", 5)
    assert len(transcribe._stretches(np.zeros(60 * transcribe.SAMPLE_RATE, np.float32))) >= 3
    assert CliRunner().invoke(cli, ["--archive", str(root), "transcribe"]).exit_code == 0
    windowed = load(root, "mit-licence-en-de")
    english = " ".join(w.text for s in windowed.segments for w in s.words if w.start < 29.5)
    assert word_error_rate(reference("multilingual.en.txt"), english) <= 0.10
    starts = [w.start for s in windowed.segments for w in s.words]
    assert starts == sorted(starts) and starts[-1] > 50
    assert {s.language for s in windowed.segments if s.start > 31} == {"de"}


@pytest.mark.model
def test_without_a_terminal_each_episode_is_said_when_it_is_transcribed(tmp_path):
    """A log or a cron mail gets each line as the episode is done, not all at the end."""
    root = copy_archive(tmp_path / "two", slugs=["conservateur-des-eaux-et-forets", "kennedy-inaugural-1961"])
    process = subprocess.Popen([sys.executable, "-m", "pipeline", "--archive", str(root), "transcribe"],
                               cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    arrivals = []
    for line in process.stdout:
        arrivals.append((time.monotonic(), line.strip()))
    assert process.wait() == 0
    said = [(moment, line) for moment, line in arrivals if ": transcribed " in line]
    assert [line.split(":")[0] for _, line in said] == ["transcribe conservateur-des-eaux-et-forets",
                                                        "transcribe kennedy-inaugural-1961"]
    # The second line waits for the second episode's transcription (seconds), not milliseconds.
    assert said[1][0] - said[0][0] > 0.3
    assert sum(": transcribed " in line for _, line in arrivals) == 2  # each said once


@pytest.mark.parametrize("version", [2, 0, "1", None])
def test_a_transcript_of_another_schema_version_is_refused_by_name(tmp_path, version):
    path = tmp_path / "a" / "episodes" / "x" / "transcript.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"schema_version": version, "episode": "x", "segments": []}), "utf-8")
    with pytest.raises(PodarchiveError) as refused:
        read_transcript(path)
    assert refused.value.field == "schema_version" and "this podarchive reads (1)" in refused.value.message
