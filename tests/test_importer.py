"""podarchive import: a podcast's feed and its files served over HTTP on loopback by a
server the tests start (ranges, a redirect, a 404, a download cut off midway)."""

from __future__ import annotations

import itertools
import json
import statistics
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from xml.sax.saxutils import escape

import pytest
import srt
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.archive import load_archive, load_episode, read_transcript
from pipeline.cli import cli
from pipeline.importer import imported_transcript, read_cues
from pipeline.model import IMPORTED_MODEL

CLIPS = Path(__file__).parent / "data" / "clips"
PODCAST = "https://podcastindex.org/namespace/1.0"
ITUNES = "http://www.itunes.com/dtds/podcast-1.0.dtd"


class Site:
    """Files answered over HTTP, with ranges; ``cut`` answers a path's first request with
    only that many bytes (announcing them all); ``moved`` redirects."""

    def __init__(self):
        self.files: dict[str, tuple[bytes, str]] = {}
        self.moved: dict[str, str] = {}
        self.cut: dict[str, int] = {}
        self.ranges: list[tuple[str, str | None]] = []
        site = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_):
                pass

            def do_GET(self):
                site.ranges.append((self.path, self.headers.get("Range")))
                if self.path in site.moved:
                    self.send_response(301)
                    self.send_header("Location", site.moved[self.path])
                    self.end_headers()
                    return
                if self.path not in site.files:
                    self.send_error(404)
                    return
                data, kind = site.files[self.path]
                first = 0
                if self.headers.get("Range"):
                    first = int(self.headers["Range"].split("=")[1].split("-")[0])
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {first}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data) - first))
                self.end_headers()
                sent = data[first:]
                if self.path in site.cut:
                    sent = sent[:site.cut.pop(self.path)]
                self.wfile.write(sent)
                self.wfile.flush()
                if len(sent) < len(data) - first:
                    self.close_connection = True

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def put(self, path: str, data: bytes | str, kind: str) -> str:
        self.files[path] = (data.encode() if isinstance(data, str) else data, kind)
        return self.url + path


@pytest.fixture
def site():
    served = Site()
    yield served
    served.server.shutdown()
    served.server.server_close()


VTT = """WEBVTT

00:00:00.200 --> 00:00:03.000
<v Ana Lopez>Le tsar a décrété &amp; la <i>ville</i>

00:00:03.100 --> 00:00:06.000
<v Ana Lopez>se rendra demain.
"""
SRT = """1
00:00:00,500 --> 00:00:04,000
Shall I compare thee to a summer's day?

2
00:00:04,200 --> 00:00:08,000
Thou art more lovely and more temperate.
"""


def item_xml(site: Site, guid: str | None, title: str, *, audio: str | None = None,
             transcript: tuple[str, str] | None = None, extra: str = "", date: str = "Mon, 03 Mar 2025 10:00:00 GMT") -> str:
    parts = [f"<title>{escape(title)}</title>", f"<pubDate>{date}</pubDate>",
             f"<description>{escape('<p>About <b>' + title + '</b>.</p><p>Second paragraph.</p>')}</description>"]
    if guid:
        parts.append(f'<guid isPermaLink="false">{guid}</guid>')
    if audio:
        parts.append(f'<enclosure url="{site.url}{audio}" type="audio/ogg" length="1"/>')
    if transcript:
        parts.append(f'<podcast:transcript url="{site.url}{transcript[0]}" type="{transcript[1]}" language="fr"/>')
    return "<item>" + "".join(parts) + extra + "</item>"


def feed_xml(items: list[str], *, locked: str = "") -> str:
    lock = f'<podcast:locked owner="{locked}">yes</podcast:locked>' if locked else ""
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0" xmlns:itunes="{ITUNES}" '
            f'xmlns:podcast="{PODCAST}"><channel><title>Voix du fleuve</title><link>https://voix.example.org/</link>'
            "<description>Des témoignages.</description><language>fr-CA</language>"
            "<itunes:author>Collectif Fleuve</itunes:author>"
            "<itunes:owner><itunes:name>Collectif Fleuve</itunes:name><itunes:email>fleuve@example.org</itunes:email>"
            f"</itunes:owner>{lock}{''.join(items)}</channel></rss>\n")


