import datetime as dt
import html
import itertools
import json
import re
from pathlib import Path

import html5lib
import numpy as np
import pytest
import srt
import webvtt
from click.testing import CliRunner
from lxml import etree
from scipy.io import wavfile

from pipeline.archive import read_transcript
from pipeline.cli import cli
from pipeline.model import Segment, Word

from conftest import copy_archive, write_transcript

FORMATS = ("vtt", "srt", "txt", "json", "html")
NS = "{http://www.w3.org/1999/xhtml}"
HOSTILE = 'Q&A <script>alert("x")</script> --> fin'

# The captioning rules, written out here rather than imported, so the test checks the code.
MAX_LINE_CHARS = 42
MIN_CUE_SECONDS, MAX_CUE_SECONDS = 1.0, 7.0
MAX_CHARS_PER_SECOND = 20.0


def seconds(stamp: str) -> float:
    hours, minutes, rest = stamp.replace(",", ".").split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(rest)


def caption_violations(vtt_path: Path, transcript: dict) -> dict[str, list]:
    """Every cue of a parsed WebVTT file checked against the captioning rules."""
    cues = list(webvtt.read(str(vtt_path)))
    duration = transcript["duration"]
    found = {rule: [] for rule in ("lines", "line length", "too long", "too short",
                                   "too fast", "overlap", "order", "speakers", "words")}
    timed = [(seconds(c.start), seconds(c.end), c) for c in cues]
    for n, (start, end, cue) in enumerate(timed):
        lines = cue.text.split("\n")
        length = end - start
        next_start = timed[n + 1][0] if n + 1 < len(timed) else duration
        # Could this cue have stayed up longer? Only then is a short or fast cue a fault.
        had_room = end < min(next_start, start + MAX_CUE_SECONDS, duration) - 0.001
        if len(lines) > 2:
            found["lines"].append(cue.raw_text)
        if any(len(html.unescape(line)) > MAX_LINE_CHARS for line in lines):
            found["line length"].append(cue.raw_text)
        if length > MAX_CUE_SECONDS + 0.001:
            found["too long"].append((start, end))
        if length < MIN_CUE_SECONDS - 0.001 and had_room:
            found["too short"].append((start, end))
        if len(html.unescape(" ".join(lines))) / max(length, 0.001) > MAX_CHARS_PER_SECOND + 0.05 and had_room:
            found["too fast"].append((start, end, cue.text))
        if n and start < timed[n - 1][1] - 0.0005:
            found["overlap"].append((timed[n - 1][1], start))
        if n and start < timed[n - 1][0]:
            found["order"].append(start)
        if len(re.findall(r"<v[ .]", cue.raw_text)) > 1:
            found["speakers"].append(cue.raw_text)
    said = [w["text"] for s in sorted(transcript["segments"], key=lambda s: (s["start"], s["end"]))
            for w in s["words"]]
    shown = html.unescape(" ".join(c.text.replace("\n", " ") for c in cues)).split()
    if sorted(shown) != sorted(said):
        found["words"].append("cue words differ from the transcript's words")
    return found


@pytest.mark.model
def test_every_caption_of_the_bundled_archive_meets_the_rules(transcribed_archive):
    root, _ = transcribed_archive
    totals, cue_count = {}, 0
    for folder in sorted((root / "feed/episodes").iterdir()):
        transcript = json.loads((root / "episodes" / folder.name / "transcript.json").read_text("utf-8"))
        found = caption_violations(folder / "transcript.vtt", transcript)
        cue_count += len(webvtt.read(str(folder / "transcript.vtt")))
        for rule, items in found.items():
            totals[rule] = totals.get(rule, 0) + len(items)
            assert not items, (folder.name, rule, items)
    print(f"{cue_count} cues checked; violations per rule: {totals}")
    assert cue_count > 30


