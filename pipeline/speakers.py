"""Who speaks when on a one-track recording: offline speaker diarization.

Words are grouped into pieces of speech (cut at pauses, and every PIECE_SECONDS); each
piece is heard by resemblyzer's voice encoder (Apache-2.0, shipped converted to ONNX in
pipeline/data, run by onnxruntime, which faster-whisper already installs) and the pieces
are clustered by voice. pyannote's segmentation model (MIT, shipped the same way) hears
where one person takes over from another, pause or not, which cuts the pieces there; and
how many speak within the same 10 s, talking over each other included: the voices are at
least as many. Voices are named after the episode's persons in the order they
first speak, unless a person says when they can be heard (``voice_at``); voices beyond
the persons are "Speaker 3", …; episode.toml's ``speakers`` table renames them.

A producer's correction of a segment's speaker in transcript.json stays: the transcript
keeps the turns as diarization named them (``turns``), and a segment whose speaker
differs from them is never re-assigned.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from itertools import groupby, pairwise
from pathlib import Path

import numpy as np

from .archive import Episode
from .audio import SAMPLE_RATE, as_float
from .model import Segment, Turn, Word
from .text import join_words

VOICE_ENCODER = Path(__file__).parent / "data" / "voice-encoder.onnx"
SEGMENTATION = Path(__file__).parent / "data" / "segmentation.onnx"
# How voices are found, recorded in transcript.json: a change finds them again (the
# words are not transcribed again).
DIARIZATION_METHOD = 2
# resemblyzer's features: 40 mel bands of 25 ms windows every 10 ms, heard 1.6 s at a
# time ("partials"), each at -30 dBFS.
MEL_BANDS = 40
FFT_SIZE = 400
HOP = 160
PARTIAL_FRAMES = 160
PARTIAL_SECONDS = PARTIAL_FRAMES * HOP / SAMPLE_RATE
PARTIAL_HOP_SECONDS = 0.8
PARTIAL_LEVEL = 10 ** (-30 / 20)
PARTIALS_AT_ONCE = 128
# A piece of speech ends at a pause this long, or once it is this long: one voice each.
PAUSE_SECONDS = 0.16
PIECE_SECONDS = 3.0
# Pieces shorter than this say little about a voice: they take the nearest voice found
# by the longer ones.
CLUSTERED_SECONDS = 1.0
# A recording too short to hold as many pieces as the voices a producer counts is cut
# finer (stereo_diarization.wav: two voices over 4.4 s without a pause, one piece).
SHORT_PIECE_SECONDS = 1.5
# Two voices whose mean embeddings are more alike than SAME_VOICE_SIMILARITY are one
# voice. Chosen on bench/diarization.py's conversations (seeds 0-9) and checked on
# others (seeds 10-19): 0.70 lay on a cliff (held out: DER 0.126, 19/30 counts right),
# 0.72 to 0.76 on a plateau (0.74: DER 0.035 and 0.021, 25/30 counts right on both).
# A voice holding less than MIN_SHARE of the speech, or under MIN_VOICE_SECONDS, is a
# piece of another one (a laugh, a word said differently; sonnet001's title, 1.1 s read
# in another tone). three-speakers-en.wav's first voice says 2.4 s.
SAME_VOICE_SIMILARITY = 0.74
MIN_SHARE = 0.03
MIN_VOICE_SECONDS = 2.0
# The first cut joins no two pieces that the merge would keep apart: at 0.3 it joined
# stereo_diarization.wav's two halves (downmixed, 0.71 alike) before they were compared.
# bench/diarization.py scores the same from 0.15 to 0.26.
FIRST_CUT_DISTANCE = 1 - SAME_VOICE_SIMILARITY
# pyannote's segmentation-3.0 hears 10 s chunks, and in each frame which of up to three
# local speakers talk (seven "powerset" classes: nobody, one, or two at once).
CHUNK_SECONDS = 10.0
SEGMENTATION_FRAME_SECONDS = 0.016875
POWERSET = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [1, 0, 1], [0, 1, 1]], bool)
CHUNKS_AT_ONCE = 4  # 60 MB at a time; 32 took 340 MB, for an eighth less time
# A local speaker heard this long within one chunk is a voice of its own. Measured: on
# bench/diarization.py's conversations (seeds 10-19) it never counted more voices than
# a conversation holds, and on 11 single-voice recordings it heard no second voice (at
# 0.5 s it counted 3 in two 2-voice conversations); stereo_diarization.wav's second
# voice, under the first, is heard for 2.1 s.
LOCAL_SPEAKER_SECONDS = 1.0
# A speaker heard alone this long is a turn: pieces of speech are cut where one turn
# gives way to another, pause or not. Measured on bench/diarization.py's conversations,
# and on the same with no pause between turns (0 to 0.1 s), at 0.3, 0.6 and 1 s: 0.3 s
# lowered DER the most.
TURN_SECONDS = 0.3
# Pieces clustered pairwise at most: beyond, the longest are, and the rest take the
# nearest voice (memory grows with the square of the pieces).
MAX_CLUSTERED_PIECES = 3000
AUTO = "auto"


@dataclass(frozen=True)
class SpeakerOptions:
    """What decides an episode's voices and their names, recorded in transcript.json."""

    count: int | None  # speakers = N: N voices; None: as many as are heard
    persons: tuple[str, ...]
    voice_at: tuple[tuple[str, float], ...]
    renames: tuple[tuple[str, str], ...]
    method: int = DIARIZATION_METHOD

    def recorded(self) -> dict:
        return {"method": self.method, "count": self.count or AUTO, "persons": list(self.persons),
                "voice_at": dict(self.voice_at), "renames": dict(self.renames)}


