"""Transcribe episodes with faster-whisper into episodes/<slug>/transcript.json."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from itertools import groupby, pairwise
from typing import Protocol

import numpy as np

from . import __version__
from .archive import Archive, Episode, read_current_transcript, read_transcript
from .audio import SAMPLE_RATE, as_float, probe, speaker_tracks
from .embedded_model import Asked, LazyWhisper, Placement, model_identity
from .errors import PodarchiveError
from .layout import ARCHIVE_FILE
from .model import IMPORTED_MODEL, Gap, Outcome, Segment, Status, Transcript, Turn, Word
from .speakers import SpeakerOptions, diarize, speaker_options, voices_warning
from .speech import (
    FRAME_SECONDS,
    WINDOW_SECONDS,
    Region,
    at_speech_level,
    decoding_windows,
    frame_levels,
    merged_gaps,
    speech_regions,
    undertranscribed,
    untranscribed,
    words_in,
)
from .stamps import code_stamp
from .storage import atomic_write_json, cache_dir, file_digest, remember, remembered, write_to_cache
from .text import CLAUSE_END, SENTENCE_END, join_words
from .timing import (
    WORD_TIMING,
    WORD_TIMING_METHOD,
    SpeechActivity,
    clean_word_times,
    keep_out_of_pauses,
    placed_by_voice,
    timed_on_pauses,
)

# Long recordings go through the model this many seconds at a time (memory stays
# flat), each cut at the quietest moment within CUT_SEARCH_SECONDS of its end.
STRETCH_SECONDS = 600
CUT_SEARCH_SECONDS = 30
# How speech is found and decoded, recorded in every transcript's options: when it
# changes, transcripts made the old way are transcribed again. 2: each passage lifted to
# speech level, one language a decoding window, regions left without words decoded
# again on their own and the rest recorded as gaps. 3: regions with under one and a half
# words a second of speech decoded again (MIN_WORDS_PER_SECOND), not under one. 4: regions
# judged before English words are placed by the acoustic model, which left a region
# holding only an "uh" without a word, to be decoded again into a word nobody said.
SPEECH_REGIONS_METHOD = 4
REVIEWED_NOTICE = "reviewed by a producer: never overwritten"
# transcript.json's options: how its voices were found (pipeline/speakers.py).
SPEAKERS = "speakers"
DEVICE, COMPUTE_TYPE = "device", "compute_type"
# Transcript segments: cut at pauses this long, and kept under this length. The pause is
# silence, words ending where their sound does: a speaker's pause for effect inside a
# sentence (jfk's "ask not [1.1 s] what your country") stays in its segment.
SEGMENT_PAUSE_SECONDS = 1.5
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
    device: str | None = None  # None: archive.toml's, or auto
    compute_type: str | None = None  # None: archive.toml's, or the device's own
    # Speed and memory only: not recorded, changing it transcribes nothing again. On 2
    # cores 6 regions at a time decode as fast as faster-whisper's 8, in 300 MB less.
    batch_size: int = 6


DEFAULT_OPTIONS = TranscribeOptions()


def hotwords(archive: Archive, episode: Episode) -> list[str]:
    """The archive's glossary then the episode's, once each: names the model should know."""
    return list(dict.fromkeys([*archive.glossary, *episode.glossary]))


@dataclass(frozen=True)
class DecodingOptions:
    """Everything that changes the transcript's words, recorded in transcript.json: a
    transcript made with other ones is stale."""

    language: str
    beam_size: int
    placement: Placement
    hotwords: tuple[str, ...]
    channels: tuple[tuple[str, str], ...]  # (channel, who speaks on it)
    speech_regions: int = SPEECH_REGIONS_METHOD

    def recorded(self) -> dict:
        """As transcript.json's ``options`` holds them."""
        return {"language": self.language, "beam_size": self.beam_size, "speech_regions": self.speech_regions,
                DEVICE: self.placement.device, COMPUTE_TYPE: self.placement.compute_type,
                "hotwords": list(self.hotwords), "channels": dict(self.channels)}


def asked_placement(archive: Archive, options: TranscribeOptions) -> Asked:
    """The device and compute type asked for: the options', else archive.toml's, else auto."""
    return Asked(options.device or archive.device, options.compute_type or archive.compute_type,
                 archive.root / ARCHIVE_FILE,
                 ("--device" if options.device else "device",
                  "--compute-type" if options.compute_type else "compute_type"))


def decoding_options(archive: Archive, episode: Episode, options: TranscribeOptions,
                     placed: Placement) -> DecodingOptions:
    return DecodingOptions(
        language=options.language or episode.language,
        beam_size=options.beam_size,
        placement=placed,
        hotwords=tuple(hotwords(archive, episode)),
        channels=tuple((str(p.channel), p.name) for p in episode.persons if p.channel is not None),
    )


def is_up_to_date(existing: Transcript, audio_sha256: str, model: str, options: DecodingOptions) -> bool:
    """Whether ``existing`` holds the words these options would decode; how they are
    timed is the align stage's to bring up to date."""
    if existing.model == IMPORTED_MODEL:  # a transcript the podcast published: whisper is asked only with --force
        return existing.audio_sha256 == audio_sha256
    return (
        existing.audio_sha256 == audio_sha256
        and existing.model == model
        and _deciding(existing.options) == _deciding(options.recorded())
    )


