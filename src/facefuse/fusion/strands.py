"""Strands of hair followed down a face: what of a dark line hangs from the hairline, and
where a strand runs across a brow and an eye, between its pieces found above and below.

Both work upright: the image turned so that the face's up is the image's up, its rows
the face's rows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import cv2
import numpy as np

from facefuse.arrays import BoolArray, FloatArray, IntArray, UInt8Array

# A strand hangs: from the hairline it runs down the face, each row down at most HANG_SLOPE
# pixels sideways, with at most `slack` pixels of way along the eye line in all (its own
# width, a wave). A fold, a crease, a brow or the face's edge joined to it runs along the
# eye line from it, and is not part of it.
HANG_SLOPE = 1
# The walk down the face is done at this scale of the canvas: a strand's way down is as
# plain there, and the row-by-row walk has a quarter of the steps.
HANG_SCALE = 0.5
# A strand's piece above the eyes and one below them are the same strand when each is at
# least PIECE_LENGTH long (of the face size) and narrower than PIECE_WIDTH, their ends at
# most GAP_LENGTH apart down the face, and the lines along their last and first
# PIECE_TAIL (of the face size) meet within MEET (of the face size) halfway between them.
PIECE_LENGTH = 0.05
PIECE_WIDTH = 0.03
PIECE_TAIL = 0.06
GAP_LENGTH = 0.35
MEET = 0.025
# Where the path between them crosses skin (not a brow, the lashes or a pupil: what is
# dark across the eye line too), the strand darkens it: a valley across the path, at
# least this deep, over at least DARK_SHARE of that skin.
VALLEY_DEPTH = 0.92
DARK_SHARE = 0.5
DARK_ACROSS = 0.75  # of the skin's level around the eyes: a brow, the lashes, a pupil
PIECE_END = 0.02  # of the face size: a piece's soft end stops short of the gap by at most this


def hanging_down(lines: BoolArray, seeds: BoolArray, up: FloatArray, slack: float) -> BoolArray:
    """The part of `lines` reached from `seeds` going down the face (`up`: the face's up, a
    unit vector in the image): each row down at most HANG_SLOPE pixels sideways for free,
    each pixel along a row (or back up) costing one, `slack` pixels of that in all."""
    frame = _Upright.of(lines.shape, up, HANG_SCALE)
    slack *= HANG_SCALE
    upright_lines, upright_seeds = frame.turn(lines), frame.turn(seeds)
    rows = np.flatnonzero(upright_lines.any(axis=1))
    if not rows.size:
        return np.zeros_like(lines)
    side = upright_lines.shape[1]
    blocked = np.where(upright_lines, 0, np.inf).astype(np.float32)
    seed_cost = np.where(upright_seeds, 0, np.inf).astype(np.float32)
    cost = np.full(upright_lines.shape, np.inf, np.float32)
    above = np.full(side + 2 * HANG_SLOPE, np.inf, np.float32)
    steps = int(slack)
    for r in range(int(rows[0]), int(rows[-1]) + 1):
        here = seed_cost[r].copy()
        for shift in range(2 * HANG_SLOPE + 1):
            np.minimum(here, above[shift : shift + side], out=here)
        here += blocked[r]
        for _ in range(steps):
            np.minimum(here[1:], here[:-1] + 1 + blocked[r, 1:], out=here[1:])
            np.minimum(here[:-1], here[1:] + 1 + blocked[r, :-1], out=here[:-1])
        cost[r] = here
        above[HANG_SLOPE : HANG_SLOPE + side] = here
    # Grown by a pixel: turned back, a thin line must stay whole.
    reached = cast(UInt8Array, cv2.dilate((cost <= slack).astype(np.uint8), np.ones((3, 3), np.uint8)))
    return frame.back(reached) & lines


def long_down(mask: BoolArray, up: FloatArray, length: float) -> BoolArray:
    """The pieces of `mask` (8-connected) that run at least `length` pixels down the face
    (`up`: the face's up, a unit vector in the image), however the face is turned."""
    frame = _Upright.of(mask.shape, up)
    count, pieces, stats, _ = cv2.connectedComponentsWithStats(frame.turn(mask).view(np.uint8), connectivity=8)
    keep = stats[:, cv2.CC_STAT_HEIGHT] >= length
    keep[0] = False
    return frame.back(keep[pieces].view(np.uint8)) & mask


def paths_across(
    rgb: UInt8Array, strands: BoolArray, gap: BoolArray, face_size: float, up: FloatArray
) -> BoolArray | None:
    """Where strands run across `gap` (bool: the brows and the eyes with a margin, where a
    strand is not told from the face's own dark lines), joined between their pieces found
    above and below it (`strands`: bool, the strands' dark pixels outside it), as a
    mask of `rgb`'s pixels the strands' width; None when no piece continues another."""
    frame = _Upright.of(strands.shape, up)
    upright_gap = frame.turn(gap)
    gap_rows = np.flatnonzero(upright_gap.any(axis=1))
    if not gap_rows.size:
        return None
    # A piece stops at the gap, or short of it by its soft end; only its end is followed.
    reach = max(3, int(round(PIECE_END * face_size)))
    near = reach + int(PIECE_TAIL * face_size) + 1
    band = slice(max(int(gap_rows[0]) - near, 0), int(gap_rows[-1]) + near + 1)
    pieces = _pieces(frame.turn(strands & ~gap)[band], face_size, band.start)
    above = [p for p in pieces if upright_gap[p.last_row + 1 : p.last_row + 1 + reach, p.end_x].any()]
    below = [p for p in pieces if upright_gap[max(p.first_row - reach, 0) : p.first_row, p.start_x].any()]
    if not above or not below:
        return None
    luma = frame.turn_luma(rgb)
    valley, closed = _valleys(luma, face_size)
    # What is dark along the eye line too (a brow, the lashes, a pupil) is far darker than
    # the skin around the eyes, most of the gap.
    dark_across = closed < DARK_ACROSS * float(np.median(closed[upright_gap]))
    paths = np.zeros(upright_gap.shape, np.uint8)
    # Each piece continues at most one other: the nearest misses first.
    pairs = sorted(
        (miss, i, j)
        for i, upper in enumerate(above)
        for j, lower in enumerate(below)
        if (miss := _miss(upper, lower, face_size)) is not None
    )
    used_above: set[int] = set()
    used_below: set[int] = set()
    for _, i, j in pairs:
        if i in used_above or j in used_below:
            continue
        used_above.add(i)
        used_below.add(j)
        upper, lower = above[i], below[j]
        path = np.zeros_like(paths)
        width = max(1, int(round(max(upper.width, lower.width))))
        cv2.polylines(
            path, [np.round(_bridge(upper, lower) * 16).astype(np.int32)], False, 1, width + 2, cv2.LINE_8, shift=4
        )  # type: ignore[call-overload]
        on_skin = (path > 0) & upright_gap & ~dark_across
        if on_skin.sum() and valley[on_skin].mean() >= DARK_SHARE:
            paths |= path & upright_gap
    if not paths.any():
        return None
    return frame.back(paths) & gap


def fill_along(rgb: UInt8Array, hole: BoolArray, along: FloatArray) -> UInt8Array:
    """`rgb` with the pixels of `hole` filled along the direction `along` (a unit vector in
    the image), each from the nearest pixels outside the hole on either side: along the eye
    line, a brow, a lid's edge and the lashes carry on across a strand as they are. A new
    image."""
    frame = _Upright.of(hole.shape, np.array([along[1], -along[0]], np.float32))
    upright = cv2.warpAffine(
        rgb, frame.to_upright, (frame.side, frame.side), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    ).astype(np.float32)
    # Grown by a pixel: turned, a hole's edge must not be taken to fill from.
    known = ~cv2.dilate(frame.turn(hole).view(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    columns = np.arange(frame.side)
    left = np.maximum.accumulate(np.where(known, columns, -1), axis=1)
    right = np.minimum.accumulate(np.where(known, columns, frame.side)[:, ::-1], axis=1)[:, ::-1]
    # Along a row with the hole at its end, the side that is there fills alone.
    left = np.where(left < 0, right, left)
    right = np.where(right >= frame.side, left, right)
    left, right = np.clip(left, 0, frame.side - 1), np.clip(right, 0, frame.side - 1)
    weight = ((columns - left) / np.maximum(right - left, 1)).astype(np.float32)[..., None]
    rows = np.arange(frame.side)[:, None]
    filled = upright[rows, left] * (1 - weight) + upright[rows, right] * weight
    h, w = hole.shape
    back = cv2.warpAffine(filled, frame.to_upright, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
    out = rgb.copy()
    out[hole] = np.clip(back[hole] + 0.5, 0, 255).astype(np.uint8)
    return out


@dataclass(frozen=True)
class _Piece:
    """A strand's piece, upright: each row's centre along its first and last PIECE_TAIL."""

    first_row: int
    last_row: int
    start_x: int
    end_x: int
    head: FloatArray  # (x, slope dx/dy) of the line along its first rows, at first_row
    tail: FloatArray  # likewise along its last rows, at last_row
    width: float


def _pieces(mask: BoolArray, face_size: float, top: int = 0) -> list[_Piece]:
    """The strands' pieces in `mask` (upright, its first row the upright image's `top`):
    runs along the rows followed down from row to row while each touches exactly one run of
    the row above, and that one no other."""
    steps = np.diff(np.pad(mask.view(np.uint8), ((0, 0), (1, 1))).astype(np.int8), axis=1)
    rows, starts = np.nonzero(steps == 1)  # in row-major order: by row, then along it
    ends = np.nonzero(steps == -1)[1]  # each run's end (exclusive), in the same order
    count = len(rows)
    if not count:
        return []
    width = mask.shape[1] + 2
    first, last = rows * width + starts, rows * width + ends  # the runs' ends on one line, row by row

    def touching(offset: int) -> tuple[IntArray, IntArray]:
        """Each run's first touching run in the row `offset` away, and how many touch it."""
        base = (rows + offset) * width
        lo = np.searchsorted(last, base + starts, side="left")
        hi = np.searchsorted(first, base + ends, side="right")
        return np.minimum(lo, count - 1), np.maximum(hi - lo, 0)

    above, up_count = touching(-1)
    _, down_count = touching(1)
    follows = (up_count == 1) & (down_count[above] == 1)
    parent = np.where(follows, above, np.arange(count))
    while True:  # each run to its piece's first
        settled = parent[parent]
        if np.array_equal(settled, parent):
            break
        parent = settled
    order = np.lexsort((rows, parent))
    heads, lengths = np.unique(parent[order], return_index=True, return_counts=True)[1:]
    tail = max(3, int(PIECE_TAIL * face_size))
    centres = ((starts + ends - 1) / 2).astype(np.float32)
    widths = (ends - starts).astype(np.float32)
    out = []
    for at, length in zip(heads.tolist(), lengths.tolist()):
        if length < PIECE_LENGTH * face_size:
            continue
        runs = order[at : at + length]
        piece_width = float(np.median(widths[runs]))
        if piece_width > PIECE_WIDTH * face_size:
            continue
        ys, xs = (rows[runs] + top).astype(np.float32), centres[runs]
        head = _line(ys[:tail], xs[:tail], float(ys[0]))
        end = _line(ys[-tail:], xs[-tail:], float(ys[-1]))
        out.append(_Piece(int(ys[0]), int(ys[-1]), round(float(xs[0])), round(float(xs[-1])), head, end, piece_width))
    return out


def _line(ys: FloatArray, xs: FloatArray, at: float) -> FloatArray:
    """x at row `at` and the slope dx/dy of the least-squares line through (xs, ys)."""
    dy, dx = ys - ys.mean(), xs - xs.mean()
    spread = float(dy @ dy)
    slope = float(dy @ dx) / spread if spread > 0 else 0.0
    return np.array([float(xs.mean()) + slope * (at - float(ys.mean())), slope], np.float32)


def _miss(upper: _Piece, lower: _Piece, face_size: float) -> float | None:
    """How far apart the two pieces' lines pass halfway between them (pixels), or None when
    they are not one strand's."""
    gap = lower.first_row - upper.last_row
    if gap <= 0 or gap > GAP_LENGTH * face_size:
        return None
    middle = upper.last_row + gap / 2
    from_above = upper.tail[0] + upper.tail[1] * (middle - upper.last_row)
    from_below = lower.head[0] + lower.head[1] * (middle - lower.first_row)
    miss = abs(float(from_above - from_below))
    return miss if miss <= MEET * face_size else None


def _bridge(upper: _Piece, lower: _Piece) -> FloatArray:
    """(n, 2) x, y along the cubic Hermite curve from the upper piece's end to the lower
    one's start, leaving and arriving along their lines."""
    y0, y1 = float(upper.last_row), float(lower.first_row)
    x0, x1 = float(upper.tail[0]), float(lower.head[0])
    span = y1 - y0
    t = np.linspace(0, 1, max(2, int(span) + 1), dtype=np.float32)
    h00, h10, h01, h11 = 2 * t**3 - 3 * t**2 + 1, t**3 - 2 * t**2 + t, -2 * t**3 + 3 * t**2, t**3 - t**2
    xs = h00 * x0 + h10 * span * float(upper.tail[1]) + h01 * x1 + h11 * span * float(lower.head[1])
    return np.stack([xs, y0 + t * span], axis=1)


def _valleys(luma: FloatArray, face_size: float) -> tuple[BoolArray, FloatArray]:
    """Pixels darker than VALLEY_DEPTH of the luma closed along the rows (upright: the eye
    line) over the strands' widest, a thin line across the eye line; and that closing."""
    length = max(3, int(2 * round(PIECE_WIDTH * face_size / 2) + 1))
    closed = cast(FloatArray, cv2.morphologyEx(luma, cv2.MORPH_CLOSE, np.ones((1, length), np.uint8)))
    return (luma + 4) < VALLEY_DEPTH * (closed + 4), closed


@dataclass(frozen=True)
class _Upright:
    """An image turned about its centre so that the face's up is the image's up."""

    to_upright: FloatArray  # 2x3 affine
    shape: tuple[int, int]  # the image's (h, w)
    side: int  # the upright square's side
    scale: float = 1.0  # upright pixels per image pixel

    @classmethod
    def of(cls, shape: tuple[int, ...], up: FloatArray, scale: float = 1.0) -> _Upright:
        """Turned, and shrunk by `scale`."""
        h, w = shape[:2]
        turn = np.array([[-up[1], up[0]], [-up[0], -up[1]]], np.float32) * scale
        side = int(np.ceil(np.hypot(h, w) * scale))
        centre = np.array([w / 2, h / 2], np.float32)
        return cls(np.hstack([turn, (side / 2 - turn @ centre)[:, None]]), (h, w), side, scale)

    def turn(self, mask: BoolArray) -> BoolArray:
        """`mask` upright; shrunk, a pixel is set where any of those it covers is."""
        flags = cv2.INTER_NEAREST if self.scale >= 1 else cv2.INTER_AREA
        upright = cv2.warpAffine(
            mask.view(np.uint8) * np.uint8(255), self.to_upright, (self.side, self.side), flags=flags
        )
        return upright > 0

    def turn_luma(self, rgb: UInt8Array) -> FloatArray:
        luma = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
        return cast(
            FloatArray,
            cv2.warpAffine(
                luma, self.to_upright, (self.side, self.side), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
            ),
        )

    def back(self, mask: UInt8Array | BoolArray) -> BoolArray:
        h, w = self.shape
        flags = cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP
        turned = cast(UInt8Array, cv2.warpAffine(mask.astype(np.uint8), self.to_upright, (w, h), flags=flags))
        return turned > 0
