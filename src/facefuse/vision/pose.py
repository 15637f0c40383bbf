"""Head pose (yaw, pitch, roll in degrees) from the 3-D face-mesh landmarks.

The mesh's z is depth in the same pixel units as x and y, so the face's own axes can be
read off the landmarks: across the face (cheek 234 to cheek 454) and down it (forehead 10
to chin 152). Those two, made orthogonal, give a rotation whose angles are the pose; it
does not depend on how the photo is rotated in plane (roll). mediapipe does not ship its
canonical face model in the wheel, so the neutral pitch (a frontal face's chin sits a
little nearer the camera than its forehead) was measured instead: the median over the
`frontal` photos of ../shared/faces (docs/vision.md has the table).
"""

from __future__ import annotations

import numpy as np

from facefuse.arrays import FloatArray

NEUTRAL_PITCH = 7.0  # degrees the raw forehead-to-chin angle reads on a level frontal face
CHEEK_RIGHT, CHEEK_LEFT, FOREHEAD, CHIN = 234, 454, 10, 152


def head_pose(landmarks: FloatArray) -> tuple[float, float, float]:
    """Yaw, pitch, roll in degrees: yaw > 0 turns to the image's right, pitch > 0 nods down,
    roll > 0 tilts clockwise in the image."""
    pts = landmarks.astype(np.float64)
    across = _unit(pts[CHEEK_LEFT] - pts[CHEEK_RIGHT])
    down = pts[CHIN] - pts[FOREHEAD]
    down = _unit(down - np.dot(down, across) * across)
    yaw = np.degrees(np.arcsin(np.clip(across[2], -1, 1)))
    pitch = np.degrees(np.arcsin(np.clip(down[2], -1, 1))) - NEUTRAL_PITCH
    roll = np.degrees(np.arctan2(across[1], across[0]))
    return float(yaw), float(pitch), float(roll)


def _unit(v: FloatArray) -> FloatArray:
    n = float(np.linalg.norm(v))
    return v / n if n > 1e-9 else v
