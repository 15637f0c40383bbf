"""Where the fused face's landmarks go: the template's, moved toward the user's proportions."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, cast

import numpy as np

from facefuse.arrays import BoolArray, FloatArray, IntArray
from facefuse.fusion import masks, mesh
from facefuse.fusion.warp import signed_areas


@dataclass(frozen=True)
class Similarity:
    """x -> scale * rotation @ x + shift (3-D)."""

    scale: float
    rotation: FloatArray  # (3, 3)
    shift: FloatArray  # (3,)

    def apply(self, points: FloatArray) -> FloatArray:
        return cast(FloatArray, (self.scale * points @ self.rotation.T + self.shift).astype(np.float32))


def fit_similarity(source: FloatArray, target: FloatArray) -> Similarity:
    """Least-squares similarity taking source (N, 3) points onto target (Umeyama)."""
    src = source.astype(np.float64)
    dst = target.astype(np.float64)
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    u, sing, vt = np.linalg.svd(dst_c.T @ src_c / len(src))
    sign = np.ones(3)
    sign[2] = np.sign(np.linalg.det(u) * np.linalg.det(vt)) or 1.0
    rotation = u @ np.diag(sign) @ vt
    scale = float((sing * sign).sum() / (src_c**2).sum(axis=1).mean())
    return Similarity(scale, rotation, dst_mean - scale * rotation @ src_mean)


def target_landmarks(
    template_pts: FloatArray, user_aligned: FloatArray, inner_weight: float, outline_weight: float
) -> FloatArray:
    """(478, 2) landmarks of the fused face.

    Inner points move toward the user by inner_weight, the face outline by outline_weight.
    The mouth and eyes keep the template's expression: how open they are and the curve of
    the mouth (a smile). The lips around the template's opening have the user's fullness
    and outline; the eyelids, and the lips' opening too, are the user's when both faces hold
    the feature about as open. Otherwise an eye moves as a rigid group: the template's eye
    at the user's centre and width.
    """
    shift = _expression_free_shift(template_pts, user_aligned)
    weights = _point_weights(inner_weight, outline_weight)
    target = template_pts + weights[:, None] * shift
    return _undo_folds(template_pts, target)


def openness(points: FloatArray, span: tuple[int, int, int, int]) -> float:
    """How open a feature is (mesh.MOUTH_OPENING, ...): its gap over its width."""
    top, bottom, a, b = span
    gap = np.linalg.norm(points[top, :2] - points[bottom, :2])
    width = cast("np.floating[Any] | float", max(np.linalg.norm(points[a, :2] - points[b, :2]), 1e-3))
    return float(gap / width)


def _point_weights(inner: float, outline: float) -> FloatArray:
    hops = mesh.hops_from_oval()
    ramp = np.clip(hops / 2.0, 0.0, 1.0)
    weights = np.empty(478, dtype=np.float32)
    weights[: mesh.MESH_POINTS] = outline + (inner - outline) * ramp
    weights[mesh.MESH_POINTS :] = inner
    return weights


def _expression_free_shift(template_pts: FloatArray, user_aligned: FloatArray) -> FloatArray:
    shift = (user_aligned - template_pts).astype(np.float32)
    mouth, right_eye, left_eye = ((np.array(group), corners) for group, corners in _feature_groups())
    # Where the user's lips cannot stand in for the template's (fuse keeps the template's
    # there), the template's mouth keeps its own shape and size too, hung from the user's
    # philtrum (a grin lifts the mouth's corners and the upper lip, hardly the philtrum).
    own_lips = _mouth_shift(template_pts, user_aligned, mouth[0], _mouth_shape_weight(template_pts, user_aligned))
    template_lips = user_aligned[_PHILTRUM] - template_pts[_PHILTRUM]
    shift[mouth[0]] = template_lips + user_lips_trust(template_pts, user_aligned) * (own_lips - template_lips)
    for (idx, corners), span in ((right_eye, mesh.RIGHT_EYE_OPENING), (left_eye, mesh.LEFT_EYE_OPENING)):
        rigid = _group_shift(template_pts, user_aligned, idx, corners)
        shift[idx] = rigid + _eye_shape_weight(template_pts, user_aligned, span) * (shift[idx] - rigid)
    shift[: mesh.MESH_POINTS] = _smoothing_operator() @ shift[: mesh.MESH_POINTS]
    return shift


def _feature_groups() -> list[tuple[tuple[int, ...], tuple[int, int]]]:
    """Mouth, right eye, left eye: their points and the two corners that place them."""
    return [
        (mesh.LIPS_OUTER + mesh.LIPS_INNER + _LIP_BODY, mesh.MOUTH_CORNERS),
        (mesh.RIGHT_EYE + mesh.RIGHT_IRIS, mesh.RIGHT_EYE_CORNERS),
        (mesh.LEFT_EYE + mesh.LEFT_IRIS, mesh.LEFT_EYE_CORNERS),
    ]


# Mesh points on the lips between the outer and inner contours.
_LIP_BODY = (
    72,
    73,
    74,
    183,
    42,
    41,
    38,
    11,
    12,
    268,
    271,
    272,
    303,
    302,
    407,
    184,
    62,
    76,
    77,
    96,
    89,
    90,
    179,
    180,
    86,
    85,
    15,
    16,
    316,
    315,
    403,
    404,
    320,
    319,
    325,
    307,
    292,
    306,
    408,
    304,
)
# The user's own opening of a feature comes in fully while the two faces' openness differs
# by up to the first value and not at all from the second: mouth, gap over width (closed
# ~0.0, parted ~0.05, open 0.1 and more); eyes, |log| of the ratio (so a squint or a closed
# eye stays the template's).
_MOUTH_SHAPE_GAP = (0.025, 0.075)
# The user's lips stand in for the template's while the user's mouth is at most this much
# more open, and not at all from the second value: a grin showing teeth (0.15 and more)
# into closed lips keeps the template's lips whole. A wider fade blended the two mouths
# there, the squeezed grin showing through the closed lips as a second, parted mouth.
_LIPS_GAP_TRUST = (0.10, 0.15)
_PHILTRUM = 164  # between the nose and the upper lip, on the midline
_EYE_SHAPE_LOG_RATIO = (0.15, 0.45)


def user_lips_trust(template_pts: FloatArray, user_pts: FloatArray) -> float:
    """How well the user's lips can stand in for the template's: 1, down to 0 as the
    user's mouth is far more open (a grin: lips stretched thin over teeth, which would be
    squeezed onto the template's closed lips)."""
    gap = openness(user_pts, mesh.MOUTH_OPENING) - openness(template_pts, mesh.MOUTH_OPENING)
    return 1.0 - float(masks.smoothstep(gap, *_LIPS_GAP_TRUST))


