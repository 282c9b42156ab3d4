"""X/Y comparison grids: plan one job per cell, then compose the results into one labelled image.

The axes are any two of {LoRA file, LoRA strength, prompt, seed}; everything else stays fixed,
including the seed unless it is an axis, so a column differs from its neighbour only by the axis
value. Composition is deterministic: the same cells give the same PNG bytes.
"""
from __future__ import annotations

import io
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

from PIL import Image, ImageDraw, ImageFont, UnidentifiedImageError

from lib.errors import ConsoleError

GRID_PARAMS = ("lora_name", "lora_strength", "prompt", "seed")
AXIS_TITLES = {"lora_name": "LoRA", "lora_strength": "LoRA strength", "prompt": "Prompt", "seed": "Seed"}
MAX_CELLS = 64
CELL_MAX = 320          # px: longest side of a cell's thumbnail
LABEL_WIDTH = 200       # px: the row-label column
FONT_SIZE = 15
BACKGROUND = (250, 250, 250)
MISSING_FILL = (150, 150, 150)
TEXT = (25, 25, 25)


class GridError(ConsoleError, ValueError):
    """The grid cannot be planned or composed as asked; the message says what to change."""


@dataclass(frozen=True)
class GridAxis:
    param: str
    values: tuple

    def __init__(self, param: str, values: Sequence):
        object.__setattr__(self, "param", param)
        object.__setattr__(self, "values", tuple(values))

    @property
    def title(self) -> str:
        return AXIS_TITLES.get(self.param, self.param)


@dataclass(frozen=True)
class GridCell:
    x_value: object
    y_value: object
    params: Mapping[str, object]
    row: int
    col: int


def _check_axis(axis: GridAxis) -> None:
    if axis.param not in GRID_PARAMS:
        raise GridError(f"a grid axis must be one of {', '.join(AXIS_TITLES[p] for p in GRID_PARAMS)}, "
                        f"not {axis.param!r}")
    if not axis.values:
        raise GridError(f"the {axis.title} axis has no values: add at least one")
    if len(set(map(repr, axis.values))) != len(axis.values):
        raise GridError(f"the {axis.title} axis lists the same value twice")
    for value in axis.values:
        if axis.param == "seed" and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise GridError(f"seed {value!r} on the Seed axis must be a whole number ≥ 0")
        if axis.param == "lora_strength" and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise GridError(f"LoRA strength {value!r} must be a number")
        if axis.param == "prompt" and (not isinstance(value, str) or not value.strip()):
            raise GridError("a prompt on the Prompt axis is empty")
        if axis.param == "lora_name" and value is not None and not isinstance(value, str):
            raise GridError(f"LoRA {value!r} must be a file name (or None for no LoRA)")


def plan_grid(x_axis: GridAxis, y_axis: GridAxis, base_params: Mapping[str, object]) -> list[GridCell]:
    """One cell per (y, x) pair, row by row; each cell's params are the base with both axis values."""
    _check_axis(x_axis)
    _check_axis(y_axis)
    if x_axis.param == y_axis.param:
        raise GridError(f"both axes are {x_axis.title}: choose two different ones")
    count = len(x_axis.values) * len(y_axis.values)
    if count > MAX_CELLS:
        raise GridError(f"{len(x_axis.values)} × {len(y_axis.values)} = {count} cells is more than "
                        f"{MAX_CELLS}: remove some values")
    if "seed" not in (x_axis.param, y_axis.param) and base_params.get("seed") is None:
        raise GridError("a grid compares at a fixed seed: set the seed (or make Seed an axis)")
    cells = []
    for row, y in enumerate(y_axis.values):
        for col, x in enumerate(x_axis.values):
            params = {**base_params, x_axis.param: x, y_axis.param: y}
            cells.append(GridCell(x, y, params, row, col))
    return cells


def format_value(value: object) -> str:
    """How an axis value reads on the grid: LoRA files by name, numbers compactly."""
    if value is None:
        return "no LoRA"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, str) and PurePosixPath(value).suffix in (".safetensors", ".ckpt", ".pt"):
        return PurePosixPath(value).stem
    return str(value)


