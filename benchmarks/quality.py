"""Fusion quality benchmark: does the result show the user, in the template's scene?

    .venv/bin/python benchmarks/quality.py [--pairs 60] [--out quality.json] [--sheet quality.png]
        [--no-realism] [--realism-pairs 36] [--realism-pose-templates 6] [--realism-pose-floor 5]
        [--realism-groups N]
        [--realism-hand-pairs 8] [--realism-low-res-templates 6]
        [--realism-sheet realism.png]

Needs the [eval] extra (dlib-bin, face_recognition_models): an independent judge, never
a dependency of the service. Pairs are deterministic: user photo of person A, template
photo of person B != A, both single-face `frontal` photos of ../shared/faces within the
image rules. Every pair goes through the real code path (FuseService: decode, detect,
check, fuse, JPEG encode) with the template sent as an ad-hoc photo; the JPEG is decoded
again before it is judged. Metrics (docs/quality.md defines each):

  success       share of pairs that produced a result
  id_transfer   result nearer the user than the template, and nearer than 0.6 to the user
  top1          nearest of a gallery holding ANOTHER photo of every identity is the user's
  psnr_bg       PSNR (dB) of result vs template outside the template face box x1.6
  pose          mean jaw-outline (dlib 0..16) distance result vs template / inter-ocular
                distance (the outer eye corners, dlib 36-45, as in the 300-W benchmark);
                `pose_eye_centres` divides by the eye centres' distance instead
  tone          CIELAB distance of median colours inside the template's face polygon
                (jaw + brows, shrunk by 0.15 x inter-ocular distance): median and 90th percentile
  gray_kept     share of grayscale templates whose result is grayscale

Then, unless --no-realism, the realism measures of issue 22 (benchmarks/realism.py: occluder
invariance, pose consistency, group recall, a review sheet), printed with MET/MISS and kept
in the JSON under "realism".
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
from PIL import Image

from facefuse.errors import FacefuseError
from facefuse.media.decode import decode_image
from facefuse.service import FuseJob, FuseService, UserPhoto
from facefuse.settings import Settings

REPO = Path(__file__).resolve().parents[1]
DEFAULT_FACES = REPO.parent / "shared" / "faces"
SAME_PERSON = 0.6
MAX_BYTES = 2 * 1024 * 1024
UNKNOWN = "unknown"  # MANIFEST's name for photos of different, unnamed people
GRAY_EVERY = 4  # every 4th pair also runs with a grayscale copy of its template

TARGETS = {
    "success": (">=", 0.99),
    "id_transfer": (">=", 0.97),
    "top1": (">=", 0.95),
    "psnr_bg": (">=", 50.0),
    "pose": ("<=", 0.05),
    "tone_median": ("<=", 2.0),
    "tone_p90": ("<=", 4.0),
    "gray_kept": (">=", 1.0),
}


@dataclass(frozen=True)
class Photo:
    file: str
    identity: str


@dataclass
class PairResult:
    user: str
    template: str
    gray_template: bool
    ok: bool
    error: str = ""
    ms: float = 0.0
    d_user: float = float("nan")
    d_template: float = float("nan")
    id_transfer: bool = False
    top1: bool = False
    psnr_bg: float = float("nan")
    pose: float = float("nan")
    pose_eye_centres: float = float("nan")
    tone: float = float("nan")
    gray_kept: bool | None = None


@dataclass
class Summary:
    pairs: int
    success: float
    id_transfer: float
    top1: float
    psnr_bg: float
    pose: float
    pose_eye_centres: float
    tone_median: float
    tone_p90: float
    gray_kept: float
    ms_median: float
    settings: dict[str, int] = field(default_factory=dict)


# ------------------------------------------------------------------ the judge (dlib)


@lru_cache(maxsize=1)
def judge_models():
    import dlib
    import face_recognition_models as frm

    return (
        dlib.get_frontal_face_detector(),
        dlib.shape_predictor(frm.pose_predictor_model_location()),
        dlib.face_recognition_model_v1(frm.face_recognition_model_location()),
    )


@dataclass(frozen=True)
class Judged:
    embedding: np.ndarray
    landmarks: np.ndarray  # (68, 2)
    box: tuple[int, int, int, int]  # x0, y0, x1, y1


def judge(rgb: np.ndarray) -> Judged | None:
    detector, predictor, encoder = judge_models()
    image = np.ascontiguousarray(rgb)
    rects = list(detector(image, 1)) or list(detector(image, 2))
    if not rects:
        return None
    rect = max(rects, key=lambda r: r.width() * r.height())
    shape = predictor(image, rect)
    points = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)
    embedding = np.asarray(encoder.compute_face_descriptor(image, shape, 1))
    return Judged(embedding, points, (rect.left(), rect.top(), rect.right(), rect.bottom()))


# ------------------------------------------------------------------ metrics


def interocular_distance(points: np.ndarray) -> float:
    """Between the outer eye corners (dlib 36 and 45): the normaliser of the 300-W landmark
    benchmark; the issue's two reference methods reproduce with it (docs/quality.md)."""
    return float(np.linalg.norm(points[36] - points[45]))


