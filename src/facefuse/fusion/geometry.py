"""Where the fused face's landmarks go: the template's, moved toward the user's proportions."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from facefuse.fusion import mesh


@dataclass(frozen=True)
class Similarity:
    """x -> scale * rotation @ x + shift (3-D)."""

    scale: float
    rotation: np.ndarray  # (3, 3)
    shift: np.ndarray  # (3,)

    def apply(self, points: np.ndarray) -> np.ndarray:
        return (self.scale * points @ self.rotation.T + self.shift).astype(np.float32)


def fit_similarity(source: np.ndarray, target: np.ndarray) -> Similarity:
    """Least-squares similarity taking source (N, 3) points onto target (Umeyama)."""
    src = source.astype(np.float64)
    dst = target.astype(np.float64)
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    u, sing, vt = np.linalg.svd(dst_c.T @ src_c / len(src))
    sign = np.ones(3)
    sign[2] = np.sign(np.linalg.det(u) * np.linalg.det(vt)) or 1.0
    rotation = u @ np.diag(sign) @ vt
    scale = float((sing * sign).sum() / (src_c ** 2).sum(axis=1).mean())
    return Similarity(scale, rotation, dst_mean - scale * rotation @ src_mean)


def target_landmarks(template_pts: np.ndarray, user_aligned: np.ndarray,
                     inner_weight: float, outline_weight: float) -> np.ndarray:
    """(478, 2) landmarks of the fused face.

    Inner points move toward the user by inner_weight, the face outline by outline_weight.
    The mouth and eyes keep the template's expression: how open they are, and the curve
    of the mouth (a smile). Their shape within that (full or thin lips, the line of the
    lids) is the user's when both faces hold the feature about as open; otherwise they
    move as rigid groups, the template's feature placed at the user's centre and width.
    """
    shift = _expression_free_shift(template_pts, user_aligned)
    weights = _point_weights(inner_weight, outline_weight)
    target = template_pts + weights[:, None] * shift
    return _undo_folds(template_pts, target)


def openness(points: np.ndarray, span: tuple[int, int, int, int]) -> float:
    """How open a feature is (mesh.MOUTH_OPENING, ...): its gap over its width."""
    top, bottom, a, b = span
    gap = np.linalg.norm(points[top, :2] - points[bottom, :2])
    return float(gap / max(np.linalg.norm(points[a, :2] - points[b, :2]), 1e-3))


def _point_weights(inner: float, outline: float) -> np.ndarray:
    hops = mesh.hops_from_oval()
    ramp = np.clip(hops / 2.0, 0.0, 1.0)
    weights = np.empty(478, dtype=np.float32)
    weights[: mesh.MESH_POINTS] = outline + (inner - outline) * ramp
    weights[mesh.MESH_POINTS:] = inner
    return weights


def _expression_free_shift(template_pts: np.ndarray, user_aligned: np.ndarray) -> np.ndarray:
    shift = (user_aligned - template_pts).astype(np.float32)
    groups = [(np.array(group), corners) for group, corners in _rigid_groups()]
    mouth, right_eye, left_eye = (idx for idx, _ in groups)
    own_shapes = (  # per group: how much of the user's own shape, and that shape's shift
        (_mouth_shape_weight(template_pts, user_aligned), _mouth_shift(template_pts, user_aligned, mouth)),
        (_eye_shape_weight(template_pts, user_aligned, mesh.RIGHT_EYE_OPENING), shift[right_eye]),
        (_eye_shape_weight(template_pts, user_aligned, mesh.LEFT_EYE_OPENING), shift[left_eye]),
    )
    for (idx, corners), (weight, own) in zip(groups, own_shapes):
        rigid = _group_shift(template_pts, user_aligned, idx, corners)
        shift[idx] = rigid + weight * (own - rigid)
    shift[: mesh.MESH_POINTS] = _smoothing_operator() @ shift[: mesh.MESH_POINTS]
    return shift


def _rigid_groups() -> list[tuple[tuple[int, ...], tuple[int, int]]]:
    return [
        (mesh.LIPS_OUTER + mesh.LIPS_INNER + _LIP_BODY, mesh.MOUTH_CORNERS),
        (mesh.RIGHT_EYE + mesh.RIGHT_IRIS, mesh.RIGHT_EYE_CORNERS),
        (mesh.LEFT_EYE + mesh.LEFT_IRIS, mesh.LEFT_EYE_CORNERS),
    ]


# Mesh points on the lips between the outer and inner contours.
_LIP_BODY = (72, 73, 74, 183, 42, 41, 38, 11, 12, 268, 271, 272, 303, 302, 407, 184, 62, 76,
             77, 96, 89, 90, 179, 180, 86, 85, 15, 16, 316, 315, 403, 404, 320, 319, 325, 307,
             292, 306, 408, 304)
# The user's own feature shape comes in fully while the two faces' openness differs by up
# to the first value and not at all from the second: mouth, gap over width (closed ~0.0,
# parted ~0.05, open 0.1 and more); eyes, |log| of the ratio (so a squint or a closed eye
# stays the template's).
_MOUTH_SHAPE_GAP = (0.025, 0.075)
_EYE_SHAPE_LOG_RATIO = (0.15, 0.45)


def _mouth_shape_weight(template_pts: np.ndarray, user_aligned: np.ndarray) -> float:
    gap = abs(openness(user_aligned, mesh.MOUTH_OPENING) - openness(template_pts, mesh.MOUTH_OPENING))
    return _fade(gap, *_MOUTH_SHAPE_GAP)


def _eye_shape_weight(template_pts: np.ndarray, user_aligned: np.ndarray,
                      span: tuple[int, int, int, int]) -> float:
    ratio = (openness(user_aligned, span) + 0.03) / (openness(template_pts, span) + 0.03)
    return _fade(abs(float(np.log(ratio))), *_EYE_SHAPE_LOG_RATIO)


def _fade(value: float, full_below: float, none_above: float) -> float:
    return float(np.clip((none_above - value) / (none_above - full_below), 0.0, 1.0))


def _group_shift(template_pts: np.ndarray, user_aligned: np.ndarray, idx: np.ndarray,
                 corners: tuple[int, int]) -> np.ndarray:
    """Shift of a group that takes the template's feature to the user's centre and width."""
    a, b = corners
    t_width = np.linalg.norm(template_pts[a] - template_pts[b])
    u_width = np.linalg.norm(user_aligned[a] - user_aligned[b])
    scale = _feature_scale(t_width, u_width)
    t_centre = (template_pts[a] + template_pts[b]) / 2
    u_centre = (user_aligned[a] + user_aligned[b]) / 2
    moved = u_centre + scale * (template_pts[idx] - t_centre)
    return moved - template_pts[idx]


def _feature_scale(t_width: float, u_width: float) -> float:
    return float(np.clip(u_width / max(t_width, 1e-3), 0.7, 1.4))


def _mouth_shift(template_pts: np.ndarray, user_aligned: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Shift of the mouth's points to the user's lips (their fullness and outline) laid
    on the template's mouth line: its curve (a smile, a downturn) and tilt stay, at the
    user's centre and width (as _group_shift places the template's mouth)."""
    t_frame, u_frame = _MouthFrame.of(template_pts), _MouthFrame.of(user_aligned)
    local = u_frame.to_local(user_aligned[idx])
    local[:, 1] += t_frame.line_at(local[:, 0]) - u_frame.line_at(local[:, 0])
    scale = _feature_scale(t_frame.half_width, u_frame.half_width)
    moved = u_frame.centre + scale * t_frame.half_width * (
        local[:, :1] * t_frame.x_axis + local[:, 1:] * t_frame.y_axis)
    return (moved - template_pts[idx]).astype(np.float32)


