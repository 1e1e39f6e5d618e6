"""The Jinja2 environment of the web UI (autoescaped) and the small filters its templates use."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import phonenumbers
from fastapi.templating import Jinja2Templates

WEB_DIR = Path(__file__).parent
STATIC_DIR = WEB_DIR / "static"

templates = Jinja2Templates(directory=WEB_DIR / "templates")


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def ago(moment: datetime | None, now: datetime | None = None) -> str:
    """Compact relative time for lists ("now", "5m", "3h", "2d", then the date)."""
    if moment is None:
        return ""
    seconds = ((now or datetime.now(UTC)) - _aware(moment)).total_seconds()
    if seconds < 60:
        return "now"
    if seconds < 3600:
        return f"{int(seconds // 60)}m"
    if seconds < 86400:
        return f"{int(seconds // 3600)}h"
    if seconds < 7 * 86400:
        return f"{int(seconds // 86400)}d"
    return _aware(moment).strftime("%d %b")


def clock(moment: datetime | None) -> str:
    return _aware(moment).strftime("%H:%M") if moment else ""


def day(moment: datetime | None) -> str:
    return _aware(moment).strftime("%A, %d %B %Y") if moment else ""


def initials(name: str | None) -> str:
    words = [word for word in (name or "").replace("+", " ").split() if word[:1].isalnum()]
    if not words:
        return "?"
    if len(words) == 1:
        return words[0][:2].upper()
    return (words[0][0] + words[-1][0]).upper()


def hue(seed: object) -> int:
    """A stable avatar colour per person."""
    return int(hashlib.sha256(str(seed).encode()).hexdigest()[:4], 16) % 360


def iso(moment: datetime | None) -> str:
    return _aware(moment).isoformat() if moment else ""


def phone(number: str | None) -> str:
    """E.164 as people write it (``+34 612 34 56 78``); anything unparsable is shown as stored."""
    if not number:
        return ""
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return number
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.INTERNATIONAL)


templates.env.filters.update(ago=ago, clock=clock, day=day, initials=initials, hue=hue, iso=iso, phone=phone)
