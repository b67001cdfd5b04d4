"""The score chart of /tournament me: a PNG for any number of pools."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from cogs._common.charts import BAR, HEIGHT, MIN_WIDTH, score_chart


@pytest.mark.parametrize("pools", [0, 1, 50])
def test_the_chart_renders_for_any_number_of_pools(pools: int) -> None:
    bars = [(f"Pool {n} with a rather long name", None if n % 7 == 3 else float(n * 13 % 106)) for n in range(pools)]
    png = score_chart(bars, title="Spring Cup - alice")
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG" and image.height == HEIGHT
    assert image.width >= MIN_WIDTH and (pools < 50 or image.width >= 50 * 20)  # fifty bars get room
    assert len(image.convert("RGB").getcolors(1 << 20)) > 3  # something was drawn besides the background


def test_a_higher_score_draws_a_taller_bar() -> None:
    def bar_pixels(score: float) -> int:
        image = Image.open(io.BytesIO(score_chart([("A", score)], title="t"))).convert("RGB")
        return dict((colour, count) for count, colour in image.getcolors(1 << 20)).get(BAR, 0)

    assert 0 < bar_pixels(20.0) < bar_pixels(60.0) < bar_pixels(105.0)
    assert bar_pixels(105.0) == bar_pixels(150.0)  # clamped to the scale
