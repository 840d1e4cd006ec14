"""Diarization: who speaks when on a one-track recording (pipeline/speakers.py)."""

import importlib.util
import json
import shutil
import tomllib
from pathlib import Path

import numpy as np
import pytest
import webvtt
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree
from scipy.io import wavfile

from pipeline.archive import load_archive, load_episode
from pipeline.audio import SAMPLE_RATE, as_float, decode, probe
from pipeline.cli import cli
from pipeline.errors import PodarchiveError
from pipeline.feed import PODCAST_NS
from pipeline.model import Segment, Transcript, Turn, Word
from pipeline.privacy import public_view
from pipeline.search import search
from pipeline.speakers import (
    SAME_VOICE_SIMILARITY,
    SpeakerOptions,
    cluster_voices,
    heard_by_segmentation,
    speaker_options,
    voice_names,
    voices_of_words,
)
from pipeline.speech import at_speech_level, speech_regions
from pipeline.transcribe import with_voices

from conftest import REPO, copy_archive, write_transcript

CLIPS = REPO / "tests" / "data" / "clips"
BENCH = importlib.util.spec_from_file_location("bench_diarization", REPO / "bench" / "diarization.py")
bench = importlib.util.module_from_spec(BENCH)
BENCH.loader.exec_module(bench)


# --- the measure the bench reports --------------------------------------------------------


def test_diarization_error_rate_on_hand_made_cases():
    reference = [(0.0, 10.0, "a"), (10.0, 20.0, "b")]
    assert bench.diarization_error_rate(reference, [(0.0, 10.0, "x"), (10.0, 20.0, "y")], collar=0) == 0
    # Names do not matter, the one-to-one mapping does: 5 s of b said to be a's voice.
    assert bench.diarization_error_rate(
        reference, [(0.0, 10.0, "x"), (10.0, 15.0, "y"), (15.0, 20.0, "x")], collar=0) == pytest.approx(0.25)
    # 2 s missed, 1 s of speech where there is none (20 to 21 s).
    assert bench.diarization_error_rate(
        reference, [(0.0, 8.0, "x"), (10.0, 21.0, "y")], collar=0) == pytest.approx(0.15)
    # A boundary 0.2 s late lies inside the collar: no error.
    assert bench.diarization_error_rate(reference, [(0.0, 10.2, "x"), (10.2, 20.0, "y")]) == 0
    assert bench.diarization_error_rate(reference, [(0.0, 10.2, "x"), (10.2, 20.0, "y")], collar=0) > 0


# --- names ------------------------------------------------------------------------------


def _words(*spans):
    return [Word("w", start, end, 1.0) for start, end in spans]


def test_voices_are_named_after_persons_in_the_order_they_first_speak():
    options = SpeakerOptions(count=None, persons=("Ana", "Bo"), voice_at=(), renames=())
    assert voice_names(options, [0, 1, 0, 2], _words((0, 1), (1, 2), (2, 3), (3, 4))) == ["Ana", "Bo", "Speaker 3"]


def test_voice_at_names_the_voice_heard_then_and_renames_come_last():
    words = _words((0, 1), (1, 2), (2, 3))
    options = SpeakerOptions(count=None, persons=("Ana", "Bo"), voice_at=(("Bo", 0.4),),
                             renames=(("Ana", "Ana B."),))
    assert voice_names(options, [0, 1, 0], words) == ["Bo", "Ana B."]


def _episode(tmp_path: Path, extra: str) -> Path:
    folder = tmp_path / "episodes" / "talk"
    folder.mkdir(parents=True, exist_ok=True)
    wavfile.write(folder / "talk.wav", SAMPLE_RATE, np.zeros(SAMPLE_RATE * 5, np.int16))
    (folder / "episode.toml").write_text(f'title = "T"\ndate = 2025-01-01\naudio = "talk.wav"\n{extra}', "utf-8")
    return folder


