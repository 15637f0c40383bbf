"""What covers the user's face, and the face it hides.

Strands of hair and the frames of glasses are thin and far darker than the skin around
them: they are found on the canvas as dark lines over the face's plain skin (strands
hanging from the hairline, frames told by their bridge). They, and the bits of face the
user's photo shows stretched (a turned head's far cheek) or not at all (a face cut off by
the photo's border), are filled from the face itself before it is read and lit: from the
mirror image across the face's midline where that side is clear, its light matched to the
face around it, else inpainted from the skin beside them (the template's finest texture
comes over that). A photo with many covers is cleaned of them before its landmarks are
fitted again (clean_photo), so that they do not pull the landmarks either; there a strand
is followed across a brow and an eye from its pieces above and below them, and filled
along the eye line (strands.py), and the glare on glasses' lenses is taken off (glare.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, cast

import cv2
import numpy as np

from facefuse.arrays import BoolArray, FloatArray, IntArray, UInt8Array
from facefuse.fusion import detail, glare, glasses, inpaint, masks, mesh, tone, warp
from facefuse.fusion.canvas import USER_FRAMES_EYE_CLEARANCE, Canvas
from facefuse.fusion.inpaint import LINE_WIDTH
from facefuse.fusion.placement import CanvasWarps, RegionWarps
from facefuse.fusion.strands import fill_along, hanging_down, long_down, paths_across
from facefuse.fusion.template import box_around
from facefuse.vision.faces import Face

# Covers are looked for inside the face oval pulled in by this (its own edge against a
# darker background is a dark line too), and above the bottom of the nose (a beard, a
# moustache and the smile's folds are the user's own).
COVER_ZONE_SHRINK = 0.06
# The user's eyes, lips and nostrils grown by this (of the face size) are theirs, never a
# cover: lashes and the lip line are dark lines too.
OWN_FEATURES_MARGIN = 0.02
OWN_EYES_MARGIN = 0.01
# Around the eyes this far (of the face size: the lids' creases, the folds below them) a
# dark line is not taken for a cover.
NEAR_EYES_MARGIN = 0.05
# A dark line's strength (masks.dark_lines): partly a cover from the first, wholly from the second.
COVER_LINE = (0.05, 0.35)
COVER_GROW = 0.015  # of the face size: a cover's soft edge is filled too
# A strand found on the forehead and on the cheek crosses the brow and the eye between them;
# there it is told apart from the brow, the lids and the lashes (which run along the eye
# line) as a valley of luma across the strand's own direction, within this much (of the
# face size) of the strand's parts found.
CROSSING_REACH = 0.10
PUPIL = 0.6  # of the iris's radius: a pupil's reach, a strand over it let be
LID_EDGE = 0.015  # of the face size: a lid's edge with its lashes, inside the eye's outline
CROSSING_WIDTH = 0.03  # of the face size: strands are narrower than this across the face
CROSSING_DEPTH = 0.85  # a strand's pixel is darker than this of the skin beside it
CROSSING_LENGTH = 0.15  # of the face size: a strand runs at least this far down the face
# A strand hangs from the hairline (strands.hanging_down) with at most this much (of the
# face size) of way along the eye line.
HANG_SLACK = 0.04
# How clear the mirror side must be (0..1) to fill from it: partly from the first value,
# fully from the second.
MIRROR_CLEAR = (0.5, 0.9)
MIRROR_INSIDE = 0.03  # of the face size: how far inside the oval a mirror image must be
CLEAN_MARGIN = 0.25  # of the face box side, each way: the user's photo cleaned of covers
# A face bigger than this (px) is cleaned on a shrunk copy: the fusion takes the user's face
# at the template face's size, and FaceMesh sees it at a fraction of this.
CLEAN_FACE = 520.0
FRAMES_REACH = 0.03  # of the face size: the frames' dark lines are looked for this far beyond them
# Covers on the plain skin over this share of the face box's area (on the canvas) are
# cleaned off the photo before the landmarks are fitted again: a few stray hairs are not
# worth a second detection, a lock of hair or glasses are.
CLEAN_FROM = 0.04
NOTHING_TO_FILL = 0.05  # blocks needing less than this are left as they are
# Less to fill than this share of the face box's area (a few stray hairs, a sliver of a
# cheek) is left as it is: not worth the fill's passes over the face. One strand hanging
# past the eyes is more (about 0.024 as the occluder measure draws it).
FILL_FROM = 0.02
INPAINT_TEXTURE = 12.0  # levels: the template's finest texture on inpainted skin, pores not edges
MIRROR_LIGHT_SIGMA = 0.06  # of the face size: the scale of the light matched on a mirror image
MIRROR_LIGHT_LIMIT = 1.0  # at most e times brighter or darker


@dataclass(frozen=True)
class Covers:
    """What covers the user's face, on the canvas."""

    mask: FloatArray  # strands of hair and frames of glasses over the plain skin, 0..1
    crossings: BoolArray | None  # where the strands may cross a brow or a lid (strand_crossings)
    frames: FloatArray | None = None  # where glasses' frames are, over the brows too (None: no glasses)


