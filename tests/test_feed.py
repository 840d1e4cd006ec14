import datetime as dt
import io
import json
import re
import shutil
import subprocess
import uuid
from email.utils import parsedate_to_datetime

import feedparser
import numpy as np
import podcastparser
import pyloudnorm
import pytest
from click.testing import CliRunner
from mutagen.id3 import ID3
from PIL import Image
from pydub import AudioSegment

from pipeline import feed as feed_stage
from pipeline.cli import cli
from pipeline.enclosure import publish_audio
from pipeline.feed import cover_png
from pipeline.model import Segment, Word

from conftest import REPO, copy_archive, set_archive_toml, write_transcript

TITLE = 'Q&A: why 1 < 2, "quoted" l\'été 🎙️ & <co>'


def loudness_and_level(path, start=None, end=None):
    sound = AudioSegment.from_file(path)
    samples = np.array(sound.get_array_of_samples(), dtype=np.float64).reshape(-1, sound.channels)
    samples /= float(1 << (8 * sound.sample_width - 1))
    loudness = pyloudnorm.Meter(sound.frame_rate).integrated_loudness(samples)
    if start is None:
        return loudness, None
    span = samples[int(start * sound.frame_rate):int(end * sound.frame_rate)]
    return loudness, 20 * np.log10(np.sqrt(np.mean(span ** 2)) + 1e-12)


def ebur128(path):
    """Integrated loudness (LUFS) and true peak (dBTP) of a file, as ffmpeg's EBU R128 meter
    reads them."""
    finished = subprocess.run(["ffmpeg", "-nostdin", "-hide_banner", "-i", str(path), "-af", "ebur128=peak=true",
                               "-f", "null", "-"], capture_output=True, text=True, check=True)
    summary = finished.stderr.rsplit("Summary:", 1)[-1]
    loudness = float(re.search(r"I:\s*(-?[\d.]+) LUFS", summary).group(1))
    peak = float(re.search(r"True peak:\s*Peak:\s*(-?[\d.]+|-inf) dBFS", summary).group(1))
    return loudness, peak


@pytest.fixture(autouse=True)
def _podcastparser_knows_the_podcast_namespace(monkeypatch):
    """podcastparser 0.6.11 maps only the namespace's old GitHub URL to podcast:, not the
    URI the Podcasting 2.0 spec gives (https://podcastindex.org/namespace/1.0), which the
    feed rightly uses; teach it the alias so its podcast: handling is what gets tested."""
    monkeypatch.setitem(podcastparser.Namespace.NAMESPACES, "https://podcastindex.org/namespace/1.0", "podcast")


def parse_with_podcastparser(path, url="https://example.org/podarchive/feed.xml"):
    with open(path, "rb") as stream:
        return podcastparser.parse(url, stream)


@pytest.mark.model
def test_feed_parses_in_feedparser_and_podcastparser(transcribed_archive):
    root, _ = transcribed_archive
    feed_path = root / "feed/feed.xml"
    parsed = feedparser.parse(feed_path.read_bytes())
    assert parsed.bozo == 0, parsed.get("bozo_exception")
    assert len(parsed.entries) == 5
    dates = [parsedate_to_datetime(entry.published) for entry in parsed.entries]
    assert dates == sorted(dates, reverse=True)
    for entry in parsed.entries:
        (enclosure,) = entry.enclosures
        assert enclosure.type == "audio/mpeg"
        local = root / "feed" / enclosure.href.removeprefix("https://example.org/podarchive/")
        assert int(enclosure.length) == local.stat().st_size
    podcast = parse_with_podcastparser(feed_path)
    assert podcast["title"] == "podarchive : échantillons / samples"
    assert len(podcast["episodes"]) == 5
    for episode in podcast["episodes"]:
        (enclosure,) = episode["enclosures"]
        assert enclosure["mime_type"] == "audio/mpeg" and enclosure["file_size"] > 0
        assert episode["total_time"] > 0
        assert episode["transcript_url"].startswith("https://example.org/podarchive/episodes/")
        assert (root / "feed" / episode["transcript_url"].removeprefix("https://example.org/podarchive/")).is_file()
    durations = {e["title"]: e["total_time"] for e in podcast["episodes"]}
    assert durations["The MIT licence, in English then in German"] == 60


