"""The console's favicon, drawn here: a Material icon as page_icon makes the browser fetch it from
fonts.gstatic.com, and an internal console makes no request to the internet on its own."""
from __future__ import annotations

from functools import lru_cache

from PIL import Image, ImageDraw

_PURPLE = "#6C5CE7"  # the theme's primaryColor
_BOLT = [(36, 6), (14, 36), (30, 36), (24, 58), (50, 24), (34, 24), (40, 6)]


@lru_cache(maxsize=1)
def favicon() -> Image.Image:
    """A white lightning bolt on the theme's purple, 64×64 (served by the console itself)."""
    image = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.rounded_rectangle((0, 0, 63, 63), radius=14, fill=_PURPLE)
    draw.polygon(_BOLT, fill="white")
    return image
