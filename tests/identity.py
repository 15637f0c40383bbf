"""An independent judge of who is in a photo: dlib's 128-D face embedding (the [eval] extra)."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

SAME_PERSON = 0.6  # dlib's own threshold: embeddings closer than this are one person


@lru_cache(maxsize=1)
def _models():
    import dlib
    import face_recognition_models as frm

    return (
        dlib.get_frontal_face_detector(),
        dlib.shape_predictor(frm.pose_predictor_model_location()),
        dlib.face_recognition_model_v1(frm.face_recognition_model_location()),
    )


def embedding(rgb: np.ndarray) -> np.ndarray:
    """The embedding of the largest face dlib finds (upsampling once if needed)."""
    detector, predictor, encoder = _models()
    image = np.ascontiguousarray(rgb)
    boxes = list(detector(image, 1)) or list(detector(image, 2))
    assert boxes, "the judge found no face"
    box = max(boxes, key=lambda b: b.width() * b.height())
    return np.asarray(encoder.compute_face_descriptor(image, predictor(image, box), 1))


def distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(embedding(a) - embedding(b)))
