"""Audio files: probing, decoding for the model."""

from __future__ import annotations

import hashlib
import io
import json
import re
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from mutagen import id3
from mutagen.mp3 import MP3
from pydub import AudioSegment

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


# The published enclosure: what podcast apps expect (Apple's and the AES's
# recommendation for spoken word: -16 LUFS integrated, true peaks under -1.5 dBTP).
PUBLISHED_SAMPLE_RATE = 44100
TARGET_LUFS = -16.0
PEAK_LIMIT_DBTP = -1.5
LOUDNESS_RANGE_LU = 11.0
BITRATES = {1: "64k", 2: "128k"}
SOURCE_TAG = "podarchive-source"
# Shorter than this, loudness cannot be measured (BS.1770 gates 400 ms blocks).
_MEASURABLE_SECONDS = 0.5
_LOUDNESS_TOLERANCE_LU = 0.5
_SHORTEST_MP3_SECONDS = 0.05
_SILENCING_FRAME_SAMPLES = 64


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

    ffmpeg streams the recording through: the spans in ``silence`` become digital silence
    before anything else, then two-pass loudness normalisation (EBU R128 ``loudnorm``,
    linear when the peaks allow) to TARGET_LUFS, then mp3. Streaming keeps memory flat
    for hour-long interviews. Tags and chapters go into ID3, with a digest of everything
    the file was made from, so a re-run with nothing changed re-encodes nothing.
    """
    key = _source_key(sha256_file(source), silence, tags, chapters)
    if target.exists() and _recorded_source(target) == key:
        return False
    info = probe(source)
    filters = _silencing(silence, info.sample_rate)
    measured = _measure_loudness(source, filters) if info.duration >= _MEASURABLE_SECONDS else None
    if measured is not None:
        filters.append(_loudnorm(measured))
    # A recording too short for one mp3 frame is padded to one, so every player can open it.
    filters += [f"aresample={PUBLISHED_SAMPLE_RATE}", f"apad=whole_dur={_SHORTEST_MP3_SECONDS}"]
    channels = 1 if info.channels == 1 else 2
    mp3 = _encode_mp3(source, filters, channels)
    if measured is not None:
        # loudnorm falls back to dynamic mode when a linear gain would clip: check the
        # result and correct what is left over (rarely more than 1 LU, on short clips).
        missed = TARGET_LUFS - _integrated_loudness(mp3)
        if abs(missed) > _LOUDNESS_TOLERANCE_LU:
            mp3 = _encode_mp3(source, [*filters, f"volume={missed:.2f}dB"], channels)
    mp3 = io.BytesIO(mp3)
    _write_tags(mp3, tags, chapters, info.duration, key)
    atomic_write_bytes(target, mp3.getvalue())
    return True


def _silencing(spans: list[tuple[float, float]], sample_rate: int) -> list[str]:
    """ffmpeg filters that turn ``spans`` into digital silence. ffmpeg switches a filter
    on or off per frame, by the frame's start: frames are cut small, and every frame that
    reaches into a span is silenced whole."""
    if not spans:
        return []
    frame = _SILENCING_FRAME_SAMPLES / sample_rate
    return [f"asetnsamples=n={_SILENCING_FRAME_SAMPLES}:p=0",
            *(f"volume=enable='between(t,{start - frame:.4f},{end:.4f})':volume=0" for start, end in spans)]


def _encode_mp3(source: Path, filters: list[str], channels: int) -> bytes:
    # Into a real file, not a pipe: ffmpeg seeks back to write the LAME header whose
    # encoder delay lets players start on the first sample, keeping every time exact.
    with tempfile.TemporaryDirectory(prefix="podarchive-") as scratch:
        encoded = Path(scratch) / "audio.mp3"
        _ffmpeg(source, [
            "-af", ",".join(filters), "-ac", str(channels), "-ar", str(PUBLISHED_SAMPLE_RATE),
            "-c:a", "libmp3lame", "-b:a", BITRATES[channels],
            "-map_metadata", "-1", "-fflags", "+bitexact", "-flags:a", "+bitexact", str(encoded),
        ])
        return encoded.read_bytes()


def _integrated_loudness(mp3: bytes) -> float:
    finished = subprocess.run(
        ["ffmpeg", "-nostdin", "-hide_banner", "-i", "pipe:0", "-af", "ebur128", "-f", "null", "-"],
        input=mp3, capture_output=True, check=False)
    summary = finished.stderr.decode("utf-8", "replace").rsplit("Summary:", 1)[-1]
    return float(re.search(r"I:\s*(-?[\d.]+|-inf) LUFS", summary).group(1))


def _source_key(audio_sha256: str, silence, tags, chapters) -> str:
    made_from = {"audio": audio_sha256, "silence": [[round(a, 3), round(b, 3)] for a, b in silence],
                 "tags": tags, "chapters": chapters, "lufs": TARGET_LUFS, "peak": PEAK_LIMIT_DBTP,
                 "bitrates": BITRATES, "version": __version__}
    return hashlib.sha256(json.dumps(made_from, sort_keys=True).encode()).hexdigest()


def _recorded_source(path: Path) -> str | None:
    try:
        frames = id3.ID3(path).getall(f"TXXX:{SOURCE_TAG}")
    except (id3.ID3NoHeaderError, OSError):
        return None
    return str(frames[0].text[0]) if frames else None


def _ffmpeg(source: Path, arguments: list[str]) -> subprocess.CompletedProcess:
    command = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "info", "-i", str(source), *arguments]
    try:
        finished = subprocess.run(command, capture_output=True, check=False)
    except FileNotFoundError:
        raise PodarchiveError(source, "audio", "ffmpeg is not installed (apt-get install ffmpeg)") from None
    if finished.returncode != 0:
        last = finished.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no message"]
        raise PodarchiveError(source, "audio", f"ffmpeg could not process the recording ({last[0]})")
    return finished


def _measure_loudness(source: Path, filters: list[str]) -> dict | None:
    """loudnorm's first pass: the recording's loudness, peak and range after silencing."""
    analysis = f"loudnorm=I={TARGET_LUFS}:TP={PEAK_LIMIT_DBTP}:LRA={LOUDNESS_RANGE_LU}:print_format=json"
    finished = _ffmpeg(source, ["-af", ",".join([*filters, analysis]), "-f", "null", "-"])
    report = finished.stderr.decode("utf-8", "replace")
    measured = json.loads(report[report.rindex("{"):report.rindex("}") + 1])
    if not np.isfinite(float(measured["input_i"])):
        return None  # silence: nothing to normalise
    return measured


def _loudnorm(measured: dict) -> str:
    return (f"loudnorm=I={TARGET_LUFS}:TP={PEAK_LIMIT_DBTP}:LRA={LOUDNESS_RANGE_LU}"
            f":measured_I={measured['input_i']}:measured_TP={measured['input_tp']}"
            f":measured_LRA={measured['input_lra']}:measured_thresh={measured['input_thresh']}"
            f":offset={measured['target_offset']}:linear=true")


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