@pytest.fixture
def podcast(site):
    """A feed of three items: a JSON transcript with speakers and chapters, a VTT, an SRT."""
    clips = {name: (CLIPS / name).read_bytes() for name in ("fleurs-fr-001.ogg", "fleurs-fr-002.ogg",
                                                            "fleurs-fr-003.ogg")}
    for name, data in clips.items():
        site.put(f"/media/{name}", data, "audio/ogg")
    site.put("/t/one.json", json.dumps({"version": "1.0.0", "segments": [
        {"speaker": "Ana Lopez", "startTime": 0.3, "endTime": 2.0, "body": "Bonjour à toutes."},
        {"speaker": "Ana Lopez", "startTime": 2.1, "endTime": 4.0, "body": "Nous commençons."},
        {"speaker": "Jo Martin", "startTime": 4.5, "endTime": 7.0, "body": "Merci de m'accueillir."}]}),
        "application/json")
    site.put("/t/one-chapters.json", json.dumps({"version": "1.2.0", "chapters": [
        {"startTime": 0, "title": "Accueil"}, {"startTime": 4.2, "title": "Invitée", "url": "https://example.org/jo"},
        {"startTime": 5, "title": "Hidden", "toc": False}]}), "application/json+chapters")
    site.put("/t/two.vtt", VTT, "text/vtt")
    site.put("/t/three.srt", SRT, "application/x-subrip")
    first = item_xml(site, "guid-1", "Entretien avec Ana", audio="/media/fleurs-fr-001.ogg",
                     transcript=("/t/one.json", "application/json"), extra=(
                         f'<itunes:season>2</itunes:season><itunes:episode>7</itunes:episode>'
                         f'<podcast:person role="host" href="https://example.org/ana">Ana Lopez</podcast:person>'
                         f'<podcast:person role="guest">Jo Martin</podcast:person>'
                         f'<podcast:chapters url="{site.url}/t/one-chapters.json" type="application/json+chapters"/>'))
    second = item_xml(site, "guid-2", "Deuxième épisode", audio="/media/fleurs-fr-002.ogg",
                      transcript=("/t/two.vtt", "text/vtt"))
    third = item_xml(site, "guid-3", "Troisième épisode", audio="/media/fleurs-fr-003.ogg",
                     transcript=("/t/three.srt", "application/x-subrip"))
    site.put("/feed.xml", feed_xml([first, second, third]), "application/rss+xml")
    return site, clips, [first, second, third]


def import_feed(root: Path, source: str, *options: str):
    return CliRunner().invoke(cli, ["--archive", str(root), "import", source, *options])


def test_a_feed_becomes_an_archive_of_episodes_with_their_transcripts(podcast, tmp_path):
    site, clips, _ = podcast
    root = tmp_path / "archive"
    result = import_feed(root, site.url + "/feed.xml")
    assert result.exit_code == 0, result.output
    archive = load_archive(root)
    assert not archive.problems
    assert (archive.title, archive.language, archive.author) == ("Voix du fleuve", "fr", "Collectif Fleuve")
    assert archive.owner["email"] == "fleuve@example.org" and archive.base_url == "https://voix.example.org/"
    episodes = {episode.guid: episode for episode in archive.episodes}
    assert sorted(episodes) == ["guid-1", "guid-2", "guid-3"]
    first = episodes["guid-1"]
    assert first.slug == "entretien-avec-ana" and first.title == "Entretien avec Ana"
    assert (first.season, first.number, first.language) == (2, 7, "fr")
    assert first.date.isoformat() == "2025-03-03T10:00:00+00:00"
    assert first.description == "About Entretien avec Ana.\nSecond paragraph."
    assert [(p.name, p.role, p.href) for p in first.persons] == [
        ("Ana Lopez", "host", "https://example.org/ana"), ("Jo Martin", "guest", None)]
    assert [(c.start, c.title, c.url) for c in first.chapters] == [
        (0.0, "Accueil", None), (4.2, "Invitée", "https://example.org/jo")]
    assert first.audio_path.read_bytes() == clips["fleurs-fr-001.ogg"]

    transcript = read_transcript(first.transcript_path)
    assert transcript.model == IMPORTED_MODEL and not transcript.reviewed
    assert [(s.speaker, s.text) for s in transcript.segments] == [
        ("Ana Lopez", "Bonjour à toutes."), ("Ana Lopez", "Nous commençons."), ("Jo Martin", "Merci de m'accueillir.")]
    assert transcript.segments[2].words[0].start == 4.5 and transcript.segments[2].words[-1].end == 7.0
    vtt = read_transcript(episodes["guid-2"].transcript_path)
    assert [s.text for s in vtt.segments] == ["Le tsar a décrété & la ville se rendra demain."]
    assert {s.speaker for s in vtt.segments} == {"Ana Lopez"}
    srt_words = [w for s in read_transcript(episodes["guid-3"].transcript_path).segments for w in s.words]
    assert len(srt_words) == 15 and srt_words[0].start == 0.5 and srt_words[-1].end == 8.0
    assert all(a.end <= b.start for a, b in itertools.pairwise(srt_words))

    # Whisper is not run over a transcript the podcast published (this test may not load it).
    transcribed = CliRunner().invoke(cli, ["--archive", str(root), "transcribe"])
    assert transcribed.exit_code == 0, transcribed.output
    assert "3 episode(s) up to date" in transcribed.output