def find_covers(canvas: Canvas, face: UInt8Array, dark: FloatArray) -> Covers | None:
    """Strands of hair and frames of glasses over the face's plain skin, on the canvas
    (`face`: the full-resolution image the canvas is of; `dark`: its luma, each block its
    darkest pixel, from Canvas.shrink_dark); None when there are none.

    A strand comes into the face from the hair above it and hangs across it: only dark
    lines running down the face from its edge above the brows (hanging_down) to below the
    eyes count. A line wholly inside the face (a fold, a shadow
    under the eyes, a mole, a brow), or one running along the eye line from a strand, is
    the user's own. Glasses are told by their bridge."""
    size = canvas.size
    lines = masks.dark_lines(dark, LINE_WIDTH * size)
    pts = canvas.points
    above_nose = 1 - masks.below_nose(canvas.shape, pts)
    oval = masks.polygon_mask(canvas.shape, pts[list(mesh.FACE_OVAL)])
    inner = masks.polygon_mask(canvas.shape, masks.shrunk_oval(pts, *(COVER_ZONE_SHRINK,) * 3))
    eyes = _eyes(canvas)
    mouth_nose = masks.polygon_mask(canvas.shape, masks.loop(pts, mesh.LIPS_OUTER), masks.loop(pts, mesh.NOSTRILS))
    own = np.maximum(masks.grow(mouth_nose, OWN_FEATURES_MARGIN * size), masks.grow(eyes, OWN_EYES_MARGIN * size))
    candidates = (lines * above_nose > COVER_LINE[0]).astype(np.uint8)
    _, pieces = cast(tuple[int, IntArray], cv2.connectedComponents(candidates, connectivity=8))
    # Strands hang from the hairline: the face's edge above the brows (a brow's tail reaches
    # the edge at the temple; the arms of glasses are told by their bridge, below).
    height = masks.heights(canvas.shape, pts)
    edge = (oval > 0.5) & (inner < 0.5) & (height > masks.brows_top(pts))
    # ...and hang down across the face past the eyes: a brow with the hair at its temple
    # reaches the edge too, but not below the eyes.
    below_eyes = (inner > 0.5) & (height < _eyes_level(pts))
    hanging = np.intersect1d(np.unique(pieces[edge & (pieces > 0)]), np.unique(pieces[below_eyes & (pieces > 0)]))
    joined = np.isin(pieces, hanging)
    if hanging.size:
        joined &= hanging_down(joined, edge & joined, masks.face_up(pts), HANG_SLACK * size)
        _, pieces = cast(tuple[int, IntArray], cv2.connectedComponents(joined.astype(np.uint8), connectivity=8))
        joined &= np.isin(pieces, np.unique(pieces[below_eyes & (pieces > 0)]))
    covers = masks.smoothstep(lines * joined.astype(np.float32) * inner * above_nose * (1 - own), *COVER_LINE)
    # Glasses are told by their bridge (glasses.has_bridge, then Canvas.glasses_frames):
    # their frames are covers around the eyes too, where a symmetric pair leaves no clear
    # mirror image.
    frames = canvas.glasses_frames(dark, USER_FRAMES_EYE_CLEARANCE)
    if frames.any() and not glasses.has_bridge(face, (pts + 0.5) * canvas.factor - 0.5, size * canvas.factor):
        frames[:] = 0
    frames = masks.smoothstep(frames * (1 - own), *COVER_LINE)
    if max(float(covers.max(initial=0.0)), float(frames.max(initial=0.0))) < NOTHING_TO_FILL:
        return None
    covers = masks.grow(covers, COVER_GROW * size)
    frames = masks.grow(frames, COVER_GROW * size)
    # Over the brows and around the eyes a dark line may be the face's own, joined to the
    # hair at a temple (a brow, a lid's crease): left as it is. Frames come closer to the
    # eyes; over a brow they leave the brow as it is too.
    near = _near_features(canvas, eyes)
    brows = masks.grow(
        masks.polygon_mask(canvas.shape, masks.loop(pts, mesh.RIGHT_BROW), masks.loop(pts, mesh.LEFT_BROW)),
        OWN_FEATURES_MARGIN * size,
    )
    strands = covers * (1 - near)
    # A pair of glasses' rims hang past the eyes too: with glasses, the lines over the brows
    # and lids are the frames' (kept out of them above), not a strand's.
    crossings = None if frames.any() else strand_crossings(canvas, strands, eyes, near)
    return Covers(np.maximum(strands, frames * (1 - brows)), crossings, frames if frames.any() else None)