def _mouth_shape_weight(template_pts: FloatArray, user_aligned: FloatArray) -> float:
    gap = abs(openness(user_aligned, mesh.MOUTH_OPENING) - openness(template_pts, mesh.MOUTH_OPENING))
    return _fade(gap, *_MOUTH_SHAPE_GAP)


def eye_openness_mismatch(template_pts: FloatArray, user_pts: FloatArray, span: tuple[int, int, int, int]) -> float:
    """How differently open an eye is in the two faces: |log| of the openness ratio
    (0 alike; a squint against an open eye ~0.5, a closed eye against an open one > 1)."""
    ratio = (openness(user_pts, span) + 0.03) / (openness(template_pts, span) + 0.03)
    return abs(float(np.log(ratio)))


def _eye_shape_weight(template_pts: FloatArray, user_aligned: FloatArray, span: tuple[int, int, int, int]) -> float:
    return _fade(eye_openness_mismatch(template_pts, user_aligned, span), *_EYE_SHAPE_LOG_RATIO)


def _fade(value: float, full_below: float, none_above: float) -> float:
    return float(np.clip((none_above - value) / (none_above - full_below), 0.0, 1.0))


def _group_shift(
    template_pts: FloatArray, user_aligned: FloatArray, idx: IntArray, corners: tuple[int, int]
) -> FloatArray:
    """Shift of a group that takes the template's feature to the user's centre and width."""
    a, b = corners
    t_width = np.linalg.norm(template_pts[a] - template_pts[b])
    u_width = np.linalg.norm(user_aligned[a] - user_aligned[b])
    scale = _feature_scale(t_width, u_width)
    t_centre = (template_pts[a] + template_pts[b]) / 2
    u_centre = (user_aligned[a] + user_aligned[b]) / 2
    moved = u_centre + scale * (template_pts[idx] - t_centre)
    return cast(FloatArray, moved - template_pts[idx])


def _feature_scale(t_width: float | np.floating[Any], u_width: float | np.floating[Any]) -> float:
    return float(np.clip(u_width / max(t_width, 1e-3), 0.7, 1.4))


def _mouth_shift(template_pts: FloatArray, user_aligned: FloatArray, idx: IntArray, own_opening: float) -> FloatArray:
    """Shift of the mouth's points to the user's lips laid on the template's mouth.

    The template's mouth line stays (its curve, a smile or a downturn, and its tilt), and
    so does its opening (the inner lips) unless `own_opening` (0..1) brings in the user's;
    around that opening each lip has the user's fullness and outline. Placed at the user's
    centre and width, as _group_shift places a rigid group."""
    t_frame, u_frame = _MouthFrame.of(template_pts), _MouthFrame.of(user_aligned)
    (t_x, t_y), (u_x, u_y) = t_frame.to_local(template_pts[idx]).T, u_frame.to_local(user_aligned[idx]).T
    upper = t_y <= t_frame.line_at(t_x)
    u_inner = u_frame.inner_lip_at(u_x, upper)
    fullness = u_y - u_inner  # each point's height over (or under) its own inner lip
    t_opening = t_frame.inner_lip_at(t_x, upper)
    u_opening = u_inner + t_frame.line_at(u_x) - u_frame.line_at(u_x)  # on the template's line
    x = t_x + own_opening * (u_x - t_x)
    y = t_opening + own_opening * (u_opening - t_opening) + fullness
    scale = _feature_scale(t_frame.half_width, u_frame.half_width)
    moved = u_frame.centre + scale * t_frame.half_width * (x[:, None] * t_frame.x_axis + y[:, None] * t_frame.y_axis)
    return cast(FloatArray, (moved - template_pts[idx]).astype(np.float32))