@pytest.mark.model
def test_feed_has_the_tags_podcast_apps_need(transcribed_archive):
    root, _ = transcribed_archive
    xml = (root / "feed/feed.xml").read_text("utf-8")
    expected_guid = uuid.uuid5(uuid.UUID("ead4c236-bf58-58c6-a2c6-a6b28d128cb6"),
                               "example.org/podarchive/feed.xml")
    assert f"<podcast:guid>{expected_guid}</podcast:guid>" in xml
    assert '<podcast:locked owner="podarchive@example.org">yes</podcast:locked>' in xml
    assert '<itunes:image href="https://example.org/podarchive/cover.png"/>' in xml
    assert (root / "feed/cover.png").is_file()
    for tag in ("itunes:category", "itunes:explicit", "itunes:author", "itunes:owner", "language"):
        assert f"<{tag}" in xml
    for mime in ('type="text/vtt" language="fr" rel="captions"', 'type="application/x-subrip"',
                 'type="application/json"', 'type="text/html"', 'type="text/plain"'):
        assert mime in xml
    assert xml.count("<podcast:transcript ") == 25
    assert '<podcast:person role="guest" group="cast">Éric Joanis</podcast:person>' in xml
    assert "<podcast:season>1</podcast:season>" in xml and "<podcast:episode>3</podcast:episode>" in xml
    result = CliRunner().invoke(cli, ["--archive", str(root), "check"])
    assert result.exit_code == 0, result.output


@pytest.mark.model
def test_every_published_mp3_is_at_minus_16_lufs(transcribed_archive):
    root, _ = transcribed_archive
    measured = {}
    for mp3 in sorted((root / "feed/episodes").glob("*/audio.mp3")):
        loudness, _ = loudness_and_level(mp3)
        measured[mp3.parent.name] = round(loudness, 2)
        sound = AudioSegment.from_file(mp3)
        assert sound.frame_rate == 44100
    print(f"integrated loudness (LUFS): {measured}")
    assert len(measured) == 5
    assert all(-17.0 <= value <= -15.0 for value in measured.values()), measured
    peaks = {mp3.parent.name: ebur128(mp3)[1] for mp3 in (root / "feed/episodes").glob("*/audio.mp3")}
    assert all(peak <= -1.5 for peak in peaks.values()), peaks
    assert AudioSegment.from_file(root / "feed/episodes/two-voices-stereo/audio.mp3").channels == 2
    assert AudioSegment.from_file(root / "feed/episodes/eric-joanis-readalongs/audio.mp3").channels == 1


BUNDLED_RECORDINGS = sorted(path.relative_to(REPO / "episodes").as_posix()
                            for path in (REPO / "episodes").glob("*/*")
                            if path.suffix in (".wav", ".flac", ".mp3", ".m4a"))


@pytest.mark.parametrize("recording", BUNDLED_RECORDINGS)
def test_published_mp3_is_at_minus_16_lufs_with_true_peaks_under_minus_1_5_dbtp(recording, tmp_path):
    """Apple's and the AES's recommendation for spoken word, as ffmpeg's meter reads the mp3:
    speech peaks well above its loudness, so reaching -16 LUFS takes a true-peak limiter."""
    target = tmp_path / "audio.mp3"
    publish_audio(REPO / "episodes" / recording, target, source_sha256="-", silence=[], tags={}, chapters=[])
    loudness, peak = ebur128(target)
    assert loudness == pytest.approx(-16.0, abs=0.5) and peak <= -1.5, (loudness, peak)


@pytest.fixture
def one_episode(tmp_path):
    """The Kennedy episode with a hand-made transcript: publishing without the model."""
    root = copy_archive(tmp_path / "a", slugs=["kennedy-inaugural-1961", "conservateur-des-eaux-et-forets"])
    for slug in ("kennedy-inaugural-1961", "conservateur-des-eaux-et-forets"):
        words = [Word(w, 0.5 + n * 0.5, 0.9 + n * 0.5, 0.9) for n, w in enumerate(["ask", "not", "what"])]
        write_transcript(root, slug, [Segment(0, 0.5, 2.0, "", "", "en", words)])
    return root


def edit_toml(root, slug, before="", replace=None):
    path = root / "episodes" / slug / "episode.toml"
    text = path.read_text("utf-8")
    for old, new in (replace or {}).items():
        text = text.replace(old, new)
    path.write_text(before + text, "utf-8")


def publish(root):
    runner = CliRunner()
    for command in ("render", "feed"):
        result = runner.invoke(cli, ["--archive", str(root), command])
        assert result.exit_code == 0, result.output
    return result


