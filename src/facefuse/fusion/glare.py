"""Glare on a user's glasses: a white reflection on the lenses, taken off the face behind them.

Where a lens reflects a light, the photo shows the face behind it mixed with that light:
O = (1 - a) S + a W, with W white and a the reflection's strength. Over a lens's area the
skin keeps nearly one chromaticity (its shading changes its level more than its hue), so
each pixel's mix is solved for by least squares, O = m r + a W: r is the chromaticity of
the skin around that reads as no glare (a broad average), m the skin's level. A grey or
sepia photo has no chromaticity to tell the two apart; there the skin's level around
stands in for it. The face behind is the photo with the light taken off and its contrast
given back, (O - a W) / (1 - a): a lid's crease or the skin's grain under the glare comes
back as it was, where inpainting would make it smooth.

An eye's white is no skin and reads as a strong mix: over the eyes' openings (from corner
to corner through the iris, openings) a pixel coloured as skin behind a glare is taken as
it reads, any other takes no more glare than the skin around the eye shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import cv2
import numpy as np

from facefuse.arrays import BoolArray, FloatArray, UInt8Array
from facefuse.fusion import masks, mesh

WHITE = 255.0
WORK_FACE = 120.0  # px: the face's size where the skin's colour around and the glare's extent are read
# Of the face size: how far around the lenses skin is read for its colour, and how broadly
# it is averaged.
REFERENCE_REACH = 0.07
REFERENCE_SIGMA = 0.06
DARK = 0.6  # of the median luma around the lenses: darker is no skin (rims, brows, lashes)
# What reads as glare stronger than this, grown by this much of the face size, is left out
# of the skin's colour; worked out again this many times.
EXCLUDE_FROM = 0.05
EXCLUDE_GROW = 0.02
ROUNDS = 2
# Lenses show glare when the skin behind them reads as a mix stronger than GLARE over this
# much of the face size squared: skin under a clean lens (its shine, the paler skin under an
# eye) reads as a weak one here and there.
GLARE = 0.4
LEAST_GLARE = 0.002
# A glare is one smooth patch: what reads as a mix over REGION_FOOT hanging together with
# one over GLARE, grown by REGION_GROW of the face size.
REGION_FOOT = 0.15
REGION_GROW = 0.01
# A reflection's strength is taken partly from the first value, fully from the second.
STRENGTH = (0.03, 0.08)
STRONGEST = 0.9  # what is whiter than this is the light alone: the face behind it is lost
# sin² of the angle between the skin's chromaticity and white: below the first the photo's
# skin is too grey to tell glare by its colour and its level stands in; above the second,
# the colour alone.
COLOURLESS = (0.004, 0.015)
EYE_ZONE = 0.005  # of the face size: the eyes' openings grown by this
EYE_GLARE_SIGMA = 0.03  # of the face size: the glare around an eye is read this broadly
# How white a pixel reads by its colour alone: from the first value it may be an eye's white,
# from the second it is.
EYE_WHITE = (0.7, 0.9)
OUTLINE_POINTS = 16  # per lid
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


@dataclass(frozen=True)
class _Lenses:
    """The lenses and what is around them, in a window of the photo."""

    pixels: FloatArray  # RGB
    inside: BoolArray  # the lenses' insides
    eyes: BoolArray  # the eyes' openings (openings)
    face_size: float

    def strength(self, colour: FloatArray, level: FloatArray) -> tuple[FloatArray, FloatArray]:
        """_mix over the lenses, 0 elsewhere."""
        strength, whiteness = _mix(self.pixels, colour, level)
        strength[~self.inside] = 0
        return strength, whiteness


def lifted(rgb: UInt8Array, lenses: BoolArray, points: FloatArray, face_size: float) -> UInt8Array | None:
    """`rgb` with the glare on the `lenses` (bool, their insides) taken off, the eyes'
    openings within them too (`points`: the face's landmarks in its pixels): a new image, or
    None when the lenses show no glare. The skin's colour around and where the glare lies
    are read with the face at WORK_FACE pixels (they are smooth); each pixel's mix at full
    resolution."""
    reach = int(np.ceil((REFERENCE_REACH + 2 * REFERENCE_SIGMA) * face_size))
    bx, by, bw, bh = cv2.boundingRect(lenses.view(np.uint8))
    if bw == 0:
        return None
    h, w = lenses.shape
    window = (slice(max(0, by - reach), min(h, by + bh + reach)), slice(max(0, bx - reach), min(w, bx + bw + reach)))
    part = rgb[window]
    local = points - np.array([window[1].start, window[0].start], np.float32)
    small = _shrunk(part, lenses[window], local, face_size)
    colour, level = _skin_around(small)
    strength, _ = small.strength(colour, level)
    if float((strength[small.inside & ~small.eyes] > GLARE).sum()) < LEAST_GLARE * small.face_size**2:
        return None
    regions = _glare_regions(strength, small.face_size)
    near_eyes = masks.grow(small.eyes.view(np.uint8), EYE_ZONE * small.face_size) > 0
    weak = strength * masks.smoothstep(strength, *STRENGTH) * regions
    clear_skin = (small.inside & ~near_eyes).astype(np.float32)
    around_eyes = _normalised_blur(weak, clear_skin, EYE_GLARE_SIGMA * small.face_size)
    full_size = (part.shape[1], part.shape[0])
    colour, level, regions, around_eyes = (
        cast(FloatArray, cv2.resize(x, full_size, interpolation=cv2.INTER_LINEAR))
        for x in (colour, level, regions, around_eyes)
    )
    full = _Lenses(part.astype(np.float32), lenses[window], openings(part.shape, local), face_size)
    strength, whiteness = full.strength(colour, level)
    strength *= masks.smoothstep(strength, *STRENGTH) * regions
    near_eyes = masks.grow(full.eyes.view(np.uint8), EYE_ZONE * face_size) > 0
    skin_coloured = strength * (1 - masks.smoothstep(whiteness, *EYE_WHITE))
    strength = np.where(near_eyes, np.maximum(skin_coloured, np.minimum(strength, around_eyes)), strength)
    face = (full.pixels - WHITE * strength[..., None]) / (1 - strength[..., None])
    out = rgb.copy()
    out[window] = np.clip(face + 0.5, 0, 255).astype(np.uint8)
    return out


def openings(shape: tuple[int, ...], points: FloatArray) -> BoolArray:
    """The eyes' openings (bool): from corner to corner through the iris's top and bottom,
    across the eye line (FaceMesh's lids' outline where it has no irises). A glare over an
    eye pulls the lids' outline onto its edge; the corners and the iris hold."""
    if len(points) <= mesh.LEFT_IRIS[-1]:
        outlines = masks.polygon_mask(shape[:2], masks.loop(points, mesh.RIGHT_EYE), masks.loop(points, mesh.LEFT_EYE))
        return outlines > 0.5
    up = masks.face_up(points)
    along = np.linspace(0.0, 1.0, OUTLINE_POINTS, dtype=np.float32)[:, None]
    bulge = 4 * along * (1 - along)  # each lid a parabola from corner to corner
    polygons = []
    for corners, iris in ((mesh.RIGHT_EYE_CORNERS, mesh.RIGHT_IRIS), (mesh.LEFT_EYE_CORNERS, mesh.LEFT_IRIS)):
        start, end = points[corners[0]], points[corners[1]]
        centre, radius = mesh.iris_circle(points, iris)
        lift = float((centre - (start + end) / 2) @ up)  # the iris above the corners' line
        line = start + (end - start) * along
        upper = line + bulge * (radius + lift) * up
        lower = line - bulge * (radius - lift) * up
        polygons.append(np.concatenate([upper, lower[::-1]]).astype(np.float32))
    return masks.polygon_mask(shape[:2], *polygons) > 0.5


def _shrunk(part: UInt8Array, inside: BoolArray, points: FloatArray, face_size: float) -> _Lenses:
    """The window with the face at WORK_FACE pixels (or as it is when smaller)."""
    scale = min(1.0, WORK_FACE / max(face_size, 1.0))
    size = (max(1, round(part.shape[1] * scale)), max(1, round(part.shape[0] * scale)))
    factors = np.array([size[0] / part.shape[1], size[1] / part.shape[0]], np.float32)
    return _Lenses(
        cv2.resize(part, size, interpolation=cv2.INTER_AREA).astype(np.float32),
        cv2.resize(inside.view(np.uint8), size, interpolation=cv2.INTER_AREA) > 0,
        openings((size[1], size[0]), (points + 0.5) * factors - 0.5),
        face_size * scale,
    )


def _skin_around(lenses: _Lenses) -> tuple[FloatArray, FloatArray]:
    """The skin's colour (RGB) and luma around each pixel: a broad average of the skin
    around the lenses that reads as no glare (what does is left out, and the average taken
    again, ROUNDS times)."""
    size = lenses.face_size
    luma = lenses.pixels @ _LUMA
    reference = (masks.grow(lenses.inside.view(np.uint8), REFERENCE_REACH * size) > 0) & ~lenses.eyes
    if reference.any():
        reference &= luma > DARK * float(np.median(luma[reference]))
    weight = reference.astype(np.float32)
    sigma = REFERENCE_SIGMA * size
    for _ in range(ROUNDS):
        colour = np.dstack([_normalised_blur(lenses.pixels[..., k], weight, sigma) for k in range(3)])
        level = _normalised_blur(luma, weight, sigma)
        strength, _ = lenses.strength(colour, level)
        glare = masks.grow((strength > EXCLUDE_FROM).view(np.uint8), EXCLUDE_GROW * size) > 0
        weight = (reference & ~glare).astype(np.float32)
    return colour, level


def _mix(pixels: FloatArray, colour: FloatArray, level: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Each pixel's glare strength a (0..STRONGEST), and how white it reads by its colour
    alone (1 where the skin around is too grey to tell): O = m r + a W solved by least
    squares, r the chromaticity of `colour`; where that is close to white, from the pixel's
    luma over the skin's `level` instead."""
    chroma = colour / np.maximum(colour.sum(axis=2, keepdims=True), 1e-3)
    white = np.full(3, WHITE, np.float32)
    rr = (chroma * chroma).sum(axis=2)
    rw = chroma @ white
    ww = float(white @ white)
    det = rr * ww - rw * rw
    by_colour = (rr * (pixels @ white) - rw * (chroma * pixels).sum(axis=2)) / np.maximum(det, 1e-9)
    by_level = (pixels @ _LUMA - level) / np.maximum(WHITE - level, 1.0)
    coloured = masks.smoothstep(det / np.maximum(rr * ww, 1e-9), *COLOURLESS)
    strength = np.clip(by_level + coloured * (by_colour - by_level), 0, STRONGEST).astype(np.float32)
    return strength, np.where(coloured > 0.5, by_colour, 1.0).astype(np.float32)


def _glare_regions(strength: FloatArray, face_size: float) -> FloatArray:
    """Where a glare is (0..1): the pixels reading as a mix over REGION_FOOT that hang
    together with one over GLARE, grown by REGION_GROW of the face size and feathered. The
    skin's own pale bits (a lid's shine, a paler side of the nose) read as weak mixes,
    scattered."""
    count, pieces = cv2.connectedComponents((strength > REGION_FOOT).view(np.uint8), connectivity=8)
    seeded = np.zeros(count, bool)
    seeded[pieces[strength > GLARE]] = True
    seeded[0] = False
    regions = seeded[pieces].astype(np.float32)
    return masks.feather(masks.grow(regions, REGION_GROW * face_size), REGION_GROW * face_size / 2)


def _normalised_blur(values: FloatArray, weight: FloatArray, sigma: float) -> FloatArray:
    """The weighted Gaussian average of `values` around each pixel (weights 0..1)."""
    total = masks.feather(values * weight, sigma)
    return cast(FloatArray, total / np.maximum(masks.feather(weight, sigma), 1e-6))