def strand_crossings(canvas: Canvas, strands: FloatArray, eyes: FloatArray, near: FloatArray) -> BoolArray | None:
    """Where strands of hair found on the skin above and below the eyes (`strands`, 0..1)
    may cross a brow or a lid between their two parts: a canvas mask (bool) to look for
    them in at full resolution (crossing_valleys), or None when no strand hangs past the
    eyes (`eyes`: their openings; `near`: _near_features)."""
    pts = canvas.points
    height = masks.heights(canvas.shape, pts)
    seeds = strands > NOTHING_TO_FILL
    if not (seeds & (height > _eyes_level(pts))).any() or not (seeds & (height <= _eyes_level(pts))).any():
        return None
    reach = masks.grow(seeds.astype(np.uint8), CROSSING_REACH * canvas.size) > 0
    # The lids' edges are let be (the lashes, a squint's whole opening), and the pupils,
    # each a dark valley itself; a strand over the white of an eye is not.
    lids = (masks.grow(eyes, OWN_EYES_MARGIN * canvas.size) > 0.5) & (masks.shrink(eyes, LID_EDGE * canvas.size) < 0.5)
    crossing = reach & (near > 0.5) & ~seeds & ~lids & ~_pupils(canvas)
    return crossing if crossing.any() else None


def _line_kernel(length: float, direction: FloatArray) -> UInt8Array:
    """A structuring element: a line `length` pixels long (odd, at least 3) along `direction`."""
    side = max(3, int(2 * round(length / 2) + 1))
    kernel = np.zeros((side, side), np.uint8)
    half = (side - 1) / 2
    dx, dy = direction[0] * half, direction[1] * half
    start, end = (int(round(half - dx)), int(round(half - dy))), (int(round(half + dx)), int(round(half + dy)))
    cv2.line(kernel, start, end, 1)  # type: ignore[call-overload]  # cv2 takes a number for a colour
    return kernel


def _strand_paths(canvas: Canvas, rgb: UInt8Array, band: BoolArray, window: tuple[slice, slice]) -> BoolArray | None:
    """strands.paths_across over the brows and the eyes, from the strands' dark pixels within
    `band` (`rgb`: the canvas's full-resolution image, or its `window`)."""
    face_size = canvas.size * canvas.factor
    gap = canvas.grow(_near_features(canvas, _eyes(canvas)))[window] > 0.5
    found = band & inpaint.darker_than_around(rgb, face_size)
    return paths_across(rgb, found, gap, face_size, masks.face_up(canvas.points))


