"""Audio files: probing, decoding for the model."""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import pyloudnorm
from mutagen import id3
from mutagen.mp3 import MP3
from pydub import AudioSegment
from scipy.ndimage import minimum_filter1d, uniform_filter1d

from . import __version__
from .errors import PodarchiveError
from .model import Episode
from .storage import atomic_write_bytes, sha256_file

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
    """(speaker, mono samples) to transcribe: one per stereo channel that a person is
    recorded on, or else the whole mix, named after the sole listed person if there is one."""
    from faster_whisper import decode_audio

    path = episode.audio_path
    info = probe(path)
    by_channel = {p.channel: p.name for p in episode.persons if p.channel is not None}
    if by_channel and info.channels != 2:
        raise PodarchiveError(episode.metadata_path, "persons",
                              "persons name stereo channels but the recording is not stereo")
    try:
        if by_channel:
            channels = decode_audio(str(path), sampling_rate=sample_rate, split_stereo=True)
            tracks = [(by_channel[n], samples) for n, samples in enumerate(channels, 1)
                      if n in by_channel]
        else:
            # Only a sole listed person can be named without diarization; otherwise nobody.
            speaker = episode.persons[0].name if len(episode.persons) == 1 else ""
            tracks = [(speaker, decode_audio(str(path), sampling_rate=sample_rate))]
    except Exception as error:  # noqa: BLE001 - PyAV raises many kinds of decoding error
        raise PodarchiveError(path, "audio", f"cannot decode the recording ({_reason(error)})") from None
    decoded = len(tracks[0][1]) / sample_rate
    if info.duration > 1 and decoded < info.duration * TRUNCATED_BELOW:
        raise PodarchiveError(path, "audio", f"the recording is truncated or damaged: only {decoded:.1f} s "
                                             f"of the {info.duration:.1f} s it declares could be decoded")
    return tracks


# The published enclosure: what podcast apps expect (Apple's and the AES's
# recommendation for spoken word: -16 LUFS integrated, peaks at least 1 dB below full scale).
PUBLISHED_SAMPLE_RATE = 44100
TARGET_LUFS = -16.0
PEAK_LIMIT_DBFS = -1.5
BITRATES = {1: "64k", 2: "128k"}
SOURCE_TAG = "podarchive-source"
_LIMITER_LOOKAHEAD_SECONDS = 0.005
_LIMITER_RELEASE_SECONDS = 0.05


@dataclass(frozen=True)
class PublishedAudio:
    path: Path
    length: int  # bytes, as the feed's enclosure states
    duration: float


def published_audio_info(path: Path) -> PublishedAudio:
    return PublishedAudio(path, path.stat().st_size, MP3(path).info.length)


def publish_audio(
    source: Path,
    target: Path,
    *,
    silence: list[tuple[float, float]],
    tags: dict[str, str],
    chapters: list[tuple[float, str]],
) -> bool:
    """Write the published mp3 of ``source`` at ``target``; False if it was already up to date.

    The spans in ``silence`` are replaced by digital silence before anything is encoded;
    the loudness is normalised to TARGET_LUFS with a look-ahead peak limiter; tags and
    chapters go into ID3. The mp3 records a digest of everything it was made from, so
    a re-run with nothing changed re-encodes nothing and changes no byte.
    """
    key = _source_key(sha256_file(source), silence, tags, chapters)
    if target.exists() and _recorded_source(target) == key:
        return False
    samples, channels = _decode_for_publishing(source)
    for start, end in silence:
        samples[int(start * PUBLISHED_SAMPLE_RATE):int(np.ceil(end * PUBLISHED_SAMPLE_RATE))] = 0.0
    samples = normalise_loudness(samples, PUBLISHED_SAMPLE_RATE)
    _encode(samples, channels, target, tags, chapters, key)
    return True


def _source_key(audio_sha256: str, silence, tags, chapters) -> str:
    made_from = {"audio": audio_sha256, "silence": [[round(a, 3), round(b, 3)] for a, b in silence],
                 "tags": tags, "chapters": chapters, "lufs": TARGET_LUFS, "peak": PEAK_LIMIT_DBFS,
                 "bitrates": BITRATES, "version": __version__}
    return hashlib.sha256(json.dumps(made_from, sort_keys=True).encode()).hexdigest()


def _recorded_source(path: Path) -> str | None:
    try:
        frames = id3.ID3(path).getall(f"TXXX:{SOURCE_TAG}")
    except (id3.ID3NoHeaderError, OSError):
        return None
    return str(frames[0].text[0]) if frames else None


def _decode_for_publishing(source: Path) -> tuple[np.ndarray, int]:
    """(frames x channels float samples at 44.1 kHz, channel count): mono stays mono,
    anything with more channels becomes stereo."""
    channels = 1 if probe(source).channels == 1 else 2
    resampler = av.AudioResampler(format="flt", layout="mono" if channels == 1 else "stereo",
                                  rate=PUBLISHED_SAMPLE_RATE)
    chunks = []
    try:
        with av.open(str(source)) as container:
            for frame in container.decode(audio=0):
                chunks += [f.to_ndarray().reshape(-1, channels) for f in resampler.resample(frame)]
            chunks += [f.to_ndarray().reshape(-1, channels) for f in resampler.resample(None)]
    except av.FFmpegError as error:
        raise PodarchiveError(source, "audio", f"cannot decode the recording ({error})") from None
    samples = np.concatenate(chunks) if chunks else np.zeros((0, channels), dtype=np.float32)
    return samples.astype(np.float64), channels


