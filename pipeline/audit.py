"""`check`'s privacy audit: an auditor that trusts none of the stages that wrote feed/ and index/.

It reads every file under feed/ and index/ itself (as bytes; markup, entities and
JSON escapes undone too), folds it as the matcher folds, and looks for:

- any withheld name, as ``redaction`` finds it;
- any sequence of six words of what may not be published (a segment, title or passage
  shorter than that whole, from three words): the transcripts, titles and descriptions
  of unpublished episodes, and the restricted passages of published ones, less the
  sequences the public view itself says;
- any file or URL of an episode that may not be published, and any index entry of one;
- sound where the published mp3 must be silent (its level over every span the gate
  silences).
"""

from __future__ import annotations

import bz2
import functools
import gzip
import hashlib
import html
import io
import json
import lzma
import re
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import mutagen
import numpy as np
from mutagen import MutagenError
from mutagen.apev2 import APEv2
from PIL import Image
from whoosh import index as whoosh_index
from whoosh.reading import SegmentReader

from . import layout
from .archive import Archive, Episode, read_transcript
from .audio import decode, probe
from .errors import PodarchiveError
from .privacy import PublicEpisode, PublicView, withheld_terms
from .redaction import Matcher, pieces
from .stamps import code_stamp
from .storage import archive_cache, cache_dir, write_to_cache

SEQUENCE_WORDS = 6
SHORTEST_SEQUENCE = 3
# Louder than this over a span the gate silences, the name or passage can be heard.
AUDIBLE_DBFS = -50.0
# mp3 frames smear a little sound across a span's edges: those are not listened to.
EDGE_SECONDS = 0.03
_AUDIT_RATE = 16000
_TAG = re.compile(r"<[^>]*>")

Sequence = tuple[str, ...]


def audit(archive: Archive, view: PublicView) -> list[PodarchiveError]:
    """Every published byte that breaks a promise, as one problem per file and cause.

    What each file was found to say is remembered (see ``Memory``): a check of an
    archive of thousands of episodes reads again only the files that changed, and reads
    the private transcripts (for the sequences only they say) only then."""
    root = archive.root
    hidden = sorted({e.slug for e in archive.episodes} - view.slugs)
    matcher = Matcher(withheld_terms(archive))
    reader = functools.cache(lambda: Reader(matcher, _private_sequences(archive, view), hidden))
    memory = Memory(root, _audit_key(archive, view, matcher, hidden))
    problems = _unpublishable_files(view) + _links(root) + _unknown_audio(view)
    problems += [PodarchiveError(path, "privacy", message)
                 for path, messages in scan(root, reader, memory).items() for message in messages]
    problems += _audible(view, memory)
    memory.keep()
    return problems


def _audit_key(archive: Archive, view: PublicView, matcher: Matcher, hidden: list[str]) -> str:
    """Everything a finding depends on besides the file itself: podarchive's code, the
    names withheld, which episodes are hidden, and what the private sequences are made
    of: the unpublished episodes and the restricted ones, metadata and transcript. A new
    public episode without restrictions adds no private sequence, and leaves what was
    found in the other files standing. (It may say in public a sequence that a private
    passage says too: until the file changes, a finding of it is a false alarm, never a
    miss.)"""
    published = view.slugs
    private = []
    for episode in archive.episodes:
        data = episode.transcript_path.read_bytes() if episode.transcript_path.exists() else b""
        if episode.slug not in published or episode.restrict or _RESTRICTED.search(data):
            private.append([episode.slug, repr(episode), hashlib.sha256(data).hexdigest()])
    return hashlib.sha256(json.dumps(
        [code_stamp(), sorted(term.text for term in matcher.terms), hidden, private],
        ensure_ascii=False).encode()).hexdigest()


# A transcript with a restricted segment says so in its JSON (escaped keys are not
# looked for: the gate reads the transcript itself, and this only spares reading it).
_RESTRICTED = re.compile(rb'"restricted"\s*:\s*true')


