"""detect_faces timing on one photo, optionally paired against another source tree's.

    PYTHONPATH=src .venv/bin/python benchmarks/detect_timing.py [--against OTHER/src]
        [--photo deepface__img2.jpg] [--megapixels 1] [--every-face] [--runs 300]

The default input is the request path's case: deepface__img2.jpg (a frontal portrait)
resized with Lanczos to 1 MP (1155x866, as benchmarks/perf.py's 1 MP input). With
--against (e.g. the src folder of `git archive HEAD~1 src`), that tree's
`facefuse.vision.detect` is loaded too and the two alternate run by run, the order
swapped each time, so both see the machine alike; the paired differences' median is the
number to read on a busy machine. Each module keeps its own mediapipe graphs.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
from pathlib import Path
from types import ModuleType

import cv2
import numpy as np

from facefuse.media.decode import decode_image
from facefuse.media.limits import ImageLimits
from facefuse.vision import detect

REPO = Path(__file__).resolve().parents[1]
DEFAULT_FACES = REPO.parent / "shared" / "faces"
WARM_UP_RUNS = 5


def load_detect(src: Path) -> ModuleType:
    """`facefuse/vision/detect.py` of another tree, as a module of its own name."""
    spec = importlib.util.spec_from_file_location("other_detect", src / "facefuse" / "vision" / "detect.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module


def photo_at(path: Path, megapixels: float | None) -> np.ndarray:
    rgb = decode_image(path.read_bytes(), ImageLimits(max_bytes=1 << 30, max_side=1 << 16))
    if megapixels is None:
        return rgb
    scale = (megapixels * 1e6 / (rgb.shape[0] * rgb.shape[1])) ** 0.5
    return np.ascontiguousarray(cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_LANCZOS4))


def detected(module: ModuleType, rgb: np.ndarray, every_face: bool) -> list:
    return module.detect_faces(rgb, every_face=True) if every_face else module.detect_faces(rgb)


def timed(module: ModuleType, rgb: np.ndarray, every_face: bool) -> float:
    started = time.perf_counter()
    detected(module, rgb, every_face)
    return (time.perf_counter() - started) * 1e3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces-dir", type=Path, default=DEFAULT_FACES)
    parser.add_argument("--photo", default="deepface__img2.jpg")
    parser.add_argument("--megapixels", type=float, default=1.0, help="0: the photo's own size")
    parser.add_argument(
        "--every-face", action="store_true", help="this tree in the template mode (the other tree as a user photo)"
    )
    parser.add_argument("--against", type=Path, help="another tree's src folder, run alternately")
    parser.add_argument("--runs", type=int, default=300)
    args = parser.parse_args(argv)
    rgb = photo_at(args.faces_dir / args.photo, args.megapixels or None)
    modules = {"this": detect}
    if args.against is not None:
        modules["other"] = load_detect(args.against)
    every_face = {"this": args.every_face, "other": False}
    for name, module in modules.items():
        for _ in range(WARM_UP_RUNS):
            faces = detected(module, rgb, every_face[name])
        mode = "every_face" if every_face[name] else "a user photo's"
        print(f"{name} ({mode}): {len(faces)} face(s) in {rgb.shape[1]}x{rgb.shape[0]}")
    times: dict[str, list[float]] = {name: [] for name in modules}
    for run in range(args.runs):
        order = list(modules) if run % 2 == 0 else list(reversed(modules))
        for name in order:
            times[name].append(timed(modules[name], rgb, every_face[name]))
    for name, values in times.items():
        print(
            f"{name}: median {statistics.median(values):.2f} ms, 25th percentile "
            f"{np.percentile(values, 25):.2f} ms ({len(values)} runs)"
        )
    if "other" in times:
        paired = np.subtract(times["this"], times["other"])
        print(f"this - other, median of the paired differences: {np.median(paired):+.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
