import hashlib
import os
import tempfile
from pathlib import Path

import pytest

from pipeline import storage


def test_atomic_write_replaces_the_whole_file(tmp_path):
    path = tmp_path / "deep" / "transcript.json"
    storage.atomic_write_json(path, {"text": "première"})
    storage.atomic_write_json(path, {"text": "seconde"})
    assert path.read_text("utf-8") == '{\n  "text": "seconde"\n}\n'
    assert [p.name for p in path.parent.iterdir()] == ["transcript.json"]


def test_a_write_that_fails_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "transcript.json"
    path.write_text("old", "utf-8")

    def killed(*_args):
        raise KeyboardInterrupt  # as if the run were interrupted between write and rename

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        storage.atomic_write_text(path, "new")
    assert path.read_text("utf-8") == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["transcript.json"]


def test_scratch_files_are_made_in_the_folder_given_which_goes_at_the_end(tmp_path):
    folder = tmp_path / ".podarchive.tmp"
    with pytest.raises(KeyboardInterrupt), storage.scratch_files_in(folder):
        with tempfile.NamedTemporaryFile(delete=False) as made:
            assert Path(made.name).parent == folder.resolve()
        assert Path(tempfile.mkdtemp()).parent == folder.resolve()
        raise KeyboardInterrupt  # as if the run were stopped
    assert not folder.exists()
    assert Path(tempfile.gettempdir()) != folder.resolve()


def test_the_lock_keeps_a_runs_scratch_files_in_the_archive_and_removes_a_killed_runs(tmp_path):
    from pipeline import build, layout

    left = layout.scratch_dir(tmp_path) / "podarchive-killed"
    left.mkdir(parents=True)
    (left / "audio.mp3").write_bytes(b"half an mp3")
    with build.locked(tmp_path):
        assert not left.exists()
        assert Path(tempfile.mkdtemp(prefix="podarchive-")).parent == layout.scratch_dir(tmp_path).resolve()
    assert not layout.scratch_dir(tmp_path).exists()


def test_an_archive_the_scratch_folder_cannot_be_made_in_is_named(tmp_path):
    (tmp_path / ".podarchive.tmp").write_text("a file where the folder goes", "utf-8")
    with (pytest.raises(storage.PodarchiveError, match=r"\.podarchive\.tmp: cannot write: File exists"),
          storage.scratch_files_in(tmp_path / ".podarchive.tmp")):
        pass


def test_a_file_digest_is_remembered_until_the_file_changes(tmp_path, monkeypatch):
    recording = tmp_path / "interview.wav"
    recording.write_bytes(b"RIFF" + bytes(1000))
    hashed = []
    real = storage.sha256_file
    monkeypatch.setattr(storage, "sha256_file", lambda path: hashed.append(path) or real(path))
    first = storage.file_digest(recording)
    assert first == hashlib.sha256(recording.read_bytes()).hexdigest()
    assert storage.file_digest(recording) == first and len(hashed) == 1  # remembered
    recording.write_bytes(b"RIFF" + bytes(999) + b"!")  # same size, another moment
    os.utime(recording, ns=(1, 2))
    assert storage.file_digest(recording) == hashlib.sha256(recording.read_bytes()).hexdigest() != first
    assert len(hashed) == 2
