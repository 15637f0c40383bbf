"""Hands over a face, and what a hand holds there, with the hand model mediapipe 0.10.21 ships.

The model (palm detection, then 21 landmarks a hand: mediapipe's Hands, its full models)
looks at a window around the face, wider than it and reaching below it, where the hands
that cover a face come from. Each hand found over the face is drawn as what it covers:
the palm's hull and each finger's joints as a line a finger wide, the wrist beyond it.

A hand that grips something (its fingers curled to the palm) holds it in the ring of its
thumb and index finger, and a microphone's head, a phone's end or a cup's rim stands out
of that ring: around the ring, within about a palm's width, what is neither the hand's
colour nor the face's is the held thing. Its part beyond the little finger (a
microphone's handle) hangs below the hand, off the face, and is not looked for.

`held_mask(rgb, face, box, shape)` answers all of it as one mask over a box of the photo
(fusion takes it so: the user's face region, a template's patch).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import cv2
import numpy as np

from facefuse.arrays import FloatArray, UInt8Array
from facefuse.vision.faces import Face
from facefuse.vision.graphs import built, run, thread_cache

WINDOW = 2.6  # the window's side over the face box's side
WINDOW_DROP = 0.25  # of the face box's side: the window's centre below the face's
WINDOW_SIDE = 256  # px: the window as the model sees it (the palm model looks at 192 px)
MIN_SCORE = 0.5  # the hand model's own confidence for a hand
MAX_HANDS = 2
# The full models: the light ones, a little cheaper, misplace a fist's landmarks over a face
# (on the pasted microphone hand of tests/fixtures/hands they miss up to 40 % of it).
MODEL = 1
# A hand counts when its mask reaches this far into the face box (of its side, each way
# shrunk): a hand beside the face, a waving hand, covers nothing of it.
FACE_INSET = 0.1

# Landmarks (mediapipe's hand model): 0 the wrist; 1-4 the thumb; 5-8, 9-12, 13-16, 17-20
# the index, middle, ring and little fingers, from the knuckle to the tip.
WRIST = 0
THUMB_TIP = 4
INDEX = (5, 6, 7, 8)
FINGERS = ((0, 1, 2, 3, 4), (0, 5, 6, 7, 8), (9, 10, 11, 12), (13, 14, 15, 16), (0, 17, 18, 19, 20))
KNUCKLES = (5, 9, 13, 17)
TIPS = (8, 12, 16, 20)
PALM = (0, 1, 2, 5, 9, 13, 17)
# A finger is as wide as this share of its first bone's length (knuckle to middle joint),
# or of the palm's width across the knuckles over four fingers, whichever is more: one of
# them is always seen about square.
FINGER_OF_BONE = 0.42
FINGER_OF_PALM = 0.27
FINGER_GROW = 1.45  # the lines drawn this many fingers wide: a finger's soft edge, its shadow, the landmarks' slack
WRIST_REACH = 0.6  # of the wrist-to-middle-knuckle length: the wrist drawn beyond the palm
# Fingers curled to the palm: their tips nearer the palm's centre than this share of the
# knuckles' distance to it, on average.
GRIP_CURL = 3.2
HELD_REACH = 0.6  # of the palm's width: how far around the thumb-and-index ring a held thing is looked for
# A held thing's colour is this far (CIELAB, 8-bit units) from both the hand's and the
# face's skin: far more than skin's own light and shade.
HELD_COLOUR = 32.0
HELD_MIN_SHARE = 0.15  # of the ring's disc: less than this that is not skin holds nothing
SKIN_SPOT = 0.08  # of the palm's width: the radius the hand's skin colour is read over
# The face's cheeks (mesh landmarks) its skin colour is read at.
FACE_SKIN_POINTS = (50, 280, 205, 425, 101, 330)


@dataclass(frozen=True)
class Hand:
    """A hand's 21 landmarks in photo pixels (x, y) and the model's confidence."""

    points: FloatArray  # (21, 2) float32
    score: float

    @property
    def palm_width(self) -> float:
        return float(np.linalg.norm(self.points[KNUCKLES[0]] - self.points[KNUCKLES[-1]]))

    @property
    def finger_width(self) -> float:
        bones = [np.linalg.norm(self.points[k + 1] - self.points[k]) for k in KNUCKLES]
        return max(FINGER_OF_BONE * float(np.max(bones)), FINGER_OF_PALM * self.palm_width)

    @property
    def palm_centre(self) -> FloatArray:
        return cast(FloatArray, self.points[[WRIST, *KNUCKLES]].mean(axis=0))

    def grips(self) -> bool:
        """Its fingers are curled to the palm (a fist, or a hand holding something)."""
        centre = self.palm_centre
        tips = np.linalg.norm(self.points[list(TIPS)] - centre, axis=1)
        knuckles = np.linalg.norm(self.points[list(KNUCKLES)] - centre, axis=1)
        return bool(tips.mean() < GRIP_CURL * max(float(knuckles.mean()), 1e-3))


def find_hands(rgb: UInt8Array, face: Face) -> list[Hand]:
    """The hands the model finds in the window around `face`, in photo pixels."""
    window, to_window = _window(rgb, face)
    result = run(_hands(), window, settled=lambda found: found.multi_hand_landmarks is not None)
    back = cv2.invertAffineTransform(to_window)
    hands = []
    for landmarks, handedness in zip(result.multi_hand_landmarks or [], result.multi_handedness or []):
        score = float(handedness.classification[0].score)
        if score < MIN_SCORE:
            continue
        pts = np.array([(p.x * WINDOW_SIDE, p.y * WINDOW_SIDE) for p in landmarks.landmark], np.float64)
        hands.append(Hand((pts @ back[:, :2].T + back[:, 2]).astype(np.float32), score))
    return hands


def held_mask(rgb: UInt8Array, face: Face, box: tuple[int, int, int, int], shape: tuple[int, int]) -> FloatArray | None:
    """What hands (and what they hold) cover of `face`: a float32 mask 0..1 over `box`
    (x0, y0, x1, y1 of the photo) sampled at `shape` (h, w) pixels; None when no hand
    covers the face."""
    hands = find_hands(rgb, face)
    if not hands:
        return None
    x0, y0, x1, y1 = box
    h, w = shape
    origin = np.array([x0, y0], np.float64)
    scale = np.array([w / max(x1 - x0, 1), h / max(y1 - y0, 1)], np.float64)
    face_px = face.size * float(scale.mean())
    inset = _face_inset(face, box, scale, shape)
    mask = np.zeros(shape, np.uint8)
    for hand in hands:
        drawn = np.zeros(shape, np.uint8)
        at = (hand.points.astype(np.float64) - origin + 0.5) * scale - 0.5
        _draw_hand(drawn, at, hand.finger_width * float(scale.mean()), hand.grips())
        if hand.grips():
            held = _held_thing(rgb, face, hand, (origin, scale), drawn)
            if held is not None:
                np.maximum(drawn, held, out=drawn)
        if (drawn[inset] > 0).any():
            np.maximum(mask, drawn, out=mask)
    if not mask.any():
        return None
    soft = mask.astype(np.float32) * (1 / 255)
    return cast(FloatArray, cv2.GaussianBlur(soft, (0, 0), max(0.5, 0.004 * face_px)))


def _face_inset(
    face: Face, box: tuple[int, int, int, int], scale: FloatArray, shape: tuple[int, int]
) -> tuple[slice, slice]:
    """The face box shrunk by FACE_INSET each way, as slices of the mask's grid."""
    x, y, side, _ = face.box
    pad = FACE_INSET * side
    h, w = shape
    c0 = int(np.clip(np.floor((x + pad - box[0]) * scale[0]), 0, w))
    c1 = int(np.clip(np.ceil((x + side - pad - box[0]) * scale[0]), 0, w))
    r0 = int(np.clip(np.floor((y + pad - box[1]) * scale[1]), 0, h))
    r1 = int(np.clip(np.ceil((y + side - pad - box[1]) * scale[1]), 0, h))
    return slice(r0, r1), slice(c0, c1)


