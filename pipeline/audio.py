"""Audio files: probing, decoding for the model."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av

from .errors import PodarchiveError


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