def _near_features(canvas: Canvas, eyes: FloatArray) -> FloatArray:
    """The features, and the skin right around the eyes (`eyes`: their openings, grown by
    NEAR_EYES_MARGIN), where a dark line may be the face's own (a brow, a lid's crease): no
    strand is looked for there."""
    return np.maximum(canvas.features_grown(OWN_FEATURES_MARGIN), masks.grow(eyes, NEAR_EYES_MARGIN * canvas.size))


def _eyes(canvas: Canvas) -> FloatArray:
    """The eyes' openings on the canvas."""
    return masks.polygon_mask(
        canvas.shape, masks.loop(canvas.points, mesh.RIGHT_EYE), masks.loop(canvas.points, mesh.LEFT_EYE)
    )


def _pupils(canvas: Canvas) -> BoolArray:
    """The pupils, with a margin (bool): a strand over one is let be, a pupil being a dark
    valley itself."""
    out = np.zeros(canvas.shape, np.uint8)
    pts = canvas.points
    if len(pts) > mesh.LEFT_IRIS[-1]:
        for iris in (mesh.RIGHT_IRIS, mesh.LEFT_IRIS):
            centre, radius = mesh.iris_circle(pts, iris)
            at, reach = (int(round(centre[0])), int(round(centre[1]))), max(1, int(np.ceil(PUPIL * radius)))
            cv2.circle(out, at, reach, 1, -1)  # type: ignore[call-overload]  # cv2 takes a number for a colour
    return out > 0


def crossing_valleys(rgb: UInt8Array, where: BoolArray, face_size: float, up: FloatArray) -> BoolArray:
    """Pixels of `rgb` within `where` (bool, full resolution) on a thin dark line running
    down the face: a strand over a brow or a lid, not the brow, the lids or the lashes
    themselves, which run along the eye line. A closing along the eye line fills what is
    narrow that way and leaves what runs along it; a strand is also long and thin."""
    luma = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    kernel = _line_kernel(CROSSING_WIDTH * face_size, np.array([-up[1], up[0]], np.float32))  # the eye line
    closed = cv2.morphologyEx(luma, cv2.MORPH_CLOSE, kernel).astype(np.float32)
    valley = (luma.astype(np.float32) + 4) < CROSSING_DEPTH * (closed + 4)
    # Long is told on the whole line: a brow or a lid cuts a strand over it into short bits.
    return long_down(valley, up, CROSSING_LENGTH * face_size) & where


@dataclass(frozen=True)
class FillPlan:
    """Which canvas blocks are filled, and from where (each 0..1, their sum the need)."""

    from_mirror: FloatArray
    from_around: FloatArray
    mirror_gain: FloatArray  # (h, w, 3): the mirror image's light matched to the face around it

    @property
    def filled(self) -> FloatArray:
        return self.from_mirror + self.from_around


