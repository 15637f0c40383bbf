"""The last steps at full resolution: the lit user's face over the template's by alpha, then
the template's glasses in front."""

from __future__ import annotations

from typing import cast

import cv2
import numpy as np

from facefuse.arrays import FloatArray, UInt8Array
from facefuse.fusion import detail, glasses, tone


def blend_rows(
    out: UInt8Array,
    face: FloatArray,
    template_face: UInt8Array,
    template_detail: detail.TemplateDetail,
    alpha: FloatArray,
    grain: detail.Grain | None,
    grayscale: bool,
    rows: slice,
) -> None:
    """`rows` of the fused face into `out` (uint8): `face` (float32, the lit user's, given the
    template's grain in place) over `template_face` by `alpha`; gray for a grayscale
    template."""
    if grain is not None:
        grain.add(face, template_detail, rows)
    weight = alpha[rows]
    mixed = cast(FloatArray, cv2.blendLinear(face[rows], template_face[rows].astype(np.float32), weight, 1 - weight))
    if grayscale:
        mixed = tone.to_gray(mixed)
    cv2.threshold(mixed, 0, 0, cv2.THRESH_TOZERO, dst=mixed)  # negatives to 0, as np.maximum but cheaper
    cv2.convertScaleAbs(mixed, dst=out[rows])  # rounds and saturates at 255


def keep_template_glasses(out: UInt8Array, frames: glasses.Frames, box: tuple[int, int, int, int]) -> None:
    """The frames of the template's glasses, as they are in the template, in front of the
    fused face (in place; `out` the template's patch, `box` x0, y0, x1, y1 of what fusion
    wrote in it). Frames are rigid: the warp that moves the template's features to the
    user's proportions would bend them, so the template is warped without them
    (PreparedTemplate.patch) and they are put back unwarped."""
    glasses.put_back(out, frames, box)
