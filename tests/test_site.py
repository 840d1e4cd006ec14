"""The archive's static website under feed/: what a static host serves, read by a real
HTML parser (html5lib, as browsers parse) and checked against the feed and transcripts."""

import json
import shutil
from pathlib import Path
from urllib.parse import unquote, urlsplit

import feedparser
import html5lib
import pytest
from click.testing import CliRunner

from pipeline.cli import cli

from conftest import set_archive_toml

pytestmark = pytest.mark.model  # the pages of transcribed_archive, transcribed once per run

NS = {"h": "http://www.w3.org/1999/xhtml"}


def page(path: Path):
    return html5lib.parse(path.read_bytes(), namespaceHTMLElements=True, treebuilder="etree")


def all_of(tree, tag: str):
    return tree.findall(f".//h:{tag}", NS)


def text_of(element) -> str:
    return " ".join("".join(element.itertext()).split())


def pages(root: Path) -> list[Path]:
    return [root / "feed/index.html", *sorted((root / "feed/episodes").glob("*/index.html"))]


def json_ld(tree) -> dict:
    (block,) = [s for s in all_of(tree, "script") if s.get("type") == "application/ld+json"]
    return json.loads(block.text)


def meta(tree, name: str) -> str | None:
    found = [m.get("content") for m in all_of(tree, "meta") if name in (m.get("property"), m.get("name"))]
    return found[0] if found else None


def test_every_page_is_one_accessible_document(transcribed_archive):
    root, _ = transcribed_archive
    assert len(pages(root)) == 1 + 5
    for path in pages(root):
        tree = page(path)
        assert tree.get("lang") in ("en", "fr"), path
        assert len(all_of(tree, "h1")) == 1, path
        for landmark in ("header", "main", "footer"):
            assert len(all_of(tree, landmark)) == 1, (path, landmark)
        (main,) = all_of(tree, "main")
        skip = all_of(tree, "a")[0]
        assert skip.get("href") == f"#{main.get('id')}", path
        (search,) = [f for f in all_of(tree, "form") if f.get("role") == "search"]
        assert search.get("method") == "get" and search.find(".//h:input[@name='q']", NS) is not None
        label = search.find(".//h:label", NS)
        assert label.get("for") == search.find(".//h:input[@name='q']", NS).get("id")
        # One script, our own, from feed/; nothing from another host.
        scripts = [s.get("src") for s in all_of(tree, "script") if s.get("type") != "application/ld+json"]
        assert len(scripts) == 1 and scripts[0].endswith("site.js") and "//" not in scripts[0]


def test_every_link_of_the_site_leads_to_a_published_file(transcribed_archive):
    root, _ = transcribed_archive
    feed = (root / "feed").resolve()
    checked = 0
    for path in pages(root):
        tree = page(path)
        links = [a.get("href") for a in all_of(tree, "a")] + [e.get("src") for e in all_of(tree, "*") if e.get("src")]
        links += [link.get("href") for link in all_of(tree, "link")]
        for link in links:
            parts = urlsplit(link)
            if parts.scheme or not parts.path:  # another site, or a place in this page
                continue
            target = (path.parent / unquote(parts.path)).resolve()
            if target.name == "search":  # answered by `podarchive serve`, not a file
                continue
            assert target.is_relative_to(feed), (path, link)
            if target.is_dir():
                target = target / "index.html"
            assert target.is_file(), (path, link)
            checked += 1
    assert checked > 60


def test_home_lists_what_the_feed_lists_newest_first(transcribed_archive):
    root, _ = transcribed_archive
    tree = page(root / "feed/index.html")
    feed = feedparser.parse((root / "feed/feed.xml").read_bytes())
    listed = [text_of(h) for h in tree.findall(".//h:ol[@class='episodes']/h:li/h:h3", NS)]
    assert listed == [entry.title for entry in feed.entries]
    # Each item's link, what an app shows as the episode's website, is its page.
    for entry, href in zip(feed.entries, [a.get("href") for a in tree.findall(".//h:ol[@class='episodes']//h:h3/h:a", NS)]):
        assert entry.link == "https://example.org/podarchive/" + href
        assert (root / "feed" / href / "index.html").is_file()
    assert [a.get("href") for a in tree.findall(".//h:ol[@class='episodes']//h:h3/h:a", NS)][-1] == \
        "episodes/kennedy-inaugural-1961/"
    everything = text_of(tree)
    assert "John F. Kennedy (guest)" in everything and "00:00:11" in everything
    assert "https://example.org/podarchive/feed.xml" in everything
    series = json_ld(tree)
    assert series["@type"] == "PodcastSeries" and series["webFeed"] == "https://example.org/podarchive/feed.xml"
    assert meta(tree, "og:title") == feed.feed.title
    assert meta(tree, "og:image") == feed.feed.image.href
    # French episodes carry their language on the home page, whose language is English.
    french = [li for li in tree.findall(".//h:ol[@class='episodes']/h:li", NS) if li.get("lang") == "fr"]
    assert {text_of(li.find("h:h3", NS)) for li in french} == {"Conservateur des eaux et forêts",
                                                                  "Aligner le hansard du Nunavut"}