def eye_centres_distance(points: np.ndarray) -> float:
    """Between the eye centres (the inter-pupil distance), ~0.73 of the inter-ocular."""
    return float(np.linalg.norm(points[36:42].mean(axis=0) - points[42:48].mean(axis=0)))


def psnr_outside_face(result: np.ndarray, template: np.ndarray, box: tuple[int, int, int, int]) -> float:
    x0, y0, x1, y1 = box
    cx, cy, half = (x0 + x1) / 2, (y0 + y1) / 2, max(x1 - x0, y1 - y0) * 1.6 / 2
    keep = np.ones(template.shape[:2], dtype=bool)
    keep[max(0, int(cy - half)) : int(np.ceil(cy + half)), max(0, int(cx - half)) : int(np.ceil(cx + half))] = False
    mse = float(((result[keep].astype(np.float64) - template[keep]) ** 2).mean())
    return 99.0 if mse == 0 else float(10 * np.log10(255**2 / mse))


def jaw_error(
    result_points: np.ndarray,
    template_points: np.ndarray,
    normaliser: Callable[[np.ndarray], float] = interocular_distance,
) -> float:
    jaw = np.linalg.norm(result_points[:17] - template_points[:17], axis=1).mean()
    return float(jaw / normaliser(template_points))


def face_polygon_mask(shape: tuple[int, ...], points: np.ndarray) -> np.ndarray:
    polygon = np.vstack([points[0:17], points[17:27][::-1]]).astype(np.int32)
    mask = np.zeros(shape[:2], np.uint8)
    cv2.fillPoly(mask, [polygon], 255)
    shrink = max(1, int(round(0.15 * interocular_distance(points))))
    mask = cv2.erode(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * shrink + 1, 2 * shrink + 1)))
    return mask > 0


def median_lab(rgb: np.ndarray, mask: np.ndarray) -> np.ndarray:
    lab = cv2.cvtColor(rgb.astype(np.float32) / 255, cv2.COLOR_RGB2Lab)
    return np.median(lab[mask], axis=0)


def is_grayscale(rgb: np.ndarray) -> bool:
    spread = rgb.max(axis=2).astype(np.int16) - rgb.min(axis=2)
    return float(spread.mean()) < 1.0 and int(np.percentile(spread, 99.9)) <= 6


# ------------------------------------------------------------------ pairs


