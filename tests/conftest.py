import http.client
import json
import re
import shutil
import socket
import subprocess
import sys
import time
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import faster_whisper
import jiwer
import pytest
from click.testing import CliRunner

from pipeline.archive import load_episode
from pipeline.cli import cli
from pipeline.model import Transcript
from pipeline.storage import sha256_file
from pipeline.text import fold

REPO = Path(__file__).resolve().parent.parent
REFERENCES = Path(__file__).resolve().parent / "data" / "references"


def normalise(text: str) -> str:
    """Lowercase, punctuation to spaces, single spaces: the WER convention of shared/audio."""
    text = text.lower().replace("\u2019", "'")
    return " ".join(re.sub(r"[^\w\s]", " ", text).split())


def word_error_rate(reference: str, hypothesis: str) -> float:
    return jiwer.wer(normalise(reference), normalise(hypothesis))


def reference(name: str) -> str:
    return (REFERENCES / name).read_text(encoding="utf-8")


def copy_archive(target: Path, slugs: list[str] | None = None) -> Path:
    """A copy of the bundled archive (or some of its episodes) without derived files."""
    (target / "episodes").mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "archive.toml", target / "archive.toml")
    shutil.copy(REPO / "cover.png", target / "cover.png")
    for folder in sorted((REPO / "episodes").iterdir()):
        if folder.is_dir() and (slugs is None or folder.name in slugs):
            shutil.copytree(folder, target / "episodes" / folder.name,
                            ignore=shutil.ignore_patterns("transcript.json"))
        elif folder.is_file():  # episodes/LICENSES.md: a file among the folders, as in the repository
            shutil.copy(folder, target / "episodes" / folder.name)
    return target


def write_transcript(root: Path, slug: str, segments: list, *, language: str = "en",
                     duration: float = 11.0) -> Transcript:
    """A hand-made transcript.json for the recording episode.toml names (tests without the model)."""
    episode = load_episode(root / "episodes" / slug)
    transcript = Transcript(slug, language, duration, "hand-made", {}, sha256_file(episode.audio_path), segments)
    transcript.timing_sha256 = transcript.words_digest()
    episode.transcript_path.write_text(json.dumps(transcript.to_json(), ensure_ascii=False), "utf-8")
    return transcript


def raw_index_bytes(root: Path) -> bytes:
    """Every file under index/, with any zlib streams found in it inflated too."""
    chunks = []
    for path in (root / "index").rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            chunks.append(data)
            for start in range(len(data) - 1):
                if data[start] == 0x78 and data[start + 1] in (0x01, 0x5E, 0x9C, 0xDA):
                    try:
                        chunks.append(zlib.decompressobj().decompress(data[start:]))
                    except zlib.error:
                        pass
    return b"\n".join(chunks).lower()


def published_texts(root: Path):
    """(path, folded text) of every file under feed/ and index/: what the world may read."""
    for folder in ("feed", "index"):
        for path in sorted((root / folder).rglob("*")):
            if path.is_file():
                yield path, fold(path.read_bytes().decode("utf-8", errors="ignore"))


@pytest.fixture(autouse=True)
def _model_cache(tmp_path_factory, monkeypatch):
    """Tests share one model cache of their own, never the user's."""
    monkeypatch.setenv("PODARCHIVE_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(autouse=True)
def _whisper_only_in_model_tests(request, monkeypatch):
    """A test that loads whisper must say so (`-m "not model"` is the quick suite)."""
    if request.node.get_closest_marker("model") is None:
        def refuse(*_, **__):
            raise AssertionError(f"{request.node.name} runs whisper: mark it @pytest.mark.model")
        monkeypatch.setattr(faster_whisper.WhisperModel, "__init__", refuse)


@pytest.fixture(scope="session")
def transcribed_archive(tmp_path_factory):
    """The bundled archive after one `podarchive run`: each clip is transcribed once per test run."""
    root = copy_archive(tmp_path_factory.mktemp("bundled"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PODARCHIVE_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))
        result = CliRunner().invoke(cli, ["--archive", str(root), "run"])
    assert result.exit_code == 0, result.output
    return root, result


def set_archive_toml(root: Path, replace: dict[str, str]) -> None:
    """archive.toml with each text of ``replace`` (which must be there) replaced."""
    path = root / "archive.toml"
    text = path.read_text("utf-8")
    for old, new in replace.items():
        assert old in text, old
        text = text.replace(old, new)
    path.write_text(text, "utf-8")


# --- `podarchive serve` in a process of its own ------------------------------------------


@dataclass
class Response:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")

    def json(self):
        return json.loads(self.body)


@dataclass
class Server:
    root: Path
    port: int
    output: Path

    def get(self, path: str, method: str = "GET", headers: dict | None = None) -> Response:
        """One request with ``path`` sent as it is written (no client normalises it)."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            connection.request(method, path, headers=headers or {})
            answer = connection.getresponse()
            return Response(answer.status, answer.headers, answer.read())
        finally:
            connection.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def running_server(root: Path, output: Path, *options: str):
    """`podarchive serve` on ``root`` in its own process until the block ends."""
    port = free_port()
    with open(output, "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "pipeline", "--archive", str(root), "serve", "--port", str(port), *options],
            cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    server = Server(root, port, output)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, output.read_text()
            try:
                server.get("/site.css")
                break
            except OSError:
                assert time.monotonic() < deadline, output.read_text()
                time.sleep(0.1)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
