import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline import embedded_model
from pipeline.embedded_model import EMBEDDED_SHA256, model_identity, resolve_model
from pipeline.errors import PodarchiveError
from pipeline.storage import cache_dir, sha256_file


@pytest.fixture
def session_cache():
    """The cache every test of this run shares (conftest): the model is joined there once."""
    return cache_dir()


def test_embedded_model_is_joined_into_the_cache_and_verified(session_cache):
    location = resolve_model(None)
    assert location.startswith(str(session_cache))
    folder = session_cache / "models" / f"whisper-base-{EMBEDDED_SHA256[:12]}"
    assert sha256_file(folder / "model.bin") == EMBEDDED_SHA256
    config = json.loads((folder / "config.json").read_text())
    assert config["alignment_heads"]  # word timestamps need them
    assert {p.name for p in folder.iterdir()} == {
        "model.bin", "model.bin.verified", "config.json", "tokenizer.json", "vocabulary.json"}


def test_a_corrupted_cache_is_joined_again(session_cache, tmp_path, monkeypatch):
    joined = Path(resolve_model(None))
    own = tmp_path / "cache"
    shutil.copytree(joined, own / "models" / joined.name)  # a copy costs less than a second join
    monkeypatch.setenv("PODARCHIVE_CACHE_DIR", str(own))
    model_bin = own / "models" / joined.name / "model.bin"
    with open(model_bin, "r+b") as damaged:  # a change the verification stamp sees
        damaged.write(b"\0" * 64)
    assert resolve_model(None) == str(model_bin.parent)
    assert sha256_file(model_bin) == EMBEDDED_SHA256


def test_model_option_accepts_a_folder_or_a_name(tmp_path):
    folder = tmp_path / "my-model"
    folder.mkdir()
    with pytest.raises(PodarchiveError, match="no model.bin"):
        resolve_model(str(folder))
    (folder / "model.bin").write_bytes(b"")
    assert resolve_model(str(folder)) == str(folder.resolve())
    assert model_identity(str(folder)) == str(folder.resolve())
    assert resolve_model("large-v3") == "large-v3"  # faster-whisper fetches it when online
    assert model_identity(None) == model_identity("embedded:whisper-base")


def test_a_verified_model_is_not_hashed_again(session_cache, monkeypatch):
    resolve_model(None)
    embedded_model._embedded_model_dir.cache_clear()
    hashed = []
    monkeypatch.setattr(embedded_model, "sha256_file", lambda path: hashed.append(path) or "")
    resolve_model(None)
    assert hashed == []


def test_decoding_threads_follow_the_cores_the_process_may_run_on():
    """A container or taskset that allows one core gets one thread, not the machine's count."""
    one_core = ("import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); "
                "from pipeline.embedded_model import usable_cores; print(usable_cores())")
    shown = subprocess.run([sys.executable, "-c", one_core], capture_output=True, text=True, check=True)
    assert shown.stdout.strip() == "1"
    assert embedded_model.usable_cores() == len(os.sched_getaffinity(0))
