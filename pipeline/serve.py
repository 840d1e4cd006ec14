"""`podarchive serve`: the website of feed/ over HTTP, with search.

Only feed/ is answered, and an episode's files only while the privacy gate lets the
episode be published now: an episode restricted since the last run is gone at once,
though feed/ still holds it until the next run. Search goes through
``pipeline.search.search``, which keeps the index open and asks the gate for every hit.
"""

from __future__ import annotations

import functools
import os
import re
import stat
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from urllib.parse import urlencode

import anyio
import anyio.to_thread
import uvicorn
from lxml import etree
from markupsafe import Markup, escape
from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from . import layout
from .errors import PodarchiveError
from .formats import clock
from .search import (
    HIGHLIGHT_CLOSE,
    HIGHLIGHT_OPEN,
    QueryError,
    forget_open_archives,
    published_now,
    search,
)
from .site import SiteHeader, render_page

PAGE_SIZE = 10
# How stale the server's look at episode.toml and the rest may be: an episode restricted
# is no longer answered a fifth of a second later. Looking at every request cost 6 ms at
# 500 episodes (1,000 files), half the time of a search.
SOURCES_SEEN_WITHIN = 0.2
# Deeper pages cost a longer ranking on every request; nobody reads a thousand hits.
MOST_PAGES = 100
MAX_QUERY_CHARS = 500
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
                               "img-src 'self' data: https:; media-src 'self'; object-src 'none'; "
                               "base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
# Read by other sites' players and apps (the Podcasting 2.0 transcript spec asks for it).
_SHARED_FILE = re.compile(r"/(?:transcript\.[^/]+|chapters\.json)$")
_MARKED = re.compile(re.escape(HIGHLIGHT_OPEN) + "(.+?)" + re.escape(HIGHLIGHT_CLOSE))
_XML = etree.XMLParser(resolve_entities=False, no_network=True)


def site_header(root: Path) -> SiteHeader:
    """The archive's title, language and licence as feed/feed.xml says them."""
    path = layout.feed_file(root)
    found = None
    with suppress(OSError):
        state = os.stat(path)
        found = _header_of(str(path), (state.st_ino, state.st_mtime_ns, state.st_size))
    return found or SiteHeader(Path(root).resolve().name, "en")


@functools.lru_cache(maxsize=8)
def _header_of(path: str, state: tuple) -> SiteHeader | None:
    # ``state`` is only the key: feed.xml is read again when it changes.
    try:
        channel = etree.parse(path, _XML).getroot().find("channel")
    except (OSError, etree.XMLSyntaxError):
        return None
    if channel is None:
        return None
    return SiteHeader(channel.findtext("title") or Path(path).parent.parent.name,
                      channel.findtext("language") or "en", channel.findtext("copyright"))


class _PublishedFiles(StaticFiles):
    """feed/ (symlinks that leave it are not followed), an episode's files only while the
    gate lets the episode be published now."""

    def __init__(self, root: Path):
        super().__init__(directory=layout.feed_dir(root), html=True, check_dir=False)
        self.config_checked = True  # no feed/ yet: 404, not an error
        self.root = root
        self.episodes = os.path.realpath(layout.episodes_dir(root))

    def lookup_path(self, path: str) -> tuple[str, os.stat_result | None]:
        full_path, found = super().lookup_path(path)
        # Files only (a folder is answered by its index.html, looked up next), by the path
        # as resolved: a link inside feed/ to an episode's folder is gated too.
        if found is not None and stat.S_ISREG(found.st_mode) \
                and os.path.commonpath([full_path, self.episodes]) == self.episodes:
            slug = os.path.relpath(full_path, self.episodes).split(os.sep)[0]
            if not published_now(self.root, slug, seen_within=SOURCES_SEEN_WITHIN):
                return "", None
        return full_path, found


