"""What a person sees of a template before using it: a small JPEG and where its faces are.

The console's gallery and its face picker show these (docs/api.md B.11). A thumbnail is
made once per stored photo (template id and revision) and kept in a small cache of the
HTTP process, so a gallery shown again costs no decoding.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import cv2
import numpy as np
from numpy.typing import NDArray

from facefuse.media.encode import encode_jpeg
from facefuse.templates.registry import TemplateInfo, TemplateRegistry
from facefuse.vision.faces import Face

THUMBNAIL_SIDE = 480  # long side in pixels: sharp in a gallery tile and as the "before" of a result on a phone
THUMBNAIL_QUALITY = 85
CACHED_THUMBNAILS = 256  # about 40 KB each


def make_thumbnail(image: NDArray[np.uint8], side: int = THUMBNAIL_SIDE) -> bytes:
    """The photo shrunk so its long side is at most `side` (never enlarged), as JPEG bytes."""
    height, width = image.shape[:2]
    scale = side / max(height, width)
    if scale < 1:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        # Area averaging: no aliasing when shrinking.
        return encode_jpeg(cv2.resize(image, size, interpolation=cv2.INTER_AREA), THUMBNAIL_QUALITY, full_chroma=False)
    return encode_jpeg(image, THUMBNAIL_QUALITY, full_chroma=False)


def face_boxes(faces: list[Face]) -> list[dict[str, int]]:
    """Each face's box (the square of the image rules) in whole pixels, in the faces' order."""
    boxes = []
    for face in faces:
        x, y, width, height = face.box
        boxes.append({"x": round(x), "y": round(y), "width": round(width), "height": round(height)})
    return boxes


def template_view(registry: TemplateRegistry, info: TemplateInfo) -> dict[str, object]:
    """The API's view of a template (docs/api.md B.1): where its faces are and its default strengths too."""
    return {
        **info.to_dict(),
        "face_boxes": face_boxes(registry.faces(info) or []),
        "fuse_degree": info.fuse_degree,
        "shape_degree": info.shape_degree,
    }


class ThumbnailCache:
    """Thumbnails by (template id, revision), least recently used dropped first; thread-safe."""

    def __init__(self, max_items: int = CACHED_THUMBNAILS) -> None:
        self.max_items = max_items
        self._items: OrderedDict[tuple[str, str], bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str]) -> bytes | None:
        with self._lock:
            data = self._items.get(key)
            if data is not None:
                self._items.move_to_end(key)
            return data

    def put(self, key: tuple[str, str], data: bytes) -> None:
        with self._lock:
            self._items[key] = data
            self._items.move_to_end(key)
            while len(self._items) > self.max_items:
                self._items.popitem(last=False)
