"""The user's sideways light taken out, on the face's 3-D shape, in each channel.

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
    """(h, w, 3) the gain that takes the sideways part of the user's photo's light off its
    face (canvas, float32 RGB), per block and channel; None when that light cannot be told.

    The share of the luma's sideways slope taken off is taken off each channel's slope
    too: skin in shadow is redder than where the light falls on it (light scattered under
    the skin comes out warmer), so a shadow lifted in luma alone stays an orange band."""
    slopes = _fit(user_small, user_weight, user_normals)
    if slopes is None:
        return None
    luma_slope = float(slopes[0])
    sideways = float(np.sign(luma_slope)) * max(abs(luma_slope) - SIDE_LIGHT_KEPT, 0.0)
    if sideways == 0:
        return None
    channels = slopes[1:] - slopes[1:].mean()
    per_channel = (sideways + channels * (sideways / luma_slope)).astype(np.float32)
    # Toward a silhouette the fit says little and the gain would be steep: it fades out there.
    fade = smoothstep(np.minimum(user_normals[..., 2], template_normals[..., 2]), *FACING_FADE)
    log_gain = (-user_normals[..., 0] * fade)[..., None] * per_channel
    return cast(FloatArray, np.exp(np.clip(log_gain, -GAIN_LIMIT, GAIN_LIMIT)).astype(np.float32))


def _fit(small: FloatArray, weight: FloatArray, normals: FloatArray) -> FloatArray | None:
    """(4,) the sideways slopes (along the normal's x) of log luma and of each channel's log
    (log ~ c + light . normal, weighted least squares), or None when too few blocks fit."""
    small = np.ascontiguousarray(small, np.float32)
    luma = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
    use = (weight > MIN_WEIGHT) & (normals[..., 2] > MIN_FACING)
    if int(use.sum()) < MIN_SAMPLES:
        return None
    w = np.sqrt(weight[use]).astype(np.float64)
    design = np.column_stack([np.ones(w.size), normals[use].astype(np.float64)]) * w[:, None]
    planes = np.column_stack([luma[use], np.maximum(small[use], 0)]).astype(np.float64)
    targets = np.log(planes + _LOG_OFFSET) * w[:, None]
    # The normal equations: four unknowns over thousands of blocks, far cheaper than an SVD.
    try:
        solution = np.linalg.solve(design.T @ design, design.T @ targets)
    except np.linalg.LinAlgError:  # the normals all alike: no light to tell
        return None
    return cast(FloatArray, solution[1].astype(np.float32))
