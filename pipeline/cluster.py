"""Transcription and forced alignment on a Dask cluster: each stretch of a recording is
a task, and each transcript to time again.

podarchive schedules nothing itself: Dask distributed does, with a scheduler and its
workers (``dask scheduler``, ``dask worker``) or a LocalCluster of ``--workers N``
processes. Each worker loads the model once and keeps it, and reads a stretch's samples
from the recording on storage the workers share, or receives them (``--ship-audio``).
Only this process, which holds the archive's lock, assembles transcripts and writes
them: a worker killed in mid-task leaves nothing behind, and Dask runs its task again
on another worker.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .align import ForcedAligner, Retiming, retime
from .archive import Episode
from .audio import SAMPLE_RATE, speaker_tracks
from .embedded_model import Asked, LazyWhisper, model_identity
from .errors import PodarchiveError
from .model import Gap, Segment, Transcript
from .transcribe import Job, Progress, Stretch, assembled, decode_stretch, stretches

CONNECT_SECONDS = 5
# Windows handed out ahead per worker thread: enough that none waits for the next, few
# enough that this process holds the tracks of only a few recordings at once.
WINDOWS_AHEAD = 2


@dataclass(frozen=True)
class Recording:
    """Where a worker reads a stretch's samples: the recording on shared storage, as it
    was when the run planned it."""

    episode: Episode
    size: int
    mtime_ns: int


@dataclass
class _Transcribing:
    """An episode whose stretches are out on the cluster."""

    job: Job
    tracks: list[tuple[str, np.ndarray]]
    cut: list[Stretch]
    decoded: list[tuple[list[Segment], list[Gap]] | None]
    error: PodarchiveError | None = None

    @property
    def complete(self) -> bool:
        return all(result is not None for result in self.decoded)


@dataclass
class Cluster:
    """A Dask cluster to transcribe on: the scheduler at ``address``, or a LocalCluster of
    ``workers`` single-threaded processes started on first use. ``on_window`` hears of
    each window decoded (a progress display counts them)."""

    address: str | None = None
    workers: int | None = None
    ship_audio: bool = False
    on_window: Callable[[], None] | None = None
    _client: object = field(default=None, repr=False)
    _local: object = field(default=None, repr=False)

    def connect(self):
        """The Dask client, connected on first use; an unreachable scheduler is one error."""
        if self._client is None:
            from distributed import Client, LocalCluster

            if self.address:
                try:
                    self._client = Client(self.address, timeout=CONNECT_SECONDS)
                except Exception as error:  # noqa: BLE001 - Dask raises OSError, TimeoutError, ValueError…
                    said = str(error).splitlines()[0] if str(error) else type(error).__name__
                    raise PodarchiveError(self.address, "--cluster",
                                          f"no Dask scheduler answers there within {CONNECT_SECONDS} s ({said})"
                                          ) from None
            else:
                self._local = LocalCluster(n_workers=self.workers, threads_per_worker=1, processes=True,
                                           dashboard_address=None, silence_logs=logging.ERROR)
                self._client = Client(self._local)
        return self._client

    def close(self) -> None:
        """Let the cluster go: a LocalCluster's workers, each holding a model, do not
        outlive the stages that use them."""
        for part in (self._client, self._local):
            if part is not None:
                part.close()
        self._client = self._local = None

    def transcribe(self, jobs: list[Job], *, model: str | None, asked: Asked, batch_size: int,
                   progress: Progress | None = None) -> Iterator[tuple[Job, Transcript | PodarchiveError]]:
        """Each job's transcript (or what stopped it), as its last window comes back; it
        records where its first window ran (each worker places its model itself)."""
        from distributed import as_completed

        client = self.connect()
        model_id = model_identity(model)
        capacity = WINDOWS_AHEAD * max(1, sum(client.nthreads().values()))
        run = uuid.uuid4().hex[:8]
        finished = as_completed()
        waiting: dict[object, tuple[str, int]] = {}
        out: dict[str, _Transcribing] = {}
        planned = iter(jobs)

        def hand_out() -> Iterator[tuple[Job, PodarchiveError]]:
            while len(waiting) < capacity and (job := next(planned, None)) is not None:
                try:
                    tracks = speaker_tracks(job.episode, SAMPLE_RATE)
                    stat = job.episode.audio_path.stat()
                except (PodarchiveError, OSError) as error:
                    yield job, _as_error(error, job.episode.audio_path)
                    continue
                cut = stretches(tracks)
                out[job.episode.slug] = _Transcribing(job, tracks, cut, [None] * len(cut))
                recording = Recording(job.episode, stat.st_size, stat.st_mtime_ns)
                for number, stretch in enumerate(cut):
                    source = (client.scatter(tracks[stretch.track][1][stretch.first:stretch.last], hash=False)
                              if self.ship_audio else recording)
                    future = client.submit(decode_on_worker, model, asked, source, stretch, job.options,
                                           batch_size, pure=False,
                                           key=f"podarchive-{run}-{job.episode.slug}-{number}")
                    waiting[future] = (job.episode.slug, number)
                    finished.add(future)

        yield from hand_out()
        while waiting:
            future = next(finished)
            slug, number = waiting.pop(future)
            episode = out[slug]
            try:
                placement, episode.decoded[number] = future.result()
                if number == 0:
                    episode.job = replace(episode.job, options=replace(episode.job.options, placement=placement))
            except Exception as error:  # noqa: BLE001 - a worker's failure is this episode's alone
                episode.decoded[number] = ([], [])
                episode.error = episode.error or _as_error(error, episode.job.episode.audio_path)
            future.release()
            if progress:
                progress(episode.cut[number].seconds / len(episode.tracks))
            if self.on_window:
                self.on_window()
            if episode.complete:
                del out[slug]
                yield episode.job, episode.error or _assembled(episode, model_id)
            yield from hand_out()


    def align(self, jobs: list[Retiming]) -> Iterator[tuple[Retiming, Transcript | PodarchiveError]]:
        """Each transcript timed again on a worker (a task per episode: forced alignment
        takes a fraction of transcription's time), as it comes back."""
        from distributed import as_completed

        client = self.connect()
        futures = {}
        for job in jobs:
            try:
                tracks = client.scatter(dict(speaker_tracks(job.episode)), hash=False) if self.ship_audio else None
            except PodarchiveError as error:
                yield job, error
                continue
            futures[client.submit(retime_on_worker, job, tracks, pure=False)] = job
        for future in as_completed(futures):
            job = futures.pop(future)
            try:
                yield job, future.result()
            except Exception as error:  # noqa: BLE001 - a worker's failure is this episode's alone
                yield job, _as_error(error, job.episode.transcript_path)
            future.release()


def _assembled(episode: _Transcribing, model_id: str) -> Transcript | PodarchiveError:
    try:
        return assembled(episode.job, episode.tracks, episode.cut, episode.decoded, model_id=model_id)
    except PodarchiveError as error:
        return error


def _as_error(error: Exception, path: Path) -> PodarchiveError:
    if isinstance(error, PodarchiveError):
        return error
    return PodarchiveError(path, None, f"the cluster could not transcribe it ({type(error).__name__}: {error})")


# --- On each worker -------------------------------------------------------------------------

_models: dict[tuple[str | None, Asked], LazyWhisper] = {}
_aligner: dict[str, ForcedAligner] = {}
_last_recording: dict[str, object] = {}  # a recording's stretches mostly come to one worker in turn
_worker_lock = threading.Lock()


def decode_on_worker(model: str | None, asked: Asked, source: np.ndarray | Recording,
                     stretch: Stretch, options, batch_size: int):
    """One stretch decoded on a worker: where it ran, and its pieces and gaps, timed from its start."""
    samples = source if isinstance(source, np.ndarray) else _track(source, stretch.track)[stretch.first:stretch.last]
    whisper = _whisper(model, asked)
    return whisper.placement, decode_stretch(whisper.get(), samples, options, batch_size=batch_size)


def retime_on_worker(job: Retiming, tracks: dict[str, np.ndarray] | None) -> Transcript:
    """One transcript timed again on a worker, on the tracks sent or its recording's."""
    with _worker_lock:
        if "aligner" not in _aligner:
            from distributed import get_worker

            _aligner["aligner"] = ForcedAligner(threads=1, workers=get_worker().state.nthreads)
    return retime(job, _aligner["aligner"], tracks)


def _whisper(model: str | None, asked: Asked) -> LazyWhisper:
    """The worker's model, placed on this worker (its GPU when it has one and auto is
    asked), loaded once and kept. As Dask means its threads, each decodes one window on
    one core: a worker of N threads runs N windows at once, on one model."""
    with _worker_lock:
        if (model, asked) not in _models:
            from distributed import get_worker

            _models[model, asked] = LazyWhisper(model, asked.resolve(), threads=1,
                                                workers=get_worker().state.nthreads)
            _models[model, asked].get()
        return _models[model, asked]


def _track(recording: Recording, number: int) -> np.ndarray:
    path = recording.episode.audio_path
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise PodarchiveError(path, None, "not found on a cluster worker: the archive must sit on storage "
                                          "the workers share, or run with --ship-audio") from None
    if (stat.st_size, stat.st_mtime_ns) != (recording.size, recording.mtime_ns):
        raise PodarchiveError(path, None, "the recording changed while the run was transcribing it")
    key = f"{path} {recording.size} {recording.mtime_ns}"
    with _worker_lock:
        if _last_recording.get("key") != key:
            _last_recording.clear()
            _last_recording.update(key=key, tracks=speaker_tracks(recording.episode, SAMPLE_RATE))
        return _last_recording["tracks"][number][1]
