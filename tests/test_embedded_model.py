import json
import os
import subprocess
import sys

import pytest

from pipeline import embedded_model
from pipeline.embedded_model import EMBEDDED_SHA256, model_identity, resolve_model
from pipeline.errors import PodarchiveError
from pipeline.storage import sha256_file


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PODARCHIVE_CACHE_DIR", str(tmp_path / "cache"))
    embedded_model._embedded_model_dir.cache_clear()
    yield tmp_path / "cache"
    embedded_model._embedded_model_dir.cache_clear()


def test_embedded_model_is_joined_into_the_cache_and_verified(fresh_cache):
    location = resolve_model(None)
    assert location.startswith(str(fresh_cache))
    folder = fresh_cache / "models" / f"whisper-base-{EMBEDDED_SHA256[:12]}"
    assert sha256_file(folder / "model.bin") == EMBEDDED_SHA256
    config = json.loads((folder / "config.json").read_text())
    assert config["alignment_heads"]  # word timestamps need them
    assert {p.name for p in folder.iterdir()} == {
        "model.bin", "model.bin.verified", "config.json", "tokenizer.json", "vocabulary.json"}


def test_a_corrupted_cache_is_joined_again(fresh_cache):
    resolve_model(None)
    model_bin = next(fresh_cache.glob("models/*/model.bin"))
    with open(model_bin, "r+b") as damaged:  # a change the verification stamp sees
        damaged.write(b"\0" * 64)
    embedded_model._embedded_model_dir.cache_clear()
    resolve_model(None)
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


def test_a_verified_model_is_not_hashed_again(fresh_cache, monkeypatch):
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