@dataclass(frozen=True)
class _MouthFrame:
    """Coordinates of a mouth: origin between the corners, x toward the second corner,
    unit half the mouth's width. Its inner lips and its line (the middle between them)
    are kept as y of x."""

    centre: FloatArray
    half_width: float
    x_axis: FloatArray
    y_axis: FloatArray
    upper: tuple[FloatArray, FloatArray] = (np.zeros(1), np.zeros(1))  # inner upper lip: x, y
    lower: tuple[FloatArray, FloatArray] = (np.zeros(1), np.zeros(1))

    @classmethod
    def of(cls, points: FloatArray) -> "_MouthFrame":
        a, b = (points[i, :2].astype(np.float64) for i in mesh.MOUTH_CORNERS)
        half = (b - a) / 2
        half_width = max(float(np.linalg.norm(half)), 1e-3)
        x_axis = half / half_width
        frame = cls((a + b) / 2, half_width, x_axis, np.array([-x_axis[1], x_axis[0]]))
        upper, lower = (frame.to_local(points[list(lip)]) for lip in (mesh.LIPS_INNER_UPPER, mesh.LIPS_INNER_LOWER))
        return cls(frame.centre, half_width, x_axis, frame.y_axis, _by_x(upper), _by_x(lower))

    def to_local(self, points: FloatArray) -> FloatArray:
        offset = points[:, :2] - self.centre
        return cast(FloatArray, np.stack([offset @ self.x_axis, offset @ self.y_axis], axis=-1) / self.half_width)

    def line_at(self, x: FloatArray) -> FloatArray:
        return (self.inner_lip_at(x, True) + self.inner_lip_at(x, False)) / 2

    def inner_lip_at(self, x: FloatArray, upper: BoolArray | bool) -> FloatArray:
        """y of the inner upper lip (where `upper`) or inner lower lip at x."""
        return np.where(upper, np.interp(x, *self.upper), np.interp(x, *self.lower))


def _by_x(points: FloatArray) -> tuple[FloatArray, FloatArray]:
    order = np.argsort(points[:, 0])
    return points[order, 0], points[order, 1]


@lru_cache(maxsize=1)
def _smoothing_operator(rounds: int = 6) -> FloatArray:
    """(468, 468) linear map of the mesh points' shifts: `rounds` times, each free point's
    shift is averaged half with its neighbours' mean, so that expression-bound differences
    (a cheek raised by a smile) fade while proportions stay; the feature groups (mouth,
    eyes) keep theirs. Linear in the shifts, so it is worked out once."""
    fixed = np.zeros(mesh.MESH_POINTS, dtype=bool)
    for group, _ in _feature_groups():
        fixed[[i for i in group if i < mesh.MESH_POINTS]] = True
    step = np.eye(mesh.MESH_POINTS, dtype=np.float64)
    step[~fixed] = 0.5 * step[~fixed] + 0.5 * mesh.neighbour_mean_matrix()[~fixed]
    return np.linalg.matrix_power(step, rounds).astype(np.float32)


def _undo_folds(template_pts: FloatArray, target: FloatArray) -> FloatArray:
    """Pull points back toward the template until no mesh triangle flips or collapses.

    Only the corners of offending triangles are pulled back (halving their move each
    round), so one tight spot does not cancel the shape change of the whole face."""
    tri = mesh.mesh_triangles()
    base = signed_areas(template_pts, tri)
    usable = np.abs(base) > 0.5
    tri_used, base_used = tri[usable], base[usable]
    move = (target - template_pts).astype(np.float32)
    for _ in range(40):
        ratio = signed_areas(template_pts + move, tri_used) / base_used
        bad = ratio <= 0.1
        if not bad.any():
            return (template_pts + move).astype(np.float32)
        corners = np.unique(tri_used[bad])
        move[corners] *= 0.5
    return _scaled_back(template_pts, target, tri_used, base_used)


def _scaled_back(template_pts: FloatArray, target: FloatArray, tri: IntArray, base: FloatArray) -> FloatArray:
    """The whole move scaled down until nothing folds (the fallback)."""
    for step in np.linspace(1.0, 0.0, 9):
        candidate = template_pts + step * (target - template_pts)
        if (signed_areas(candidate, tri) / base).min(initial=1.0) > 0.1:
            return cast(FloatArray, candidate.astype(np.float32))
    return template_pts.astype(np.float32)