class Memory:
    """What the audit found in each published file, under the file's stamp (size, inode,
    modification and change times: no write leaves them all as they were) and a key of
    everything the finding depended on (podarchive's code, the names withheld, the
    private sequences, the hidden episodes): with another key, nothing is remembered.
    Kept in the cache, never in the archive: `check` changes no byte of it."""

    def __init__(self, root: Path, key: str):
        self.key = key
        self.path = archive_cache(root, "audit").with_suffix(".json")
        try:
            stored = json.loads(self.path.read_text("utf-8"))
            self.known = stored["files"] if stored.get("key") == key else {}
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            self.known = {}
        self.found: dict[str, list] = {}

    def recall(self, path: Path, find: Callable[[], list[str]], *, depends_on: object = None) -> list[str]:
        """What ``find`` finds in ``path``, remembered while the file stays as it is (a
        folder, while it is there)."""
        stat = path.stat()
        # A folder is read for its name alone, which is the path remembered.
        stamp = ([stat.st_size, stat.st_ino, stat.st_mtime_ns, stat.st_ctime_ns, repr(depends_on)]
                 if path.is_file() else ["folder"])
        entry = self.known.get(str(path))
        found = entry[1] if entry and entry[0] == stamp else find()
        self.found[str(path)] = [stamp, found]
        return found

    def keep(self) -> None:
        write_to_cache(self.path, json.dumps({"key": self.key, "files": self.found}, ensure_ascii=False).encode())


class _NamesInBytes(bytes):
    """Bytes to search only for names as they are written, not to read as text."""


def scan(root: Path, reader: Callable[[], Reader], memory: Memory | None = None) -> dict[Path, list[str]]:
    """What the ``reader`` (made when first needed) finds in each published file of the
    archive at ``root`` (and each folder's name); what ``memory`` remembers of a file is
    not read again."""
    findings = {}
    for path, texts in _published_texts(root):
        def find(texts=texts) -> list[str]:
            return list(dict.fromkeys(_findings(reader(), texts())))

        found = memory.recall(path, find) if memory is not None else find()
        if found:
            findings[path] = found
    return findings


def _findings(reader: Reader, texts: list[str]) -> Iterator[str]:
    for text in texts:
        if isinstance(text, _NamesInBytes):
            yield from reader.names_in_bytes(text)
            continue
        for chunk in _chunks(text):
            yield from reader.findings(chunk)


def _published_texts(root: Path) -> Iterator[tuple[Path, Callable[[], list[str]]]]:
    """Each published file (then each folder) and how to get the texts a reader could
    get out of it, read only when asked. The search index is read as whoosh reads it,
    every term and the stored fields of every document, deleted ones too; a file whoosh
    cannot read is read byte by byte, inflated."""
    index_texts = functools.cache(lambda: _index_texts(layout.engine_dir(root)))
    for path in _published_files(root):
        yield path, functools.partial(_texts_of_published, path, index_texts)
    for folder in (layout.feed_dir(root), root / layout.INDEX_DIR):
        for path in sorted(folder.rglob("*")) if folder.is_dir() else []:
            if path.is_dir() and not path.is_symlink():
                yield path, functools.partial(list, [path.name])


def _texts_of_published(path: Path, index_texts: Callable[[], dict[Path, Callable[[], list[str]]]]) -> list[str]:
    segment_texts = index_texts().get(path)
    if segment_texts is None:
        return _readable_texts(path)
    try:
        whoosh_reads = segment_texts()
    except Exception:  # noqa: BLE001 - a damaged segment: its bytes are read as any file's
        return _readable_texts(path)
    # Bytes whoosh does not read (appended to a segment file, say) are searched for the
    # names as they are written, which is fast on any size.
    return [*whoosh_reads, _NamesInBytes(path.read_bytes())]


def _index_texts(folder: Path) -> dict[Path, Callable[[], list[str]]]:
    try:
        return _whoosh_texts(folder)
    except Exception:  # noqa: BLE001 - damaged or not an index: its bytes are read as any file's
        return {}


def _whoosh_texts(folder: Path) -> dict[Path, Callable[[], list[str]]]:
    """How to read the text of each whoosh segment, by the file that holds it (its TOC
    says nothing): a segment is read only when its file is, so a change that adds a
    small segment leaves the large ones unread."""
    if not whoosh_index.exists_in(str(folder)):
        return {}
    index = whoosh_index.open_dir(str(folder))
    texts: dict[Path, Callable[[], list[str]]] = {}
    for segment in index._segments():
        files = sorted(folder.glob(f"{segment.segment_id()}.*"))
        texts.update((path, list) for path in files)
        if files:
            texts[files[0]] = functools.partial(_segment_texts, index, segment)
    texts[folder / f"_{index.indexname}_{index.latest_generation()}.toc"] = list
    return texts


