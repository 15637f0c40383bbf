"""A template's glasses, told and traced once per template: the mask of their frames (both
rims, the bridge, the arms up to the face edge), its edge at the frames' own edge, the
template's pixels there, and the template with the frames painted out.

Glasses are told by their bridge: a band across the top of the nose whose colour differs
from the nose above and below it all across the nose (a bare nose has at most a crease,
which fades out to the sides); and by their rims: round each eye a closed band of the
bridge's colour, holding the eye and under the brow, seen most of the way round.

Each rim is traced in polar coordinates round its lens: per ray, the radius where a thin
band of the bridge's colour stands out from both sides, chosen as one smooth closed curve
(dynamic programming), first for both lenses together (mirror images), then for each near
that; a wrinkle or an eye bag, neither closed, smooth nor mirrored, does not pass for a
rim. Along each ray the band's edges are then found at full resolution. The bridge is
traced across the nose to the rims, the arms from the rims to the face's edge.

Frames are rigid: the fusion warps the template without them (without_frames) and puts
them back unwarped on top (put_back), so that no bent or faded copy of them shows.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from facefuse.fusion import masks, mesh

# The bridge: looked for on the nose's midline from the brows' top down to this far below
# the eyes (of the face size), in bands of these widths, across this much of the nose each
# way from its middle.
BRIDGE_BELOW_EYES = 0.10
BRIDGE_WIDTHS = (0.01, 0.015, 0.02, 0.03, 0.04)
BRIDGE_SPAN = 0.03
# How far (Lab units) a bridge's colour stands out from the nose above and below it, at
# the least, across most of the nose's width (the quarter of it where it stands out least).
BRIDGE_CONTRAST = 10.0
# A frame's colour is its bridge's, up to this spread (Lab units).
FRAME_COLOUR_SPREAD = 12.0
# Frames whose bridge is lighter than this fraction of the cheeks' lightness are light; a
# light frame's dark parts (a browline over the rims) are under it too (soft over this many
# L units either side), thin (up to DARK_WIDTH thick) and touching the rest.
FRAME_DARK = 0.4
FRAME_DARK_EDGE = 8.0
DARK_WIDTH = 0.03  # of the face size
# A dark frame's body: its bridge's colour, or darker than its surroundings (a closing at
# DARK_WIDTH) by this ratio, fully from the first value down.
DARK_FRAME_RATIO = (0.45, 0.75)
# What has the frame's colour: its likeness from the first value (none) to the second (all).
FRAME_EDGE = (0.35, 0.65)
FRAME_BESIDE = 0.008  # of the face size: how near a dark frame's traced bands more of it is sought
# An arm is sought from this far (of the face size) above the lens's top to this far below
# it: it leaves the frame at the top of the lens's outer side.
ARM_ABOVE = 0.01
ARM_BELOW = 0.06
ARM_PAST_EDGE = 0.06  # of the face size: how far past the face's edge an arm is kept
JOIN_REACH = 0.01  # of the face size: how near the rim an arm's piece starts
# The polar grid around each eye: angles, radii and their reach (of the face size). Its
# centre is this far below the eye's, nearer the middle of a lens.
POLAR_ANGLES = 256
POLAR_RADII = 160
POLAR_REACH = 0.30
LENS_DROP = 0.05
# Rims are thin bands of the frame's colour: widths (of the face size) they are sought at.
RIM_LINE_WIDTHS = (0.006, 0.01, 0.016)
# The traced rim: each step round may change its radius by at most this many grid radii,
# and its rate of change by one, at this cost (in frame likeness) per change; a radius
# is worth its line response less this baseline.
RIM_MAX_STEP = 4
RIM_BEND_COST = 1.0
RIM_BASELINE = 0.05
RIM_BLOCKED = -1.0  # a radius near an eye or at the nose's middle: the path goes round it
NOSE_MARGIN = 0.01  # of the face size: how near the nose's middle a lens's rim can come
# Each rim on its own keeps within this much (of the face size) of the two traced as one,
# and bends at this fraction of the cost.
RIM_CORRIDOR = 0.03
RIM_OWN_BEND = 0.3
RIM_ROUNDS = 2  # traced round a point below each eye, then round each lens's middle
RIM_INWARD = 0.6  # per grid reach, above the eye: what a radius further out costs
# Nothing this near an eye (of the face size) is frame: the template's lashes and lids
# touching a rim stay the user's.
EYE_CLEARANCE = 0.012
# A band's edges are looked for up to this far (of the face size) each side of the traced
# rim, sampled this finely (pixels), its peak within BAND_PEAK of it; a band is seen where
# its frame likeness stands BAND_CONTRAST above what is beside it.
BAND_REACH = 0.04
BAND_STEP = 0.25
BAND_PEAK = 0.006
BAND_CONTRAST = 0.25
BAND_SMOOTH = 17  # angles of the running median that evens a rim's edges
# Where a band's edge is, of the way from its floor to its peak: past halfway for light frames
# (skin of about their colour, beside them, stays out); well below for dark ones, whose
# patterns (tortoiseshell) and highlights dip far below their peak inside the band.
BAND_LEVEL = (0.65, 0.25)
VALLEY_NOISE = 0.05  # in frame likeness: a band's side rising less than this still falls
RIM_GAP = 24  # rays: a rim unseen for no more than these goes on across the gap
RIM_MIRROR = (0.15, 0.006)  # how much wider a rim's band may be than its mirror image's: a fraction, of the face size
# Glasses have a rim round most of each lens: a band seen along this fraction of it at least.
RIM_SUPPORT = 0.6
# The bridge is traced column by column (of the face size apart), each band sought within
# this much of the last one's centre.
COLUMN_STEP = 0.004
COLUMN_DRIFT = 0.01
BRIDGE_REACH = 0.25  # of the face size from the nose's middle, at most, to a rim
BRIDGE_GAP = 3  # columns
WORK_MARGIN = 0.08  # around the glasses' zone, of the face size: the crop worked on
INPAINT_REACH = 0.01  # of the face size: how far around a frame pixel its fill is drawn from
# Landmarks: the face oval's outermost points at eye level (right, left), above and below
# them, and the oval's bottom and top.
_FACE_SIDES = (234, 454)
_TEMPLES = (127, 356, 93, 323)
_CHIN, _FOREHEAD = 152, 10


@dataclass(frozen=True)
class Frames:
    """The frames of a template's glasses in its patch: where (`box`, x0, y0, x1, y1), how
    much of each pixel is frame (`weight`, float32 0..1, its edge at the frames' edge) and
    the template's pixels there (`pixels`, uint8)."""

    box: tuple[int, int, int, int]
    weight: np.ndarray
    pixels: np.ndarray

    @property
    def nbytes(self) -> int:
        return self.weight.nbytes + self.pixels.nbytes


def has_bridge(patch: np.ndarray, points: np.ndarray, face_size: float) -> bool:
    """Whether the face seems to wear glasses, by their bridge alone (find_frames's first,
    quick test; the rims decide)."""
    _, lab, local, axes = _work_area(patch, points, face_size)
    return _bridge(lab, local, axes) is not None


def _work_area(patch: np.ndarray, points: np.ndarray,
               face_size: float) -> tuple[tuple[int, int, int, int], np.ndarray, np.ndarray, _FaceAxes]:
    """The box of the patch glasses are looked for in, its CIELAB (lightly blurred), the
    landmarks and the face's axes in it."""
    axes = _FaceAxes.of(points, face_size)
    x0, y0, x1, y1 = _work_box(points, patch.shape[:2], face_size)
    offset = np.array([x0, y0], np.float32)
    lab = cv2.cvtColor(patch[y0:y1, x0:x1].astype(np.float32) * (1 / 255), cv2.COLOR_RGB2Lab)
    lab = cv2.GaussianBlur(lab, (0, 0), max(0.5, 0.002 * face_size))
    return (x0, y0, x1, y1), lab, points[:, :2] - offset, axes.moved(-offset)


def find_frames(patch: np.ndarray, points: np.ndarray, face_size: float) -> Frames | None:
    """The frames of the glasses this face wears (`points`: its landmarks in the patch), or
    None when it wears none."""
    (x0, y0, x1, y1), lab, local, axes = _work_area(patch, points, face_size)
    crop = patch[y0:y1, x0:x1]
    bridge = _bridge(lab, local, axes)
    if bridge is None:
        return None
    like_bridge = _likeness(lab, [bridge.colour])
    eyes = masks.grow(masks.polygon_mask(crop.shape[:2], masks.loop(local, mesh.RIGHT_EYE),
                                         masks.loop(local, mesh.LEFT_EYE)), EYE_CLEARANCE * face_size)
    # Rims are traced on the bridge's colour. Light frames are near the skin's colour: their
    # bands are measured on it too, against what is just beside them; dark ones on their
    # darkness (tortoiseshell and highlights vary their colour), against all around.
    skin_l = _cheeks_lightness(lab, local)
    light = bool(bridge.colour[0] > FRAME_DARK * skin_l)
    body = like_bridge if light else np.maximum(like_bridge, _local_darkness(lab[..., 0], DARK_WIDTH * face_size))
    paths = _rim_paths(like_bridge, eyes, axes)
    rims = _mirrored([_rim_band(like_bridge, body, path, face_size, light) for path in paths], face_size)
    if not all(rim.support >= RIM_SUPPORT and _holds_eye(rim, local, side) for rim, side in zip(rims, (1, -1))):
        return None
    weight = np.zeros(crop.shape[:2], np.float32)
    for rim in rims:
        np.maximum(weight, rim.mask(crop.shape[:2]), out=weight)
    np.maximum(weight, _bridge_mask(body, bridge, rims, axes, light), out=weight)
    for rim, side in zip(rims, (1, -1)):
        np.maximum(weight, _arm_mask(body, rim, weight.copy(), local, axes, side), out=weight)
    if light:
        np.maximum(weight, _dark_parts(lab, weight, local, face_size), out=weight)
    else:
        # What is as dark as the frame just beside its traced bands is frame too: their
        # edges' last pixels, a hinge, a pad's arm.
        near = masks.grow((weight > 0.5).astype(np.float32), FRAME_BESIDE * face_size)
        np.maximum(weight, masks.smoothstep(body, *FRAME_EDGE) * near, out=weight)
    weight *= 1 - eyes
    rows, cols = np.nonzero(weight > 0)
    if rows.size == 0:
        return None
    bx0, by0, bx1, by1 = cols.min(), rows.min(), cols.max() + 1, rows.max() + 1
    box = (x0 + int(bx0), y0 + int(by0), x0 + int(bx1), y0 + int(by1))
    pixels = np.ascontiguousarray(patch[box[1]:box[3], box[0]:box[2]])
    return Frames(box, np.ascontiguousarray(weight[by0:by1, bx0:bx1]), pixels)


def without_frames(patch: np.ndarray, frames: Frames, face_size: float) -> np.ndarray:
    """The patch with the frames painted out from around them: what the fusion warps, so that
    no bent copy of the frames shows wherever the template shows through."""
    clean = patch.copy()
    pad = int(np.ceil(INPAINT_REACH * face_size)) + 2
    h, w = patch.shape[:2]
    x0, y0, x1, y1 = frames.box
    wx0, wy0, wx1, wy1 = max(0, x0 - pad), max(0, y0 - pad), min(w, x1 + pad), min(h, y1 + pad)
    hole = np.zeros((wy1 - wy0, wx1 - wx0), np.uint8)
    hole[y0 - wy0:y1 - wy0, x0 - wx0:x1 - wx0] = (frames.weight > 0).astype(np.uint8)
    # Grown by a pixel: a partly covered edge pixel holds some of the frame's colour too.
    hole = cv2.dilate(hole, np.ones((3, 3), np.uint8))
    clean[wy0:wy1, wx0:wx1] = cv2.inpaint(patch[wy0:wy1, wx0:wx1], hole, max(1.0, INPAINT_REACH * face_size),
                                          cv2.INPAINT_TELEA)
    return clean


def put_back(out: np.ndarray, frames: Frames, box: tuple[int, int, int, int]) -> None:
    """The frames over `out` (the patch's pixels, in place), within `box` (x0, y0, x1, y1)."""
    x0, y0 = max(frames.box[0], box[0]), max(frames.box[1], box[1])
    x1, y1 = min(frames.box[2], box[2]), min(frames.box[3], box[3])
    if x0 >= x1 or y0 >= y1:
        return
    fx, fy = x0 - frames.box[0], y0 - frames.box[1]
    weight = frames.weight[fy:fy + y1 - y0, fx:fx + x1 - x0]
    target = out[y0:y1, x0:x1]
    target[:] = cv2.blendLinear(frames.pixels[fy:fy + y1 - y0, fx:fx + x1 - x0], target, weight, 1 - weight)


@dataclass(frozen=True)
class _FaceAxes:
    """The face's own directions: `across` from its right eye to its left, `down` toward the
    chin; the eyes' centres and the face size."""

    right: np.ndarray
    left: np.ndarray
    across: np.ndarray
    down: np.ndarray
    size: float

    @staticmethod
    def of(points: np.ndarray, size: float) -> _FaceAxes:
        right = points[list(mesh.RIGHT_EYE), :2].mean(axis=0)
        left = points[list(mesh.LEFT_EYE), :2].mean(axis=0)
        across = (left - right) / max(float(np.linalg.norm(left - right)), 1e-3)
        down = np.array([-across[1], across[0]], np.float32)
        if down @ (points[_CHIN, :2] - points[_FOREHEAD, :2]) < 0:
            down = -down
        return _FaceAxes(right.astype(np.float32), left.astype(np.float32), across.astype(np.float32), down, size)

    def moved(self, by: np.ndarray) -> _FaceAxes:
        return _FaceAxes(self.right + by, self.left + by, self.across, self.down, self.size)

    @property
    def middle(self) -> np.ndarray:
        return (self.right + self.left) / 2

    def eye(self, side: int) -> np.ndarray:
        """side 1: the right eye (the nose lies `across` from it), -1: the left."""
        return self.right if side > 0 else self.left

    def at(self, origin: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Image x, y (float32) of face-frame offsets x (across), y (down) from `origin`, in pixels."""
        px = origin[0] + x * self.across[0] + y * self.down[0]
        py = origin[1] + x * self.across[1] + y * self.down[1]
        return px.astype(np.float32), py.astype(np.float32)


def _work_box(points: np.ndarray, shape: tuple[int, int], size: float) -> tuple[int, int, int, int]:
    """The part of the patch the glasses can be in: brows to below the eyes, cheek to cheek."""
    idx = list(mesh.RIGHT_BROW + mesh.LEFT_BROW + mesh.RIGHT_EYE + mesh.LEFT_EYE + _FACE_SIDES + _TEMPLES)
    pts = points[idx, :2]
    return masks.bounds(np.concatenate([pts, pts + [0, POLAR_REACH * size]]), shape, WORK_MARGIN * size)


@dataclass(frozen=True)
class _Bridge:
    contrast: float
    colour: np.ndarray  # Lab
    centre: float  # down from the eyes' middle, pixels
    width: float  # pixels


def _bridge(lab: np.ndarray, points: np.ndarray, axes: _FaceAxes) -> _Bridge | None:
    """The bridge of the glasses: the band across the top of the nose that stands out most
    from the nose above and below it over most of the nose's width; None if none does."""
    size = axes.size
    brows = points[list(mesh.RIGHT_BROW + mesh.LEFT_BROW)]
    top = float(((brows - axes.middle) @ axes.down).min())
    step = 0.002 * size
    ys = np.arange(top, BRIDGE_BELOW_EYES * size, step, dtype=np.float32)
    xs = np.linspace(-BRIDGE_SPAN, BRIDGE_SPAN, 7, dtype=np.float32) * size
    px, py = axes.at(axes.middle, xs[:, None], ys[None, :])
    profiles = cv2.remap(lab, px, py, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)  # (columns, ys, 3)
    sums = np.concatenate([np.zeros((len(xs), 1, 3), np.float32), np.cumsum(profiles, axis=1)], axis=1)
    n = len(ys)
    best: _Bridge | None = None
    for width in BRIDGE_WIDTHS:
        w = max(2, int(round(width * size / step)))
        s = max(2, w // 2)
        starts = np.arange(s, n - w - s)
        if starts.size == 0:
            continue
        band = (sums[:, starts + w] - sums[:, starts]) / w
        above = (sums[:, starts] - sums[:, starts - s]) / s
        below = (sums[:, starts + w + s] - sums[:, starts + w]) / s
        contrast = np.minimum(np.linalg.norm(band - above, axis=2), np.linalg.norm(band - below, axis=2))
        across_nose = np.percentile(contrast, 25, axis=0)
        k = int(np.argmax(across_nose))
        if best is None or across_nose[k] > best.contrast:
            best = _Bridge(float(across_nose[k]), np.median(band[:, k], axis=0),
                           float(ys[starts[k]] + w * step / 2), float(w * step))
    if best is None or best.contrast < BRIDGE_CONTRAST:
        return None
    return best


def _cheeks_lightness(lab: np.ndarray, points: np.ndarray) -> float:
    """The median L at the cheeks' landmarks."""
    h, w = lab.shape[:2]
    at = np.round(points[list(mesh.RIGHT_CHEEK + mesh.LEFT_CHEEK)]).astype(int)
    at = at[(at[:, 0] >= 0) & (at[:, 0] < w) & (at[:, 1] >= 0) & (at[:, 1] < h)]
    return float(np.median(lab[at[:, 1], at[:, 0], 0])) if len(at) else float(np.median(lab[..., 0]))


def _dark_parts(lab: np.ndarray, frames: np.ndarray, points: np.ndarray, size: float) -> np.ndarray:
    """The dark parts of light frames (a browline over the rims, its wings): thin, far darker
    structures in the glasses' zone, inside the face, that touch the frames found so far."""
    lines = masks.dark_lines(lab[..., 0], DARK_WIDTH * size)
    zone = masks.glasses_zone(lab.shape[:2], points) * masks.polygon_mask(lab.shape[:2], masks.loop(points, mesh.FACE_OVAL))
    darkness = masks.smoothstep(FRAME_DARK * _cheeks_lightness(lab, points) - lab[..., 0], -FRAME_DARK_EDGE, FRAME_DARK_EDGE)
    return _joined(lines * zone * darkness, frames, 2.0)


def _local_darkness(lightness: np.ndarray, width: float) -> np.ndarray:
    """float32 0..1: how much darker each pixel is than its surroundings (a closing at `width`
    pixels), as a thin dark frame is; a shadow as wide as the closing is not."""
    size = max(3, int(2 * round(width) + 1))
    closed = cv2.morphologyEx(lightness, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size)))
    return (1 - masks.smoothstep((lightness + 2) / (closed + 2), *DARK_FRAME_RATIO)).astype(np.float32)


def _likeness(lab: np.ndarray, colours: list[np.ndarray]) -> np.ndarray:
    """float32 0..1: how near each pixel is to the nearest of `colours` (Lab)."""
    nearest = np.full(lab.shape[:2], np.inf, np.float32)
    for colour in colours:
        np.minimum(nearest, ((lab - colour) ** 2).sum(axis=2), out=nearest)
    return np.exp(nearest * (-0.5 / FRAME_COLOUR_SPREAD ** 2)).astype(np.float32)


@dataclass(frozen=True)
class _Rim:
    """One lens's rim: per angle round the polar centre, the band's inner and outer radii
    (pixels) and whether a band is there."""

    centre: np.ndarray
    directions: np.ndarray  # (angles, 2) unit vectors
    inner: np.ndarray
    outer: np.ndarray
    seen: np.ndarray  # bool, short gaps closed
    support: float  # the fraction of rays where the band itself is seen

    def outline(self) -> np.ndarray:
        """The rim's outer edge, a closed polygon (pixels)."""
        return self.centre + self.directions * self.outer[:, None]

    def mask(self, shape: tuple[int, int]) -> np.ndarray:
        """The band between the edges, where it is seen (each seen run its own polygon)."""
        out = np.zeros(shape, np.float32)
        inner = self.centre + self.directions * self.inner[:, None]
        outer = self.outline()
        for run in _runs(self.seen):
            if len(run) < 2:
                continue
            polygon = np.concatenate([outer[run], inner[run][::-1]])
            np.maximum(out, masks.polygon_mask(shape, polygon), out=out)
        return out


def _runs(seen: np.ndarray) -> list[np.ndarray]:
    """Index runs of True in a circular bool array (a full circle closes on itself)."""
    n = len(seen)
    if seen.all():
        return [np.arange(n + 1) % n]
    start = int(np.argmin(seen))  # a gap: runs are read from there round
    order = (start + np.arange(n)) % n
    runs, current = [], []
    for i in order:
        if seen[i]:
            current.append(i)
        elif current:
            runs.append(np.array(current))
            current = []
    if current:
        runs.append(np.array(current))
    return runs


@dataclass(frozen=True)
class _RimPath:
    """A rim's middle round one eye: the polar centre, the rays' directions, the radius along
    each (pixels) and whether it is where no frame can be."""

    centre: np.ndarray
    directions: np.ndarray
    radius: np.ndarray
    blocked: np.ndarray


def _rim_paths(like_bridge: np.ndarray, untraced: np.ndarray, axes: _FaceAxes) -> list[_RimPath]:
    """Both rims' middles (the right eye's first), traced on `like_bridge`.

    The two lenses are mirror images: their rims are traced first as one (both eyes' polar
    responses added, angles mirrored), which a wrinkle or an eye bag round one eye alone
    does not outweigh; then each on its own near that, to follow its own corners. Traced
    once round a point below each eye, then again round the middle of each lens found:
    seen from there a rim is most nearly a circle, each ray crossing it squarely."""
    centres = [axes.eye(side) + LENS_DROP * axes.size * axes.down for side in (1, -1)]
    for _ in range(RIM_ROUNDS):
        paths = _rim_paths_round(like_bridge, untraced, axes, centres)
        centres = [_centroid(path.centre + path.directions * path.radius[:, None]) for path in paths]
    return paths


def _centroid(polygon: np.ndarray) -> np.ndarray:
    m = cv2.moments(polygon.astype(np.float32).reshape(-1, 1, 2))
    if abs(m["m00"]) < 1e-6:
        return polygon.mean(axis=0).astype(np.float32)
    return np.array([m["m10"] / m["m00"], m["m01"] / m["m00"]], np.float32)


def _rim_paths_round(like_bridge: np.ndarray, untraced: np.ndarray, axes: _FaceAxes,
                     centres: list[np.ndarray]) -> list[_RimPath]:
    """One round of _rim_paths about `centres`."""
    polars = [_Polar.of(like_bridge, untraced, axes, side, centre) for side, centre in zip((1, -1), centres)]
    # Above the eye a rim lies under the brow: of two bands there, the inner one is more
    # likely the rim.
    angles = 2 * np.pi * np.arange(POLAR_ANGLES) / POLAR_ANGLES
    inward = RIM_INWARD * np.maximum(-np.sin(angles), 0)[:, None] * (np.arange(POLAR_RADII) / POLAR_RADII)[None, :]
    both = _closed_smooth_path(polars[0].response + polars[1].response - 2 * (RIM_BASELINE + inward), RIM_MAX_STEP,
                               2 * RIM_BEND_COST)
    corridor = np.abs(np.arange(POLAR_RADII)[None, :] - both[:, None]) <= RIM_CORRIDOR * POLAR_RADII / POLAR_REACH
    paths = []
    for polar in polars:
        score = np.where(corridor, polar.response, RIM_BLOCKED) - RIM_BASELINE - inward
        path = _closed_smooth_path(score, RIM_MAX_STEP, RIM_BEND_COST * RIM_OWN_BEND)
        paths.append(_RimPath(polar.centre, polar.directions, polar.radii[path],
                              polar.blocked[np.arange(POLAR_ANGLES), path]))
    return paths


def _rim_band(like_bridge: np.ndarray, body: np.ndarray, path: _RimPath, size: float, light: bool) -> _Rim:
    """The rim's band about its middle, measured on `body` (see find_frames): its edges where
    it is seen, and across short gaps (a rim is whole: where it fades into a like-coloured
    background for a few rays, it goes on as on either side of the gap). How much of the
    way round a rim is seen is measured on the bridge's colour, as it was traced."""
    support = _band_edges(like_bridge, path, size, True)[2] & ~path.blocked
    inner, outer, seen = _band_edges(body, path, size, light)
    seen &= ~path.blocked
    whole = _close_gaps(seen, RIM_GAP)
    if seen.any() and not seen.all():
        rays = np.arange(len(seen))
        inner = np.interp(rays, rays[seen], inner[seen], period=len(seen)).astype(np.float32)
        outer = np.interp(rays, rays[seen], outer[seen], period=len(seen)).astype(np.float32)
    return _Rim(path.centre, path.directions, inner, outer, whole, float(support.mean()))


def _holds_eye(rim: _Rim, points: np.ndarray, side: int) -> bool:
    """Whether the rim is a lens's: round its eye, both corners of it inside, and under its
    brow (a lens never holds the brow's middle)."""
    lens = (rim.centre + rim.directions * rim.inner[:, None]).astype(np.float32).reshape(-1, 1, 2)
    corners = mesh.RIGHT_EYE_CORNERS if side > 0 else mesh.LEFT_EYE_CORNERS
    brow = points[list(mesh.RIGHT_BROW if side > 0 else mesh.LEFT_BROW)].mean(axis=0)
    inside = [cv2.pointPolygonTest(lens, (float(x), float(y)), False) > 0 for x, y in points[list(corners)]]
    return all(inside) and cv2.pointPolygonTest(lens, (float(brow[0]), float(brow[1])), False) < 0


def _mirrored(rims: list[_Rim], size: float) -> list[_Rim]:
    """The rims with neither band wider than the other's at the mirrored angle, give or take
    RIM_MIRROR: the lenses are mirror images, and where a dark brow touches one rim's top
    its band would run on into the brow. A band's inner edge, against the lens, stays."""
    right, left = rims
    slack, spare = RIM_MIRROR[0], RIM_MIRROR[1] * size
    both = right.seen & left.seen
    out = []
    for rim, other in ((right, left), (left, right)):
        widest = (other.outer - other.inner) * (1 + slack) + spare
        outer = np.where(both, np.minimum(rim.outer, rim.inner + widest), rim.outer).astype(np.float32)
        out.append(_Rim(rim.centre, rim.directions, rim.inner, outer, rim.seen, rim.support))
    return out


def _close_gaps(seen: np.ndarray, longest: int) -> np.ndarray:
    """`seen` (circular) with its runs of False no longer than `longest` set True."""
    if seen.all() or not seen.any():
        return seen
    out = seen.copy()
    n = len(seen)
    start = int(np.argmax(seen))  # read round from a seen ray
    gap = []
    for k in range(1, n + 1):
        i = (start + k) % n
        if seen[i]:
            if 0 < len(gap) <= longest:
                out[gap] = True
            gap = []
        else:
            gap.append(i)
    return out


@dataclass(frozen=True)
class _Polar:
    """Round one eye: rays at POLAR_ANGLES angles (the first toward the nose, then down, so
    that the two eyes' grids mirror each other), radii along them (pixels), and per ray and
    radius how much a thin band of the frame's colour stands out there, and whether no
    frame can be there (blocked)."""

    centre: np.ndarray
    directions: np.ndarray  # (angles, 2) unit vectors
    radii: np.ndarray
    response: np.ndarray  # (angles, radii)
    blocked: np.ndarray

    @staticmethod
    def of(like_bridge: np.ndarray, untraced: np.ndarray, axes: _FaceAxes, side: int, centre: np.ndarray) -> _Polar:
        size = axes.size
        angles = 2 * np.pi * np.arange(POLAR_ANGLES) / POLAR_ANGLES
        directions = (side * np.cos(angles)[:, None] * axes.across
                      + np.sin(angles)[:, None] * axes.down).astype(np.float32)
        step = POLAR_REACH * size / POLAR_RADII
        radii = (np.arange(POLAR_RADII, dtype=np.float32) + 0.5) * step
        px = (centre[0] + directions[:, :1] * radii).astype(np.float32)
        py = (centre[1] + directions[:, 1:] * radii).astype(np.float32)
        polar = cv2.remap(like_bridge, px, py, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        polar = cv2.GaussianBlur(polar, (1, 0), sigmaX=0.1, sigmaY=1.0)
        response = np.zeros_like(polar)
        for width in RIM_LINE_WIDTHS:
            w = max(1, int(round(width * size / step)))
            line = np.minimum(polar - np.roll(polar, w, axis=1), polar - np.roll(polar, -w, axis=1))
            line[:, :w] = 0
            line[:, -w:] = 0
            np.maximum(response, line, out=response)
        blocked = cv2.remap(untraced, px, py, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT) > 0.5
        # A lens never reaches the middle of the nose.
        toward_nose = directions @ (side * axes.across)
        to_middle = ((axes.middle - centre) @ (side * axes.across)) / np.maximum(toward_nose, 1e-3)
        blocked |= (toward_nose[:, None] > 1e-3) & (radii[None, :] > to_middle[:, None] - NOSE_MARGIN * size)
        response[blocked] = RIM_BLOCKED
        return _Polar(centre, directions, radii, response, blocked)


def _band_edges(likeness: np.ndarray, path: _RimPath, size: float,
                light: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Along each ray, the band of frame likeness about the rim's middle: its inner and outer
    edges (pixels from the centre, evened over neighbouring angles) and whether it stands out."""
    centre, directions, radius = path.centre, path.directions, path.radius
    reach = BAND_REACH * size
    offsets = np.arange(-reach, reach + BAND_STEP, BAND_STEP, dtype=np.float32)
    along = np.maximum(radius[:, None] + offsets[None, :], 0)
    px = (centre[0] + directions[:, :1] * along).astype(np.float32)
    py = (centre[1] + directions[:, 1:] * along).astype(np.float32)
    profile = cv2.remap(likeness, px, py, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    lo, hi, seen = _half_height_run(profile, BAND_PEAK * size / BAND_STEP, light)
    inner = radius + offsets[0] + lo * BAND_STEP
    outer = radius + offsets[0] + hi * BAND_STEP
    return _running_median(inner, BAND_SMOOTH), _running_median(outer, BAND_SMOOTH), seen


def _half_height_run(profile: np.ndarray, peak_reach: float,
                     light: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row of `profile` (rows, samples), the band about its middle sample: from its peak
    (within `peak_reach` samples of the middle) down each side to its floor there (the first
    valley for a `light` frame's, the least for a dark one's), where it falls to BAND_LEVEL
    of the way from the floor to the peak, as fractional sample indices (low, high); and
    whether it stands out of both floors by BAND_CONTRAST."""
    rows, n = profile.shape
    mid = n // 2
    reach = max(1, int(round(peak_reach)))
    peak_at = mid - reach + np.argmax(profile[:, mid - reach:mid + reach + 1], axis=1)
    low, high = np.empty(rows, np.float32), np.empty(rows, np.float32)
    seen = np.ones(rows, bool)
    level = BAND_LEVEL[0] if light else BAND_LEVEL[1]
    for i in range(rows):
        p = profile[i]
        k = int(peak_at[i])
        before, after = p[k::-1], p[k:]
        if light:
            before, after = _down_to_valley(before), _down_to_valley(after)
        else:
            before, after = _to_lowest(before), _to_lowest(after)
        seen[i] = p[k] - max(before[-1], after[-1]) >= BAND_CONTRAST
        low[i] = k - _crossing(before, before[-1] + level * (p[k] - before[-1]))
        high[i] = k + _crossing(after, after[-1] + level * (p[k] - after[-1]))
    return low, high, seen


def _down_to_valley(run: np.ndarray) -> np.ndarray:
    """`run` (from a peak outward) up to its first valley: where, having fallen by
    BAND_CONTRAST, it rises again by more than VALLEY_NOISE (a dip within a band, a
    highlight on the frame, is not one)."""
    lowest = np.minimum.accumulate(run)
    rises = np.flatnonzero((run[1:] > lowest[:-1] + VALLEY_NOISE) & (lowest[:-1] <= run[0] - BAND_CONTRAST))
    return run[:int(rises[0]) + 1] if rises.size else run


def _to_lowest(run: np.ndarray) -> np.ndarray:
    """`run` (from a peak outward) up to its least value."""
    return run[:int(np.argmin(run)) + 1]


def _crossing(run: np.ndarray, level: float) -> float:
    """Where `run` (from the peak outward) first falls below `level`, as a fractional index."""
    below = np.flatnonzero(run < level)
    if below.size == 0:
        return float(len(run) - 1)
    j = int(below[0])
    if j == 0:
        return 0.0
    a, b = float(run[j - 1]), float(run[j])
    return float(j - 1 + (a - level) / max(a - b, 1e-6))


def _running_median(values: np.ndarray, window: int) -> np.ndarray:
    """Circular running median (odd window)."""
    half = window // 2
    n = len(values)
    index = (np.arange(n)[:, None] + np.arange(-half, half + 1)[None, :]) % n
    return np.median(values[index], axis=1).astype(np.float32)


def _closed_smooth_path(score: np.ndarray, max_step: int, bend_cost: float) -> np.ndarray:
    """The radius index per angle (row of `score`, (angles, radii)) of the closed path with the
    highest total score, its radius changing by at most `max_step` per angle and that
    change by at most one per angle, each such bend costing `bend_cost`. Solved round twice
    (dynamic programming), the second round's path taken: it no longer depends on where the
    first began."""
    n, radii = score.shape
    speeds = 2 * max_step + 1
    total = np.repeat(score[0][:, None], speeds, axis=1)
    back = np.zeros((2 * n, radii, speeds), np.int8)
    lowest = np.float32(-1e9)
    for t in range(1, 2 * n):
        best = np.full((radii, speeds), lowest, np.float32)
        choice = np.zeros((radii, speeds), np.int8)
        for bend in (-1, 0, 1):
            came = np.full((radii, speeds), lowest, np.float32)
            for v in range(speeds):
                previous = v - bend
                if not 0 <= previous < speeds:
                    continue
                move = v - max_step  # radius now = radius before + move
                if move >= 0:
                    came[move:, v] = total[:radii - move, previous]
                else:
                    came[:radii + move, v] = total[-move:, previous]
            if bend:
                came -= bend_cost
            better = came > best
            best[better] = came[better]
            choice[better] = bend
        total = best + score[t % n][:, None]
        back[t] = choice
    r, v = np.unravel_index(int(np.argmax(total)), total.shape)
    path = np.empty(2 * n, np.int64)
    for t in range(2 * n - 1, -1, -1):
        path[t] = r
        if t:
            r, v = r - (v - max_step), v - back[t, r, v]
    return path[n:]


def _column(likeness: np.ndarray, axes: _FaceAxes, origin: np.ndarray, x: float, centre: float, reach: float,
            light: bool) -> tuple[float, float, bool]:
    """Down one column (`x` across from `origin`, pixels), the band of frame likeness about
    `centre` (pixels down, the peak sought within `reach`): its top and bottom (pixels down)
    and whether it stands out."""
    offsets = np.arange(-BAND_REACH * axes.size - reach, BAND_REACH * axes.size + reach + BAND_STEP, BAND_STEP,
                        dtype=np.float32)
    px, py = axes.at(origin, np.full(offsets.shape, x, np.float32), centre + offsets)
    profile = cv2.remap(likeness, px[None], py[None], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    low, high, seen = _half_height_run(profile, reach / BAND_STEP, light)
    return centre + offsets[0] + float(low[0]) * BAND_STEP, centre + offsets[0] + float(high[0]) * BAND_STEP, bool(seen[0])


def _band_polygon(axes: _FaceAxes, origin: np.ndarray, columns: list[tuple[float, float, float]]) -> np.ndarray:
    """The polygon of a band traced column by column ((x, top, bottom) in pixels from `origin`)."""
    x, top, bottom = (np.array(v, np.float32) for v in zip(*columns))
    upper = np.stack(axes.at(origin, x, top), axis=1)
    lower = np.stack(axes.at(origin, x, bottom), axis=1)
    return np.concatenate([upper, lower[::-1]])


def _bridge_mask(likeness: np.ndarray, bridge: _Bridge, rims: list[_Rim], axes: _FaceAxes,
                 light: bool) -> np.ndarray:
    """The bridge, traced from the middle of the nose out to where it meets each rim (across
    a highlight or a nose pad, a few columns without a band, as on either side of them)."""
    size, origin = axes.size, axes.middle
    lenses = [rim.outline().reshape(-1, 1, 2) for rim in rims]
    columns: list[tuple[float, float, float]] = []
    for side in (1, -1):  # toward the right eye (-across), then the left
        top, bottom = bridge.centre - bridge.width / 2, bridge.centre + bridge.width / 2
        half, gap = [], 0
        for k in range(int(BRIDGE_REACH / COLUMN_STEP)):
            x = -side * k * COLUMN_STEP * size
            found_top, found_bottom, seen = _column(likeness, axes, origin, x, (top + bottom) / 2,
                                                    COLUMN_DRIFT * size, light)
            gap = 0 if seen else gap + 1
            if gap > BRIDGE_GAP:
                break
            if seen:
                top, bottom = found_top, found_bottom
            half.append((x, top, bottom))
            point = axes.at(origin, np.float32(x), np.float32((top + bottom) / 2))
            if any(cv2.pointPolygonTest(lens, (float(point[0]), float(point[1])), False) >= 0 for lens in lenses):
                break
        columns = half[::-1] if side == 1 else columns + half[1:]
    mask = np.zeros(likeness.shape, np.float32)
    if len(columns) >= 2:
        mask = masks.polygon_mask(likeness.shape, _band_polygon(axes, origin, columns))
    return mask


def _arm_mask(body: np.ndarray, rim: _Rim, rim_mask: np.ndarray, points: np.ndarray, axes: _FaceAxes,
              side: int) -> np.ndarray:
    """The arm beside one lens (side 1: the right), up to and a little past the face's edge
    (past it the template stays as it is, but for the warp fading out there): what has the
    frame's colour, joined to the rim, from the rim's outer side outward, at the height of
    the lens's top."""
    size = axes.size
    origin = axes.eye(side)
    outward = -side * axes.across
    outline = rim.outline()
    start = float(((outline - origin) @ outward).max()) - BAND_REACH * size
    edge = float((points[_FACE_SIDES[0] if side > 0 else _FACE_SIDES[1], :2] - origin) @ outward) + ARM_PAST_EDGE * size
    top = float(((outline - origin) @ axes.down).min())
    top, bottom = top - ARM_ABOVE * size, top + ARM_BELOW * size
    if edge <= start:
        return np.zeros(body.shape, np.float32)
    corners = np.array([origin + outward * x + axes.down * y for x, y in
                        ((start, top), (edge, top), (edge, bottom), (start, bottom))], np.float32)
    strip = masks.polygon_mask(body.shape, corners)
    return _joined(masks.smoothstep(body, *FRAME_EDGE) * strip, rim_mask, JOIN_REACH * size)


def _joined(candidate: np.ndarray, frames: np.ndarray, reach: float) -> np.ndarray:
    """The parts of `candidate` (0..1) within `reach` pixels of `frames` (0..1)."""
    solid = (candidate > 0.5).astype(np.uint8)
    _, pieces = cv2.connectedComponents(solid, connectivity=8)
    near = masks.grow((frames > 0.5).astype(np.float32), max(reach, 2.0)) > 0
    touching = np.unique(pieces[near & (solid > 0)])
    touching = touching[touching > 0]
    if touching.size == 0:
        return np.zeros(candidate.shape, np.float32)
    # Grown by a pixel so that each piece keeps its soft edge.
    keep = cv2.dilate(np.isin(pieces, touching).astype(np.uint8), np.ones((3, 3), np.uint8))
    return (candidate * keep).astype(np.float32)
