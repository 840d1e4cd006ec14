"""Audio files: probing, decoding for the model."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from .errors import PodarchiveError
from .model import Episode

SAMPLE_RATE = 16000  # what whisper listens at


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
        raise PodarchiveError(path, "audio", f"not a readable audio file ({error})") from None


def _decoded_duration(container: av.container.InputContainer) -> float:
    samples = 0
    rate = container.streams.audio[0].sample_rate
    for frame in container.decode(audio=0):
        samples += frame.samples
    return samples / rate


def speaker_tracks(episode: Episode, sample_rate: int = SAMPLE_RATE) -> list[tuple[str, np.ndarray]]:
    """(speaker, mono samples) to transcribe: one per stereo channel that a person is
    recorded on, or else the whole mix, named after the sole listed person if there is one."""
    from faster_whisper import decode_audio

    path = episode.audio_path
    by_channel = {p.channel: p.name for p in episode.persons if p.channel is not None}
    if by_channel and probe(path).channels != 2:
        raise PodarchiveError(episode.metadata_path, "persons",
                              "persons name stereo channels but the recording is not stereo")
    try:
        if by_channel:
            channels = decode_audio(str(path), sampling_rate=sample_rate, split_stereo=True)
            return [(by_channel[n], samples) for n, samples in enumerate(channels, 1)
                    if n in by_channel]
        samples = decode_audio(str(path), sampling_rate=sample_rate)
    except Exception as error:  # noqa: BLE001 - PyAV raises many kinds of decoding error
        raise PodarchiveError(path, "audio", f"cannot decode the recording ({error})") from None
    # Only a sole listed person can be named without diarization; otherwise leave it empty.
    speaker = episode.persons[0].name if len(episode.persons) == 1 else ""
    return [(speaker, samples)]