def test_a_feed_saved_as_a_file_imports_the_same(podcast, tmp_path):
    site, _, _ = podcast
    saved = tmp_path / "feed.xml"
    saved.write_bytes(site.files["/feed.xml"][0])
    result = import_feed(tmp_path / "archive", str(saved))
    assert result.exit_code == 0, result.output
    assert result.output.count("(transcript imported)") == 3
    missing = import_feed(tmp_path / "other", str(tmp_path / "nowhere.xml"))
    assert missing.exit_code == 1 and "nowhere.xml: cannot read" in missing.output
    assert not (tmp_path / "other").exists()


def test_import_again_adds_only_new_items_and_keeps_edits(podcast, tmp_path):
    site, _, items = podcast
    root = tmp_path / "archive"
    assert import_feed(root, site.url + "/feed.xml").exit_code == 0
    edited = root / "episodes" / "deuxieme-episode" / "episode.toml"
    edited.write_text(edited.read_text("utf-8").replace('title = "Deuxième épisode"', 'title = "Épisode 2"'), "utf-8")
    before = {path: path.read_bytes() for path in (root / "episodes").rglob("*") if path.is_file()}
    site.put("/media/new.ogg", (CLIPS / "fleurs-fr-004.ogg").read_bytes(), "audio/ogg")
    newest = item_xml(site, "guid-4", "Deuxième épisode", audio="/media/new.ogg")
    site.put("/feed.xml", feed_xml([newest, *items]), "application/rss+xml")
    result = import_feed(root, site.url + "/feed.xml")
    assert result.exit_code == 0, result.output
    assert "import deuxieme-episode-2: imported (to transcribe)" in result.output
    assert result.output.count(": imported") == 1
    assert {path: path.read_bytes() for path in before} == before
    assert not (root / "episodes" / "deuxieme-episode-2" / "transcript.json").exists()
    assert load_episode(root / "episodes" / "deuxieme-episode-2").guid == "guid-4"


def test_a_redirect_is_followed_and_a_missing_recording_fails_alone(podcast, tmp_path):
    site, clips, _ = podcast
    site.moved["/media/old.ogg"] = site.url + "/media/fleurs-fr-001.ogg"
    moved = item_xml(site, "guid-moved", "Déménagé", audio="/media/old.ogg")
    missing = item_xml(site, "guid-missing", "Perdu", audio="/media/nowhere.ogg")
    site.put("/feed.xml", feed_xml([moved, missing]), "application/rss+xml")
    root = tmp_path / "archive"
    result = import_feed(root, site.url + "/feed.xml")
    assert result.exit_code == 1
    assert f"error: {site.url}/media/nowhere.ogg: HTTP 404" in result.output
    assert (root / "episodes" / "demenage" / "old.ogg").read_bytes() == clips["fleurs-fr-001.ogg"]
    assert sorted(p.name for p in (root / "episodes").iterdir()) == ["demenage"]