@pytest.mark.model
def test_every_generated_file_parses(transcribed_archive):
    root, _ = transcribed_archive
    folders = sorted((root / "feed/episodes").iterdir())
    assert [f.name for f in folders] == sorted(p.name for p in (root / "episodes").iterdir() if p.is_dir())
    for folder in folders:
        assert {f"transcript.{f}" for f in FORMATS} <= {p.name for p in folder.iterdir()}
        vtt = webvtt.read(str(folder / "transcript.vtt"))
        subtitles = list(srt.parse((folder / "transcript.srt").read_text("utf-8")))
        assert len(vtt) == len(subtitles) > 0
        voices = [caption.voice for caption in vtt]
        for n, (caption, subtitle) in enumerate(zip(vtt, subtitles)):
            assert seconds(caption.start) == pytest.approx(subtitle.start.total_seconds())
            changes = caption.voice and (n == 0 or caption.voice != voices[n - 1])
            name = f"{caption.voice}: " if changes else ""
            assert subtitle.content.startswith(name)
            # The same words; a named cue's lines break again around the name.
            assert caption.text.split() == html.unescape(subtitle.content.removeprefix(name)).split()
        podcast = json.loads((folder / "transcript.json").read_text("utf-8"))
        assert podcast["version"] == "1.0.0"
        assert len(podcast["segments"]) == len(vtt)
        for segment in podcast["segments"]:
            assert segment["startTime"] < segment["endTime"] and segment["body"]
        text = (folder / "transcript.txt").read_text("utf-8")
        assert re.search(r"^\[00:00:\d\d\] ", text, re.MULTILINE)


@pytest.mark.model
def test_stereo_episode_has_two_speakers_in_time_order(transcribed_archive):
    root, _ = transcribed_archive
    folder = root / "feed/episodes/two-voices-stereo"
    captions = list(webvtt.read(str(folder / "transcript.vtt")))
    assert {c.voice for c in captions} == {"Left speaker", "Right speaker"}
    starts = [seconds(c.start) for c in captions]
    assert starts == sorted(starts)
    podcast = json.loads((folder / "transcript.json").read_text("utf-8"))
    assert {s["speaker"] for s in podcast["segments"]} == {"Left speaker", "Right speaker"}
    text = (folder / "transcript.txt").read_text("utf-8")
    assert "Right speaker: The horizon" in text and "Left speaker: He began" in text


def parse_html(path: Path):
    return html5lib.parse(path.read_bytes(), treebuilder="etree")


def page_checks(path: Path, language: str, title: str):
    document = parse_html(path)
    assert document.get("lang") == language
    (heading,) = document.iter(f"{NS}h1")
    assert heading.text == title
    assert not list(document.iter(f"{NS}script"))
    paragraphs = [p for p in document.iter(f"{NS}p") if p.get("id")]
    assert paragraphs
    ids = [p.get("id") for p in paragraphs]
    assert len(ids) == len(set(ids))
    for paragraph in paragraphs:
        links = [a for a in paragraph.iter(f"{NS}a") if a.get("href") == f"#{paragraph.get('id')}"]
        assert len(links) == 1 and re.fullmatch(r"\d\d:\d\d:\d\d", links[0].text)
    return document, paragraphs


@pytest.mark.model
def test_html_pages_are_accessible_documents(transcribed_archive):
    root, _ = transcribed_archive
    pages = {"eric-joanis-readalongs": ("fr", "Aligner le hansard du Nunavut"),
             "kennedy-inaugural-1961": ("en", "Ask not what your country can do for you"),
             "mit-licence-en-de": ("en", "The MIT licence, in English then in German")}
    for slug, (language, title) in pages.items():
        page_checks(root / "feed/episodes" / slug / "transcript.html", language, title)
    _, paragraphs = page_checks(root / "feed/episodes/mit-licence-en-de/transcript.html", "en",
                                pages["mit-licence-en-de"][1])
    assert "de" in {p.get("lang") for p in paragraphs}  # screen readers switch voice for German


@pytest.fixture
def hostile_archive(tmp_path):
    """One episode whose title and words try to break out of VTT and HTML."""
    root = copy_archive(tmp_path / "a", slugs=["kennedy-inaugural-1961"])
    folder = root / "episodes/kennedy-inaugural-1961"
    toml = folder / "episode.toml"
    toml.write_text(toml.read_text("utf-8").replace(
        'title = "Ask not what your country can do for you"', f"title = {json.dumps(HOSTILE)}"), "utf-8")
    texts = ["<script>alert(1)</script>", "&", "-->", "Q&A", "done."]
    words = [Word(text, 0.5 + n * 0.4, 0.8 + n * 0.4, 0.9) for n, text in enumerate(texts)]
    write_transcript(root, "kennedy-inaugural-1961",
                     [Segment(0, 0.5, 2.5, " ".join(texts), "Ann <b>&</b>", "en", words)])
    result = CliRunner().invoke(cli, ["--archive", str(root), "render"])
    assert result.exit_code == 0, result.output
    return root / "feed/episodes/kennedy-inaugural-1961"


