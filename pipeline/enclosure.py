"""The published enclosure: a loudness-normalised, tagged mp3 of the recording with every
withheld span silenced, and clips cut from it.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from mutagen import MutagenError, id3
from mutagen.mp3 import MP3
from pydub import AudioSegment

from . import __version__
from .audio import probe
from .errors import PodarchiveError
from .storage import atomic_write_bytes

# The published enclosure: what podcast apps expect (Apple's and the AES's
# recommendation for spoken word: -16 LUFS integrated, true peaks under -1.5 dBTP).
PUBLISHED_SAMPLE_RATE = 44100
TARGET_LUFS = -16.0
PEAK_LIMIT_DBTP = -1.5
LOUDNESS_RANGE_LU = 11.0
BITRATES = {1: "64k", 2: "128k"}
SOURCE_TAG = "podarchive-source"
# The spans the file was made with silenced, as JSON: withdrawal reads them back.
SILENCE_TAG = "podarchive-silence"
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
    source_sha256: str,
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
    key = _source_key(source_sha256, silence, tags, chapters)
    if target.exists() and _recorded(target, SOURCE_TAG) == key:
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
    _write_tags(mp3, tags, chapters, info.duration, key, silence)
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


def _rounded(spans: list[tuple[float, float]]) -> list[list[float]]:
    return [[round(a, 3), round(b, 3)] for a, b in spans]


def _source_key(audio_sha256: str, silence, tags, chapters) -> str:
    made_from = {"audio": audio_sha256, "silence": _rounded(silence),
                 "tags": tags, "chapters": chapters, "lufs": TARGET_LUFS, "peak": PEAK_LIMIT_DBTP,
                 "bitrates": BITRATES, "version": __version__}
    return hashlib.sha256(json.dumps(made_from, sort_keys=True).encode()).hexdigest()


def _recorded(path: Path, tag: str) -> str | None:
    try:
        frames = id3.ID3(path).getall(f"TXXX:{tag}")
    except (MutagenError, OSError):
        return None
    return str(frames[0].text[0]) if frames else None


def still_safe(path: Path, silence: list[tuple[float, float]], says_withheld_name) -> bool:
    """Whether a published mp3, made earlier, keeps what must be kept now: every span in
    ``silence`` was silenced in it, and no tag says a withheld name."""
    try:
        recorded = json.loads(_recorded(path, SILENCE_TAG) or "null")
        tags = id3.ID3(path)
        MP3(path)
    except (ValueError, MutagenError, OSError):
        return False
    if not isinstance(recorded, list):
        return False
    covered = [(start - 0.0015, end + 0.0015) for start, end in recorded]
    if not all(any(a <= start and end <= b for a, b in covered) for start, end in _rounded(silence)):
        return False
    texts = [str(text) for frame in tags.values() for text in getattr(frame, "text", [])]
    texts += [str(sub) for chap in tags.getall("CHAP") for sub in chap.sub_frames.values()]
    return not any(says_withheld_name(text) for text in texts)


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


def _write_tags(mp3: io.BytesIO, tags: dict[str, str], chapters, duration: float, key: str,
                silence: list[tuple[float, float]]) -> None:
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
    frames.add(id3.TXXX(encoding=3, desc=SILENCE_TAG, text=[json.dumps(_rounded(silence))]))
    mp3.seek(0)
    frames.save(mp3, v2_version=4)


def clip(source: Path, start: float, end: float, target: Path, padding: float = 0.5) -> Path:
    """Cut [start - padding, end + padding] of a published mp3 into ``target`` (an mp3)."""

    for name, value in (("START", start), ("END", end)):
        if not math.isfinite(value) or value < 0:
            raise PodarchiveError(target, name, f"must be a number of seconds from 0 up, got {value}")
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