def _deciding(recorded: dict) -> dict:
    """The recorded options that decide the words. Where whisper ran (a GPU in float16, a
    CPU in int8) is recorded, not deciding: a collection that moves onto a GPU keeps its
    transcripts, and --force asks for them again."""
    return {key: value for key, value in recorded.items() if key not in (WORD_TIMING, SPEAKERS, DEVICE, COMPUTE_TYPE)}


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


class Decoders(Protocol):
    """Decoding elsewhere than in this process: pipeline.cluster's Dask workers."""

    def transcribe(self, jobs: list[Job], *, model: str | None, asked: Asked, batch_size: int,
                   progress: Progress | None = None) -> Iterator[tuple[Job, Transcript | PodarchiveError]]: ...


def transcribe_archive(
    archive: Archive,
    episodes: list[Episode],
    options: TranscribeOptions = DEFAULT_OPTIONS,
    *,
    force: bool = False,
    on_start: Callable[[float], None] | None = None,
    progress: Progress | None = None,
    on_done: Callable[[Outcome], None] | None = None,
    cluster: Decoders | None = None,
) -> list[Outcome]:
    """Transcribe what is stale among ``episodes``; one failure does not stop the others.

    ``on_start`` receives the seconds of audio that will be transcribed, ``progress``
    each advance, so a caller can draw a bar; ``on_done`` each episode's outcome as it
    is transcribed (or fails), an hour's work not being said only at its end. With a
    ``cluster`` (pipeline.cluster) the stretches are decoded on its workers; the
    transcripts are assembled and written here all the same.
    """
    model_name = options.model or archive.model
    identity = model_identity(model_name)
    asked = asked_placement(archive, options)
    # On a cluster, each worker decides for itself (its own GPU, or none) and says what ran.
    model = LazyWhisper(model_name, asked.resolve() if cluster is None else Placement(asked.device or "auto",
                                                                                       asked.compute_type or "auto"))
    outcomes: list[Outcome] = []
    todo: list[Job] = []
    voices_todo: list[tuple[Episode, Transcript, SpeakerOptions, float]] = []
    for episode in episodes:
        try:
            audio_sha256 = file_digest(episode.audio_path)
            opts = decoding_options(archive, episode, options, model.placement)
            speaking = speaker_options(episode)
            # Found up to date before, with the same bytes and options: not read again.
            verdict = _up_to_date_key(episode, audio_sha256, identity, opts, speaking)
            if verdict and not force and remembered(UP_TO_DATE_VERDICT, verdict):
                outcomes.append(Outcome(episode.slug, Status.UP_TO_DATE))
                continue
            existing = read_transcript(episode.transcript_path)
            if existing is not None and existing.reviewed:
                read_current_transcript(episode)  # a reviewed transcript of another recording is an error
                # Said where transcription was asked for again; otherwise it is up to date,
                # and a notice on every run would only hide the lines that matter.
                outcomes.append(Outcome(episode.slug, Status.KEPT if force else "up-to-date", REVIEWED_NOTICE))
                continue
            if existing is not None and not force and is_up_to_date(existing, audio_sha256, identity, opts):
                heard_with = existing.options.get(SPEAKERS)
                # Speakers a published transcript names are the podcast's own word on who speaks.
                named = existing.model == IMPORTED_MODEL and any(segment.speaker for segment in existing.segments)
                if named or heard_with == (speaking and speaking.recorded()):
                    outcomes.append(Outcome(episode.slug, Status.UP_TO_DATE))
                    if verdict:
                        remember(UP_TO_DATE_VERDICT, verdict)
                    continue
                if speaking is not None:  # the words hold: only their voices are found again
                    voices_todo.append((episode, existing, speaking, existing.duration))
                    continue
            todo.append(Job(episode, audio_sha256, opts, probe(episode.audio_path).duration))
        except PodarchiveError as error:
            outcomes.append(Outcome(episode.slug, Status.FAILED, str(error), error=error))
    if on_start:
        on_start(sum(job.duration for job in todo) + sum(duration for *_, duration in voices_todo))
    for episode, existing, speaking, duration in voices_todo:
        try:
            transcript = with_voices(existing, episode, speaking)
            atomic_write_json(episode.transcript_path, transcript.to_json())
            outcomes.append(Outcome(episode.slug, Status.DIARIZED, voices_warning(speaking, transcript.turns),
                                    seconds=duration))
        except PodarchiveError as error:
            outcomes.append(Outcome(episode.slug, Status.FAILED, str(error), error=error))
        if progress:
            progress(duration)
        if on_done:
            on_done(outcomes[-1])
    if cluster is not None and todo:
        transcribed = cluster.transcribe(todo, model=model_name, asked=asked,
                                         batch_size=options.batch_size, progress=progress)
    else:
        transcribed = _transcribed_here(todo, model, identity, options.batch_size, progress)
    for job, transcript in transcribed:
        if isinstance(transcript, PodarchiveError):
            outcomes.append(Outcome(job.episode.slug, Status.FAILED, str(transcript), error=transcript))
        else:
            # Written here alone, by the process that holds the archive's lock.
            atomic_write_json(job.episode.transcript_path, transcript.to_json())
            speaking = speaker_options(job.episode)
            outcomes.append(Outcome(job.episode.slug, Status.TRANSCRIBED,
                                    voices_warning(speaking, transcript.turns) if speaking else "",
                                    seconds=transcript.duration))
        if on_done:
            on_done(outcomes[-1])
    order = {episode.slug: n for n, episode in enumerate(episodes)}
    return sorted(outcomes, key=lambda outcome: order[outcome.slug])