@dataclass(frozen=True)
class _MouthFrame:
    """Coordinates of a mouth: origin between the corners, x toward the second corner,
    unit half the mouth's width; its line = the middle of the inner lips, as y of x."""

    centre: np.ndarray
    half_width: float
    x_axis: np.ndarray
    y_axis: np.ndarray
    line_x: np.ndarray
    line_y: np.ndarray

    @classmethod
    def of(cls, points: np.ndarray) -> "_MouthFrame":
        a, b = (points[i, :2].astype(np.float64) for i in mesh.MOUTH_CORNERS)
        half = (b - a) / 2
        half_width = max(float(np.linalg.norm(half)), 1e-3)
        x_axis = half / half_width
        frame = cls((a + b) / 2, half_width, x_axis, np.array([-x_axis[1], x_axis[0]]),
                    np.zeros(0), np.zeros(0))
        middle = (frame.to_local(points[list(mesh.LIPS_INNER_UPPER)])
                  + frame.to_local(points[list(mesh.LIPS_INNER_LOWER)])) / 2
        order = np.argsort(middle[:, 0])
        return cls(frame.centre, half_width, x_axis, frame.y_axis, middle[order, 0], middle[order, 1])

    def to_local(self, points: np.ndarray) -> np.ndarray:
        offset = points[:, :2] - self.centre
        return np.stack([offset @ self.x_axis, offset @ self.y_axis], axis=-1) / self.half_width

    def line_at(self, x: np.ndarray) -> np.ndarray:
        return np.interp(x, self.line_x, self.line_y)


