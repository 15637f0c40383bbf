"""What covers the user's face, and the face it hides.

Strands of hair and the frames of glasses are thin and far darker than the skin around
them: they are found on the canvas as dark lines on the face, the user's own eyes, brows,
lips and nostrils left out. They, and the bits of face the user's photo shows edge-on (a
turned head's far cheek) or not at all (a face cut off by the photo's border), are filled
from the face itself before it is read and lit: from the mirror image across the face's
midline where that side is clear, else from the surrounding skin (inpainted on the
canvas; the template's grain comes over it later, as over all the skin).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from facefuse.fusion import detail, masks, mesh, tone, warp
from facefuse.fusion.canvas import USER_FRAMES_EYE_CLEARANCE, Canvas
from facefuse.fusion.placement import CanvasWarps, RegionWarps
from facefuse.fusion.template import box_around
from facefuse.vision.faces import Face

LINE_WIDTH = 0.03  # of the face size: strands and frames are thinner than this
# Covers are looked for inside the face oval pulled in by this (its own edge against a
# darker background is a dark line too), and above the bottom of the nose (a beard, a
# moustache and the smile's folds are the user's own).
COVER_ZONE_SHRINK = 0.06
# The user's eyes, lips and nostrils grown by this (of the face size) are theirs, never a
# cover: lashes and the lip line are dark lines too.
OWN_FEATURES_MARGIN = 0.02
OWN_EYES_MARGIN = 0.01
# Over the brows and around the eyes (lids' creases, the folds below them: this far, of
# the face size), a cover is filled only from a clear mirror image, never inpainted: a
# line there may be the user's own, which is symmetric.
NEAR_EYES_MARGIN = 0.05
COVER_LINE = (0.05, 0.35)  # a dark line's strength (masks.dark_lines): partly a cover from the first, wholly from the second
COVER_GROW = 0.015  # of the face size: a cover's soft edge is filled too
# How clear the mirror side must be (0..1) to fill from it: partly from the first value,
# fully from the second.
MIRROR_CLEAR = (0.5, 0.9)
MIRROR_INSIDE = 0.03  # of the face size: how far inside the oval a mirror image must be
CLEAN_MARGIN = 0.25  # of the face box side, each way: the user's photo cleaned of covers
# Covers over this share of the face box's area are cleaned off the photo before the
# landmarks are fitted again (a few stray hairs, at most 3 % on ../shared/faces' frontal
# photos, are not worth a second detection; a lock of hair or glasses are 6-10 %).
CLEAN_FROM = 0.04
NOTHING_TO_FILL = 0.05  # blocks needing less than this are left as they are
INPAINT_LINE = 0.1  # a dark line's strength (masks.dark_lines at full resolution) from which it is inpainted
INPAINT_GROW = 0.006  # of the face size: the inpainted line grown by this (its soft edge, its shadow)
INPAINT_RADIUS = 3  # pixels around each inpainted one it is filled from
INPAINT_TEXTURE = 12.0  # levels: the template's finest texture on inpainted skin, pores not edges
MIRROR_LIGHT_SIGMA = 0.06  # of the face size: the scale of the light matched on a mirror image
MIRROR_LIGHT_LIMIT = 1.0  # at most e times brighter or darker


@dataclass(frozen=True)
class Covers:
    """Strands of hair and frames of glasses over the face, 0..1 on the canvas: over the
    plain skin, and over the brows and around the eyes."""

    on_skin: np.ndarray
    near_features: np.ndarray

    @property
    def all(self) -> np.ndarray:
        return self.on_skin + self.near_features


def find_covers(canvas: Canvas, dark: np.ndarray) -> Covers | None:
    """Strands of hair and frames of glasses over the face (`dark`: the user's luma, each
    block its darkest pixel: Canvas.shrink_dark); None when there are none.

    A strand comes into the face from the hair above it: only dark lines joined to the
    face's edge above the brows count; a line wholly inside the face (a fold, a shadow
    under the eyes, a mole, a brow) is the user's own. Glasses are told by their bridge."""
    size = canvas.size
    lines = masks.dark_lines(dark, LINE_WIDTH * size)
    pts = canvas.points
    above_nose = 1 - masks.below_nose(canvas.shape, pts)
    oval = masks.polygon_mask(canvas.shape, pts[list(mesh.FACE_OVAL)])
    inner = masks.polygon_mask(canvas.shape, masks.shrunk_oval(pts, *(COVER_ZONE_SHRINK,) * 3))
    eyes = masks.polygon_mask(canvas.shape, masks.loop(pts, mesh.RIGHT_EYE), masks.loop(pts, mesh.LEFT_EYE))
    mouth_nose = masks.polygon_mask(canvas.shape, masks.loop(pts, mesh.LIPS_OUTER), masks.loop(pts, mesh.NOSTRILS))
    own = np.maximum(masks.grow(mouth_nose, OWN_FEATURES_MARGIN * size), masks.grow(eyes, OWN_EYES_MARGIN * size))
    candidates = (lines * above_nose > COVER_LINE[0]).astype(np.uint8)
    _, pieces = cv2.connectedComponents(candidates, connectivity=8)
    # Strands hang from the hairline: the face's edge above the brows (a brow's tail reaches
    # the edge at the temple; the arms of glasses are told by their bridge, below).
    edge = (oval > 0.5) & (inner < 0.5) & _above_brows(canvas.shape, pts)
    joined = np.isin(pieces, np.unique(pieces[edge & (pieces > 0)])).astype(np.float32)
    covers = masks.smoothstep(lines * joined * inner * above_nose * (1 - own), *COVER_LINE)
    # Glasses are told by their bridge (Canvas.glasses_frames): their frames are covers
    # around the eyes too, where a symmetric pair leaves no clear mirror image.
    frames = masks.smoothstep(canvas.glasses_frames(dark, USER_FRAMES_EYE_CLEARANCE) * (1 - own), *COVER_LINE)
    if max(float(covers.max(initial=0.0)), float(frames.max(initial=0.0))) < NOTHING_TO_FILL:
        return None
    covers = masks.grow(covers, COVER_GROW * size)
    frames = masks.grow(frames, COVER_GROW * size)
    near = np.maximum(canvas.features_grown(OWN_FEATURES_MARGIN), masks.grow(eyes, NEAR_EYES_MARGIN * size))
    # A frame over a brow leaves the brow under it: inpainted, the brow would go too.
    brows = masks.grow(masks.polygon_mask(canvas.shape, masks.loop(pts, mesh.RIGHT_BROW),
                                          masks.loop(pts, mesh.LEFT_BROW)), OWN_FEATURES_MARGIN * size)
    on_skin = np.maximum(covers * (1 - near), frames * (1 - brows))
    return Covers(on_skin, np.maximum(np.maximum(covers, frames) - on_skin, 0))


