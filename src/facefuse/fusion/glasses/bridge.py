"""Telling glasses at all, by their bridge, and the face's own directions everything else is
traced along.

A bridge is a band across the top of the nose whose colour stands out from the nose above
and below it across most of the nose's width: a bare nose has at most a crease, which
fades out to the sides. The bridge's colour is the frame's: the rims are then sought as
bands of it (likeness).
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
BRIDGE_STEP = 0.002  # of the face size: the nose is read down the face at this step
# How far (Lab units) a bridge's colour stands out from the nose above and below it, at
# the least, across most of the nose's width (the quarter of it where it stands out least).
BRIDGE_CONTRAST = 10.0
# A frame's colour is its bridge's, up to this spread (Lab units).
FRAME_COLOUR_SPREAD = 12.0
# Landmarks: the face oval's outermost points at eye level (right, left), and its bottom
# and top.
FACE_SIDES = (234, 454)
_CHIN, _FOREHEAD = 152, 10


@dataclass(frozen=True)
class FaceAxes:
    """The face's own directions: `across` from its right eye to its left, `down` toward the
    chin; the eyes' centres and the face size."""

    right: np.ndarray
    left: np.ndarray
    across: np.ndarray
    down: np.ndarray
    size: float

    @staticmethod
    def of(points: np.ndarray, size: float) -> FaceAxes:
        right = points[list(mesh.RIGHT_EYE), :2].mean(axis=0)
        left = points[list(mesh.LEFT_EYE), :2].mean(axis=0)
        across = (left - right) / max(float(np.linalg.norm(left - right)), 1e-3)
        down = np.array([-across[1], across[0]], np.float32)
        if down @ (points[_CHIN, :2] - points[_FOREHEAD, :2]) < 0:
            down = -down
        return FaceAxes(right.astype(np.float32), left.astype(np.float32), across.astype(np.float32), down, size)

    def moved(self, by: np.ndarray) -> FaceAxes:
        return FaceAxes(self.right + by, self.left + by, self.across, self.down, self.size)

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


@dataclass(frozen=True)
class Bridge:
    """The bridge found: how much it stands out, its colour, where it is and how wide."""

    contrast: float
    colour: np.ndarray  # Lab
    centre: float  # down from the eyes' middle, pixels
    width: float  # pixels


def find_bridge(lab: np.ndarray, points: np.ndarray, axes: FaceAxes) -> Bridge | None:
    """The bridge of the glasses: the band across the top of the nose that stands out most
    from the nose above and below it over most of the nose's width; None if none does."""
    size = axes.size
    ys, px, py = _bridge_grid(points, axes)
    step = BRIDGE_STEP * size
    profiles = cv2.remap(lab, px, py, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)  # (columns, ys, 3)
    sums = np.concatenate([np.zeros((len(px), 1, 3), np.float32), np.cumsum(profiles, axis=1)], axis=1)
    n = len(ys)
    best: Bridge | None = None
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
            best = Bridge(
                float(across_nose[k]),
                np.median(band[:, k], axis=0),
                float(ys[starts[k]] + w * step / 2),
                float(w * step),
            )
    if best is None or best.contrast < BRIDGE_CONTRAST:
        return None
    return best


def bridge_box(points: np.ndarray, axes: FaceAxes, shape: tuple[int, int], margin: float) -> tuple[int, int, int, int]:
    """x0, y0, x1, y1 of what find_bridge reads of an image of `shape` (h, w), grown by
    `margin` pixels: a caller that only asks whether there is a bridge works on that alone."""
    _, px, py = _bridge_grid(points, axes)
    return masks.bounds(np.stack([px.ravel(), py.ravel()], axis=1), shape, margin)


def _bridge_grid(points: np.ndarray, axes: FaceAxes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where find_bridge reads the nose: the heights down the face (pixels from the eyes'
    middle), and the image x, y of each (columns across the nose, heights)."""
    size = axes.size
    brows = points[list(mesh.RIGHT_BROW + mesh.LEFT_BROW)]
    top = float(((brows - axes.middle) @ axes.down).min())
    ys = np.arange(top, BRIDGE_BELOW_EYES * size, BRIDGE_STEP * size, dtype=np.float32)
    xs = np.linspace(-BRIDGE_SPAN, BRIDGE_SPAN, 7, dtype=np.float32) * size
    px, py = axes.at(axes.middle, xs[:, None], ys[None, :])
    return ys, px, py


def likeness(lab: np.ndarray, colours: list[np.ndarray]) -> np.ndarray:
    """float32 0..1: how near each pixel is to the nearest of `colours` (Lab)."""
    nearest = np.full(lab.shape[:2], np.inf, np.float32)
    for colour in colours:
        np.minimum(nearest, ((lab - colour) ** 2).sum(axis=2), out=nearest)
    return np.exp(nearest * (-0.5 / FRAME_COLOUR_SPREAD**2)).astype(np.float32)
