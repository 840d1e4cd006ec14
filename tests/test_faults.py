"""A run killed at any moment loses nothing: the next run ends where an uninterrupted one does."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from pipeline.embedded_model import resolve_model
from pipeline.layout import SCRATCH_DIR
from pipeline.search import search
from pipeline.storage import TEMPORARY_SUFFIX

from conftest import copy_archive

SLUGS = ["conservateur-des-eaux-et-forets", "two-voices-stereo"]


def start_run(root, env):
    return subprocess.Popen([sys.executable, "-m", "pipeline", "--archive", str(root), "run"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def run_to_the_end(root, env):
    finished = subprocess.run([sys.executable, "-m", "pipeline", "--archive", str(root), "run"],
                              env=env, capture_output=True, text=True, timeout=300, check=False)
    assert finished.returncode == 0, finished.stderr
    return finished


def kill_when(process, appeared, timeout=120):
    """SIGKILL ``process`` as soon as ``appeared()`` is true; False if it ended first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if appeared():
            process.send_signal(signal.SIGKILL)
            process.wait()
            return True
        time.sleep(0.005)
    process.wait()
    return False


def outputs(root):
    """Every file a run makes, by path: the transcripts and all of feed/."""
    files = {}
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root).as_posix()
        if path.is_file() and (relative.startswith("feed/") or path.name == "transcript.json"):
            files[relative] = path.read_bytes()
    return files


def temporaries(root):
    return [p for p in root.rglob(f"*{TEMPORARY_SUFFIX}") if p.is_file()]


def assert_nothing_half_written(root):
    for path in root.rglob("transcript.json"):
        json.loads(path.read_text("utf-8"))  # a torn file would not parse
    for path in (root / "feed").rglob("*.json"):
        json.loads(path.read_text("utf-8"))


@pytest.fixture(scope="module")
def environment(tmp_path_factory):
    env = dict(os.environ, PODARCHIVE_CACHE_DIR=str(tmp_path_factory.getbasetemp() / "cache"))
    os.environ["PODARCHIVE_CACHE_DIR"] = env["PODARCHIVE_CACHE_DIR"]
    resolve_model(None)  # the embedded model is joined before any run is timed or killed
    return env


@pytest.fixture(scope="module")
def reference(tmp_path_factory, environment):
    root = copy_archive(tmp_path_factory.mktemp("reference"), slugs=SLUGS)
    run_to_the_end(root, environment)
    return root, outputs(root)


@pytest.mark.model
@pytest.mark.parametrize("moment, appeared", [
    ("during transcription", lambda root: any((root / "episodes").rglob("transcript.json"))),
    ("during rendering", lambda root: any((root / "feed").rglob("transcript.vtt"))),
    ("during indexing", lambda root: any((root / "index").rglob("*WRITELOCK*"))),
    ("during feed writing", lambda root: any((root / "feed").rglob("audio.mp3"))),
])
def test_a_killed_run_resumes_to_the_same_result(tmp_path, environment, reference, moment, appeared):
    reference_root, expected = reference
    root = copy_archive(tmp_path / "archive", slugs=SLUGS)
    if moment != "during transcription":
        for slug in SLUGS:  # start where transcription is done, so the kill lands later on
            shutil.copy(reference_root / "episodes" / slug / "transcript.json", root / "episodes" / slug)
    killed = kill_when(start_run(root, environment), lambda: appeared(root))
    assert killed, f"the run ended before it could be killed {moment}"
    assert_nothing_half_written(root)
    # What a kill between writing a temporary file and renaming it leaves behind:
    (root / "episodes" / SLUGS[0] / f".transcript.json.x1{TEMPORARY_SUFFIX}").write_text("{", "utf-8")
    (root / "feed").mkdir(exist_ok=True)
    (root / "feed" / f".feed.xml.x2{TEMPORARY_SUFFIX}").write_text("<rss", "utf-8")
    run_to_the_end(root, environment)
    assert outputs(root) == expected
    assert temporaries(root) == []
    for query in ("consulat", '"the horizon"', "conseiller"):
        assert search(root, query) == search(reference_root, query)


# --- Publishing is all or previous: a full disk or a missing ffmpeg keeps the good feed ----


def hand_made_archive(root):
    from pipeline.model import Segment, Word

    from conftest import write_transcript

    copy_archive(root, slugs=["kennedy-inaugural-1961", "conservateur-des-eaux-et-forets"])
    for slug, said in (("kennedy-inaugural-1961", ["ask", "not", "what"]),
                       ("conservateur-des-eaux-et-forets", ["sous", "le", "consulat"])):
        words = [Word(w, 0.5 + n * 0.5, 0.9 + n * 0.5, 0.9) for n, w in enumerate(said)]
        write_transcript(root, slug, [Segment(0, 0.5, 2.0, "", "", "en", words)])
    return root


