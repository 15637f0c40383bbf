"""The user's directional light swapped for the template's, on the face's 3-D shape.

A hard side light or a flash puts shadows and highlights on a face by its surface's
direction: the side of the nose, a cheek turned away. The local skin levels (light.py)
take a face's light at a few scales but cannot tell a shadow from the relief under it.
Here each face's log luma on its plain skin is fitted as a constant plus a linear function
of the surface normal (first-order spherical harmonics, a Lambertian face under one
distant light and ambient light), from the mesh's normals in each photo; the user's
directional part is divided out and the template's put in its place.
"""

from __future__ import annotations

import cv2
import numpy as np

from facefuse.fusion.masks import smoothstep

# Blocks whose normal faces the camera less than this (a silhouette, the side of the nose
# seen edge-on) and whose skin weight is less than the second value are left out of a fit.
MIN_FACING = 0.25
MIN_WEIGHT = 0.3
FACING_FADE = (0.25, 0.6)  # the gain is whole where both surfaces face the camera more than this
MIN_SAMPLES = 64  # fewer fitting blocks: no directional light is told
GAIN_LIMIT = 1.2  # the directional gain stays within exp(+-this)
_LOG_OFFSET = 4.0  # log(luma + this): dark pixels do not dominate the fit


def gain(user_small: np.ndarray, user_weight: np.ndarray, user_normals: np.ndarray,
                     template_small: np.ndarray, template_weight: np.ndarray,
                     template_normals: np.ndarray) -> np.ndarray | None:
    """(h, w) the gain that takes the user's face (canvas, float32 RGB) from its photo's
    directional light to the template's, per block; None when either light cannot be told."""
    user_light = _fit(user_small, user_weight, user_normals)
    template_light = _fit(template_small, template_weight, template_normals)
    if user_light is None or template_light is None:
        return None
    # Only the light's sideways part is swapped: how a face darkens toward its sides, and
    # under its brows and nose, under any light from the front or above is part of its
    # shape as the judge and people see it.
    log_gain = -user_normals[..., 0] * user_light[0]
    # Toward a silhouette the fit says little and the gain would be steep: it fades out there.
    log_gain *= smoothstep(np.minimum(user_normals[..., 2], template_normals[..., 2]), *FACING_FADE)
    return np.exp(np.clip(log_gain, -GAIN_LIMIT, GAIN_LIMIT)).astype(np.float32)


def _fit(small: np.ndarray, weight: np.ndarray, normals: np.ndarray) -> np.ndarray | None:
    """The directional part (3,) of log luma ~ c + light . normal, weighted least squares."""
    luma = cv2.cvtColor(np.ascontiguousarray(small, np.float32), cv2.COLOR_RGB2GRAY)
    use = (weight > MIN_WEIGHT) & (normals[..., 2] > MIN_FACING)
    if int(use.sum()) < MIN_SAMPLES:
        return None
    w = np.sqrt(weight[use]).astype(np.float64)
    design = np.column_stack([np.ones(w.size), normals[use].astype(np.float64)]) * w[:, None]
    target = np.log(luma[use].astype(np.float64) + _LOG_OFFSET) * w
    solution, *_ = np.linalg.lstsq(design, target, rcond=None)
    return solution[1:].astype(np.float32)
