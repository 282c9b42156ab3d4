"""Previews of the photos given to a face swap, with each face the detector finds boxed and numbered, so
"which faces" can be chosen by looking. Faces are numbered left to right, the order ReActor's
face-index fields are documented to count in; that order is not confirmed in the reference facts, so the
caption says the numbering is left to right rather than promising ReActor's own."""
from __future__ import annotations

import io

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageOps

PREVIEW_SIDE = 480


def face_boxes(image: Image.Image) -> list[tuple[int, int, int, int]]:
    """(x, y, w, h) of each frontal face, left to right, in the image's own pixels."""
    gray = np.asarray(ImageOps.exif_transpose(image).convert("L"))
    scale = min(1.0, 1024 / max(gray.shape))
    small = cv2.resize(gray, (max(1, round(gray.shape[1] * scale)), max(1, round(gray.shape[0] * scale))))
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")  # type: ignore[attr-defined]
    side = max(24, min(small.shape) // 10)
    found = cascade.detectMultiScale(small, scaleFactor=1.1, minNeighbors=6, minSize=(side, side))
    boxes = [(int(x / scale), int(y / scale), int(w / scale), int(h / scale)) for x, y, w, h in found]
    return sorted(boxes, key=lambda b: b[0])


def boxed_preview(data: bytes) -> tuple[bytes, int]:
    """A small PNG with the faces boxed and numbered, and how many there are."""
    image = ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB")
    boxes = face_boxes(image)
    draw = ImageDraw.Draw(image)
    width = max(3, image.width // 200)
    for number, (x, y, w, h) in enumerate(boxes):
        draw.rectangle([x, y, x + w, y + h], outline=(108, 92, 231), width=width)
        draw.rectangle([x, y - 12 * width, x + 10 * width, y], fill=(108, 92, 231))
        draw.text((x + 2 * width, y - 11 * width), str(number), fill="white", font_size=9 * width)
    image.thumbnail((PREVIEW_SIDE, PREVIEW_SIDE))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue(), len(boxes)
