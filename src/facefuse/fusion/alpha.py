"""How much of the user's face shows at each pixel: worked out on the canvas (skin of both
faces, features the user cannot supply, what of the template stays in front), then grown
to full size with the template's open mouth cut out."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facefuse.arrays import FloatArray
from facefuse.fusion import masks, mesh
from facefuse.fusion.canvas import USER_FRAMES_EYE_CLEARANCE, Canvas
from facefuse.fusion.geometry import eye_openness_mismatch, openness, user_lips_trust
from facefuse.fusion.placement import CanvasWarps
from facefuse.fusion.skin import TemplateSkin, UserSkin
from facefuse.fusion.template import PreparedTemplate

# The eyes' mean openness mismatch (geometry.eye_openness_mismatch) from which the template's
# eyes start to stay, and from which they stay whole.
EYES_MISMATCH = (0.5, 0.9)
# The template's mouth, gap over width: closed below the first value, open (its teeth and
# tongue stay the template's) from the second.
MOUTH_OPEN = (0.02, 0.06)
MOUTH_HOLE_MARGIN = 0.02  # of the face size, around the inner lips: the window the hole is drawn in
MOUTH_HOLE_FEATHER = 0.003  # of the face size


def on_canvas(
    canvas: Canvas,
    warps: CanvasWarps,
    prepared: PreparedTemplate,
    template: TemplateSkin,
    user: UserSkin,
    user_as_seen: UserSkin,
    trust: dict[str, float],
    fuse: float,
) -> FloatArray:
    """Canvas-size alpha of the user's face: its skin (hair on the forehead left out) where
    the template has skin, the features the user can supply, less what of the template
    stays in front (its fringe, its beard) and, under the template's glasses, the user's
    own frames (they would show as a second, bent pair beside the template's; told on
    `user_as_seen`, the face before its covers were filled, which leaves traces of them)."""
    alpha = fuse * canvas.alpha(template.likelihood, user.likelihood * (1 - user.forehead_hair), trust)
    alpha *= 1 - warps.template_plane(prepared.canvas_in_front)
    if prepared.glasses:
        alpha *= 1 - canvas.glasses_frames(user_as_seen.dark, USER_FRAMES_EYE_CLEARANCE)
    return alpha


def feature_trust(t_lms: FloatArray, u_lms: FloatArray) -> dict[str, float]:
    """How far the user's lips and eyes can be stretched onto the template's: a user's
    open mouth squeezed onto closed lips smears teeth over them, and open eyes squeezed
    shut (or shut eyes pulled open) smear lashes; there the template's own feature stays.

    The eyes go as a pair, on their mismatch taken together: one eye the user's and the other
    the template's read as two people, and a turned head or a smile's squint makes the two
    eyes' openness differ more than the faces do."""
    trust = {"lips": user_lips_trust(t_lms, u_lms)}
    mismatch = np.mean(
        [eye_openness_mismatch(t_lms, u_lms, span) for span in (mesh.RIGHT_EYE_OPENING, mesh.LEFT_EYE_OPENING)]
    )
    trust["right_eye"] = trust["left_eye"] = 1 - float(masks.smoothstep(np.float32(mismatch), *EYES_MISMATCH))
    return {k: float(v) for k, v in trust.items()}


@dataclass(frozen=True)
class FullSizeWeights:
    """The canvas's weights grown to the face region's full resolution."""

    skin: FloatArray  # TemplateSkin.shared
    features: FloatArray  # Canvas.features
    alpha: FloatArray  # with the template's open mouth cut out


def full_size_weights(
    canvas: Canvas, shared_skin: FloatArray, alpha: FloatArray, target: FloatArray, t_lms: FloatArray, face_size: float
) -> FullSizeWeights:
    """`target`: the fused landmarks in the region's pixels."""
    alpha = canvas.grow(alpha)
    _cut_mouth_hole(alpha, target, t_lms, face_size)
    return FullSizeWeights(canvas.grow(shared_skin), canvas.grow(canvas.features), alpha)


def _cut_mouth_hole(alpha: FloatArray, target: FloatArray, t_lms: FloatArray, face_size: float) -> None:
    """Take the template's open mouth (teeth, tongue) out of `alpha` (full resolution, in
    place): it stays the template's. A closed mouth has no hole: there the user's lips,
    lip line included, come in whole."""
    open_amount = float(masks.smoothstep(np.float32(openness(t_lms, mesh.MOUTH_OPENING)), *MOUTH_OPEN))
    if open_amount <= 0:
        return
    lips = target[list(mesh.LIPS_INNER)]
    x0, y0, x1, y1 = masks.bounds(lips, alpha.shape, MOUTH_HOLE_MARGIN * face_size + 2)
    hole = masks.polygon_mask((y1 - y0, x1 - x0), lips - np.array([x0, y0], np.float32))
    alpha[y0:y1, x0:x1] *= 1 - open_amount * masks.feather(hole, MOUTH_HOLE_FEATHER * face_size)
