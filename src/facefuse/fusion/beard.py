"""A template's beard: told once per template, then faded from the jaw inward on each fusion.

A beard has about the colour of skin, so the skin test alone lets its inner part through,
and a user's shaven chin in its place leaves what is left along the jaw reading as a
chinstrap. So the beard stays near the face's edge and thins out toward the mouth, where
the user's mouth and chin, much of the likeness, come in.
"""

from __future__ import annotations

import cv2
import numpy as np

from facefuse.arrays import BoolArray, FloatArray, UInt8Array
from facefuse.fusion import masks, mesh
from facefuse.fusion.canvas import Canvas

# Below the nose: its mean luma over the cheeks' (a beard darkens, none from 0.80 up) and
# its fine texture at a 64 px eye distance (hair is busy; a shadow, a dark skin or a blurred
# photo is smooth). On ../shared/faces: 10 of the 11 bearded templates and a dark stubble;
# none of the shaven ones, dark-skinned and blurred photos included.
_BEARD_DARKNESS = (0.70, 0.80)
_BEARD_TEXTURE = (0.025, 0.04)
_JUDGED_EYE_DISTANCE = 64.0
# Per pixel: beard below the first fraction of the cheeks' luma, skin above the second.
_BEARD_LUMA = (0.70, 0.85)
# The beard stays outside the oval pulled in by this much at the cheeks and chin, fading
# over the second value (of the face size) toward the centre.
_BEARD_REACH = 0.2
_BEARD_FADE = 0.06
_CHEEKS = ((117, 118, 101, 36, 206, 207, 187, 123), (346, 347, 330, 266, 426, 427, 411, 352))


def beard_amount(image: UInt8Array, points: FloatArray) -> float:
    """How surely the face with landmarks `points` (pixels of `image`, RGB) has a beard, 0..1;
    judged once per template, at a set eye distance whatever the canvas."""
    scale = _JUDGED_EYE_DISTANCE / max(float(np.linalg.norm(points[33] - points[263])), 1.0)
    small = cv2.resize(
        image.astype(np.float32),
        None,
        fx=scale,
        fy=scale,
        interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR,
    )
    at_scale = (points + 0.5) * scale - 0.5
    luma = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
    level = cv2.GaussianBlur(luma, (0, 0), 3)
    texture = cv2.GaussianBlur(np.abs(luma - cv2.GaussianBlur(luma, (0, 0), 1.0)), (0, 0), 3)
    texture /= np.maximum(level, 8)
    lower = _below_nose(luma.shape, at_scale, 2.0) > 0.5
    cheeks = _cheeks(luma.shape, at_scale)
    if not lower.any() or not cheeks.any():
        return 0.0
    smooth = cv2.GaussianBlur(luma, (0, 0), 2.5)
    darkness = float(np.mean(smooth[lower]) / max(float(np.median(smooth[cheeks])), 1.0))
    busy = float(np.median(texture[lower]))
    return float(
        (1 - masks.smoothstep(np.float32(darkness), *_BEARD_DARKNESS))
        * masks.smoothstep(np.float32(busy), *_BEARD_TEXTURE)
    )


def beard_kept(canvas: Canvas, t_small: FloatArray, amount: float) -> FloatArray:
    """How much of the template's beard stays in front at each canvas pixel: where its lower
    face is darker than its cheeks, outside the lips, from the jaw fading inward."""
    pts, size = canvas.points, canvas.size
    luma = cv2.cvtColor(t_small, cv2.COLOR_RGB2GRAY)
    level = cv2.GaussianBlur(luma, (0, 0), 0.015 * size)
    cheeks = _cheeks(luma.shape, pts)
    if not cheeks.any():
        return np.zeros(canvas.shape, np.float32)
    dark = 1 - masks.smoothstep(level / max(float(np.median(level[cheeks])), 1.0), *_BEARD_LUMA)
    beard = masks.feather(dark * _below_nose(canvas.shape, pts, 0.012 * size), 0.01 * size)
    core = masks.polygon_mask(canvas.shape, masks.shrunk_oval(pts, 0.0, _BEARD_REACH, _BEARD_REACH))
    return amount * beard * (1 - masks.feather(core, _BEARD_FADE * size))


def _below_nose(shape: tuple[int, ...], points: FloatArray, lips_margin: float) -> FloatArray:
    """Inside the face oval and below the bottom of the nose (across the face), the lips
    (grown by `lips_margin` pixels) left out."""
    oval = masks.polygon_mask(shape, points[list(mesh.FACE_OVAL)])
    lips = masks.grow(masks.polygon_mask(shape, points[list(mesh.LIPS_OUTER)]), lips_margin)
    return oval * masks.below_nose(shape, points) * (1 - lips)


def _cheeks(shape: tuple[int, ...], points: FloatArray) -> BoolArray:
    """The upper cheeks, between the lower eyelids and the nose's base."""
    return masks.polygon_mask(shape, *(points[list(c)] for c in _CHEEKS)) > 0.5
