"""The website in a real browser: headless Chromium (Debian's) driven by Playwright, on a
real `podarchive serve`, checked by axe-core. One server and one browser for the module."""

import json
import shutil
import unicodedata
from pathlib import Path

import pytest
from axe_playwright_python.sync_playwright import Axe
from click.testing import CliRunner
from playwright.sync_api import expect, sync_playwright

from pipeline.cli import cli

from conftest import running_server

pytestmark = pytest.mark.model  # the pages of transcribed_archive, transcribed once per run

CHROMIUM = shutil.which("chromium")
FRENCH = "eric-joanis-readalongs"
ENGLISH = "kennedy-inaugural-1961"
TWO_LANGUAGES = "mit-licence-en-de"
WIDTHS = (1280, 390)
# WCAG 2.2 A and AA (target size is 2.2's), and axe's best practices (one h1, landmarks).
AXE_RULES = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"]


@pytest.fixture(scope="module")
def site(transcribed_archive, tmp_path_factory):
    """The bundled archive, with chapters in one episode, served on a loopback port."""
    source, _ = transcribed_archive
    root = tmp_path_factory.mktemp("site") / "archive"
    shutil.copytree(source, root)
    toml = root / "episodes" / FRENCH / "episode.toml"
    toml.write_text(toml.read_text("utf-8") + '\n[[chapters]]\nstart = 0\ntitle = "Présentation"\n\n'
                    '[[chapters]]\nstart = 15\ntitle = "La traduction automatique"\n', "utf-8")
    assert CliRunner().invoke(cli, ["--archive", str(root), "run"]).exit_code == 0
    with running_server(root, root.parent / "serve.log") as server:
        yield root, f"http://127.0.0.1:{server.port}/"


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        pytest.fail("the browser tests need Debian's chromium: apt-get install chromium")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM,
                                              args=["--autoplay-policy=no-user-gesture-required"])
        yield launched
        launched.close()


@pytest.fixture
def page(browser):
    opened = browser.new_page(viewport={"width": 1280, "height": 900})
    yield opened
    opened.close()


def segments(root: Path, slug: str) -> list[dict]:
    return json.loads((root / "episodes" / slug / "transcript.json").read_text("utf-8"))["segments"]


