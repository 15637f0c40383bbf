"""The numpy array types passed between the parts, one name for each kind.

numpy's type stubs widen float32 arithmetic to `floating[Any]` (float32 * float is typed
`NDArray[floating[Any]]`), so the float arrays are typed `floating[Any]`; each function's
docstring says which precision it takes or gives (float32 for pixels, masks and landmarks).
OpenCV's stubs type every result `MatLike` (integer or floating elements), so a result that
goes on as one of these kinds is `typing.cast` where it leaves cv2.
"""

from __future__ import annotations

from typing import Any, TypeAlias, TypeVar

import numpy as np
import numpy.typing as npt

UInt8Array: TypeAlias = npt.NDArray[np.uint8]
"""Pixels: RGB (h, w, 3) or one channel (h, w), C-contiguous."""

FloatArray: TypeAlias = npt.NDArray[np.floating[Any]]
"""Floats: pixels at work, masks, landmarks and points, affine matrices."""

BoolArray: TypeAlias = npt.NDArray[np.bool_]
"""Where something holds, pixel by pixel or point by point."""

IntArray: TypeAlias = npt.NDArray[np.integer[Any]]
"""Indices, labels and integer pixel coordinates."""

ImageArray: TypeAlias = UInt8Array | FloatArray
"""Pixels as decoded (uint8) or at work (float32), where either is taken."""

ImageT = TypeVar("ImageT", UInt8Array, FloatArray)
"""An image whose pixel type a function keeps (what comes in uint8 goes out uint8)."""
