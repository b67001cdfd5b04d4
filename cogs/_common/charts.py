"""A small bar chart of a player's score per pool, as PNG bytes, drawn with Pillow.

Pillow is imported on first use (docs/architecture.md says why it and not matplotlib): a bot that nobody asks for
a chart never loads it. Drawing is plain CPU work of a few milliseconds; callers run it in a thread.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

MAX_SCORE = 105.0
HEIGHT = 320
TOP, BOTTOM, LEFT, RIGHT = 34, 96, 44, 16  # margins: title above, pool names below, score axis left
MIN_WIDTH, BAR_STEP, MAX_BAR = 360, 22, 48
LABEL_CHARS = 14
BACKGROUND, AXIS, GRID, TEXT = (47, 49, 54), (185, 187, 190), (70, 72, 78), (220, 221, 222)
BAR, EMPTY = (88, 101, 242), (114, 118, 125)


def _font(size: int) -> Any:
    from PIL import ImageFont  # on first use, like the rest of Pillow

    try:
        return ImageFont.load_default(size=size)  # Pillow's own scalable font: no system fonts needed
    except (TypeError, OSError, ImportError):  # a Pillow built without FreeType: its fixed bitmap font
        return ImageFont.load_default()


def score_chart(bars: Sequence[tuple[str, float | None]], *, title: str) -> bytes:
    """One bar per pool, 0–105; a pool without a run is a grey stub. Works for any number of pools, none too."""
    from PIL import Image, ImageDraw

    count = len(bars)
    plot_width = max(MIN_WIDTH - LEFT - RIGHT, count * BAR_STEP)
    width = LEFT + plot_width + RIGHT
    image = Image.new("RGB", (width, HEIGHT), BACKGROUND)
    draw = ImageDraw.Draw(image)
    small, normal = _font(11), _font(13)
    draw.text((LEFT, 10), title[:80], fill=TEXT, font=normal)
    bottom = HEIGHT - BOTTOM

    def y_of(score: float) -> float:
        return bottom - (bottom - TOP) * max(0.0, min(score, MAX_SCORE)) / MAX_SCORE

    for tick in (0, 25, 50, 75, 100):
        y = y_of(tick)
        draw.line([(LEFT, y), (width - RIGHT, y)], fill=GRID if tick else AXIS)
        draw.text((LEFT - 6, y), str(tick), fill=AXIS, font=small, anchor="rm")
    if count == 0:
        draw.text((LEFT + plot_width / 2, (TOP + bottom) / 2), "no pools yet", fill=AXIS, font=normal, anchor="mm")
    step = plot_width / max(count, 1)
    bar_width = max(4.0, min(MAX_BAR, step * 0.7))
    for index, (name, score) in enumerate(bars):
        middle = LEFT + step * (index + 0.5)
        left, right = middle - bar_width / 2, middle + bar_width / 2
        if score is None:
            draw.rectangle([(left, bottom - 2), (right, bottom)], fill=EMPTY)
        else:
            draw.rectangle([(left, y_of(score)), (right, bottom)], fill=BAR)
            if count <= 20:
                draw.text((middle, y_of(score) - 3), f"{score:.0f}", fill=TEXT, font=small, anchor="mb")
        _vertical_label(image, name, middle, bottom + 6, small)
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()


def _vertical_label(image: Any, text: str, middle: float, top: float, font: Any) -> None:
    """The pool's name under its bar, turned a quarter so fifty of them fit."""
    from PIL import Image, ImageDraw

    text = text if len(text) <= LABEL_CHARS else text[: LABEL_CHARS - 1] + "…"
    left, upper, right, lower = font.getbbox(text)
    label = Image.new("RGBA", (max(1, right - left + 2), max(1, lower - upper + 2)), (0, 0, 0, 0))
    ImageDraw.Draw(label).text((1 - left, 1 - upper), text, fill=TEXT, font=font)
    turned = label.rotate(90, expand=True)
    image.paste(turned, (int(middle - turned.width / 2), int(top)), turned)
