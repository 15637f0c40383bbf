"""The last steps at full resolution: the lit user's face over the template's by alpha (the
template's grain added over its skin), then the template's glasses in front."""

from __future__ import annotations

import cv2
import numpy as np

from facefuse.fusion import detail, tone
from facefuse.fusion.canvas import TEMPLATE_FRAMES_EYE_CLEARANCE, Canvas


def blend_rows(out: np.ndarray, face: np.ndarray, template_face: np.ndarray, template_detail: detail.TemplateDetail,
               alpha: np.ndarray, grain: detail.Grain | None, skin: np.ndarray, grayscale: bool, rows: slice) -> None:
    """`rows` of the fused face into `out` (uint8): `face` (float32, the lit user's, given the
    template's grain over `skin` in place) over `template_face` by `alpha`; gray for a
    grayscale template."""
    if grain is not None:
        grain.add(face[rows], template_detail.luma[rows], template_detail.smooth[rows], skin[rows])
    weight = alpha[rows]
    mixed = cv2.blendLinear(face[rows], template_face[rows].astype(np.float32), weight, 1 - weight)
    if grayscale:
        mixed = tone.to_gray(mixed)
    cv2.threshold(mixed, 0, 0, cv2.THRESH_TOZERO, dst=mixed)  # negatives to 0, as np.maximum but cheaper
    cv2.convertScaleAbs(mixed, dst=out[rows])  # rounds and saturates at 255


def keep_template_glasses(face: np.ndarray, t_still: np.ndarray, t_points: np.ndarray, face_size: float) -> None:
    """The frames of the template's glasses, as they are in the template, in front of the
    fused face (in place). Frames are rigid: the warp that moves the template's features
    to the user's proportions would bend them, so they are taken from the unwarped
    template (`t_still`, the same region; `t_points` its landmarks there)."""
    canvas = Canvas(face.shape[:2], face_size, t_points)
    frames = canvas.glasses_frames(canvas.shrink_dark(t_still), TEMPLATE_FRAMES_EYE_CLEARANCE)
    if not frames.any():
        return
    weight = canvas.grow(frames)
    face[:] = cv2.blendLinear(t_still, face, weight, 1 - weight)
