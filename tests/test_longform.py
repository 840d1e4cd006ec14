"""No speech silently lost: a soft voice, language switches and noise in one recording,
and the gaps transcription could not fill, reported to the producer."""

import itertools
import json
from pathlib import Path

import jiwer
import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st
from scipy.io import wavfile

from pipeline.archive import load_archive
from pipeline.audio import SAMPLE_RATE, as_float, decode, probe
from pipeline.cli import cli
from pipeline.embedded_model import Placement
from pipeline.model import Gap, Segment, Transcript, Word
from pipeline.speech import (
    MAX_GAIN_DB,
    WINDOW_SECONDS,
    Region,
    at_speech_level,
    decoding_windows,
    frame_levels,
    merged_gaps,
    speech_regions,
    undertranscribed,
    untranscribed,
)
from pipeline.transcribe import (
    SPEECH_REGIONS_METHOD,
    TranscribeOptions,
    batches_by_length,
    decoding_options,
    is_up_to_date,
)

from conftest import REFERENCES, copy_archive, normalise, write_transcript

REPO = Path(__file__).resolve().parent.parent
CLIPS = REPO / "tests" / "data" / "clips"
EPISODES = REPO / "episodes"
PAUSE_SECONDS = 0.5
NOISE_SECONDS = 10.0

# (name, recording, reference, language, seconds kept, word error rate ceiling). The
# ceilings leave room above what whisper base reaches on each clip alone (fleurs-fr-002
# 0.42: FLEURS's normalised reference spells numbers out).
ASSEMBLY = [
    ("leopard-fr", EPISODES / "conservateur-des-eaux-et-forets/leopard-fr.wav", REFERENCES / "leopard-fr.txt", "fr", None, 0.3),
    ("jfk", EPISODES / "kennedy-inaugural-1961/jfk.flac", REFERENCES / "jfk.txt", "en", None, 0.15),
    ("fleurs-fr-000", CLIPS / "fleurs-fr-000.ogg", CLIPS / "fleurs-fr-000.txt", "fr", None, 0.45),
    ("three-speakers-en", CLIPS / "three-speakers-en.wav", CLIPS / "three-speakers-en.txt", "en", None, 0.2),
    ("noise", None, None, "", None, None),
    ("cheetah-fr", CLIPS / "cheetah-fr.wav", CLIPS / "cheetah-fr.txt", "fr", None, 0.3),
    ("fleurs-fr-001", CLIPS / "fleurs-fr-001.ogg", CLIPS / "fleurs-fr-001.txt", "fr", None, 0.4),
    ("mit-licence-en", EPISODES / "mit-licence-en-de/multilingual.mp3", REFERENCES / "multilingual.en.txt", "en", 29.5, 0.2),
    ("fleurs-fr-002", CLIPS / "fleurs-fr-002.ogg", CLIPS / "fleurs-fr-002.txt", "fr", None, 0.6),
]
CLIP_NAMES = [name for name, *_ in ASSEMBLY if name != "noise"]


def noise(seconds: float) -> np.ndarray:
    """White noise at -40 dBFS, then brown noise and a 50 Hz hum: sound, no speech."""
    rng = np.random.default_rng(12)
    count = int(seconds * SAMPLE_RATE) // 3
    white = rng.standard_normal(count)
    brown = np.cumsum(rng.standard_normal(count))
    brown -= np.convolve(brown, np.ones(800) / 800, mode="same")
    hum = np.sin(2 * np.pi * 50 * np.arange(count) / SAMPLE_RATE) + 0.05 * rng.standard_normal(count)
    parts = [part / np.sqrt(np.mean(part ** 2)) * 10 ** (level / 20)
             for part, level in ((white, -40), (brown, -45), (hum, -50))]
    return (np.concatenate(parts) * 32767).astype(np.int16)


def clip_samples(recording: Path, kept: float | None) -> np.ndarray:
    samples = decode(recording, probe(recording), SAMPLE_RATE, stereo=False)[:, 0]
    return samples[: int(kept * SAMPLE_RATE)] if kept else samples


