"""STUB (to be replaced by the media work): bytes to RGB pixels."""

from __future__ import annotations

import base64

import cv2
import numpy as np

from facefuse.errors import Err, FacefuseError
from facefuse.media.limits import ImageLimits


def decode_base64(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=False)
    except Exception as exc:
        raise FacefuseError(Err.INVALID_MEDIA_DATA, "media_data is not valid base64") from exc


def decode_image(data: bytes, limits: ImageLimits = ImageLimits()) -> np.ndarray:
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise FacefuseError(Err.IMAGE_DECODE_ERROR, "the image could not be decoded")
    return np.ascontiguousarray(img[:, :, ::-1])