def test_a_hostile_title_round_trips_through_both_parsers(one_episode):
    edit_toml(one_episode, "kennedy-inaugural-1961",
              replace={'title = "Ask not what your country can do for you"': f"title = {json.dumps(TITLE, ensure_ascii=False)}"})
    publish(one_episode)
    feed = one_episode / "feed/feed.xml"
    parsed = feedparser.parse(feed.read_bytes())
    assert parsed.bozo == 0
    assert TITLE in [entry.title for entry in parsed.entries]
    titles = [episode["title"] for episode in parse_with_podcastparser(feed)["episodes"]]
    assert TITLE in titles
    tags = ID3(one_episode / "feed/episodes/kennedy-inaugural-1961/audio.mp3")
    assert str(tags["TIT2"]) == TITLE


def test_future_restricted_and_embargoed_episodes_stay_out_of_the_feed(one_episode):
    tomorrow = dt.date.today() + dt.timedelta(days=1)
    edit_toml(one_episode, "kennedy-inaugural-1961", replace={"date = 2025-01-20": f"date = {tomorrow}"})
    publish(one_episode)
    xml = (one_episode / "feed/feed.xml").read_text("utf-8")
    assert "kennedy" not in xml and "conservateur-des-eaux-et-forets" in xml
    edit_toml(one_episode, "kennedy-inaugural-1961", replace={f"date = {tomorrow}": "date = 2025-01-20"})
    edit_toml(one_episode, "conservateur-des-eaux-et-forets", before='status = "restricted"\n')
    publish(one_episode)
    xml = (one_episode / "feed/feed.xml").read_text("utf-8")
    assert "kennedy" in xml and "conservateur" not in xml
    assert not (one_episode / "feed/episodes/conservateur-des-eaux-et-forets").exists()


def test_chapters_reach_the_feed_the_json_and_the_id3_tags(one_episode):
    edit_toml(one_episode, "kennedy-inaugural-1961",
              replace={"\n[[persons]]": '\n[[chapters]]\nstart = 0.0\ntitle = "Opening"\n'
                                        '\n[[chapters]]\nstart = 5.5\ntitle = "Ask not"\n\n[[persons]]'})
    publish(one_episode)
    folder = one_episode / "feed/episodes/kennedy-inaugural-1961"
    chapters = json.loads((folder / "chapters.json").read_text("utf-8"))
    assert chapters["version"] == "1.2.0"
    assert [(c["startTime"], c["title"]) for c in chapters["chapters"]] == [(0.0, "Opening"), (5.5, "Ask not")]
    podcast = parse_with_podcastparser(one_episode / "feed/feed.xml")
    kennedy = next(e for e in podcast["episodes"] if "kennedy" in e["link"])
    assert kennedy["chapters_json_url"].endswith("/kennedy-inaugural-1961/chapters.json")
    frames = ID3(folder / "audio.mp3").getall("CHAP")
    assert [(f.start_time, str(f.sub_frames["TIT2"])) for f in frames] == [(0, "Opening"), (5500, "Ask not")]


def test_rerun_changes_no_byte_and_check_finds_broken_links(one_episode):
    publish(one_episode)
    files = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in (one_episode / "feed").rglob("*") if p.is_file()}
    result = publish(one_episode)
    assert "feed: 2 episode(s) up to date" in result.stdout
    assert files == {p: (p.read_bytes(), p.stat().st_mtime_ns)
                     for p in (one_episode / "feed").rglob("*") if p.is_file()}
    assert CliRunner().invoke(cli, ["--archive", str(one_episode), "check"]).exit_code == 0
    folder = one_episode / "feed/episodes/kennedy-inaugural-1961"
    (folder / "transcript.srt").unlink()
    with open(folder / "audio.mp3", "ab") as mp3:
        mp3.write(b"\0")
    result = CliRunner().invoke(cli, ["--archive", str(one_episode), "check"])
    assert result.exit_code == 1
    assert "podcast:transcript https://example.org/podarchive/episodes/kennedy-inaugural-1961/transcript.srt has no file" in result.stderr
    assert "enclosure length" in result.stderr


@pytest.mark.model  # run transcribes: hand-made transcripts carry no decoding options
def test_feed_without_the_published_files_is_rebuilt(one_episode):
    publish(one_episode)
    shutil.rmtree(one_episode / "feed/episodes")
    result = CliRunner().invoke(cli, ["--archive", str(one_episode), "run"])
    assert result.exit_code == 0, result.output
    assert CliRunner().invoke(cli, ["--archive", str(one_episode), "check"]).exit_code == 0


