"""occluders.hanging_down: what of a dark line hangs from the hairline, on drawn masks."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from facefuse.fusion.occluders import HANG_SLACK, hanging_down

SIZE = 120  # the face size on the canvas, in pixels


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