UP_TO_DATE_VERDICT = "transcribed"


def _up_to_date_key(episode: Episode, audio_sha256: str, model_id: str, opts: DecodingOptions,
                    speaking: SpeakerOptions | None) -> str | None:
    """A digest of all that decides whether ``episode``'s transcript is up to date: its
    bytes, its recording's digest, the model, the options that decide the words, how its
    voices are found, podarchive's code. None without a transcript."""
    try:
        data = episode.transcript_path.read_bytes()
    except FileNotFoundError:
        return None
    return hashlib.sha256(json.dumps(
        [code_stamp(), hashlib.sha256(data).hexdigest(), audio_sha256, model_id, _deciding(opts.recorded()),
         speaking.recorded() if speaking else None]).encode()).hexdigest()


def _transcribed_here(todo: list[Job], model: LazyWhisper, model_id: str, batch_size: int,
                      progress: Progress | None) -> Iterator[tuple[Job, Transcript | PodarchiveError]]:
    """Each job's transcript (or what stopped it), made in this process, one after the other."""
    for job in todo:
        try:
            yield job, transcribe_episode(model.get(), job.episode, job.options, model_id=model_id,
                                          audio_sha256=job.audio_sha256, batch_size=batch_size, progress=progress)
        except PodarchiveError as error:
            if progress:
                progress(job.duration)
            yield job, error


def untranscribed_speech(episodes: list[Episode]) -> list[tuple[Episode, Gap]]:
    """Every stretch of speech no word transcribes, episode by episode, for a producer to
    listen to: the gaps transcription recorded, and in a reviewed transcript made before
    gaps were recorded (never transcribed again), the speech its words leave out."""
    found = []
    for episode in episodes:
        try:
            gaps = _untranscribed_gaps(episode)
        except PodarchiveError:
            continue  # the transcript's own problem is reported where it is read
        found += [(episode, gap) for gap in gaps]
    return found


def _untranscribed_gaps(episode: Episode) -> list[Gap]:
    """An episode's untranscribed speech, remembered in the cache under its transcript's
    bytes (which name its recording's digest): every run and `check` ask for it, and
    reading thousands of transcripts took most of their time."""
    try:
        data = episode.transcript_path.read_bytes()
    except FileNotFoundError:
        return []
    key = hashlib.sha256(data + f" {SPEECH_REGIONS_METHOD} {code_stamp()}".encode()).hexdigest()
    remembered = cache_dir() / "gaps" / f"of-{key}.json"
    try:
        return [Gap(**gap) for gap in json.loads(remembered.read_text(encoding="utf-8"))]
    except (OSError, ValueError, TypeError):
        pass
    transcript = read_transcript(episode.transcript_path)
    gaps = transcript.gaps if transcript else []
    if transcript and transcript.reviewed and transcript.options.get("speech_regions") != SPEECH_REGIONS_METHOD:
        gaps = _reviewed_gaps(episode, transcript)
    write_to_cache(remembered, json.dumps([asdict(gap) for gap in gaps]).encode())
    return gaps


def _reviewed_gaps(episode: Episode, transcript: Transcript) -> list[Gap]:
    """The speech regions a reviewed transcript leaves without words; kept in the cache,
    as they change only with its words or its recording."""
    key = hashlib.sha256(f"{SPEECH_REGIONS_METHOD} {transcript.audio_sha256} "
                         f"{transcript.words_digest()}".encode()).hexdigest()
    cached = cache_dir() / "gaps" / f"{key}.json"
    if cached.exists():
        return [Gap(**gap) for gap in json.loads(cached.read_text(encoding="utf-8"))]
    gaps = []
    tracks = speaker_tracks(episode, SAMPLE_RATE)
    for speaker, samples in tracks:
        words = [word for segment in transcript.segments
                 if len(tracks) == 1 or segment.speaker == speaker for word in segment.words]
        for offset, audio in _lifted_stretches(samples):
            gaps += [Gap(round(region.start + offset, 3), round(region.end + offset, 3))
                     for region in speech_regions(audio, SAMPLE_RATE)
                     if untranscribed(region, words, offset)]
    gaps = merged_gaps(gaps)
    cached.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(cached, [asdict(gap) for gap in gaps])
    return gaps


@dataclass(frozen=True)
class Job:
    """One episode to transcribe, as planned: its recording's digest and how to decode it."""

    episode: Episode
    audio_sha256: str
    options: DecodingOptions
    duration: float


@dataclass(frozen=True)
class Stretch:
    """A stretch of one track (at most STRETCH_SECONDS, cut at a quiet moment), decoded on
    its own: the unit of work a cluster spreads over its workers."""

    track: int
    first: int  # samples
    last: int

    @property
    def seconds(self) -> float:
        return (self.last - self.first) / SAMPLE_RATE


def stretches(tracks: list[tuple[str, np.ndarray]]) -> list[Stretch]:
    return [Stretch(number, first, last) for number, (_, samples) in enumerate(tracks)
            for first, last in _stretches(samples)]