def plan_fill(canvas: Canvas, warps: CanvasWarps, covers: FloatArray | None, small: FloatArray) -> FillPlan | None:
    """What of the face needs filling (covered, edge-on or outside the user's photo),
    whether its mirror image is clear, and the gain that gives the mirror image the light
    of the face around (`small`: the face's block averages); None when nothing needs it."""
    oval = masks.polygon_mask(canvas.shape, canvas.points[list(mesh.FACE_OVAL)])
    # Along its own edge a face is always seen at a slant (and alpha fades there), and a
    # squeeze over the features comes from the two faces' expressions, not the pose.
    inner = masks.polygon_mask(canvas.shape, masks.shrunk_oval(canvas.points, *(COVER_ZONE_SHRINK,) * 3))
    skin = inner * (1 - canvas.features_grown(OWN_FEATURES_MARGIN))
    unseen = (1 - warps.inside_user_photo() * warps.squarely) * skin
    need = unseen if covers is None else np.maximum(covers, unseen)
    if float(need.max(initial=0.0)) < NOTHING_TO_FILL:
        return None
    # The mirror side must be clear and on the face (an edge-on cheek's mirror is near the
    # other cheek's edge, where the background may begin).
    mirror = warps.mirror()
    clear_there = warp.remap((1 - need) * masks.shrink(oval, MIRROR_INSIDE * canvas.size), mirror, cv2.BORDER_CONSTANT)
    from_mirror = need * masks.smoothstep(clear_there, *MIRROR_CLEAR)
    # The other side of a face is lit otherwise (a side light, a turned head): the mirror
    # image takes the light of the clear face around each bit, compared over the same bits.
    around = cast(FloatArray, 1 - need)  # numpy's stubs type 1 - (an array of dtype Any) as integers
    sigma = (MIRROR_LIGHT_SIGMA * canvas.size,)
    here = tone.masked_log_lowpass(small, around, sigma)[0]
    there = tone.masked_log_lowpass(warp.remap(small, mirror), around, sigma)[0]
    mirror_gain = np.exp(np.clip(here - there, -MIRROR_LIGHT_LIMIT, MIRROR_LIGHT_LIMIT)).astype(np.float32)
    # Only covers are inpainted: a bit the photo does not show, with no clear mirror image,
    # stays the template's (alpha).
    from_around = np.zeros_like(need) if covers is None else np.maximum(covers - from_mirror, 0)
    filled = from_mirror + from_around
    if float(filled.max(initial=0.0)) < NOTHING_TO_FILL or float(filled.sum()) < FILL_FROM * canvas.size**2:
        return None
    return FillPlan(from_mirror, from_around, mirror_gain)


def fill(
    canvas: Canvas, region: RegionWarps, u_face: UInt8Array, plan: FillPlan, crossings: BoolArray | None = None
) -> UInt8Array:
    """`u_face` (the user's warped face region, uint8) with the planned blocks filled, as a new
    image: from its mirror image, else inpainted at full resolution (the covers' dark lines
    within the planned blocks: thin, so the skin right beside them fills them; and the
    strands crossing a brow or an eye within `crossings`, from strand_crossings)."""
    todo = plan.filled > NOTHING_TO_FILL
    if crossings is not None:
        todo = todo | crossings
    x0, y0, x1, y1 = _box_of(todo, canvas)
    window = (slice(y0, y1), slice(x0, x1))
    face_size = canvas.size * canvas.factor
    across = paths = None
    if crossings is not None:  # told on the face as it is, its strands whole
        where = canvas.grow(crossings.astype(np.float32))[window] > 0.5
        across = crossing_valleys(u_face[window], where, face_size, masks.face_up(canvas.points))
        paths = _strand_paths(canvas, u_face[window], canvas.grow(plan.filled)[window] > NOTHING_TO_FILL, window)
    part = u_face[window].astype(np.float32)
    mirrored = warp.remap(u_face, region.mirror((x0, y0, x1, y1))).astype(np.float32)
    mirrored *= canvas.grow(plan.mirror_gain)[window]
    filled = np.empty(part.shape, np.uint8)
    cv2.convertScaleAbs(_mixed(part, mirrored, canvas.grow(plan.from_mirror)[window]), dst=filled)
    points = (canvas.points + 0.5) * canvas.factor - 0.5 - np.array([x0, y0], np.float32)
    band = canvas.grow(plan.from_around)[window] > NOTHING_TO_FILL
    filled = inpaint.lines(filled, band, face_size, points, across)
    if paths is not None:
        filled = fill_along(filled, paths, _across(canvas.points))
    out = u_face.copy()
    out[window] = filled
    return out


class Cleaned(NamedTuple):
    """The user's photo cleaned of what covers the face (clean_photo)."""

    image: UInt8Array
    glare: bool  # glare was taken off the lenses of the face's glasses


