"""Fuse a fixed set of user/template pairs and write a contact sheet: user | template | result.

    .venv/bin/python benchmarks/contact_sheet.py OUT.png [--fuse 100] [--shape 40]
        [--width 1800] [--zoom]

Photos come from ../shared/faces (FACEFUSE_FACES_DIR overrides). Each row shows the user
photo, the template and the result, cropped around the template face (--zoom crops
tighter, to see seams) and labelled with the fusion time.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps

from facefuse.fusion.fuse import FuseOptions, fuse_face
from facefuse.vision.detect import detect_faces

FACES = Path(os.environ.get("FACEFUSE_FACES_DIR", Path(__file__).resolve().parents[1].parent / "shared" / "faces"))

# (user photo, template photo, why this pair is here)
PAIRS = [
    ("deepface__img2.jpg", "insightface__emotion_happy.png", "smile with teeth"),
    (
        "face_recognition__examples_obama.jpg",
        "codeformer__inputs_gray_faces_089_Miley_Cyrus_00.png",
        "grayscale child template",
    ),
    ("deepface__img17.jpg", "deepface__img30.jpg", "bearded user"),
    (
        "face_recognition__examples_knn_examples_train_rose_leslie_img1.jpg",
        "face_recognition__examples_obama.jpg",
        "light user, darker template",
    ),
    (
        "dlib__examples_johns_John_Salley_000183_02159543.jpg",
        "face_recognition__examples_biden.jpg",
        "dark low-res user, elderly template",
    ),
    ("deepface__img24.jpg", "dlib__examples_faces_Tom_Cruise_avp_2014_4.jpg", "user with glasses"),
    (
        "face_recognition__examples_knn_examples_train_alex_lacamoire_img1.jpg",
        "deepface__img24.jpg",
        "template with glasses",
    ),
    ("deepface__img35.jpg", "insightface__bulk_kun_crop.jpg", "template hair over forehead"),
    ("deepface__img9.jpg", "insightface__reaction_close_eyes.jpeg", "template eyes closed"),
    ("face_recognition__examples_knn_examples_train_biden_biden2.jpg", "deepface__img36.jpg", "bearded template"),
    (
        "codeformer__inputs_gray_faces_089_Miley_Cyrus_00.png",
        "face_recognition__examples_knn_examples_train_rose_leslie_img2.jpg",
        "grayscale child user",
    ),
    (
        "face_recognition__examples_knn_examples_train_kit_harington_john1.jpeg",
        "deepface__img20.jpg",
        "small user face, bald template",
    ),
    ("deepface__img47.jpg", "deepface__img62.jpg", "woman into bearded man"),
]

TILE = 300


def load_rgb(name: str) -> np.ndarray:
    with Image.open(FACES / name) as image:
        return np.asarray(ImageOps.exif_transpose(image).convert("RGB"))


def largest_face(rgb: np.ndarray):
    faces = detect_faces(rgb)
    if not faces:
        raise SystemExit("no face found")
    return max(faces, key=lambda f: f.size)


def face_tile(rgb: np.ndarray, box: tuple[float, float, float, float], reach: float) -> np.ndarray:
    x, y, side, _ = box
    cx, cy, half = x + side / 2, y + side / 2, side * reach / 2
    h, w = rgb.shape[:2]
    x0, y0 = int(max(0, cx - half)), int(max(0, cy - half))
    x1, y1 = int(min(w, cx + half)), int(min(h, cy + half))
    crop = np.ascontiguousarray(rgb[y0:y1, x0:x1])
    scale = TILE / max(crop.shape[:2])
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    crop = cv2.resize(
        crop, (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale))), interpolation=interp
    )
    tile = np.full((TILE, TILE, 3), 255, np.uint8)
    tile[: crop.shape[0], : crop.shape[1]] = crop
    return tile


def label(tile: np.ndarray, text: str) -> np.ndarray:
    tile = tile.copy()
    cv2.putText(tile, text, (5, TILE - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(tile, text, (5, TILE - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 0), 1, cv2.LINE_AA)
    return tile


def sheet_rows(options: FuseOptions, reach: float, pairs) -> list[np.ndarray]:
    rows = []
    for user_name, template_name, why in pairs:
        user, template = load_rgb(user_name), load_rgb(template_name)
        user_face, template_face = largest_face(user), largest_face(template)
        start = time.perf_counter()
        result = fuse_face(template, template_face, user, user_face, options)
        ms = (time.perf_counter() - start) * 1000
        print(f"{ms:7.1f} ms  {template.shape[1]}x{template.shape[0]}  {why}", file=sys.stderr)
        rows.append(
            np.hstack(
                [
                    label(face_tile(user, user_face.box, 1.6), user_name[:40]),
                    label(face_tile(template, template_face.box, reach), why),
                    label(face_tile(result, template_face.box, reach), f"{ms:.0f} ms"),
                ]
            )
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--fuse", type=int, default=100)
    parser.add_argument("--shape", type=int, default=40)
    parser.add_argument("--width", type=int, default=1800, help="sheet width in pixels (max)")
    parser.add_argument("--zoom", action="store_true", help="crop tight around the face")
    parser.add_argument("--only", type=str, default="", help="comma-separated row numbers")
    args = parser.parse_args()
    pairs = PAIRS
    if args.only:
        pairs = [PAIRS[int(i)] for i in args.only.split(",")]
    rows = sheet_rows(FuseOptions(args.fuse, args.shape), 1.1 if args.zoom else 1.6, pairs)
    per_row = 2 if len(rows) > 4 else 1
    while len(rows) % per_row:
        rows.append(np.full_like(rows[0], 255))
    lines = [np.hstack(rows[i : i + per_row]) for i in range(0, len(rows), per_row)]
    sheet = np.vstack(lines)
    if sheet.shape[1] > args.width:
        scale = args.width / sheet.shape[1]
        sheet = cv2.resize(sheet, (args.width, round(sheet.shape[0] * scale)), interpolation=cv2.INTER_AREA)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(sheet).save(args.out)
    print(f"wrote {args.out} ({sheet.shape[1]}x{sheet.shape[0]})", file=sys.stderr)


if __name__ == "__main__":
    main()
