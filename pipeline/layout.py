"""Where an archive keeps what it derives and publishes, and the public URL of each file."""

from __future__ import annotations

from pathlib import Path

# What producers write: read by the loader alone (search only watches it for changes).
ARCHIVE_FILE = "archive.toml"
SOURCES_DIR = Path("episodes")
EPISODE_FILE = "episode.toml"
TRANSCRIPT_FILE = "transcript.json"

FEED_DIR = Path("feed")
FEED_FILE = "feed.xml"
# The cover feed.py draws when archive.toml gives no image.
COVER_FILE = "cover.png"
EPISODES_DIR = FEED_DIR / "episodes"
INDEX_DIR = Path("index")
# The scratch files of the run holding the archive's lock; a killed run's are removed by
# the next one. Next to the lock file, and like it out of git's way (".*.tmp").
SCRATCH_DIR = Path(".podarchive.tmp")
# Held by the run that works on the archive.
LOCK_FILE = ".podarchive.lock"
# What each episode's published transcripts were last rendered from (formats.py).
RENDER_STAMPS_FILE = ".podarchive.render.json"
ENGINE_DIR = INDEX_DIR / "whoosh"
AUDIO_FILE = "audio.mp3"
# The website's pages: the archive's home, and each episode's.
PAGE_FILE = "index.html"
CHAPTERS_FILE = "chapters.json"
# The published transcript of each format is transcript.<format>.
TRANSCRIPT_STEM = "transcript"


def feed_dir(root: Path) -> Path:
    return Path(root) / FEED_DIR


def feed_file(root: Path) -> Path:
    return Path(root) / FEED_DIR / FEED_FILE


def cover_file(root: Path) -> Path:
    return Path(root) / FEED_DIR / COVER_FILE


def home_page(root: Path) -> Path:
    return Path(root) / FEED_DIR / PAGE_FILE


def episode_page(root: Path, slug: str) -> Path:
    return episode_dir(root, slug) / PAGE_FILE


def episodes_dir(root: Path) -> Path:
    return Path(root) / EPISODES_DIR


def episode_dir(root: Path, slug: str) -> Path:
    return Path(root) / EPISODES_DIR / slug


def transcript_file(root: Path, slug: str, format_name: str) -> Path:
    return episode_dir(root, slug) / f"{TRANSCRIPT_STEM}.{format_name}"


def audio_file(root: Path, slug: str) -> Path:
    return episode_dir(root, slug) / AUDIO_FILE


def engine_dir(root: Path) -> Path:
    return Path(root) / ENGINE_DIR


def sources_dir(root: Path) -> Path:
    """The producer's episode folders."""
    return Path(root) / SOURCES_DIR


def source_dir(root: Path, slug: str) -> Path:
    return Path(root) / SOURCES_DIR / slug


def lock_file(root: Path) -> Path:
    return Path(root) / LOCK_FILE


def scratch_dir(root: Path) -> Path:
    return Path(root) / SCRATCH_DIR


def public_url(base_url: str, root: Path, path: Path) -> str:
    """The URL of a file under feed/."""
    return base_url + Path(path).relative_to(feed_dir(root)).as_posix()


def feed_url(base_url: str) -> str:
    return base_url + FEED_FILE


def episode_path(slug: str) -> str:
    """An episode's folder (and page) as a URL path relative to feed/: "episodes/<slug>/"."""
    return f"{EPISODES_DIR.relative_to(FEED_DIR).as_posix()}/{slug}/"


def episode_page_url(base_url: str, slug: str) -> str:
    return base_url + episode_path(slug)


def audio_url(base_url: str, slug: str, at: float | None = None) -> str:
    moment = f"#t={at:.2f}" if at is not None else ""
    return f"{base_url}{episode_path(slug)}{AUDIO_FILE}{moment}"


def segment_url(base_url: str, slug: str, segment: int) -> str:
    return (f"{base_url}{episode_path(slug)}"
            f"{TRANSCRIPT_STEM}.html#s{segment}")


def local_file(root: Path, base_url: str, url: str | None) -> Path | None:
    """The file under feed/ that a public URL names, if it names one."""
    if not url or not url.startswith(base_url):
        return None
    return feed_dir(root) / url[len(base_url):].split("#", 1)[0]