def _draw_hand(mask: UInt8Array, at: FloatArray, finger: float, fist: bool) -> None:
    """The palm's hull (a fist's: the whole hand's), each finger's joints as a line
    FINGER_GROW fingers wide, and the wrist beyond the palm, into `mask` (uint8, 255),
    landmarks `at` in its pixels."""
    width = max(1, int(round(FINGER_GROW * finger)))
    shift = 4
    fixed = np.round(at * (1 << shift)).astype(np.int32)
    palm = cv2.convexHull(fixed if fist else fixed[list(PALM)])
    cv2.fillConvexPoly(mask, palm, 255, cv2.LINE_AA, shift)  # type: ignore[call-overload]  # cv2 takes a number for a colour
    cv2.polylines(mask, [palm], True, 255, width, cv2.LINE_AA, shift)  # type: ignore[call-overload]  # likewise
    for finger_joints in FINGERS:
        cv2.polylines(mask, [fixed[list(finger_joints)]], False, 255, width, cv2.LINE_AA, shift)  # type: ignore[call-overload]  # likewise
    wrist, middle = at[WRIST], at[KNUCKLES[1]]
    beyond = wrist + WRIST_REACH * (wrist - middle)
    palm_wide = max(width, int(round(float(np.linalg.norm(at[KNUCKLES[0]] - at[KNUCKLES[-1]])))))
    ends = np.round(np.array([wrist, beyond]) * (1 << shift)).astype(np.int32)
    cv2.line(mask, tuple(ends[0]), tuple(ends[1]), 255, palm_wide, cv2.LINE_AA, shift)  # type: ignore[call-overload]  # likewise


