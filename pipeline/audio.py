"""Recordings as the model hears them: probing, and decoding into samples."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import av
import numpy as np

from .errors import PodarchiveError

if TYPE_CHECKING:  # the loader probes recordings: importing it here would be circular
    from .archive import Episode

SAMPLE_RATE = 16000  # what whisper listens at
# Less than this share of the declared duration decodes: the file was cut short.
TRUNCATED_BELOW = 0.5
# A WAV's data size when it was written while recording, its length unknown then.
_WAV_SIZE_UNKNOWN = (0, 0xFFFFFFFF)


@dataclass(frozen=True)
class AudioInfo:
    duration: float
    channels: int
    sample_rate: int


def probe(path: Path) -> AudioInfo:
    """Duration and layout of a recording, read from its container (no full decode).

    FFmpeg takes a WAV's length from the bytes the file holds, not from its header: a
    WAV cut short is refused here, where its header says how long it should be.
    """
    declared = _declared_wav_seconds(path)
    # FFmpeg reads up to 5 MB to learn what a WAV's header already says (20 ms an episode
    # at every load): it need not read past the header.
    info = _container_info(path, {} if declared is None else {"probesize": "32"})
    if declared is not None:
        _refuse_truncated(path, info.duration, declared)
    return info


def _container_info(path: Path, options: dict[str, str]) -> AudioInfo:
    try:
        with av.open(str(path), options=options) as container:
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


def _declared_wav_seconds(path: Path) -> float | None:
    """The length a WAV's header declares (its data chunk's size), None for any other file
    and for a WAV that declares none."""
    try:
        with open(path, "rb") as source:
            if source.read(4) != b"RIFF" or source.read(8)[4:] != b"WAVE":
                return None
            bytes_per_second = 0
            while len(header := source.read(8)) == 8:
                name, size = header[:4], struct.unpack("<I", header[4:])[0]
                if name == b"fmt ":
                    fmt = source.read(size + size % 2)
                    bytes_per_second = struct.unpack("<I", fmt[8:12])[0] if len(fmt) >= 12 else 0
                elif name == b"data":
                    known = bytes_per_second and size not in _WAV_SIZE_UNKNOWN
                    return size / bytes_per_second if known else None
                else:
                    source.seek(size + size % 2, 1)  # chunks are padded to an even size
    except OSError:
        pass  # FFmpeg, opening it next, says why
    return None


def _refuse_truncated(path: Path, decoded: float, declared: float) -> None:
    if declared > 1 and decoded < declared * TRUNCATED_BELOW:
        raise PodarchiveError(path, "audio", f"the recording is truncated or damaged: only {decoded:.1f} s "
                                             f"of the {declared:.1f} s it declares could be decoded")


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
    _refuse_truncated(path, len(tracks[0][1]) / sample_rate, info.duration)
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
