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
