"""fusion.strands: what of a dark line hangs from the hairline, and strands followed across a
brow and an eye, on drawn masks and pictures."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from facefuse.fusion.occluders import HANG_SLACK
from facefuse.fusion.strands import fill_along, hanging_down, long_down, paths_across

SIZE = 120  # the face size on the canvas, in pixels
UP = np.array([0.0, -1.0], np.float32)  # an upright face's up, in the image


def _lock_with_a_fold(angle: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A canvas with a strand 3 px wide hanging from a seed at the top, slanting a little,
    and a fold running along the eye line from its lower end; all turned by `angle`
    degrees about the centre. Answers the lines, the seed, the face's up, and the strand's
    and the fold's own masks."""
    strand, fold, seed = (np.zeros((SIZE, SIZE), np.uint8) for _ in range(3))
    cv2.line(strand, (50, 10), (62, 90), 1, 3)
    cv2.line(fold, (62, 90), (105, 92), 1, 3)
    seed[8:14, 44:58] = 1
    turn = cv2.getRotationMatrix2D((SIZE / 2, SIZE / 2), angle, 1.0)
    strand, fold, seed = (
        cv2.warpAffine(m, turn, (SIZE, SIZE), flags=cv2.INTER_NEAREST) > 0 for m in (strand, fold, seed)
    )
    a = np.radians(angle)
    up = np.array([-np.sin(a), -np.cos(a)], np.float32)  # the image's up, turned as the masks are
    return strand | fold, seed & (strand | fold), up, strand, fold


@pytest.mark.parametrize("angle", [0.0, 25.0, -40.0])
def test_a_strand_hangs_and_the_fold_joined_to_it_does_not(angle: float) -> None:
    lines, seed, up, strand, fold = _lock_with_a_fold(angle)
    reached = hanging_down(lines, seed, up, HANG_SLACK * SIZE)
    assert reached[strand].mean() > 0.95
    # Its own width and a little more along the fold may count: 0.15 of the face on, none.
    far_end = fold & ~cv2.dilate(strand.astype(np.uint8), np.ones((37, 37), np.uint8)).astype(bool)
    assert far_end.sum() > 50 and not reached[far_end].any()


def test_nothing_hangs_without_a_seed() -> None:
    lines, seed, up, _, _ = _lock_with_a_fold(0.0)
    assert not hanging_down(lines, np.zeros_like(seed), up, HANG_SLACK * SIZE).any()


def test_a_line_going_back_up_the_face_is_not_hanging() -> None:
    lines, seed, up, strand, _ = _lock_with_a_fold(0.0)
    hook = np.zeros_like(lines, np.uint8)
    cv2.line(hook, (62, 90), (75, 40), 1, 3)
    hook_only = (hook > 0) & ~cv2.dilate(strand.astype(np.uint8), np.ones((15, 15), np.uint8)).astype(bool)
    reached = hanging_down(lines | (hook > 0), seed, up, HANG_SLACK * SIZE)
    assert hook_only.sum() > 50 and not reached[hook_only].any()


def _eye_under_a_strand(offset: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Skin with a dark brow and a dark eye opening across it, the zone around them the gap,
    and a strand 4 px wide curving down across them (its part below the gap moved `offset`
    px sideways). Answers the picture, the strand's own pixels, the gap, and the strand's
    pixels outside the gap as found."""
    picture = np.full((SIZE * 2, SIZE * 2, 3), (200, 160, 140), np.uint8)
    cv2.rectangle(picture, (60, 90), (180, 104), (70, 50, 40), -1)  # the brow
    cv2.ellipse(picture, (120, 135), (40, 12), 0, 0, 360, (40, 30, 30), -1)  # the eye opening
    gap = np.zeros(picture.shape[:2], np.uint8)
    cv2.rectangle(gap, (50, 80), (190, 160), 1, -1)
    strand = np.zeros(picture.shape[:2], np.uint8)
    ys = np.arange(20, 230)
    xs = 140 - 0.25 * (ys - 20) - 0.0006 * (ys - 20) ** 2
    xs = np.where(ys > 160, xs + offset, xs)
    cv2.polylines(strand, [np.round(np.stack([xs, ys], 1) * 16).astype(np.int32)], False, 1, 4, cv2.LINE_8, shift=4)
    picture[strand > 0] = (50, 38, 30)
    found = (strand > 0) & (gap == 0)
    return picture, strand > 0, gap > 0, found


def test_a_strand_is_followed_across_a_brow_and_an_eye() -> None:
    picture, strand, gap, found = _eye_under_a_strand()
    paths = paths_across(picture, found, gap, 2 * SIZE, UP)
    assert paths is not None
    inside = strand & gap
    assert paths[inside].mean() > 0.9
    assert (paths & ~inside).sum() < inside.sum()  # its width, and a pixel or two either side


def test_pieces_that_do_not_meet_are_not_joined() -> None:
    picture, _, gap, found = _eye_under_a_strand(offset=30)
    assert paths_across(picture, found, gap, 2 * SIZE, UP) is None


def test_the_brow_and_the_eye_carry_on_across_a_filled_strand() -> None:
    picture, strand, gap, _ = _eye_under_a_strand()
    hole = cv2.dilate((strand & gap).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    filled = fill_along(picture, hole, np.array([1.0, 0.0], np.float32))
    clean = np.full_like(picture, (200, 160, 140))
    cv2.rectangle(clean, (60, 90), (180, 104), (70, 50, 40), -1)
    cv2.ellipse(clean, (120, 135), (40, 12), 0, 0, 360, (40, 30, 30), -1)
    error = np.abs(filled.astype(int) - clean.astype(int)).max(axis=2)[hole]
    assert np.median(error) <= 2 and (error > 40).mean() < 0.1


def test_pieces_in_line_with_clear_skin_between_them_are_not_joined() -> None:
    """Two lines that happen to meet across the eye, but nothing dark runs between them over
    the skin there: no strand crosses it."""
    picture, strand, gap, found = _eye_under_a_strand()
    clean = np.full_like(picture, (200, 160, 140))
    cv2.rectangle(clean, (60, 90), (180, 104), (70, 50, 40), -1)
    cv2.ellipse(clean, (120, 135), (40, 12), 0, 0, 360, (40, 30, 30), -1)
    picture[gap] = clean[gap]
    assert paths_across(picture, found, gap, 2 * SIZE, UP) is None


@pytest.mark.parametrize("up", [(0.0, -1.0), (1.0, 0.0), (-0.6, -0.8)])
def test_long_is_told_down_the_face_however_it_is_turned(up: tuple[float, float]) -> None:
    """A line 60 px long down the face is long, one as long along the eye line is not, even
    with the face lying on its side (a lid's crease is no strand)."""
    face_up = np.array(up, np.float32)
    across = np.array([-face_up[1], face_up[0]], np.float32)
    centre = np.array([SIZE, SIZE], np.float32)
    down_line, eye_line = (np.zeros((2 * SIZE, 2 * SIZE), np.uint8) for _ in range(2))
    for mask, direction, offset in ((down_line, face_up, -40), (eye_line, across, 40)):
        middle = centre + offset * across
        a, b = (np.round(middle + sign * 30 * direction).astype(int) for sign in (-1, 1))
        cv2.line(mask, tuple(int(v) for v in a), tuple(int(v) for v in b), 1, 3)
    kept = long_down((down_line | eye_line) > 0, face_up, 50)
    assert kept[down_line > 0].mean() > 0.9
    assert not kept[eye_line > 0].any()