def assemble(path: Path) -> dict[str, tuple[float, float]]:
    """The clips of ASSEMBLY one after another, 0.5 s apart, into ``path``; where each lies."""
    places, parts, at = {}, [], 0
    for name, recording, _, _, kept, _ in ASSEMBLY:
        part = noise(NOISE_SECONDS) if recording is None else clip_samples(recording, kept)
        places[name] = (at / SAMPLE_RATE, (at + len(part)) / SAMPLE_RATE)
        parts += [part, np.zeros(int(PAUSE_SECONDS * SAMPLE_RATE), np.int16)]
        at += len(part) + int(PAUSE_SECONDS * SAMPLE_RATE)
    wavfile.write(path, SAMPLE_RATE, np.concatenate(parts))
    return places


def level(samples: np.ndarray) -> float:
    """The level of loud speech in ``samples``: the 95th percentile of its 10 ms frames, dBFS."""
    return float(np.percentile(frame_levels(samples, SAMPLE_RATE), 95))


@pytest.fixture(scope="session")
def longform(tmp_path_factory):
    """A 2-minute French/English recording with the soft voice and noise in it, transcribed
    once by `podarchive transcribe` with language "auto"."""
    root = copy_archive(tmp_path_factory.mktemp("longform"), slugs=[])
    folder = root / "episodes" / "assembled"
    folder.mkdir(parents=True)
    places = assemble(folder / "assembled.wav")
    (folder / "episode.toml").write_text(
        'title = "Assembled"\ndate = 2025-01-01\nlanguage = "auto"\naudio = "assembled.wav"\n', "utf-8")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PODARCHIVE_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))
        result = CliRunner().invoke(cli, ["--archive", str(root), "transcribe"])
    assert result.exit_code == 0, result.output
    data = json.loads((folder / "transcript.json").read_text("utf-8"))
    return Transcript.from_json(data), places, result.output


def words_between(transcript: Transcript, start: float, end: float) -> list[tuple[Word, str]]:
    return [(word, segment.language) for segment in transcript.segments for word in segment.words
            if start - 0.25 <= (word.start + word.end) / 2 < end + 0.25]


def test_the_soft_voice_is_forty_decibels_below_the_others():
    """The assembly's premise, measured: fleurs-fr-000 is far below every other clip."""
    levels = {name: level(clip_samples(recording, kept)) for name, recording, _, _, kept, _ in ASSEMBLY
              if recording is not None}
    others = [value for name, value in levels.items() if name != "fleurs-fr-000"]
    assert levels["fleurs-fr-000"] < -50
    assert np.median(others) - levels["fleurs-fr-000"] > 35, levels
    assert min(others) - levels["fleurs-fr-000"] > 20, levels


