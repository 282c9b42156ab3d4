"""Procedural "generated" pictures of the simulated ComfyUI, and the PNG files it saves.

A sampled picture is a pure function of (model, seed, prompt, LoRAs and strengths, size, batch
index) with the prompt and parameters printed on it; a LoRA tints and patterns the picture in
proportion to its strength, so strength grids visibly differ. Images the simulator cannot render
from a sampler (nodes it only knows by their definition) are neutral placeholders of the size the
graph gives them, labelled with the node that made them.

PNGs carry no text chunk: the worker image starts ComfyUI with --disable-metadata (reference
worker-contracts §1.9), so no workflow is embedded.
"""
from __future__ import annotations

import hashlib
import io
import json
import math
import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont


@dataclass(frozen=True)
class Model:
    name: str
    family: str
    loras: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class Cond:
    text: str
    guidance: float | None = None


@dataclass(frozen=True)
class Latent:
    width: int
    height: int
    batch: int = 1


@dataclass(frozen=True)
class Sampled:
    """A sampler's LATENT: what it was asked to draw; VAEDecode turns it into pictures."""

    model: Model
    positive: Cond
    latent: Latent
    seed: int
    steps: int
    cfg: float
    sampler: str
    scheduler: str

    @property
    def width(self) -> int:
        return self.latent.width

    @property
    def height(self) -> int:
        return self.latent.height

    @property
    def batch(self) -> int:
        return self.latent.batch


def seed_of(*parts) -> int:
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).digest()
    return int.from_bytes(digest[:8], "big")


def decode(s: Sampled) -> list[Image.Image]:
    return [_picture(s, index) for index in range(s.latent.batch)]


def _vivid(rng: np.random.Generator) -> np.ndarray:
    """A saturated colour: a random hue at high saturation and brightness."""
    hue, sat, val = rng.uniform(0, 1), rng.uniform(0.55, 0.9), rng.uniform(0.6, 0.95)
    k = (np.array([5.0, 3.0, 1.0]) + hue * 6) % 6
    return (val - val * sat * np.clip(np.minimum(k, 4 - k), 0, 1)).astype(np.float32)


def _picture(s: Sampled, index: int) -> Image.Image:
    width, height = s.latent.width, s.latent.height
    scale = 256 / max(width, height)
    sw, sh = max(8, round(width * scale)), max(8, round(height * scale))
    rng = np.random.default_rng(seed_of(s.model.name, s.seed, s.positive.text, width, height, index))
    ys, xs = np.mgrid[0:sh, 0:sw].astype(np.float32)
    xs, ys = xs / max(sw, sh), ys / max(sw, sh)
    angle = rng.uniform(0, 2 * math.pi)
    t = np.clip((xs * math.cos(angle) + ys * math.sin(angle)) * 0.8 + 0.4, 0, 1)[..., None]
    art = _vivid(rng) * 0.55 * (1 - t) + _vivid(rng) * 0.55 * t
    for _ in range(7):
        cx, cy = rng.uniform(0, sw / max(sw, sh)), rng.uniform(0, sh / max(sw, sh))
        radius = rng.uniform(0.05, 0.22)
        glow = np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * radius**2))[..., None]
        art = art * (1 - 0.85 * glow) + _vivid(rng) * 0.85 * glow
    for name, strength in s.model.loras:
        if strength:
            art = _lora_motif(art, xs, ys, name, strength)
    pixels = (np.clip(art, 0, 1) * 255).astype(np.uint8)
    image = Image.fromarray(pixels, "RGB").resize((width, height), Image.Resampling.BICUBIC)
    _caption(image, s, index)
    return image


def _lora_motif(art: np.ndarray, xs: np.ndarray, ys: np.ndarray, name: str, strength: float) -> np.ndarray:
    """The LoRA's "character": a disc in its own colour with rings around it, larger, denser and
    more opaque as the strength grows (a negative strength inverts the colour)."""
    rng = np.random.default_rng(seed_of("lora", name))
    colour = _vivid(rng)
    if strength < 0:
        colour = 1 - colour
    amount = min(abs(strength), 2.0) / 2.0
    cx, cy = rng.uniform(0.35, 0.65, 2)
    distance = np.sqrt((xs - cx) ** 2 + (ys - cy) ** 2)[..., None]
    radius = 0.08 + 0.08 * amount
    disc = np.clip((radius - distance) / 0.015, 0, 1)
    frequency = rng.uniform(6, 9) * (0.6 + amount)
    rings = (0.5 + 0.5 * np.cos((distance - radius) * frequency * 2 * math.pi)) * np.exp(-distance * 2.5)
    art = art * (1 - 0.3 * amount) + colour * 0.3 * amount
    art = art * (1 - 0.7 * amount * rings) + colour * 0.7 * amount * rings
    return art * (1 - (0.2 + 0.7 * amount) * disc) + colour * (0.2 + 0.7 * amount) * disc


def _caption(image: Image.Image, s: Sampled, index: int) -> None:
    width, height = image.size
    size = max(11, min(width, height) // 40)
    font = ImageFont.load_default(size=size)
    chars = max(20, int(width / (size * 0.55)))
    lines = textwrap.wrap(s.positive.text or "(empty prompt)", chars)[:4]
    guidance = f" · guidance {s.positive.guidance:g}" if s.positive.guidance is not None else ""
    lines.append(f"{Path(s.model.name).stem} · seed {s.seed}"
                 + (f" #{index + 1}/{s.latent.batch}" if s.latent.batch > 1 else "")
                 + f" · {s.steps} steps · cfg {s.cfg:g}{guidance} · {width}x{height}")
    lines += [f"LoRA {Path(name).stem} @ {strength:g}" for name, strength in s.model.loras] or ["no LoRA"]
    line_height = int(size * 1.3)
    panel = min(height, line_height * len(lines) + size)
    box = (0, height - panel, width, height)
    # Darken only the caption strip, then write on it.
    image.paste(Image.blend(image.crop(box), Image.new("RGB", (width, panel)), 0.6), box)
    draw = ImageDraw.Draw(image)
    for i, line in enumerate(lines):
        draw.text((size // 2, height - panel + size // 2 + i * line_height), line, font=font, fill=(255, 255, 255))


def placeholder(width: int, height: int, label: str, batch: int = 1) -> list[Image.Image]:
    """Neutral grey pictures of the given size, labelled with what made them."""
    width, height = max(1, int(width)), max(1, int(height))
    pictures = []
    for index in range(max(1, int(batch))):
        image = Image.new("RGB", (width, height), (96, 100, 108))
        draw = ImageDraw.Draw(image)
        size = max(8, min(width, height) // 24)
        text = f"{label}" + (f" #{index + 1}" if batch > 1 else "") + f" · {width}x{height}"
        draw.text((size // 2, size // 2), text, font=ImageFont.load_default(size=size), fill=(235, 235, 235))
        pictures.append(image)
    return pictures


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG", compress_level=4)
    return buffer.getvalue()