def without_accents(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFD", text) if not unicodedata.combining(c))


def quote_from(root: Path, slug: str, accented: bool) -> tuple[str, dict]:
    """Four words said in ``slug`` (with an accented one, if asked) and their segment:
    a quote a listener remembers, whatever words whisper wrote this time."""
    for segment in segments(root, slug):
        words = [w["text"].strip(".,;:!?«»\"") for w in segment["words"]]
        for first in range(len(words) - 3):
            quote = words[first:first + 4]
            if all(quote) and (not accented or any(without_accents(w) != w for w in quote)):
                return " ".join(quote), segment
    raise AssertionError(f"no quote of four words in {slug}")


def player_time(page) -> float:
    return page.eval_on_selector("#player", "audio => audio.currentTime")


def highlighted(page) -> str | None:
    return page.eval_on_selector_all('[aria-current="true"]', "found => found.map(e => e.id).join(' ')") or None


def wait_for_time(page, seconds: float) -> None:
    # Functions, not expressions: the site's Content-Security-Policy forbids eval.
    page.wait_for_function("seconds => Math.abs(document.getElementById('player').currentTime - seconds) < 1",
                           arg=seconds, timeout=10_000)


def segment_at(root: Path, slug: str, seconds: float) -> str:
    starts = [(s["words"][0]["start"] if s["words"] else s["start"], s["id"]) for s in segments(root, slug)]
    return f"s{max((start, n) for start, n in starts if start <= seconds + 0.05)[1]}"


@pytest.mark.parametrize(("slug", "accented"), [(FRENCH, True), (ENGLISH, False)])
def test_a_quote_found_lands_on_its_moment(site, page, slug, accented):
    root, url = site
    quote, segment = quote_from(root, slug, accented)
    typed = without_accents(quote) if accented else f'"{quote}"'
    page.goto(url)
    page.fill("#q", typed)
    page.press("#q", "Enter")
    first = page.locator("ol.hits > li").first
    expect(first).to_contain_text(segment["text"].split()[0])
    listen = first.locator("a[href*='#t=']")
    href = listen.get_attribute("href")
    assert f"episodes/{slug}/" in href
    start = float(href.rsplit("#t=", 1)[1])
    assert segment["start"] - 0.5 <= start <= segment["end"]
    listen.click()
    page.wait_for_url(f"**/episodes/{slug}/**")
    wait_for_time(page, start)
    assert highlighted(page) == segment_at(root, slug, start)


def test_keyboard_alone_reaches_the_same_moment(site, page):
    root, url = site
    quote, segment = quote_from(root, ENGLISH, accented=False)
    page.goto(url)
    for _ in range(6):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "q":
            break
    assert page.evaluate("document.activeElement.id") == "q"
    page.keyboard.type(quote)
    page.keyboard.press("Enter")
    page.wait_for_url("**/search?**")
    for _ in range(30):
        page.keyboard.press("Tab")
        focused = page.evaluate("document.activeElement.getAttribute('href') || ''")
        if "#t=" in focused:
            break
    assert f"episodes/{ENGLISH}/#t=" in focused
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/episodes/{ENGLISH}/**")
    wait_for_time(page, float(focused.rsplit("#t=", 1)[1]))
    assert highlighted(page) == f"s{segment['id']}"


def test_timestamps_chapters_and_playing_move_the_reader(site, page):
    root, url = site
    page.goto(f"{url}episodes/{TWO_LANGUAGES}/")
    stamps = page.locator("a.time[data-t]")
    assert stamps.count() >= 2
    second = stamps.nth(1)
    seconds = float(second.get_attribute("data-t"))
    second.click()
    wait_for_time(page, seconds)
    assert highlighted(page) == segment_at(root, TWO_LANGUAGES, seconds)
    assert page.evaluate("location.hash") == f"#t={seconds:g}"
    # Playing moves the highlight from one segment to the next.
    spoken = segments(root, TWO_LANGUAGES)
    following = spoken[[f"s{s['id']}" for s in spoken].index(highlighted(page)) + 1]
    page.eval_on_selector("#player", f"audio => {{ audio.currentTime = {following['words'][0]['start'] - 1.0}; "
                                     "audio.play(); }")
    page.wait_for_function("id => document.getElementById(id).getAttribute('aria-current') === 'true'",
                           arg=f"s{following['id']}", timeout=10_000)
    assert player_time(page) > following["words"][0]["start"] - 0.1
    page.eval_on_selector("#player", "audio => audio.pause()")
    # A chapter seeks, and #t= in the address starts there.
    page.goto(f"{url}episodes/{FRENCH}/")
    page.get_by_role("link", name="La traduction automatique").click()
    wait_for_time(page, 15)
    assert highlighted(page) == segment_at(root, FRENCH, 15)
    page.goto(f"{url}episodes/{FRENCH}/#t=20")
    wait_for_time(page, 20)
    assert highlighted(page) == segment_at(root, FRENCH, 20)
    last = segments(root, FRENCH)[-1]
    page.goto(f"{url}episodes/{FRENCH}/#s{last['id']}")
    wait_for_time(page, last["words"][0]["start"])
    assert highlighted(page) == f"s{last['id']}"


def test_following_stops_when_the_reader_scrolls_away(site, page):
    _, url = site
    page.goto(f"{url}episodes/{FRENCH}/")
    follow = page.get_by_label("Suivre l’audio dans la transcription")
    expect(follow).to_be_checked()
    page.mouse.wheel(0, 400)
    expect(follow).not_to_be_checked()


def test_reduced_motion_starts_without_following(site, browser):
    _, url = site
    context = browser.new_context(reduced_motion="reduce")
    opened = context.new_page()
    opened.goto(f"{url}episodes/{FRENCH}/")
    expect(opened.locator("#follow")).not_to_be_checked()
    context.close()


@pytest.mark.parametrize("width", WIDTHS)
def test_axe_finds_no_violation_on_the_three_pages(site, browser, width):
    _, url = site
    opened = browser.new_page(viewport={"width": width, "height": 900})
    found = {}
    for path in ("", f"episodes/{FRENCH}/", f"episodes/{TWO_LANGUAGES}/", "search?q=licence"):
        opened.goto(url + path)
        results = Axe().run(opened, options={"runOnly": AXE_RULES})
        assert len(results.response["passes"]) > 20, path  # axe ran its rules on a page
        found[path] = [(v["id"], [n["target"] for n in v["nodes"]][:3]) for v in results.response["violations"]]
    opened.close()
    assert found == {path: [] for path in found}
