"""The two reference methods of the quality issue, run through the same judge as facefuse.

    .venv/bin/python benchmarks/references.py [--pairs 60] [--out references.json]

The issue measured two well-known approaches on ../shared/faces with the quality
benchmark's definitions and set facefuse's targets against them:

  classical   dlib's 68 landmarks, a similarity fitted on brows, eyes, nose and mouth,
              the colour corrected by the ratio of blurred images, a feathered mask over
              the convex hulls of eyes + brows and nose + mouth
  mesh        a plain full-face mesh warp (mediapipe's 468 points), the Lab mean and
              standard deviation of the template's face, a Poisson clone of the oval

Both are written here from those descriptions (benchmark code, never part of the
service), run on the same deterministic pairs as benchmarks/quality.py, encoded as the
service encodes, and judged by the same `Benchmark.score`. Beside the issue's published
numbers they show whether this judge reproduces the issue's, metric by metric.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import quality  # noqa: E402  (the judge, the pairs and the scoring)

from facefuse.fusion import mesh, warp  # noqa: E402
from facefuse.fusion.geometry import fit_similarity  # noqa: E402
from facefuse.media.decode import decode_image  # noqa: E402
from facefuse.media.encode import encode_jpeg  # noqa: E402
from facefuse.vision.detect import detect_faces  # noqa: E402

# The numbers for the two references (the same definitions, 60 pairs).
PUBLISHED = {
    "classical": {
        "success": 1.0,
        "id_transfer": 0.517,
        "top1": 0.683,
        "psnr_bg": 50.1,
        "pose": 0.043,
        "tone_median": 1.1,
        "tone_p90": 2.3,
        "gray_kept": 0.0,
    },
    "mesh": {
        "id_transfer": 0.833,
        "top1": 0.933,
        "psnr_bg": 53.4,
        "pose": 0.050,
        "tone_median": 7.6,
        "tone_p90": 13.3,
        "gray_kept": 0.0,
    },
}

# dlib's 68 points
_BROWS_EYES = list(range(17, 27)) + list(range(36, 48))
_NOSE_MOUTH = list(range(27, 36)) + list(range(48, 68))
_ALIGN = list(range(17, 68))
_BLUR_OF_EYE_DISTANCE = 0.6  # the colour correction's blur kernel, of the eye centres' distance
_FEATHER_PX = 11  # the mask's feather kernel, in pixels: grown by it, then blurred by it


class NoFace(Exception):
    """A reference found no face in a photo (its pair counts as failed)."""


def classical_swap(user: np.ndarray, template: np.ndarray) -> np.ndarray:
    """The classical landmark swap: only the user's eyes, brows, nose and mouth come over."""
    u_points, t_points = _dlib_points(user), _dlib_points(template)
    to_template = _similarity(u_points[_ALIGN], t_points[_ALIGN])
    h, w = template.shape[:2]
    warped = cv2.warpAffine(user, to_template, (w, h), borderMode=cv2.BORDER_REFLECT)
    warped_points = u_points @ to_template[:, :2].T + to_template[:, 2]
    mask = np.maximum(_hulls_mask((h, w), t_points), _hulls_mask((h, w), warped_points))
    kernel = (_FEATHER_PX, _FEATHER_PX)
    mask = (cv2.GaussianBlur(mask, kernel, 0) > 0).astype(np.float32)
    mask = cv2.GaussianBlur(mask, kernel, 0)[..., None]
    blur = int(_BLUR_OF_EYE_DISTANCE * quality.eye_centres_distance(t_points)) | 1
    t_blur = cv2.GaussianBlur(template.astype(np.float32), (blur, blur), 0)
    u_blur = cv2.GaussianBlur(warped.astype(np.float32), (blur, blur), 0)
    u_blur[u_blur <= 1.0] += 128  # no division by a black pixel
    corrected = warped.astype(np.float32) * t_blur / u_blur
    return np.clip(template * (1 - mask) + corrected * mask, 0, 255).astype(np.uint8)


