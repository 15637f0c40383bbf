"""Group recall: of the faces at or above the minimum size in a group photo, how many does
registering the photo as a template find?

    PYTHONPATH=src .venv/bin/python benchmarks/group_recall.py [--faces-dir DIR]
        [--judge-cache FILE.json] [PHOTO ...]

Without PHOTO: every `group` / `multi_face` photo of ../shared/faces/MANIFEST.tsv.
Needs the [eval] extra (dlib-bin, face_recognition_models): an independent judge, never a
dependency of the service.

- Expected: the faces dlib's CNN detector (mmod_human_face_detector) finds, on the photo
  upsampled so that faces well under the minimum are seen, whose size as the service
  measures it (`Face.size`, the square around the 478 landmarks) is at least
  `FaceRules().min_face_side(image)` (48 px for these photos). A face the template holds
  has that size; one it misses is estimated from dlib's box, which is tighter than the
  service's: side ~ SERVICE_PER_DLIB_SIDE x dlib's side.
- Found: a face of the registered template whose centre lies inside an expected face's
  dlib box (each template face answers for one judge face at most).
- `recall(photo) -> (found, expected)` is what other benchmarks call; the judge's faces of
  a photo are computed once per process (dlib's CNN takes ~90 s on bald_guys at 2x), and
  kept in --judge-cache across runs.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from facefuse.media.decode import decode_image
from facefuse.storage.blobs import LocalBlobStore
from facefuse.storage.db import SqliteDatabase
from facefuse.templates.registry import TemplateRegistry
from facefuse.vision.checks import FaceRules
from facefuse.vision.faces import Face

REPO = Path(__file__).resolve().parents[1]
DEFAULT_FACES = REPO.parent / "shared" / "faces"
GROUP_CATEGORIES = {"group", "multi_face"}
# Face.size / dlib CNN box side, median over 25 `frontal` photos (10th-90th percentile
# 1.08-1.30): dlib's box runs from the brows to the chin, the mesh's from the forehead.
SERVICE_PER_DLIB_SIDE = 1.15
# dlib's CNN sees faces down to ~80 px at 1x; each upsampling halves that. Upsampled until
# that is under JUDGE_SMALLEST_PX, and no further than JUDGE_MAX_SIDE (time and memory).
JUDGE_BASE_PX = 80
JUDGE_SMALLEST_PX = 30
JUDGE_MAX_SIDE = 4000
# mmod confidences: the faces of these photos score 1.01-1.12; the one box under this
# (bald_guys, 0.24) straddles two photos of the collage, a chin and a forehead.
JUDGE_MIN_CONFIDENCE = 0.5


@dataclass(frozen=True)
class JudgeFace:
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 in image pixels
    confidence: float

    @property
    def side(self) -> int:
        return self.box[2] - self.box[0]

    @property
    def service_side(self) -> float:
        return self.side * SERVICE_PER_DLIB_SIDE

    def holds(self, face: Face) -> bool:
        cx, cy = face.center
        return self.box[0] <= cx <= self.box[2] and self.box[1] <= cy <= self.box[3]


@dataclass(frozen=True)
class PhotoRecall:
    photo: str
    min_side: float
    judged: list[JudgeFace]  # every face the judge found, large first
    registered: list[Face]  # the template's faces
    matches: dict[int, int]  # judged index -> registered index

    @property
    def expected(self) -> list[int]:
        """The judge's faces at or above the minimum, by the estimate from dlib's box or, for
        a face the template holds, by the service's own measure."""
        return [i for i, j in enumerate(self.judged) if max(j.service_side, self._measured(i)) >= self.min_side]

    def _measured(self, judged_index: int) -> float:
        k = self.matches.get(judged_index)
        return self.registered[k].size if k is not None else 0.0

    @property
    def found(self) -> list[int]:
        return [i for i in self.expected if i in self.matches]


def recall(photo: Path | str) -> tuple[int, int]:
    """(faces found, faces expected) for one photo registered as a template."""
    result = measure(Path(photo))
    return len(result.found), len(result.expected)


def measure(photo: Path) -> PhotoRecall:
    data = photo.read_bytes()
    image = decode_image(data)
    judged = [j for j in judge_faces(str(photo)) if j.confidence >= JUDGE_MIN_CONFIDENCE]
    registered = registered_faces(data)
    matches: dict[int, int] = {}
    # Nearest pairs first, so a big box holding two template faces takes its own.
    pairs = sorted(
        (_distance(j, f), i, k) for i, j in enumerate(judged) for k, f in enumerate(registered) if j.holds(f)
    )
    for _, i, k in pairs:
        if i not in matches and k not in matches.values():
            matches[i] = k
    return PhotoRecall(photo.name, FaceRules().min_face_side(image.shape), judged, registered, matches)


