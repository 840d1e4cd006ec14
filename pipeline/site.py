"""The archive as a website: feed/index.html and each episode's page.

Static pages that work on any static host (every link relative, nothing loaded from
another host, everything readable without script), written from the public view with
the feed. `podarchive serve` answers them and adds search (pipeline/serve.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources

from . import layout
from .enclosure import PublishedAudio
from .formats import TEMPLATES, WRITERS, clock, paragraphs, segment_text, spoken_span
from .model import Outcome, Status
from .privacy import PublicArchive, PublicEpisode, PublicView, withdraw_file
from .storage import write_if_changed

# The one stylesheet and the one script of every page, copied from pipeline/static.
ASSETS = ("site.css", "site.js")

WORDS = {
    "en": {
        "skip": "Skip to content", "search_label": "Search the transcripts", "search": "Search",
        "feed": "RSS feed", "episodes": "Episodes", "subscribe": "Subscribe",
        "subscribe_text": "Add this address to your podcast app:", "published": "Published",
        "duration": "Duration", "language": "Language", "with": "With", "transcript": "Transcript",
        "chapters": "Chapters", "downloads": "Downloads", "listen": "Listen",
        "captions": "Captions", "follow": "Follow the audio in the transcript",
        "description": "About this episode", "colon": ":", "no_episodes": "No episode is published yet.",
        "machine": "Transcribed automatically by podarchive: it may contain errors.",
        "reviewed": "Transcript reviewed by the producers.",
        "results": "Results", "results_for": "Results for", "no_results": "Nothing found.",
        "listen_from": "Listen from", "previous": "Previous results", "next": "More results",
        "search_title": "Search", "audio_note": "Your browser cannot play this audio:",
        "audio_download": "download the MP3",
    },
    "fr": {
        "skip": "Aller au contenu", "search_label": "Chercher dans les transcriptions",
        "search": "Chercher", "feed": "Flux RSS", "episodes": "Épisodes", "subscribe": "S’abonner",
        "subscribe_text": "Ajoutez cette adresse à votre application de podcasts\u00a0:",
        "published": "Publié le", "duration": "Durée", "language": "Langue", "with": "Avec",
        "transcript": "Transcription", "chapters": "Chapitres", "downloads": "Téléchargements",
        "listen": "Écouter", "captions": "Sous-titres",
        "follow": "Suivre l’audio dans la transcription", "description": "À propos de cet épisode",
        "colon": "\u00a0:", "no_episodes": "Aucun épisode n’est encore publié.",
        "machine": "Transcription automatique par podarchive : elle peut contenir des erreurs.",
        "reviewed": "Transcription revue par l'équipe.",
        "results": "Résultats", "results_for": "Résultats pour", "no_results": "Aucun résultat.",
        "listen_from": "Écouter à partir de", "previous": "Résultats précédents",
        "next": "Plus de résultats", "search_title": "Recherche",
        "audio_note": "Votre navigateur ne peut pas lire cet audio\u00a0:",
        "audio_download": "téléchargez le MP3",
    },
}
LANGUAGE_NAMES = {"en": {"en": "English", "fr": "French", "de": "German"},
                  "fr": {"en": "anglais", "fr": "français", "de": "allemand"}}
ROLE_NAMES = {"en": {"host": "host", "guest": "guest", "narrator": "narrator", "interviewer": "interviewer"},
              "fr": {"host": "animation", "guest": "invité·e", "narrator": "narration",
                     "interviewer": "entretien"}}
DOWNLOADS = {"vtt": "WebVTT", "srt": "SRT", "txt": "Text", "json": "Podcasting 2.0 JSON", "html": "HTML"}


def _in(table: dict[str, dict[str, str]], language: str) -> dict[str, str]:
    """``table``'s words for ``language`` (English for a language without its own)."""
    return table.get(language.split("-")[0], table["en"])


def page_words(language: str) -> dict[str, str]:
    return _in(WORDS, language)




@dataclass(frozen=True)
class SiteHeader:
    """What every page says of its archive, whoever renders it."""

    title: str
    language: str
    license: str | None = None


def render_page(template: str, site: SiteHeader, *, root: str, language: str | None = None, **context) -> str:
    """One page of the site; ``root`` is the relative way from the page to feed/ ("../../")."""
    lang = language or site.language
    words = page_words(lang)
    return TEMPLATES.get_template(f"site/{template}").render(
        archive=site, lang=lang, words=words, root=root, **context)


def relative(archive: PublicArchive, url: str | None, root: str) -> str | None:
    """A public URL as the page at ``root`` links it: a file of feed/ by a relative path,
    so the site works wherever it is served."""
    if url and url.startswith(archive.base_url):
        return root + url[len(archive.base_url):]
    return url


def _shared(title: str, description: str, url: str, image: str, metadata: dict, audio: str | None = None) -> dict:
    """What a page says of itself to a link preview (Open Graph) and a search engine (schema.org)."""
    # In a <script> element "</" would end it: JSON allows the escape.
    json_ld = json.dumps(metadata, ensure_ascii=False, indent=1).replace("<", "\\u003c")
    return {"title": title, "description": description, "url": url, "image": image, "audio": audio,
            "json_ld": json_ld}


def newest_first(listed: list[tuple[PublicEpisode, PublishedAudio]]) -> list[tuple[PublicEpisode, PublishedAudio]]:
    """The order of the feed's items and the home page's list."""
    return sorted(listed, key=lambda pair: (pair[0].released, pair[0].number or 0, pair[0].slug), reverse=True)


