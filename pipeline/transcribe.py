"""Transcribe episodes with faster-whisper into episodes/<slug>/transcript.json."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import pairwise

import numpy as np

from . import __version__
from .align import (
    CLAUSE_END,
    FRAME_SECONDS,
    SENTENCE_END,
    SpeechActivity,
    clean_word_times,
    frame_levels,
    join_words,
)
from .archive import Archive, Episode, read_current_transcript, read_transcript
from .audio import SAMPLE_RATE, as_float, probe, speaker_tracks
from .embedded_model import LazyWhisper, model_identity
from .errors import PodarchiveError
from .model import Outcome, Segment, Transcript, Word
from .storage import atomic_write_json, sha256_file

# Long recordings go through the model this many seconds at a time (memory stays
# flat), each cut at the quietest moment within CUT_SEARCH_SECONDS of its end.
WINDOW_SECONDS = 600
CUT_SEARCH_SECONDS = 30
# Transcript segments: cut at pauses this long, and kept under this length.
SEGMENT_PAUSE_SECONDS = 1.0
MAX_SEGMENT_SECONDS = 20.0

Progress = Callable[[float], None]


@dataclass(frozen=True)
class TranscribeOptions:
    """What the user chose; together with the episode it decides the decoding options.

    Measured on the 12 real clips of shared/audio with the batched pipeline: beam 5 gives
    the same word error rates as beam 10 (jfk, leopard-fr, cheetah-fr 0.00; ej-fra with
    its glossary 0.09) for 3 % less time, and beam 1 is worse (leopard-fr 0.15).
    """

    model: str | None = None
    language: str | None = None
    beam_size: int = 5
    compute_type: str = "int8"
    # Speed and memory only: not recorded, changing it transcribes nothing again. On 2
    # cores 6 regions at a time decode as fast as faster-whisper's 8, in 300 MB less.
    batch_size: int = 6


DEFAULT_OPTIONS = TranscribeOptions()


def hotwords(archive: Archive, episode: Episode) -> list[str]:
    """The archive's glossary then the episode's, once each: names the model should know."""
    return list(dict.fromkeys([*archive.glossary, *episode.glossary]))


def decoding_options(archive: Archive, episode: Episode, options: TranscribeOptions) -> dict:
    """Everything that changes the transcript's words; a transcript made with other ones is stale."""
    return {
        "language": options.language or episode.language,
        "beam_size": options.beam_size,
        "vad_filter": True,
        "compute_type": options.compute_type,
        "hotwords": hotwords(archive, episode),
        "channels": {str(p.channel): p.name for p in episode.persons if p.channel is not None},
    }


def is_up_to_date(existing: Transcript, audio_sha256: str, model: str, opts: dict) -> bool:
    return (
        existing.audio_sha256 == audio_sha256
        and existing.model == model
        and existing.options == opts
    )


def plan(archive: Archive, slugs: Iterable[str] | None = None) -> list[Episode]:
    """The episodes named by ``slugs`` (all when empty), or an error naming the unknown slug."""
    wanted = list(slugs or [])
    if not wanted:
        return list(archive.episodes)
    known = {episode.slug: episode for episode in archive.episodes}
    episodes = []
    for slug in wanted:
        if slug not in known:
            raise PodarchiveError(archive.episodes_dir / slug, None, "no such valid episode")
        episodes.append(known[slug])
    return episodes