def _segment_texts(index, segment) -> list[str]:
    """Every term of a whoosh segment, and the stored fields of every document, deleted ones too."""
    reader = SegmentReader(index.storage, index.schema, segment)
    try:
        terms = [term.decode("utf-8", "replace") for name in reader.indexed_field_names()
                 for term in reader.lexicon(name)]
        stored = [json.dumps(reader.stored_fields(docnum), ensure_ascii=False)
                  for docnum in range(segment.doc_count_all())]
    finally:
        reader.close()
    return ["\n".join(terms), "\n".join(stored)]


class Reader:
    """Reads a text for what must not be published in it: withheld names, private word
    sequences (and whose they are), links to hidden episodes."""

    def __init__(self, matcher: Matcher, private: dict[Sequence, str], hidden: list[str]):
        self.matcher = matcher
        self.private = private
        self.sizes = sorted({len(sequence) for sequence in private})
        self.first_words = {sequence[0] for sequence in private}
        self.urls = (re.compile(r"episodes/(" + "|".join(map(re.escape, hidden)) + r")(?![a-z0-9-])")
                     if hidden else None)
        forms = {form.encode(): term.text for term in matcher.terms
                 for form in (term.joined, term.text, term.text.casefold(), " ".join(term.parts))}
        self._written = (re.compile(b"|".join(map(re.escape, sorted(forms, key=len, reverse=True))),
                                    re.IGNORECASE) if forms else None)
        self._forms = {form.lower(): text for form, text in forms.items()}

    def names_in_bytes(self, data: bytes) -> Iterator[str]:
        """Names as they are written (folded or not), anywhere in raw bytes."""
        for match in self._written.finditer(data) if self._written else ():
            yield f"contains redacted term {self._forms[match.group().lower()]!r}"

    def findings(self, text: str) -> Iterator[str]:
        found = pieces(text)
        for match in self.matcher.find(text, found):
            yield f"contains redacted term {match.term.text!r}"
        words = [piece.folded for piece in found]
        for first, word in enumerate(words):
            if word in self.first_words:
                for size in self.sizes:
                    what = self.private.get(tuple(words[first:first + size]))
                    if what:
                        yield f"contains {what}"
        for slug in self.urls.findall(text) if self.urls else ():
            yield f"links to unpublished episode {slug}"


# Large files are read a piece at a time, the pieces overlapping by more than any name or
# sequence of words is long, so that memory stays flat on an index of any size.
_CHUNK_CHARS = 1 << 20
_OVERLAP_CHARS = 2048


def _chunks(text: str) -> Iterator[str]:
    for start in range(0, max(len(text), 1), _CHUNK_CHARS):
        yield text[max(0, start - _OVERLAP_CHARS):start + _CHUNK_CHARS]


