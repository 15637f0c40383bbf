"""Time the media codecs against the alternatives: `python benchmarks/decoder_timings.py PHOTO.jpg`.

The photo is resized to about 1 MP and 4 MP and saved as baseline and progressive JPEG
(quality 90, 4:2:0) and as PNG; each step prints the best of N runs in milliseconds.
Pillow and the reversed-view OpenCV encoder appear only as comparisons.
"""

from __future__ import annotations

import argparse
import base64
import io
import time
from collections.abc import Callable
from functools import partial

import cv2
import numpy as np
from PIL import Image

from facefuse.media.decode import decode_base64, decode_image, decode_image_scaled
from facefuse.media.encode import encode_jpeg
from facefuse.media.limits import ImageLimits

SIZES = {"1MP": (1224, 816), "4MP": (2448, 1632)}
LIMITS = ImageLimits(max_bytes=64 * 1024 * 1024)  # time the codecs, not the 2 MB rule


def best_ms(step: Callable[[], object], runs: int) -> float:
    step()
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        step()
        best = min(best, time.perf_counter() - started)
    return best * 1000


def pillow_decode(data: bytes) -> np.ndarray:
    """Pillow's cheapest route to an array (read-only, and RGB already for these files)."""
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        return np.asarray(image)


def pillow_encode(rgb: np.ndarray, quality: int = 92) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def reversed_view_encode(rgb: np.ndarray, quality: int = 92) -> bytes:
    return cv2.imencode(".jpg", rgb[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])[1].tobytes()


def variants(photo: Image.Image) -> dict[str, bytes]:
    files = {}
    for size_name, size in SIZES.items():
        resized = photo.resize(size, Image.Resampling.LANCZOS)
        for kind, options in (("baseline", {}), ("progressive", {"progressive": True})):
            buffer = io.BytesIO()
            resized.save(buffer, "JPEG", quality=90, **options)
            files[f"{size_name} {kind} JPEG"] = buffer.getvalue()
        buffer = io.BytesIO()
        resized.save(buffer, "PNG")
        files[f"{size_name} PNG"] = buffer.getvalue()
    return files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("photo", help="any JPEG or PNG photo")
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    cv2.setNumThreads(1)  # what one request gets on a worker thread
    with Image.open(args.photo) as opened:
        photo = opened.convert("RGB")
    print(f"{'file':24} {'bytes':>9} {'decode_image':>13} {'Pillow':>8} {'scaled 1024':>12}")
    for name, data in variants(photo).items():
        print(
            f"{name:24} {len(data):9d} {best_ms(partial(decode_image, data, LIMITS), args.runs):11.1f}ms"
            f" {best_ms(partial(pillow_decode, data), args.runs):6.1f}ms"
            f" {best_ms(partial(decode_image_scaled, data, 1024, LIMITS), args.runs):10.1f}ms"
        )
    print(f"\n{'pixels':24} {'encode_jpeg':>13} {'Pillow':>8} {'cv2 [::-1]':>12}   (quality 92)")
    for size_name, size in SIZES.items():
        rgb = np.ascontiguousarray(photo.resize(size))
        print(
            f"{size_name:24} {best_ms(partial(encode_jpeg, rgb), args.runs):11.1f}ms"
            f" {best_ms(partial(pillow_encode, rgb), args.runs):6.1f}ms"
            f" {best_ms(partial(reversed_view_encode, rgb), args.runs):10.1f}ms"
        )
    text = base64.b64encode(np.random.default_rng(0).bytes(2 * 1024 * 1024)).decode()
    print(f"\ndecode_base64 of 2 MB: {best_ms(partial(decode_base64, text, 2 * 1024 * 1024), args.runs):.1f}ms")


if __name__ == "__main__":
    main()