class _Guard:
    """On every answer the security headers, CORS where other sites read; GET and HEAD only."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        shared = path.startswith("/api/") or _SHARED_FILE.search(path)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in HEADERS.items():
                    headers[name] = value
                if shared:
                    headers["Access-Control-Allow-Origin"] = "*"
            await send(message)

        if scope["method"] not in ("GET", "HEAD"):
            refusal = PlainTextResponse("Only GET and HEAD are answered here.\n", 405, headers={"Allow": "GET, HEAD"})
            await refusal(scope, receive, send_with_headers)
            return
        await self.app(scope, receive, send_with_headers)


class _Refused(Exception):
    def __init__(self, status: int, sentence: str):
        super().__init__(sentence)
        self.status, self.sentence = status, sentence


def _asked(request: Request) -> tuple[str, dict, int]:
    """The query, the filters and the page of a search request."""
    params = request.query_params
    query = params.get("q", "").strip()
    if len(query) > MAX_QUERY_CHARS:
        raise _Refused(400, f"The query is too long: {len(query)} characters, at most {MAX_QUERY_CHARS}.")
    page = params.get("page") or "1"
    if not (page.isascii() and page.isdigit() and len(page) <= len(str(MOST_PAGES))
            and 1 <= int(page) <= MOST_PAGES):
        raise _Refused(400, f"The page must be a whole number from 1 to {MOST_PAGES}.")
    filters = {name: params.get(name) or None for name in ("episode", "speaker", "lang")}
    return query, filters, int(page)


def _hits(root: Path, query: str, filters: dict, page: int) -> tuple[list[dict], bool]:
    """The hits of one page, and whether there are more."""
    try:
        hits = search(root, query, limit=page * PAGE_SIZE + 1, seen_within=SOURCES_SEEN_WITHIN, **filters)
    except QueryError as error:
        raise _Refused(400, f"This query cannot be read: {error.message}.") from error
    except PodarchiveError as error:
        raise _Refused(503, f"Search is not available now: {error.message}.") from error
    return hits[(page - 1) * PAGE_SIZE:page * PAGE_SIZE], len(hits) > page * PAGE_SIZE


def _page_link(query: str, filters: dict, page: int) -> str:
    """The same search at another page, relative to /search or /api/search."""
    return "search?" + urlencode({"q": query, **{k: v for k, v in filters.items() if v}, "page": page})


def _marked(snippet: str) -> Markup:
    return Markup(_MARKED.sub(r"<mark>\1</mark>", str(escape(snippet))))


def _hit_view(hit: dict, page_language: str) -> dict:
    language = hit.get("language") or ""
    episode = layout.episode_path(hit["episode"])
    return {
        "title": hit["title"], "href": episode, "clock": clock(hit["start"]), "speaker": hit["speaker"],
        "snippet": _marked(hit["snippet"]), "listen": f"{episode}#t={hit['start']:.2f}",
        "language": language if language.split("-")[0] != page_language.split("-")[0] else None,
    }


def create_app(root: Path) -> Starlette:
    """The website of the archive at ``root``: feed/, /search and /api/search."""
    root = Path(root).resolve()
    # Searches take turns in the order they came (one at a time: the index is searched
    # by one thread at a time anyway): with 32 clients, a lock without order left some
    # waiting behind others that came later, a second or more.
    turn = anyio.Lock()

    async def hits_in_turn(query: str, filters: dict, page: int) -> tuple[list[dict], bool]:
        async with turn:
            return await anyio.to_thread.run_sync(_hits, root, query, filters, page)

    async def search_page(request: Request) -> Response:
        header = site_header(root)
        query, status, error, hits, more, page, filters = "", 200, None, [], False, 1, {}
        try:
            query, filters, page = _asked(request)
            if query:
                hits, more = await hits_in_turn(query, filters, page)
        except _Refused as refused:
            status, error = refused.status, refused.sentence
        html = render_page(
            "search.html", header, root="./", query=query, error=error,
            hits=[_hit_view(hit, header.language) for hit in hits], first=(page - 1) * PAGE_SIZE + 1,
            previous=_page_link(query, filters, page - 1) if query and page > 1 and not error else None,
            next=_page_link(query, filters, page + 1) if more else None)
        return HTMLResponse(html, status)

    async def api_search(request: Request) -> Response:
        try:
            query, filters, page = _asked(request)
            if not query:
                raise _Refused(400, "Say what to search for: ?q=words.")
            hits, more = await hits_in_turn(query, filters, page)
        except _Refused as refused:
            return JSONResponse({"error": refused.sentence}, refused.status)
        links = [f'<{_page_link(query, filters, page + 1)}>; rel="next"'] if more else []
        if page > 1:
            links.append(f'<{_page_link(query, filters, page - 1)}>; rel="prev"')
        return JSONResponse(hits, headers={"Link": ", ".join(links)} if links else None)

    @asynccontextmanager
    async def lifespan(app):
        yield
        forget_open_archives()

    return Starlette(
        routes=[Route("/search", search_page), Route("/api/search", api_search),
                Mount("/", app=_PublishedFiles(root))],
        middleware=[Middleware(_Guard)], lifespan=lifespan)


# uvicorn's worker processes import the app by name: the archive comes to them in this.
ROOT_VARIABLE = "PODARCHIVE_SERVE_ROOT"


def app_of_environment() -> Starlette:
    """The app of the archive ROOT_VARIABLE names, made in each worker process."""
    return create_app(Path(os.environ[ROOT_VARIABLE]))


def serve(root: Path, host: str, port: int, *, workers: int = 1) -> None:
    """Answer the archive's website at http://host:port/ until interrupted, in
    ``workers`` processes (each with the index open: searches run side by side)."""
    if workers == 1:
        uvicorn.run(create_app(root), host=host, port=port, log_level="warning")
        return
    os.environ[ROOT_VARIABLE] = str(Path(root).resolve())
    uvicorn.run(f"{__name__}:app_of_environment", factory=True, host=host, port=port, workers=workers,
                log_level="warning")
