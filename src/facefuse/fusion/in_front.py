"""What of a template face stays in front of the user's, as it is in the template: its
hands, and what they hold (a microphone), over its face.

They are found once, when the template is prepared (the caller's HeldMask: vision/hands),
and put back unwarped over each result, crisp, as the frames of its glasses are
(glasses/). The user's face comes up to them: the template's skin there, as alpha reads
it, is the hand's (PreparedTemplate.canvas_skin), and its light is read without them
(skin.template_skin).
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from facefuse.arrays import FloatArray, UInt8Array
from facefuse.fusion import masks
from facefuse.fusion.canvas import Canvas

HeldMask = Callable[[tuple[int, int, int, int], tuple[int, int]], FloatArray | None]
"""What hands (and what they hold) cover of a face over a box (x0, y0, x1, y1) of its
photo, as a float32 mask 0..1 of the given (h, w); None when none does."""

NOTHING = 0.05  # less of a pixel than this is not a hand's


# A template's hands (and what they hold) in its patch, put back over the result as they are.
InFront = masks.Piece


def in_front(patch: UInt8Array, mask: FloatArray | None) -> InFront | None:
    """The hands `mask` (float32 over the patch, 0..1) with the patch's pixels under them."""
    if mask is None or float(mask.max(initial=0.0)) < NOTHING:
        return None
    x, y, w, h = cv2.boundingRect((mask >= NOTHING).view(np.uint8))
    box = (x, y, x + w, y + h)
    return InFront(box, np.ascontiguousarray(mask[y : y + h, x : x + w]), patch[y : y + h, x : x + w].copy())


def on_canvas(canvas: Canvas, front: InFront, shape: tuple[int, ...]) -> FloatArray:
    """The hands on the patch's canvas (as PreparedTemplate's planes are)."""
    full = np.zeros(shape[:2], np.float32)
    x0, y0, x1, y1 = front.box
    full[y0:y1, x0:x1] = front.weight
    return canvas.shrink(full)


def put_back(out: UInt8Array, front: InFront, box: tuple[int, int, int, int]) -> None:
    """The template's hands over `out` (its patch's pixels, in place), within `box`."""
    front.put_back(out, box)
