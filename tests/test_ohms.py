"""podarchive export ohms: checked against the OHMS viewer's own parsing rules, read from
its PHP source (uklibraries/ohms-viewer: app/Ohms/Transcript.php formatTranscript and
formatIndex, app/Ohms/Interview.php, Interview/Version3.php), and by xmllint."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree
from scipy.io import wavfile

from pipeline.cli import cli
from pipeline.create import add_episode
from pipeline.model import Segment, Word
from pipeline.ohms import speaker_label, transcript_lines
from pipeline.text import fold

from conftest import copy_archive, write_transcript

NS = "https://www.weareavp.com/nunncenter/ohms"
SLUG = "memoires-du-port"


@dataclass
class Viewed:
    """What the viewer makes of a file: its metadata, transcript lines, the minute links
    (minute, line), the speakers (line, name) and the index points."""

    fields: dict[str, str]
    lines: list[str]
    anchors: list[tuple[int, int]]
    speakers: dict[int, str]
    points: list[dict[str, str]]


def viewer_reads(data: bytes) -> Viewed:
    root = etree.fromstring(data)
    # SimpleXML sees elements in no namespace or the default one, never a prefixed one.
    assert all(element.prefix is None for element in root.iter())
    record = root.find(f"{{{NS}}}record")
    assert record is not None

    def text(element, name: str) -> str:
        found = element.find(f"{{{NS}}}{name}")
        return (found.text or "") if found is not None else ""

    fields = {child.tag.split("}")[1]: child.text or "" for child in record if len(child) == 0}
    assert text(record, "version").strip(), "without <version> the viewer takes its legacy path"
    assert text(record, "media_url").startswith(("http://", "https://"))
    assert text(record.find(f"{{{NS}}}mediafile"), "clip_format") in ("audio", "audiotrans", "video")
    # <sync>: "N:|L1(W1)|L2(W2)…", N minutes a chunk; the (W) are dropped; line 0 is minute 0.
    sync = text(record, "sync")
    head, _, tail = sync.partition(":")
    chunk = int(head) if head.isdigit() else 1
    items = re.sub(r"\(.*?\)", "", tail).split("|") if ":" in sync else []
    lines_at = [0] + [int(item) for item in (items[1:] if items and items[0] in ("", "0") else items)]
    transcript = text(record, "transcript")
    assert "Transcript:" not in transcript and not re.search(r"\{[0-9:]*\}", transcript)
    lines = transcript.split("[[note]]")[0].split("\n")
    anchors = [(k * chunk, line) for k, line in enumerate(lines_at)]
    assert all(0 <= line < len(lines) for _, line in anchors)
    assert lines_at == sorted(lines_at)
    speakers = {}
    for n, line in enumerate(lines[:-1]):  # a speaker only on a line that ends with "\n"
        match = re.match(r"^\s*([A-Z\-.' ]+:)(.*)$", line)
        if match:
            speakers[n] = match.group(1)
    points = []
    for point in record.iterfind(f"{{{NS}}}index/{{{NS}}}point"):
        seconds = int(text(point, "time"))
        shown = {name: text(point, name) for name in ("title", "title_alt", "synopsis", "synopsis_alt",
                                                      "partial_transcript")}
        points.append({**shown, "time": seconds,
                       "header": f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d} - "
                                 f"{shown['title'].strip(';')}",
                       "keywords": "; ".join(sorted(text(point, "keywords").split(";"))),
                       "keywords_alt": "; ".join(sorted(text(point, "keywords_alt").split(";"))),
                       "hyperlink": text(point.find(f"{{{NS}}}hyperlinks"), "hyperlink")})
    assert [p["time"] for p in points] == sorted(p["time"] for p in points)
    return Viewed(fields, lines, anchors, speakers, points)


EPISODE_EXTRA = """
description = "Souvenirs du port, racontés à deux voix."
redact = ["Samia Dumais"]

[[persons]]
name = "Marie Tremblay"
role = "guest"

[[persons]]
name = "Éric Joanis"
role = "interviewer"

[[chapters]]
start = 0.0
title = "Accueil"
title_alt = "Welcome"
synopsis = "Marie se présente."
synopsis_alt = "Marie introduces herself."
keywords = ["quais", "enfance"]
keywords_alt = ["docks", "childhood"]