def invoke(root, command):
    from click.testing import CliRunner

    from pipeline.cli import cli

    return CliRunner().invoke(cli, ["--archive", str(root), command])


def retitle(root, slug, title):
    toml = root / "episodes" / slug / "episode.toml"
    lines = toml.read_text("utf-8").splitlines()
    toml.write_text("\n".join(f'title = "{title}"' if line.startswith("title = ") else line
                              for line in lines) + "\n", "utf-8")


def feed_items(root):
    import feedparser

    return sorted(entry.title for entry in feedparser.parse((root / "feed/feed.xml").read_bytes()).entries)


def test_without_ffmpeg_the_previous_audio_and_feed_stay(tmp_path, monkeypatch):
    root = hand_made_archive(tmp_path / "a")
    assert invoke(root, "feed").exit_code == 0
    mp3 = root / "feed/episodes/kennedy-inaugural-1961/audio.mp3"
    before = mp3.read_bytes()
    retitle(root, "kennedy-inaugural-1961", "Ask not, again")  # the tags change: a new mp3 is due
    (tmp_path / "bin").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    result = invoke(root, "feed")
    assert result.exit_code == 1
    assert "ffmpeg is not installed" in result.stderr and "(the audio published before stays)" in result.stderr
    assert mp3.read_bytes() == before
    assert feed_items(root) == ["Ask not, again", "Conservateur des eaux et forêts"]
    # Now the mp3 must change for consent: the one published before may not stay.
    toml = root / "episodes/kennedy-inaugural-1961/episode.toml"
    toml.write_text('redact = ["what"]\n' + toml.read_text("utf-8"), "utf-8")
    result = invoke(root, "feed")
    assert result.exit_code == 1
    assert "kennedy-inaugural-1961: withdrawn (audio.mp3 removed" in result.stdout
    assert not mp3.exists()
    assert feed_items(root) == ["Conservateur des eaux et forêts"]


@pytest.fixture
def small_disk(tmp_path):
    """A 16 MiB file system of its own (needs root; skipped elsewhere)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(disk)],
                                           capture_output=True, check=False).returncode != 0:
        pytest.skip("mounting a small file system needs root")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_a_full_disk_keeps_the_previous_feed(small_disk):
    root = hand_made_archive(small_disk / "a")
    assert invoke(root, "feed").exit_code == 0
    published = {p: p.read_bytes() for p in (root / "feed").rglob("*") if p.is_file()}
    retitle(root, "kennedy-inaugural-1961", "Ask not, again")
    with open(small_disk / "filler", "wb") as filler:
        try:
            while True:
                filler.write(b"\0" * (1 << 16))
                filler.flush()
        except OSError:
            pass
        result = invoke(root, "feed")
    assert result.exit_code == 1
    assert "No space left on device" in result.stderr
    assert {p: p.read_bytes() for p in (root / "feed").rglob("*") if p.is_file()} == published
    assert feed_items(root) == ["Ask not what your country can do for you", "Conservateur des eaux et forêts"]
    assert temporaries(root) == []
    (small_disk / "filler").unlink()
    assert invoke(root, "feed").exit_code == 0
    assert feed_items(root) == ["Ask not, again", "Conservateur des eaux et forêts"]


# --- Scratch files live in the archive, and the next run removes a killed run's -------------


def test_a_killed_runs_scratch_files_stay_in_the_archive_until_the_next_run(tmp_path):
    root = hand_made_archive(tmp_path / "a")
    system_temporary = tmp_path / "system-tmp"
    system_temporary.mkdir()
    env = dict(os.environ, TMPDIR=str(system_temporary))
    scratch = root / SCRATCH_DIR
    feed = [sys.executable, "-m", "pipeline", "--archive", str(root), "feed"]
    process = subprocess.Popen(feed, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # Killed while ffmpeg encodes an mp3 into its scratch folder.
    assert kill_when(process, lambda: any(scratch.glob("*/*"))), "the run ended before it could be killed"
    assert list(system_temporary.iterdir()) == []
    finished = subprocess.run(feed, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert finished.returncode == 0, finished.stderr
    assert not scratch.exists()
    assert list(system_temporary.iterdir()) == []
    assert feed_items(root) == ["Ask not what your country can do for you", "Conservateur des eaux et forêts"]