def speaker_options(episode: Episode) -> SpeakerOptions | None:
    """How to find ``episode``'s voices, or None where it needs no diarization: persons on
    their own stereo channels, one person, or ``speakers = 1``."""
    if any(person.channel is not None for person in episode.persons) or episode.speakers == 1:
        return None
    if len(episode.persons) < 2 and episode.speakers is None:
        return None
    return SpeakerOptions(
        count=episode.speakers if isinstance(episode.speakers, int) else None,
        persons=tuple(person.name for person in episode.persons),
        voice_at=tuple((person.name, person.voice_at) for person in episode.persons if person.voice_at is not None),
        renames=tuple(episode.speaker_names.items()),
    )


@cache
def _encoder():
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    return onnxruntime.InferenceSession(str(VOICE_ENCODER), options, providers=["CPUExecutionProvider"])


@cache
def _segmentation():
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    return onnxruntime.InferenceSession(str(SEGMENTATION), options, providers=["CPUExecutionProvider"])


@dataclass(frozen=True)
class Heard:
    """What the segmentation model hears in a recording."""

    together: int  # the most people speaking within one 10 s chunk, at least 1
    changes: np.ndarray  # seconds at which one person stops and another goes on, in order


def heard_by_segmentation(samples: np.ndarray) -> Heard:
    """How many people speak together, and where one takes over from another, in
    ``samples`` (16-bit or float, 16 kHz). Chunks do not overlap (about 18 s for an hour
    on two cores): a change that falls between two chunks is left to the pauses."""
    width = int(CHUNK_SECONDS * SAMPLE_RATE)
    starts = range(0, max(len(samples), 1), width)
    together, changes = 1, []
    for first in range(0, len(starts), CHUNKS_AT_ONCE):
        batch = starts[first:first + CHUNKS_AT_ONCE]
        chunks = np.zeros((len(batch), 1, width), np.float32)
        for row, start in enumerate(batch):
            chunk = as_float(samples[start:start + width])
            chunks[row, 0, :len(chunk)] = chunk
        classes = _segmentation().run(None, {"waveforms": chunks})[0].argmax(-1)
        seconds = POWERSET[classes].sum(axis=1) * SEGMENTATION_FRAME_SECONDS  # (chunk, local speaker)
        together = max(together, int((seconds >= LOCAL_SPEAKER_SECONDS).sum(axis=1).max()))
        for start, frames in zip(batch, classes):
            changes += [start / SAMPLE_RATE + frame * SEGMENTATION_FRAME_SECONDS for frame in _changes(frames)]
    return Heard(together, np.array(changes))


def _changes(classes: np.ndarray) -> list[float]:
    """The frames (halfway, so possibly fractional) at which one local speaker, heard
    alone, is followed by another heard alone, across silence or both talking at once.
    A speaker alone for less than TURN_SECONDS is no turn of their own."""
    runs: list[list[int]] = []  # [speaker, first frame, last frame]
    for frame in np.flatnonzero(POWERSET[classes].sum(axis=1) == 1):  # one speaker alone
        if runs and runs[-1][0] == classes[frame]:
            runs[-1][2] = frame
        else:
            runs.append([int(classes[frame]), frame, frame])
    turns: list[list[int]] = []
    for speaker, first, last in runs:
        if (last - first + 1) * SEGMENTATION_FRAME_SECONDS < TURN_SECONDS:
            continue
        if turns and turns[-1][0] == speaker:
            turns[-1][2] = last
        else:
            turns.append([speaker, first, last])
    return [(before[2] + after[1]) / 2 for before, after in pairwise(turns)]