def test_a_transcript_or_chapters_that_do_not_read_are_left_out_and_said(podcast, tmp_path):
    site, _, _ = podcast
    site.put("/t/broken-chapters.json", "{not json", "application/json+chapters")
    item = item_xml(site, "guid-x", "Sans transcription", audio="/media/fleurs-fr-001.ogg",
                    transcript=("/t/gone.vtt", "text/vtt"),
                    extra=f'<podcast:chapters url="{site.url}/t/broken-chapters.json" type="application/json+chapters"/>')
    site.put("/feed.xml", feed_xml([item]), "application/rss+xml")
    root = tmp_path / "archive"
    result = import_feed(root, site.url + "/feed.xml")
    assert result.exit_code == 0, result.output
    line = next(line for line in result.output.splitlines() if line.startswith("import sans-transcription"))
    assert line.startswith("import sans-transcription: imported (to transcribe; ")
    assert f"chapters left out: {site.url}/t/broken-chapters.json: chapters: not a Podcasting 2.0 chapters file" in line
    assert f"transcript left out: {site.url}/t/gone.vtt: HTTP 404" in line
    [episode] = load_archive(root).episodes
    assert episode.chapters == [] and not episode.transcript_path.exists()


def test_a_download_cut_off_midway_resumes_where_it_stopped(podcast, tmp_path):
    site, clips, _ = podcast
    whole = clips["fleurs-fr-002.ogg"]
    site.cut["/media/fleurs-fr-002.ogg"] = len(whole) // 2
    root = tmp_path / "archive"
    result = import_feed(root, site.url + "/feed.xml")
    assert result.exit_code == 1
    assert f"{site.url}/media/fleurs-fr-002.ogg: download cut off at {len(whole) // 2} of {len(whole)} bytes" \
        in result.output
    assert not (root / "episodes" / "deuxieme-episode").exists()
    assert [p.stat().st_size for p in (root / "episodes").glob(".import-*/*")] == [len(whole) // 2]

    again = import_feed(root, site.url + "/feed.xml")
    assert again.exit_code == 0, again.output
    assert ("/media/fleurs-fr-002.ogg", f"bytes={len(whole) // 2}-") in site.ranges
    assert (root / "episodes" / "deuxieme-episode" / "fleurs-fr-002.ogg").read_bytes() == whole
    assert not list((root / "episodes").glob(".import-*"))
    assert "2 episode(s) up to date" in again.output


def test_duplicate_guids_and_items_without_a_recording_are_skipped_with_a_reason(podcast, tmp_path):
    site, _, items = podcast
    twin = item_xml(site, "guid-1", "Le même guid", audio="/media/fleurs-fr-003.ogg")
    bare = item_xml(site, "guid-bare", "Annonce sans audio")
    site.put("/feed.xml", feed_xml([items[0], twin, bare]), "application/rss+xml")
    root = tmp_path / "archive"
    result = import_feed(root, site.url + "/feed.xml")
    assert result.exit_code == 0, result.output
    assert "import Le même guid: skipped (its guid 'guid-1' is also the guid of 'Entretien avec Ana')" in result.output
    assert "import Annonce sans audio: skipped (no enclosure: the item has no recording)" in result.output
    assert [e.slug for e in load_archive(root).episodes] == ["entretien-avec-ana"]


@pytest.mark.parametrize("body", ["<rss><channel><title>Oops</channel></rss>", "<html><body>Not a feed</body></html>"])
def test_a_malformed_feed_is_one_clear_line_and_nothing_written(site, tmp_path, body):
    site.put("/feed.xml", body, "application/rss+xml")
    root = tmp_path / "archive"
    result = import_feed(root, site.url + "/feed.xml")
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {site.url}/feed.xml: not ")
    assert not root.exists()


def test_a_locked_feed_is_refused_unless_its_owner_says_so(podcast, tmp_path):
    site, _, items = podcast
    site.put("/feed.xml", feed_xml(items, locked="someone@example.net"), "application/rss+xml")
    root = tmp_path / "archive"
    refused = import_feed(root, site.url + "/feed.xml")
    assert refused.exit_code == 1
    assert "podcast:locked: its owner (someone@example.net) locked it" in refused.output
    assert not (root / "archive.toml").exists() and not (root / "episodes").exists()
    accepted = import_feed(root, site.url + "/feed.xml", "--owner-ok", "--retranscribe")
    assert accepted.exit_code == 0, accepted.output
    assert len(load_archive(root).episodes) == 3
    assert not list((root / "episodes").glob("*/transcript.json"))


def test_a_slug_never_says_a_name_the_archive_redacts(podcast, tmp_path):
    site, _, _ = podcast
    root = tmp_path / "archive"
    assert CliRunner().invoke(cli, ["init", str(root), "--email", "fleuve@example.org"]).exit_code == 0
    settings_file = root / "archive.toml"
    settings_file.write_text(settings_file.read_text("utf-8").replace(
        '# redact = ["A name withheld in every episode"]', 'redact = ["Samia Dumais"]'), "utf-8")
    item = item_xml(site, "guid-s", "Entretien avec Samia Dumais", audio="/media/fleurs-fr-001.ogg")
    site.put("/feed.xml", feed_xml([item]), "application/rss+xml")
    result = import_feed(root, site.url + "/feed.xml")
    assert result.exit_code == 0, result.output
    [episode] = load_archive(root).episodes
    assert "samia" not in episode.slug and "dumais" not in episode.slug
    assert episode.slug.startswith("entretien-avec")


cue_texts = st.lists(st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=40)
                     .filter(lambda t: t.split() and "-->" not in t), min_size=1, max_size=8)


