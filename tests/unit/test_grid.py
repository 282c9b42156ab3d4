"""X/Y grid planning and composition."""
from __future__ import annotations

import io

import pytest
from PIL import Image

from lib.grid import MISSING_FILL, GridAxis, GridError, compose_grid, format_value, plan_grid


def png(colour, size=(64, 80)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "PNG")
    return buffer.getvalue()


BASE = {"prompt": "ava on a harbour", "seed": 7, "lora_name": "ava_v1.safetensors", "steps": 8}


def test_plan_is_row_major_and_only_the_axes_vary():
    cells = plan_grid(GridAxis("seed", [1, 2, 3]), GridAxis("lora_strength", [0.6, 1.0]), BASE)
    assert [(c.row, c.col, c.y_value, c.x_value) for c in cells] == [
        (0, 0, 0.6, 1), (0, 1, 0.6, 2), (0, 2, 0.6, 3), (1, 0, 1.0, 1), (1, 1, 1.0, 2), (1, 2, 1.0, 3)]
    for cell in cells:
        assert cell.params == {**BASE, "seed": cell.x_value, "lora_strength": cell.y_value}


def test_lora_files_axis_at_a_fixed_seed_with_a_no_lora_baseline():
    loras = [None, "ava/ava-000001000.safetensors", "ava/ava-000002000.safetensors"]
    cells = plan_grid(GridAxis("lora_name", loras), GridAxis("prompt", ["portrait", "full body"]), BASE)
    assert {c.params["seed"] for c in cells} == {7}
    assert [c.params["lora_name"] for c in cells[:3]] == loras
    assert [format_value(v) for v in loras] == ["no LoRA", "ava-000001000", "ava-000002000"]


@pytest.mark.parametrize("x, y, base, message", [
    (GridAxis("width", [512, 768]), GridAxis("seed", [1]), BASE, "must be one of"),
    (GridAxis("steps", [0, 8]), GridAxis("seed", [1]), BASE, "whole number ≥ 1"),
    (GridAxis("guidance", ["high"]), GridAxis("seed", [1]), BASE, "must be a number"),
    (GridAxis("sampler_name", ["euler", "turbo_magic"]), GridAxis("seed", [1]), BASE, "not one ComfyUI"),
    (GridAxis("scheduler", ["karras", "fancy"]), GridAxis("seed", [1]), BASE, "not one ComfyUI"),
    (GridAxis("seed", [1, 2]), GridAxis("seed", [3]), BASE, "both axes are Seed"),
    (GridAxis("seed", []), GridAxis("prompt", ["a"]), BASE, "has no values"),
    (GridAxis("seed", [1, 1]), GridAxis("prompt", ["a"]), BASE, "same value twice"),
    (GridAxis("seed", [1.5]), GridAxis("prompt", ["a"]), BASE, "whole number"),
    (GridAxis("lora_strength", ["high"]), GridAxis("prompt", ["a"]), BASE, "must be a number"),
    (GridAxis("prompt", ["a", " "]), GridAxis("seed", [1]), BASE, "is empty"),
    (GridAxis("lora_strength", [1.0]), GridAxis("prompt", ["a"]), {"prompt": "x"}, "fixed seed"),
    (GridAxis("seed", list(range(9))), GridAxis("lora_strength", [i / 10 for i in range(8)]), BASE,
     "72 cells is more than 64"),
])
def test_bad_axes_are_refused(x, y, base, message):
    with pytest.raises(GridError, match=message):
        plan_grid(x, y, base)


def test_compose_places_cells_and_draws_missing_ones_grey():
    xs, ys = [0.6, 1.0, 1.4], [11, 12]
    cells = plan_grid(GridAxis("lora_strength", xs), GridAxis("seed", ys), BASE)
    colours = {(0, 0): (255, 0, 0), (0, 1): (0, 255, 0), (0, 2): (0, 0, 255), (1, 0): (255, 255, 0)}
    results = [(c, png(colours[(c.row, c.col)]) if (c.row, c.col) in colours else None) for c in cells]
    results[4] = (cells[4], "FAILED")
    first = compose_grid(results, "LoRA strength", "Seed", xs, ys)
    assert first == compose_grid(results, "LoRA strength", "Seed", xs, ys)  # deterministic bytes
    grid = Image.open(io.BytesIO(first)).convert("RGB")
    # Find each thumbnail by its colour, and check the order left→right, top→bottom.
    def centre_of(colour):
        pixels = [(x, y) for y in range(0, grid.height, 4) for x in range(0, grid.width, 4)
                  if grid.getpixel((x, y)) == colour]
        assert pixels, colour
        return (sum(p[0] for p in pixels) / len(pixels), sum(p[1] for p in pixels) / len(pixels))
    red, green, blue, yellow = (centre_of(c) for c in colours.values())
    assert red[0] < green[0] < blue[0] and abs(red[1] - blue[1]) < 2
    assert abs(yellow[0] - red[0]) < 2 and yellow[1] > red[1]
    grey = centre_of(MISSING_FILL)
    assert grey[1] > red[1] and grey[0] > red[0]  # the failed and the never-finished cells of row 2


def test_compose_rejects_cells_outside_the_axes():
    cells = plan_grid(GridAxis("seed", [1, 2]), GridAxis("prompt", ["a"]), BASE)
    with pytest.raises(GridError, match="outside"):
        compose_grid([(cells[1], png((1, 2, 3)))], "Seed", "Prompt", [1], ["a"])


def test_unreadable_bytes_become_a_labelled_box():
    cells = plan_grid(GridAxis("seed", [1]), GridAxis("prompt", ["a"]), BASE)
    grid = Image.open(io.BytesIO(compose_grid([(cells[0], b"not a png")], "Seed", "Prompt", [1], ["a"])))
    assert MISSING_FILL in [c for _, c in grid.convert("RGB").getcolors(100_000)]