@cache
def _mel_filters() -> np.ndarray:
    # librosa's Slaney filters, which resemblyzer was trained with
    from faster_whisper.feature_extractor import FeatureExtractor

    return FeatureExtractor.get_mel_filters(SAMPLE_RATE, FFT_SIZE, MEL_BANDS).astype(np.float32).T


_HANN = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(FFT_SIZE) / FFT_SIZE)).astype(np.float32)


def _partial_features(clip: np.ndarray) -> np.ndarray:
    """resemblyzer's mel power spectrogram (not log) of 1.6 s of speech, zero-padded."""
    if len(clip) == 0:  # a word timed past the end of the recording
        return np.zeros((PARTIAL_FRAMES, MEL_BANDS), np.float32)
    clip = clip * (PARTIAL_LEVEL / (np.sqrt(np.mean(clip ** 2)) + 1e-9))
    padded = np.pad(clip, FFT_SIZE // 2, mode="reflect" if len(clip) > FFT_SIZE // 2 else "constant")
    count = 1 + (len(padded) - FFT_SIZE) // HOP
    frames = np.lib.stride_tricks.as_strided(padded, (count, FFT_SIZE), (padded.strides[0] * HOP, padded.strides[0]))
    power = np.abs(np.fft.rfft(frames * _HANN, axis=1)).astype(np.float32) ** 2
    mels = (power @ _mel_filters())[:PARTIAL_FRAMES]
    return np.pad(mels, ((0, PARTIAL_FRAMES - len(mels)), (0, 0)))


def _partials(start: float, end: float) -> list[tuple[float, float]]:
    if end - start <= PARTIAL_SECONDS:
        return [(start, end)]
    count = int(np.ceil((end - start - PARTIAL_SECONDS) / PARTIAL_HOP_SECONDS)) + 1
    return [(first, first + PARTIAL_SECONDS) for first in np.linspace(start, end - PARTIAL_SECONDS, count)]


def voice_embeddings(samples: np.ndarray, spans: list[tuple[float, float]]) -> np.ndarray:
    """One unit vector per (start, end) span of ``samples`` (16-bit or float, 16 kHz): the
    mean of its partials' embeddings, partials PARTIAL_HOP_SECONDS apart. Samples become
    floats a partial at a time: an hour of them as floats would be 230 MB more."""
    owners, partials = [], []
    for n, (start, end) in enumerate(spans):
        for span in _partials(start, end):
            owners.append(n)
            partials.append(span)
    embedded = np.zeros((len(spans), 256), np.float32)
    for first in range(0, len(partials), PARTIALS_AT_ONCE):
        batch = partials[first:first + PARTIALS_AT_ONCE]
        features = np.stack([_partial_features(as_float(samples[int(a * SAMPLE_RATE):int(b * SAMPLE_RATE)]))
                             for a, b in batch])
        found = _encoder().run(None, {"mels": features})[0]
        np.add.at(embedded, owners[first:first + len(batch)], found)
    return _unit(embedded)


def _pieces(words: list[Word], changes: np.ndarray, piece_seconds: float = PIECE_SECONDS) -> list[list[int]]:
    """Indices of ``words`` (in time order) grouped into pieces of one voice: runs without
    a pause or a change of speaker (at ``changes``, seconds), a long run cut into pieces of
    about ``piece_seconds`` (measured: pieces of 1.5 to 4.5 s hear a voice more steadily
    than ones cut at 3 s, whose last bit is short)."""
    turn = np.searchsorted(changes, [(word.start + word.end) / 2 for word in words])
    runs: list[list[int]] = []
    for n, word in enumerate(words):
        if runs and word.start - words[runs[-1][-1]].end < PAUSE_SECONDS and turn[n] == turn[runs[-1][-1]]:
            runs[-1].append(n)
        else:
            runs.append([n])
    pieces = []
    for run in runs:
        start, end = words[run[0]].start, words[run[-1]].end
        count = max(1, round((end - start) / piece_seconds))
        bounds = np.linspace(start, end, count + 1)[1:-1]
        cut = np.searchsorted(bounds, [(words[n].start + words[n].end) / 2 for n in run])
        pieces += [[n for n, part in zip(run, cut) if part == k] for k in range(count)]
    return [piece for piece in pieces if piece]


def _unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-9)


