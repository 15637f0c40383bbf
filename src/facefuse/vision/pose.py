"""Head pose from landmarks."""

from __future__ import annotations

import numpy as np


def head_pose(landmarks: np.ndarray) -> tuple[float, float, float]:
    """Rough yaw, pitch, roll in degrees from 3-D landmarks (placeholder geometry)."""
    pts = landmarks.astype(np.float64)
    left_eye, right_eye = pts[33], pts[263]
    nose, chin, forehead = pts[1], pts[152], pts[10]
    eye_vec = right_eye - left_eye
    roll = float(np.degrees(np.arctan2(eye_vec[1], eye_vec[0])))
    yaw = float(np.degrees(np.arctan2(eye_vec[2], eye_vec[0])))
    up = forehead - chin
    pitch = float(np.degrees(np.arctan2(up[2], -up[1])))
    return yaw, pitch, roll