def _held_thing(
    rgb: UInt8Array,
    face: Face,
    hand: Hand,
    to_grid: tuple[FloatArray, FloatArray],
    drawn: UInt8Array,
) -> UInt8Array | None:
    """What a gripping hand holds out of the ring of its thumb and index finger (uint8 mask
    on the grid of `drawn`, the hand itself; `to_grid`: photo to grid, x0 y0 and scale):
    around the ring, within HELD_REACH of the palm's width, the pixels that are neither the
    hand's skin nor the face's and hang together with the hand; None when they are too few."""
    origin, scale = to_grid
    points = hand.points
    ring = (points[THUMB_TIP] + points[INDEX[-1]] + points[INDEX[0]]) / 3
    outward = ring - (points[WRIST] + points[KNUCKLES[1]]) / 2
    outward /= max(float(np.linalg.norm(outward)), 1e-3)
    # A palm seen edge-on is narrow: its fingers' width tells its size then.
    reach = HELD_REACH * max(hand.palm_width, hand.finger_width / FINGER_OF_PALM)
    centre = ((ring + 0.5 * reach * outward - origin + 0.5) * scale - 0.5).astype(np.float64)
    radius = max(2, int(round(reach * float(scale.mean()))))
    zone = np.zeros(drawn.shape, np.uint8)
    cv2.circle(zone, (int(round(centre[0])), int(round(centre[1]))), radius, 1, -1)  # type: ignore[call-overload]  # cv2 takes a number for a colour
    ys, xs = np.nonzero(zone)
    if len(ys) == 0:
        return None
    # The zone's pixels in the photo (the nearest), in CIELAB.
    px = np.clip(np.round((xs + 0.5) / scale[0] - 0.5 + origin[0]).astype(np.intp), 0, rgb.shape[1] - 1)
    py = np.clip(np.round((ys + 0.5) / scale[1] - 0.5 + origin[1]).astype(np.intp), 0, rgb.shape[0] - 1)
    lab = _lab(rgb[py, px])
    spot = SKIN_SPOT * hand.palm_width
    far = np.ones(len(lab), bool)
    for skin in (_spots(rgb, points[[WRIST, *KNUCKLES]], spot), _spots(rgb, face.points[list(FACE_SKIN_POINTS)], spot)):
        far &= np.linalg.norm(lab - np.median(_lab(skin), axis=0), axis=1) > HELD_COLOUR
    if far.mean() < HELD_MIN_SHARE:
        return None
    held = np.zeros(drawn.shape, np.uint8)
    held[ys[far], xs[far]] = 255
    # Closed over a finger's width (a grille's holes, its highlights), then only what
    # hangs together with the hand.
    size = max(3, int(round(hand.finger_width * float(scale.mean()))) | 1)
    held = cast(
        UInt8Array, cv2.morphologyEx(held, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size)))
    )
    held[zone == 0] = 0
    _, pieces = cv2.connectedComponents(((held > 0) | (drawn > 0)).view(np.uint8), connectivity=8)
    on_hand = np.unique(pieces[drawn > 0])
    keep = np.isin(pieces, on_hand[on_hand > 0]) & (held > 0)
    return cast(UInt8Array, keep.astype(np.uint8) * 255)


