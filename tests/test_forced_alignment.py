import datetime as dt
import html
import json
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline.align import (
    CORRECTED_TEXT,
    ForcedAligner,
    find_correction,
    map_words_to_segments,
    read_corrected_text,
)
from pipeline.archive import Episode, read_transcript
from pipeline.cli import cli
from pipeline.errors import PodarchiveError
from pipeline.model import Segment, Transcript, Word
from pipeline.storage import atomic_write_json

from conftest import REFERENCES

# --- Sharing corrected words out to the segments (no model) ------------------------------

def test_kept_and_replaced_words_stay_in_the_segment_of_the_words_they_stand_for():
    old = [["And", "so", "my", "fellow", "Amerigans,"], ["ask", "not", "what", "your", "country"]]
    new = ["And", "so", "my", "fellow", "Americans,", "ask", "not", "what", "your", "country"]
    assert map_words_to_segments(old, new) == [new[:5], new[5:]]


def test_inserted_and_deleted_words_are_shared_out_by_their_neighbours():
    old = [["And", "so", "my", "fellow", "Americans,"], ["ask", "what", "your", "really", "country"]]
    new = ["And", "my", "fellow", "Americans,", "ask", "not", "what", "your", "country"]
    assert map_words_to_segments(old, new) == [["And", "my", "fellow", "Americans,"],
                                               ["ask", "not", "what", "your", "country"]]


def test_a_word_inserted_at_a_boundary_joins_the_sentence_it_belongs_to():
    old = [["It", "ends", "here."], ["Then", "more"], ["and", "on"]]
    # after a sentence end the inserted word opens the next segment; otherwise it ends the last
    assert map_words_to_segments(old, ["It", "ends", "here.", "So", "then", "more", "words",
                                       "and", "on"]) == [
        ["It", "ends", "here."], ["So", "then", "more", "words"], ["and", "on"]]


def test_a_replacement_across_segments_keeps_the_order_of_the_words():
    old = [["a", "b", "x1"], ["x2", "c"]]
    mapped = map_words_to_segments(old, ["a", "b", "y1", "y2", "y3", "y4", "c"])
    assert [w for words in mapped for w in words] == ["a", "b", "y1", "y2", "y3", "y4", "c"]
    assert mapped[0][:2] == ["a", "b"] and mapped[1][-1] == "c"


def words_of(text: str, start: float) -> list[Word]:
    return [Word(token, round(start + 0.4 * n, 3), round(start + 0.4 * n + 0.3, 3), 0.9)
            for n, token in enumerate(text.split())]


def small_transcript() -> Transcript:
    first, second = words_of("Bonjour je suis programmable ici.", 0.5), words_of("Au revoir.", 3.0)
    transcript = Transcript("x", "fr", 5.0, "embedded:whisper-base", {}, "0" * 64, [
        Segment(0, 0.5, 2.5, "Bonjour je suis programmable ici.", "Éric", "fr", first),
        Segment(1, 3.0, 3.7, "Au revoir.", "Éric", "fr", second),
    ])
    transcript.timing_sha256 = transcript.words_digest()
    return transcript


@pytest.fixture
def episode(tmp_path) -> Episode:
    return Episode(slug="x", folder=tmp_path, title="Un titre", date=dt.date(2025, 1, 1), audio="x.wav")


def test_an_edited_segment_text_is_the_correction(episode):
    transcript = small_transcript()
    transcript.segments[0].text = "Bonjour, je suis programmeur ici."
    correction = find_correction(episode, transcript)
    assert correction.source == episode.transcript_path
    assert correction.segments == {0: ["Bonjour,", "je", "suis", "programmeur", "ici."]}
    assert find_correction(episode, small_transcript()) is None


def test_words_edited_in_place_with_the_text_left_as_it_was_are_the_correction(episode):
    transcript = small_transcript()
    transcript.segments[0].words[3].text = "programmeur"
    correction = find_correction(episode, transcript)
    assert correction.segments == {0: ["Bonjour", "je", "suis", "programmeur", "ici."]}
    # what was timed is the old word, so the segment is timed again
    assert correction.timed == {0: ["Bonjour", "je", "suis", "programmable", "ici."]}


def test_text_and_words_both_edited_and_disagreeing_are_refused(episode):
    transcript = small_transcript()
    transcript.segments[0].words[3].text = "programmeur"
    transcript.segments[0].words[0].start = 0.6
    with pytest.raises(PodarchiveError, match="segment.s. 0: the text and the words disagree"):
        find_correction(episode, transcript)