@lru_cache(maxsize=1)
def _smoothing_operator(rounds: int = 6) -> np.ndarray:
    """(468, 468) linear map of the mesh points' shifts: `rounds` times, each free point's
    shift is averaged half with its neighbours' mean, so that expression-bound differences
    (a cheek raised by a smile) fade while proportions stay; the rigid groups (mouth,
    eyes) keep theirs. Linear in the shifts, so it is worked out once."""
    fixed = np.zeros(mesh.MESH_POINTS, dtype=bool)
    for group, _ in _rigid_groups():
        fixed[[i for i in group if i < mesh.MESH_POINTS]] = True
    step = np.eye(mesh.MESH_POINTS, dtype=np.float64)
    step[~fixed] = 0.5 * step[~fixed] + 0.5 * mesh.neighbour_mean_matrix()[~fixed]
    return np.linalg.matrix_power(step, rounds).astype(np.float32)


def _undo_folds(template_pts: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Pull points back toward the template until no mesh triangle flips or collapses.

    Only the corners of offending triangles are pulled back (halving their move each
    round), so one tight spot does not cancel the shape change of the whole face."""
    tri = mesh.mesh_triangles()
    base = _signed_areas(template_pts, tri)
    usable = np.abs(base) > 0.5
    tri_used, base_used = tri[usable], base[usable]
    move = (target - template_pts).astype(np.float32)
    for _ in range(40):
        ratio = _signed_areas(template_pts + move, tri_used) / base_used
        bad = ratio <= 0.1
        if not bad.any():
            return (template_pts + move).astype(np.float32)
        corners = np.unique(tri_used[bad])
        move[corners] *= 0.5
    return _scaled_back(template_pts, target, tri_used, base_used)


def _scaled_back(template_pts: np.ndarray, target: np.ndarray, tri: np.ndarray,
                 base: np.ndarray) -> np.ndarray:
    """The whole move scaled down until nothing folds (the fallback)."""
    for step in np.linspace(1.0, 0.0, 9):
        candidate = template_pts + step * (target - template_pts)
        if (_signed_areas(candidate, tri) / base).min(initial=1.0) > 0.1:
            return candidate.astype(np.float32)
    return template_pts.astype(np.float32)


def _signed_areas(points: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    a, b, c = (points[triangles[:, k]] for k in range(3))
    return 0.5 * ((b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0]))
