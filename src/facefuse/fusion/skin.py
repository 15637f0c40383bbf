"""What of each warped face is skin, read on the face region's canvas: the template's (its
likelihood worked out once per template, moved onto this canvas) and the user's (its own
skin model, where its photo really shows the face, the hair on its forehead)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facefuse.arrays import FloatArray, UInt8Array
from facefuse.fusion import masks, tone
from facefuse.fusion.canvas import Canvas
from facefuse.fusion.placement import CanvasWarps
from facefuse.fusion.template import PreparedTemplate

# The edge of what the user's photo shows (its border, a bit seen edge-on) is softened over
# this much of the face.
COVERAGE_FEATHER = 0.015


@dataclass(frozen=True)
class TemplateSkin:
    """The template's skin on the canvas, and where both faces show plain skin."""

    likelihood: FloatArray  # the template's skin likelihood, 0..1
    plain: FloatArray  # Canvas.skin_area: inside the oval, away from the features
    shared: FloatArray  # plain * likelihood: where the template's light is read


@dataclass(frozen=True)
class UserSkin:
    """The user's warped face on the canvas."""

    small: FloatArray  # float32 RGB, block averages
    dark: FloatArray  # float32 luma, each block's darkest pixel (Canvas.shrink_dark)
    model: tone.SkinModel
    likelihood: FloatArray  # skin likelihood where its photo shows the face, 0..1
    forehead_hair: FloatArray  # strands over the forehead, 0..1


def template_skin(canvas: Canvas, on_canvas: CanvasWarps, prepared: PreparedTemplate) -> TemplateSkin:
    likelihood = on_canvas.template_plane(prepared.canvas_skin)
    plain = canvas.skin_area()
    shared = plain * likelihood
    if prepared.canvas_hands is not None:  # a hand in front is not where the face's light is read
        shared *= 1 - on_canvas.template_plane(prepared.canvas_hands)
    return TemplateSkin(likelihood, plain, shared)


def user_skin(canvas: Canvas, on_canvas: CanvasWarps, u_face: UInt8Array, filled: FloatArray | None = None) -> UserSkin:
    """`u_face`: the user's face warped onto the canvas's region (full resolution, uint8);
    `filled`: how much of each block was filled from the face itself (occluders.fill),
    which counts as shown."""
    small = canvas.shrink(u_face)
    coverage = on_canvas.user_coverage()
    if filled is not None:
        coverage = np.maximum(coverage, filled)
    shown = masks.feather(coverage, COVERAGE_FEATHER * canvas.size)
    model = canvas.skin_model(small)
    likelihood = tone.skin_likelihood(small, model) * shown
    dark = canvas.shrink_dark(u_face)
    return UserSkin(small, dark, model, likelihood, canvas.forehead_hair(dark, model))
