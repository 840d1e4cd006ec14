"""Recordings as the model hears them: probing, and decoding into samples."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from .archive import Episode
from .errors import PodarchiveError

SAMPLE_RATE = 16000  # what whisper listens at
# Less than this share of the declared duration decodes: the file was cut short.
TRUNCATED_BELOW = 0.5


@dataclass(frozen=True)
class AudioInfo:
    duration: float
    channels: int
    sample_rate: int


def probe(path: Path) -> AudioInfo:
    """Duration and layout of a recording, read from its container (no full decode)."""
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise PodarchiveError(path, "audio", "file has no audio stream")
            stream = container.streams.audio[0]
            if container.duration is not None:
                duration = container.duration / av.time_base
            elif stream.duration is not None and stream.time_base is not None:
                duration = float(stream.duration * stream.time_base)
            else:
                duration = _decoded_duration(container)
            return AudioInfo(float(duration), stream.channels, stream.sample_rate)
    except av.FFmpegError as error:
        raise PodarchiveError(path, "audio", f"not a readable audio file ({_reason(error)})") from None


def _reason(error: Exception) -> str:
    """FFmpeg's own words for a failure, without its error number and the path again."""
    return getattr(error, "strerror", None) or str(error)


def _decoded_duration(container: av.container.InputContainer) -> float:
    samples = 0
    rate = container.streams.audio[0].sample_rate
    for frame in container.decode(audio=0):
        samples += frame.samples
    return samples / rate


def speaker_tracks(episode: Episode, sample_rate: int = SAMPLE_RATE) -> list[tuple[str, np.ndarray]]:
    """(speaker, mono 16-bit samples) to transcribe: one per stereo channel that a person
    is recorded on, or else the whole mix, named after the sole listed person if there is one."""
    path = episode.audio_path
    info = probe(path)
    by_channel = {p.channel: p.name for p in episode.persons if p.channel is not None}
    if by_channel and info.channels != 2:
        raise PodarchiveError(episode.metadata_path, "persons",
                              "persons name stereo channels but the recording is not stereo")
    channels = decode(path, info, sample_rate, stereo=bool(by_channel))
    if by_channel:
        tracks = [(by_channel[n], np.ascontiguousarray(channels[:, n - 1])) for n in (1, 2) if n in by_channel]
    else:
        # Only a sole listed person can be named without diarization; otherwise nobody.
        tracks = [(episode.persons[0].name if len(episode.persons) == 1 else "", channels[:, 0])]
    del channels
    decoded = len(tracks[0][1]) / sample_rate
    if info.duration > 1 and decoded < info.duration * TRUNCATED_BELOW:
        raise PodarchiveError(path, "audio", f"the recording is truncated or damaged: only {decoded:.1f} s "
                                             f"of the {info.duration:.1f} s it declares could be decoded")
    return tracks


def decode(path: Path, info: AudioInfo, sample_rate: int, *, stereo: bool) -> np.ndarray:
    """The recording as 16-bit samples at ``sample_rate``, one column per channel (one, or
    two when ``stereo``), its damaged frames skipped.

    Written straight into one array sized from the probed duration: 16-bit samples take
    half the memory of the float ones whisper reads, which are made a window at a time
    (``as_float``), and no second copy of the whole recording is ever made.
    """
    width = 2 if stereo else 1
    samples = np.zeros((int(info.duration * sample_rate) + sample_rate, width), np.int16)
    filled = 0
    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            for block in _resampled(container, sample_rate, width):
                if filled + len(block) > len(samples):  # the container understated its length
                    grown = np.zeros((max(2 * len(samples), filled + len(block)), width), np.int16)
                    grown[:filled] = samples[:filled]
                    samples = grown
                samples[filled:filled + len(block)] = block
                filled += len(block)
    except Exception as error:  # noqa: BLE001 - PyAV raises many kinds of decoding error
        raise PodarchiveError(path, "audio", f"cannot decode the recording ({_reason(error)})") from None
    return samples[:filled]


def _resampled(container: av.container.InputContainer, sample_rate: int, width: int) -> Iterator[np.ndarray]:
    resampler = av.AudioResampler(format="s16", layout="stereo" if width == 2 else "mono", rate=sample_rate)
    frames = container.decode(audio=0)
    while True:
        try:
            frame = next(frames)
        except StopIteration:
            break
        except av.error.InvalidDataError:
            continue  # a damaged frame: the rest of the recording is still worth having
        frame.pts = None  # damaged files jump in time; the resampler need not follow
        for resampled in resampler.resample(frame):
            yield resampled.to_ndarray().reshape(-1, width)
    for resampled in resampler.resample(None):  # what the resampler still holds
        yield resampled.to_ndarray().reshape(-1, width)


def as_float(samples: np.ndarray, dtype: type = np.float32) -> np.ndarray:
    """Samples as floats in [-1, 1), 32-bit as whisper reads them unless told: 16-bit ones scaled."""
    if samples.dtype == np.int16:
        return np.multiply(samples, dtype(1 / 32768), dtype=dtype)
    return samples.astype(dtype, copy=False)