def test_clip_exports_the_moment_padded_by_half_a_second(one_episode, tmp_path):
    publish(one_episode)
    runner = CliRunner()
    target = tmp_path / "quote.mp3"
    result = runner.invoke(cli, ["--archive", str(one_episode), "clip", "kennedy-inaugural-1961",
                                 "2.8", "7.4", "-o", str(target)])
    assert result.exit_code == 0, result.output
    assert len(AudioSegment.from_file(target)) / 1000 == pytest.approx(5.6, abs=0.06)
    result = runner.invoke(cli, ["--archive", str(one_episode), "clip", "kennedy-inaugural-1961",
                                 "7", "2", "-o", str(target)])
    assert result.exit_code == 2 and "Invalid value for 'END': 2 must come after START (7)" in result.stderr
    edit_toml(one_episode, "kennedy-inaugural-1961", before='status = "restricted"\n')
    result = runner.invoke(cli, ["--archive", str(one_episode), "clip", "kennedy-inaugural-1961",
                                 "2.8", "7.4", "-o", str(tmp_path / "no.mp3")])
    assert result.exit_code == 1 and "no such published episode" in result.stderr
    assert not (tmp_path / "no.mp3").exists()


def test_without_an_image_a_cover_with_the_title_is_drawn_and_published(one_episode):
    set_archive_toml(one_episode, {'image = "cover.png"\n': ""})
    result = publish(one_episode)
    assert "feed cover.png: generated (archive.toml gives no image" in result.stdout
    feed_path = one_episode / "feed/feed.xml"
    parsed = feedparser.parse(feed_path.read_bytes())
    assert parsed.bozo == 0
    cover_url = "https://example.org/podarchive/cover.png"
    assert parsed.feed.image.href == cover_url
    assert parse_with_podcastparser(feed_path)["cover_url"] == cover_url
    cover = one_episode / "feed/cover.png"
    with Image.open(cover) as image:
        assert image.format == "PNG" and image.mode == "RGB"
        assert image.width == image.height and 1400 <= image.width <= 3000
        assert len(image.getcolors(1 << 16)) > 2  # the title is drawn on it
    assert cover.read_bytes() == cover_png("podarchive : échantillons / samples")
    made = cover.stat().st_mtime_ns
    publish(one_episode)
    assert cover.stat().st_mtime_ns == made
    result = CliRunner().invoke(cli, ["--archive", str(one_episode), "check"])
    assert result.exit_code == 0, result.output
    assert ("warning: archive.toml: image: not given: the feed's cover is drawn with the title "
            "(feed/cover.png)") in result.stderr


def test_a_drawn_cover_depends_on_the_title_alone(monkeypatch):
    long_title = "Mémoires orales des Laurentides : " + "témoignages " * 12 + "Supercalifragilisticexpialidocious" * 3
    assert cover_png(long_title) == cover_png(long_title) != cover_png("Mémoires orales")
    monkeypatch.setattr(feed_stage, "COVER_FONT", "no-such-font.ttf")  # Pillow's own font then
    with Image.open(io.BytesIO(cover_png(long_title))) as image:
        assert image.size == (1400, 1400) and len(image.getcolors(1 << 16)) > 2


def test_without_categories_the_feed_has_society_and_culture(one_episode):
    set_archive_toml(one_episode, {'categories = ["Education"]\n': ""})
    publish(one_episode)
    parsed = feedparser.parse((one_episode / "feed/feed.xml").read_bytes())
    assert [tag.term for tag in parsed.feed.tags] == ["Society & Culture"]
    result = CliRunner().invoke(cli, ["--archive", str(one_episode), "check"])
    assert result.exit_code == 0, result.output


def test_a_base_url_without_its_trailing_slash_still_gives_right_urls(one_episode):
    set_archive_toml(one_episode, {'base_url = "https://example.org/podarchive/"': 'base_url = "https://example.org/podarchive"'})
    publish(one_episode)
    feed_path = one_episode / "feed/feed.xml"
    base = "https://example.org/podarchive/"
    (entry, _) = sorted(feedparser.parse(feed_path.read_bytes()).entries, key=lambda e: e.title)
    assert entry.enclosures[0].href == f"{base}episodes/kennedy-inaugural-1961/audio.mp3"
    for episode in parse_with_podcastparser(feed_path)["episodes"]:
        for url in (episode["enclosures"][0]["url"], episode["transcript_url"]):
            assert url.startswith(f"{base}episodes/"), url
            assert (one_episode / "feed" / url.removeprefix(base)).is_file(), url
    result = CliRunner().invoke(cli, ["--archive", str(one_episode), "check"])
    assert result.exit_code == 0, result.output
