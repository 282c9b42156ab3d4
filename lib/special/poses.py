"""OpenPose skeleton images for the character sheet's panels, drawn by the console itself.

They follow the OpenPose "COCO 18" convention that ControlNet openpose models were trained on (the
drawing of lllyasviel's ControlNet annotator, controlnet_aux ``draw_bodypose`` / ``draw_facepose``):
on black, 18 body keypoints — 0 nose, 1 neck, 2–4 right shoulder/elbow/wrist, 5–7 left, 8–10 right
hip/knee/ankle, 11–13 left, 14/15 right/left eye, 16/17 right/left ear — joined by 17 limbs, each
limb a filled ellipse in its own colour at 60 %, each keypoint a dot in full colour; face landmarks
(68 points plus the two pupils) as small white dots. The subject's right side is on the image's
left when it faces the viewer.

A standing figure is modelled once in 3-D and turned about its vertical axis for the views (front
0°, three-quarter 45°, profile 90° facing left, back 180°); face points that turn away from the
viewer are left out, as a pose detector would. The expression close-ups add the face landmarks,
shaped per expression (mouth curve and opening, brow slope, eye opening).
"""
from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

# controlnet_aux util.py: limbSeq (1-based keypoint numbers) and colors, in drawing order.
LIMBS = ((2, 3), (2, 6), (3, 4), (4, 5), (6, 7), (7, 8), (2, 9), (9, 10), (10, 11), (2, 12), (12, 13),
         (13, 14), (2, 1), (1, 15), (15, 17), (1, 16), (16, 18))
COLOURS = ((255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0),
           (0, 255, 0), (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255),
           (0, 0, 255), (85, 0, 255), (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85))
FACE_POINTS = frozenset({0, 14, 15, 16, 17})  # hidden when they turn away from the viewer

VIEW_YAW = {"front": 0.0, "three_quarter": 45.0, "profile": 90.0, "back": 180.0}
EXPRESSIONS = ("neutral", "smiling", "angry", "surprised", "sad")

# A standing figure 1.0 high, feet at y = 0.94, in figure units: (x right-of-image, y down, z toward viewer).
_STANDING = np.array([
    (0.000, 0.125, 0.045),   # 0 nose
    (0.000, 0.200, 0.000),   # 1 neck
    (-0.095, 0.205, -0.020),  # 2 right shoulder (a little behind the neck)
    (-0.125, 0.335, 0.010),  # 3 right elbow
    (-0.135, 0.455, 0.030),  # 4 right wrist
    (0.095, 0.205, -0.020),   # 5 left shoulder
    (0.125, 0.335, 0.010),   # 6 left elbow
    (0.135, 0.455, 0.030),   # 7 left wrist
    (-0.055, 0.475, 0.000),  # 8 right hip
    (-0.058, 0.705, 0.010),  # 9 right knee
    (-0.060, 0.930, 0.000),  # 10 right ankle
    (0.055, 0.475, 0.000),   # 11 left hip
    (0.058, 0.705, 0.010),   # 12 left knee
    (0.060, 0.930, 0.000),   # 13 left ankle
    (-0.018, 0.110, 0.035),  # 14 right eye
    (0.018, 0.110, 0.035),   # 15 left eye
    (-0.040, 0.118, 0.000),  # 16 right ear
    (0.040, 0.118, 0.000),   # 17 left ear
])


@dataclass(frozen=True)
class Expression:
    mouth_curve: float   # corners up (+) or down (−), in face heights
    mouth_open: float    # gap between the lips
    mouth_width: float
    brow_raise: float    # whole brow up (+)
    brow_tilt: float     # inner ends down (+, angry) or up (−, sad)
    eye_open: float


