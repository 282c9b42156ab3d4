"""Compose a character sheet: a titled image with a row of views and a row of expressions, labelled.

The layout is also written into the PNG as text chunks (``Title`` and ``Layout``, JSON with each
panel's box and label box), so a caller can crop panels back out or check what is where.
"""
from __future__ import annotations

import io
import json
from collections.abc import Mapping
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFont, PngImagePlugin

from lib.images import load_image

VIEW_ORDER = ("front", "three_quarter", "profile", "back")
EXPRESSION_ORDER = ("neutral", "smiling", "angry", "surprised", "sad")
LABELS = {"front": "Front", "three_quarter": "Three-quarter", "profile": "Profile", "back": "Back",
          "neutral": "Neutral", "smiling": "Smiling", "angry": "Angry", "surprised": "Surprised",
          "sad": "Sad"}
ROW_TITLES = {"views": "Views", "expressions": "Expressions"}

MARGIN = 32
GAP = 20
VIEW_HEIGHT = 480
EXPRESSION_HEIGHT = 300
TITLE_SIZE = 40
ROW_TITLE_SIZE = 24
LABEL_SIZE = 24
LABEL_BAND = 44
BACKGROUND = (255, 255, 255)
INK = (30, 30, 36)
MUTED = (110, 110, 120)
FRAME = (210, 210, 215)


@dataclass(frozen=True)
class PlacedPanel:
    key: str
    label: str
    box: tuple[int, int, int, int]        # x, y, width, height of the picture
    label_box: tuple[int, int, int, int]  # the band under it holding the label


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    # DejaVu covers dashes and accented names; Pillow's bundled font is the fallback when the
    # machine has no DejaVu (no system font is required).
    try:
        return ImageFont.truetype("DejaVuSans.ttf", size)
    except OSError:
        return ImageFont.load_default(size=size)


def _fit_text(draw: ImageDraw.ImageDraw, text: str, font, max_width: int) -> str:
    if draw.textlength(text, font=font) <= max_width:
        return text
    while text and draw.textlength(text + "…", font=font) > max_width:
        text = text[:-1]
    return text + "…"


def compose_sheet(panels: Mapping[str, bytes], title: str) -> bytes:
    """A labelled sheet (views row, then expressions row) as PNG bytes.

    ``panels`` maps panel keys (front, three_quarter, profile, back, neutral, smiling, angry, surprised,
    sad) to image bytes; missing panels are left out, unknown keys raise ValueError and unreadable
    images raise lib.images.ImageError naming the panel.
    """
    unknown = sorted(set(panels) - set(LABELS))
    if unknown:
        raise ValueError(f"unknown sheet panel(s) {', '.join(unknown)}; known: {', '.join(LABELS)}")
    if not panels:
        raise ValueError("there are no finished panels to put on the sheet yet")
    rows = [(name, [k for k in order if k in panels], height)
            for name, order, height in (("views", VIEW_ORDER, VIEW_HEIGHT),
                                        ("expressions", EXPRESSION_ORDER, EXPRESSION_HEIGHT))]
    rows = [row for row in rows if row[1]]
    images = {key: load_image(f"{LABELS[key]} panel", data).image for key, data in panels.items()}
    scaled: dict[str, Image.Image] = {}
    for _, keys, height in rows:
        for key in keys:
            im = images[key]
            width = max(1, round(im.width * height / im.height))
            scaled[key] = im.resize((width, height), Image.Resampling.LANCZOS)
    row_widths = [sum(scaled[k].width for k in keys) + GAP * (len(keys) - 1) for _, keys, _ in rows]
    width = max(row_widths + [640]) + 2 * MARGIN
    title_font, row_font, label_font = _font(TITLE_SIZE), _font(ROW_TITLE_SIZE), _font(LABEL_SIZE)
    title_band = TITLE_SIZE + 28
    row_title_band = ROW_TITLE_SIZE + 14
    height = MARGIN + title_band + sum(row_title_band + h + LABEL_BAND + GAP for _, _, h in rows) + MARGIN - GAP

    sheet = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    title_text = _fit_text(draw, title.strip() or "Character sheet", title_font, width - 2 * MARGIN)
    draw.text((MARGIN, MARGIN), title_text, font=title_font, fill=INK)
    y = MARGIN + title_band
    placed: list[PlacedPanel] = []
    for (name, keys, row_height), row_width in zip(rows, row_widths, strict=True):
        draw.text((MARGIN, y), ROW_TITLES[name], font=row_font, fill=MUTED)
        y += row_title_band
        x = MARGIN + (width - 2 * MARGIN - row_width) // 2
        for key in keys:
            im = scaled[key]
            sheet.paste(im, (x, y))
            draw.rectangle((x - 1, y - 1, x + im.width, y + im.height), outline=FRAME)
            label = _fit_text(draw, LABELS[key], label_font, im.width)
            text_w = draw.textlength(label, font=label_font)
            draw.text((x + (im.width - text_w) / 2, y + row_height + 10), label, font=label_font, fill=INK)
            placed.append(PlacedPanel(key, LABELS[key], (x, y, im.width, row_height),
                                      (x, y + row_height, im.width, LABEL_BAND)))
            x += im.width + GAP
        y += row_height + LABEL_BAND + GAP

    info = PngImagePlugin.PngInfo()
    info.add_itxt("Title", title_text)
    info.add_itxt("Layout", json.dumps([{"key": p.key, "label": p.label, "box": list(p.box),
                                         "label_box": list(p.label_box)} for p in placed]))
    buf = io.BytesIO()
    sheet.save(buf, "PNG", pnginfo=info)
    return buf.getvalue()


def sheet_layout(png: bytes) -> list[PlacedPanel]:
    """The panel layout stored in a sheet made by :func:`compose_sheet`."""
    with Image.open(io.BytesIO(png)) as im:
        raw = getattr(im, "text", {}).get("Layout")
    if not raw:
        raise ValueError("this image carries no character-sheet layout")
    return [PlacedPanel(e["key"], e["label"], tuple(e["box"]), tuple(e["label_box"])) for e in json.loads(raw)]