def decode_stretch(whisper, samples: np.ndarray, opts: DecodingOptions, *, batch_size: int,
                   advance: Progress = lambda seconds: None) -> tuple[list[Segment], list[Gap]]:
    """Whisper's pieces of one stretch's samples and the speech it leaves untranscribed,
    timed from the stretch's start.

    The stretch is lifted to speech level, its speech regions found, their language
    decided one by one (``auto``), and decoded in windows of one language; a region left
    without words is decoded again on its own, and what still yields nothing is a gap.
    """
    decoder = _Decoder(whisper, beam_size=opts.beam_size, hotwords=list(opts.hotwords), batch_size=batch_size)
    audio = at_speech_level(as_float(samples).reshape(-1), SAMPLE_RATE)
    return decoder.transcribe(audio, None if opts.language == "auto" else opts.language, advance)


def transcribe_episode(
    whisper,
    episode: Episode,
    opts: DecodingOptions,
    *,
    model_id: str,
    audio_sha256: str,
    batch_size: int = DEFAULT_OPTIONS.batch_size,
    progress: Progress | None = None,
) -> Transcript:
    """Run faster-whisper on one episode (each stereo channel apart when persons say so),
    a stretch at a time (decode_stretch)."""
    tracks = speaker_tracks(episode, SAMPLE_RATE)

    def advance(seconds: float) -> None:
        if progress:
            progress(seconds / len(tracks))

    cut = stretches(tracks)
    decoded = [decode_stretch(whisper, tracks[stretch.track][1][stretch.first:stretch.last], opts,
                              batch_size=batch_size, advance=advance) for stretch in cut]
    return assembled(Job(episode, audio_sha256, opts, len(tracks[0][1]) / SAMPLE_RATE), tracks, cut, decoded,
                     model_id=model_id)


def assembled(job: Job, tracks: list[tuple[str, np.ndarray]], cut: list[Stretch],
              decoded: list[tuple[list[Segment], list[Gap]]], *, model_id: str) -> Transcript:
    """The transcript of ``job`` from its stretches' pieces: each placed in the recording,
    cut again at sentence ends and pauses (what captions, paragraphs and search hits
    want), its words' times cleaned on its track's sound, and its voices found where
    episode.toml asks."""
    episode, opts = job.episode, job.options
    language = None if opts.language == "auto" else opts.language
    pieces_of_track: list[list[Segment]] = [[] for _ in tracks]
    gaps: list[Gap] = []
    spoken: Counter[str] = Counter()  # words in each language: the transcript's is the most
    for stretch, (pieces, stretch_gaps) in zip(cut, decoded):
        offset = stretch.first / SAMPLE_RATE
        for piece in pieces:
            piece.speaker = tracks[stretch.track][0]
            _move(piece, offset)
            spoken[piece.language] += len(piece.words)
            pieces_of_track[stretch.track] += sentences(piece, piece.language)
        gaps += [Gap(round(gap.start + offset, 3), round(gap.end + offset, 3)) for gap in stretch_gaps]
    segments: list[Segment] = []
    for (_, samples), track_segments in zip(tracks, pieces_of_track):
        segments.extend(clean_word_times(track_segments, SpeechActivity(samples, SAMPLE_RATE)))
    segments.sort(key=lambda segment: (segment.start, segment.end))
    main_language = language or (spoken.most_common(1)[0][0] if spoken else "")
    for number, segment in enumerate(segments):
        segment.id = number
        segment.language = segment.language or main_language
    speaking = speaker_options(episode) if len(tracks) == 1 else None
    turns = []
    if speaking:
        segments, turns = diarize(segments, tracks[0][1], speaking)
    transcript = Transcript(
        episode=episode.slug,
        language=main_language,
        duration=round(len(tracks[0][1]) / SAMPLE_RATE, 3),
        model=model_id,
        options={**opts.recorded(), WORD_TIMING: WORD_TIMING_METHOD,
                 **({SPEAKERS: speaking.recorded()} if speaking else {})},
        audio_sha256=job.audio_sha256,
        segments=segments,
        podarchive_version=__version__,
        gaps=merged_gaps(gaps),
        turns=turns,
    )
    transcript.timing_sha256 = transcript.words_digest()
    return transcript


def with_voices(transcript: Transcript, episode: Episode, speaking: SpeakerOptions) -> Transcript:
    """``transcript`` with its voices found again as ``speaking`` says, its words kept and
    the speakers a producer corrected kept too."""
    tracks = speaker_tracks(episode, SAMPLE_RATE)
    # Made before its voices were found, a transcript gave every segment one speaker (the
    # sole person, or none): a segment saying otherwise was corrected by hand.
    given = Counter(segment.speaker for segment in transcript.segments).most_common(1)
    earlier = transcript.turns or [Turn(0.0, transcript.duration, given[0][0] if given else "")]
    segments, turns = diarize(transcript.segments, tracks[0][1], speaking, earlier)
    edited = transcript.timing_sha256 != transcript.words_digest()
    found = replace(transcript, segments=segments, turns=turns,
                    options={**transcript.options, SPEAKERS: speaking.recorded()})
    if not edited:  # what the align stage last timed is still what it times
        found.timing_sha256 = found.words_digest()
    return found


def _lifted_stretches(samples: np.ndarray) -> Iterator[tuple[float, np.ndarray]]:
    """Each stretch of ``samples`` (its start in seconds, its float samples) at speech level."""
    for first, last in _stretches(samples):
        yield first / SAMPLE_RATE, at_speech_level(as_float(samples[first:last]).reshape(-1), SAMPLE_RATE)


