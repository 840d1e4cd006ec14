import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline import embedded_model
from pipeline.archive import load_archive
from pipeline.cli import cli
from pipeline.embedded_model import EMBEDDED_SHA256, Placement, model_identity, place, resolve_model
from pipeline.errors import PodarchiveError
from pipeline.storage import cache_dir, sha256_file

from conftest import copy_archive, set_archive_toml


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


@pytest.mark.model
def test_a_cpu_runs_one_single_threaded_call_per_core_each_given_its_share_of_windows(session_cache):
    """Whisper's calls run at once, one per core (two threads on one call stay half idle);
    each call is given windows while there are enough, and no more than the batch size
    asked are decoded at once; a caller that makes one call at a time keeps every core."""
    from pipeline.transcribe import _Decoder

    whisper = embedded_model.LazyWhisper(None).get()
    assert whisper.model.num_workers == embedded_model.usable_cores()
    decoder = _Decoder(whisper, beam_size=5, hotwords=[], batch_size=6)
    for windows in range(1, 20):
        size = decoder._shared(windows, -(-6 // decoder.calls))
        assert -(-windows // size) >= min(windows, decoder.calls)
        assert size * min(decoder.calls, -(-windows // size)) <= 6 + decoder.calls - 1
    assert embedded_model.LazyWhisper(None, workers=1).get().model.num_workers == 1


# --- where whisper runs: --device, --compute-type -----------------------------------------


def _machine(monkeypatch, gpus: int) -> None:
    """A machine whose CTranslate2 sees ``gpus`` CUDA devices (the choice only asks it that)."""
    monkeypatch.setattr(embedded_model, "_cuda_devices", lambda: gpus)
    monkeypatch.setattr(embedded_model, "_supported_compute_types", lambda device: (
        {"float16", "int8_float16", "int8", "float32", "bfloat16"} if device == "cuda"
        else {"int8", "int8_float32", "float32"}))


@pytest.mark.parametrize(("gpus", "device", "compute_type", "expected"), [
    (0, None, None, Placement("cpu", "int8")),
    (1, None, None, Placement("cuda", "float16")),
    (1, "auto", None, Placement("cuda", "float16")),
    (1, "cpu", None, Placement("cpu", "int8")),
    (2, "cuda", "int8_float16", Placement("cuda", "int8_float16")),
    (0, "cpu", "float32", Placement("cpu", "float32")),
])
def test_auto_takes_a_gpu_when_ctranslate2_sees_one(monkeypatch, tmp_path, gpus, device, compute_type, expected):
    _machine(monkeypatch, gpus)
    assert place(device, compute_type, source=tmp_path / "archive.toml") == expected


def test_this_machine_without_a_gpu_runs_int8_on_the_cpu(tmp_path):
    assert place(None, None, source=tmp_path) == Placement("cpu", "int8")


@pytest.mark.parametrize(("gpus", "device", "compute_type", "field", "cause"), [
    (0, "cuda", None, "--device", "sees no GPU"),
    (0, "cpu", "float16", "--compute-type", "cannot run on this cpu"),
    (1, "tpu", None, "--device", "unknown device"),
])
def test_a_placement_that_cannot_run_names_the_option(monkeypatch, tmp_path, gpus, device, compute_type,
                                                      field, cause):
    _machine(monkeypatch, gpus)
    with pytest.raises(PodarchiveError) as raised:
        place(device, compute_type, source=tmp_path / "archive.toml")
    assert raised.value.field == field and cause in raised.value.message


def test_cuda_asked_on_a_machine_without_one_fails_in_one_line_before_any_model_loads(tmp_path):
    root = copy_archive(tmp_path / "archive", ["jfk-inaugural"])
    result = CliRunner().invoke(cli, ["--archive", str(root), "transcribe", "--device", "cuda"])
    assert result.exit_code != 0
    assert "archive.toml: --device: cuda asked for, but CTranslate2 sees no GPU" in result.output
    assert "Traceback" not in result.output
    assert not (root / "episodes" / "jfk-inaugural" / "transcript.json").exists()


def test_archive_toml_sets_the_device_and_rejects_an_unknown_one(tmp_path):
    root = copy_archive(tmp_path / "archive", ["jfk-inaugural"])
    set_archive_toml(root, {'language = "': 'device = "gpu"\nlanguage = "'})
    result = CliRunner().invoke(cli, ["--archive", str(root), "check"])
    assert result.exit_code != 0
    assert "archive.toml: device: must be one of auto, cpu, cuda" in result.output
    set_archive_toml(root, {'device = "gpu"': 'device = "cuda"\ncompute_type = "int8_float16"'})
    archive = load_archive(root)
    assert (archive.device, archive.compute_type) == ("cuda", "int8_float16")
    result = CliRunner().invoke(cli, ["--archive", str(root), "transcribe"])
    assert result.exit_code != 0 and "archive.toml: device: cuda asked for" in result.output