def test_episode_page_plays_captions_and_reads_along(transcribed_archive):
    root, _ = transcribed_archive
    folder = root / "feed/episodes/mit-licence-en-de"
    tree = page(folder / "index.html")
    transcript = json.loads((root / "episodes/mit-licence-en-de/transcript.json").read_text("utf-8"))
    (audio,) = all_of(tree, "audio")
    assert audio.get("preload") == "metadata" and audio.get("src") == "audio.mp3" and "controls" in audio.attrib
    (track,) = audio.findall("h:track", NS)
    assert track.get("kind") == "captions" and track.get("src") == "transcript.vtt" and track.get("srclang") == "en"
    spans = tree.findall(".//h:span[@data-start]", NS)
    assert [text_of(s) for s in spans] == [" ".join(s["text"].split()) for s in transcript["segments"]]
    for span, segment in zip(spans, transcript["segments"]):
        assert span.get("id") == f"s{segment['id']}"
        assert abs(float(span.get("data-start")) - segment["words"][0]["start"]) < 0.01
    # The German half is marked German, for screen readers to read it as German.
    assert any(p.get("lang") == "de" for p in tree.findall(".//h:p[@id]", NS))
    stamps = tree.findall(".//h:a[@class='time']", NS)
    assert stamps and all(a.get("href") == f"audio.mp3#t={a.get('data-t')}" for a in stamps)
    downloads = [a.get("href") for a in tree.findall(".//h:ul[@class='downloads']//h:a", NS)]
    assert set(downloads) >= {"transcript.vtt", "transcript.srt", "transcript.txt", "transcript.json",
                              "transcript.html", "audio.mp3"}
    episode = json_ld(tree)
    assert episode["@type"] == "PodcastEpisode"
    assert episode["associatedMedia"]["contentUrl"] == \
        "https://example.org/podarchive/episodes/mit-licence-en-de/audio.mp3"
    assert episode["partOfSeries"]["@type"] == "PodcastSeries"
    assert meta(tree, "og:audio") == episode["associatedMedia"]["contentUrl"]


def test_chapters_seek_and_a_closed_archive_has_no_home(transcribed_archive, tmp_path):
    source, _ = transcribed_archive
    root = tmp_path / "archive"
    shutil.copytree(source, root)
    slug = "eric-joanis-readalongs"
    toml = root / "episodes" / slug / "episode.toml"
    toml.write_text(toml.read_text("utf-8") + '\n[[chapters]]\nstart = 0\ntitle = "Début"\n\n'
                    '[[chapters]]\nstart = 12.5\ntitle = "Le corpus"\n', "utf-8")
    assert CliRunner().invoke(cli, ["--archive", str(root), "run"]).exit_code == 0
    tree = page(root / "feed/episodes" / slug / "index.html")
    chapters = tree.findall(".//h:nav//h:ol[@class='chapters']//h:a", NS)
    assert [(a.get("href"), a.get("data-t")) for a in chapters] == [("audio.mp3#t=0.00", "0.00"),
                                                                   ("audio.mp3#t=12.50", "12.50")]
    assert "chapters.json" in [a.get("href") for a in all_of(tree, "a")]
    # The archive's own title says a withheld name: nothing of the site stays published.
    set_archive_toml(root, {'glossary = []': 'glossary = []\nredact = ["podarchive"]'})
    CliRunner().invoke(cli, ["--archive", str(root), "run"])
    assert not (root / "feed/index.html").exists()