def _published_files(root: Path) -> Iterator[Path]:
    for folder in (layout.feed_dir(root), root / layout.INDEX_DIR):
        if folder.is_dir():
            yield from sorted(p for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


_AUDIO_SUFFIXES = {".mp3", ".m4a", ".wav", ".flac", ".ogg", ".opus", ".aac", ".mp4", ".m4b", ".webm",
                   ".mkv", ".mov", ".aif", ".aiff", ".wma", ".amr", ".caf"}
_IMAGES = {".png", ".jpg", ".jpeg"}
# Archives are opened this deep, and their content read up to this size in all.
_ARCHIVE_DEPTH = 3
_ARCHIVE_BYTES = 256 << 20


def _readable_texts(path: Path) -> list[str]:
    """The text a reader could get out of a published file, in every form it takes."""
    data = path.read_bytes()
    if _is_recording(path):
        # The sound is listened to by ``_audible`` (or is flagged for not being ours):
        # here, what its tags say.
        return [path.name, *_decodings(_tag_bytes(data)), _media_text(path)]
    if path.suffix.lower() in _IMAGES:  # what is deflated in an image is its pixels
        return [path.name, *_decodings(data), _media_text(path)]
    return _texts_of(path.name, data, depth=0)


def _texts_of(name: str, data: bytes, depth: int) -> list[str]:
    """The text of some bytes, in every form it takes: its name, the bytes as UTF-8 (or
    UTF-16), what is deflated, gzipped, bzipped, xz-ed, zipped or tarred in it (read the
    same way), with markup and references undone, and JSON strings."""
    texts = [name, *_decodings(data)]
    texts += [text for stream in _deflated_streams(data) for text in _decodings(stream)]
    if depth < _ARCHIVE_DEPTH:
        for member, content in _unpacked(data):
            texts += _texts_of(member, content, depth + 1)
    texts += [undone for text in texts if "<" in text or "&" in text
              for undone in (html.unescape(_TAG.sub(" ", text)), html.unescape(_TAG.sub("", text)))]
    try:
        texts.append("\n".join(_strings(json.loads(texts[1]))))
    except ValueError:
        pass
    return texts


def _unpacked(data: bytes) -> Iterator[tuple[str, bytes]]:
    """(name, content) of what a compressed file or an archive holds."""
    for magic, unpack in ((b"\x1f\x8b", gzip.decompress), (b"BZh", bz2.decompress),
                          (b"\xfd7zXZ\x00", lzma.decompress)):
        if data.startswith(magic):
            try:
                yield "", unpack(data)[:_ARCHIVE_BYTES]
            except (OSError, EOFError, ValueError, zlib.error, lzma.LZMAError):
                pass
    if data.startswith(b"PK"):
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                budget = _ARCHIVE_BYTES
                for info in archive.infolist():
                    if budget <= 0:
                        break
                    budget -= info.file_size
                    yield info.filename, archive.read(info)[:_ARCHIVE_BYTES]
        except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError):
            pass
    if len(data) > 512 and data[257:262] == b"ustar":
        try:
            with tarfile.open(fileobj=io.BytesIO(data)) as archive:
                for member in archive:
                    opened = archive.extractfile(member) if member.isfile() else None
                    yield member.name, opened.read(_ARCHIVE_BYTES) if opened else b""
        except (tarfile.TarError, OSError):
            pass


def _is_recording(path: Path) -> bool:
    """Whether a file is really a recording (a text named .mp3 is read as text)."""
    if path.suffix.lower() not in _AUDIO_SUFFIXES:
        return False
    try:
        recording = mutagen.File(path)
    except (MutagenError, OSError):
        return False
    return recording is not None and getattr(recording.info, "length", 0) > 0


def _decodings(data: bytes) -> list[str]:
    texts = [data.decode("utf-8", errors="ignore")]
    head = data[:4096]
    if head[:2] in (b"\xff\xfe", b"\xfe\xff") or head.count(0) > len(head) // 8:
        texts += [data.decode(encoding, errors="ignore") for encoding in ("utf-16-le", "utf-16-be")]
    return texts


def _media_text(path: Path) -> str:
    """What a recording's tags (ID3, APEv2, Vorbis comments, MP4 atoms) or an image's text
    chunks, comments and EXIF say."""
    found: list[str] = []
    try:
        recording = mutagen.File(path) if path.suffix.lower() in _AUDIO_SUFFIXES else None
        if recording is not None and recording.tags:
            found.append(recording.tags.pprint())
    except (MutagenError, OSError, ValueError):
        pass
    try:
        if path.suffix.lower() == ".mp3":
            found += [str(value) for value in APEv2(path).values()]
    except (MutagenError, OSError, ValueError):
        pass
    try:
        if path.suffix.lower() in _IMAGES:
            with Image.open(path) as image:
                found += [value.decode("utf-8", "ignore") if isinstance(value, bytes) else str(value)
                          for value in image.info.values()]
    except (OSError, ValueError):
        pass
    return "\n".join(found)


_ZLIB_HEADER = re.compile(rb"\x78[\x01\x5e\x9c\xda]")
_INFLATE_CHUNK = 1 << 14


def _deflated_streams(data: bytes) -> Iterator[bytes]:
    """The content of every zlib stream found in ``data``, wherever it starts."""
    view = memoryview(data)
    for header in _ZLIB_HEADER.finditer(data):
        inflater, start, pieces_ = zlib.decompressobj(), header.start(), []
        try:
            while not inflater.eof and start < len(data):
                pieces_.append(inflater.decompress(view[start:start + _INFLATE_CHUNK]))
                start += _INFLATE_CHUNK
        except zlib.error:
            continue
        if inflater.eof:
            yield b"".join(pieces_)