def _stretches(samples: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) sample of each stretch to transcribe on its own: STRETCH_SECONDS long,
    each cut at the quietest moment near its end so no word is split."""
    window, reach = STRETCH_SECONDS * SAMPLE_RATE, CUT_SEARCH_SECONDS * SAMPLE_RATE
    cuts = [0]
    while len(samples) - cuts[-1] > window + reach:
        around = cuts[-1] + window - reach
        levels = frame_levels(samples[around:around + 2 * reach], SAMPLE_RATE)
        quietest = int(np.argmin(levels)) * int(SAMPLE_RATE * FRAME_SECONDS)
        cuts.append(around + quietest)
    return list(pairwise([*cuts, len(samples)]))


def _move(segment: Segment, seconds: float) -> None:
    segment.start, segment.end = round(segment.start + seconds, 3), round(segment.end + seconds, 3)
    for word in segment.words:
        word.start, word.end = round(word.start + seconds, 3), round(word.end + seconds, 3)


def _piece(text: str, start: float, end: float, found_words, language: str) -> Segment:
    """Our segment from one of whisper's, its words given as (text, start, end, probability)."""
    words: list[Word] = []
    for word_text, word_start, word_end, probability in found_words:
        # Whisper starts each word with a space; a piece without one continues the
        # previous word, as French elisions do ("m" + "'appelle").
        if words and word_text[:1] not in ("", " "):
            words[-1].text += word_text.strip()
            words[-1].end = round(word_end, 3)
            words[-1].probability = round(min(words[-1].probability, probability), 4)
        elif word_text.strip():
            words.append(Word(text=word_text.strip(), start=round(word_start, 3),
                              end=round(word_end, 3), probability=round(probability, 4)))
    return Segment(id=0, start=round(start, 3), end=round(end, 3), text=text.strip(),
                   language=language, words=words)


# faster-whisper's own defaults, for what its transcribe() would pass.
PREPEND_PUNCTUATIONS = "\"'“¿([{-"
APPEND_PUNCTUATIONS = "\"'.。,，!！?？:：”)]}、"
# A window whisper finds silent (no-speech probability above this while its words are
# unlikely, as in faster-whisper's sequential decoding) holds no words: whisper makes up
# its stock phrases ("Merci.", "Sous-titres réalisés par…") over breath and noise.
NO_SPEECH_PROBABILITY = 0.6
ENCODED_SECONDS = 10.0
UNLIKELY_LOG_PROBABILITY = -1.0
BATCH_OVERHEAD_WINDOWS = 2.0  # what a batch costs beyond its windows: see batches_by_length
# Whisper hears a region's language in its first LANGUAGE_SECONDS. A region shorter than
# LANGUAGE_SURE_SECONDS takes the language of the nearest speech, and one shorter than
# LANGUAGE_ISLAND_SECONDS the language of the speech on both sides of it: a second or two
# of speech says little about its language (measured on mit-licence-en-de: "zu
# vervielfältigen", 1.4 s, heard as English). A language is spoken in a recording when
# it holds LANGUAGE_SHARE of its speech, and LANGUAGE_MIN_SECONDS at least.
LANGUAGE_SECONDS = 4.0
LANGUAGE_SURE_SECONDS = 1.5
LANGUAGE_ISLAND_SECONDS = 3.0
LANGUAGE_SHARE = 0.05
LANGUAGE_MIN_SECONDS = 3.0
# Regions whose language is asked, a batch at a time: their encodings are short, and
# measured on bench/longform.py's bilingual recording (323 regions asked) batches of 32
# took 4.8 s where batches of 6 took 6.7 s, the same languages found.
LANGUAGE_BATCH = 32


