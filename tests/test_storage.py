import os

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
