"""Hash the results of a fixed set of fusions: does a change keep the output bytes?

    .venv/bin/python benchmarks/fusion_digest.py [--out digests.json] [--check digests.json]
        [--spare-core] [--faces-dir ../shared/faces]

Fuses every user of USERS into every template of TEMPLATES (photos of ../shared/faces;
the demo template too) with fuse_prepared, at the default degrees and at two others, and
prints one SHA-256 per result and one over all. `--check` compares with a file written by
`--out` and lists the results that differ (exit 1 if any). `--spare-core` runs the pieces
of each fusion on the helper thread (facefuse.parallel): the bytes must not change.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

from facefuse import parallel
from facefuse.fusion.fuse import FuseOptions, fuse_prepared, prepare_template
from facefuse.media.decode import decode_image
from facefuse.media.limits import ImageLimits
from facefuse.templates.registry import demo_photo
from facefuse.vision.detect import detect_faces

DEFAULT_FACES = Path(__file__).resolve().parents[1].parent / "shared" / "faces"
TEMPLATES = (
    "demo",
    "deepface__img24.jpg",
    "insightface__emotion_happy.png",
    "codeformer__inputs_gray_faces_089_Miley_Cyrus_00.png",
    "deepface__img30.jpg",
    "face_recognition__examples_biden.jpg",
)
USERS = (
    "deepface__img2.jpg",
    "face_recognition__examples_obama.jpg",
    "deepface__img17.jpg",
    "face_recognition__examples_knn_examples_train_rose_leslie_img1.jpg",
    "dlib__examples_johns_John_Salley_000183_02159543.jpg",
    "deepface__img24.jpg",
    "face_recognition__examples_knn_examples_train_alex_lacamoire_img1.jpg",
    "insightface__bulk_kun_crop.jpg",
    "face_recognition__examples_knn_examples_train_kit_harington_john2.jpeg",
    "insightface__reaction_close_eyes.jpeg",
)
OPTIONS = (FuseOptions(), FuseOptions(60, 0), FuseOptions(100, 100))
LIMITS = ImageLimits(max_bytes=64 << 20, min_side=16, max_side=8192)


def _load(faces_dir: Path, name: str):
    data = demo_photo() if name == "demo" else (faces_dir / name).read_bytes()
    rgb = decode_image(data, LIMITS)
    faces = detect_faces(rgb)
    if not faces:
        raise SystemExit(f"no face in {name}")
    return rgb, max(faces, key=lambda f: f.size)


def digests(faces_dir: Path) -> dict[str, str]:
    users = {name: _load(faces_dir, name) for name in USERS}
    out: dict[str, str] = {}
    for t_name in TEMPLATES:
        prepared = prepare_template(*_load(faces_dir, t_name))
        for u_name, (u_rgb, u_face) in users.items():
            for options in OPTIONS:
                result = fuse_prepared(prepared, u_rgb, u_face, options)
                key = f"{t_name} <- {u_name} @{options.fuse_degree}/{options.shape_degree}"
                out[key] = hashlib.sha256(result.tobytes()).hexdigest()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faces-dir", type=Path, default=DEFAULT_FACES)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--check", type=Path)
    parser.add_argument("--spare-core", action="store_true")
    args = parser.parse_args()
    if args.spare_core:
        parallel.use_spare_cores(lambda: True)
    found = digests(args.faces_dir)
    overall = hashlib.sha256("".join(found.values()).encode()).hexdigest()
    print(f"{len(found)} fusions, overall {overall}")
    if args.out:
        args.out.write_text(json.dumps(found, indent=1))
    if args.check:
        expected = json.loads(args.check.read_text())
        differ = [key for key in expected if found.get(key) != expected[key]]
        for key in differ:
            print(f"differs: {key}")
        print(f"{len(expected) - len(differ)} of {len(expected)} the same")
        return 1 if differ else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