def _centroids(embeddings: np.ndarray, seconds: np.ndarray, labels: np.ndarray) -> np.ndarray:
    return _unit(np.stack([(embeddings[labels == k] * seconds[labels == k, None]).sum(0)
                           for k in range(labels.max() + 1)]))


def _renumbered(labels: np.ndarray) -> np.ndarray:
    return np.unique(labels, return_inverse=True)[1]


def _settled(embeddings: np.ndarray, seconds: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``labels`` after each piece has moved to its nearest voice (a few rounds)."""
    labels = _renumbered(labels)
    for _ in range(3):
        nearest = _renumbered(np.argmax(embeddings @ _centroids(embeddings, seconds, labels).T, axis=1))
        if np.array_equal(nearest, labels):
            break
        labels = nearest
    return labels


def cluster_voices(embeddings: np.ndarray, seconds: np.ndarray, count: int | None = None) -> np.ndarray:
    """A voice number for each embedding (``seconds`` of speech each): ``count`` voices
    when it is given (and there are as many pieces), as many as are heard otherwise.

    Over-cut first (average linkage at FIRST_CUT_DISTANCE), each piece then moved to its
    nearest voice. Then, uncounted: the two most alike voices are merged while they are
    alike past SAME_VOICE_SIMILARITY, and a voice that says too little to be one of its
    own goes to its nearest. Counted: voices go that way, the least of a voice first,
    until ``count`` remain.
    """
    from scipy.cluster.hierarchy import fcluster, linkage

    if len(embeddings) < 2:
        return np.zeros(len(embeddings), int)
    tree = linkage(embeddings, "average", metric="cosine")
    labels = _settled(embeddings, seconds, fcluster(tree, FIRST_CUT_DISTANCE, "distance"))
    while (found := labels.max() + 1) > 1:
        centroids = _centroids(embeddings, seconds, labels)
        alike = centroids @ centroids.T
        np.fill_diagonal(alike, -2)
        said = np.bincount(labels, weights=seconds, minlength=found)
        smallest = int(np.argmin(said))
        too_little = said[smallest] < max(MIN_SHARE * seconds.sum(), MIN_VOICE_SECONDS)
        if count is None:
            merge = alike.max() > SAME_VOICE_SIMILARITY
            if not merge and not too_little:
                break
        else:  # as many as the producer says: the least of a voice goes first
            if found <= count:
                break
            merge = not too_little
        if merge:
            one, other = np.unravel_index(np.argmax(alike), alike.shape)
            labels[labels == other] = one
        else:
            labels[labels == smallest] = int(np.argmax(alike[smallest]))
        labels = _settled(embeddings, seconds, labels)
    if count is not None and labels.max() + 1 < count <= len(embeddings):
        # Voices more alike than the first cut tells apart: the producer says there are more.
        labels = _settled(embeddings, seconds, fcluster(tree, count, "maxclust"))
    return labels


def _seconds(words: list[Word], pieces: list[list[int]]) -> np.ndarray:
    return np.array([max(words[piece[-1]].end - words[piece[0]].start, 0.01) for piece in pieces])


def voices_of_words(samples: np.ndarray, words: list[Word], count: int | None = None) -> list[int]:
    """The voice saying each of ``words`` (in time order, seconds of ``samples``, 16-bit or
    float at 16 kHz), voices numbered from 0 in the order they are first heard."""
    if not words:
        return []
    heard = heard_by_segmentation(samples)
    embedded: dict[tuple, np.ndarray] = {}
    voices = _voices(samples, words, count, heard.changes, embedded)
    # Voices too alike for the encoder, or talking over each other: there are at least as
    # many as are heard together.
    if count is None and heard.together > max(voices) + 1:
        voices = _voices(samples, words, heard.together, heard.changes, embedded)
    return voices


def _voices(samples: np.ndarray, words: list[Word], count: int | None, changes: np.ndarray,
            embedded: dict[tuple, np.ndarray]) -> list[int]:
    """voices_of_words for pieces cut at ``changes``; ``embedded`` keeps the pieces heard
    by the encoder, for a second clustering of the same pieces."""
    pieces = _pieces(words, changes)
    seconds = _seconds(words, pieces)
    if count and np.count_nonzero(seconds >= CLUSTERED_SECONDS) < count:
        pieces = _pieces(words, changes, SHORT_PIECE_SECONDS)
        seconds = _seconds(words, pieces)
    spans = tuple((words[piece[0]].start, words[piece[0]].start + length) for piece, length in zip(pieces, seconds))
    if spans not in embedded:
        embedded[spans] = voice_embeddings(samples, list(spans))
    embeddings = embedded[spans]
    clustered = np.flatnonzero(seconds >= CLUSTERED_SECONDS)
    if len(clustered) > MAX_CLUSTERED_PIECES:
        clustered = np.sort(clustered[np.argsort(-seconds[clustered])[:MAX_CLUSTERED_PIECES]])
    if len(clustered) < 2:
        return [0] * len(words)
    found = cluster_voices(embeddings[clustered], seconds[clustered], count)
    labels = np.argmax(embeddings @ _centroids(embeddings[clustered], seconds[clustered], found).T, axis=1)
    labels[clustered] = found
    first_heard = {voice: n for n, voice in enumerate(dict.fromkeys(labels.tolist()))}
    voice_of_word = [0] * len(words)
    for piece, label in zip(pieces, labels):
        for n in piece:
            voice_of_word[n] = first_heard[int(label)]
    return voice_of_word


def voice_names(options: SpeakerOptions, voices: list[int], words: list[Word]) -> list[str]:
    """A name for each voice (numbered in the order first heard): the person heard at their
    ``voice_at``, then the other persons in order, then "Speaker N"; renamed as asked."""
    count = max(voices, default=-1) + 1
    names: dict[int, str] = {}
    for person, seconds in options.voice_at:
        if words:
            nearest = min(range(len(words)), key=lambda n: abs((words[n].start + words[n].end) / 2 - seconds))
            names.setdefault(voices[nearest], person)
    others = iter(person for person in options.persons if person not in names.values())
    for voice in range(count):
        if voice not in names:
            names[voice] = next(others, None) or f"Speaker {voice + 1}"
    renames = dict(options.renames)
    return [renames.get(names[voice], names[voice]) for voice in range(count)]


def turns_of(spans: list[tuple[float, float, str]]) -> list[Turn]:
    """Who speaks when: one turn per run of (start, end, speaker) spans of one speaker."""
    return [Turn(run[0][0], run[-1][1], speaker)
            for speaker, run in ((speaker, list(run)) for speaker, run in groupby(spans, key=lambda span: span[2]))]


def _turn_speaker(turns: list[Turn], segment: Segment) -> str | None:
    middle = (segment.start + segment.end) / 2
    return next((turn.speaker for turn in turns if turn.start <= middle <= turn.end), None)


def corrected(segment: Segment, turns: list[Turn]) -> bool:
    """Whether a producer gave ``segment`` a speaker other than diarization's."""
    said = _turn_speaker(turns, segment)
    return said is not None and said != segment.speaker


def voices_warning(options: SpeakerOptions, turns: list[Turn]) -> str:
    """What a producer should check: voices heard other than the persons listed, or ""."""
    heard, listed = len({turn.speaker for turn in turns}), len(options.persons)
    if listed >= 2 and heard != listed:
        return f"{listed} persons listed, {heard} voice{'' if heard == 1 else 's'} heard: check the speakers"
    return ""


def diarize(segments: list[Segment], samples: np.ndarray, options: SpeakerOptions,
            earlier: list[Turn] | None = None) -> tuple[list[Segment], list[Turn]]:
    """``segments`` (in time order) with their speakers found, cut where the voice changes
    inside one, and the turns as named.

    Segments a producer re-assigned since ``earlier`` turns keep their speaker, and their
    words are not heard again.
    """
    kept = {id(segment) for segment in segments if earlier and corrected(segment, earlier)}
    heard = [segment for segment in segments if id(segment) not in kept]
    words = [word for segment in heard for word in segment.words]
    voices = voices_of_words(samples, words, options.count)
    names = voice_names(options, voices, words)
    name_of = {id(word): names[voice] for word, voice in zip(words, voices)}
    result: list[Segment] = []
    for segment in segments:
        if id(segment) in kept or not segment.words:
            result.append(segment)
            continue
        runs = [list(run) for _, run in groupby(segment.words, key=lambda word: name_of[id(word)])]
        for n, run in enumerate(runs):
            result.append(Segment(
                id=0, start=segment.start if n == 0 else run[0].start,
                end=segment.end if n == len(runs) - 1 else run[-1].end,
                text=join_words([word.text for word in run]), speaker=name_of[id(run[0])],
                language=segment.language, words=run, restricted=segment.restricted))
    for number, segment in enumerate(result):
        segment.id = number
    # A kept segment's turn stays diarization's, so its correction is still seen as one.
    said = [(segment.start, segment.end, _turn_speaker(earlier, segment) if id(segment) in kept else segment.speaker)
            for segment in result]
    return result, turns_of(said)