def _tag_bytes(data: bytes) -> bytes:
    """An mp3's ID3v2 tag (at the start) and ID3v1 tag (the last 128 bytes)."""
    size = 0
    if data[:3] == b"ID3" and len(data) >= 10:
        size = 10 + sum((byte & 0x7F) << (7 * (3 - n)) for n, byte in enumerate(data[6:10]))
    return data[:size] + data[-128:]


def _strings(value) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _sequences(text: str) -> list[Sequence]:
    """The runs of SEQUENCE_WORDS folded words of ``text`` (the whole of a shorter one)."""
    words = [piece.folded for piece in pieces(text)]
    if len(words) < SHORTEST_SEQUENCE:
        return []
    size = min(SEQUENCE_WORDS, len(words))
    return [tuple(words[first:first + size]) for first in range(len(words) - size + 1)]


def _private_sequences(archive: Archive, view: PublicView) -> dict[Sequence, str]:
    """Word sequences that only what may not be published says, and whose they are."""
    private: dict[Sequence, str] = {}
    published = view.slugs
    for episode in archive.episodes:
        if episode.slug in published:
            what, texts = f"restricted words of {episode.slug}", _restricted_passages(episode)
        else:
            what = f"words of unpublished episode {episode.slug}"
            texts = [episode.title, episode.description, *_transcript_passages(episode)]
        for text in texts:
            for sequence in _sequences(text):
                private.setdefault(sequence, what)
    if not private:
        return {}
    said = _said_in_public(view)
    if not len(said):
        return private
    kept = {}
    for size in {len(sequence) for sequence in private}:
        ours = [sequence for sequence in private if len(sequence) == size]
        fingerprints = _fingerprints(np.array([[_word_code(word) for word in sequence] for sequence in ours],
                                              np.uint64))
        at = np.minimum(np.searchsorted(said, fingerprints), len(said) - 1)
        kept.update((sequence, private[sequence]) for sequence, public in zip(ours, said[at] == fingerprints)
                    if not public)
    return kept


def _said_in_public(view: PublicView) -> np.ndarray:
    """The fingerprints (sorted) of every word sequence the public view says, of each
    length a private one can have. An episode's are remembered in the cache under all it
    is made from: a check right after a change reads again only the episodes that
    changed, not every public transcript."""
    archive = view.archive
    found = [_text_fingerprints([archive.title, archive.description, archive.author, archive.license or ""])]
    found += [_episode_fingerprints(episode) for episode in view.episodes]
    return np.unique(np.concatenate(found))


def _episode_fingerprints(episode: PublicEpisode) -> np.ndarray:
    remembered = cache_dir() / "said" / episode.made_from[:2] / f"{episode.made_from}.npy"
    if episode.made_from:
        try:
            return np.load(remembered)
        except (OSError, ValueError, EOFError):
            pass  # not yet, or unreadable: made again
    transcript = episode.transcript
    found = _text_fingerprints([
        episode.title, episode.description, *(chapter.title for chapter in episode.chapters),
        " ".join(w.text for s in transcript.segments for w in s.words),
        *(s.text for s in transcript.segments if not s.words)])
    if episode.made_from:
        kept = io.BytesIO()
        np.save(kept, found)
        write_to_cache(remembered, kept.getvalue())
    return found


def _text_fingerprints(texts: list[str]) -> np.ndarray:
    found = [np.empty(0, np.uint64)]
    for text in texts:
        codes = np.array([_word_code(piece.folded) for piece in pieces(text)], np.uint64)
        found += [_fingerprints(np.lib.stride_tricks.sliding_window_view(codes, size))
                  for size in range(SHORTEST_SEQUENCE, min(SEQUENCE_WORDS, len(codes)) + 1)]
    return np.unique(np.concatenate(found))


# A sequence's fingerprint: each word's 64-bit code times a constant of its place, and
# its length times another, summed (wrapping). Two different sequences share one with a
# chance of about 2**-64: among millions of public ones and thousands of private ones,
# about 1e-8.
_PLACES = np.array([0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0xD6E8FEB86659FD93,
                    0xFF51AFD7ED558CCD, 0xC4CEB9FE1A85EC53], dtype=np.uint64)
_LENGTH = 0x94D049BB133111EB


def _fingerprints(codes: np.ndarray) -> np.ndarray:
    """The fingerprint of each row of ``codes``: a sequence's words' codes."""
    size = codes.shape[-1]
    return (codes * _PLACES[:size]).sum(axis=-1, dtype=np.uint64) + np.uint64(size * _LENGTH % (1 << 64))


