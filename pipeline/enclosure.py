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
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

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
BITRATES = {1: "64k", 2: "128k"}
SOURCE_TAG = "podarchive-source"
# The spans the file was made with silenced, as JSON: withdrawal reads them back.
SILENCE_TAG = "podarchive-silence"
# Shorter than this, loudness cannot be measured (BS.1770 gates 400 ms blocks).
_MEASURABLE_SECONDS = 0.5
_LOUDNESS_TOLERANCE_LU = 0.3
# BS.1770's absolute gate: nothing louder than this is silence, which no gain makes audible.
_SILENT_LUFS = -70.0
# The limiter listens at 4 times the published rate, where the peaks between samples
# (true peaks) show; it starts below the limit by what mp3 encoding adds to the peaks.
_OVERSAMPLED_RATE = 4 * PUBLISHED_SAMPLE_RATE
_CEILING_MARGIN_DB = 0.5
# Lookahead and recovery (ms) short enough to touch only the peaks; its delay compensated,
# so every time stays exact.
_LIMITER = "attack=5:release=50:level=false:latency=true"
_NORMALISING_PASSES = 4
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
    before anything else, then the gain to TARGET_LUFS and a true-peak limiter, then mp3
    (see ``_normalised_mp3``). Streaming keeps memory flat
    for hour-long interviews. Tags and chapters go into ID3, with a digest of everything
    the file was made from, so a re-run with nothing changed re-encodes nothing.
    """
    key = _source_key(source_sha256, silence, tags, chapters)
    if target.exists() and _recorded(target, SOURCE_TAG) == key:
        return False
    info = probe(source)
    silencing = _silencing(silence, info.sample_rate)
    mp3 = _normalised_mp3(source, silencing, 1 if info.channels == 1 else 2,
                          measurable=info.duration >= _MEASURABLE_SECONDS)
    mp3 = io.BytesIO(mp3)
    _write_tags(mp3, tags, chapters, info.duration, key, silence)
    atomic_write_bytes(target, mp3.getvalue())
    return True


def _normalised_mp3(source: Path, silencing: list[str], channels: int, *, measurable: bool) -> bytes:
    """The mp3 at TARGET_LUFS with true peaks at most PEAK_LIMIT_DBTP, as EBU R128 measures
    the mp3 itself.

    One linear gain brings the recording to the target and the limiter holds the peaks
    that gain pushes over (speech often peaks 20 dB above its loudness, more than the
    14.5 dB the target leaves). Limiting lowers the loudness a little and encoding
    raises the peaks a little: the mp3 is measured and made again with the gain and the
    limiter's ceiling corrected by what it missed.
    """
    loudness = _loudness_and_peak(source, silencing, true_peak=False)[0] if measurable else _SILENT_LUFS
    audible = loudness > _SILENT_LUFS
    gain = TARGET_LUFS - loudness if audible else 0.0
    ceiling = PEAK_LIMIT_DBTP - _CEILING_MARGIN_DB
    for _ in range(_NORMALISING_PASSES):
        mp3 = _encode_mp3(source, [
            *silencing, f"volume={gain:.2f}dB", f"aresample={_OVERSAMPLED_RATE}",
            f"alimiter=limit={10 ** (ceiling / 20):.4f}:{_LIMITER}", f"aresample={PUBLISHED_SAMPLE_RATE}",
            # A recording too short for one mp3 frame is padded to one, so every player can open it.
            f"apad=whole_dur={_SHORTEST_MP3_SECONDS}",
        ], channels)
        loudness, peak = _loudness_and_peak(mp3)
        missed = TARGET_LUFS - loudness if audible else 0.0
        if abs(missed) <= _LOUDNESS_TOLERANCE_LU and peak <= PEAK_LIMIT_DBTP:
            return mp3
        gain += missed
        ceiling -= max(0.0, peak - PEAK_LIMIT_DBTP)
    raise PodarchiveError(source, "audio", f"could not be brought to {TARGET_LUFS:g} LUFS with true peaks "
                                           f"under {PEAK_LIMIT_DBTP:g} dBTP (reached {loudness:.1f} LUFS, "
                                           f"{peak:.1f} dBTP)")


def _loudness_and_peak(source: Path | bytes, filters: Sequence[str] = (), *,
                       true_peak: bool = True) -> tuple[float, float]:
    """Integrated loudness (LUFS) and true peak (dBTP; -inf when not asked) as ffmpeg's
    EBU R128 meter reads them, of a file or of an mp3's bytes."""
    meter = "ebur128=peak=true" if true_peak else "ebur128"
    arguments = ["-af", ",".join([*filters, meter]), "-f", "null", "-"]
    if isinstance(source, bytes):
        finished = subprocess.run(["ffmpeg", "-nostdin", "-hide_banner", "-i", "pipe:0", *arguments],
                                  input=source, capture_output=True, check=False)
    else:
        finished = _ffmpeg(source, arguments)
    summary = finished.stderr.decode("utf-8", "replace").rsplit("Summary:", 1)[-1]
    loudness = float(re.search(r"I:\s*(-?[\d.]+|-inf) LUFS", summary).group(1))
    peak = re.search(r"True peak:\s*Peak:\s*(-?[\d.]+|-inf) dBFS", summary)
    return loudness, float(peak.group(1)) if peak else -math.inf


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


def _rounded(spans: list[tuple[float, float]]) -> list[list[float]]:
    return [[round(a, 3), round(b, 3)] for a, b in spans]


def _source_key(audio_sha256: str, silence, tags, chapters) -> str:
    made_from = {"audio": audio_sha256, "silence": _rounded(silence),
                 "tags": tags, "chapters": chapters, "lufs": TARGET_LUFS, "peak": PEAK_LIMIT_DBTP,
                 "limiter": _LIMITER, "bitrates": BITRATES, "version": __version__}
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
