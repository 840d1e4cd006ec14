"""Where a recording holds speech, heard at one level: what transcription decodes, and
what it must account for.

A soft voice (a guest far from the microphone, a whispered aside) is lifted to the level
of the rest before anything listens, so that neither the voice-activity detector nor
the model skips it; noise lifted with it stays noise to both (tests/test_longform.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .audio import as_float
from .model import Gap, Word

# Levels are measured over frames this long.
FRAME_SECONDS = 0.01
# Each moment is lifted so that the loudest sound within PEAK_SECONDS around it reaches
# TARGET_PEAK_DB (dBFS, 10 ms frames): never lowered, lifted MAX_GAIN_DB at most, and
# the gain eased in over GAIN_EASE_SECONDS so it never pumps within a word.
TARGET_PEAK_DB = -15.0
MAX_GAIN_DB = 50.0
PEAK_SECONDS = 3.0
GAIN_EASE_SECONDS = 0.5
# A click is not the level of a passage: levels are averaged over this long first.
LEVEL_AVERAGE_SECONDS = 0.1

# Speech regions are split at pauses this long (faster-whisper's batched default).
MIN_PAUSE_MS = 160
# Whisper hears 30 s at a time.
WINDOW_SECONDS = 30.0
# Read speech and conversation run at two to three words a second in English and French:
# a region of speech at least GUARDED_SECONDS long with fewer than MIN_WORDS_PER_SECOND
# words a second is decoded again, and one still without a word is a gap. Measured on
# bench/longform.py: at half a word a second, a region whose second half whisper skipped
# (its three words misplaced there from later speech) went unnoticed; at one word a
# second, a 2-second region holding "tuant ainsi dix-sept personnes", where whisper put
# one word of the next sentence. At one and a half, one region more in 12 minutes of
# French (0.9 s more time) is decoded again.
GUARDED_SECONDS = 1.0
MIN_WORDS_PER_SECOND = 1.5


@dataclass
class Region:
    """A stretch of speech, in seconds from the start of the samples it was found in."""

    start: float
    end: float
    language: str = ""

    @property
    def seconds(self) -> float:
        return self.end - self.start


_LEVEL_BLOCK_FRAMES = 6000


def frame_levels(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """Level in dB of each FRAME_SECONDS frame of ``samples``."""
    hop = max(1, int(sample_rate * FRAME_SECONDS))
    frames = samples[: len(samples) // hop * hop].reshape(-1, hop)
    power = np.empty(len(frames))
    # A minute at a time: a float64 copy of an hour of audio would take half a gigabyte.
    for first in range(0, len(frames), _LEVEL_BLOCK_FRAMES):
        block = as_float(frames[first:first + _LEVEL_BLOCK_FRAMES], np.float64)
        power[first:first + len(block)] = np.einsum("ij,ij->i", block, block) / hop
    return 10 * np.log10(power + 1e-12)


def level_gains(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """The gain in dB to apply to each FRAME_SECONDS frame of ``samples``."""
    levels = frame_levels(samples, sample_rate)
    if levels.size == 0:
        return levels
    power = 10 ** (levels / 10)
    average = max(1, round(LEVEL_AVERAGE_SECONDS / FRAME_SECONDS))
    around = np.pad(power, (average // 2, average - average // 2 - 1))  # silence beyond the ends
    levels = 10 * np.log10(np.convolve(around, np.ones(average) / average, mode="valid") + 1e-12)
    reach = max(1, round(PEAK_SECONDS / FRAME_SECONDS))
    padded = np.pad(levels, (reach // 2, reach - reach // 2 - 1), constant_values=levels.min())
    peaks = np.lib.stride_tricks.sliding_window_view(padded, reach).max(axis=1)
    gains = np.clip(TARGET_PEAK_DB - peaks, 0.0, MAX_GAIN_DB)
    ease = max(1, round(GAIN_EASE_SECONDS / FRAME_SECONDS))
    eased = np.pad(gains, (ease // 2, ease - ease // 2 - 1), mode="edge")
    return np.convolve(eased, np.ones(ease) / ease, mode="valid")


def at_speech_level(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """Float ``samples`` (one channel) with each passage lifted to the level of speech."""
    gains = level_gains(samples, sample_rate)
    if gains.size == 0:  # shorter than a frame: nothing to lift
        return samples
    hop = max(1, int(sample_rate * FRAME_SECONDS))
    factors = (10 ** (gains / 20)).astype(np.float32)
    # Frame by frame in place: an hour's samples repeated gain by gain would take a
    # second and three copies of the recording.
    lifted = np.empty(samples.shape, dtype=np.float32)
    whole = factors.size * hop
    np.multiply(samples[:whole].reshape(-1, hop), factors[:, None], out=lifted[:whole].reshape(-1, hop))
    np.multiply(samples[whole:], factors[-1], out=lifted[whole:])  # the last part of a frame keeps its gain
    return np.clip(lifted, -1.0, 1.0, out=lifted)


def speech_regions(samples: np.ndarray, sample_rate: int) -> list[Region]:
    """The regions of speech silero VAD finds in ``samples`` (float, at speech level), each
    at most WINDOW_SECONDS long."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    found = get_speech_timestamps(samples, VadOptions(
        min_silence_duration_ms=MIN_PAUSE_MS, max_speech_duration_s=WINDOW_SECONDS),
        sampling_rate=sample_rate)
    return [Region(round(r["start"] / sample_rate, 3), round(r["end"] / sample_rate, 3)) for r in found]


def decoding_windows(regions: list[Region]) -> list[list[Region]]:
    """Consecutive regions grouped into windows of at most WINDOW_SECONDS of speech while
    their language holds: whisper decodes one language a window, and a switch starts a
    new one. The pauses between a window's regions are left out, as faster-whisper's
    batched pipeline does: a monologue takes as many windows as it did there.

    Regions of one language are never packed across a switch: measured on
    bench/longform.py's bilingual recording, whisper base given the French regions of
    several minutes in one window (other voices, other levels, no pause between them)
    left two regions in three of that window without a word.
    """
    windows: list[list[Region]] = []
    for region in regions:
        if (windows and region.language == windows[-1][-1].language
                and sum(r.seconds for r in windows[-1]) + region.seconds <= WINDOW_SECONDS):
            windows[-1].append(region)
        else:
            windows.append([region])
    return windows


def words_in(region: Region, words: list[Word], offset: float = 0.0) -> list[Word]:
    """The words whose middle lies in ``region`` (moved by ``offset`` seconds)."""
    start, end = region.start + offset, region.end + offset
    return [word for word in words if start <= (word.start + word.end) / 2 < end]


def undertranscribed(region: Region, words: list[Word], offset: float = 0.0) -> bool:
    """Whether ``region`` holds far fewer words than its speech time implies."""
    return (region.seconds >= GUARDED_SECONDS
            and len(words_in(region, words, offset)) < int(region.seconds * MIN_WORDS_PER_SECOND))


def untranscribed(region: Region, words: list[Word], offset: float = 0.0) -> bool:
    """Whether ``region`` is speech without a word: a gap."""
    return region.seconds >= GUARDED_SECONDS and not words_in(region, words, offset)


def merged_gaps(gaps: list[Gap], *, within: float = 1.0) -> list[Gap]:
    """``gaps`` in order, those less than ``within`` seconds apart made one."""
    merged: list[Gap] = []
    for gap in sorted(gaps, key=lambda gap: gap.start):
        if merged and gap.start - merged[-1].end < within:
            merged[-1] = Gap(merged[-1].start, max(merged[-1].end, gap.end))
        else:
            merged.append(gap)
    return merged