@pytest.mark.parametrize(("extra", "diarized", "count"), [
    ('[[persons]]\nname = "A"\n[[persons]]\nname = "B"\n', True, None),
    ('[[persons]]\nname = "A"\n', False, None),
    ("speakers = 3\n", True, 3),
    ('speakers = "auto"\n', True, None),
    ('speakers = 1\n[[persons]]\nname = "A"\n[[persons]]\nname = "B"\n', False, None),
    ('speakers = {"Speaker 2" = "Bo"}\n', True, None),
    ('[[persons]]\nname = "A"\nchannel = 1\n[[persons]]\nname = "B"\nchannel = 2\n', False, None),
])
def test_which_episodes_are_diarized(tmp_path, extra, diarized, count):
    options = speaker_options(load_episode(_episode(tmp_path, extra)))
    assert (options is not None) == diarized
    if options:
        assert options.count == count


@settings(max_examples=60, deadline=None)
@given(st.one_of(st.integers(-5, 40), st.text(max_size=8), st.booleans(), st.floats(allow_nan=False),
                 st.dictionaries(st.text(max_size=6), st.one_of(st.text(max_size=6), st.integers()), max_size=3)))
def test_a_bad_speakers_value_is_an_error_naming_the_key(tmp_path_factory, value):
    folder = _episode(tmp_path_factory.mktemp("e"), "")
    toml = (folder / "episode.toml").read_text("utf-8")
    (folder / "episode.toml").write_text(toml + _toml_line("speakers", value), "utf-8")
    try:
        tomllib.loads((folder / "episode.toml").read_text("utf-8"))
    except tomllib.TOMLDecodeError:
        return
    try:
        episode = load_episode(folder)
    except PodarchiveError as error:
        assert "speakers" in str(error) and "episode.toml" in str(error)
        return
    assert episode.speakers == "auto" or isinstance(episode.speakers, int) and 1 <= episode.speakers <= 20


def _toml_line(key, value) -> str:
    if isinstance(value, dict):
        return f"{key} = {{{', '.join(f'{json.dumps(k)} = {json.dumps(v)}' for k, v in value.items())}}}\n"
    return f"{key} = {json.dumps(value)}\n"


def test_voice_at_past_the_end_is_an_error(tmp_path):
    folder = _episode(tmp_path, '[[persons]]\nname = "A"\nvoice_at = 12.0\n[[persons]]\nname = "B"\n')
    with pytest.raises(PodarchiveError, match=r"persons\[1\]\.voice_at.*past the end"):
        load_episode(folder)


# --- real conversations through `podarchive transcribe` -----------------------------------


def _samples(path: Path) -> np.ndarray:
    return as_float(decode(path, probe(path), SAMPLE_RATE, stereo=False)[:, 0])


def _regions(path: Path) -> list[np.ndarray]:
    audio = _samples(path)
    return [audio[int(r.start * SAMPLE_RATE):int(r.end * SAMPLE_RATE)]
            for r in speech_regions(at_speech_level(audio, SAMPLE_RATE), SAMPLE_RATE)]