def valid_photos(faces_dir: Path) -> list[Photo]:
    """Single-face `frontal` photos within the image rules, with a known identity."""
    with open(faces_dir / "MANIFEST.tsv", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    photos = []
    for row in rows:
        cats = set(row["categories"].split(","))
        if (
            "frontal" in cats
            and "large_image" not in cats
            and row["n_faces"] == "1"
            and row["format"] in ("JPEG", "PNG")
            and row["identity"]
            and int(row["bytes"]) <= MAX_BYTES
            and max(int(row["width"]), int(row["height"])) <= 4096
        ):
            photos.append(Photo(row["file"], row["identity"]))
    return sorted(photos, key=lambda p: p.file)


def make_pairs(photos: list[Photo], count: int) -> list[tuple[Photo, Photo]]:
    """Deterministic (user, template) pairs: users whose identity has another photo (for
    the gallery), templates of a different identity, spread over the list."""
    by_identity: dict[str, list[Photo]] = {}
    for p in photos:
        by_identity.setdefault(p.identity, []).append(p)
    users = [p for p in photos if p.identity != UNKNOWN and len(by_identity[p.identity]) >= 2]
    pairs = []
    step = 7
    for i in range(count):
        user = users[i % len(users)]
        j = (i * step + 3) % len(photos)
        while photos[j].identity == user.identity or any(photos[j] == t for u, t in pairs if u == user):
            j = (j + 1) % len(photos)
        pairs.append((user, photos[j]))
    return pairs


def gallery_for(user: Photo, template: Photo, photos: list[Photo]) -> dict[str, list[str]]:
    """Per identity, its photos other than this pair's user and template photos."""
    gallery: dict[str, list[str]] = {}
    for p in photos:
        if p.file not in (user.file, template.file) and p.identity != UNKNOWN:
            gallery.setdefault(p.identity, []).append(p.file)
    return gallery


# ------------------------------------------------------------------ running


class Benchmark:
    def __init__(self, faces_dir: Path, fuse_degree: int | None, shape_degree: int | None) -> None:
        self.faces_dir = faces_dir
        self.data_dir = Path(tempfile.mkdtemp(prefix="facefuse-quality-"))
        self.service = FuseService(Settings(data_dir=self.data_dir, demo_template=False))
        self.fuse_degree, self.shape_degree = fuse_degree, shape_degree
        self._judged: dict[str, Judged | None] = {}

    def photo_bytes(self, name: str) -> bytes:
        return (self.faces_dir / name).read_bytes()

    def pixels(self, name: str) -> np.ndarray:
        return decode_image(self.photo_bytes(name))

    def judged(self, name: str) -> Judged | None:
        if name not in self._judged:
            self._judged[name] = judge(self.pixels(name))
        return self._judged[name]

    def run_pair(
        self, user: Photo, template: Photo, photos: list[Photo], gray: bool
    ) -> tuple[PairResult, np.ndarray | None]:
        template_bytes = self.photo_bytes(template.file)
        template_rgb = self.pixels(template.file)
        if gray:
            template_rgb = np.repeat(cv2.cvtColor(template_rgb, cv2.COLOR_RGB2GRAY)[:, :, None], 3, axis=2)
            buffer = io.BytesIO()
            Image.fromarray(template_rgb).save(buffer, "PNG")
            template_bytes = buffer.getvalue()
        job = FuseJob(
            users=[UserPhoto(self.photo_bytes(user.file))],
            template_photo=template_bytes,
            fuse_degree=self.fuse_degree,
            shape_degree=self.shape_degree,
            ai_label=False,  # the visible AI label is not what the judge scores
        )
        started = time.perf_counter()
        try:
            jpeg = self.service.fuse_to_jpeg(job)
        except FacefuseError as error:
            return PairResult(user.file, template.file, gray, False, f"{error.error.code} {error.detail}"), None
        ms = (time.perf_counter() - started) * 1000
        result = decode_image(jpeg)
        scored = PairResult(user.file, template.file, gray, True, ms=ms)
        self.score(scored, result, template_rgb, user, template, photos)
        return scored, result

    def score(
        self,
        out: PairResult,
        result: np.ndarray,
        template_rgb: np.ndarray,
        user: Photo,
        template: Photo,
        photos: list[Photo],
    ) -> None:
        judged_result = judge(result)
        judged_user, judged_template = self.judged(user.file), judge(template_rgb)
        gray_template = out.gray_template
        if gray_template:
            out.gray_kept = is_grayscale(result)
        if judged_result is None or judged_user is None or judged_template is None:
            out.error = "the judge found no face"
            return
        out.d_user = float(np.linalg.norm(judged_result.embedding - judged_user.embedding))
        out.d_template = float(np.linalg.norm(judged_result.embedding - judged_template.embedding))
        out.id_transfer = out.d_user < out.d_template and out.d_user < SAME_PERSON
        out.top1 = self.nearest_identity(judged_result.embedding, user, template, photos) == user.identity
        out.psnr_bg = psnr_outside_face(result, template_rgb, judged_template.box)
        out.pose = jaw_error(judged_result.landmarks, judged_template.landmarks)
        out.pose_eye_centres = jaw_error(judged_result.landmarks, judged_template.landmarks, eye_centres_distance)
        mask = face_polygon_mask(template_rgb.shape, judged_template.landmarks)
        if not gray_template and mask.any():
            out.tone = float(np.linalg.norm(median_lab(result, mask) - median_lab(template_rgb, mask)))

    def nearest_identity(self, embedding: np.ndarray, user: Photo, template: Photo, photos: list[Photo]) -> str:
        best, best_identity = float("inf"), ""
        for identity, files in gallery_for(user, template, photos).items():
            for name in files:
                judged = self.judged(name)
                if judged is None:
                    continue
                d = float(np.linalg.norm(embedding - judged.embedding))
                if d < best:
                    best, best_identity = d, identity
        return best_identity


def summarise(results: list[PairResult], settings: dict[str, int]) -> Summary:
    colour = [r for r in results if not r.gray_template]
    ok = [r for r in colour if r.ok]
    judged = [r for r in ok if not np.isnan(r.d_user)]
    tones = [r.tone for r in judged if not np.isnan(r.tone)]
    grays = [r for r in results if r.gray_template and r.ok]

    def share(values: list[bool]) -> float:
        return float(np.mean(values)) if values else float("nan")

    return Summary(
        pairs=len(colour),
        success=len(ok) / len(colour) if colour else float("nan"),
        id_transfer=share([r.id_transfer for r in ok]),
        top1=share([r.top1 for r in ok]),
        # A close-up whose enlarged face box covers the whole photo has no background.
        psnr_bg=float(np.nanmedian([r.psnr_bg for r in judged])) if judged else float("nan"),
        pose=float(np.mean([r.pose for r in judged])) if judged else float("nan"),
        pose_eye_centres=float(np.mean([r.pose_eye_centres for r in judged])) if judged else float("nan"),
        tone_median=float(np.median(tones)) if tones else float("nan"),
        tone_p90=float(np.percentile(tones, 90)) if tones else float("nan"),
        gray_kept=share([bool(r.gray_kept) for r in grays]),
        ms_median=float(np.median([r.ms for r in ok])) if ok else float("nan"),
        settings=settings,
    )


def contact_sheet(rows: list[tuple[np.ndarray, np.ndarray, np.ndarray]], height: int = 220) -> np.ndarray:
    def fit(image: np.ndarray) -> np.ndarray:
        scale = height / image.shape[0]
        return cv2.resize(image, (max(1, round(image.shape[1] * scale)), height), interpolation=cv2.INTER_AREA)

    lines = [
        np.hstack(
            [fit(a), np.full((height, 6, 3), 255, np.uint8), fit(b), np.full((height, 6, 3), 255, np.uint8), fit(c)]
        )
        for a, b, c in rows
    ]
    width = max(line.shape[1] for line in lines)
    padded = [np.pad(line, ((0, 6), (0, width - line.shape[1]), (0, 0)), constant_values=255) for line in lines]
    return np.vstack(padded)


def verdicts(summary: Summary) -> dict[str, bool]:
    values = asdict(summary)
    return {
        name: (values[name] >= bound if op == ">=" else values[name] <= bound) for name, (op, bound) in TARGETS.items()
    }


def realism_module():
    """benchmarks/realism.py, which imports this module as `quality`: run as a script this
    module is `__main__`, so it is registered under that name too and the judge loads once."""
    sys.modules.setdefault("quality", sys.modules[__name__])
    import realism

    return realism


def realism_report(args: argparse.Namespace) -> dict | None:
    """The realism measures, unless --no-realism."""
    if args.no_realism:
        return None
    realism = realism_module()
    sizes = realism.Sizes(
        args.realism_pairs,
        args.realism_pose_templates,
        args.realism_groups,
        args.realism_hand_pairs,
        args.realism_pose_floor,
        args.realism_low_res_templates,
    )
    return realism.run(
        args.faces_dir,
        sizes,
        Path(args.realism_sheet) if args.realism_sheet else None,
        progress=lambda line: print(line, file=sys.stderr),
    )


def realism_lines(report: dict) -> list[str]:
    realism = realism_module()
    summary = realism.summary_from(report)
    return realism.summary_lines(summary) + summary.notes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces-dir", type=Path, default=DEFAULT_FACES)
    parser.add_argument("--pairs", type=int, default=60)
    parser.add_argument("--fuse-degree", type=int, default=None)
    parser.add_argument("--shape-degree", type=int, default=None)
    parser.add_argument("--out", type=Path, default=Path("quality.json"))
    parser.add_argument("--sheet", type=Path, default=Path("quality.png"))
    parser.add_argument("--no-realism", action="store_true", help="skip the realism measures (benchmarks/realism.py)")
    parser.add_argument("--realism-sheet", default="realism.png", help="the realism review sheet PNG ('' for none)")
    realism_module().add_arguments(parser, prefix="realism-")
    args = parser.parse_args(argv)

    photos = valid_photos(args.faces_dir)
    bench = Benchmark(args.faces_dir, args.fuse_degree, args.shape_degree)
    results: list[PairResult] = []
    sheet_rows = []
    for index, (user, template) in enumerate(make_pairs(photos, args.pairs)):
        for gray in (False, True) if index % GRAY_EVERY == 0 else (False,):
            scored, image = bench.run_pair(user, template, photos, gray)
            results.append(scored)
            if image is not None:
                template_shown = bench.pixels(template.file)
                if gray:
                    template_shown = np.repeat(cv2.cvtColor(template_shown, cv2.COLOR_RGB2GRAY)[:, :, None], 3, axis=2)
                sheet_rows.append((bench.pixels(user.file), template_shown, image))
            print(
                f"{len(results):3d} {'gray ' if gray else ''}{user.file[:34]:34s} -> {template.file[:34]:34s} "
                f"{'ok ' if scored.ok else 'ERR'} d_user={scored.d_user:.3f} d_tmpl={scored.d_template:.3f} "
                f"psnr={scored.psnr_bg:.1f} pose={scored.pose:.3f} tone={scored.tone:.2f} {scored.error}",
                file=sys.stderr,
            )
    settings = {
        "fuse_degree": args.fuse_degree if args.fuse_degree is not None else bench.service.settings.fuse_degree,
        "shape_degree": (args.shape_degree if args.shape_degree is not None else bench.service.settings.shape_degree),
    }
    summary = summarise(results, settings)
    checks = verdicts(summary)
    report = {"summary": asdict(summary), "targets_met": checks, "pairs": [asdict(r) for r in results]}
    realism = realism_report(args)
    if realism is not None:
        report["realism"] = realism
    args.out.write_text(json.dumps(report, indent=1))
    if sheet_rows:
        Image.fromarray(contact_sheet(sheet_rows)).save(args.sheet)
    print(
        f"pairs {summary.pairs}  success {summary.success:.1%}  id_transfer {summary.id_transfer:.1%}  "
        f"top1 {summary.top1:.1%}  psnr_bg {summary.psnr_bg:.1f} dB  "
        f"pose {summary.pose:.3f} (by eye centres {summary.pose_eye_centres:.3f})  "
        f"tone {summary.tone_median:.2f} (p90 {summary.tone_p90:.2f})  gray_kept {summary.gray_kept:.0%}  "
        f"{summary.ms_median:.0f} ms/fuse  targets met: {sum(checks.values())}/{len(checks)} "
        f"{'' if all(checks.values()) else '(missed: ' + ', '.join(k for k, v in checks.items() if not v) + ')'}"
    )
    for line in realism_lines(realism) if realism is not None else []:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
