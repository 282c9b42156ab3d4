"""A real, CPU-only face swap with OpenCV, used by the simulator's ``special`` worker.

It stands in for ReActor (inswapper_128 on a GPU) so that the console's face-swap flow can be tried
end to end without a GPU or the non-commercial InsightFace models. It is deliberately simple:
Haar-cascade face boxes instead of landmarks, the source face resized onto each chosen target box,
and Poisson blending (``cv2.seamlessClone``) through an elliptical mask so the skin tone and lighting
follow the target photo.

Face choice follows ReActor's rules (``scripts/reactor_swapper.py``): faces are numbered from the
largest to the smallest; ``input_faces_index`` picks target faces and ``source_faces_index`` picks
source faces, either one source index for every target face or one per target face.

When ReActor finds no face (in the target, or at the requested source index) it does not fail: it logs
a status line and returns the target image unchanged. We do the same, because a batch of targets
where one photo has no detectable face should still deliver the others, and a failed job would cost a
retry for the same result. Unlike ReActor, which only writes to the worker's log, every such case is
reported in :attr:`SwapResult.warnings` so the console can tell the user (the simulator puts them in
worker-comfyui's non-fatal ``output.errors`` list).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

import cv2
import numpy as np

CASCADE_FILE = "haarcascade_frontalface_default.xml"
# Detection runs on a copy no larger than this: Haar cascades are slow on 40 MP photos and gain
# nothing from the extra resolution.
DETECT_MAX_SIDE = 1024
# Haar boxes cover brows to chin but not the forehead; a little padding keeps the blend seam out of
# the eyes and mouth.
FACE_PADDING = 0.12

# One classifier per thread: a CascadeClassifier shared between threads returns wrong boxes when two
# detections overlap (the simulator runs several workers at once).
_local = threading.local()


@dataclass(frozen=True)
class FaceBox:
    x: int
    y: int
    w: int
    h: int

    @property
    def area(self) -> int:
        return self.w * self.h

    def as_tuple(self) -> tuple[int, int, int, int]:
        return self.x, self.y, self.w, self.h


@dataclass(frozen=True, eq=False)
class SwapResult:
    """``image`` is RGB uint8, the same size as the target; ``swapped`` are the target boxes replaced."""

    image: np.ndarray
    swapped: tuple[FaceBox, ...]
    source_faces: tuple[FaceBox, ...]
    target_faces: tuple[FaceBox, ...]
    warnings: tuple[str, ...]

    @property
    def changed(self) -> bool:
        return bool(self.swapped)


def _classifier() -> cv2.CascadeClassifier:
    cascade = getattr(_local, "cascade", None)
    if cascade is None:
        path = cv2.data.haarcascades + CASCADE_FILE
        cascade = cv2.CascadeClassifier(path)
        if cascade.empty():
            raise RuntimeError(f"OpenCV could not load its face detector {path}; "
                               f"reinstall opencv-python-headless")
        _local.cascade = cascade
    return cascade


def detect_faces(rgb: np.ndarray) -> list[FaceBox]:
    """Frontal faces in an RGB image, largest first (ReActor's default "large-small" order)."""
    grey = cv2.cvtColor(_as_rgb(rgb), cv2.COLOR_RGB2GRAY)
    h, w = grey.shape
    scale = min(1.0, DETECT_MAX_SIDE / max(h, w))
    if scale < 1.0:
        grey = cv2.resize(grey, (max(1, round(w * scale)), max(1, round(h * scale))),
                          interpolation=cv2.INTER_AREA)
    grey = cv2.equalizeHist(grey)
    min_side = max(24, round(min(grey.shape) * 0.06))
    found = _classifier().detectMultiScale(grey, scaleFactor=1.1, minNeighbors=5,
                                           minSize=(min_side, min_side))
    boxes = [FaceBox(round(x / scale), round(y / scale), round(bw / scale), round(bh / scale))
             for (x, y, bw, bh) in (found if len(found) else [])]
    return sorted(boxes, key=lambda b: (-b.area, b.x, b.y))


def parse_face_indices(text: str | int, what: str) -> list[int]:
    """ReActor's reading of a face-number list: the numeric parts of "0,2", others skipped.

    A list with no number at all is refused here (ReActor then has no face to pick).
    """
    numbers = [int(part.strip()) for part in str(text).strip(",").split(",") if part.strip().isnumeric()]
    if not numbers:
        raise ValueError(f"{what}: no face number in {text!r} (0 = the largest face)")
    return numbers


def swap_faces(source: np.ndarray, target: np.ndarray, *, source_faces_index: str | int = "0",
               input_faces_index: str | int = "0") -> SwapResult:
    """Put the chosen source face(s) onto the chosen target face(s); see the module docstring."""
    source = _as_rgb(source)
    target = _as_rgb(target)
    src_idx = parse_face_indices(source_faces_index, "source_faces_index")
    tgt_idx = parse_face_indices(input_faces_index, "input_faces_index")
    target_faces = detect_faces(target)
    source_faces = detect_faces(source)

    def unchanged(reason: str) -> SwapResult:
        return SwapResult(target.copy(), (), tuple(source_faces), tuple(target_faces), (reason,))

    if not target_faces:
        return unchanged("no face was detected in the target image; it is returned unchanged")
    if len(src_idx) not in (1, len(tgt_idx)):
        return unchanged(f"{len(src_idx)} source faces were chosen for {len(tgt_idx)} target faces; "
                         f"give one source face, or one per target face; the image is returned unchanged")
    if not source_faces:
        return unchanged("no face was detected in the source image; the target is returned unchanged")
    if src_idx[0] >= len(source_faces):
        return unchanged(_missing("source", src_idx[0], len(source_faces)) + "; the target is returned unchanged")

    result = target.copy()
    swapped: list[FaceBox] = []
    warnings: list[str] = []
    for n, face_num in enumerate(tgt_idx):
        if face_num >= len(target_faces):
            warnings.append(_missing("target", face_num, len(target_faces)) + "; it was skipped")
            continue
        source_num = src_idx[n] if len(src_idx) > 1 else src_idx[0]
        if source_num >= len(source_faces):
            warnings.append(_missing("source", source_num, len(source_faces))
                            + f"; target face {face_num} was left as it was")
            continue
        result = _blend(source, source_faces[source_num], result, target_faces[face_num])
        swapped.append(target_faces[face_num])
    return SwapResult(result, tuple(swapped), tuple(source_faces), tuple(target_faces), tuple(warnings))


def _missing(which: str, index: int, found: int) -> str:
    faces = "no face" if found == 0 else ("1 face" if found == 1 else f"{found} faces")
    return (f"{which} face {index} does not exist: {faces} detected in the {which} image "
            f"(numbered from 0, largest first)")


def _padded(box: FaceBox, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """The face box grown by FACE_PADDING on every side, clipped to the image: (x0, y0, x1, y1)."""
    h, w = shape[:2]
    px, py = round(box.w * FACE_PADDING), round(box.h * FACE_PADDING)
    return max(0, box.x - px), max(0, box.y - py), min(w, box.x + box.w + px), min(h, box.y + box.h + py)


def _blend(source: np.ndarray, src_box: FaceBox, target: np.ndarray, dst_box: FaceBox) -> np.ndarray:
    sx0, sy0, sx1, sy1 = _padded(src_box, source.shape)
    dx0, dy0, dx1, dy1 = _padded(dst_box, target.shape)
    width, height = dx1 - dx0, dy1 - dy0
    if width < 8 or height < 8:
        return target
    patch = cv2.resize(source[sy0:sy1, sx0:sx1], (width, height),
                       interpolation=cv2.INTER_AREA if sx1 - sx0 > width else cv2.INTER_CUBIC)
    mask = np.zeros((height, width), np.uint8)
    # The ellipse stays 2 px inside the patch: seamlessClone needs a border of unmasked pixels.
    cv2.ellipse(mask, (width // 2, height // 2), (max(1, width // 2 - 2), max(1, height // 2 - 2)),
                0, 0, 360, 255, thickness=-1)
    # OpenCV centres the mask's bounding box (not the patch) on this point.
    mx, my, mw, mh = cv2.boundingRect(mask)
    center = (dx0 + mx + mw // 2, dy0 + my + mh // 2)
    # seamlessClone works in BGR order like all of OpenCV; the channels only need to be consistent.
    return cv2.seamlessClone(patch, target, mask, center, cv2.NORMAL_CLONE)


def _as_rgb(image: np.ndarray) -> np.ndarray:
    if image.dtype != np.uint8:
        raise ValueError(f"images must be 8-bit (uint8), not {image.dtype}")
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_RGBA2RGB)
    if image.ndim == 3 and image.shape[2] == 3:
        return np.ascontiguousarray(image)
    raise ValueError(f"expected an RGB image array, got shape {image.shape}")
