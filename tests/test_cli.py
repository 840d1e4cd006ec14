import subprocess
import sys
import threading
import time

import pytest
from click.testing import CliRunner
from filelock import FileLock

from pipeline import layout
from pipeline.cli import cli

from conftest import REPO, copy_archive


def test_python_dash_m_pipeline_is_the_cli():
    result = subprocess.run([sys.executable, "-m", "pipeline", "--help"], cwd=REPO,
                            capture_output=True, text=True, check=True)
    for command in ("check", "transcribe", "run"):
        assert command in result.stdout


def test_every_command_has_help(tmp_path):
    runner = CliRunner()
    for command in cli.commands:  # in a folder that is no archive, too
        result = runner.invoke(cli, ["--archive", str(tmp_path / "none"), command, "--help"])
        assert result.exit_code == 0, command
        assert len(result.output.splitlines()) > 3


@pytest.mark.parametrize("command", [["check"], ["run"], ["search", "x"], ["clip", "a", "1", "2", "-o", "x.mp3"],
                                     ["add", "x.wav", "--title", "x", "--date", "2025-01-01"]])
def test_a_folder_that_is_no_archive_is_named_with_what_to_do(tmp_path, command):
    for folder, reason in ((tmp_path / "nonexistent", "no such folder"), (tmp_path, "no archive.toml in it")):
        result = CliRunner().invoke(cli, ["--archive", str(folder), *command])
        assert result.exit_code == 1
        assert result.stderr == (f"error: {folder.resolve()}: not an archive ({reason}): give --archive PATH, "
                                 f"or start one with `podarchive init {folder}`\n")


@pytest.mark.parametrize(("start", "end", "named"), [("nan", "2", "START"), ("0", "inf", "END"),
                                                     ("1e999", "2", "START"), ("0", "two", "END")])
def test_clip_moments_must_be_finite_seconds(start, end, named):
    result = CliRunner().invoke(cli, ["--archive", str(REPO), "clip", "kennedy-inaugural-1961", start, end,
                                      "-o", "never.mp3"])
    assert result.exit_code == 2 and f"Invalid value for '{named}'" in result.stderr
    assert "Traceback" not in result.output


def test_unknown_slug_is_an_error(tmp_path):
    root = copy_archive(tmp_path / "a", slugs=["kennedy-inaugural-1961"])
    result = CliRunner().invoke(cli, ["--archive", str(root), "transcribe", "no-such-episode"])
    assert result.exit_code == 1
    assert "episodes/no-such-episode: no such valid episode" in result.stderr


def test_a_model_folder_without_weights_is_named(tmp_path):
    root = copy_archive(tmp_path / "a", slugs=["kennedy-inaugural-1961"])
    (tmp_path / "empty-model").mkdir()
    result = CliRunner().invoke(cli, ["--archive", str(root), "transcribe",
                                      "--model", str(tmp_path / "empty-model")])
    assert result.exit_code == 1
    assert "empty-model: --model: folder has no model.bin" in result.stderr
    assert not (root / "episodes/kennedy-inaugural-1961/transcript.json").exists()


def test_a_second_run_fails_fast_with_no_wait(tmp_path):
    root = copy_archive(tmp_path / "a", slugs=["kennedy-inaugural-1961"])
    with FileLock(str(layout.lock_file(root))):
        result = CliRunner().invoke(cli, ["--archive", str(root), "--no-wait", "render"])
    assert result.exit_code == 1
    assert "another podarchive run holds this archive (--no-wait given)" in result.stderr


def test_a_second_run_waits_for_the_first_and_says_so(tmp_path):
    root = copy_archive(tmp_path / "a", slugs=["kennedy-inaugural-1961"])
    held = threading.Event()

    def hold_the_lock_a_moment():
        with FileLock(str(layout.lock_file(root))):
            held.set()
            time.sleep(0.5)

    threading.Thread(target=hold_the_lock_a_moment).start()
    held.wait()
    started = time.monotonic()
    result = CliRunner().invoke(cli, ["--archive", str(root), "render"])
    assert result.exit_code == 0, result.output
    assert time.monotonic() - started >= 0.4
    assert "waiting for it to finish" in result.stderr
