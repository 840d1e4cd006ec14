"""Transcription on a Dask cluster: the same transcripts as one process, a killed worker
costing nothing but time, an unreachable scheduler said in one line."""

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from distributed import Client, LocalCluster

from pipeline.archive import read_transcript
from pipeline.cli import cli

from conftest import copy_archive, free_port

SLUGS = ["conservateur-des-eaux-et-forets", "eric-joanis-readalongs", "kennedy-inaugural-1961",
         "mit-licence-en-de", "two-voices-stereo"]


def transcripts(root: Path) -> dict:
    """What a transcript says, not when it was made: words, times, languages, gaps, voices."""
    found = {}
    for slug in SLUGS:
        transcript = read_transcript(root / "episodes" / slug / "transcript.json")
        assert transcript is not None, slug
        found[slug] = (transcript.language, transcript.duration, transcript.model, transcript.options,
                       transcript.segments, transcript.gaps, transcript.turns)
    return found


def leftovers(root: Path) -> list[Path]:
    return [path for path in root.rglob("*") if path.name.endswith(".tmp")]


@pytest.fixture(scope="module")
def one_core_run(tmp_path_factory):
    """The bundled archive transcribed by one process on one core, as each worker thread
    runs its windows: CTranslate2's and the BLAS's sums differ in their last bits with
    their thread count, and so, now and then, does a word."""
    root = copy_archive(tmp_path_factory.mktemp("one-core"))
    one_core("--archive", str(root), "transcribe", cache=tmp_path_factory.getbasetemp() / "cache")
    return root


@pytest.mark.model
def test_two_local_workers_transcribe_what_one_process_does(tmp_path, one_core_run):
    root = copy_archive(tmp_path / "archive")
    result = CliRunner().invoke(cli, ["--archive", str(root), "transcribe", "--workers", "2"])
    assert result.exit_code == 0, result.output
    assert result.stdout.count(": transcribed") == len(SLUGS)
    assert "windows" in result.output  # the progress line counts windows decoded on the cluster
    assert transcripts(root) == transcripts(one_core_run)
    assert leftovers(root) == [] and not (root / ".podarchive.tmp").exists()


@pytest.mark.model
def test_a_worker_killed_in_mid_task_costs_time_not_transcripts(tmp_path, one_core_run):
    """A scheduler started apart, as `dask scheduler` and `dask worker` would be."""
    root = copy_archive(tmp_path / "archive")
    killed: list[int] = []
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      scheduler_port=free_port()) as cluster, Client(cluster) as client:
        pids = client.run(os.getpid)

        def kill_a_busy_worker() -> None:
            deadline = time.monotonic() + 120
            while not killed and time.monotonic() < deadline:
                busy = [worker for worker, keys in client.processing().items()
                        if any(str(key).startswith("podarchive-") for key in keys)]
                if busy:
                    os.kill(pids[busy[0]], signal.SIGKILL)
                    killed.append(pids[busy[0]])
                time.sleep(0.05)

        killer = threading.Thread(target=kill_a_busy_worker)
        killer.start()
        result = CliRunner().invoke(cli, ["--archive", str(root), "transcribe", "--cluster",
                                          cluster.scheduler_address])
        killer.join()
    assert killed, "no worker was ever busy with a window"
    assert result.exit_code == 0, result.output
    assert result.stdout.count(": transcribed") == len(SLUGS)  # each once
    assert transcripts(root) == transcripts(one_core_run)
    assert leftovers(root) == []


def test_an_unreachable_scheduler_is_said_in_seconds_on_one_line(tmp_path):
    root = copy_archive(tmp_path / "archive", ["kennedy-inaugural-1961"])
    address = f"tcp://127.0.0.1:{free_port()}"
    began = time.monotonic()
    result = CliRunner().invoke(cli, ["--archive", str(root), "run"], env={"PODARCHIVE_CLUSTER": address})
    took = time.monotonic() - began
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"error: {address}: --cluster: no Dask scheduler answers there within 5 s "
        + result.output.split("within 5 s ", 1)[1].strip()]
    assert took < 15
    assert not (root / "episodes" / "kennedy-inaugural-1961" / "transcript.json").exists()


def test_cluster_and_local_workers_exclude_each_other(tmp_path):
    root = copy_archive(tmp_path / "archive", ["kennedy-inaugural-1961"])
    result = CliRunner().invoke(cli, ["--archive", str(root), "run", "--cluster", "tcp://127.0.0.1:1",
                                      "--workers", "2"])
    assert result.exit_code == 2 and "--cluster and --workers exclude each other" in result.output


@pytest.mark.model
def test_workers_sent_the_samples_need_no_shared_storage(tmp_path, one_core_run):
    slug = "kennedy-inaugural-1961"
    root = copy_archive(tmp_path / "archive", [slug])
    result = CliRunner().invoke(cli, ["--archive", str(root), "transcribe", "--workers", "1", "--ship-audio"])
    assert result.exit_code == 0, result.output
    shipped = read_transcript(root / "episodes" / slug / "transcript.json")
    alone = read_transcript(one_core_run / "episodes" / slug / "transcript.json")
    assert (shipped.segments, shipped.gaps) == (alone.segments, alone.gaps)


def one_core(*command: str, cache: Path) -> None:
    """``podarchive COMMAND`` in a process on one core, as a worker thread runs its tasks."""
    first_core = min(os.sched_getaffinity(0))
    subprocess.run([sys.executable, "-m", "pipeline", *command], check=True, capture_output=True,
                   preexec_fn=lambda: os.sched_setaffinity(0, {first_core}),
                   env={**os.environ, "PODARCHIVE_CACHE_DIR": str(cache)})


@pytest.mark.model
def test_a_correction_is_aligned_on_the_workers_as_here(tmp_path, one_core_run, tmp_path_factory):
    slug = "eric-joanis-readalongs"
    corrected = (Path(__file__).parent / "data" / "references" / "ej-fra.txt").read_text("utf-8")
    roots = []
    for name in ("here", "on-workers"):
        root = copy_archive(tmp_path / name, [slug])
        shutil.copy(one_core_run / "episodes" / slug / "transcript.json", root / "episodes" / slug)
        (root / "episodes" / slug / "transcript.txt").write_text(corrected, "utf-8")
        roots.append(root)
    here, on_workers = roots
    one_core("--archive", str(here), "align", cache=tmp_path_factory.getbasetemp() / "cache")
    result = CliRunner().invoke(cli, ["--archive", str(on_workers), "run", "--workers", "2"])
    assert result.exit_code == 0, result.output
    assert f"align {slug}: aligned" in result.stdout
    timed = [read_transcript(root / "episodes" / slug / "transcript.json") for root in roots]
    assert [w.text for s in timed[1].segments for w in s.words] == corrected.split()
    assert timed[0].segments == timed[1].segments and timed[1].reviewed
    assert leftovers(on_workers) == [] and not (on_workers / ".podarchive.tmp").exists()


def test_each_worker_places_its_model_itself(tmp_path):
    """The device is decided where whisper runs: a worker without a GPU refuses cuda,
    whatever the machine that asks has."""
    root = copy_archive(tmp_path / "archive", ["kennedy-inaugural-1961"])
    result = CliRunner().invoke(cli, ["--archive", str(root), "transcribe", "--workers", "1", "--device", "cuda"])
    assert result.exit_code == 1
    assert "archive.toml: --device: cuda asked for, but CTranslate2 sees no GPU here" in result.stderr
    assert not (root / "episodes" / "kennedy-inaugural-1961" / "transcript.json").exists()