def clean_photo(rgb: UInt8Array, face: Face) -> Cleaned | None:
    """A copy of the user's photo with the covers over `face` inpainted and the glare on its
    glasses' lenses taken off, or None when they are too few to pull its landmarks: fitted
    again on the copy, they are where the face's own are, not pulled by a lock of hair or a
    frame (a rim around an eye moves its points). A face over CLEAN_FACE pixels is cleaned
    on a copy shrunk to that, and what changed is grown back into the photo."""
    x, y, side, _ = face.box
    x0, y0, x1, y1 = box_around(rgb.shape, x, y, side, CLEAN_MARGIN)
    full = np.ascontiguousarray(rgb[y0:y1, x0:x1])
    points = face.landmarks[:, :2] - np.array([x0, y0], np.float32)
    scale = min(1.0, CLEAN_FACE / max(face.size, 1.0))
    crop = full
    if scale < 1:
        size = (max(1, round(full.shape[1] * scale)), max(1, round(full.shape[0] * scale)))
        crop = cast(UInt8Array, cv2.resize(full, size, interpolation=cv2.INTER_AREA))
        points = (points + 0.5) * np.array([size[0] / full.shape[1], size[1] / full.shape[0]], np.float32) - 0.5
    face_size = face.size * scale
    canvas = Canvas(crop.shape[:2], face_size, points)
    covers = find_covers(canvas, crop, canvas.shrink_dark(crop))
    if covers is None or float(covers.mask.sum()) < CLEAN_FROM * canvas.size**2:
        return None
    across = paths = None
    band = canvas.grow(covers.mask) > NOTHING_TO_FILL
    if covers.crossings is not None:
        where = canvas.grow(covers.crossings.astype(np.float32)) > 0.5
        across = crossing_valleys(crop, where, face_size, masks.face_up(canvas.points))
        paths = _strand_paths(canvas, crop, band, (slice(None), slice(None)))
    frames = None
    source = crop
    if covers.frames is not None:
        # The frames as the canvas sees them, and a little beyond: a rim's outer bar at the
        # temple reaches past where glasses are looked for (masks.glasses_zone).
        frames = canvas.grow(masks.grow(covers.frames, FRAMES_REACH * canvas.size)) > NOTHING_TO_FILL
        # The glare on the lenses goes first: the frames are filled from the skin beside
        # them, and a reflection beside a rim reads as its grey halo (inpaint._halo).
        unglared = glare.lifted(crop, lenses(canvas, covers.frames, crop.shape[:2]), points, face_size)
        source = crop if unglared is None else unglared
    inpainted = inpaint.lines(source, band, face_size, points, across, frames, own_detail=True)
    if paths is not None:
        inpainted = fill_along(inpainted, paths, _across(canvas.points))
    if inpainted is crop:
        return None
    cleaned = rgb.copy()
    if scale == 1:
        cleaned[y0:y1, x0:x1] = inpainted
    else:
        _grow_back(cleaned[y0:y1, x0:x1], inpainted, crop)
    return Cleaned(cleaned, source is not crop)


def lenses(canvas: Canvas, frames: FloatArray, shape: tuple[int, ...]) -> BoolArray:
    """The insides of a pair of glasses' rims (bool, `shape`: the image the canvas is of):
    on each side of the nose, the hull of the frames around the eye there, when it holds
    the eye's centre (a frame's arm alone holds none)."""
    pts = canvas.points
    across = _across(pts)
    ys, xs = np.nonzero(frames > 0.5)
    found = np.stack([xs, ys], axis=1).astype(np.float32)
    side = (found - pts[168]) @ across
    hulls = []
    for eye, on_side in ((mesh.RIGHT_EYE, side < 0), (mesh.LEFT_EYE, side > 0)):
        if on_side.sum() < 3:
            continue
        hull = cast(FloatArray, cv2.convexHull(found[on_side])).reshape(-1, 2)
        centre = pts[list(eye)].mean(axis=0)
        if cv2.pointPolygonTest(hull, (float(centre[0]), float(centre[1])), False) > 0:
            hulls.append(np.round((hull + 0.5) * canvas.factor - 0.5).astype(np.int32))
    out = np.zeros(shape[:2], np.uint8)
    cv2.fillPoly(out, hulls, 1)  # type: ignore[call-overload]  # cv2 takes a number for a colour
    return out > 0


