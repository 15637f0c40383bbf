"""The realism benchmark's hands and microphones (benchmarks/realism.py runs these).

    .venv/bin/python benchmarks/handsbench.py [--pairs 8] [--sheet hands.png] [--faces-dir ../shared/faces]

Run alone, it measures the template side and writes the hands review sheet; realism.py
measures the user side among its occluders (a hand and a microphone pasted over the user,
benchmarks/cutouts.py) and the template side here:

  template side  a hand, or a hand holding a microphone, pasted over the template's face;
                 a user fused into it; CIELAB L* of the result against the template where
                 the hand covers the face (the cut-out wholly opaque, 2 px in from its
                 edge, inside the judge's face polygon): mean |dL*| and the share of
                 pixels with |dL*| > 8, median over pairs, each kind apart (the result is
                 a JPEG: its own noise is in it)
  hands sheet    full-resolution crops: user with a hand | template | result, and user |
                 template with a hand | result
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import cutouts  # noqa: E402  (the cut-outs and where they go)
import quality  # noqa: E402  (the dlib judge, the face polygon)

from facefuse.errors import FacefuseError  # noqa: E402

KINDS = ("hand", "microphone")
TEMPLATE_PAIRS = 8
OPAQUE = 0.99  # the cut-out's alpha from which a pixel is wholly the hand's
EDGE_IN = 2  # px in from the cut-out's edge: its soft edge mixes the template's face in
LSTAR_STEP = 8.0
# The hands sheet: users over a plain template, and hands over a template's face.
SHEET_USERS = ("face_recognition__examples_obama.jpg", "deepface__img2.jpg", "deepface__img16.jpg")
SHEET_TEMPLATE = "deepface__img30.jpg"
SHEET_HAND_TEMPLATES = ("deepface__img30.jpg", "face_recognition__examples_biden.jpg")
SHEET_HAND_USER = "face_recognition__examples_obama.jpg"
SHEET_CROP = 1.7  # crop side over the judge's face box side


@dataclass
class TemplateHandPair:
    user: str
    template: str
    error: str = ""
    hand_mean_dl: float = float("nan")
    hand_share_dl8: float = float("nan")
    microphone_mean_dl: float = float("nan")
    microphone_share_dl8: float = float("nan")


def eyes(points: np.ndarray) -> np.ndarray:
    """The judge's outer eye corners (dlib 36, 45): where cutouts.paste places a cut-out."""
    return points[[36, 45]]


def kept_region(shape: tuple[int, ...], points: np.ndarray, kind: str) -> np.ndarray:
    """Where the pasted `kind` wholly covers the face (bool): opaque, EDGE_IN px in from its
    edge, inside the judge's face polygon."""
    _, alpha = cutouts.coverage(shape, eyes(points), kind, cutouts.load(kind))
    opaque = cv2.erode((alpha >= OPAQUE).astype(np.uint8), np.ones((2 * EDGE_IN + 1,) * 2, np.uint8)) > 0
    return opaque & quality.face_polygon_mask(shape, points)


def lstar(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb.astype(np.float32) / 255, cv2.COLOR_RGB2Lab)[:, :, 0]


def kept_change(result: np.ndarray, template: np.ndarray, region: np.ndarray) -> tuple[float, float]:
    """Mean |dL*| of the result against the template over `region`, and the share > LSTAR_STEP."""
    diff = np.abs(lstar(result) - lstar(template))[region]
    return float(diff.mean()), float((diff > LSTAR_STEP).mean())


def measure_template(fuser, photos, user: str, template: str) -> TemplateHandPair:  # noqa: ANN001 (realism's Fuser, Photos)
    """The user fused into the template with each kind pasted over its face."""
    out = TemplateHandPair(user, template)
    points = photos.landmarks(template)
    if points is None:
        out.error = "the judge found no face"
        return out
    rgb = photos.pixels(template)
    try:
        for kind in KINDS:
            covered = cutouts.paste(rgb, eyes(points), kind)
            result = fuser.fuse([photos.data(user)], cutouts.png_bytes(covered))
            mean, share = kept_change(result, covered, kept_region(rgb.shape, points, kind))
            setattr(out, f"{kind}_mean_dl", mean)
            setattr(out, f"{kind}_share_dl8", share)
    except FacefuseError as error:
        out.error = f"{error.error.code} {error.detail}"
    return out