def _spots(rgb: UInt8Array, points: FloatArray, radius: float) -> UInt8Array:
    """The pixels within `radius` of any of the points, (N, 3); only the window around
    them is worked on."""
    r = max(1, int(round(radius)))
    h, w = rgb.shape[:2]
    x0, y0 = (max(0, int(np.floor(v)) - r) for v in points.min(axis=0))
    x1, y1 = min(w, int(np.ceil(points[:, 0].max())) + r + 1), min(h, int(np.ceil(points[:, 1].max())) + r + 1)
    if x1 <= x0 or y1 <= y0:
        return rgb.reshape(-1, 3)[:1]
    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
    for x, y in points:
        cv2.circle(mask, (int(round(x)) - x0, int(round(y)) - y0), r, 1, -1)  # type: ignore[call-overload]  # cv2 takes a number for a colour
    picked = rgb[y0:y1, x0:x1][mask > 0]
    return picked if len(picked) else rgb.reshape(-1, 3)[:1]


def _lab(pixels: UInt8Array) -> FloatArray:
    """(N, 3) RGB pixels in CIELAB, 8-bit units."""
    return cast(FloatArray, cv2.cvtColor(pixels.reshape(-1, 1, 3), cv2.COLOR_RGB2LAB).reshape(-1, 3).astype(np.float32))


def _window(rgb: UInt8Array, face: Face) -> tuple[UInt8Array, FloatArray]:
    """The window the model looks at (WINDOW_SIDE px square, grey outside the photo) and
    the affine matrix from photo to window pixels."""
    x, y, side, _ = face.box
    span = WINDOW * side
    cx, cy = x + side / 2, y + side / 2 + WINDOW_DROP * side
    scale = WINDOW_SIDE / span
    h, w = rgb.shape[:2]
    x0, y0 = max(0, int(np.floor(cx - span / 2))), max(0, int(np.floor(cy - span / 2)))
    x1, y1 = min(w, int(np.ceil(cx + span / 2))), min(h, int(np.ceil(cy + span / 2)))
    part = rgb[y0:y1, x0:x1]
    size = (max(1, round((x1 - x0) * scale)), max(1, round((y1 - y0) * scale)))
    small = cv2.resize(part, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    sx, sy = size[0] / max(x1 - x0, 1), size[1] / max(y1 - y0, 1)
    left = int(round((x0 - (cx - span / 2)) * scale))
    top = int(round((y0 - (cy - span / 2)) * scale))
    window = np.full((WINDOW_SIDE, WINDOW_SIDE, 3), 128, np.uint8)
    r0, c0 = max(0, top), max(0, left)
    r1, c1 = min(WINDOW_SIDE, top + small.shape[0]), min(WINDOW_SIDE, left + small.shape[1])
    window[r0:r1, c0:c1] = small[r0 - top : r1 - top, c0 - left : c1 - left]
    # resize's pixel-centre convention: window = (photo - origin + 0.5) * s - 0.5, shifted
    to_window = np.array([[sx, 0, (0.5 - x0) * sx - 0.5 + left], [0, sy, (0.5 - y0) * sy - 0.5 + top]])
    return window, cast(FloatArray, to_window)


def _hands() -> Any:  # a mediapipe Hands (mediapipe has no type information)
    """One hand graph per thread (mediapipe graphs are not thread-safe)."""
    from mediapipe.python.solutions import hands

    cache = thread_cache("hands")
    if MAX_HANDS not in cache:
        cache[MAX_HANDS] = built(
            lambda: hands.Hands(
                static_image_mode=True,
                model_complexity=MODEL,
                max_num_hands=MAX_HANDS,
                min_detection_confidence=MIN_SCORE,
            )
        )
    return cache[MAX_HANDS]