_EXPRESSION_SHAPES = {
    "neutral": Expression(0.0, 0.0, 0.34, 0.0, 0.0, 0.05),
    "smiling": Expression(0.06, 0.035, 0.42, 0.01, 0.0, 0.04),
    "angry": Expression(-0.02, 0.0, 0.32, -0.02, 0.06, 0.04),
    "surprised": Expression(0.0, 0.14, 0.26, 0.07, -0.01, 0.075),
    "sad": Expression(-0.06, 0.0, 0.32, 0.0, -0.06, 0.04),
}


# Body keypoints of a head-and-shoulders close-up, in the face units of face_landmarks().
_CLOSE_UP_BODY = {0: (0.0, 0.03), 1: (0.0, 0.95), 2: (-0.95, 1.02), 5: (0.95, 1.02), 14: (-0.18, -0.08),
                  15: (0.18, -0.08), 16: (-0.44, 0.0), 17: (0.44, 0.0)}


def _turned(points: np.ndarray, yaw_degrees: float) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) after turning the figure by `yaw` (positive: towards the image's left), and depth z."""
    theta = math.radians(yaw_degrees)
    x, y, z = points[:, 0], points[:, 1], points[:, 2]
    turned_x = x * math.cos(theta) - z * math.sin(theta)
    turned_z = x * math.sin(theta) + z * math.cos(theta)
    return np.stack([turned_x, y], axis=1), turned_z


def _ellipse(a: tuple[float, float], b: tuple[float, float], half_width: float) -> list[tuple[float, float]]:
    (x1, y1), (x2, y2) = a, b
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    half_length = math.hypot(x2 - x1, y2 - y1) / 2
    angle = math.atan2(y2 - y1, x2 - x1)
    cos, sin = math.cos(angle), math.sin(angle)
    return [(cx + half_length * math.cos(t) * cos - half_width * math.sin(t) * sin,
             cy + half_length * math.cos(t) * sin + half_width * math.sin(t) * cos)
            for t in np.linspace(0, 2 * math.pi, 36, endpoint=False)]


def _draw_body(draw: ImageDraw.ImageDraw, points: dict[int, tuple[float, float]], stick: float) -> None:
    for (a, b), colour in zip(LIMBS, COLOURS[:len(LIMBS)], strict=True):  # limb i takes colour i
        if a - 1 in points and b - 1 in points:
            draw.polygon(_ellipse(points[a - 1], points[b - 1], stick), fill=tuple(int(c * 0.6) for c in colour))
    for index, (x, y) in points.items():
        draw.ellipse((x - stick, y - stick, x + stick, y + stick), fill=COLOURS[index])


def _body_points(yaw: float, scale: float, origin: tuple[float, float]) -> dict[int, tuple[float, float]]:
    xy, depth = _turned(_STANDING, yaw)
    points = {}
    for index, ((x, y), z) in enumerate(zip(xy, depth, strict=True)):
        if index in FACE_POINTS and z < -0.005:
            continue  # turned away from the viewer: a detector would not see it
        points[index] = (origin[0] + x * scale, origin[1] + y * scale)
    return points


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def view_pose(view: str, width: int, height: int) -> bytes:
    """A full-body skeleton for one of the sheet's views, as PNG bytes of `width` × `height`."""
    if view not in VIEW_YAW:
        raise ValueError(f"no pose for view {view!r} (views: {', '.join(VIEW_YAW)})")
    image = Image.new("RGB", (width, height), (0, 0, 0))
    scale = height * 0.9
    stick = max(3.0, min(width, height) / 512 * 4)
    points = _body_points(VIEW_YAW[view], scale, (width / 2, height * 0.04))
    _draw_body(ImageDraw.Draw(image), points, stick)
    return _png(image)


def face_landmarks(expression: str) -> np.ndarray:
    """The 70 OpenPose face points (68 dlib-style landmarks + 2 pupils) in face units: the face is
    1 high and centred on (0, 0), for one of EXPRESSIONS."""
    shape = _EXPRESSION_SHAPES[expression]
    points: list[tuple[float, float]] = []
    # 0–16 jaw: the lower half of an oval from ear to ear.
    for t in np.linspace(math.pi, 0, 17):
        points.append((0.42 * math.cos(t), 0.05 + 0.45 * math.sin(t)))
    # 17–21 right brow, 22–26 left brow (image left to right); inner ends sit near x = ±0.05.
    for side in (-1, 1):
        xs = np.linspace(0.34, 0.06, 5) if side < 0 else np.linspace(0.06, 0.34, 5)
        for x in xs:
            inner = 1 - (x - 0.06) / 0.28  # 1 at the inner end, 0 at the outer end
            y = -0.2 - shape.brow_raise - 0.03 * math.sin(math.pi * (1 - inner)) + shape.brow_tilt * inner
            points.append((side * x, y))
    # 27–30 nose bridge, 31–35 nostrils.
    points += [(0.0, -0.12 + 0.05 * i) for i in range(4)]
    points += [(x, 0.1 + 0.015 * (1 - abs(x) / 0.07)) for x in np.linspace(-0.07, 0.07, 5)]
    # 36–41 right eye, 42–47 left eye: six points round each eye.
    pupils = []
    for cx in (-0.18, 0.18):
        for t in np.linspace(math.pi, -math.pi, 6, endpoint=False):
            points.append((cx + 0.08 * math.cos(t), -0.08 - shape.eye_open * math.sin(t)))
        pupils.append((cx, -0.08))
    # 48–59 outer lip, 60–67 inner lip.
    half = shape.mouth_width / 2
    centre_y = 0.26

    def lip(x: float, upper: bool, gap: float, thickness: float) -> tuple[float, float]:
        curve = -shape.mouth_curve * (x / half) ** 2  # the corners rise when smiling
        offset = -(gap / 2 + thickness) if upper else gap / 2 + thickness
        return x, centre_y + curve + offset * (1 - (x / half) ** 2) ** 0.5

    xs_top = np.linspace(-half, half, 7)
    points += [lip(x, True, shape.mouth_open, 0.03) for x in xs_top]
    points += [lip(x, False, shape.mouth_open, 0.03) for x in np.linspace(half, -half, 7)[1:-1]]
    inner = half * 0.8
    points += [lip(x, True, shape.mouth_open, 0.0) for x in np.linspace(-inner, inner, 5)]
    points += [lip(x, False, shape.mouth_open, 0.0) for x in np.linspace(inner, -inner, 5)[1:-1]]
    points += pupils
    return np.array(points)


def expression_pose(expression: str, width: int, height: int) -> bytes:
    """A head-and-shoulders skeleton with face landmarks for one expression close-up."""
    if expression not in _EXPRESSION_SHAPES:
        raise ValueError(f"no pose for expression {expression!r} (expressions: {', '.join(EXPRESSIONS)})")
    image = Image.new("RGB", (width, height), (0, 0, 0))
    draw = ImageDraw.Draw(image)
    side = min(width, height)
    face_height = side * 0.42
    centre = (width / 2, height * 0.35)

    def place(x: float, y: float) -> tuple[float, float]:
        return centre[0] + x * face_height, centre[1] + y * face_height

    # The body keypoints of the head sit on the landmarks (nose tip, pupils, jaw ends); neck and
    # shoulders below the chin.
    body = {index: place(x, y) for index, (x, y) in _CLOSE_UP_BODY.items()}
    _draw_body(draw, body, max(3.0, side / 512 * 4))
    dot = max(2.0, side / 512 * 3)
    for x, y in face_landmarks(expression):
        px, py = place(x, y)
        draw.ellipse((px - dot, py - dot, px + dot, py + dot), fill=(255, 255, 255))
    return _png(image)


def panel_pose(panel_key: str, width: int, height: int) -> bytes:
    """The console's pose image for a sheet panel (a view or an expression)."""
    if panel_key in VIEW_YAW:
        return view_pose(panel_key, width, height)
    return expression_pose(panel_key, width, height)
