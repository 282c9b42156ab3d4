"""The simulator's CPU face swap (OpenCV Haar + seamlessClone) on scikit-image's astronaut photo."""
from __future__ import annotations

import threading

import cv2
import numpy as np
import pytest
from skimage import data as skdata

from lib.localpod.comfy.faceswap_cv import (
    FACE_PADDING,
    FaceBox,
    detect_faces,
    parse_face_indices,
    swap_faces,
)


@pytest.fixture(scope="module")
def face() -> np.ndarray:
    return skdata.astronaut()


@pytest.fixture(scope="module")
def target(face) -> np.ndarray:
    """Another photo: the astronaut, smaller, pasted into the coffee picture, with a cooler tint."""
    canvas = skdata.coffee().copy()
    small = cv2.resize(face, (358, 358), interpolation=cv2.INTER_AREA)
    tinted = np.clip(small.astype(np.int16) + np.array([-25, 0, 30]), 0, 255).astype(np.uint8)
    canvas[20:378, 200:558] = tinted
    return canvas


@pytest.fixture(scope="module")
def two_faces(face) -> np.ndarray:
    canvas = np.full((600, 900, 3), 200, np.uint8)
    canvas[0:512, 0:512] = face
    canvas[250:550, 560:860] = cv2.resize(face, (300, 300), interpolation=cv2.INTER_AREA)
    return canvas


def _outside(box: FaceBox, shape) -> np.ndarray:
    """True outside the face box grown by the blend padding."""
    px, py = round(box.w * FACE_PADDING), round(box.h * FACE_PADDING)
    keep = np.ones(shape[:2], bool)
    keep[max(0, box.y - py):box.y + box.h + py, max(0, box.x - px):box.x + box.w + px] = False
    return keep


def _inside(box: FaceBox, shape) -> np.ndarray:
    inside = np.zeros(shape[:2], bool)
    inside[box.y:box.y + box.h, box.x:box.x + box.w] = True
    return inside


def test_detects_the_astronaut_face(face):
    faces = detect_faces(face)
    assert len(faces) == 1
    x, y, w, h = faces[0].as_tuple()
    # The face sits around x 180–270, y 65–160 in the 512×512 photo.
    assert 150 < x + w / 2 < 300 and 60 < y + h / 2 < 170 and 60 < w < 140


def test_faces_are_numbered_largest_first(two_faces):
    faces = detect_faces(two_faces)
    assert len(faces) == 2
    assert faces[0].area > faces[1].area and faces[0].x < 300 < faces[1].x


def test_swap_changes_the_face_and_leaves_the_rest(face, target):
    result = swap_faces(face, target)
    assert result.warnings == () and len(result.swapped) == 1
    box = result.swapped[0]
    diff = np.abs(result.image.astype(np.int16) - target.astype(np.int16)).sum(axis=2)
    assert diff[_inside(box, target.shape)].mean() > 15
    assert diff[_outside(box, target.shape)].max() == 0
    assert result.image.shape == target.shape and result.image.dtype == np.uint8


def test_the_source_face_is_what_lands_on_the_target(face, target):
    """With a mirrored astronaut as the source, the swapped region looks like that mirrored face."""
    source = np.ascontiguousarray(face[:, ::-1])
    result = swap_faces(source, target)
    box = result.swapped[0]
    src = detect_faces(source)[0]
    src_crop = cv2.resize(source[src.y:src.y + src.h, src.x:src.x + src.w], (box.w, box.h))

    def corr(a: np.ndarray, b: np.ndarray) -> float:
        grey = [cv2.cvtColor(np.ascontiguousarray(im), cv2.COLOR_RGB2GRAY).astype(np.float32).ravel()
                for im in (a, b)]
        return float(np.corrcoef(grey[0], grey[1])[0, 1])

    before = target[box.y:box.y + box.h, box.x:box.x + box.w]
    after = result.image[box.y:box.y + box.h, box.x:box.x + box.w]
    assert corr(after, src_crop) > corr(before, src_crop) + 0.1


def test_no_face_in_target_returns_it_unchanged_with_a_warning(face):
    coffee = skdata.coffee()
    result = swap_faces(face, coffee)
    assert np.array_equal(result.image, coffee) and not result.changed
    assert result.warnings == ("no face was detected in the target image; it is returned unchanged",)


def test_no_face_in_source_returns_target_unchanged(target):
    result = swap_faces(skdata.coffee(), target)
    assert np.array_equal(result.image, target)
    assert result.warnings == ("no face was detected in the source image; the target is returned unchanged",)


def test_choosing_the_second_target_face_only_swaps_that_one(face, two_faces):
    mirrored = np.ascontiguousarray(face[:, ::-1])
    result = swap_faces(mirrored, two_faces, input_faces_index="1")
    big, small = detect_faces(two_faces)
    assert result.swapped == (small,)
    diff = np.abs(result.image.astype(np.int16) - two_faces.astype(np.int16)).sum(axis=2)
    assert diff[_inside(big, two_faces.shape)].max() == 0
    assert diff[_inside(small, two_faces.shape)].mean() > 15


def test_both_target_faces_with_one_source_face(face, two_faces):
    result = swap_faces(np.ascontiguousarray(face[:, ::-1]), two_faces, input_faces_index="0,1")
    assert len(result.swapped) == 2 and result.warnings == ()


def test_a_target_face_that_does_not_exist_is_skipped_and_said(face, target):
    result = swap_faces(face, target, input_faces_index="0,3")
    assert len(result.swapped) == 1
    assert result.warnings == ("target face 3 does not exist: 1 face detected in the target image "
                               "(numbered from 0, largest first); it was skipped",)


def test_a_source_face_that_does_not_exist_leaves_the_target(face, target):
    result = swap_faces(face, target, source_faces_index="2")
    assert np.array_equal(result.image, target)
    assert result.warnings[0].startswith("source face 2 does not exist: 1 face detected in the source image")


def test_mismatched_face_lists_are_refused_like_reactor(face, two_faces):
    result = swap_faces(face, two_faces, source_faces_index="0,0,0", input_faces_index="0,1")
    assert not result.changed and np.array_equal(result.image, two_faces)
    assert "3 source faces were chosen for 2 target faces" in result.warnings[0]


@pytest.mark.parametrize("text", ["", "a", "0;1", "-1"])
def test_face_numbers_must_be_numbers(text):
    with pytest.raises(ValueError, match="input_faces_index: no face number"):
        parse_face_indices(text, "input_faces_index")


def test_face_numbers_parse():
    assert parse_face_indices("0", "x") == [0]
    assert parse_face_indices(" 0, 2 ,", "x") == [0, 2]
    assert parse_face_indices(1, "x") == [1]
    assert parse_face_indices("0, x", "x") == [0]   # ReActor skips what is not a number


def test_greyscale_and_rgba_arrays_are_accepted(face, target):
    grey_source = cv2.cvtColor(face, cv2.COLOR_RGB2GRAY)
    rgba_target = cv2.cvtColor(target, cv2.COLOR_RGB2RGBA)
    result = swap_faces(grey_source, rgba_target)
    assert result.changed and result.image.shape == target.shape


def test_detection_is_safe_from_several_threads(target, two_faces):
    """The simulator swaps on several workers at once; each must see its own faces."""
    expected = {id(target): detect_faces(target), id(two_faces): detect_faces(two_faces)}
    wrong: list = []

    def work(image):
        for _ in range(4):
            if detect_faces(image) != expected[id(image)]:
                wrong.append(image.shape)

    threads = [threading.Thread(target=work, args=(im,)) for im in (target, two_faces, target, two_faces)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wrong == []