@lru_cache(maxsize=None)
def judge_faces(path: str) -> list[JudgeFace]:
    """The judge's faces of a photo, large first (from the cache file when one is in use)."""
    key = _cache_key(Path(path))
    if key in _judge_cache:
        return [JudgeFace(tuple(box), confidence) for box, confidence in _judge_cache[key]]
    found = _judged(Path(path))
    if _judge_cache_file is not None:
        _judge_cache[key] = [(list(j.box), j.confidence) for j in found]
        _judge_cache_file.write_text(json.dumps(_judge_cache, indent=0))
    return found


_judge_cache: dict[str, list] = {}
_judge_cache_file: Path | None = None


def use_judge_cache(path: Path) -> None:
    """Keep the judge's faces in `path` (JSON) across runs."""
    global _judge_cache_file
    _judge_cache_file = path
    if path.exists():
        _judge_cache.update(json.loads(path.read_text()))


def _cache_key(path: Path) -> str:
    stat = path.stat()
    return f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}"


def _judged(path: Path) -> list[JudgeFace]:
    import dlib
    import face_recognition_models

    detector = dlib.cnn_face_detection_model_v1(face_recognition_models.cnn_face_detector_model_location())
    image = decode_image(path.read_bytes())
    upsample = 0
    long_side = max(image.shape[:2])
    while JUDGE_BASE_PX / 2**upsample > JUDGE_SMALLEST_PX and long_side * 2 ** (upsample + 1) <= JUDGE_MAX_SIDE:
        upsample += 1
    found = [
        JudgeFace((d.rect.left(), d.rect.top(), d.rect.right(), d.rect.bottom()), float(d.confidence))
        for d in detector(image, upsample)
    ]
    return sorted(found, key=lambda j: -j.side)


def registered_faces(photo: bytes) -> list[Face]:
    """The faces template registration (TemplateRegistry.add, then load) keeps of the photo."""
    with tempfile.TemporaryDirectory() as tmp:
        registry = TemplateRegistry(SqliteDatabase(Path(tmp) / "facefuse.db"), LocalBlobStore(Path(tmp)))
        info = registry.add(photo)
        return list(registry.load(info.template_id).faces)


def group_photos(faces_dir: Path) -> list[Path]:
    with open(faces_dir / "MANIFEST.tsv", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    return [faces_dir / r["file"] for r in rows if set(r["categories"].split(",")) & GROUP_CATEGORIES]


def _distance(judge: JudgeFace, face: Face) -> float:
    cx, cy = face.center
    return float(np.hypot(cx - (judge.box[0] + judge.box[2]) / 2, cy - (judge.box[1] + judge.box[3]) / 2))


def report(result: PhotoRecall) -> str:
    lines = [
        f"{result.photo}: {len(result.found)}/{len(result.expected)} found (judge: "
        f"{len(result.judged)} faces; template: {len(result.registered)}; min {result.min_side:.0f} px)"
    ]
    for i, j in enumerate(result.judged):
        k = result.matches.get(i)
        mark = "found" if k is not None else ("MISSED" if i in result.expected else "under the minimum")
        size = f"service {result.registered[k].size:.0f} px" if k is not None else ""
        lines.append(
            f"  judge {j.side:4d} px (~{j.service_side:.0f}) at {j.box[0]},{j.box[1]}  {mark}  {size}".rstrip()
        )
    extra = [k for k in range(len(result.registered)) if k not in result.matches.values()]
    for k in extra:
        f = result.registered[k]
        lines.append(f"  template face not in the judge's list: {f.size:.0f} px at {f.box[0]:.0f},{f.box[1]:.0f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces-dir", type=Path, default=DEFAULT_FACES)
    parser.add_argument("--judge-cache", type=Path, help="JSON file keeping the judge's faces across runs")
    parser.add_argument("photos", nargs="*", help="file names in --faces-dir (default: the group photos)")
    args = parser.parse_args(argv)
    if args.judge_cache is not None:
        use_judge_cache(args.judge_cache)
    paths = [args.faces_dir / p for p in args.photos] or group_photos(args.faces_dir)
    total_found = total_expected = 0
    for path in paths:
        started = time.perf_counter()
        result = measure(path)
        print(report(result), f"  ({time.perf_counter() - started:.0f} s)", sep="\n", flush=True)
        total_found += len(result.found)
        total_expected += len(result.expected)
    print(f"group recall: {total_found}/{total_expected} = {total_found / max(1, total_expected):.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