def transcribe_archive(
    archive: Archive,
    episodes: list[Episode],
    options: TranscribeOptions = DEFAULT_OPTIONS,
    *,
    force: bool = False,
    on_start: Callable[[float], None] | None = None,
    progress: Progress | None = None,
) -> list[Outcome]:
    """Transcribe what is stale among ``episodes``; one failure does not stop the others.

    ``on_start`` receives the seconds of audio that will be transcribed, ``progress``
    each advance, so a caller can draw a bar.
    """
    model_name = options.model or archive.model
    identity = model_identity(model_name)
    model = LazyWhisper(model_name, options.compute_type)
    outcomes: list[Outcome] = []
    todo: list[tuple[Episode, str, dict, float]] = []
    for episode in episodes:
        try:
            existing = read_transcript(episode.transcript_path)
            audio_sha256 = sha256_file(episode.audio_path)
            if existing is not None and existing.reviewed:
                read_current_transcript(episode)  # a reviewed transcript of another recording is an error
                outcomes.append(Outcome(episode.slug, "reviewed",
                                        "reviewed by a producer: never overwritten"))
                continue
            opts = decoding_options(archive, episode, options)
            if existing is not None and not force and is_up_to_date(existing, audio_sha256, identity, opts):
                outcomes.append(Outcome(episode.slug, "up-to-date"))
                continue
            todo.append((episode, audio_sha256, opts, probe(episode.audio_path).duration))
        except PodarchiveError as error:
            outcomes.append(Outcome(episode.slug, "failed", str(error), error=error))
    if on_start:
        on_start(sum(duration for *_, duration in todo))
    for episode, audio_sha256, opts, duration in todo:
        try:
            transcript = transcribe_episode(
                model.get(), episode, opts, model_id=identity, audio_sha256=audio_sha256,
                batch_size=options.batch_size, progress=progress,
            )
            atomic_write_json(episode.transcript_path, transcript.to_json())
            outcomes.append(Outcome(episode.slug, "transcribed", seconds=transcript.duration))
        except PodarchiveError as error:
            if progress:
                progress(duration)
            outcomes.append(Outcome(episode.slug, "failed", str(error), error=error))
    order = {episode.slug: n for n, episode in enumerate(episodes)}
    return sorted(outcomes, key=lambda outcome: order[outcome.slug])


def transcribe_episode(
    whisper,
    episode: Episode,
    opts: dict,
    *,
    model_id: str,
    audio_sha256: str,
    batch_size: int = DEFAULT_OPTIONS.batch_size,
    progress: Progress | None = None,
) -> Transcript:
    """Run faster-whisper on one episode (each stereo channel apart when persons say so).

    faster-whisper's batched pipeline decodes the speech regions VAD finds in parallel;
    its segments are whole regions (up to 30 s), so they are cut again at sentence ends
    and pauses, which is what captions, paragraphs and search hits want.
    """
    tracks = speaker_tracks(episode, SAMPLE_RATE)
    duration = len(tracks[0][1]) / SAMPLE_RATE
    language = None if opts["language"] == "auto" else opts["language"]
    batched = _language_keeping_pipeline(whisper)
    detected = language
    segments: list[Segment] = []
    for speaker, samples in tracks:
        track_segments = []
        for first, last in _windows(samples):
            # The pipeline holds its speech regions and their features for the whole
            # audio it is given: ten minutes at a time keeps an hour's memory flat.
            batched.region_languages.clear()
            found, info = batched.transcribe(
                as_float(samples[first:last]),
                language=language,
                multilingual=language is None,
                beam_size=opts["beam_size"],
                batch_size=batch_size,
                word_timestamps=True,
                hotwords=", ".join(opts["hotwords"]) or None,
            )
            offset = first / SAMPLE_RATE
            done = 0.0
            for region in found:
                region_language = language or batched.region_languages.get(region.seek, "")
                track_segments += _sentences(_segment(region, speaker, offset), region_language)
                if progress:
                    progress((region.end - done) / len(tracks))
                done = region.end
            if progress:
                progress(((last - first) / SAMPLE_RATE - done) / len(tracks))
            detected = detected or info.language
        segments.extend(clean_word_times(track_segments, SpeechActivity(samples, SAMPLE_RATE)))
    segments.sort(key=lambda segment: (segment.start, segment.end))
    for number, segment in enumerate(segments):
        segment.id = number
        segment.language = segment.language or detected or ""
    transcript = Transcript(
        episode=episode.slug,
        language=detected or "",
        duration=round(duration, 3),
        model=model_id,
        options=opts,
        audio_sha256=audio_sha256,
        segments=segments,
        podarchive_version=__version__,
    )
    transcript.timing_sha256 = transcript.words_digest()
    return transcript