@dataclass(frozen=True)
class FillPlan:
    """Which canvas blocks are filled, and from where (each 0..1, their sum the need)."""

    from_mirror: np.ndarray
    from_around: np.ndarray
    mirror_gain: np.ndarray  # (h, w, 3): the mirror image's light matched to the face around it

    @property
    def filled(self) -> np.ndarray:
        return self.from_mirror + self.from_around


def plan_fill(canvas: Canvas, warps: CanvasWarps, covers: Covers | None, small: np.ndarray) -> FillPlan | None:
    """What of the face needs filling (covered, edge-on or outside the user's photo),
    whether its mirror image is clear, and the gain that gives the mirror image the light
    of the face around (`small`: the face's block averages); None when nothing needs it."""
    oval = masks.polygon_mask(canvas.shape, canvas.points[list(mesh.FACE_OVAL)])
    # Along its own edge a face is always seen at a slant (and alpha fades there), and a
    # squeeze over the features comes from the two faces' expressions, not the pose.
    inner = masks.polygon_mask(canvas.shape, masks.shrunk_oval(canvas.points, *(COVER_ZONE_SHRINK,) * 3))
    skin = inner * (1 - canvas.features_grown(OWN_FEATURES_MARGIN))
    unseen = (1 - warps.inside_user_photo() * warps.squarely) * skin
    need = unseen if covers is None else np.maximum(covers.all, unseen)
    if float(need.max(initial=0.0)) < NOTHING_TO_FILL:
        return None
    # The mirror side must be clear and on the face (an edge-on cheek's mirror is near the
    # other cheek's edge, where the background may begin).
    mirror = warps.mirror()
    clear_there = warp.remap((1 - need) * masks.shrink(oval, MIRROR_INSIDE * canvas.size), mirror,
                             cv2.BORDER_CONSTANT)
    from_mirror = need * masks.smoothstep(clear_there, *MIRROR_CLEAR)
    # The other side of a face is lit otherwise (a side light, a turned head): the mirror
    # image takes the light of the clear face around each bit, compared over the same bits.
    around = 1 - need
    sigma = (MIRROR_LIGHT_SIGMA * canvas.size,)
    here = tone.masked_log_lowpass(small, around, sigma)[0]
    there = tone.masked_log_lowpass(warp.remap(small, mirror), around, sigma)[0]
    mirror_gain = np.exp(np.clip(here - there, -MIRROR_LIGHT_LIMIT, MIRROR_LIGHT_LIMIT)).astype(np.float32)
    # Only covers on the plain skin are inpainted: a bit the photo does not show, with no
    # clear mirror image, stays the template's (alpha).
    from_around = np.zeros_like(need) if covers is None else np.maximum(covers.on_skin - from_mirror, 0)
    if float((from_mirror + from_around).max(initial=0.0)) < NOTHING_TO_FILL:
        return None
    return FillPlan(from_mirror, from_around, mirror_gain)