def test_hostile_text_is_escaped_in_vtt(hostile_archive):
    raw = (hostile_archive / "transcript.vtt").read_text("utf-8")
    assert "<script>" not in raw and "&lt;script&gt;alert(1)&lt;/script&gt;" in raw
    assert " --&gt; " in raw and " &amp; " in raw and "Q&amp;A" in raw
    assert raw.count("-->") == 1  # only the timing line
    (caption,) = webvtt.read(str(hostile_archive / "transcript.vtt"))
    assert html.unescape(caption.text.replace("\n", " ")) == "<script>alert(1)</script> & --> Q&A done."
    assert caption.voice == "Ann &lt;b&gt;&amp;&lt;/b&gt;"


def test_hostile_text_is_escaped_in_html(hostile_archive):
    path = hostile_archive / "transcript.html"
    raw = path.read_text("utf-8")
    assert "<script>" not in raw
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in raw and "Q&amp;A" in raw
    document, paragraphs = page_checks(path, "en", HOSTILE)
    (title,) = document.iter(f"{NS}title")
    assert title.text.startswith(HOSTILE)
    text = "".join(paragraphs[0].itertext())
    assert "<script>alert(1)</script> & --> Q&A done." in text
    assert "Ann <b>&</b>:" in text


def test_hostile_text_keeps_srt_and_json_parseable(hostile_archive):
    (subtitle,) = srt.parse((hostile_archive / "transcript.srt").read_text("utf-8"))
    assert subtitle.content.startswith("Ann <b>&</b>: ")
    assert "<script>alert(1)</script> & -> Q&A done." in " ".join(subtitle.content.split())
    podcast = json.loads((hostile_archive / "transcript.json").read_text("utf-8"))
    assert podcast["segments"][0]["body"].startswith("<script>alert(1)</script> & -->")


def test_episodes_that_stop_being_publishable_are_withdrawn(hostile_archive):
    root = hostile_archive.parents[2]
    toml = root / "episodes/kennedy-inaugural-1961/episode.toml"
    toml.write_text('status = "restricted"\n' + toml.read_text("utf-8"), "utf-8")
    result = CliRunner().invoke(cli, ["--archive", str(root), "render"])
    assert result.exit_code == 0
    assert "kennedy-inaugural-1961: withdrawn" in result.stdout
    assert not hostile_archive.exists()


def test_future_and_embargoed_episodes_are_not_rendered(hostile_archive):
    root = hostile_archive.parents[2]
    toml = root / "episodes/kennedy-inaugural-1961/episode.toml"
    tomorrow = dt.date.today() + dt.timedelta(days=1)
    original = toml.read_text("utf-8")
    for extra in (f'status = "embargoed"\nembargo_until = {tomorrow}\n',):
        toml.write_text(extra + original, "utf-8")
        result = CliRunner().invoke(cli, ["--archive", str(root), "render"])
        assert f"not published (embargoed until {tomorrow})" in result.stdout
        assert not hostile_archive.exists()
    toml.write_text(original.replace("date = 2025-01-20", f"date = {tomorrow}"), "utf-8")
    result = CliRunner().invoke(cli, ["--archive", str(root), "render"])
    assert f"not published (to be released on {tomorrow})" in result.stdout
    assert not hostile_archive.exists()


# --- What other podcast tools read (no model) ---------------------------------------------

KENNEDY = "kennedy-inaugural-1961"


def spoken(text: str, start: float, seconds_per_word: float = 0.3) -> list[Word]:
    return [Word(token, round(start + n * seconds_per_word, 3), round(start + (n + 0.8) * seconds_per_word, 3), 0.9)
            for n, token in enumerate(text.split())]


def podarchive(root: Path, *commands: str) -> None:
    for command in commands:
        result = CliRunner().invoke(cli, ["--archive", str(root), command])
        assert result.exit_code == 0, result.output


@pytest.fixture
def conversation(tmp_path):
    """Two speakers: a first turn long enough for several cues, a reply, the first again."""
    root = copy_archive(tmp_path / "a", slugs=[KENNEDY])
    turns = [("Ann", spoken("Welcome back to the archive. Today we listen to a speech that many people "
                            "still quote, and we read it together, line by line.", 0.2, 0.25)),
             ("Bob", spoken("Yes, the famous one.", 6.1)),
             ("Ann", spoken("Exactly that one. Let us begin.", 7.8))]
    write_transcript(root, KENNEDY, [Segment(n, words[0].start, words[-1].end, " ".join(w.text for w in words),
                                             speaker, "en", words)
                                     for n, (speaker, words) in enumerate(turns)])
    podarchive(root, "render")
    return root / "feed/episodes" / KENNEDY, [w.text for _, words in turns for w in words]