@settings(max_examples=60, deadline=None)
@given(cue_texts, st.lists(st.floats(0.2, 6.0), min_size=8, max_size=8))
def test_any_srt_becomes_words_inside_their_cues_in_order(texts, lengths):
    import datetime as dt

    subtitles, at = [], 0.0
    for n, (text, length) in enumerate(zip(texts, lengths), 1):
        subtitles.append(srt.Subtitle(n, dt.timedelta(seconds=at), dt.timedelta(seconds=at + length), text))
        at += length + 0.1
    cues = read_cues(srt.compose(subtitles), "srt", "test.srt")
    transcript = imported_transcript("x", cues, "en", at, "0" * 64, "test.srt")
    words = [w for s in transcript.segments for w in s.words]
    assert [w.text for w in words] == [word for cue in cues for word in cue.text.split()]
    remaining = iter(words)
    for cue in cues:
        for word in [next(remaining) for _ in cue.text.split()]:
            assert cue.start - 1e-3 <= word.start < word.end <= cue.end + 1e-3
    assert all(a.end <= b.start + 1e-3 for a, b in itertools.pairwise(words))


@pytest.mark.model
def test_a_published_podarchive_feed_imported_keeps_its_words_and_their_times(transcribed_archive, tmp_path):
    """The bundled archive's own feed, served, imported: the transcripts it published come
    in without whisper transcribing again, and the align stage times their words within
    a few tens of milliseconds of whisper's own."""
    source, _ = transcribed_archive
    site = Site()
    try:
        feed = (source / "feed" / "feed.xml").read_text("utf-8").replace("https://example.org/podarchive/",
                                                                          site.url + "/")
        for path in (source / "feed").rglob("*"):
            if path.is_file():
                site.put("/" + path.relative_to(source / "feed").as_posix(), path.read_bytes(), "application/octet-stream")
        site.put("/feed.xml", feed, "application/rss+xml")
        root = tmp_path / "imported"
        result = import_feed(root, site.url + "/feed.xml", "--owner-ok")
        assert result.exit_code == 0, result.output
    finally:
        site.server.shutdown()
        site.server.server_close()
    assert result.output.count("(transcript imported)") == len(load_archive(source).episodes)
    ran = CliRunner().invoke(cli, ["--archive", str(root), "run"])
    assert ran.exit_code == 0, ran.output
    assert ": transcribed" not in ran.output  # whisper ran over none of them
    kennedy = read_transcript(source / "episodes" / "kennedy-inaugural-1961" / "transcript.json")
    [imported] = [e for e in load_archive(root).episodes if e.title == load_episode(
        source / "episodes" / "kennedy-inaugural-1961").title]
    again = read_transcript(imported.transcript_path)
    theirs = [w for s in kennedy.segments for w in s.words]
    ours = [w for s in again.segments for w in s.words]
    assert [w.text for w in ours] == [w.text for w in theirs]
    assert statistics.median(abs(a.start - b.start) for a, b in zip(ours, theirs)) <= 0.05
