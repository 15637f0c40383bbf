"""The middle of each rim, traced round its eye in polar coordinates.

Round a point below each eye, per ray and radius, how much a thin band of the bridge's
colour stands out from both sides; a rim is the smooth closed curve (dynamic programming)
through the most of that. The two lenses are mirror images: both are traced first as one,
which a wrinkle or an eye bag round one eye alone does not outweigh, then each on its own
near that; and again round the middle of each lens found, from where a rim is most nearly
a circle. Polar coordinates make a closed rim one path round the angles, and keep it off
the eye and the nose's middle by blocking those radii.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import cv2
import numpy as np

from facefuse.arrays import BoolArray, FloatArray, IntArray
from facefuse.fusion.glasses.bridge import FaceAxes

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


@dataclass(frozen=True)
class RimPath:
    """A rim's middle round one eye: the polar centre, the rays' directions, the radius along
    each (pixels) and whether it is where no frame can be."""

    centre: FloatArray
    directions: FloatArray
    radius: FloatArray
    blocked: BoolArray


def rim_paths(like_bridge: FloatArray, untraced: FloatArray, axes: FaceAxes) -> list[RimPath]:
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


def _centroid(polygon: FloatArray) -> FloatArray:
    m = cv2.moments(polygon.astype(np.float32).reshape(-1, 1, 2))
    if abs(m["m00"]) < 1e-6:
        return cast(FloatArray, polygon.mean(axis=0).astype(np.float32))
    return np.array([m["m10"] / m["m00"], m["m01"] / m["m00"]], np.float32)


def _rim_paths_round(
    like_bridge: FloatArray, untraced: FloatArray, axes: FaceAxes, centres: list[FloatArray]
) -> list[RimPath]:
    """One round of rim_paths about `centres`."""
    polars = [_Polar.of(like_bridge, untraced, axes, side, centre) for side, centre in zip((1, -1), centres)]
    # Above the eye a rim lies under the brow: of two bands there, the inner one is more
    # likely the rim.
    angles = 2 * np.pi * np.arange(POLAR_ANGLES) / POLAR_ANGLES
    inward = RIM_INWARD * np.maximum(-np.sin(angles), 0)[:, None] * (np.arange(POLAR_RADII) / POLAR_RADII)[None, :]
    both = _closed_smooth_path(
        polars[0].response + polars[1].response - 2 * (RIM_BASELINE + inward), RIM_MAX_STEP, 2 * RIM_BEND_COST
    )
    corridor = np.abs(np.arange(POLAR_RADII)[None, :] - both[:, None]) <= RIM_CORRIDOR * POLAR_RADII / POLAR_REACH
    paths = []
    for polar in polars:
        score = np.where(corridor, polar.response, RIM_BLOCKED) - RIM_BASELINE - inward
        path = _closed_smooth_path(score, RIM_MAX_STEP, RIM_BEND_COST * RIM_OWN_BEND)
        paths.append(
            RimPath(polar.centre, polar.directions, polar.radii[path], polar.blocked[np.arange(POLAR_ANGLES), path])
        )
    return paths


@dataclass(frozen=True)
class _Polar:
    """Round one eye: rays at POLAR_ANGLES angles (the first toward the nose, then down, so
    that the two eyes' grids mirror each other), radii along them (pixels), and per ray and
    radius how much a thin band of the frame's colour stands out there, and whether no
    frame can be there (blocked)."""

    centre: FloatArray
    directions: FloatArray  # (angles, 2) unit vectors
    radii: FloatArray
    response: FloatArray  # (angles, radii)
    blocked: BoolArray

    @staticmethod
    def of(like_bridge: FloatArray, untraced: FloatArray, axes: FaceAxes, side: int, centre: FloatArray) -> _Polar:
        size = axes.size
        angles = 2 * np.pi * np.arange(POLAR_ANGLES) / POLAR_ANGLES
        directions = (side * np.cos(angles)[:, None] * axes.across + np.sin(angles)[:, None] * axes.down).astype(
            np.float32
        )
        step = POLAR_REACH * size / POLAR_RADII
        radii = (np.arange(POLAR_RADII, dtype=np.float32) + 0.5) * step
        px = (centre[0] + directions[:, :1] * radii).astype(np.float32)
        py = (centre[1] + directions[:, 1:] * radii).astype(np.float32)
        polar = cast(FloatArray, cv2.remap(like_bridge, px, py, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE))
        polar = cast(FloatArray, cv2.GaussianBlur(polar, (1, 0), sigmaX=0.1, sigmaY=1.0))
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


def _closed_smooth_path(score: FloatArray, max_step: int, bend_cost: float) -> IntArray:
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
            for speed in range(speeds):
                previous = speed - bend
                if not 0 <= previous < speeds:
                    continue
                move = speed - max_step  # radius now = radius before + move
                if move >= 0:
                    came[move:, speed] = total[: radii - move, previous]
                else:
                    came[: radii + move, speed] = total[-move:, previous]
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