def _windows(samples: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) sample of each stretch to transcribe on its own: WINDOW_SECONDS long,
    each cut at the quietest moment near its end so no word is split."""
    window, reach = WINDOW_SECONDS * SAMPLE_RATE, CUT_SEARCH_SECONDS * SAMPLE_RATE
    cuts = [0]
    while len(samples) - cuts[-1] > window + reach:
        around = cuts[-1] + window - reach
        levels = frame_levels(samples[around:around + 2 * reach], SAMPLE_RATE)
        quietest = int(np.argmin(levels)) * int(SAMPLE_RATE * FRAME_SECONDS)
        cuts.append(around + quietest)
    return list(pairwise([*cuts, len(samples)]))


def _segment(found, speaker: str, offset: float = 0.0) -> Segment:
    """Our segment from faster-whisper's, its times moved by ``offset`` seconds."""
    words: list[Word] = []
    for found_word in found.words or []:
        text = found_word.word
        # Whisper starts each word with a space; a piece without one continues the
        # previous word, as French elisions do ("m" + "'appelle").
        if words and text[:1] not in ("", " "):
            words[-1].text += text.strip()
            words[-1].end = round(offset + found_word.end, 3)
            words[-1].probability = round(min(words[-1].probability, found_word.probability), 4)
        elif text.strip():
            words.append(Word(text=text.strip(), start=round(offset + found_word.start, 3),
                              end=round(offset + found_word.end, 3),
                              probability=round(found_word.probability, 4)))
    return Segment(id=found.id, start=round(offset + found.start, 3), end=round(offset + found.end, 3),
                   text=found.text.strip(), speaker=speaker, words=words)


def _language_keeping_pipeline(whisper):
    """faster-whisper's batched pipeline, remembering the language it detects in each
    speech region of a code-switching episode (it uses it, but does not return it).

    Reads faster-whisper 1.2's internals (the pyproject pins <2): each batch's encoder
    output is asked its languages again, which costs one decoder step, not an encoding.
    """
    from faster_whisper import BatchedInferencePipeline

    class LanguageKeepingPipeline(BatchedInferencePipeline):
        def __init__(self, model):
            super().__init__(model)
            self.region_languages: dict[int, str] = {}  # region's seek -> language code
            self._batch_languages: list[str] = []

        def generate_segment_batched(self, features, tokenizer, options):
            encoder_output, outputs = super().generate_segment_batched(features, tokenizer, options)
            if options.multilingual:
                self._batch_languages = [scores[0][0][2:-2]  # "<|de|>" -> "de"
                                         for scores in self.model.model.detect_language(encoder_output)]
            return encoder_output, outputs

        def forward(self, features, tokenizer, chunks_metadata, options):
            outputs = super().forward(features, tokenizer, chunks_metadata, options)
            for chunk, language in zip(chunks_metadata, self._batch_languages):
                self.region_languages[int(chunk["offset"] * self.model.frames_per_second)] = language
            return outputs

    return LanguageKeepingPipeline(whisper)


def _sentences(region: Segment, language: str) -> list[Segment]:
    """Cut a speech region into segments at sentence ends and pauses, and at a clause
    end once a segment grows long, so no segment runs much past MAX_SEGMENT_SECONDS."""
    pieces: list[list[Word]] = [[]]
    for n, word in enumerate(region.words):
        pieces[-1].append(word)
        following = region.words[n + 1] if n + 1 < len(region.words) else None
        if following is None:
            break
        length = word.end - pieces[-1][0].start
        if (
            word.text.endswith(SENTENCE_END)
            or following.start - word.end >= SEGMENT_PAUSE_SECONDS
            or (length >= MAX_SEGMENT_SECONDS / 2 and word.text.endswith(CLAUSE_END))
            or length >= MAX_SEGMENT_SECONDS
        ):
            pieces.append([])
    return [
        Segment(id=0, start=words[0].start, end=words[-1].end, text=join_words([w.text for w in words]),
                speaker=region.speaker, language=language, words=words)
        for words in pieces if words
    ]