def _grow_back(full: UInt8Array, inpainted: UInt8Array, crop: UInt8Array) -> None:
    """What `inpainted` changed of `crop` (`full` shrunk) grown back into `full`, in place
    (only the box around the changes is worked on)."""
    changed = cv2.transform(cv2.absdiff(inpainted, crop), np.ones((1, 3), np.float32)) > 0
    bx, by, bw, bh = cv2.boundingRect(changed.view(np.uint8))
    sy, sx = full.shape[0] / crop.shape[0], full.shape[1] / crop.shape[1]
    # The box with a pixel's margin each way, in the shrunk copy's pixels and in full's.
    cx0, cy0 = max(0, bx - 1), max(0, by - 1)
    cx1, cy1 = min(crop.shape[1], bx + bw + 1), min(crop.shape[0], by + bh + 1)
    fx0, fy0 = int(cx0 * sx), int(cy0 * sy)
    fx1, fy1 = min(full.shape[1], int(np.ceil(cx1 * sx))), min(full.shape[0], int(np.ceil(cy1 * sy)))
    # Each full pixel's centre in the box's shrunk pixels (resize's convention), for remap.
    xs = ((np.arange(fx0, fx1, dtype=np.float32) + 0.5) / sx - 0.5 - cx0)[None, :].repeat(fy1 - fy0, 0)
    ys = ((np.arange(fy0, fy1, dtype=np.float32) + 0.5) / sy - 0.5 - cy0)[:, None].repeat(fx1 - fx0, 1)
    box = (slice(cy0, cy1), slice(cx0, cx1))
    weight = cast(
        FloatArray,
        cv2.remap(changed[box].astype(np.float32), xs, ys, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE),
    )
    grown = cv2.remap(np.ascontiguousarray(inpainted[box]), xs, ys, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    here = full[fy0:fy1, fx0:fx1]
    here[:] = cv2.convertScaleAbs(_mixed(here.astype(np.float32), grown.astype(np.float32), weight))


def texture_inpainted(face: FloatArray, canvas: Canvas, plan: FillPlan, template: detail.TemplateDetail) -> None:
    """The template's fine texture (its luma's finest band, at most INPAINT_TEXTURE levels)
    on what was inpainted, in place: the inpainting is smooth, the skin around it is not."""
    if not plan.from_around.any():
        return
    texture = cast(FloatArray, cv2.subtract(template.luma, template.smooth))
    cv2.min(texture, INPAINT_TEXTURE, dst=texture)  # type: ignore[call-overload]  # cv2 takes a number for an array
    cv2.max(texture, -INPAINT_TEXTURE, dst=texture)  # type: ignore[call-overload]  # likewise
    texture *= canvas.grow(plan.from_around)
    face += cv2.merge((texture, texture, texture))


def _mixed(base: FloatArray, other: FloatArray, weight: FloatArray) -> FloatArray:
    """base + weight * (other - base), per pixel (float32 RGB, weight 0..1 per pixel)."""
    return cast(FloatArray, cv2.blendLinear(other, base, weight, 1 - weight))


def _eyes_level(pts: FloatArray) -> float:
    return float(((pts[list(mesh.RIGHT_EYE + mesh.LEFT_EYE)] - pts[168]) @ masks.face_up(pts)).min())


def _across(pts: FloatArray) -> FloatArray:
    """The eye line's direction, from the face's image-left to its image-right."""
    up = masks.face_up(pts)
    return np.array([-up[1], up[0]], np.float32)


def _box_of(mask: BoolArray, canvas: Canvas) -> tuple[int, int, int, int]:
    """x0, y0, x1, y1 at full resolution of the canvas blocks where `mask` is set, a block wider."""
    ys, xs = np.nonzero(mask)
    f = canvas.factor
    h, w = canvas.out_shape
    return (
        max(0, (int(xs.min()) - 1) * f),
        max(0, (int(ys.min()) - 1) * f),
        min(w, (int(xs.max()) + 2) * f),
        min(h, (int(ys.max()) + 2) * f),
    )