def template_pairs(users: list[str], templates: list[str], count: int) -> list[tuple[str, str]]:
    """(user, template): each template in turn, with the next user who is not its file."""
    pairs = []
    for i in range(count):
        template = templates[i % len(templates)]
        candidates = [u for u in users if u != template]
        pairs.append((candidates[i % len(candidates)], template))
    return pairs


# ------------------------------------------------------------------ the sheet


def _crop(rgb: np.ndarray, points: np.ndarray) -> np.ndarray:
    x0, y0 = points.min(axis=0)
    x1, y1 = points.max(axis=0)
    half = SHEET_CROP * max(x1 - x0, y1 - y0) / 2
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    h, w = rgb.shape[:2]
    return rgb[max(0, int(cy - half)) : min(h, int(cy + half)), max(0, int(cx - half)) : min(w, int(cx + half))]


def _labelled(panel: np.ndarray, text: str) -> np.ndarray:
    label = np.full((22, panel.shape[1], 3), 255, np.uint8)
    cv2.putText(label, text, (3, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return np.vstack([label, panel])


def _row(panels: list[tuple[np.ndarray, str]]) -> np.ndarray:
    shown = [_labelled(p, t) for p, t in panels]
    height = max(p.shape[0] for p in shown)
    cells = []
    for p in shown:
        cells += [np.pad(p, ((0, height - p.shape[0]), (0, 6), (0, 0)), constant_values=255)]
    return np.hstack(cells)


def sheet(fuser, photos) -> np.ndarray:  # noqa: ANN001 (realism's Fuser, Photos)
    """Full-resolution crops: users with a hand or a microphone fused into a plain
    template, then a user fused into templates with a hand or a microphone."""
    rows = []
    t_points = photos.landmarks(SHEET_TEMPLATE)
    for user in SHEET_USERS:
        points = photos.landmarks(user)
        for kind in KINDS:
            covered = cutouts.paste(photos.pixels(user), eyes(points), kind)
            result = fuser.fuse([cutouts.png_bytes(covered)], photos.data(SHEET_TEMPLATE))
            rows.append(
                _row(
                    [
                        (_crop(covered, points), f"user {user[:40]} with a {kind}"),
                        (_crop(photos.pixels(SHEET_TEMPLATE), t_points), f"template {SHEET_TEMPLATE}"),
                        (_crop(result, t_points), "result"),
                    ]
                )
            )
    u_points = photos.landmarks(SHEET_HAND_USER)
    for template in SHEET_HAND_TEMPLATES:
        points = photos.landmarks(template)
        for kind in KINDS:
            covered = cutouts.paste(photos.pixels(template), eyes(points), kind)
            result = fuser.fuse([photos.data(SHEET_HAND_USER)], cutouts.png_bytes(covered))
            rows.append(
                _row(
                    [
                        (_crop(photos.pixels(SHEET_HAND_USER), u_points), f"user {SHEET_HAND_USER[:40]}"),
                        (_crop(covered, points), f"template {template[:36]} with a {kind}"),
                        (_crop(result, points), "result"),
                    ]
                )
            )
    width = max(r.shape[1] for r in rows)
    return np.vstack([np.pad(r, ((0, 6), (0, width - r.shape[1]), (0, 0)), constant_values=200) for r in rows])


def main(argv: list[str] | None = None) -> int:
    import tempfile

    import realism

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces-dir", type=Path, default=quality.DEFAULT_FACES)
    parser.add_argument("--pairs", type=int, default=TEMPLATE_PAIRS, help="template-side pairs (user x template)")
    parser.add_argument("--sheet", default="hands.png", help="hands review sheet PNG ('' for none)")
    args = parser.parse_args(argv)
    photos = realism.Photos(args.faces_dir)
    fuser = realism.Fuser(Path(tempfile.mkdtemp(prefix="facefuse-hands-")))
    pairs = realism.template_hand_pairs(quality.valid_photos(args.faces_dir), args.pairs)
    results = [measure_template(fuser, photos, user, template) for user, template in pairs]
    for p in results:
        print(asdict(p))
    if args.sheet:
        cv2.imwrite(args.sheet, cv2.cvtColor(sheet(fuser, photos), cv2.COLOR_RGB2BGR))
    return 0


if __name__ == "__main__":
    sys.exit(main())
