"""The user's sideways light taken out, on the face's 3-D shape.

A hard side light puts shadows and highlights on a face by its surface's direction: the
side of the nose, the cheek turned from the light. The local skin levels (light.py) take a
face's light at a few scales but cannot tell a shadow from the relief under it. Here the
user's log luma on its plain skin is fitted as a constant plus a linear function of the
surface normal in its photo (first-order spherical harmonics: a matte face under one
distant light and ambient light), and the sideways part of that light, beyond a
portrait's usual modelling light, is divided out.
The template's own light then comes with its local levels. Swapping in the template's
directional light as well, or taking out the user's light from above and the front, takes
away how the face darkens toward its sides and under its brows: part of its likeness.
"""

from __future__ import annotations

from typing import cast

import cv2
import numpy as np

from facefuse.arrays import FloatArray
from facefuse.fusion.masks import smoothstep

# Blocks whose normal faces the camera less than this (a silhouette, the side of the nose
# seen edge-on) and whose skin weight is less than the second value are left out of a fit.
MIN_FACING = 0.25
MIN_WEIGHT = 0.3
FACING_FADE = (0.25, 0.6)  # the gain is whole where both surfaces face the camera more than this
MIN_SAMPLES = 64  # fewer fitting blocks: no directional light is told
# A portrait's usual modelling light (the log luma's slope along the normal's x, up to
# about this on ../shared/faces' frontal photos) is part of how the face looks; only a
# harder side light is taken down to it.
SIDE_LIGHT_KEPT = 0.25
GAIN_LIMIT = 1.2  # the directional gain stays within exp(+-this)
_LOG_OFFSET = 4.0  # log(luma + this): dark pixels do not dominate the fit


def gain(
    user_small: FloatArray, user_weight: FloatArray, user_normals: FloatArray, template_normals: FloatArray
) -> FloatArray | None:
    """(h, w) the gain that takes the sideways part of the user's photo's light off its face
    (canvas, float32 RGB), per block; None when that light cannot be told."""
    user_light = _fit(user_small, user_weight, user_normals)
    if user_light is None:
        return None
    sideways = float(np.sign(user_light[0])) * max(abs(float(user_light[0])) - SIDE_LIGHT_KEPT, 0.0)
    if sideways == 0:
        return None
    log_gain = -user_normals[..., 0] * sideways
    # Toward a silhouette the fit says little and the gain would be steep: it fades out there.
    log_gain *= smoothstep(np.minimum(user_normals[..., 2], template_normals[..., 2]), *FACING_FADE)
    return np.exp(np.clip(log_gain, -GAIN_LIMIT, GAIN_LIMIT)).astype(np.float32)


def _fit(small: FloatArray, weight: FloatArray, normals: FloatArray) -> FloatArray | None:
    """The directional part (3,) of log luma ~ c + light . normal, weighted least squares."""
    luma = cv2.cvtColor(np.ascontiguousarray(small, np.float32), cv2.COLOR_RGB2GRAY)
    use = (weight > MIN_WEIGHT) & (normals[..., 2] > MIN_FACING)
    if int(use.sum()) < MIN_SAMPLES:
        return None
    w = np.sqrt(weight[use]).astype(np.float64)
    design = np.column_stack([np.ones(w.size), normals[use].astype(np.float64)]) * w[:, None]
    target = np.log(luma[use].astype(np.float64) + _LOG_OFFSET) * w
    solution, *_ = np.linalg.lstsq(design, target, rcond=None)
    return cast(FloatArray, solution[1:].astype(np.float32))
