"""Face detection and 478-point landmarks with the models mediapipe ships."""

from __future__ import annotations

import threading

import numpy as np

from facefuse.vision.faces import Face
from facefuse.vision.pose import head_pose

_local = threading.local()


def _mesh(max_faces: int):
    """One FaceMesh graph per thread: mediapipe graphs are not thread-safe."""
    from mediapipe.python.solutions import face_mesh

    cache = getattr(_local, "meshes", None)
    if cache is None:
        cache = _local.meshes = {}
    if max_faces not in cache:
        cache[max_faces] = face_mesh.FaceMesh(
            static_image_mode=True,
            max_num_faces=max_faces,
            refine_landmarks=True,
            min_detection_confidence=0.5,
        )
    return cache[max_faces]


def detect_faces(rgb: np.ndarray, max_faces: int = 8) -> list[Face]:
    """All faces in an RGB uint8 image, ordered left to right."""
    h, w = rgb.shape[:2]
    result = _mesh(max_faces).process(np.ascontiguousarray(rgb))
    faces = []
    for lms in result.multi_face_landmarks or []:
        pts = np.array([(p.x * w, p.y * h, p.z * w) for p in lms.landmark], dtype=np.float32)
        yaw, pitch, roll = head_pose(pts)
        faces.append(Face(landmarks=pts, score=1.0, yaw=yaw, pitch=pitch, roll=roll))
    return sorted(faces, key=lambda f: f.center[0])