def mesh_poisson(user: np.ndarray, template: np.ndarray) -> np.ndarray:
    """The plain mesh warp: the user's whole face warped onto the template's mesh, given the
    template face's Lab mean and spread, Poisson-cloned inside the template's face oval."""
    u_points, t_points = _mesh_points(user), _mesh_points(template)
    h, w = template.shape[:2]
    triangles = mesh.mesh_triangles()
    order = np.arange(len(triangles))
    raster = warp.rasterize(t_points, triangles, (h, w), 4.0, order)
    fallback = cv2.estimateAffinePartial2D(t_points, u_points)[0].astype(np.float32)
    warped = warp.remap(user, warp.dense_map(raster, u_points, triangles, fallback))
    oval = np.zeros((h, w), np.uint8)
    cv2.fillPoly(oval, [np.round(t_points[list(mesh.FACE_OVAL)]).astype(np.int32)], 255)
    inside = oval > 0
    u_lab = cv2.cvtColor(warped, cv2.COLOR_RGB2LAB).astype(np.float32)
    t_lab = cv2.cvtColor(template, cv2.COLOR_RGB2LAB).astype(np.float32)
    u_mean, u_std = u_lab[inside].mean(axis=0), u_lab[inside].std(axis=0)
    t_mean, t_std = t_lab[inside].mean(axis=0), t_lab[inside].std(axis=0)
    toned = (u_lab - u_mean) * (t_std / np.maximum(u_std, 1e-3)) + t_mean
    toned = cv2.cvtColor(np.clip(toned, 0, 255).astype(np.uint8), cv2.COLOR_LAB2RGB)
    ys, xs = np.nonzero(inside)
    centre = (int((xs.min() + xs.max() + 1) // 2), int((ys.min() + ys.max() + 1) // 2))
    cloned = cv2.seamlessClone(
        np.ascontiguousarray(toned[..., ::-1]),
        np.ascontiguousarray(template[..., ::-1]),
        oval,
        centre,
        cv2.NORMAL_CLONE,
    )
    return np.ascontiguousarray(cloned[..., ::-1])


METHODS: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {"classical": classical_swap, "mesh": mesh_poisson}


def _dlib_points(rgb: np.ndarray) -> np.ndarray:
    judged = quality.judge(rgb)
    if judged is None:
        raise NoFace("dlib found no face")
    return judged.landmarks.astype(np.float32)


def _mesh_points(rgb: np.ndarray) -> np.ndarray:
    faces = detect_faces(rgb)
    if not faces:
        raise NoFace("mediapipe found no face")
    return max(faces, key=lambda f: f.size).points.astype(np.float32)


def _similarity(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(2, 3) least-squares similarity (Procrustes) taking source points onto target points."""
    flat = fit_similarity(*(np.hstack([p, np.zeros((len(p), 1), p.dtype)]) for p in (source, target)))
    return np.hstack([flat.scale * flat.rotation[:2, :2], flat.shift[:2, None]]).astype(np.float32)


def _hulls_mask(shape: tuple[int, int], points: np.ndarray) -> np.ndarray:
    mask = np.zeros(shape, np.float32)
    for group in (_BROWS_EYES, _NOSE_MOUTH):
        cv2.fillConvexPoly(mask, cv2.convexHull(np.round(points[group]).astype(np.int32)), 1.0)
    return mask


def run(method: str, bench: quality.Benchmark, pairs: list, photos: list) -> list[quality.PairResult]:
    fuse = METHODS[method]
    results = []
    for index, (user, template) in enumerate(pairs):
        for gray in (False, True) if index % quality.GRAY_EVERY == 0 else (False,):
            template_rgb = bench.pixels(template.file)
            if gray:
                template_rgb = np.repeat(cv2.cvtColor(template_rgb, cv2.COLOR_RGB2GRAY)[:, :, None], 3, axis=2)
            scored = quality.PairResult(user.file, template.file, gray, True)
            started = time.perf_counter()
            try:
                fused = fuse(bench.pixels(user.file), template_rgb)
            except NoFace as error:
                scored.ok, scored.error = False, str(error)
                results.append(scored)
                continue
            scored.ms = (time.perf_counter() - started) * 1000
            result = decode_image(encode_jpeg(fused))
            bench.score(scored, result, template_rgb, user, template, photos)
            results.append(scored)
            print(
                f"{method:9s} {len(results):3d} {'gray ' if gray else ''}{user.file[:30]:30s} -> "
                f"{template.file[:30]:30s} d_user={scored.d_user:.3f} pose={scored.pose:.3f} "
                f"tone={scored.tone:.2f}",
                file=sys.stderr,
            )
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces-dir", type=Path, default=quality.DEFAULT_FACES)
    parser.add_argument("--pairs", type=int, default=60)
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--out", type=Path, default=Path("references.json"))
    args = parser.parse_args(argv)

    photos = quality.valid_photos(args.faces_dir)
    pairs = quality.make_pairs(photos, args.pairs)
    bench = quality.Benchmark(args.faces_dir, None, None)
    report = {}
    for method in args.methods.split(","):
        results = run(method, bench, pairs, photos)
        summary, published = quality.summarise(results, {}), PUBLISHED[method]
        report[method] = {"summary": asdict(summary), "published": published, "pairs": [asdict(r) for r in results]}
        line = "  ".join(
            f"{name} {getattr(summary, name):.3f}" + (f" ({published[name]})" if name in published else "")
            for name in (
                "success",
                "id_transfer",
                "top1",
                "psnr_bg",
                "pose",
                "pose_eye_centres",
                "tone_median",
                "tone_p90",
                "gray_kept",
            )
        )
        print(f"{method}: {line}  {summary.ms_median:.0f} ms/pair  (the issue's numbers in parentheses)")
    args.out.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
