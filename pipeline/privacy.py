"""The one gate every publishing stage asks: may this episode be published today?"""

from __future__ import annotations

import datetime as dt

from .model import Episode


def publishable(episode: Episode, today: dt.date) -> bool:
    """Public (or embargoed past its date) and already released; restricted never."""
    if episode.date > today:
        return False
    if episode.status == "public":
        return True
    if episode.status == "embargoed":
        return episode.embargo_until is not None and episode.embargo_until <= today
    return False