def _font(size: int = FONT_SIZE) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def _wrap(text: str, width_px: int, max_lines: int, size: int = FONT_SIZE) -> list[str]:
    chars = max(6, int(width_px / (size * 0.55)))
    lines = textwrap.wrap(text, chars) or [""]
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = lines[-1][: max(0, chars - 1)].rstrip() + "…"
    return lines


def _thumbnail(data: bytes) -> Image.Image | None:
    try:
        with Image.open(io.BytesIO(data)) as image:
            image = image.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError):
        return None
    image.thumbnail((CELL_MAX, CELL_MAX), Image.Resampling.LANCZOS)
    return image


def compose_grid(cells_with_png_bytes: Sequence[tuple[GridCell, bytes | str | None]], x_label: str,
                 y_label: str, x_values: Sequence, y_values: Sequence) -> bytes:
    """One PNG: column labels on top, row labels on the left, each cell's image in place.

    A cell's image is PNG/JPEG bytes; `None` (no result yet) or a string (why it failed, e.g.
    "FAILED") is drawn as a grey box with that label, as is any cell missing from the list.
    """
    if not x_values or not y_values:
        raise GridError("a grid needs at least one value on each axis")
    images: dict[tuple[int, int], Image.Image | str] = {}
    for cell, data in cells_with_png_bytes:
        if not (0 <= cell.row < len(y_values) and 0 <= cell.col < len(x_values)):
            raise GridError(f"cell at row {cell.row}, column {cell.col} is outside the "
                            f"{len(y_values)} × {len(x_values)} grid")
        if isinstance(data, (bytes, bytearray)):
            images[(cell.row, cell.col)] = _thumbnail(bytes(data)) or "unreadable image"
        else:
            images[(cell.row, cell.col)] = data or "no image"
    sizes = [im.size for im in images.values() if isinstance(im, Image.Image)]
    cell_w = max((w for w, _ in sizes), default=CELL_MAX * 3 // 4)
    cell_h = max((h for _, h in sizes), default=CELL_MAX * 3 // 4)
    gap, pad = 6, 12
    font, title_font = _font(), _font(FONT_SIZE + 3)
    line = int(FONT_SIZE * 1.35)
    col_labels = [_wrap(format_value(v), cell_w, 3) for v in x_values]
    header = pad + int((FONT_SIZE + 3) * 1.5) + line * max(len(lbl) for lbl in col_labels) + gap
    left = pad + LABEL_WIDTH
    width = left + len(x_values) * (cell_w + gap) + pad
    height = header + len(y_values) * (cell_h + gap) + pad
    canvas = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    draw.text((left, pad), f"{x_label} (columns)", font=title_font, fill=TEXT)
    draw.text((pad, pad), f"{y_label} (rows)", font=title_font, fill=TEXT)
    for col, lines in enumerate(col_labels):
        x0 = left + col * (cell_w + gap)
        for i, text in enumerate(lines):
            draw.text((x0, header - gap - line * (len(lines) - i)), text, font=font, fill=TEXT)
    for row, value in enumerate(y_values):
        y0 = header + row * (cell_h + gap)
        for i, text in enumerate(_wrap(format_value(value), LABEL_WIDTH - pad, max(1, cell_h // line))):
            draw.text((pad, y0 + i * line), text, font=font, fill=TEXT)
        for col in range(len(x_values)):
            x0 = left + col * (cell_w + gap)
            content = images.get((row, col), "no image")
            if isinstance(content, Image.Image):
                canvas.paste(content, (x0 + (cell_w - content.width) // 2, y0 + (cell_h - content.height) // 2))
                continue
            draw.rectangle((x0, y0, x0 + cell_w - 1, y0 + cell_h - 1), fill=MISSING_FILL)
            for i, text in enumerate(_wrap(str(content), cell_w - 2 * pad, 3)):
                draw.text((x0 + pad, y0 + cell_h // 2 - line + i * line), text, font=font, fill=(255, 255, 255))
    buffer = io.BytesIO()
    canvas.save(buffer, "PNG", optimize=False)
    return buffer.getvalue()