def normalise_loudness(samples: np.ndarray, rate: int) -> np.ndarray:
    """Gain to TARGET_LUFS, peaks held under PEAK_LIMIT_DBFS (limiting lowers loudness a
    little, so the gain is corrected twice against the limited result)."""
    meter = pyloudnorm.Meter(rate)
    measured = _loudness(meter, samples)
    if measured is None:
        return samples  # silence, or too short to measure: nothing to normalise
    gain_db = TARGET_LUFS - measured
    for _ in range(3):
        limited = _limit_peaks(samples * 10 ** (gain_db / 20), rate)
        result = _loudness(meter, limited)
        if result is None or abs(result - TARGET_LUFS) < 0.2:
            break
        gain_db += TARGET_LUFS - result
    return limited


def _loudness(meter, samples: np.ndarray) -> float | None:
    if len(samples) < meter.rate * 0.4:  # BS.1770 gates 400 ms blocks
        return None
    value = meter.integrated_loudness(samples)
    return None if not np.isfinite(value) else float(value)


def _limit_peaks(samples: np.ndarray, rate: int) -> np.ndarray:
    """A look-ahead limiter: the gain dips before a peak and recovers smoothly after it."""
    ceiling = 10 ** (PEAK_LIMIT_DBFS / 20)
    peak = np.abs(samples).max(axis=1)
    needed = np.minimum(1.0, ceiling / np.maximum(peak, 1e-12))
    if needed.min() >= 1.0:
        return samples
    window = max(1, int(rate * _LIMITER_LOOKAHEAD_SECONDS))
    release = max(1, int(rate * _LIMITER_RELEASE_SECONDS))
    gain = minimum_filter1d(needed, size=2 * window + 1 + release)
    gain = np.minimum(uniform_filter1d(gain, size=release), needed)
    return samples * gain[:, None]


def _encode(samples, channels, target: Path, tags, chapters, key: str) -> None:
    pcm = (np.clip(samples, -1.0, 1.0 - 1 / 32768) * 32768).astype("<i2").tobytes()
    sound = AudioSegment(data=pcm, sample_width=2, frame_rate=PUBLISHED_SAMPLE_RATE, channels=channels)
    encoded = io.BytesIO()
    sound.export(encoded, format="mp3", bitrate=BITRATES[channels],
                 parameters=["-map_metadata", "-1", "-fflags", "+bitexact", "-flags:a", "+bitexact"])
    _write_tags(encoded, tags, chapters, len(samples) / PUBLISHED_SAMPLE_RATE, key)
    atomic_write_bytes(target, encoded.getvalue())


def _write_tags(mp3: io.BytesIO, tags: dict[str, str], chapters, duration: float, key: str) -> None:
    frames = id3.ID3()
    kinds = {"title": id3.TIT2, "artist": id3.TPE1, "album": id3.TALB, "date": id3.TDRC,
             "track": id3.TRCK, "disc": id3.TPOS, "genre": id3.TCON}
    for name, value in tags.items():
        frames.add(kinds[name](encoding=3, text=[value]))
    if chapters:
        ids = [f"chp{n}" for n in range(len(chapters))]
        frames.add(id3.CTOC(element_id="toc", flags=id3.CTOCFlags.TOP_LEVEL | id3.CTOCFlags.ORDERED,
                            child_element_ids=ids, sub_frames=[]))
        for n, (start, title) in enumerate(chapters):
            end = chapters[n + 1][0] if n + 1 < len(chapters) else duration
            frames.add(id3.CHAP(element_id=ids[n], start_time=int(start * 1000),
                                end_time=int(end * 1000),
                                sub_frames=[id3.TIT2(encoding=3, text=[title])]))
    frames.add(id3.TXXX(encoding=3, desc=SOURCE_TAG, text=[key]))
    mp3.seek(0)
    frames.save(mp3, v2_version=4)


def clip(source: Path, start: float, end: float, target: Path, padding: float = 0.5) -> Path:
    """Cut [start - padding, end + padding] of a published mp3 into ``target`` (an mp3)."""

    if end <= start:
        raise PodarchiveError(target, "END", f"the end ({end}) must come after the start ({start})")
    sound = AudioSegment.from_file(source)
    if start >= len(sound) / 1000:
        raise PodarchiveError(source, "START", f"{start} s is past the end ({len(sound) / 1000:.1f} s)")
    piece = sound[max(0, int((start - padding) * 1000)):int((end + padding) * 1000)]
    buffer = io.BytesIO()
    piece.export(buffer, format="mp3", bitrate=BITRATES[min(sound.channels, 2)])
    atomic_write_bytes(target, buffer.getvalue())
    return target