[[chapters]]
start = 65.4
title = "Le travail"
synopsis = "Avec Samia Dumais, au port."
keywords = ["dockers", "Samia Dumais", "grève"]
url = "https://example.org/port"

[[chapters]]
start = 130.0
title = "Aujourd'hui"
"""


def long_interview(root: Path, tmp_path: Path) -> list[Segment]:
    """A 200-second recording of two voices (2:40 of words), each word a token "wN" said at N / 2 seconds
    (segment 7 names Samia Dumais, whom the episode redacts)."""
    recording = tmp_path / "port.wav"
    noise = np.random.default_rng(3).normal(0, 300, 200 * 16_000).astype(np.int16)
    wavfile.write(recording, 16_000, noise)
    folder = add_episode(root, recording, title="Mémoires du port", published=date(2025, 4, 1), language="fr",
                         slug=SLUG)
    toml = folder / "episode.toml"
    toml.write_text(toml.read_text("utf-8") + EPISODE_EXTRA, "utf-8")
    segments, n = [], 0
    for number in range(40):
        words = []
        for _ in range(8):
            words.append(Word(f"w{n}", n * 0.5 + 0.1, n * 0.5 + 0.4, 0.9))
            n += 1
        if number == 7:
            words[3].text, words[4].text = "Samia", "Dumais"
        speaker = "Marie Tremblay" if number // 3 % 2 == 0 else "Éric Joanis"
        segments.append(Segment(number, words[0].start, words[-1].end, " ".join(w.text for w in words),
                                speaker=speaker, language="fr", words=words))
    write_transcript(root, SLUG, segments, language="fr", duration=200.0)
    return segments


def export(root: Path, target: Path, slug: str = SLUG):
    return CliRunner().invoke(cli, ["--archive", str(root), "export", "ohms", slug, "-o", str(target)])


@pytest.fixture
def interview(tmp_path):
    root = copy_archive(tmp_path / "archive", slugs=[])
    segments = long_interview(root, tmp_path)
    return root, segments


def test_an_interview_exported_reads_in_the_ohms_viewer_with_its_minutes_speakers_and_index(interview, tmp_path):
    root, segments = interview
    target = tmp_path / "out" / "interview.xml"
    target.parent.mkdir()
    result = export(root, target)
    assert result.exit_code == 0, result.output
    subprocess.run(["xmllint", "--noout", str(target)], check=True)
    viewed = viewer_reads(target.read_bytes())

    fields = viewed.fields
    assert fields["title"] == "Mémoires du port" and fields["accession"] == SLUG
    assert fields["interviewee"] == "Marie Tremblay" and fields["interviewer"] == "Éric Joanis"
    assert fields["media_url"] == f"https://example.org/podarchive/episodes/{SLUG}/audio.mp3"
    assert fields["language"] == "French" and fields["duration"] == "00:03:20"

    # Each minute's link lands on the line that begins with the first word said in it.
    starts = {w.text: w.start for s in segments for w in s.words}
    assert [minute for minute, _ in viewed.anchors] == [0, 1, 2]  # the last word is said at 2:39
    for minute, line in viewed.anchors[1:]:
        first = re.search(r"\bw(\d+)\b", viewed.lines[line]).group()
        assert starts[first] >= minute * 60 > starts[f"w{int(first[1:]) - 1}"]
    # Every word is there, in order, once.
    said = re.findall(r"\bw\d+\b", "\n".join(viewed.lines))
    assert said == [w.text for s in segments for w in s.words if re.fullmatch(r"w\d+", w.text)]

    # A turn is a paragraph that opens with its speaker, as the viewer finds one.
    turns = [s.speaker for n, s in enumerate(segments) if n == 0 or s.speaker != segments[n - 1].speaker]
    assert list(viewed.speakers.values()) == [speaker_label(name) for name in turns]
    assert set(viewed.speakers.values()) == {"MARIE TREMBLAY:", "ERIC JOANIS:"}
    assert all(viewed.lines[n - 1] == "" for n in viewed.speakers if n)

    points = viewed.points
    assert [p["header"] for p in points] == ["00:00:00 - Accueil", "00:01:05 - Le travail",
                                             "00:02:10 - Aujourd'hui"]
    assert (points[0]["title_alt"], points[0]["synopsis_alt"]) == ("Welcome", "Marie introduces herself.")
    assert (points[0]["keywords"], points[0]["keywords_alt"]) == ("enfance; quais", "childhood; docks")
    assert points[1]["hyperlink"] == "https://example.org/port"
    assert points[2]["partial_transcript"].startswith("w256 ")  # what is said from 2:10 on

    # The gate decides what goes out: the redacted name is nowhere, not even as a keyword.
    assert "samia" not in fold(target.read_text("utf-8")) and "dumais" not in fold(target.read_text("utf-8"))
    assert points[1]["keywords"] == "dockers; grève"


def test_an_episode_the_gate_withholds_is_not_exported(interview, tmp_path):
    root, _ = interview
    toml = root / "episodes" / SLUG / "episode.toml"
    toml.write_text(toml.read_text("utf-8").replace('language = "fr"', 'language = "fr"\nstatus = "restricted"'),
                    "utf-8")
    target = tmp_path / "interview.xml"
    result = export(root, target)
    assert result.exit_code == 1
    assert f"error: episodes/{SLUG}: not published" in result.output
    assert not target.exists()
    missing = export(root, target, "no-such-episode")
    assert missing.exit_code == 1 and "not published" in missing.output


@pytest.mark.parametrize(("name", "label"), [("Éric Joanis", "ERIC JOANIS:"), ("Speaker 2", "SPEAKER B:"),
                                             ("O'Brien-Smith Jr.", "O'BRIEN-SMITH JR.:"), ("", ""),
                                             ("李小龍", "")])
def test_a_speaker_is_named_in_the_only_form_the_viewer_takes(name, label):
    assert speaker_label(name) == label
    if label:
        assert re.fullmatch(r"[A-Z\-.' ]+:", label)


@pytest.mark.model
def test_a_real_transcript_exported_keeps_every_published_word(transcribed_archive, tmp_path):
    source, _ = transcribed_archive
    target = tmp_path / "jfk.xml"
    result = export(source, target, "kennedy-inaugural-1961")
    assert result.exit_code == 0, result.output
    subprocess.run(["xmllint", "--noout", str(target)], check=True)
    viewed = viewer_reads(target.read_bytes())
    published = (source / "feed" / "episodes" / "kennedy-inaugural-1961" / "transcript.txt").read_text("utf-8")
    words = " ".join(line.partition(": ")[2] if viewed.speakers.get(n) else line
                     for n, line in enumerate(viewed.lines)).split()
    assert " ".join(words) in " ".join(published.split())
    assert len(words) >= 20 and viewed.anchors == [(0, 0)]


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=30))
def test_any_name_becomes_a_speaker_the_viewer_finds_or_none(name):
    label = speaker_label(name)
    assert label == "" or re.fullmatch(r"[A-Z\-.' ]+:", label)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.floats(0.0, 30.0), st.integers(1, 6), st.sampled_from(["Ana", "Jo", ""])),
                min_size=1, max_size=25))
def test_any_transcript_keeps_its_words_and_links_each_minute_to_its_first_word(pieces):
    segments, at, n = [], 0.0, 0
    for pause, count, speaker in pieces:
        at += pause
        words = []
        for _ in range(count):
            words.append(Word(f"w{n}", round(at, 3), round(at + 0.3, 3), 1.0))
            at += 0.4
            n += 1
        segments.append(Segment(len(segments), words[0].start, words[-1].end, "", speaker=speaker, words=words))
    lines, sync = transcript_lines(segments)
    said = re.findall(r"\bw\d+\b", "\n".join(lines))
    assert said == [f"w{k}" for k in range(n)]
    starts = {w.text: w.start for s in segments for w in s.words}
    marks = [int(item.split("(")[0]) for item in sync.partition(":|")[2].split("|")] if sync else []
    for minute, line in enumerate(marks, 1):
        first = re.search(r"\bw\d+\b", lines[line]).group()
        assert starts[first] >= minute * 60
        assert first == "w0" or starts[f"w{int(first[1:]) - 1}"] < minute * 60
    last_minute = int(max(starts.values()) // 60)
    assert len(marks) == last_minute