def test_emptied_words_have_their_text_timed_anew(episode):
    transcript = small_transcript()
    transcript.segments[0].words = []
    transcript.segments[0].text = "Bonjour, je suis programmeur ici."
    transcript.segments[1].words[0].start = 3.1  # a time fixed by hand elsewhere
    assert find_correction(episode, transcript).segments == {
        0: ["Bonjour,", "je", "suis", "programmeur", "ici."]}


def test_a_corrected_plain_text_applies_until_the_transcript_says_the_same(episode):
    transcript = small_transcript()
    path = episode.folder / CORRECTED_TEXT
    path.write_text("Bonjour je suis\nprogrammeur ici.\n\n  Au revoir.\n", "utf-8")
    correction = find_correction(episode, transcript)
    assert correction.source == path
    assert correction.segments == {0: ["Bonjour", "je", "suis", "programmeur", "ici."]}
    transcript.segments[0].words[3].text = "programmeur"
    transcript.segments[0].text = "Bonjour je suis programmeur ici."
    transcript.timing_sha256 = transcript.words_digest()
    assert find_correction(episode, transcript) is None
    # A later edit of transcript.json is never undone by the old transcript.txt.
    transcript.segments[1].text = "À bientôt."
    with pytest.raises(PodarchiveError, match="says other words than transcript.json"):
        find_correction(episode, transcript)


def test_the_published_layout_is_read_without_title_timestamps_and_speakers(episode):
    path = episode.folder / CORRECTED_TEXT
    path.write_text("Un titre\n\n[00:00:00] Éric: Bonjour je suis programmeur ici.\n\n"
                    "[00:00:03] Éric: Au revoir. Note: fin\n", "utf-8")
    assert read_corrected_text(path, small_transcript(), episode.title) == [
        "Bonjour", "je", "suis", "programmeur", "ici.", "Au", "revoir.", "Note:", "fin"]


def test_a_published_text_with_redacted_names_is_refused(episode):
    path = episode.folder / CORRECTED_TEXT
    path.write_text("Bonjour je suis [redacted] ici. Au revoir.", "utf-8")
    with pytest.raises(PodarchiveError, match=r"holds \[redacted\]"):
        read_corrected_text(path, small_transcript())


class NoModel(ForcedAligner):
    def whisper(self, name):
        raise AssertionError("no segment needed the model")


def transcribed_episode_copy(transcribed_archive, tmp_path: Path, slug: str) -> Path:
    """A copy of one transcribed bundled episode (an archive of one)."""
    root, _ = transcribed_archive
    for name in ("archive.toml", "cover.png"):
        shutil.copy(root / name, tmp_path / name)
    shutil.copytree(root / "episodes" / slug, tmp_path / "episodes" / slug)
    return tmp_path / "episodes" / slug / "transcript.json"


@pytest.mark.model
def test_a_change_of_case_or_punctuation_keeps_the_word_times_and_loads_no_model(
        transcribed_archive, tmp_path, monkeypatch):
    path = transcribed_episode_copy(transcribed_archive, tmp_path, "kennedy-inaugural-1961")
    before = read_transcript(path)
    data = json.loads(path.read_text("utf-8"))
    data["segments"][-1]["text"] = data["segments"][-1]["text"].upper()
    path.write_text(json.dumps(data, ensure_ascii=False), "utf-8")
    monkeypatch.setattr("pipeline.align.ForcedAligner", NoModel)
    result = CliRunner().invoke(cli, ["--archive", str(tmp_path), "align"])
    assert result.exit_code == 0, result.output
    after = read_transcript(path)
    assert after.reviewed
    assert [w.text for w in after.segments[-1].words] == data["segments"][-1]["text"].split()
    assert [(w.start, w.end) for w in after.segments[-1].words] == \
        [(w.start, w.end) for w in before.segments[-1].words]


# --- On the bundled recordings, with the model --------------------------------------------

def archive_copy(transcribed_archive, tmp_path: Path) -> Path:
    root, _ = transcribed_archive
    target = tmp_path / "archive"
    shutil.copytree(root, target, ignore=shutil.ignore_patterns("index", ".podarchive.lock"))
    return target


def transcript_path(root: Path, slug: str) -> Path:
    return root / "episodes" / slug / "transcript.json"


