"""Put a user's face into a template face: the fusion package's public entry points.

The user's face is warped onto the template's landmarks (moved a little toward the user's
proportions), lit and toned by the template's low-frequency skin shading, given the
template's grain, and blended in with a soft mask that keeps the template's outline, hair,
mouth interior and anything else on the template face that is not skin. The steps, in
order, are pipeline.fill_face's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facefuse.arrays import UInt8Array
from facefuse.fusion.in_front import HeldMask
from facefuse.fusion.pipeline import fill_face
from facefuse.fusion.placement import Strength
from facefuse.fusion.template import PreparedTemplate, prepare_template
from facefuse.vision.faces import Face

__all__ = ["FuseOptions", "HeldMask", "PreparedTemplate", "fuse_face", "fuse_prepared", "prepare_template"]


@dataclass(frozen=True)
class FuseOptions:
    """fuse_degree: how much of the user's skin and features replace the template's (0..100).
    shape_degree: how far the face geometry moves toward the user's proportions (0..100)."""

    fuse_degree: int = 100
    shape_degree: int = 40

    def strength(self) -> Strength:
        return Strength(float(np.clip(self.fuse_degree, 0, 100)) / 100, float(np.clip(self.shape_degree, 0, 100)) / 100)


def fuse_face(
    template_rgb: UInt8Array, template_face: Face, user_rgb: UInt8Array, user_face: Face, options: FuseOptions
) -> UInt8Array:
    """A new RGB image of the template's size with the user's face in template_face."""
    return fuse_prepared(prepare_template(template_rgb, template_face), user_rgb, user_face, options)


def fuse_prepared(
    prepared: PreparedTemplate,
    user_rgb: UInt8Array,
    user_face: Face,
    options: FuseOptions,
    find_held: HeldMask | None = None,
) -> UInt8Array:
    """fuse_face with the template face prepared beforehand (prepare_template). `find_held`:
    what hands cover of the user's face (HeldMask), asked only when the face reads so."""
    result = prepared.image.copy()
    if options.fuse_degree > 0:
        x0, y0, x1, y1 = prepared.crop
        fill_face(result[y0:y1, x0:x1], prepared, user_rgb, user_face, options.strength(), find_held)
    return result