class _Decoder:
    """faster-whisper's model driven window by window: the batched decoding of its
    BatchedInferencePipeline, with windows podarchive chooses.

    Reads faster-whisper 1.2's internals (the pyproject pins <2), as its batched
    pipeline does: WhisperModel.encode, get_prompt, add_word_timestamps and the
    CTranslate2 model beneath.
    """

    def __init__(self, whisper, *, beam_size: int, hotwords: list[str], batch_size: int):
        self.whisper = whisper
        self.beam_size = beam_size
        self.hotwords = ", ".join(hotwords) or None
        self.batch_size = batch_size
        self.calls = whisper.model.num_workers

    def _shared(self, count: int, most: int) -> int:
        """The batch size for ``count`` items, at most ``most``, that gives each of the
        model's calls at once some: a lone call runs on one core of several."""
        return max(1, min(most, -(-count // self.calls)))

    def _each(self, work: Callable, items: list) -> Iterator:
        """``work`` of each item, in order, as many at once as the model runs calls at
        once (LazyWhisper: one per core on a CPU)."""
        if self.calls < 2 or len(items) < 2:
            yield from map(work, items)
            return
        with ThreadPoolExecutor(self.calls) as pool:
            yield from pool.map(work, items)

    def transcribe(self, audio: np.ndarray, language: str | None,
                   advance: Callable[[float], None]) -> tuple[list[Segment], list[Gap]]:
        """Pieces of transcript (times in seconds of ``audio``) and the speech left untranscribed."""
        regions = speech_regions(audio, SAMPLE_RATE)
        if not regions:
            advance(len(audio) / SAMPLE_RATE)
            return [], []
        if language is None:
            self._decide_languages(audio, regions)
        else:
            for region in regions:
                region.language = language
        windows = decoding_windows(regions)
        pieces = [piece for found in self._decode_all(audio, windows, advance) for piece in found]
        pieces, gaps = self._guard(audio, regions, pieces)
        _place_by_voice(pieces, audio, windows)
        keep_out_of_pauses(pieces, audio)
        advance(len(audio) / SAMPLE_RATE - sum(region.seconds for region in regions))
        return _runs_of_one_language(pieces), gaps

    def _decide_languages(self, audio: np.ndarray, regions: list[Region]) -> None:
        """Each region's language, among those the recording speaks.

        Whisper is asked about each region alone, from an encoding of the region's own
        length (at most LANGUAGE_SECONDS: a tenth of a 30 s window's cost for a 3 s
        region). On a second or two it often names a language nobody speaks (Welsh for
        English, Turkish for French): only languages holding LANGUAGE_SHARE of the
        recording's speech are chosen from, and a region too short to say takes the
        language of the speech nearest to it.
        """
        asked = sorted([region for region in regions if region.seconds >= LANGUAGE_SURE_SECONDS]
                       or regions, key=lambda region: region.seconds)
        heard: dict[int, dict[str, float]] = {}
        batches = _batches(asked, self._shared(len(asked), LANGUAGE_BATCH))
        for batch, languages in zip(batches, self._each(lambda batch: self._languages(audio, batch), batches)):
            for region, scores in zip(batch, languages):
                heard[id(region)] = {token[2:-2]: probability for token, probability in scores}  # "<|fr|>" -> "fr"
        share: Counter[str] = Counter()
        for region in asked:
            for code, probability in heard[id(region)].items():
                share[code] += region.seconds * probability
        total = sum(share.values())
        spoken = [code for code, amount in share.items()
                  if amount >= max(LANGUAGE_SHARE * total, LANGUAGE_MIN_SECONDS)] or [share.most_common(1)[0][0]]
        for region in regions:
            if id(region) in heard:
                region.language = max(spoken, key=lambda code: heard[id(region)].get(code, 0.0))
        for n, region in enumerate(regions):  # too short to say: the language of the nearest speech
            if id(region) not in heard:
                before = next((r for r in reversed(regions[:n]) if id(r) in heard), None)
                after = next((r for r in regions[n + 1:] if id(r) in heard), None)
                nearest = min([r for r in (before, after) if r is not None],
                              key=lambda r: r.start - region.end if r is after else region.start - r.end)
                region.language = nearest.language
        for before, region, after in zip(regions, regions[1:], regions[2:]):
            if region.seconds < LANGUAGE_ISLAND_SECONDS and before.language == after.language:
                region.language = before.language

    def _languages(self, audio: np.ndarray, regions: list[Region]) -> list[list[tuple[str, float]]]:
        """Whisper's (language token, probability) for each region, heard in its first
        LANGUAGE_SECONDS."""
        features = [self._features(audio, region.start, min(region.end, region.start + LANGUAGE_SECONDS))
                    for region in regions]
        frames = max(feature.shape[-1] for feature in features)
        stacked = np.stack([np.pad(feature, ((0, 0), (0, frames - feature.shape[-1]))) for feature in features])
        return self.whisper.model.detect_language(self.whisper.encode(stacked))

    def _features(self, audio: np.ndarray, start: float, end: float) -> np.ndarray:
        """Whisper's log-mel features of ``audio`` from ``start`` to ``end`` seconds."""
        return self.whisper.feature_extractor(audio[int(start * SAMPLE_RATE):int(end * SAMPLE_RATE)])[..., :-1]

    def _decode(self, audio: np.ndarray, batch: list[list[Region]]) -> list[list[Segment]]:
        """Whisper's pieces of each window in ``batch``, each in its regions' language,
        decoded together as faster-whisper's batched pipeline does (without timestamp
        tokens), each window prompted with its own language."""
        import ctranslate2
        from faster_whisper.audio import pad_or_trim
        from faster_whisper.tokenizer import Tokenizer
        from faster_whisper.transcribe import get_suppressed_tokens

        whisper = self.whisper
        languages = [window[0].language for window in batch]
        tokenizers = {code: Tokenizer(whisper.hf_tokenizer, whisper.model.is_multilingual,
                                      task="transcribe", language=code) for code in dict.fromkeys(languages)}
        prompts = [whisper.get_prompt(tokenizers[code], [], without_timestamps=True, hotwords=self.hotwords)
                   for code in languages]
        clips = [np.concatenate([audio[int(r.start * SAMPLE_RATE):int(r.end * SAMPLE_RATE)] for r in window])
                 for window in batch]
        # The encoder's cost grows with what it is given: windows shorter than whisper's
        # 30 s are encoded at the batch's longest (a second more, ENCODED_SECONDS at
        # least) rather than padded to 30 s. Measured on bench/longform.py (windows of one
        # language are short where languages switch): a third less time, the same WER.
        frames = _encoded_seconds(max(len(clip) for clip in clips) / SAMPLE_RATE) * whisper.frames_per_second
        encoder_output = whisper.encode(np.stack(
            [pad_or_trim(whisper.feature_extractor(clip)[..., :-1], frames) for clip in clips]))
        results = whisper.model.generate(
            encoder_output, prompts, beam_size=self.beam_size, patience=1,
            length_penalty=1, max_length=whisper.max_length, suppress_blank=True,
            suppress_tokens=get_suppressed_tokens(tokenizers[languages[0]], [-1]), return_scores=True,
            return_no_speech_prob=True, sampling_temperature=0.0,
        )
        outputs, sizes, silent = [], [], []
        for clip, result in zip(clips, results):
            tokens = result.sequences_ids[0]
            silent.append(result.no_speech_prob > NO_SPEECH_PROBABILITY
                          and result.scores[0] * len(tokens) / (len(tokens) + 1) < UNLIKELY_LOG_PROBABILITY)
            seconds = len(clip) / SAMPLE_RATE
            sizes.append(int(np.ceil(seconds) * whisper.frames_per_second))
            outputs.append([{"seek": 0, "start": 0.0, "end": seconds, "tokens": tokens}])
        # Words are aligned with the language's own start tokens, a language at a time.
        for code, tokenizer in tokenizers.items():
            mine = [n for n, language in enumerate(languages) if language == code and outputs[n][0]["tokens"]]
            if not mine:
                continue
            encoded = encoder_output if len(mine) == len(batch) else ctranslate2.StorageView.from_array(
                np.ascontiguousarray(np.asarray(encoder_output)[mine]))
            whisper.add_word_timestamps([outputs[n] for n in mine], tokenizer, encoded, [sizes[n] for n in mine],
                                        PREPEND_PUNCTUATIONS, APPEND_PUNCTUATIONS, 0.0)
        return [[] if quiet else _placed(window, _on_pauses(output[0].get("words", []), clip),
                                          window[0].language)
                for window, output, quiet, clip in zip(batch, outputs, silent, clips)]

    def _decode_all(self, audio: np.ndarray, windows: list[list[Region]],
                    advance: Callable[[float], None] | None = None) -> list[list[Segment]]:
        """Whisper's pieces of each window, a batch of windows of like length at a time
        (a batch decodes until its longest window is done), whatever their languages:
        measured on mit-licence-en-de, its English and German windows batched apart took
        4.4 s to generate, together 2.9 s."""
        found: dict[int, list[Segment]] = {}
        batches = batches_by_length([sum(region.seconds for region in window) for window in windows],
                                    self._shared(len(windows), -(-self.batch_size // self.calls)))
        decoded = self._each(lambda batch: self._decode(audio, [windows[n] for n in batch]), batches)
        for batch, pieces in zip(batches, decoded):
            found.update(zip(batch, pieces))
            if advance:
                advance(sum(region.seconds for n in batch for region in windows[n]))
        return [found[n] for n in range(len(windows))]

    def _guard(self, audio: np.ndarray, regions: list[Region],
               pieces: list[Segment]) -> tuple[list[Segment], list[Gap]]:
        """Regions left without their words decoded again; the gaps left after that.

        Whisper learnt on 30 s windows whose last sentence runs on into the next one: it
        often ends a window seconds before its speech ends, or skips a passage in it
        (faster-whisper's sequential decoding seeks back there; batched decoding, and so
        landed podarchive, lost it). Such regions are decoded again, together in windows
        of their own, then one by one with whisper's sequential decoding (its timestamps
        and temperature fallbacks), keeping whichever finds more words.
        """
        decoded = _words(pieces)
        missing = [region for region in regions if undertranscribed(region, decoded)]
        windows = decoding_windows(missing)
        for window, found in zip(windows, self._decode_all(audio, windows)):
            for region in window:
                pieces = _keep_more(pieces, region, found)
        gaps = []
        for region in missing:
            if undertranscribed(region, _words(pieces)):
                pieces = _keep_more(pieces, region, self._alone(audio, region))
            if untranscribed(region, _words(pieces)):
                gaps.append(Gap(region.start, region.end))
        return pieces, gaps

    def _alone(self, audio: np.ndarray, region: Region) -> list[Segment]:
        """``region`` decoded on its own, sequentially (whisper's timestamps and fallbacks)."""
        clip = audio[int(region.start * SAMPLE_RATE):int(region.end * SAMPLE_RATE)]
        found, _ = self.whisper.transcribe(
            clip, language=region.language or None, beam_size=self.beam_size, word_timestamps=True,
            vad_filter=False, condition_on_previous_text=False, hotwords=self.hotwords)
        words = _on_pauses([{"word": w.word, "start": w.start, "end": w.end, "probability": w.probability}
                           for part in found for w in part.words or []], clip)
        piece = _piece("", 0.0, region.seconds, [(w["word"], w["start"], w["end"], w["probability"]) for w in words],
                       region.language)
        _move(piece, region.start)
        return [piece] if piece.words else []


def _on_pauses(found_words: list[dict], clip: np.ndarray) -> list[dict]:
    """Whisper's words (dicts with start and end in seconds of ``clip``) moved to where
    they sound: starts after the pauses, ends where the sound stops (timing.timed_on_pauses)."""
    if not found_words:
        return found_words
    times = timed_on_pauses([word["start"] for word in found_words], [word["end"] for word in found_words], clip)
    return [{**word, "start": start, "end": end} for word, (start, end) in zip(found_words, times)]


def _place_by_voice(pieces: list[Segment], audio: np.ndarray, windows: list[list[Region]]) -> None:
    """The words of ``pieces`` placed by the acoustic model of their language, where there
    is one (timing.placed_by_voice), on the audio whisper decoded them from: each of the
    decoding ``windows``' regions joined (a word is placed among its neighbours, even
    where its estimated times put it in the next region).

    Done once the guard has run (_Decoder._guard), on the times it judged: precise ends
    leave a region holding only a filler ("uh", which whisper does not write) without a
    word, and the guard had it decoded again, where whisper made up a word.
    """
    spoken = _words(pieces)
    for window in windows:
        words = sorted(((word, n) for n, region in enumerate(window) for word in words_in(region, spoken)),
                       key=lambda item: item[0].start)
        if not words:
            continue
        clip_starts = _clip_starts(window)
        clip = np.concatenate([audio[int(r.start * SAMPLE_RATE):int(r.end * SAMPLE_RATE)] for r in window])
        shifts = [clip_starts[n] - window[n].start for _, n in words]
        times = placed_by_voice([word.text for word, _ in words],
                                [(word.start + shift, word.end + shift) for (word, _), shift in zip(words, shifts)],
                                clip, window[0].language)
        for (word, _), (start, end) in zip(words, times):
            _, word.start, word.end = _in_recording(window, clip_starts, start, end)


def _runs_of_one_language(pieces: list[Segment]) -> list[Segment]:
    """The words of ``pieces`` in time order, a piece for each run of one language: each
    is then cut at sentence ends and pauses, wherever its words were decoded."""
    spoken = sorted(((word, piece.language) for piece in pieces for word in piece.words),
                    key=lambda item: item[0].start)
    runs = [list(run) for _, run in groupby(spoken, key=lambda item: item[1])]
    return [_of_words([word for word, _ in run], run[0][1]) for run in runs]


def _words(pieces: list[Segment]) -> list[Word]:
    return [word for piece in pieces for word in piece.words]


def _keep_more(pieces: list[Segment], region: Region, again: list[Segment]) -> list[Segment]:
    """``pieces`` with their words in ``region`` replaced by ``again``'s, if those are more."""
    found = words_in(region, _words(again))
    replaced = {id(word) for word in words_in(region, _words(pieces))}
    if len(found) <= len(replaced):
        return pieces
    kept = [(piece.language, [word for word in piece.words if id(word) not in replaced]) for piece in pieces]
    return [_of_words(words, language) for language, words in kept if words] + [_of_words(found, region.language)]


def _placed(window: list[Region], found_words: list[dict], language: str) -> list[Segment]:
    """A window's words at their times in the recording, a piece for each region.

    A window's regions are decoded one after the other, the pauses between them left
    out (as faster-whisper's batched pipeline does): a word belongs to the region its
    middle falls in, and moves by that region's place in the recording.
    """
    clip_starts = _clip_starts(window)
    by_region: list[list[tuple]] = [[] for _ in window]
    for word in found_words:
        n, start, end = _in_recording(window, clip_starts, word["start"], word["end"])
        by_region[n].append((word["word"], start, end, word["probability"]))
    pieces = [_piece("", region.start, region.end, words, language) for region, words in zip(window, by_region)]
    return [_of_words(piece.words, language) for piece in pieces if piece.words]


def _clip_starts(window: list[Region]) -> np.ndarray:
    """Where each of ``window``'s regions starts once they are joined (seconds)."""
    return np.cumsum([0.0, *(region.seconds for region in window[:-1])])


def _in_recording(window: list[Region], clip_starts: np.ndarray, start: float,
                  end: float) -> tuple[int, float, float]:
    """A word's times in seconds of ``window``'s regions joined (each starting at
    ``clip_starts``), as the region it belongs to (the one its middle falls in: its index
    in ``window``) and its times in the recording, moved by that region's place there and
    kept inside it."""
    n = max(0, int(np.searchsorted(clip_starts, (start + end) / 2, side="right")) - 1)
    region, shift = window[n], window[n].start - clip_starts[n]
    return n, min(max(start + shift, region.start), region.end), min(max(end + shift, region.start), region.end)


def _of_words(words: list[Word], language: str) -> Segment:
    return Segment(id=0, start=words[0].start, end=words[-1].end, text=join_words([w.text for w in words]),
                   language=language, words=words)


def _batches(items: list, size: int) -> list[list]:
    return [items[first:first + size] for first in range(0, len(items), size)]


def _encoded_seconds(longest: float) -> int:
    """Seconds of audio the encoder is given for a batch whose longest window is ``longest``."""
    return min(int(WINDOW_SECONDS), int(np.ceil(max(longest + 1, ENCODED_SECONDS))))


def batches_by_length(seconds: list[float], size: int) -> list[list[int]]:
    """The windows (their ``seconds`` of speech) in batches of at most ``size``, those of
    like length together, cut where the batches cost least.

    A batch is encoded at its longest window and decodes until its longest is done:
    measured on 2 cores, a batch of n windows costs about (n + BATCH_OVERHEAD_WINDOWS)
    times what its longest costs alone. Cut into sixes in order, an episode's last few
    windows (short and long together) were all encoded at 30 s.
    """
    order = sorted(range(len(seconds)), key=seconds.__getitem__)
    encoded = [_encoded_seconds(seconds[n]) for n in order]
    cost, cut = [0.0] + [np.inf] * len(order), [0] * (len(order) + 1)
    for end in range(1, len(order) + 1):
        for start in range(max(0, end - size), end):
            batch_cost = cost[start] + (end - start + BATCH_OVERHEAD_WINDOWS) * encoded[end - 1]
            if batch_cost < cost[end]:
                cost[end], cut[end] = batch_cost, start
    batches, end = [], len(order)
    while end:
        batches.append(order[cut[end]:end])
        end = cut[end]
    return batches[::-1]


def sentences(region: Segment, language: str) -> list[Segment]:
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