def as_if_whisper_wrote(root: Path, slug: str, edit) -> Transcript:
    """Change a transcript as a mistake of whisper's would have: words and text agree, and
    the recorded timing says podarchive wrote them."""
    path = transcript_path(root, slug)
    transcript = read_transcript(path)
    for segment in transcript.segments:
        segment.words = edit(segment.words)
        segment.text = " ".join(w.text for w in segment.words)
    transcript.timing_sha256 = transcript.words_digest()
    atomic_write_json(path, transcript.to_json())
    return transcript


def replace_word(words: list[Word], pattern: str, text: str) -> list[Word]:
    for word in words:
        if re.fullmatch(pattern, word.text):
            word.text = text
    return words


def correct_texts(root: Path, slug: str, texts: dict[int, str]) -> None:
    path = transcript_path(root, slug)
    data = json.loads(path.read_text("utf-8"))
    for n, text in texts.items():
        data["segments"][n]["text"] = text
    path.write_text(json.dumps(data, ensure_ascii=False, indent=1), "utf-8")


def shown_text(path: Path) -> str:
    """The words a reader sees in a rendered transcript, caption timing and markup left out."""
    text = html.unescape(re.sub(r"<[^>]+>", " ", path.read_text("utf-8")))
    lines = [line for line in text.splitlines()
             if "-->" not in line and not line.strip().isdigit() and line.strip() != "WEBVTT"]
    return " ".join(" ".join(lines).split())


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.model
def test_corrected_words_are_timed_and_published(transcribed_archive, tmp_path):
    root = archive_copy(transcribed_archive, tmp_path)
    runner = CliRunner()
    true_jfk = read_transcript(transcript_path(root, "kennedy-inaugural-1961"))
    # Whisper's punctuation varies with the core count ("Americans," or "Americans").
    said = {w.text.strip(",."): w.start for s in true_jfk.segments for w in s.words}

    def mistakes(words: list[Word]) -> list[Word]:
        words = replace_word(words, "Americans,?", "Amerigans,")  # a misheard name
        words = [w for w in words if w.text != "not"]  # a word whisper missed
        n = next((k for k, w in enumerate(words) if w.text == "can"), None)
        if n is not None and not any(w.text == "really" for w in words):  # a word it made up
            can = words[n]
            middle = round((can.start + can.end) / 2, 3)
            words[n:n + 1] = [Word("can", can.start, middle, 0.9), Word("really", middle, can.end, 0.5)]
        return words

    wrong_jfk = as_if_whisper_wrote(root, "kennedy-inaugural-1961", mistakes)
    wrong_ej = as_if_whisper_wrote(root, "eric-joanis-readalongs", lambda words: replace_word(
        replace_word(words, r"programm\w*", "programmable"), r"l'align\w*|l'alim\w*", "l'aliment"))
    assert "really" in wrong_jfk.text and "programmable" in wrong_ej.text and "l'aliment" in wrong_ej.text
    # The producer writes what is said into each segment's text.
    correct_texts(root, "kennedy-inaugural-1961", {n: s.text for n, s in enumerate(true_jfk.segments)})
    fixed = {n: s.text.replace("programmable", "programmeur").replace("l'aliment", "l'alignement")
             for n, s in enumerate(wrong_ej.segments) if "programmable" in s.text or "l'aliment" in s.text}
    correct_texts(root, "eric-joanis-readalongs", fixed)

    result = runner.invoke(cli, ["--archive", str(root), "align"])
    assert result.exit_code == 0, result.output
    assert "align kennedy-inaugural-1961: aligned" in result.stdout
    assert "align eric-joanis-readalongs: aligned (2 corrected segment(s))" in result.stdout
    assert runner.invoke(cli, ["--archive", str(root), "render"]).exit_code == 0

    jfk = read_transcript(transcript_path(root, "kennedy-inaugural-1961"))
    ej = read_transcript(transcript_path(root, "eric-joanis-readalongs"))
    assert jfk.reviewed and ej.reviewed
    assert [w.text for s in jfk.segments for w in s.words] == [w.text for s in true_jfk.segments for w in s.words]
    for aligned, wrong in ((jfk, wrong_jfk), (ej, wrong_ej)):
        assert aligned.timing_sha256 == aligned.words_digest()
        for segment, old in zip(aligned.segments, wrong.segments):
            assert segment.text == " ".join(w.text for w in segment.words)
            cursor = old.start
            for word in segment.words:
                assert old.start <= word.start <= word.end <= old.end + 0.021, (word, old)
                assert word.start >= cursor
                cursor = word.end
    # Segments whose words did not change keep their times exactly.
    unchanged = [n for n in range(len(ej.segments)) if n not in fixed]
    assert unchanged and all(ej.segments[n] == wrong_ej.segments[n] for n in unchanged)
    # The corrected words start where they are said (whisper's own start of the same
    # word, or of the word it wrote instead, is within half a second).
    start_of = {w.text.strip(",."): w.start for s in jfk.segments for w in s.words}
    for word in ("Americans", "not", "can"):
        assert abs(start_of[word] - said[word]) <= 0.5, word
    was = {w.text: w.start for s in wrong_ej.segments for w in s.words}
    now = {w.text: w.start for s in ej.segments for w in s.words}
    assert abs(now["programmeur"] - was["programmable"]) <= 0.5
    assert abs(now["l'alignement"] - was["l'aliment"]) <= 0.5

    for slug, right, wrong in (("kennedy-inaugural-1961", "ask not what your country can do for you",
                                ("Amerigans", "really")),
                               ("eric-joanis-readalongs", "programmeur", ("programmable", "l'aliment"))):
        for name in ("vtt", "srt", "txt", "html"):
            shown = shown_text(root / "feed" / "episodes" / slug / f"transcript.{name}")
            assert right in shown, (slug, name)
            assert not any(w in shown for w in wrong), (slug, name)
    assert "l'alignement" in shown_text(root / "feed/episodes/eric-joanis-readalongs/transcript.html")

    before = snapshot(root / "episodes")
    again = runner.invoke(cli, ["--archive", str(root), "align"])
    assert again.exit_code == 0 and "align: 5 episode(s) up to date" in again.stdout
    assert snapshot(root / "episodes") == before


