"""Text for Discord: timestamps, race lines, run times and pages of embeds."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import discord
from discord.utils import escape_markdown, format_dt

from db.models import RaceStatus

EMBED_COLOUR = discord.Colour.blurple()
LINES_PER_PAGE = 10
STATUS_LABELS = {
    RaceStatus.SCHEDULED: "🗓️ scheduled",
    RaceStatus.ROOM_OPEN: "🟢 room open",
    RaceStatus.IN_PROGRESS: "🏁 in progress",
    RaceStatus.FINISHED: "✅ finished",
    RaceStatus.CANCELLED: "❌ cancelled",
}
# The states in plain words, where an emoji or a Discord timestamp cannot show (autocomplete choices).
STATE_WORDS = {
    RaceStatus.SCHEDULED: "scheduled",
    RaceStatus.ROOM_OPEN: "room open",
    RaceStatus.IN_PROGRESS: "racing",
    RaceStatus.FINISHED: "finished",
    RaceStatus.CANCELLED: "cancelled",
}


def ts(when: datetime, style: str = "f") -> str:
    """A Discord timestamp; refuses naive datetimes, which Discord would read as the server's local time."""
    if when.tzinfo is None:
        raise ValueError("naive datetime given to a Discord timestamp")
    return format_dt(when, style)  # type: ignore[arg-type]


def when_line(when: datetime) -> str:
    return f"{ts(when, 'F')} ({ts(when, 'R')})"


def safe(text: str | None, limit: int = 100) -> str:
    """User-supplied text, safe from markdown and shortened."""
    return escape_markdown(shorten(text or "", limit))


def shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def status_label(status: RaceStatus | str) -> str:
    return STATUS_LABELS.get(RaceStatus(status), str(status))


def race_title(race) -> str:
    return f"#{race.id} {safe(race.title, 80)}"


def race_line(view) -> str:
    """One line of a race list: number, title, tournament and pool, start, status."""
    race = view.race
    return (
        f"`#{race.id}` **{safe(race.title, 60)}** · {safe(view.tournament.name, 40)} / {safe(view.pool.name, 30)}"
        f" · {ts(race.scheduled_at, 'f')} ({ts(race.scheduled_at, 'R')}) · {status_label(race.status)}"
    )


def run_time(elapsed_us: int | None) -> str:
    """RaceTime.gg's display: hours:minutes:seconds, the fraction cut off."""
    if elapsed_us is None:
        return "—"
    seconds = elapsed_us // 1_000_000
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def on_off(value: bool | None) -> str:
    return "on" if value else "off"


def pages(
    title: str,
    lines: Sequence[str],
    *,
    empty: str,
    description: str | None = None,
    footer: str | None = None,
    per_page: int = LINES_PER_PAGE,
) -> list[discord.Embed]:
    """Split lines into embeds of `per_page` lines; page numbers go into the footer."""
    if not lines:
        return [discord.Embed(title=title, description=empty, colour=EMBED_COLOUR)]
    chunks = [lines[start : start + per_page] for start in range(0, len(lines), per_page)]
    embeds = []
    for number, chunk in enumerate(chunks, start=1):
        body = "\n".join(chunk)
        if description:
            body = f"{description}\n\n{body}"
        embed = discord.Embed(title=title, description=body[:4096], colour=EMBED_COLOUR)
        parts = [f"Page {number} of {len(chunks)}"] if len(chunks) > 1 else []
        if footer:
            parts.append(footer)
        if parts:
            embed.set_footer(text=" · ".join(parts))
        embeds.append(embed)
    return embeds