def _language_name(names: dict[str, str], code: str) -> str:
    return names.get(code.split("-")[0], code)


def iso_duration(seconds: float) -> str:
    whole = round(seconds)
    return f"PT{whole // 3600}H{whole % 3600 // 60}M{whole % 60}S"


def episode_page(archive: PublicArchive, episode: PublicEpisode, audio: PublishedAudio, cover: str) -> str:
    transcript = episode.transcript
    lang = episode.content_language or archive.language
    names, roles = _in(LANGUAGE_NAMES, lang), _in(ROLE_NAMES, lang)
    url = layout.episode_page_url(archive.base_url, episode.slug)
    audio_url = layout.audio_url(archive.base_url, episode.slug)
    downloads = [(f"{DOWNLOADS[name]} (transcript.{name})", f"transcript.{name}") for name in WRITERS]
    if episode.chapters:
        downloads.append((f"{page_words(lang)['chapters']} (chapters.json)", layout.CHAPTERS_FILE))
    downloads.append((f"MP3 ({layout.AUDIO_FILE})", layout.AUDIO_FILE))
    speaking = [{
        "anchor": p.anchor, "timestamp": p.timestamp, "start": f"{p.start:.2f}", "speaker": p.speaker,
        "language": p.language if p.language and p.language != lang else None,
        "segments": [{"id": s.id, "text": segment_text(s), "start": f"{spoken_span(s)[0]:.2f}",
                      "end": f"{spoken_span(s)[1]:.2f}"} for s in p.segments],
    } for p in paragraphs(transcript)]
    metadata = {
        "@context": "https://schema.org", "@type": "PodcastEpisode", "name": episode.title,
        "url": url, "datePublished": episode.date.isoformat(), "inLanguage": lang,
        "description": episode.description or episode.title, "timeRequired": iso_duration(audio.duration),
        "associatedMedia": {"@type": "AudioObject", "contentUrl": audio_url, "encodingFormat": "audio/mpeg",
                            "duration": iso_duration(audio.duration)},
        "partOfSeries": {"@type": "PodcastSeries", "name": archive.title, "url": archive.base_url},
        "image": cover,
        "actor": [{"@type": "Person", "name": person.name} for person in episode.persons],
    }
    if episode.number:
        metadata["episodeNumber"] = episode.number
    return render_page(
        "episode.html", SiteHeader(archive.title, archive.language, archive.license), root="../../",
        language=lang, episode=episode, duration=clock(round(audio.duration)),
        language_name=_language_name(names, lang), paragraphs=speaking, downloads=downloads,
        persons=[{"name": p.name, "role": roles.get(p.role, p.role), "href": p.href} for p in episode.persons],
        chapters=[{"start": f"{c.start:.2f}", "clock": clock(c.start), "title": c.title} for c in episode.chapters],
        reviewed=transcript.reviewed,
        shared=_shared(episode.title, episode.description or episode.title, url, cover, metadata, audio_url),
    )


def home_page(archive: PublicArchive, listed: list[tuple[PublicEpisode, PublishedAudio]], cover: str) -> str:
    lang = archive.language
    names, roles = _in(LANGUAGE_NAMES, lang), _in(ROLE_NAMES, lang)
    feed_url = layout.feed_url(archive.base_url)
    episodes = [{
        "href": layout.episode_path(episode.slug),
        "title": episode.title, "date": episode.date.isoformat(), "duration": clock(round(audio.duration)),
        "language": episode.content_language,
        "language_name": _language_name(names, episode.content_language),
        "persons": [{"name": p.name, "role": roles.get(p.role, p.role)} for p in episode.persons],
        "description": episode.description,
    } for episode, audio in newest_first(listed)]
    metadata = {
        "@context": "https://schema.org", "@type": "PodcastSeries", "name": archive.title,
        "description": archive.description, "url": archive.base_url, "webFeed": feed_url,
        "inLanguage": lang, "image": cover, "author": {"@type": "Organization", "name": archive.author},
    }
    return render_page(
        "home.html", SiteHeader(archive.title, lang, archive.license), root="",
        description=archive.description, episodes=episodes, feed_url=feed_url,
        image=relative(archive, cover, ""),
        shared=_shared(archive.title, archive.description, archive.base_url, cover, metadata),
    )


def write_site(view: PublicView, listed: list[tuple[PublicEpisode, PublishedAudio]], cover: str) -> list[Outcome]:
    """feed/index.html, the page of every episode in ``listed`` (those feed.xml lists),
    the stylesheet and the script; the pages of the other episodes removed."""
    archive = view.archive
    feed = layout.feed_dir(archive.root)
    changed = sum(write_if_changed(feed / name, (resources.files("pipeline") / "static" / name).read_bytes())
                  for name in ASSETS)
    for episode, audio in listed:
        changed += write_if_changed(layout.episode_page(archive.root, episode.slug),
                                    episode_page(archive, episode, audio, cover).encode("utf-8"))
    changed += write_if_changed(layout.home_page(archive.root), home_page(archive, listed, cover).encode("utf-8"))
    # Out of the feed (its audio withdrawn until it is made again, say): its page may
    # show what must not be shown now, and leads to no audio.
    shown = {episode.slug for episode, _ in listed}
    withdrawn = [withdraw_file(page, episode.slug, "page removed until the episode is published again")
                 for episode in view.episodes if episode.slug not in shown
                 and (page := layout.episode_page(archive.root, episode.slug)).exists()]
    return withdrawn + ([Outcome("site", Status.WRITTEN, f"{changed} file(s) of the website")] if changed else [])