@pytest.mark.model
def test_a_corrected_transcript_txt_is_aligned_once(transcribed_archive, tmp_path):
    root = archive_copy(transcribed_archive, tmp_path)
    folder = root / "episodes" / "eric-joanis-readalongs"
    shutil.copy(REFERENCES / "ej-fra.txt", folder / CORRECTED_TEXT)
    runner = CliRunner()
    result = runner.invoke(cli, ["--archive", str(root), "align", "eric-joanis-readalongs"])
    assert result.exit_code == 0, result.output
    transcript = read_transcript(folder / "transcript.json")
    assert [w.text for s in transcript.segments for w in s.words] == \
        (REFERENCES / "ej-fra.txt").read_text("utf-8").split()
    assert transcript.reviewed
    before = snapshot(folder)
    again = runner.invoke(cli, ["--archive", str(root), "align", "eric-joanis-readalongs"])
    assert again.exit_code == 0 and "up to date" in again.stdout
    assert snapshot(folder) == before

    # The published transcript.txt, corrected and dropped beside transcript.json, works too.
    jfk = root / "episodes" / "kennedy-inaugural-1961"
    published = (root / "feed/episodes/kennedy-inaugural-1961/transcript.txt").read_text("utf-8")
    assert published.startswith("Ask not what your country") and "[00:00:00] John F. Kennedy:" in published
    (jfk / CORRECTED_TEXT).write_text(published.replace("fellow", "fellow fine"), "utf-8")
    result = runner.invoke(cli, ["--archive", str(root), "align", "kennedy-inaugural-1961"])
    assert result.exit_code == 0, result.output
    words = [w.text for s in read_transcript(jfk / "transcript.json").segments for w in s.words]
    assert [word.strip(",.") for word in words[:6]] == ["And", "so", "my", "fellow", "fine", "Americans"]


@pytest.mark.model
def test_another_recordings_text_is_refused(transcribed_archive, tmp_path):
    root = archive_copy(transcribed_archive, tmp_path)
    runner = CliRunner()
    # A whole text: it shares almost no words with the transcript.
    shutil.copy(REFERENCES / "leopard-fr.txt", root / "episodes/eric-joanis-readalongs" / CORRECTED_TEXT)
    # One segment's text: whisper finds its words unlikely in that sound.
    correct_texts(root, "kennedy-inaugural-1961",
                  {0: "Le conservateur des eaux et forêts devient conseiller général."})
    before = snapshot(root / "episodes")
    result = runner.invoke(cli, ["--archive", str(root), "align"])
    assert result.exit_code == 1
    assert "episodes/eric-joanis-readalongs/transcript.txt: text: does not match the recording" \
        in result.stderr
    assert "episodes/kennedy-inaugural-1961/transcript.json: text: does not match the recording" \
        in result.stderr
    assert snapshot(root / "episodes") == before