def test_the_soft_voice_is_found_once_lifted_to_speech_level():
    quiet = as_float(clip_samples(CLIPS / "fleurs-fr-000.ogg", None))
    loud = as_float(clip_samples(EPISODES / "kennedy-inaugural-1961/jfk.flac", None))
    # Beside a loud voice, as in a recording, the soft one is missed as it is...
    both = np.concatenate([loud, np.zeros(SAMPLE_RATE // 2, np.float32), quiet])
    soft_start = (len(loud) + SAMPLE_RATE // 2) / SAMPLE_RATE
    heard = [r for r in speech_regions(both, SAMPLE_RATE) if r.end > soft_start]
    lifted = at_speech_level(both, SAMPLE_RATE)
    heard_lifted = [r for r in speech_regions(lifted, SAMPLE_RATE) if r.end > soft_start]
    assert sum(r.end - max(r.start, soft_start) for r in heard_lifted) > 6.0
    assert sum(r.end - max(r.start, soft_start) for r in heard_lifted) > 2 * sum(
        r.end - max(r.start, soft_start) for r in heard)
    # ...lifted by about the 40 dB it lacks, while the loud voice is left as it was.
    cut = len(loud)
    assert level(lifted[cut + SAMPLE_RATE // 2:]) - level(both[cut + SAMPLE_RATE // 2:]) > 30
    assert abs(level(lifted[:cut - SAMPLE_RATE]) - level(both[:cut - SAMPLE_RATE])) < 3


def test_lifting_never_lowers_nor_lifts_past_its_bound():
    rng = np.random.default_rng(3)
    samples = (rng.standard_normal(SAMPLE_RATE * 4) * 1e-6).astype(np.float32)  # -120 dBFS hiss
    samples[SAMPLE_RATE:2 * SAMPLE_RATE] *= 1e5  # a loud second (-20 dBFS)
    lifted = at_speech_level(samples, SAMPLE_RATE)
    ratio = np.abs(lifted[samples != 0]) / np.abs(samples[samples != 0])
    assert ratio.min() >= 1 - 1e-5
    assert ratio.max() <= 10 ** (MAX_GAIN_DB / 20) * (1 + 1e-5)
    assert np.abs(lifted).max() <= 1.0


@pytest.mark.parametrize("count", [0, 1, 159, 160, 161])
def test_recordings_shorter_than_a_frame_are_left_as_they_are(count):
    samples = np.full(count, 0.001, np.float32)
    assert at_speech_level(samples, SAMPLE_RATE).shape == (count,)


def test_pure_noise_holds_no_speech_even_lifted():
    lifted = at_speech_level(as_float(noise(NOISE_SECONDS)), SAMPLE_RATE)
    assert speech_regions(lifted, SAMPLE_RATE) == []


regions_strategy = st.lists(
    st.tuples(st.floats(0.05, 30.0), st.floats(0.0, 6.0), st.sampled_from(["fr", "en", "de"])),
    max_size=40,
).map(lambda items: _regions(items))


def _regions(items) -> list[Region]:
    regions, at = [], 0.0
    for length, pause, language in items:
        regions.append(Region(at + pause, at + pause + length, language))
        at += pause + length
    return regions


@given(regions_strategy)
def test_a_window_holds_one_language_and_at_most_thirty_seconds_of_speech(regions):
    windows = decoding_windows(regions)
    assert [region for window in windows for region in window] == regions
    for window in windows:
        assert len({region.language for region in window}) == 1
        assert sum(region.seconds for region in window) <= WINDOW_SECONDS + 1e-9
    for before, after in itertools.pairwise(windows):
        # A new window only where it had to start: a switch, or no room for the next region.
        assert (before[-1].language != after[0].language
                or sum(region.seconds for region in [*before, after[0]]) > WINDOW_SECONDS)


@given(st.lists(st.floats(0.5, WINDOW_SECONDS), max_size=40), st.integers(1, 8))
def test_windows_are_batched_by_length_each_once(seconds, size):
    batches = batches_by_length(seconds, size)
    assert sorted(n for batch in batches for n in batch) == list(range(len(seconds)))
    assert all(0 < len(batch) <= size for batch in batches)
    ordered = [seconds[n] for batch in batches for n in batch]
    assert ordered == sorted(ordered)


def test_short_windows_are_not_encoded_at_the_length_of_long_ones():
    # An episode's last windows: three short, six long. Cut into sixes in order, the
    # short ones went with three long ones and were encoded at 30 s.
    seconds = [4.0, 5.0, 7.0, 22.0, 28.0, 29.0, 30.0, 30.0, 30.0]
    assert batches_by_length(seconds, 6) == [[0, 1, 2], [3, 4, 5, 6, 7, 8]]


def test_a_region_with_far_fewer_words_than_its_speech_time_is_undertranscribed():
    region = Region(10.0, 20.0)
    words = [Word(f"w{n}", 10.0 + n * 0.65, 10.4 + n * 0.65, 0.9) for n in range(15)]  # 1.5 a second
    assert not undertranscribed(region, words)
    assert undertranscribed(region, words[:10])  # a third of its speech left out
    assert not undertranscribed(Region(10.0, 10.8), [])  # too short to say
    assert undertranscribed(Region(12.0, 18.0), words, offset=-100.0)
    # A gap is speech with no word at all: a second holding one word is none.
    assert untranscribed(Region(30.0, 32.5), words) and not untranscribed(region, words[:1])
    assert not untranscribed(Region(12.0, 12.9), [])


def test_nearby_gaps_are_reported_as_one():
    assert merged_gaps([Gap(30.0, 34.0), Gap(10.0, 12.0), Gap(12.5, 15.0)]) == [
        Gap(10.0, 15.0), Gap(30.0, 34.0)]


@pytest.mark.model
def test_every_clip_of_a_long_bilingual_recording_is_transcribed(longform):
    transcript, places, _ = longform
    assert transcript.options["speech_regions"] == SPEECH_REGIONS_METHOD
    references = {name: (reference, language, ceiling)
                  for name, _, reference, language, _, ceiling in ASSEMBLY if reference}
    report = {}
    for name in CLIP_NAMES:
        reference, language, ceiling = references[name]
        expected = normalise(reference.read_text("utf-8"))
        heard = words_between(transcript, *places[name])
        said = normalise(" ".join(word.text for word, _ in heard))
        coverage = min(1.0, len(said.split()) / len(expected.split()))
        wer = jiwer.wer(expected, said) if said else 1.0
        in_language = sum(code == language for _, code in heard) / max(1, len(heard))
        report[name] = (round(coverage, 2), round(wer, 2), round(in_language, 2))
    print(report)
    for name, (coverage, wer, in_language) in report.items():
        ceiling = references[name][2]
        assert coverage >= 0.8, (name, report)
        assert wer <= ceiling, (name, report)
        assert in_language >= 0.8, (name, report)


@pytest.mark.model
def test_noise_yields_no_words_and_no_gap(longform):
    transcript, places, output = longform
    start, end = places["noise"]
    assert words_between(transcript, start + 0.3, end - 0.3) == []
    assert not [gap for gap in transcript.gaps if gap.start < end and gap.end > start]
    assert "speech not transcribed" not in output


def test_a_transcript_made_before_the_guard_is_stale(tmp_path):
    """The method is recorded in the options: the next run transcribes older transcripts again."""
    root = copy_archive(tmp_path / "a", slugs=["kennedy-inaugural-1961"])
    archive = load_archive(root)
    episode = archive.episode("kennedy-inaugural-1961")
    options = decoding_options(archive, episode, TranscribeOptions(), Placement())
    transcript = write_transcript(root, episode.slug, [])
    transcript.model, transcript.options = "embedded:whisper-base", options.recorded()
    assert is_up_to_date(transcript, transcript.audio_sha256, transcript.model, options)
    older = {**{k: v for k, v in options.recorded().items() if k != "speech_regions"}, "vad_filter": True}
    transcript.options = older
    assert not is_up_to_date(transcript, transcript.audio_sha256, transcript.model, options)


def _reviewed(root: Path, slug: str, words: list[Word], gaps: list[Gap], options: dict) -> None:
    transcript = write_transcript(root, slug, [Segment(0, words[0].start, words[-1].end,
                                                       " ".join(w.text for w in words), words=words)])
    transcript.reviewed, transcript.gaps, transcript.options = True, gaps, options
    transcript.timing_sha256 = transcript.words_digest()
    (root / "episodes" / slug / "transcript.json").write_text(json.dumps(transcript.to_json()), "utf-8")


def test_run_and_check_report_recorded_gaps_and_keep_a_reviewed_transcript(tmp_path):
    root = copy_archive(tmp_path / "a", slugs=["kennedy-inaugural-1961"])
    slug = "kennedy-inaugural-1961"
    words = [Word("And", 0.3, 0.5, 1.0), Word("so,", 0.5, 0.9, 1.0)]
    _reviewed(root, slug, words, [Gap(192.0, 204.5)], {"speech_regions": SPEECH_REGIONS_METHOD})
    before = (root / "episodes" / slug / "transcript.json").read_bytes()
    for command in (["check"], ["transcribe"]):
        result = CliRunner().invoke(cli, ["--archive", str(root), *command])
        assert result.exit_code == 0, result.output
        assert f"warning: episodes/{slug}: 00:03:12–00:03:24 speech not transcribed" in result.output
    assert (root / "episodes" / slug / "transcript.json").read_bytes() == before


def test_a_reviewed_transcript_from_before_gaps_has_its_untranscribed_speech_found(tmp_path):
    """Reviewed, it is never transcribed again: the speech its words leave out is found
    from the recording (jfk.flac: speech from 0.3 s to 10.6 s; the words cover 0-4 s)."""
    root = copy_archive(tmp_path / "a", slugs=["kennedy-inaugural-1961"])
    slug = "kennedy-inaugural-1961"
    words = [Word(text, 0.3 + 0.4 * n, 0.6 + 0.4 * n, 1.0)
             for n, text in enumerate(["And", "so", "my", "fellow", "Americans", "ask", "not", "what", "your"])]
    _reviewed(root, slug, words, [], {"vad_filter": True})
    result = CliRunner().invoke(cli, ["--archive", str(root), "check"])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if "speech not transcribed" in line]
    assert lines and all(line.startswith(f"warning: episodes/{slug}: 00:00:0") for line in lines), lines
    # The same words over the whole recording leave nothing out.
    spread = [Word(w.text, 0.5 + 1.1 * n, 1.3 + 1.1 * n, 1.0) for n, w in enumerate(words)]
    _reviewed(root, slug, spread, [], {"vad_filter": True})
    result = CliRunner().invoke(cli, ["--archive", str(root), "check"])
    assert "speech not transcribed" not in result.output, result.output


def test_words_a_producer_puts_in_a_gap_close_it(tmp_path):
    root = copy_archive(tmp_path / "a", slugs=["kennedy-inaugural-1961"])
    slug = "kennedy-inaugural-1961"
    words = [Word(text, 0.3 + 0.5 * n, 0.7 + 0.5 * n, 1.0) for n, text in enumerate(["And", "so", "my", "fellow"])]
    _reviewed(root, slug, words, [Gap(2.5, 5.0), Gap(7.0, 9.0)], {"speech_regions": SPEECH_REGIONS_METHOD})
    path = root / "episodes" / slug / "transcript.json"
    data = json.loads(path.read_text("utf-8"))
    added = [{"text": text, "start": 2.6 + 0.5 * n, "end": 2.9 + 0.5 * n, "probability": 1.0}
             for n, text in enumerate(["Americans", "ask", "not", "what", "your"])]
    data["segments"][0]["words"] += added
    data["segments"][0]["end"] = 5.0
    data["segments"][0]["text"] = " ".join(w["text"] for w in data["segments"][0]["words"])
    path.write_text(json.dumps(data), "utf-8")
    result = CliRunner().invoke(cli, ["--archive", str(root), "align"])
    assert result.exit_code == 0, result.output
    assert Transcript.from_json(json.loads(path.read_text("utf-8"))).gaps == [Gap(7.0, 9.0)]


@pytest.mark.parametrize("gaps, field", [
    ([{"start": 5.0, "end": 4.0}], "gaps[0].end"),
    ([{"start": -1.0, "end": 4.0}], "gaps[0].end"),
    ([{"start": 1.0}], "gaps[0].end"),
    ([{"start": 1.0, "end": "soon"}], "gaps[0].end"),
    ([{"start": 1.0, "end": 2.0, "why": "music"}], "gaps[0].why"),
    ({"start": 1.0, "end": 2.0}, "gaps"),
])
def test_a_hand_edited_gap_that_makes_no_sense_is_refused_by_name(tmp_path, gaps, field):
    root = copy_archive(tmp_path / "a", slugs=["kennedy-inaugural-1961"])
    write_transcript(root, "kennedy-inaugural-1961", [])
    path = root / "episodes" / "kennedy-inaugural-1961" / "transcript.json"
    data = json.loads(path.read_text("utf-8"))
    data["gaps"] = gaps
    path.write_text(json.dumps(data), "utf-8")
    result = CliRunner().invoke(cli, ["--archive", str(root), "check"])
    assert result.exit_code == 1
    assert f"transcript.json: {field}:" in result.output, result.output
