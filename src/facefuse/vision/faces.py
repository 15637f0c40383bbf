"""Faces found in an image: the data every other part works with."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facefuse.arrays import FloatArray


@dataclass(frozen=True)
class Face:
    """One face: 478 mediapipe landmarks in pixel coordinates plus its head pose.

    landmarks[:, 0:2] are x, y in pixels of the image the face was found in;
    landmarks[:, 2] is relative depth in the same pixel units (smaller = nearer).
    Angles are degrees: yaw > 0 turns to the image's right, pitch > 0 nods down,
    roll > 0 tilts clockwise.
    """

    landmarks: FloatArray  # (478, 3) float32
    score: float
    yaw: float
    pitch: float
    roll: float

    @property
    def points(self) -> FloatArray:
        """(478, 2) float32 pixel coordinates."""
        return self.landmarks[:, :2]

    @property
    def box(self) -> tuple[float, float, float, float]:
        """Square x, y, side around the landmarks (the face box of the image rules)."""
        x0, y0 = self.points.min(axis=0)
        x1, y1 = self.points.max(axis=0)
        side = float(max(x1 - x0, y1 - y0))
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        return float(cx - side / 2), float(cy - side / 2), side, side

    @property
    def size(self) -> float:
        return self.box[2]

    @property
    def center(self) -> tuple[float, float]:
        x, y, w, h = self.box
        return x + w / 2, y + h / 2

    def to_dict(self) -> dict[str, object]:
        return {
            "landmarks": np.round(self.landmarks.astype(np.float64), 3).tolist(),
            "score": self.score,
            "yaw": self.yaw,
            "pitch": self.pitch,
            "roll": self.roll,
        }

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> "Face":
        return cls(
            landmarks=np.asarray(data["landmarks"], dtype=np.float32),
            score=float(data["score"]),  # type: ignore[arg-type]
            yaw=float(data["yaw"]),  # type: ignore[arg-type]
            pitch=float(data["pitch"]),  # type: ignore[arg-type]
            roll=float(data["roll"]),  # type: ignore[arg-type]
        )
