"""Hands, and what they hold, over either face: the user's are filled, the template's stay.

Fusion does not look for hands itself: the caller hands it a HeldMask, a function that
answers what hands cover of a face over a box of its photo (vision/hands.held_mask, the
hand model mediapipe ships), and fusion asks it when it needs to.

- Over the user's face a hand (or a microphone in it) is never carried over. The hand
  model costs far more than the rest of this, so it is asked only when the face as the
  canvas shows it is far less symmetric below the eyes than a face is (`asymmetry`: a
  hand lies on one side, or across the middle with its fist on one side; a face's own
  light is taken out first). What the hand covers is filled as a strand of hair is, from
  the face's mirror image where that side is clear (occluders.plan_fill and fill take it
  among the covers); what is left shows the template's own face (template_shows: the
  fusion's alpha leaves it out), and the user's face is filled there from the template's
  skin in the user's tone (fill_from_template), which its light and alpha read.
- Over the template's face a hand stays in front, as it is in the template, crisp
  (in_front.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import cast

import cv2
import numpy as np

from facefuse.arrays import BoolArray, FloatArray, UInt8Array
from facefuse.fusion import masks, occluders, tone, warp
from facefuse.fusion.canvas import Canvas
from facefuse.fusion.in_front import HeldMask
from facefuse.fusion.occluders import NOTHING_TO_FILL, Covers, FillPlan
from facefuse.fusion.placement import CanvasWarps, RegionWarps, UserFace
from facefuse.fusion.skin import UserSkin

# The face's asymmetry below the eyes (`asymmetry`) from which the hand model is asked. On
# ../shared/faces a face reads 0.03-0.25 (median 0.10; beards, a smile's folds and turned
# heads read high: 8 of 87 faces reach this), and 165 of 172 with a hand pasted over a
# cheek or a microphone over the mouth reach it (docs/quality.md).
ASYMMETRY = 0.17
ASYMMETRY_LIGHT = 0.08  # of the face size: the scale of the light taken out of the asymmetry
HELD_GROW = 0.025  # of the face size: what a hand covers grown by this on the canvas (its shadow)
# The user's tone the template's skin takes: the two faces' colour ratio on the skin around
# what it fills, spread over it at this scale (of the face size).
TEMPLATE_TONE_SIGMA = 0.06
TEMPLATE_FEATHER = 0.02  # of the face size: the template's skin comes in over this
HELD_FEATURES_MARGIN = 0.05  # of the face size: under a hand this near the features, no mirror image
# Under a hand the mirror image fills the oval pulled in by this much (of the face size:
# forehead, sides, chin): near its edge the mirror image may fall on an ear, an earring
# or the hair beside the other cheek.
HELD_MIRROR_ZONE = (0.10, 0.10, 0.08)
MIRROR_CLEARANCE = 0.04  # of the face size: how far from a hand the mirror image is
HELD_LIGHT_SIGMA = 0.12  # of the face size: the scale of the light matched on a mirror image under a hand
HELD_LIGHT_LIMIT = 0.25  # the mirror image under a hand at most e**0.25 times brighter or darker
TONE_LIMIT = 1.0  # the user's tone over the template's, at most e times either way


def asymmetry(canvas: Canvas, on_canvas: CanvasWarps, small: FloatArray, covers: Covers | None) -> float:
    """How unlike its own mirror image the user's face is below the eyes: the mean absolute
    difference of log colour between each bit of plain skin and its mirror image (through
    the mesh's left-right pairs), the face's own light (that difference at a coarse scale)
    taken out. Bits the photo shows edge-on and covers already found are left out."""
    mirror = on_canvas.mirror()
    seen = on_canvas.squarely * on_canvas.inside_user_photo() * canvas.skin_area()
    if covers is not None:
        seen = seen * (1 - covers.mask)
    weight = seen * warp.remap(seen, mirror)
    logs = np.log(small + 4.0)
    difference = logs - warp.remap(logs, mirror)
    sigma = ASYMMETRY_LIGHT * canvas.size
    total = np.maximum(masks.feather(weight, sigma), 1e-4)
    light = masks.feather(difference * weight[..., None], sigma) / total[..., None]
    residual = np.abs(difference - light).mean(axis=2)
    lower = weight * masks.lower_face(canvas.shape, canvas.points)
    return float((residual * lower).sum() / max(float(lower.sum()), 1e-3))


def over_user(
    canvas: Canvas,
    on_canvas: CanvasWarps,
    user: UserFace,
    small: FloatArray,
    covers: Covers | None,
    find: HeldMask | None,
) -> FloatArray | None:
    """What hands cover of the user's face on the canvas (0..1), asked of `find` only when
    the face reads asymmetric enough; None when nothing does."""
    if find is None or asymmetry(canvas, on_canvas, small, covers) < ASYMMETRY:
        return None
    mask = find(user.box, (user.image.shape[0], user.image.shape[1]))
    if mask is None:
        return None
    blocks = on_canvas.blocks
    held = warp.remap(mask, (blocks[..., 0], blocks[..., 1]), cv2.BORDER_CONSTANT)
    held = masks.grow(held, HELD_GROW * canvas.size)
    return held if float(held.max(initial=0.0)) >= NOTHING_TO_FILL else None


def plan_fill(
    canvas: Canvas, on_canvas: CanvasWarps, covers: Covers | None, held: FloatArray | None, user: UserSkin
) -> FillPlan | None:
    """occluders.plan_fill with what hands cover among the covers. Under a hand the mirror
    image fills only the plain skin, and only from skin: a face's features are rarely each
    other's mirror image (a smile's teeth show on one side, a lip's corner on the other),
    and along the jaw a collar or the hair may lie on one side only; there the template's
    own (fill_from_template) fits better."""
    if held is None:
        return occluders.plan_fill(canvas, on_canvas, None if covers is None else covers.mask, user.small)
    mask = held if covers is None else np.maximum(covers.mask, held)
    plan = occluders.plan_fill(canvas, on_canvas, mask, user.small)
    if plan is None:
        return None
    mirror = on_canvas.mirror()
    inner = masks.polygon_mask(canvas.shape, masks.shrunk_oval(canvas.points, *HELD_MIRROR_ZONE))
    plain = inner * (1 - canvas.features_grown(HELD_FEATURES_MARGIN))
    # The mirror image is well clear of the hand (whose edge the mask may miss).
    plain *= warp.remap(1 - masks.grow(held, MIRROR_CLEARANCE * canvas.size), mirror, cv2.BORDER_CONSTANT)
    moved = plan.from_mirror * held * (1 - plain)
    # A hand hides much of the face around what it covers: the mirror image's light is
    # matched to the clear skin only, over a wider reach and within a narrower range.
    clear = (1 - mask) * canvas.skin_area() * user.likelihood
    sigma = (HELD_LIGHT_SIGMA * canvas.size,)
    here = tone.masked_log_lowpass(user.small, clear, sigma)[0]
    there = tone.masked_log_lowpass(warp.remap(user.small, mirror), clear, sigma)[0]
    gain = np.exp(np.clip(here - there, -HELD_LIGHT_LIMIT, HELD_LIGHT_LIMIT)).astype(np.float32)
    return FillPlan(plan.from_mirror - moved, plan.from_around + moved, gain)


def fill(
    canvas: Canvas,
    region: RegionWarps,
    u_face: UInt8Array,
    plan: FillPlan,
    crossings: BoolArray | None,
    held: FloatArray | None,
    shows: FloatArray | None,
    template: Callable[[], tuple[UInt8Array, FloatArray]],
) -> UInt8Array:
    """occluders.fill, and under a hand what its mirror image cannot fill (`shows`:
    template_shows) taken from the template's skin (`template`: its warped face region and
    block averages, when asked)."""
    own = own_part(plan, held)
    if float(own.filled.max(initial=0.0)) >= NOTHING_TO_FILL:
        u_face = occluders.fill(canvas, region, u_face, own, crossings)
    if shows is None:
        return u_face
    return fill_from_template(canvas, u_face, shows, *template())


def own_part(plan: FillPlan, held: FloatArray | None) -> FillPlan:
    """`plan` less what the template's skin fills under a hand (fill_from_template): the
    rest is filled by occluders.fill (the mirror image, and a strand's dark line inpainted)."""
    if held is None:
        return plan
    return replace(plan, from_around=plan.from_around - _from_template(plan, held))


def fill_from_template(
    canvas: Canvas,
    u_face: UInt8Array,
    weight: FloatArray,
    template_face: UInt8Array,
    template_small: FloatArray,
) -> UInt8Array:
    """`u_face` (the user's warped face, uint8) with what a hand covers and its mirror image
    cannot fill (`weight`: template_shows) taken from the template's warped face in the
    user's tone (its local skin colour over the template's, on the skin around it, the
    mirror image's fill among it: read only further off, a cheek in shade beside a pale
    fill): a new image."""
    # The skin around what the template fills, the mirror image's fill among it: the
    # template's skin takes the tone of the face right beside it.
    clear = canvas.skin_area() * (1 - masks.grow(weight, TEMPLATE_FEATHER * canvas.size))
    ratio = np.log(canvas.shrink(u_face) + 4.0) - np.log(template_small + 4.0)
    sigma = TEMPLATE_TONE_SIGMA * canvas.size
    spread = masks.feather(ratio * clear[..., None], sigma) / np.maximum(masks.feather(clear, sigma), 1e-4)[..., None]
    gain = np.exp(np.clip(spread, -TONE_LIMIT, TONE_LIMIT)).astype(np.float32)
    taken = template_face.astype(np.float32) * canvas.grow(gain)
    full = canvas.grow(weight)
    mixed = cast(FloatArray, cv2.blendLinear(taken, u_face.astype(np.float32), full, 1 - full))
    out = np.empty(u_face.shape, np.uint8)
    cv2.convertScaleAbs(mixed, dst=out)
    return out


def template_shows(canvas: Canvas, plan: FillPlan, held: FloatArray) -> FloatArray | None:
    """Where the template's own face shows under a hand (0..1 on the canvas): what the
    mirror image cannot fill; None where that is nothing. The template's skin there, in the
    template's light, meets the user's face relit into that light; filled in the user's
    tone and relit with the rest, it came out paler or darker than the face around it
    wherever the tone read beside it (the mirror image's fill among it) was off."""
    # The mirror image went in first: what it left of each pixel is all the template's, and
    # its edge is softened outward only (inside, a softer edge would leave some hand).
    weight = np.clip(_from_template(plan, held) / np.maximum(1 - plan.from_mirror, 1e-3), 0, 1)
    if float(weight.max(initial=0.0)) < NOTHING_TO_FILL:
        return None
    return np.maximum(weight, masks.feather(weight, TEMPLATE_FEATHER * canvas.size))


def _from_template(plan: FillPlan, held: FloatArray) -> FloatArray:
    """What of the plan's inpainting lies under a hand: the template's skin fills it."""
    return cast(FloatArray, np.minimum(plan.from_around, held))