def _conversation(first: Path, second: Path, turns: int) -> tuple[np.ndarray, list[tuple[float, float, int]]]:
    """``first`` and ``second`` taking turns, a speech region or two each, 0.4 s apart."""
    voices = [_regions(first), _regions(second)]
    pieces, reference, now = [], [], 0.0
    for turn in range(turns):
        who = turn % 2
        for _ in range(1 + turn % 3 // 2):
            if not voices[who]:
                break
            clip = voices[who].pop(0)
            clip = clip / (np.sqrt(np.mean(clip ** 2)) + 1e-9) * 0.05
            pieces += [np.zeros(int(0.4 * SAMPLE_RATE), np.float32), clip]
            reference.append((now + 0.4, now + 0.4 + len(clip) / SAMPLE_RATE, who))
            now += 0.4 + len(clip) / SAMPLE_RATE
    return np.concatenate(pieces), reference


def _write_episode(root: Path, slug: str, audio: np.ndarray, toml: str) -> None:
    folder = root / "episodes" / slug
    folder.mkdir(parents=True)
    wavfile.write(folder / "talk.wav", SAMPLE_RATE, (np.clip(audio, -1, 1) * 32767).astype(np.int16))
    (folder / "episode.toml").write_text(
        f'title = "{slug}"\ndate = 2025-01-01\naudio = "talk.wav"\nlanguage = "auto"\n{toml}', "utf-8")


TWO_PERSONS = '[[persons]]\nname = "Interviewer"\nrole = "interviewer"\n[[persons]]\nname = "Narrator"\n'
EJ_FRA = REPO / "episodes" / "eric-joanis-readalongs" / "ej-fra.m4a"
JFK = REPO / "episodes" / "kennedy-inaugural-1961" / "jfk.flac"
STEREO = REPO / "episodes" / "two-voices-stereo" / "stereo_diarization.wav"


@pytest.fixture(scope="session")
def conversations(tmp_path_factory):
    """An archive of two short two-voice conversations, three-speakers-en.wav, one voice
    listed as two persons and stereo_diarization.wav downmixed, transcribed once."""
    root = copy_archive(tmp_path_factory.mktemp("voices"), ["kennedy-inaugural-1961"])
    references = {}
    for slug, first, second in (("ej-and-jfk", EJ_FRA, JFK),
                                ("sonnet-and-fleurs", CLIPS / "sonnet001.mp3", CLIPS / "fleurs-fr-001.ogg")):
        audio, references[slug] = _conversation(first, second, 8)
        _write_episode(root, slug, audio, TWO_PERSONS)
    _write_episode(root, "three-voices", _samples(CLIPS / "three-speakers-en.wav"), 'speakers = "auto"\n')
    one = np.concatenate(_regions(CLIPS / "sonnet001.mp3")[:6])
    _write_episode(root, "one-voice", one, TWO_PERSONS)
    _write_episode(root, "over-each-other", _samples(STEREO), 'speakers = "auto"\n')
    result = CliRunner().invoke(cli, ["--archive", str(root), "transcribe"])
    assert result.exit_code == 0, result.output
    return root, references, result.output


def _transcript(root: Path, slug: str) -> Transcript:
    return Transcript.from_json(json.loads((root / "episodes" / slug / "transcript.json").read_text("utf-8")))


@pytest.mark.model
@pytest.mark.parametrize("slug", ["ej-and-jfk", "sonnet-and-fleurs"])
def test_each_word_is_said_by_the_voice_that_says_it(conversations, slug):
    root, references, _ = conversations
    transcript = _transcript(root, slug)
    names = {0: "Interviewer", 1: "Narrator"}  # the first voice heard is the first person listed
    right = total = 0
    for segment in transcript.segments:
        assert segment.speaker in names.values()
        for word in segment.words:
            middle = (word.start + word.end) / 2
            who = [voice for start, end, voice in references[slug] if start - 0.2 <= middle <= end + 0.2]
            if who:
                total += 1
                right += names[who[0]] == segment.speaker
    assert total > 60
    # Measured: every word right on both; a word or two at a turn's edge may move.
    assert right / total >= 0.95, (right, total)
    assert {turn.speaker for turn in transcript.turns} == {"Interviewer", "Narrator"}
    assert transcript.options["speakers"]["count"] == "auto"


@pytest.mark.model
def test_captions_search_and_turns_follow_the_voices(conversations, tmp_path):
    root, _, _ = conversations
    result = CliRunner().invoke(cli, ["--archive", str(root), "run"])
    assert result.exit_code == 0, result.output
    captions = webvtt.read(str(root / "feed" / "episodes" / "ej-and-jfk" / "transcript.vtt"))
    voices = {caption.voice for caption in captions if caption.voice}
    assert voices == {"Interviewer", "Narrator"}
    hits = search(root, "country", speaker="Narrator")
    assert hits and all(hit["speaker"] == "Narrator" for hit in hits)
    assert not search(root, "country", speaker="Interviewer", episode="ej-and-jfk")


@pytest.mark.model
def test_three_voices_are_found_in_three_speakers_en(conversations):
    root, _, _ = conversations
    transcript = _transcript(root, "three-voices")
    assert {segment.speaker for segment in transcript.segments} == {"Speaker 1", "Speaker 2", "Speaker 3"}


@pytest.mark.model
def test_one_voice_listed_as_two_persons_is_said(conversations):
    root, _, output = conversations
    transcript = _transcript(root, "one-voice")
    assert {segment.speaker for segment in transcript.segments} == {"Interviewer"}
    assert "one-voice" in output and "2 persons listed, 1 voice heard" in output


@pytest.mark.model
def test_two_voices_talking_over_each_other_are_found_without_a_count(conversations):
    root, _, _ = conversations
    transcript = _transcript(root, "over-each-other")
    assert [segment.speaker for segment in transcript.segments] == ["Speaker 1", "Speaker 2"]
    assert [turn.speaker for turn in transcript.turns] == ["Speaker 1", "Speaker 2"]


@pytest.mark.model
def test_renaming_finds_voices_again_and_keeps_a_producers_correction(conversations, tmp_path):
    root, _, _ = conversations
    work = tmp_path / "archive"
    shutil.copytree(root, work)
    path = work / "episodes" / "ej-and-jfk" / "transcript.json"
    data = json.loads(path.read_text("utf-8"))
    corrected = next(n for n, segment in enumerate(data["segments"]) if segment["speaker"] == "Interviewer")
    data["segments"][corrected]["speaker"] = "Narrator"
    corrected_text = data["segments"][corrected]["text"]
    path.write_text(json.dumps(data), "utf-8")
    toml = work / "episodes" / "ej-and-jfk" / "episode.toml"
    toml.write_text('speakers = {"Interviewer" = "Éric"}\n' + toml.read_text("utf-8"), "utf-8")

    result = CliRunner().invoke(cli, ["--archive", str(work), "transcribe"])
    assert result.exit_code == 0, result.output
    assert "ej-and-jfk: voices found again" in result.output
    transcript = _transcript(work, "ej-and-jfk")
    assert {segment.speaker for segment in transcript.segments} == {"Éric", "Narrator"}
    kept = [segment for segment in transcript.segments if segment.text == corrected_text]
    assert kept and kept[0].speaker == "Narrator"
    # Nothing else changed: the words are the ones transcribed before.
    before = _transcript(root, "ej-and-jfk")
    assert [w.text for s in transcript.segments for w in s.words] == [w.text for s in before.segments for w in s.words]

    again = CliRunner().invoke(cli, ["--archive", str(work), "transcribe"])
    assert "voices found again" not in again.output
    assert _transcript(work, "ej-and-jfk").segments == transcript.segments


# --- input that is not a conversation -----------------------------------------------------


def _every(seconds: float, until: float) -> list[Word]:
    return [Word("w", start, start + seconds * 0.9, 1.0) for start in np.arange(0.0, until - seconds, seconds)]


def test_ten_minutes_of_music_give_an_answer_without_crashing():
    rng = np.random.default_rng(3)
    seconds = 600
    t = np.arange(seconds * SAMPLE_RATE) / SAMPLE_RATE
    chords = [(220.0, 277.2, 329.6), (196.0, 246.9, 293.7), (174.6, 220.0, 261.6)]
    music = np.zeros_like(t, dtype=np.float32)
    for bar in range(seconds // 2):  # a chord every two seconds, a little noise under it
        span = slice(bar * 2 * SAMPLE_RATE, (bar + 1) * 2 * SAMPLE_RATE)
        music[span] = sum(np.sin(2 * np.pi * f * t[span]) for f in chords[bar % 3]) * 0.1
    music += rng.normal(0, 0.005, len(music)).astype(np.float32)
    words = _every(0.4, seconds)
    voices = voices_of_words(music, words)
    assert len(voices) == len(words)
    assert voices[0] == 0 and max(voices) < 4


def test_silence_words_past_the_end_and_a_single_word_give_an_answer():
    silence = np.zeros(SAMPLE_RATE * 120, np.float32)
    words = [Word("a", 1.0, 1.3, 1.0), Word("b", 100.0, 100.4, 1.0), Word("c", 119.9, 125.0, 1.0)]
    assert voices_of_words(silence, words) == [0, 0, 0]
    assert voices_of_words(silence, words[:1]) == [0]
    assert voices_of_words(silence, []) == []


@pytest.mark.parametrize("count", [None, 2])
def test_voices_talking_over_each_other_without_a_pause_are_two(count):
    audio = _samples(STEREO)  # downmixed: the second voice talks over the first from 0.3 to 2.4 s
    # As whisper times it: words from 0.3 to 4.7 s without a pause, a single piece of speech.
    words = [word for word in _every(0.3, len(audio) / SAMPLE_RATE) if word.start >= 0.3]
    voices = voices_of_words(audio, words, count)
    assert len(voices) == len(words) and set(voices) == {0, 1}
    assert voices == sorted(voices)  # one turn each


def test_segmentation_hears_two_people_only_where_two_talk():
    assert heard_by_segmentation(_samples(STEREO)).together == 2
    assert heard_by_segmentation(_samples(CLIPS / "three-speakers-en.wav")).together >= 2
    for one_voice in (JFK, EJ_FRA, CLIPS / "sonnet001.mp3", CLIPS / "fleurs-fr-001.ogg"):
        assert heard_by_segmentation(_samples(one_voice)).together == 1, one_voice
    for nothing in (np.zeros(SAMPLE_RATE // 2, np.int16), np.zeros(0, np.float32)):
        heard = heard_by_segmentation(nothing)
        assert heard.together == 1 and len(heard.changes) == 0


def test_a_turn_taken_without_a_pause_is_heard_and_cuts_the_piece_there():
    first, second = _regions(JFK)[0], _regions(CLIPS / "sonnet001.mp3")[1]
    first, second = (clip / (np.sqrt(np.mean(clip ** 2)) + 1e-9) * 0.05 for clip in (first, second))
    audio = np.concatenate([np.zeros(SAMPLE_RATE, np.float32), first, second, np.zeros(SAMPLE_RATE, np.float32)])
    taken_over = 1 + len(first) / SAMPLE_RATE
    changes = heard_by_segmentation(audio).changes
    assert len(changes) >= 1 and min(abs(changes - taken_over)) < 0.3, (changes, taken_over)
    words = [word for word in _every(0.3, len(audio) / SAMPLE_RATE) if 1.0 <= word.start < len(audio) / SAMPLE_RATE - 1]
    voices = voices_of_words(audio, words, count=2)
    # Cut every 3 s only, the piece from 1.2 to 4.2 s would give sonnet's first words to JFK.
    said_first = [voice for word, voice in zip(words, voices) if word.end < taken_over]
    said_second = [voice for word, voice in zip(words, voices) if word.start > taken_over]
    assert set(said_first) == {0} and set(said_second) == {1}


@pytest.mark.parametrize("similarity, voices", [(SAME_VOICE_SIMILARITY - 0.03, 2), (SAME_VOICE_SIMILARITY + 0.02, 1)])
def test_two_pieces_are_one_voice_only_when_more_alike_than_one_voice(similarity, voices):
    embeddings = np.zeros((2, 256), np.float32)
    embeddings[0, 0] = 1.0
    embeddings[1, :2] = similarity, np.sqrt(1 - similarity ** 2)
    assert len(set(cluster_voices(embeddings, np.array([2.5, 2.5])))) == voices


def test_a_withheld_persons_name_leaves_the_public_view_with_diarizations_turns(tmp_path):
    root = copy_archive(tmp_path, ["kennedy-inaugural-1961"])
    toml = root / "episodes" / "kennedy-inaugural-1961" / "episode.toml"
    toml.write_text('redact = ["Ana Lima"]\n' + toml.read_text("utf-8"), "utf-8")
    transcript = write_transcript(root, "kennedy-inaugural-1961", [
        Segment(0, 0.0, 2.0, "And so", "Ana Lima", "en", [Word("And", 0.0, 0.5, 1.0), Word("so", 0.6, 1.0, 1.0)])])
    transcript.turns = [Turn(0.0, 2.0, "Ana Lima")]
    transcript.options = {"speakers": {"persons": ["Ana Lima"]}, "language": "en"}
    transcript.timing_sha256 = transcript.words_digest()
    path = root / "episodes" / "kennedy-inaugural-1961" / "transcript.json"
    path.write_text(json.dumps(transcript.to_json()), "utf-8")

    view = public_view(load_archive(root))
    public = view.episodes[0].transcript
    assert public.turns == [] and "speakers" not in public.options and public.options["language"] == "en"
    assert "Ana" not in json.dumps(public.to_json())


def test_the_feed_credits_voices_as_renamed_and_never_a_withheld_name(tmp_path):
    slug = "kennedy-inaugural-1961"
    root = copy_archive(tmp_path, [slug])
    toml = root / "episodes" / slug / "episode.toml"
    listed = toml.read_text("utf-8") + '[[persons]]\nname = "Narrator"\nrole = "host"\n'
    toml.write_text(listed, "utf-8")
    said = {"John F. Kennedy": "And so", "Nora": "my fellow", "Ana Lima": "Americans", "Speaker 4": "ask not"}
    write_transcript(root, slug, [
        Segment(n, 2.0 * n, 2.0 * n + 1.5, text, speaker, "en",
                [Word(word, 2.0 * n + 0.5 * k, 2.0 * n + 0.5 * k + 0.4, 1.0) for k, word in enumerate(text.split())])
        for n, (speaker, text) in enumerate(said.items())])

    def credited(redact: str = "") -> list[tuple[str, str]]:
        renames = 'speakers = {"Narrator" = "Nora", "Speaker 3" = "Ana Lima", "Speaker 5" = "Bo"}\n'
        toml.write_text(redact + renames + listed, "utf-8")
        for stage in ("render", "feed"):  # not `run`: the hand-made voices would be found again
            result = CliRunner().invoke(cli, ["--archive", str(root), stage])
            assert result.exit_code == 0, result.output
        item = etree.parse(str(root / "feed" / "feed.xml")).find("channel/item")
        return [(person.text, person.get("role")) for person in item.iter(f"{{{PODCAST_NS}}}person")]

    # Bo is named but never heard; "Speaker 4" has no name to credit.
    assert credited() == [("John F. Kennedy", "guest"), ("Nora", "host"), ("Ana Lima", "guest")]
    assert credited('redact = ["Ana Lima"]\n') == [("John F. Kennedy", "guest"), ("Nora", "host")]
    assert b"Ana" not in (root / "feed" / "feed.xml").read_bytes()


def test_voices_found_for_an_older_transcript_keep_a_speaker_set_by_hand(tmp_path):
    root = copy_archive(tmp_path, ["eric-joanis-readalongs"])
    slug = "eric-joanis-readalongs"
    toml = root / "episodes" / slug / "episode.toml"
    toml.write_text(toml.read_text("utf-8") + '[[persons]]\nname = "Second"\n', "utf-8")
    segments = [Segment(n, 4.0 * n, 4.0 * n + 3.5, "mot mot", "", "fr",
                        [Word("mot", 4.0 * n + 0.2, 4.0 * n + 1.5, 1.0), Word("mot", 4.0 * n + 1.7, 4.0 * n + 3.4, 1.0)])
                for n in range(8)]
    segments[3].speaker = "Second"  # set by a producer before voices were found
    transcript = write_transcript(root, slug, segments, language="fr", duration=34.1)
    episode = load_episode(root / "episodes" / slug)
    found = with_voices(transcript, episode, speaker_options(episode))
    corrected = [segment for segment in found.segments if segment.start == 12.0]
    assert [segment.speaker for segment in corrected] == ["Second"]
    assert {segment.speaker for segment in found.segments} <= {"Éric Joanis", "Second"}
    assert all(segment.speaker for segment in found.segments)
    assert found.options["speakers"]["persons"] == ["Éric Joanis", "Second"]
