"""Starting an archive and adding episodes to it, so no producer writes TOML by hand first."""

from __future__ import annotations

import json
import shutil
from datetime import date, datetime
from pathlib import Path

from . import layout
from .archive import AUDIO_SUFFIXES, ROLES, load_archive, load_episode
from .audio import probe
from .errors import PodarchiveError
from .storage import atomic_write_text
from .text import without_accents

GITIGNORE = """\
# Derived from episodes/ by podarchive: rebuilt by `podarchive run`
index/
feed/
# The archive's lock, work folder, what the last run was made from, and temporary files
.podarchive.tmp/
.podarchive.lock
.podarchive.run.json
.podarchive.render.json
.*.tmp
"""

ARCHIVE_TEMPLATE = """\
# The archive's settings: `podarchive run` reads them for every episode.
# Lines starting with # are optional keys: remove the # to use one.

# Required
title = {title}
description = {description}
author = {author}
# The language of the feed; each episode may say its own (episode.toml `language`).
language = {language}
# Where feed/ is served: every link in the feed and the pages starts with it.
base_url = {base_url}

# Who directories (Apple, Spotify) write to, to check the podcast is yours: no listener sees it.
{owner}

# Optional
# image = "cover.png"          # square PNG or JPEG, 1400-3000 px; generated from the title if absent
# categories = ["Society & Culture"]   # Apple Podcasts categories
# explicit = false
# license = "CC BY 4.0"
# glossary = ["Words every episode uses", "the show's name"]   # helps whisper spell them
# redact = ["A name withheld in every episode"]
# model = "embedded:whisper-base"   # or a local CTranslate2 folder, or a faster-whisper name
# timezone = "UTC"             # for dates and times given without an offset
"""


def init_archive(root: Path, *, title: str | None = None, author: str = "", email: str = "",
                 language: str = "en", base_url: str = "https://example.org/podcast/",
                 description: str = "") -> list[Path]:
    """A new archive in ``root``: archive.toml (every key explained), episodes/ and a
    .gitignore for what podarchive derives. Returns what it wrote."""
    root = Path(root)
    settings = root / layout.ARCHIVE_FILE
    if settings.exists():
        raise PodarchiveError(settings, None, "already exists: this folder is an archive")
    title = title or root.resolve().name
    owner = f"owner = {{ name = {toml_string(author or title)}, email = {toml_string(email or 'you@example.org')} }}"
    text = ARCHIVE_TEMPLATE.format(owner=owner if email else f"# {owner}   # needed to publish: `check` asks for it",

        title=toml_string(title), description=toml_string(description or f"{title}: recordings and their transcripts."),
        author=toml_string(author or title), language=toml_string(language), base_url=toml_string(base_url))
    root.mkdir(parents=True, exist_ok=True)
    written = []
    gitignore = root / ".gitignore"
    if not gitignore.exists():
        atomic_write_text(gitignore, GITIGNORE)
        written.append(gitignore)
    layout.sources_dir(root).mkdir(exist_ok=True)
    written.append(layout.sources_dir(root))
    atomic_write_text(settings, text)
    try:
        load_archive(root)
    except PodarchiveError:
        settings.unlink()
        raise
    return [settings, *written]


def add_episode(root: Path, audio: Path, *, title: str, published: date | datetime, language: str | None = None,
                persons: tuple[str, ...] = (), slug: str | None = None) -> Path:
    """A new episode folder under ``root``/episodes: the recording copied in and an
    episode.toml that loads. Returns the folder; nothing is left behind on failure."""
    root, audio = Path(root), Path(audio)
    load_archive(root)  # a clear error when ``root`` is no archive
    if audio.suffix.lower() not in AUDIO_SUFFIXES:
        raise PodarchiveError(audio, None, f"not a supported audio file ({', '.join(AUDIO_SUFFIXES)})")
    if not audio.is_file():
        raise PodarchiveError(audio, None, "no such file")
    probe(audio)  # an unreadable recording is refused before anything is written
    slug = slug or slug_of(title)
    folder = layout.source_dir(root, slug)
    if folder.exists():
        raise PodarchiveError(folder, None, "already exists: give another --slug")
    lines = [f"title = {toml_string(title)}", f"date = {published.isoformat()}",
             f"audio = {toml_string(audio.name)}"]
    if language:
        lines.append(f"language = {toml_string(language)}")
    for person in persons:
        name, _, role = person.rpartition(":")
        if not name.strip() or role not in ROLES:
            raise PodarchiveError(person, "--person", f"give NAME:ROLE, ROLE one of {', '.join(ROLES)}")
        lines += ["", "[[persons]]", f"name = {toml_string(name.strip())}", f"role = {toml_string(role)}"]
    # Built beside its final place and renamed: an interrupted add leaves no half episode.
    building = layout.sources_dir(root) / f".{slug}.adding.tmp"
    shutil.rmtree(building, ignore_errors=True)  # left by an add that was killed
    building.mkdir()
    try:
        shutil.copyfile(audio, building / audio.name)
        (building / layout.EPISODE_FILE).write_text("\n".join(lines) + "\n", encoding="utf-8")
        place_episode(building, folder)
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return folder


def place_episode(building: Path, folder: Path) -> None:
    """The episode folder made whole in ``building`` renamed to ``folder``, kept only if it loads."""
    building.rename(folder)
    try:
        load_episode(folder)
    except PodarchiveError:
        shutil.rmtree(folder)
        raise


def slug_of(title: str) -> str:
    """A folder name from a title: lowercase ASCII letters and digits joined by hyphens."""
    ascii_title = without_accents(title).encode("ascii", "ignore").decode().lower()
    slug = "-".join("".join(c if c.isalnum() else " " for c in ascii_title).split())
    if not slug:
        raise PodarchiveError(title, "--title", "has no letter or digit to name its folder: give --slug")
    return slug[:60].rstrip("-")


def toml_string(text: str) -> str:
    # A JSON string is a TOML basic string: the same quotes and escapes.
    return json.dumps(text, ensure_ascii=False)