def fill(canvas: Canvas, region: RegionWarps, u_face: np.ndarray, plan: FillPlan) -> np.ndarray:
    """`u_face` (the user's warped face region, uint8) with the planned blocks filled, as a new
    image: from its mirror image, else inpainted at full resolution (the covers' dark lines
    within the planned blocks: thin, so the skin right beside them fills them)."""
    x0, y0, x1, y1 = _box_of(plan.filled > NOTHING_TO_FILL, canvas)
    window = (slice(y0, y1), slice(x0, x1))
    part = u_face[window].astype(np.float32)
    mirrored = warp.remap(u_face, region.mirror((x0, y0, x1, y1))).astype(np.float32)
    mirrored *= canvas.grow(plan.mirror_gain)[window]
    filled = np.empty(part.shape, np.uint8)
    cv2.convertScaleAbs(_mixed(part, mirrored, canvas.grow(plan.from_mirror)[window]), dst=filled)
    filled = _inpaint_lines(filled, canvas.grow(plan.from_around)[window] > NOTHING_TO_FILL,
                            canvas.size * canvas.factor)
    out = u_face.copy()
    out[window] = filled
    return out


def clean_photo(rgb: np.ndarray, face: Face) -> np.ndarray | None:
    """A copy of the user's photo with the covers over `face` inpainted, or None when they
    are too few to pull its landmarks: fitted again on the copy, they are where the face's
    own are, not pulled by a lock of hair or a frame (a rim around an eye moves its points)."""
    x, y, side, _ = face.box
    x0, y0, x1, y1 = box_around(rgb.shape, x, y, side, CLEAN_MARGIN)
    crop = np.ascontiguousarray(rgb[y0:y1, x0:x1])
    canvas = Canvas(crop.shape[:2], face.size, face.landmarks[:, :2] - np.array([x0, y0], np.float32))
    covers = find_covers(canvas, canvas.shrink_dark(crop))
    if covers is None:
        return None
    # Only the covers over the plain skin: around the eyes and brows a line may be the
    # face's own, and FaceMesh reads the eyes from those very pixels.
    inpainted = _inpaint_lines(crop, canvas.grow(covers.on_skin) > NOTHING_TO_FILL, face.size)
    if np.count_nonzero((inpainted != crop).any(axis=2)) < CLEAN_FROM * face.size ** 2:
        return None
    cleaned = rgb.copy()
    cleaned[y0:y1, x0:x1] = inpainted
    return cleaned


def _inpaint_lines(rgb: np.ndarray, band: np.ndarray, face_size: float) -> np.ndarray:
    """`rgb` (uint8) with its thin dark lines within `band` inpainted from the pixels beside
    them (a new image, or `rgb` itself when there are none)."""
    if not band.any():
        return rgb
    luma = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    lines = masks.dark_lines(luma, LINE_WIDTH * face_size) > INPAINT_LINE
    grown = INPAINT_GROW * face_size
    hole = masks.grow((band & lines).astype(np.uint8), grown)
    if not hole.any():
        return rgb
    return cv2.inpaint(rgb, hole, max(INPAINT_RADIUS, grown), cv2.INPAINT_TELEA)


def texture_inpainted(face: np.ndarray, canvas: Canvas, plan: FillPlan, template: detail.TemplateDetail) -> None:
    """The template's fine texture (its luma's finest band, at most INPAINT_TEXTURE levels)
    on what was inpainted, in place: the inpainting is smooth, the skin around it is not."""
    if not plan.from_around.any():
        return
    texture = cv2.subtract(template.luma, template.smooth)
    cv2.min(texture, INPAINT_TEXTURE, dst=texture)
    cv2.max(texture, -INPAINT_TEXTURE, dst=texture)
    texture *= canvas.grow(plan.from_around)
    face += cv2.merge((texture, texture, texture))


def _mixed(base: np.ndarray, other: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """base + weight * (other - base), per pixel (float32 RGB, weight 0..1 per pixel)."""
    return cv2.blendLinear(other, base, weight, 1 - weight)


def _above_brows(shape: tuple[int, int], pts: np.ndarray) -> np.ndarray:
    """bool: above the highest point of the brows, along the face's up (chin to forehead)."""
    up = pts[10] - pts[152]
    up = up / max(float(np.linalg.norm(up)), 1e-3)
    h, w = shape
    height = ((np.arange(w, dtype=np.float32) - pts[168, 0]) * up[0]
              + (np.arange(h, dtype=np.float32)[:, None] - pts[168, 1]) * up[1])
    brows_top = float(((pts[list(mesh.RIGHT_BROW + mesh.LEFT_BROW)] - pts[168]) @ up).max())
    return height > brows_top


def _box_of(mask: np.ndarray, canvas: Canvas) -> tuple[int, int, int, int]:
    """x0, y0, x1, y1 at full resolution of the canvas blocks where `mask` is set, a block wider."""
    ys, xs = np.nonzero(mask)
    f = canvas.factor
    h, w = canvas.out_shape
    return (max(0, (int(xs.min()) - 1) * f), max(0, (int(ys.min()) - 1) * f),
            min(w, (int(xs.max()) + 2) * f), min(h, (int(ys.max()) + 2) * f))
