"""`podarchive serve`: a real server process on a loopback port, asked over raw HTTP.

Two archives: a bare one (no model, no index: a handwritten feed/) for what the server
refuses, and a copy of the transcribed bundled archive for pages, files and search.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import urllib.parse
from pathlib import Path

import lxml.html
import pytest
from click.testing import CliRunner

from pipeline import serve as serve_module
from pipeline.cli import cli
from pipeline.embedded_model import usable_cores
from pipeline.serve import HEADERS, MAX_QUERY_CHARS, SOURCES_SEEN_WITHIN

from conftest import copy_archive, running_server

JFK = "kennedy-inaugural-1961"
LEOPARD = "conservateur-des-eaux-et-forets"
STEREO = "two-voices-stereo"
# Matches nearly every segment of the bundled transcripts: more than one page of hits.
MANY = "the OR a OR and OR de OR et OR le OR la OR die OR der OR und OR zu"


def set_status(root: Path, slug: str, status: str) -> None:
    """episode.toml with ``status`` written in place, first (before any table), and
    the time a server may take to see it."""
    path = root / "episodes" / slug / "episode.toml"
    path.write_text(f"{status}\n" + path.read_text("utf-8"), "utf-8")
    time.sleep(SOURCES_SEEN_WITHIN)


def hits_of(page: str) -> list:
    return lxml.html.fromstring(page).xpath('//ol[@class="hits"]/li')


# --- Without the model: a bare archive with a handwritten feed/ -------------------------------


FEED_XML = """<?xml version='1.0' encoding='UTF-8'?>
<rss version="2.0"><channel><title>Archives nues</title><link>https://example.org/</link>
<description>d</description><copyright>CC BY 4.0</copyright><language>fr</language></channel></rss>
"""


@pytest.fixture(scope="module")
def bare(tmp_path_factory):
    root = copy_archive(tmp_path_factory.mktemp("bare"), [JFK, STEREO])
    feed = root / "feed"
    for slug in (JFK, STEREO, "ghost"):
        (feed / "episodes" / slug).mkdir(parents=True)
        (feed / "episodes" / slug / "index.html").write_text(f"<h1>{slug}</h1>", "utf-8")
        (feed / "episodes" / slug / "transcript.vtt").write_text("WEBVTT\n", "utf-8")
    (feed / "episodes" / JFK / "chapters.json").write_text('{"version": "1.2.0", "chapters": []}', "utf-8")
    (feed / "index.html").write_text("<h1>home</h1>", "utf-8")
    (feed / "site.css").write_text("body {}", "utf-8")
    (feed / "feed.xml").write_text(FEED_XML, "utf-8")
    (root / "index").mkdir()
    (root / "index" / "secret.txt").write_text("secret", "utf-8")
    # Links inside feed/: out of it (never followed), and to an episode's folder (gated).
    (feed / "leak.toml").symlink_to(root / "archive.toml")
    (feed / "sources").symlink_to(root / "episodes", target_is_directory=True)
    (feed / "alias").symlink_to(feed / "episodes" / STEREO, target_is_directory=True)
    with running_server(root, tmp_path_factory.mktemp("bare-log") / "serve.log") as server:
        yield server


@pytest.mark.parametrize("path", [
    "/../archive.toml", "/%2e%2e/archive.toml", "/..%2Farchive.toml", "/%2E%2E%2Farchive.toml",
    f"/episodes/../../episodes/{JFK}/episode.toml", f"/episodes/{JFK}/../../../archive.toml",
    "/index/", "/index/secret.txt", "/../index/secret.txt", "/archive.toml",
    "/leak.toml", f"/sources/{JFK}/episode.toml", "/sources/",
])
def test_nothing_outside_feed_is_answered(bare, path):
    answer = bare.get(path)
    assert answer.status == 404, (path, answer.status)
    assert b"title" not in answer.body and b"secret" not in answer.body


def test_feed_files_are_answered_and_an_episode_only_while_the_archive_holds_it(bare):
    assert bare.get("/").status == 200
    assert bare.get(f"/episodes/{JFK}/").text == f"<h1>{JFK}</h1>"
    assert bare.get(f"/episodes/{JFK}").status == 307  # to the folder's URL, with its "/"
    assert bare.get("/episodes/ghost/").status == 404
    assert bare.get("/episodes/ghost/transcript.vtt").status == 404


def test_an_episode_restricted_after_the_run_is_gone_at_once(bare):
    """At once: within the fifth of a second the server takes to look again."""
    paths = [f"/episodes/{STEREO}/", f"/episodes/{STEREO}/index.html", f"/episodes/{STEREO}/transcript.vtt",
             "/alias/transcript.vtt"]
    assert [bare.get(path).status for path in paths] == [200] * len(paths)
    set_status(bare.root, STEREO, 'status = "restricted"')
    assert [bare.get(path).status for path in paths] == [404] * len(paths)
    assert bare.get(f"/episodes/{JFK}/").status == 200


def test_only_get_and_head(bare):
    for method in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
        for path in ("/", "/search?q=a", "/api/search?q=a", "/nowhere"):
            answer = bare.get(path, method=method)
            assert answer.status == 405, (method, path)
            assert answer.headers["Allow"] == "GET, HEAD"
    head = bare.get("/", method="HEAD")
    assert head.status == 200 and head.body == b"" and head.headers["Content-Length"] == str(len("<h1>home</h1>"))


def test_security_headers_on_every_answer_and_cors_where_other_sites_read(bare):
    answers = {path: bare.get(path) for path in (
        "/", f"/episodes/{JFK}/transcript.vtt", f"/episodes/{JFK}/chapters.json", "/api/search?q=a",
        "/search?q=a", "/nowhere", "/search?page=x")}
    for path, answer in answers.items():
        for name, value in HEADERS.items():
            assert answer.headers[name] == value, (path, name)
    shared = {path for path, answer in answers.items() if answer.headers["Access-Control-Allow-Origin"] == "*"}
    assert shared == {f"/episodes/{JFK}/transcript.vtt", f"/episodes/{JFK}/chapters.json", "/api/search?q=a"}
    assert "'unsafe-inline'" not in HEADERS["Content-Security-Policy"]


def test_bad_requests_are_400_with_a_sentence(bare):
    long_query = "a" * (MAX_QUERY_CHARS + 1)
    for path in (f"/search?q={long_query}", "/search?q=a&page=0", "/search?q=a&page=x", "/search?q=a&page=-1",
                 "/search?q=a&page=1000000000000", "/search?q=a&page=%C2%B2", "/search?q=a&page=" + "9" * 5000):
        answer = bare.get(path)
        assert answer.status == 400, path
        assert answer.headers["Content-Type"].startswith("text/html")
        assert len(hits_of(answer.text)) == 0 and "Traceback" not in answer.text
    assert "at most 500" in bare.get(f"/search?q={long_query}").text
    answer = bare.get(f"/api/search?q={long_query}")
    assert answer.status == 400 and answer.json() == {"error": "The query is too long: 501 characters, at most 500."}
    assert bare.get("/api/search?q=a&page=0").status == 400
    assert bare.get("/api/search").json()["error"]


def test_search_without_an_index_is_503_and_the_header_comes_from_feed_xml(bare):
    page = bare.get("/search?q=bonjour")
    assert page.status == 503
    html = lxml.html.fromstring(page.text)
    assert html.get("lang") == "fr" and html.findtext(".//h1") == "Recherche"
    assert "Archives nues" in html.findtext(".//title") and "CC BY 4.0" in page.text
    assert "search index" in html.xpath('string(//p[@role="alert"])')
    answer = bare.get("/api/search?q=bonjour")
    assert answer.status == 503 and "search index" in answer.json()["error"]
    # The header is read again when feed.xml changes.
    feed = bare.root / "feed" / "feed.xml"
    feed.write_text(FEED_XML.replace("Archives nues", "Archives changées"), "utf-8")
    try:
        assert "Archives changées" in bare.get("/search").text
    finally:
        feed.write_text(FEED_XML, "utf-8")


def test_an_empty_query_shows_the_form(bare):
    for path in ("/search", "/search?q=", "/search?q=%20%20"):
        answer = bare.get(path)
        assert answer.status == 200
        html = lxml.html.fromstring(answer.text)
        assert html.findtext(".//h1") == "Recherche" and not hits_of(answer.text)
        assert html.xpath('//input[@id="q"]')


def test_the_cli_warns_when_the_site_is_not_published_yet(tmp_path, monkeypatch):
    root = copy_archive(tmp_path / "archive", [JFK])
    served = []
    monkeypatch.setattr(serve_module, "serve", lambda *args, **options: served.append((args, options)))
    result = CliRunner().invoke(cli, ["--archive", str(root), "serve", "--port", "8123"])
    assert result.exit_code == 0, result.output
    assert "run `podarchive run` first" in result.stderr
    assert "Serving archive at http://127.0.0.1:8123/ (Ctrl+C to stop)" in result.stdout
    assert served == [((root, "127.0.0.1", 8123), {"workers": usable_cores()})]


# --- On the transcribed bundled archive --------------------------------------------------------


def transcribed_copy(transcribed_archive, target: Path) -> Path:
    source, _ = transcribed_archive
    shutil.copytree(source, target, symlinks=True)
    return target


@pytest.fixture(scope="module")
def site(transcribed_archive, tmp_path_factory):
    root = transcribed_copy(transcribed_archive, tmp_path_factory.mktemp("site") / "archive")
    with running_server(root, root.parent / "serve.log") as server:
        yield server


def cli_json(root: Path, *args: str) -> list:
    result = CliRunner().invoke(cli, ["--archive", str(root), "search", "--json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.mark.model
def test_pages_and_feed_are_served(site):
    home = site.get("/")
    assert home.status == 200 and home.headers["Content-Type"] == "text/html; charset=utf-8"
    assert "podarchive : échantillons / samples" in home.text
    episode = site.get(f"/episodes/{JFK}/")
    assert episode.status == 200 and episode.headers["Content-Type"].startswith("text/html")
    assert "Ask not what your country" in episode.text
    feed = site.get("/feed.xml")
    assert feed.status == 200 and b"<rss" in feed.body and "xml" in feed.headers["Content-Type"]
    for answer in (home, episode, feed):
        assert answer.headers["ETag"] and answer.headers["Last-Modified"]
    assert "Serving podarchive : échantillons / samples at http://127.0.0.1:" in site.output.read_text()


@pytest.mark.model
def test_audio_answers_ranges_and_files_revalidate(site):
    audio = (site.root / "feed" / "episodes" / JFK / "audio.mp3").read_bytes()
    part = site.get(f"/episodes/{JFK}/audio.mp3", headers={"Range": "bytes=100-1099"})
    assert part.status == 206
    assert part.headers["Content-Range"] == f"bytes 100-1099/{len(audio)}"
    assert part.body == audio[100:1100]
    assert part.headers["Content-Type"] == "audio/mpeg"
    tail = site.get(f"/episodes/{JFK}/audio.mp3", headers={"Range": "bytes=-10"})
    assert tail.status == 206 and tail.body == audio[-10:]
    whole = site.get(f"/episodes/{JFK}/audio.mp3")
    assert whole.status == 200 and whole.body == audio
    again = site.get(f"/episodes/{JFK}/audio.mp3", headers={"If-None-Match": whole.headers["ETag"]})
    assert again.status == 304 and again.body == b""


@pytest.mark.model
def test_cors_on_transcripts_and_the_api_only(site):
    assert site.get(f"/episodes/{JFK}/transcript.vtt").headers["Access-Control-Allow-Origin"] == "*"
    assert site.get(f"/episodes/{JFK}/transcript.json").headers["Access-Control-Allow-Origin"] == "*"
    assert site.get("/api/search?q=country").headers["Access-Control-Allow-Origin"] == "*"
    assert site.get(f"/episodes/{JFK}/index.html").headers["Access-Control-Allow-Origin"] is None
    assert site.get("/").headers["Access-Control-Allow-Origin"] is None


@pytest.mark.model
def test_an_english_phrase_finds_its_moment(site):
    page = site.get("/search?q=" + "ask not what your country".replace(" ", "+"))
    assert page.status == 200 and page.headers["Content-Type"].startswith("text/html")
    html = lxml.html.fromstring(page.text)
    assert html.findtext(".//h1") == "Results for “ask not what your country”"
    first = hits_of(page.text)[0]
    assert first.xpath("string(.//h2/a/@href)") == f"episodes/{JFK}/"
    assert "ask not what your country" in [mark.text for mark in first.iter("mark")]
    listen = first.xpath('.//a[starts-with(text(), "Listen from ")]')[0]
    hit = cli_json(site.root, "ask not what your country")[0]
    assert listen.get("href") == f"episodes/{JFK}/#t={hit['start']:.2f}"
    assert listen.text == f"Listen from 00:00:{int(hit['start']):02d}"
    assert "John F. Kennedy" in first.text_content()
    assert html.xpath('//input[@id="q"]/@value') == ["ask not what your country"]


@pytest.mark.model
def test_a_french_word_without_accents_finds_the_french_episode(site):
    page = site.get("/search?q=conseiller+general")
    first = hits_of(page.text)[0]
    assert first.xpath("string(.//h2/a/@href)") == f"episodes/{LEOPARD}/"
    snippet = first.xpath(".//p[mark]")[0]
    assert snippet.get("lang") == "fr"  # the page is in English, the archive's language
    assert "général" in snippet.text_content()
    assert page.text.count("<mark>") >= 1


@pytest.mark.model
def test_a_malformed_query_is_400_without_a_traceback(site):
    for path in ('/search?q=%22ask+not', "/search?q=ask+OR", "/search?q=NOT+ask"):
        page = site.get(path)
        assert page.status == 400, path
        assert "Traceback" not in page.text and "cannot be read" in page.text
    answer = site.get("/api/search?q=%22ask+not")
    assert answer.status == 400 and "quote is not closed" in answer.json()["error"]
    assert site.get("/search?q=" + "a" * MAX_QUERY_CHARS).status == 200


@pytest.mark.model
@pytest.mark.parametrize("query", ["ask not what your country", "conseiller general", "the", "zzzqqq"])
def test_the_api_answers_the_json_of_search(site, query):
    answer = site.get("/api/search?q=" + query.replace(" ", "+"))
    assert answer.status == 200 and answer.headers["Content-Type"] == "application/json"
    assert answer.json() == cli_json(site.root, query)
    assert answer.headers["Link"] is None


@pytest.mark.model
def test_results_are_paged_with_their_filters_kept(site):
    every = cli_json(site.root, MANY, "--limit", "100")
    assert len(every) > 10
    seen, path = [], "/api/search?" + urllib.parse.urlencode({"q": MANY})
    while path:
        answer = site.get(path)
        assert answer.status == 200
        seen += answer.json()
        link = answer.headers["Link"] or ""
        nexts = [part.split(";")[0].strip(" <>") for part in link.split(",") if 'rel="next"' in part]
        path = "/api/" + nexts[0] if nexts else None
        assert len(answer.json()) == (10 if path else len(every) % 10 or 10)
    assert seen == every

    first = site.get("/search?" + urllib.parse.urlencode({"q": MANY}))
    assert [hit.xpath("string(.//h2)") for hit in hits_of(first.text)] == [hit["title"] for hit in every[:10]]
    more = lxml.html.fromstring(first.text).xpath('//nav[@class="pages"]/a[@rel="next"]/@href')
    assert len(more) == 1 and "page=2" in more[0]
    second = site.get("/" + more[0])
    assert len(hits_of(second.text)) == len(every) - 10
    assert hits_of(second.text)[0].getparent().get("start") == "11"
    # The other parameters stay in the links to the other pages.
    english = site.get("/search?" + urllib.parse.urlencode({"q": MANY, "lang": "en", "page": 2}))
    previous = lxml.html.fromstring(english.text).xpath('//nav[@class="pages"]/a[@rel="prev"]/@href')
    assert previous == ["search?" + urllib.parse.urlencode({"q": MANY, "lang": "en", "page": 1})]
    link = site.get("/api/search?" + urllib.parse.urlencode({"q": MANY, "speaker": "x y", "page": 2})).headers["Link"]
    assert link == f'<search?{urllib.parse.urlencode({"q": MANY, "speaker": "x y", "page": 1})}>; rel="prev"'


@pytest.mark.model
def test_a_restricted_or_embargoed_episode_is_gone_from_files_and_search(transcribed_archive, tmp_path):
    root = transcribed_copy(transcribed_archive, tmp_path / "archive")
    with running_server(root, tmp_path / "serve.log") as server:
        files = [f"/episodes/{slug}/{name}" for slug in (JFK, LEOPARD)
                 for name in ("", "index.html", "audio.mp3", "transcript.vtt", "transcript.json", "transcript.txt")]
        assert {server.get(path).status for path in files} == {200}
        assert server.get("/api/search?q=country").json()[0]["episode"] == JFK
        set_status(root, JFK, 'status = "restricted"')
        set_status(root, LEOPARD, 'status = "embargoed"\nembargo_until = 2999-01-01')
        assert {path: server.get(path).status for path in files} == dict.fromkeys(files, 404)
        for query in ("ask not what your country", "conseiller general", MANY):
            found = {hit["episode"] for hit in server.get("/api/search?q=" + query.replace(" ", "+")).json()}
            assert found - {JFK, LEOPARD} == found
            assert bool(found) == (query == MANY)
            page = server.get("/search?q=" + query.replace(" ", "+")).text
            assert JFK not in page and LEOPARD not in page
        assert server.get(f"/episodes/{STEREO}/").status == 200
    assert os.path.exists(root / "feed" / "episodes" / JFK / "audio.mp3")  # nothing ran: the gate alone


@pytest.mark.model
def test_worker_processes_answer_alike_and_each_keeps_the_gate(transcribed_archive, tmp_path):
    root = transcribed_copy(transcribed_archive, tmp_path / "archive")
    with running_server(root, tmp_path / "serve.log", "--workers", "2") as server:
        expected = cli_json(root, "ask not what your country")
        # Connections of their own: the kernel hands them to either process.
        assert all(server.get("/api/search?q=ask+not+what+your+country").json() == expected for _ in range(8))
        set_status(root, JFK, 'status = "restricted"')
        assert {server.get(f"/episodes/{JFK}/").status for _ in range(8)} == {404}
        assert all(server.get("/api/search?q=ask+not+what+your+country").json() == [] for _ in range(8))