def test_vtt_cues_start_with_their_timing_line_and_keep_their_speakers(conversation):
    folder, said = conversation
    header, *blocks = (folder / "transcript.vtt").read_text("utf-8").rstrip("\n").split("\n\n")
    assert header == "WEBVTT"
    # Castopod reads the line after a blank line as the cue's timing: no cue identifiers.
    for block in blocks:
        assert re.fullmatch(r"\d\d:\d\d:\d\d\.\d{3} --> \d\d:\d\d:\d\d\.\d{3}", block.split("\n")[0]), block
    captions = webvtt.read(str(folder / "transcript.vtt"))
    assert len(captions) == len(blocks) > 3
    assert [voice for voice, _ in itertools.groupby(c.voice for c in captions)] == ["Ann", "Bob", "Ann"]
    assert " ".join(c.text.replace("\n", " ") for c in captions).split() == said


def test_srt_names_the_speaker_where_the_speaker_changes(conversation):
    folder, said = conversation
    subtitles = list(srt.parse((folder / "transcript.srt").read_text("utf-8")))
    voices = [caption.voice for caption in webvtt.read(str(folder / "transcript.vtt"))]
    assert len(subtitles) == len(voices)
    shown = []
    for n, (subtitle, voice) in enumerate(zip(subtitles, voices)):
        changes = n == 0 or voice != voices[n - 1]
        name = re.match(r"(Ann|Bob): ", subtitle.content)
        assert (name.group(1) if name else None) == (voice if changes else None), subtitle.content
        shown += subtitle.content.removeprefix(name.group(0) if name else "").split()
        assert all(len(line) <= MAX_LINE_CHARS for line in subtitle.content.split("\n")), subtitle.content
    assert shown == said
    assert sum(1 for n in range(len(voices)) if n and voices[n] == voices[n - 1])  # some cues go unnamed


def test_a_paragraph_starts_when_its_words_are_said_after_a_correction(tmp_path):
    root = copy_archive(tmp_path / "a", slugs=[KENNEDY])
    # As whisper writes a segment: it starts with its first word, here a filler.
    words = [Word("Uh,", 0.0, 1.1, 0.4), *spoken("And so my fellow Americans,", 1.4)]
    write_transcript(root, KENNEDY, [Segment(0, 0.0, words[-1].end, " ".join(w.text for w in words),
                                             "John F. Kennedy", "en", words)])
    # The producer deletes the filler from the words and the text, and has it timed again.
    path = root / "episodes" / KENNEDY / "transcript.json"
    data = json.loads(path.read_text("utf-8"))
    (segment,) = data["segments"]
    segment["words"], segment["text"] = segment["words"][1:], "And so my fellow Americans,"
    path.write_text(json.dumps(data), "utf-8")
    podarchive(root, "align", "render")
    first_word = read_transcript(path).segments[0].words[0]
    assert (first_word.text, first_word.start) == ("And", 1.4)

    folder = root / "feed/episodes" / KENNEDY
    _, (paragraph,) = page_checks(folder / "transcript.html", "en", "Ask not what your country can do for you")
    assert paragraph.find(f"{NS}a").text == "00:00:01"
    text = (folder / "transcript.txt").read_text("utf-8")
    assert "[00:00:01] John F. Kennedy: And so my fellow Americans," in text


def test_the_page_states_the_duration_the_feed_states(tmp_path):
    slug = "conservateur-des-eaux-et-forets"
    root = copy_archive(tmp_path / "a", slugs=[slug])
    recording = root / "episodes" / slug / "leopard-fr.wav"
    rate, samples = wavfile.read(recording)
    seconds_long = 19.6
    wavfile.write(recording, rate, np.resize(samples, round(seconds_long * rate)))
    words = spoken("Sous le consulat il devient conservateur des eaux et forêts.", 0.75, 0.5)
    write_transcript(root, slug, [Segment(0, 0.75, words[-1].end, " ".join(w.text for w in words), "", "fr", words)],
                     language="fr", duration=seconds_long)
    podarchive(root, "render", "feed")

    item = etree.parse(str(root / "feed/feed.xml")).find("channel/item")
    feed_seconds = int(item.findtext("{http://www.itunes.com/dtds/podcast-1.0.dtd}duration"))
    document = parse_html(root / "feed/episodes" / slug / "transcript.html")
    (meta,) = [p for p in document.iter(f"{NS}p") if p.get("class") == "meta" and "Durée" in "".join(p.itertext())]
    shown = re.search(r"Durée (\d\d):(\d\d):(\d\d)", "".join(meta.itertext()))
    assert feed_seconds == 20
    assert int(shown[1]) * 3600 + int(shown[2]) * 60 + int(shown[3]) == feed_seconds
