"""Pagination helpers: every list answers `{"items": [...], "next_cursor": ...}`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel

from bot.api.schemas import PageQuery
from bot.services.common import Page, decode_cursor, make_page, page_limit

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)


def page_of(items: Sequence[T], query: PageQuery, id_of: Callable[[T], int]) -> Page[T]:
    """Page a short list a service returns whole (pools, seeds, room profiles), in id order."""
    limit = page_limit(query.limit)
    after = decode_cursor(query.cursor)
    ordered = sorted(items, key=id_of)
    if after is not None:
        ordered = [item for item in ordered if id_of(item) > after]
    return make_page(ordered[: limit + 1], limit, id_of)


def items_page(model: type[M], page: Page[T], convert: Callable[[T], Any]) -> M:
    return model(items=[convert(item) for item in page.items], next_cursor=page.next_cursor)
