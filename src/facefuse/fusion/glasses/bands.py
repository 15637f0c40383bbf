"""Each rim's band about its traced middle: along each ray, at full resolution, where the
frame's likeness rises to a band and falls again on both sides; whether the rim is a
lens's.

The middle is traced on a coarse polar grid; the band's own edges are what the frames'
mask is cut at, so they are found along each ray in fine steps, from the band's peak down
to its floor on either side (half_height_run, also what the bridge is traced with, down
each column). A rim is whole: across a few rays where it fades into a like-coloured
background it goes on as on either side; and the lenses are mirror images, so neither
band is kept much wider than the other's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import cv2
import numpy as np

from facefuse.arrays import BoolArray, FloatArray, IntArray
from facefuse.fusion import masks, mesh
from facefuse.fusion.glasses.rims import RimPath

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


@dataclass(frozen=True)
class Rim:
    """One lens's rim: per angle round the polar centre, the band's inner and outer radii
    (pixels) and whether a band is there."""

    centre: FloatArray
    directions: FloatArray  # (angles, 2) unit vectors
    inner: FloatArray
    outer: FloatArray
    seen: BoolArray  # short gaps closed
    support: float  # the fraction of rays where the band itself is seen

    def outline(self) -> FloatArray:
        """The rim's outer edge, a closed polygon (pixels)."""
        return self.centre + self.directions * self.outer[:, None]

    def mask(self, shape: tuple[int, ...]) -> FloatArray:
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


def _runs(seen: BoolArray) -> list[IntArray]:
    """Index runs of True in a circular bool array (a full circle closes on itself)."""
    n = len(seen)
    if seen.all():
        return [np.arange(n + 1) % n]
    start = int(np.argmin(seen))  # a gap: runs are read from there round
    order = (start + np.arange(n)) % n
    runs: list[IntArray] = []
    current: list[int] = []
    for i in order:
        if seen[i]:
            current.append(i)
        elif current:
            runs.append(np.array(current))
            current = []
    if current:
        runs.append(np.array(current))
    return runs


def rim_band(like_bridge: FloatArray, body: FloatArray, path: RimPath, size: float, light: bool) -> Rim:
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
    return Rim(path.centre, path.directions, inner, outer, whole, float(support.mean()))


def holds_eye(rim: Rim, points: FloatArray, side: int) -> bool:
    """Whether the rim is a lens's: round its eye, both corners of it inside, and under its
    brow (a lens never holds the brow's middle)."""
    lens = (rim.centre + rim.directions * rim.inner[:, None]).astype(np.float32).reshape(-1, 1, 2)
    corners = mesh.RIGHT_EYE_CORNERS if side > 0 else mesh.LEFT_EYE_CORNERS
    brow = points[list(mesh.RIGHT_BROW if side > 0 else mesh.LEFT_BROW)].mean(axis=0)
    inside = [cv2.pointPolygonTest(lens, (float(x), float(y)), False) > 0 for x, y in points[list(corners)]]
    return all(inside) and cv2.pointPolygonTest(lens, (float(brow[0]), float(brow[1])), False) < 0


def mirrored(rims: list[Rim], size: float) -> list[Rim]:
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
        out.append(Rim(rim.centre, rim.directions, rim.inner, outer, rim.seen, rim.support))
    return out


def _close_gaps(seen: BoolArray, longest: int) -> BoolArray:
    """`seen` (circular) with its runs of False no longer than `longest` set True."""
    if seen.all() or not seen.any():
        return seen
    out = seen.copy()
    n = len(seen)
    start = int(np.argmax(seen))  # read round from a seen ray
    gap: list[int] = []
    for k in range(1, n + 1):
        i = (start + k) % n
        if seen[i]:
            if 0 < len(gap) <= longest:
                out[gap] = True
            gap = []
        else:
            gap.append(i)
    return out


def _band_edges(
    likeness: FloatArray, path: RimPath, size: float, light: bool
) -> tuple[FloatArray, FloatArray, BoolArray]:
    """Along each ray, the band of frame likeness about the rim's middle: its inner and outer
    edges (pixels from the centre, evened over neighbouring angles) and whether it stands out."""
    centre, directions, radius = path.centre, path.directions, path.radius
    reach = BAND_REACH * size
    offsets = np.arange(-reach, reach + BAND_STEP, BAND_STEP, dtype=np.float32)
    along = np.maximum(radius[:, None] + offsets[None, :], 0)
    px = (centre[0] + directions[:, :1] * along).astype(np.float32)
    py = (centre[1] + directions[:, 1:] * along).astype(np.float32)
    profile = cast(FloatArray, cv2.remap(likeness, px, py, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE))
    lo, hi, seen = half_height_run(profile, BAND_PEAK * size / BAND_STEP, light)
    inner = radius + offsets[0] + lo * BAND_STEP
    outer = radius + offsets[0] + hi * BAND_STEP
    return _running_median(inner, BAND_SMOOTH), _running_median(outer, BAND_SMOOTH), seen


def half_height_run(profile: FloatArray, peak_reach: float, light: bool) -> tuple[FloatArray, FloatArray, BoolArray]:
    """Per row of `profile` (rows, samples), the band about its middle sample: from its peak
    (within `peak_reach` samples of the middle) down each side to its floor there (the first
    valley for a `light` frame's, the least for a dark one's), where it falls to BAND_LEVEL
    of the way from the floor to the peak, as fractional sample indices (low, high); and
    whether it stands out of both floors by BAND_CONTRAST."""
    rows, n = profile.shape
    mid = n // 2
    reach = max(1, int(round(peak_reach)))
    peak_at = mid - reach + np.argmax(profile[:, mid - reach : mid + reach + 1], axis=1)
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


def _down_to_valley(run: FloatArray) -> FloatArray:
    """`run` (from a peak outward) up to its first valley: where, having fallen by
    BAND_CONTRAST, it rises again by more than VALLEY_NOISE (a dip within a band, a
    highlight on the frame, is not one)."""
    lowest = np.minimum.accumulate(run)
    rises = np.flatnonzero((run[1:] > lowest[:-1] + VALLEY_NOISE) & (lowest[:-1] <= run[0] - BAND_CONTRAST))
    return run[: int(rises[0]) + 1] if rises.size else run


def _to_lowest(run: FloatArray) -> FloatArray:
    """`run` (from a peak outward) up to its least value."""
    return run[: int(np.argmin(run)) + 1]


def _crossing(run: FloatArray, level: float) -> float:
    """Where `run` (from the peak outward) first falls below `level`, as a fractional index."""
    below = np.flatnonzero(run < level)
    if below.size == 0:
        return float(len(run) - 1)
    j = int(below[0])
    if j == 0:
        return 0.0
    a, b = float(run[j - 1]), float(run[j])
    return float(j - 1 + (a - level) / max(a - b, 1e-6))


def _running_median(values: FloatArray, window: int) -> FloatArray:
    """Circular running median (odd window)."""
    half = window // 2
    n = len(values)
    index = (np.arange(n)[:, None] + np.arange(-half, half + 1)[None, :]) % n
    return cast(FloatArray, np.median(values[index], axis=1).astype(np.float32))