@functools.lru_cache(maxsize=1 << 16)
def _word_code(word: str) -> int:
    return int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")


def _transcript_passages(episode: Episode) -> list[str]:
    """The whole transcript as one passage, and each short segment on its own: a passage
    shorter than six words is looked for whole."""
    try:
        transcript = read_transcript(episode.transcript_path)
    except PodarchiveError:
        return []
    if transcript is None:
        return []
    segments = [" ".join(w.text for w in s.words) or s.text for s in transcript.segments]
    return [" ".join(segments), *segments]


def _restricted_passages(episode: Episode) -> list[str]:
    """The runs of words of a published episode that its restrictions cut."""
    try:
        if not episode.restrict and not _RESTRICTED.search(episode.transcript_path.read_bytes()):
            return []
    except OSError:
        return []
    try:
        transcript = read_transcript(episode.transcript_path)
    except PodarchiveError:
        return []
    passages: list[list[str]] = [[]]
    for segment in transcript.segments if transcript else []:
        for word in segment.words:
            if segment.restricted or any(word.start < end and start < word.end
                                         for start, end in episode.restrict):
                passages[-1].append(word.text)
            elif passages[-1]:
                passages.append([])
    return [" ".join(words) for words in passages if words]


def _links(root: Path) -> list[PodarchiveError]:
    """A link under feed/ or index/ publishes whatever it points to, the private archive too."""
    return [PodarchiveError(path, "privacy", f"a link to {path.resolve()}: a web server would publish "
                                             "what it points to; remove it")
            for folder in (layout.feed_dir(root), root / layout.INDEX_DIR) if folder.is_dir()
            for path in sorted(folder.rglob("*")) if path.is_symlink()]



def _unknown_audio(view: PublicView) -> list[PodarchiveError]:
    """Sound under feed/ that podarchive did not publish is not silenced where it must be."""
    published = {layout.audio_file(view.archive.root, slug) for slug in view.slugs}
    folder = layout.feed_dir(view.archive.root)
    return [PodarchiveError(path, "privacy", "a recording podarchive did not publish: nothing in it is "
                                             "silenced where the gate silences; remove it")
            for path in (sorted(folder.rglob("*")) if folder.is_dir() else [])
            if path.is_file() and path.suffix.lower() in _AUDIO_SUFFIXES and path not in published]


def _unpublishable_files(view: PublicView) -> list[PodarchiveError]:
    problems = []
    published = view.slugs
    folder = layout.episodes_dir(view.archive.root)
    for path in sorted(folder.iterdir()) if folder.is_dir() else []:
        if path.name not in published:
            problems.append(PodarchiveError(path, "privacy", "published files of an episode that "
                                                             "may not be published now"))
    return problems


def _audible(view: PublicView, memory: Memory) -> list[PodarchiveError]:
    """Spans the gate silences that can be heard in the published mp3 (each mp3 listened
    to again only when it or its spans change)."""
    problems = []
    for episode in view.episodes:
        mp3 = layout.audio_file(view.archive.root, episode.slug)
        if not episode.silence or not mp3.exists():
            continue
        heard = memory.recall(mp3, functools.partial(_heard, mp3, episode.silence), depends_on=episode.silence)
        problems += [PodarchiveError(mp3, field, message) for field, message in heard]
    return problems


def _heard(mp3: Path, silence: list[tuple[float, float]]) -> list[tuple[str | None, str]]:
    try:
        samples = decode(mp3, probe(mp3), _AUDIT_RATE, stereo=False)[:, 0].astype(np.float64) / 32768
    except PodarchiveError as error:
        return [(error.field, error.message)]
    heard = []
    for start, end in silence:
        first, last = (round((t) * _AUDIT_RATE) for t in (start + EDGE_SECONDS, end - EDGE_SECONDS))
        span = samples[max(first, 0):last]
        if len(span) == 0:
            continue
        level = 20 * np.log10(np.sqrt(np.mean(span ** 2)) + 1e-12)
        if level > AUDIBLE_DBFS:
            heard.append(("privacy", (f"{level:.0f} dBFS from {start:.2f} to {end:.2f} s, where the gate "
                                     "silences a withheld name or passage")))
    return heard
