"""podarchive: turn a podcast's recordings into a published, searchable, accessible archive."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("podarchive")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
