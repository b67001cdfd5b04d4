"""A Discord-free message: what the renderer produces and the delivery adapter turns into an embed.

Discord rejects an embed with an empty field name or value, or any part over its length limit, so the
structure repairs itself on construction: empty text becomes a dash, long text is cut with an ellipsis, and
past the 6000-character total the last fields go before the description is cut.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

TITLE_LIMIT = 256
DESCRIPTION_LIMIT = 4096
FIELD_NAME_LIMIT = 256
FIELD_VALUE_LIMIT = 1024
FIELD_COUNT_LIMIT = 25
FOOTER_LIMIT = 2048
EMBED_TOTAL_LIMIT = 6000
CONTENT_LIMIT = 2000
PLACEHOLDER = "—"
MIN_DESCRIPTION = 200


def fit(text: str | None, limit: int, *, placeholder: str = PLACEHOLDER) -> str:
    """Non-empty text of at most `limit` characters."""
    text = (text or "").strip()
    if not text:
        return placeholder
    if len(text) > limit:
        return text[: limit - 1].rstrip() + "…"
    return text


@dataclass(frozen=True)
class MessageField:
    name: str
    value: str
    inline: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", fit(self.name, FIELD_NAME_LIMIT))
        object.__setattr__(self, "value", fit(self.value, FIELD_VALUE_LIMIT))


@dataclass(frozen=True)
class NotificationMessage:
    title: str
    description: str
    colour: int
    url: str | None = None
    fields: tuple[MessageField, ...] = ()
    footer: str | None = None
    timestamp: datetime | None = None
    # Plain text above the embed (a role ping in an announcement channel).
    content: str | None = None
    # The only roles `content` may ping; anything else in it stays inert.
    mention_role_ids: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "title", fit(self.title, TITLE_LIMIT))
        object.__setattr__(self, "fields", tuple(self.fields)[:FIELD_COUNT_LIMIT])
        object.__setattr__(self, "footer", fit(self.footer, FOOTER_LIMIT) if self.footer else None)
        object.__setattr__(self, "content", fit(self.content, CONTENT_LIMIT) if self.content else None)
        while self.fields and self._fixed_length() > EMBED_TOTAL_LIMIT - MIN_DESCRIPTION:
            object.__setattr__(self, "fields", self.fields[:-1])  # the last fields are the least important
        budget = EMBED_TOTAL_LIMIT - self._fixed_length()
        object.__setattr__(self, "description", fit(self.description, max(1, min(DESCRIPTION_LIMIT, budget))))

    def _fixed_length(self) -> int:
        """Characters that count toward Discord's 6000 total, apart from the description."""
        return len(self.title) + sum(len(f.name) + len(f.value) for f in self.fields) + len(self.footer or "")

    @property
    def total_length(self) -> int:
        return self._fixed_length() + len(self.description)
