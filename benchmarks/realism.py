"""Realism measures of issue 22: does the result stay the same when it should?

    .venv/bin/python benchmarks/realism.py [--pairs 36] [--pose-templates 6] [--pose-floor 5]
        [--groups N] [--hand-pairs 8] [--low-res-templates 6] [--out realism.json] [--sheet realism.png]
        [--hands-sheet hands.png] [--faces-dir ../shared/faces]

benchmarks/quality.py (`make quality`) runs the same measures after its own. The judge is
quality.py's dlib (68 landmarks, IOD = outer eye corners 36-45). Fusions go through the
real code path (FuseService.fuse_to_jpeg, or TemplateRegistry.add for a group photo) and
each JPEG is decoded again before it is judged. docs/quality.md, "Realism measures":

  occluders     hair strands / glasses drawn on the user's photo, a hand / a hand holding a
                microphone pasted over it (benchmarks/cutouts.py); the user fused with and
                without them into the same template; CIELAB L* of the two results on the
                template's plain skin: mean |dL*| and the share of pixels with |dL*| > 8,
                median over pairs, each kind apart
  lens glare    the drawn glasses with a white reflection on their lenses against the
                glasses alone, the same way, on the template's skin under the lenses
  template hands  a hand / a microphone pasted over the template's face stays as it is in
                the result (benchmarks/handsbench.py): mean |dL*| and share > 8 there
  pose          an identity's frontal and turned (15-35 deg) photos into the same templates:
                mean |dL*| of the two results on the plain skin, and the turned result's
                far-to-near cheek ratio of luma Laplacian energy against the template's
  pose floor    the same |dL*| for two frontal photos of one person (no target): what another
                photo of the same face moves the result by, pose aside
  low-res detail  low-resolution users into templates whose faces are larger: the result's
                finest band of luma (grain, pores) and the band above it, rms on the plain
                skin, over the template's own there (the issue: no softer than the template)
  group_recall  faces found by template registration / faces >= 48 px dlib's CNN finds
  review sheet  full-resolution crops user | template | result of chosen hard pairs; the
                hands sheet the same of users and templates with a hand or a microphone
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))

import cutouts  # noqa: E402  (a hand and a microphone cut out of a photo, pasted over faces)
import group_recall  # noqa: E402  (group recall against dlib's CNN)
import handsbench  # noqa: E402  (hands and microphones over the template's face, the hands sheet)
import quality  # noqa: E402  (the dlib judge, the photo rules, the skin polygon)
from cutouts import png_bytes  # noqa: E402

from facefuse.errors import FacefuseError  # noqa: E402
from facefuse.media.decode import decode_image  # noqa: E402
from facefuse.media.limits import ImageLimits  # noqa: E402
from facefuse.service import FuseJob, FuseService, UserPhoto  # noqa: E402
from facefuse.settings import Settings  # noqa: E402
from facefuse.templates.registry import demo_photo  # noqa: E402
from facefuse.vision.detect import detect_faces  # noqa: E402

DEMO = "grace_hopper.jpg (demo)"  # the demo template (it wears glasses), not a file of the set
DEMO_IDENTITY = "grace_hopper"
NO_IDENTITY = {quality.UNKNOWN, "none", ""}  # MANIFEST's unnamed people and non-faces

# Issue 22's occluders, in inter-ocular distances (IOD). Occluder coordinates are in the
# face's own frame: origin midway between the outer eye corners, x toward dlib point 45,
# y perpendicular to it, down the face.
STRAND_WIDTH = 0.03
RIM_SIZE = (0.45, 0.32)  # width and height of the elliptic rim around each eye
FRAME_WIDTH = 0.05
GLASSES_COLOUR = (0, 0, 0)
# The issue allows the user's own hair colour or dark brown: sampled above the forehead, the
# "hair" of a high forehead or a hairline is skin, and skin-coloured strands hide nothing.
HAIR_COLOUR = (60, 40, 28)  # dark brown
# A lock of three strands falling from above the brows across the image-left eye (the
# subject's right eye) onto the cheek below it, as cubic Bezier control points.
STRANDS = (
    ((-0.08, -0.90), (-0.20, -0.45), (-0.45, -0.15), (-0.48, 0.45)),
    ((0.00, -0.90), (-0.14, -0.40), (-0.36, -0.10), (-0.38, 0.50)),
    ((0.08, -0.90), (-0.08, -0.35), (-0.28, -0.05), (-0.28, 0.55)),
)
BRIDGE_RISE = 0.04  # the bridge's middle sits this much above the rims' inner ends
# Lens glare (the issue names it among the occluders; its measure is ours): inside each
# drawn rim, a soft white reflection on the lens's lower outer part over the lid and the
# cheek, and a thin one above the eye. Per blob: the offset from the eye's centre (outward,
# down), the half axes, the tilt (degrees, outward down). Compared with the rims alone,
# under the lenses (their insides, the eyes' openings left out).
GLARE_BLOBS = ((0.09, 0.10, 0.16, 0.055, -20.0), (0.02, -0.06, 0.10, 0.035, -20.0))
GLARE_OPACITY = 0.7
GLARE_SOFTNESS = 0.02  # IOD: the blobs' Gaussian edge
GLARE_COLOUR = (250, 252, 255)
CURVE_POINTS = 64  # points per drawn curve
SUPERSAMPLE = 4  # sub-pixels per pixel side: strokes are drawn sharp at 4x, then averaged

# The template's plain skin: quality.py's jaw+brow polygon shrunk by 0.15 IOD, minus the
# features, each grown by FEATURE_MARGIN IOD: lashes and lid creases, brow hair, nostril
# wings and lip edges lie within it of dlib's points.
FEATURE_MARGIN = 0.10
EYES = (range(36, 42), range(42, 48))
BROWS = (range(17, 22), range(22, 27))
NOSE_BASE = range(31, 36)
MOUTH = range(48, 68)
NOSE_LINE = (27, 30)  # the nose's bridge top and tip: the line the cheeks are split at
NOSE_BAND = 0.10  # IOD either side of the nose line left out of the cheeks: its flanks are edges
LSTAR_STEP = 8.0  # |dL*| a pixel counts as visibly changed above

# Pose consistency
FRONTAL_MAX_YAW = 10.0
TURNED_YAW = (15.0, 35.0)

# Low-resolution users
LOW_RES_CATEGORY = "low_res"
LOW_RES_UPSCALE = 1.5  # a template whose IOD is this many times the user's enlarges the user's face
FINE_SIGMA = 1.0  # px: luma minus its blur at this sigma is the finest band (grain, pores)
NEXT_SIGMA = 3.0  # px: the band above it, between the blurs at FINE_SIGMA and this

# Group recall
GROUP_CATEGORY = "group"
GROUP_MIN_FACES = 3  # a photo of this many people is a group photo, tagged so or not

# Pair counts (deterministic choices)
OCCLUDER_PAIRS = 36
OCCLUDER_USERS = 12
OCCLUDER_TEMPLATES = 4  # the demo template and three of the set
POSE_TEMPLATES = 6
# The pose measure's floor: two frontal photos of one person (another day, light, make-up,
# expression), into the same templates. What the turned photo's result differs by beyond
# that is the pose's doing. Identities with the most frontal photos, this many.
POSE_FLOOR_IDENTITIES = 5
LOW_RES_TEMPLATES = 6  # the templates low-resolution users go into (those enlarging them)
SAME_PHOTO = 0.75  # two files' aligned faces and scenes correlating over this are one photo
LOSSLESS_BYTES = 64 * 1024 * 1024  # drawn photos go in as PNG, above the 2 MB upload rule

# A result's detail on the plain skin at least this share of the template's (rms), in each band.
LOW_RES_DETAIL = 0.9

TARGETS = {
    "hair_mean_dl": ("<=", 1.5),
    "hair_share_dl8": ("<=", 0.02),
    "glasses_mean_dl": ("<=", 1.5),
    "glasses_share_dl8": ("<=", 0.02),
    "glare_mean_dl": ("<=", 1.5),
    "glare_share_dl8": ("<=", 0.02),
    "hand_mean_dl": ("<=", 1.5),
    "hand_share_dl8": ("<=", 0.02),
    "microphone_mean_dl": ("<=", 1.5),
    "microphone_share_dl8": ("<=", 0.02),
    "template_hand_mean_dl": ("<=", 1.5),
    "template_hand_share_dl8": ("<=", 0.02),
    "template_microphone_mean_dl": ("<=", 1.5),
    "template_microphone_share_dl8": ("<=", 0.02),
    "pose_mean_dl": ("<=", 3.0),
    "pose_detail_error": ("<=", 0.30),
    "group_recall": (">=", 1.0),
    "low_res_fine": (">=", LOW_RES_DETAIL),
    "low_res_next": (">=", LOW_RES_DETAIL),
}

# The review sheet: photos of ../shared/faces picked by looking at them.
SHEET_USERS = (
    ("insightface__bulk_kun_crop.jpg", "real hair: a thick dark fringe over the forehead to the brows"),
    (
        "face_recognition__examples_knn_examples_train_kit_harington_john1.jpeg",
        "real hair: dark curls over the forehead, a beard",
    ),
    ("deepface__img9.jpg", "real hair: a blonde side fringe over one temple"),
    ("deepface__img25.jpg", "real glasses: dark rectangular frames"),
    ("codeformer__inputs_cropped_faces_0143.png", "real glasses: thin frames on a soft, old photo"),
    (
        "face_recognition__examples_knn_examples_train_kit_harington_john2.jpeg",
        "turned head: yaw -23 deg, the far cheek edge-on",
    ),
    ("face_recognition__examples_obama-240p.jpg", "low resolution: a 65 px face"),
    ("dlib__examples_johns_John_Salley_000183_02159543.jpg", "low resolution: a dark 150 px close-up"),
)
SHEET_TEMPLATES = (
    (DEMO, "template with glasses: light tortoiseshell frames, an old colour portrait"),
    ("deepface__img25.jpg", "template with glasses: dark frames, a beard"),
)
GROUP_TEMPLATE = (
    "insightface__python-package_insightface_data_images_t1.jpg",
    "group template: six people at a table, each face the service finds filled",
)
GROUP_USERS = (
    "insightface__bulk_kun_crop.jpg",
    "deepface__img25.jpg",
    "face_recognition__examples_knn_examples_train_kit_harington_john2.jpeg",
    "face_recognition__examples_obama-240p.jpg",
)  # fill the group's faces left to right
SHEET_CROP = 1.6  # crop side over the face box side
LABEL_HEIGHT = 22
LABEL_FONT = cv2.FONT_HERSHEY_SIMPLEX
LABEL_SCALE = 0.45
GAP = 6


@dataclass
class OccluderPair:
    user: str
    template: str
    error: str = ""
    hair_mean_dl: float = float("nan")
    hair_share_dl8: float = float("nan")
    glasses_mean_dl: float = float("nan")
    glasses_share_dl8: float = float("nan")
    glare_mean_dl: float = float("nan")  # the rims with glare against the rims alone, under the lenses
    glare_share_dl8: float = float("nan")
    hand_mean_dl: float = float("nan")
    hand_share_dl8: float = float("nan")
    microphone_mean_dl: float = float("nan")
    microphone_share_dl8: float = float("nan")


@dataclass
class PosePair:
    identity: str
    frontal: str
    turned: str
    turned_yaw: float
    template: str
    error: str = ""
    mean_dl: float = float("nan")
    detail_ratio_result: float = float("nan")  # far over near cheek, the turned user's result
    detail_ratio_frontal: float = float("nan")  # the same in the frontal user's result
    detail_ratio_template: float = float("nan")
    detail_error: float = float("nan")  # ratio in the turned result / ratio in the template - 1


@dataclass
class LowResPair:
    user: str
    template: str
    upscale: float  # the template's IOD over the user's
    error: str = ""
    fine_ratio: float = float("nan")  # the result's finest band over the template's (rms, plain skin)
    next_ratio: float = float("nan")  # the same of the band above it


@dataclass
class GroupPhoto:
    photo: str
    judge_faces: int = 0  # faces >= 48 px dlib's CNN finds
    found: int = 0  # faces registration finds
    matched: int = 0  # judge faces with a found face over them
    error: str = ""


@dataclass
class RealismSummary:
    occluder_pairs: int
    occluder_failed: int
    hair_mean_dl: float
    hair_share_dl8: float
    glasses_mean_dl: float
    glasses_share_dl8: float
    pose_identities: int
    pose_pairs: int
    pose_failed: int
    pose_mean_dl: float
    pose_mean_dl_max: float
    pose_detail_error: float
    pose_detail_error_max: float
    pose_floor_pairs: int
    pose_floor_mean_dl: float
    group_photos: int
    group_judge_faces: int
    group_matched: int
    group_recall: float
    glare_mean_dl: float = float("nan")
    glare_share_dl8: float = float("nan")
    hand_mean_dl: float = float("nan")
    hand_share_dl8: float = float("nan")
    microphone_mean_dl: float = float("nan")
    microphone_share_dl8: float = float("nan")
    template_hand_pairs: int = 0
    template_hand_failed: int = 0
    template_hand_mean_dl: float = float("nan")
    template_hand_share_dl8: float = float("nan")
    template_microphone_mean_dl: float = float("nan")
    template_microphone_share_dl8: float = float("nan")
    low_res_pairs: int = 0
    low_res_failed: int = 0
    low_res_fine: float = float("nan")
    low_res_fine_min: float = float("nan")
    low_res_next: float = float("nan")
    low_res_next_min: float = float("nan")
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Sizes:
    occluder_pairs: int = OCCLUDER_PAIRS
    pose_templates: int = POSE_TEMPLATES
    group_photos: int | None = None  # the smallest this many; None: all
    template_hand_pairs: int = handsbench.TEMPLATE_PAIRS
    pose_floor_identities: int = POSE_FLOOR_IDENTITIES
    low_res_templates: int = LOW_RES_TEMPLATES


# ------------------------------------------------------------------ the face's frame


@dataclass(frozen=True)
class FaceFrame:
    """Pixels from face coordinates in IOD units (see STRANDS)."""

    origin: np.ndarray
    x_axis: np.ndarray  # one IOD along the eye line
    y_axis: np.ndarray  # one IOD down the face

    def to_pixels(self, xy: np.ndarray) -> np.ndarray:
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        return self.origin + xy[:, :1] * self.x_axis + xy[:, 1:] * self.y_axis

    @property
    def iod(self) -> float:
        return float(np.linalg.norm(self.x_axis))


def face_frame(points: np.ndarray) -> FaceFrame:
    left, right = points[36].astype(np.float64), points[45].astype(np.float64)
    x_axis = right - left
    return FaceFrame(origin=(left + right) / 2, x_axis=x_axis, y_axis=np.array([-x_axis[1], x_axis[0]]))


# ------------------------------------------------------------------ occluders


def cubic_bezier(control: np.ndarray, count: int = CURVE_POINTS) -> np.ndarray:
    t = np.linspace(0.0, 1.0, count)[:, None]
    p0, p1, p2, p3 = np.asarray(control, dtype=np.float64)
    return (1 - t) ** 3 * p0 + 3 * (1 - t) ** 2 * t * p1 + 3 * (1 - t) * t**2 * p2 + t**3 * p3


def hair_strand_lines(points: np.ndarray) -> list[np.ndarray]:
    frame = face_frame(points)
    return [frame.to_pixels(cubic_bezier(np.array(strand))) for strand in STRANDS]


def glasses_lines(points: np.ndarray) -> list[np.ndarray]:
    """Two elliptic rims, each centred on its eye and turned with the eye line, and the bridge."""
    frame = face_frame(points)
    unit_x, unit_y = frame.x_axis / frame.iod, frame.y_axis / frame.iod
    half_w, half_h = RIM_SIZE[0] / 2 * frame.iod, RIM_SIZE[1] / 2 * frame.iod
    angles = np.linspace(0, 2 * np.pi, CURVE_POINTS + 1)[:, None]
    rims, inner_ends = [], []
    for eye, inward in zip(EYES, (1.0, -1.0)):
        centre = points[list(eye)].astype(np.float64).mean(axis=0)
        rims.append(centre + np.cos(angles) * half_w * unit_x + np.sin(angles) * half_h * unit_y)
        inner_ends.append(centre + inward * half_w * unit_x)
    rise = -BRIDGE_RISE * frame.iod * unit_y
    bridge = cubic_bezier(np.array([inner_ends[0], inner_ends[0] + rise, inner_ends[1] + rise, inner_ends[1]]))
    return [*rims, bridge]


def stroke_coverage(shape: tuple[int, ...], lines: list[np.ndarray], width: float) -> np.ndarray:
    """Anti-aliased coverage (0..1, float32) of round-capped strokes `width` px wide along
    the polylines: drawn sharp on a SUPERSAMPLE-times finer grid, then averaged per pixel."""
    height, image_width = shape[:2]
    coverage = np.zeros((height, image_width), np.float32)
    everything = np.vstack(lines)
    pad = width / 2 + 2
    x0, y0 = np.maximum(np.floor(everything.min(axis=0) - pad).astype(int), 0)
    x1, y1 = np.minimum(np.ceil(everything.max(axis=0) + pad).astype(int), (image_width, height))
    if x1 <= x0 or y1 <= y0:
        return coverage
    fine = np.zeros(((y1 - y0) * SUPERSAMPLE, (x1 - x0) * SUPERSAMPLE), np.uint8)
    shift = 4  # cv2 draws fixed-point coordinates with this many fractional bits
    for line in lines:
        # A pixel's centre i is the fine grid's (i + 0.5) * SUPERSAMPLE - 0.5.
        fine_xy = ((line - (x0, y0)) + 0.5) * SUPERSAMPLE - 0.5
        cv2.polylines(
            fine,
            [np.round(fine_xy * (1 << shift)).astype(np.int32)],
            False,
            255,
            thickness=max(1, int(round(width * SUPERSAMPLE))),
            lineType=cv2.LINE_8,
            shift=shift,
        )
    coarse = cv2.resize(fine, (x1 - x0, y1 - y0), interpolation=cv2.INTER_AREA)
    coverage[y0:y1, x0:x1] = coarse.astype(np.float32) / 255
    return coverage


def paint(rgb: np.ndarray, coverage: np.ndarray, colour: tuple[int, int, int]) -> np.ndarray:
    alpha = coverage[:, :, None]
    out = rgb.astype(np.float32) * (1 - alpha) + np.array(colour, np.float32) * alpha
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def draw_hair(rgb: np.ndarray, points: np.ndarray) -> np.ndarray:
    width = STRAND_WIDTH * face_frame(points).iod
    return paint(rgb, stroke_coverage(rgb.shape, hair_strand_lines(points), width), HAIR_COLOUR)


def draw_glasses(rgb: np.ndarray, points: np.ndarray) -> np.ndarray:
    width = FRAME_WIDTH * face_frame(points).iod
    return paint(rgb, stroke_coverage(rgb.shape, glasses_lines(points), width), GLASSES_COLOUR)


def lens_insides(shape: tuple[int, ...], points: np.ndarray) -> np.ndarray:
    """(h, w) bool: inside each drawn rim, short of its stroke."""
    frame = face_frame(points)
    tilt = float(np.degrees(np.arctan2(frame.x_axis[1], frame.x_axis[0])))
    axes = tuple(int(round((size / 2 - FRAME_WIDTH) * frame.iod)) for size in RIM_SIZE)
    inside = np.zeros(shape[:2], np.uint8)
    for eye in EYES:
        centre = np.round(points[list(eye)].astype(np.float64).mean(axis=0)).astype(int)
        cv2.ellipse(inside, (int(centre[0]), int(centre[1])), axes, tilt, 0, 360, 1, -1)
    return inside > 0


def glare_coverage(shape: tuple[int, ...], points: np.ndarray) -> np.ndarray:
    """The drawn glare's opacity (0..1, float32): GLARE_BLOBS on each lens, inside its rim."""
    frame = face_frame(points)
    unit_x, unit_y = frame.x_axis / frame.iod, frame.y_axis / frame.iod
    tilt = float(np.degrees(np.arctan2(unit_x[1], unit_x[0])))
    coverage = np.zeros(shape[:2], np.float32)
    for eye, outward in zip(EYES, (-1.0, 1.0)):
        centre = points[list(eye)].astype(np.float64).mean(axis=0)
        for dx, dy, half_w, half_h, angle in GLARE_BLOBS:
            at = centre + outward * dx * frame.iod * unit_x + dy * frame.iod * unit_y
            blob = np.zeros(shape[:2], np.float32)
            axes = (max(1, int(half_w * frame.iod)), max(1, int(half_h * frame.iod)))
            cv2.ellipse(blob, (int(round(at[0])), int(round(at[1]))), axes, tilt + outward * angle, 0, 360, 1.0, -1)
            np.maximum(coverage, cv2.GaussianBlur(blob, (0, 0), GLARE_SOFTNESS * frame.iod), out=coverage)
    return coverage * lens_insides(shape, points) * GLARE_OPACITY


def draw_glare(rgb: np.ndarray, points: np.ndarray) -> np.ndarray:
    """The drawn glasses with glare on their lenses."""
    return paint(draw_glasses(rgb, points), glare_coverage(rgb.shape, points), GLARE_COLOUR)


def under_lenses(shape: tuple[int, ...], points: np.ndarray) -> np.ndarray:
    """The template's skin the drawn lenses would cover: inside the rims, the eyes' openings
    (dlib's eye outlines) left out."""
    eyes = np.zeros(shape[:2], np.uint8)
    for eye in EYES:
        cv2.fillConvexPoly(eyes, cv2.convexHull(np.round(points[list(eye)]).astype(np.int32)), 1)
    return lens_insides(shape, points) & (eyes == 0)


# ------------------------------------------------------------------ skin and its measures


def _grow(mask: np.ndarray, radius: float) -> np.ndarray:
    r = max(1, int(round(radius)))
    return cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))


def feature_mask(shape: tuple[int, ...], points: np.ndarray) -> np.ndarray:
    """Eyes, brows, nose base and mouth, each grown by FEATURE_MARGIN IOD."""
    mask = np.zeros(shape[:2], np.uint8)
    for group in (*EYES, *BROWS, NOSE_BASE, MOUTH):
        hull = cv2.convexHull(np.round(points[list(group)]).astype(np.int32))
        cv2.fillConvexPoly(mask, hull, 255)
    return _grow(mask, FEATURE_MARGIN * quality.interocular_distance(points)) > 0


def plain_skin_mask(shape: tuple[int, ...], points: np.ndarray) -> np.ndarray:
    return quality.face_polygon_mask(shape, points) & ~feature_mask(shape, points)


def lstar(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb.astype(np.float32) / 255, cv2.COLOR_RGB2Lab)[:, :, 0]


def lstar_change(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """Mean |dL*| and the share of pixels with |dL*| > LSTAR_STEP, inside the mask."""
    diff = np.abs(lstar(a) - lstar(b))[mask]
    return float(diff.mean()), float((diff > LSTAR_STEP).mean())


def cheek_sides(shape: tuple[int, ...], points: np.ndarray, far_is_right: bool) -> tuple[np.ndarray, np.ndarray]:
    """The plain skin split at the nose line (a band around it left out): far side, near side."""
    top, tip = points[NOSE_LINE[0]].astype(np.float64), points[NOSE_LINE[1]].astype(np.float64)
    down = (tip - top) / max(np.linalg.norm(tip - top), 1e-6)
    ys, xs = np.mgrid[0 : shape[0], 0 : shape[1]]
    rightward = (xs - top[0]) * down[1] - (ys - top[1]) * down[0]  # > 0: the image's right
    band = NOSE_BAND * quality.interocular_distance(points)
    skin = plain_skin_mask(shape, points)
    right, left = skin & (rightward > band), skin & (rightward < -band)
    return (right, left) if far_is_right else (left, right)


def laplacian_energy(rgb: np.ndarray, mask: np.ndarray) -> float:
    luma = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    return float((cv2.Laplacian(luma, cv2.CV_32F) ** 2)[mask].mean())


def far_near_ratio(rgb: np.ndarray, sides: tuple[np.ndarray, np.ndarray]) -> float:
    far, near = sides
    if not far.any() or not near.any():
        return float("nan")
    return laplacian_energy(rgb, far) / max(laplacian_energy(rgb, near), 1e-6)


# ------------------------------------------------------------------ photos and fusion


class Photos:
    """The set's photos (and the demo template) by file name, decoded, judged, detected once."""

    def __init__(self, faces_dir: Path) -> None:
        self.faces_dir = faces_dir

    def path(self, name: str) -> Path:
        return self.faces_dir / name

    @lru_cache(maxsize=None)
    def data(self, name: str) -> bytes:
        return demo_photo() if name == DEMO else (self.faces_dir / name).read_bytes()

    @lru_cache(maxsize=16)
    def pixels(self, name: str) -> np.ndarray:
        return decode_image(self.data(name))

    @lru_cache(maxsize=None)
    def landmarks(self, name: str) -> np.ndarray | None:
        judged = quality.judge(self.pixels(name))
        return None if judged is None else judged.landmarks

    @lru_cache(maxsize=None)
    def yaw(self, name: str) -> float | None:
        """The service's yaw of the photo's one face; None unless it finds exactly one."""
        try:
            faces = detect_faces(decode_image(self.data(name)))
        except FacefuseError:
            return None
        return faces[0].yaw if len(faces) == 1 else None


class Fuser:
    """FuseService with the template as an ad-hoc photo; answers the decoded JPEG."""

    def __init__(self, data_dir: Path) -> None:
        self.service = FuseService(Settings(data_dir=data_dir, demo_template=False, max_image_bytes=LOSSLESS_BYTES))

    def fuse(self, users: list[bytes], template: bytes, face_indices: list[int] | None = None) -> np.ndarray:
        indices = face_indices or [None] * len(users)
        job = FuseJob(
            users=[UserPhoto(u, template_face_index=i) for u, i in zip(users, indices)],
            template_photo=template,
            ai_label=False,  # the visible AI label is not what these measures judge
        )
        return decode_image(self.service.fuse_to_jpeg(job), ImageLimits(max_bytes=LOSSLESS_BYTES))


# ------------------------------------------------------------------ pairs


def spread(items: list, count: int) -> list:
    """`count` items evenly spaced over the list, in order."""
    if count >= len(items):
        return list(items)
    return [items[int(i * len(items) / count)] for i in range(count)]


def one_per_identity(photos: list[quality.Photo]) -> list[quality.Photo]:
    seen: dict[str, quality.Photo] = {}
    for photo in photos:
        if photo.identity in NO_IDENTITY:
            seen[photo.file] = photo  # unnamed: each photo its own person
        else:
            seen.setdefault(photo.identity, photo)
    return sorted(seen.values(), key=lambda p: p.file)


def template_choice(photos: list[quality.Photo], count: int) -> list[quality.Photo]:
    """The demo template first, then photos of named people of the set, one per identity,
    spread over it (every other one: the rest are the occluder users)."""
    named = [p for p in one_per_identity(photos)[1::2] if p.identity not in NO_IDENTITY]
    return [quality.Photo(DEMO, DEMO_IDENTITY)] + spread(named, count - 1)


def same_person(a: quality.Photo, b: quality.Photo) -> bool:
    return a.file == b.file or (a.identity == b.identity and a.identity not in NO_IDENTITY)


def occluder_pairs(photos: list[quality.Photo], count: int) -> list[tuple[quality.Photo, quality.Photo]]:
    """Deterministic (user, template): OCCLUDER_USERS users, one per identity, spread over
    the frontal photos, each into successive templates of a different identity."""
    users = spread(one_per_identity(photos)[::2], OCCLUDER_USERS)
    templates = template_choice(photos, OCCLUDER_TEMPLATES)
    pairs = []
    for i in range(count):
        user = users[i % len(users)]
        j = i + i // len(users)
        while same_person(templates[j % len(templates)], user):
            j += 1
        pairs.append((user, templates[j % len(templates)]))
    return pairs


def template_hand_pairs(photos: list[quality.Photo], count: int) -> list[tuple[str, str]]:
    """Deterministic (user, template) for the template side of hands: the occluder users
    into the occluder templates (handsbench.template_pairs)."""
    users = [u.file for u in spread(one_per_identity(photos)[::2], OCCLUDER_USERS)]
    templates = [t.file for t in template_choice(photos, OCCLUDER_TEMPLATES)]
    return handsbench.template_pairs(users, templates, count)


def pose_partners(faces_dir: Path, photos: Photos) -> list[tuple[str, str, str, float]]:
    """(identity, frontal, turned, turned yaw) for identities with a frontal photo (|yaw| <=
    FRONTAL_MAX_YAW, the most frontal) and single-face photos turned TURNED_YAW by the
    service's own yaw."""
    rows = _manifest(faces_dir)
    by_identity: dict[str, list[tuple[str, set[str]]]] = {}
    for row in rows:
        if row["identity"] not in NO_IDENTITY and row["n_faces"] == "1":
            by_identity.setdefault(row["identity"], []).append((row["file"], set(row["categories"].split(","))))
    partners = []
    for identity, files in sorted(by_identity.items()):
        yaws = {name: photos.yaw(name) for name, _ in files}
        frontal = [
            (abs(y), name)
            for name, cats in files
            if "frontal" in cats and (y := yaws[name]) is not None and abs(y) <= FRONTAL_MAX_YAW
        ]
        if not frontal:
            continue
        front = min(frontal)[1]
        for name, _ in files:
            y = yaws[name]
            if y is not None and TURNED_YAW[0] <= abs(y) <= TURNED_YAW[1]:
                partners.append((identity, front, name, float(y)))
    return partners


def frontal_pairs(faces_dir: Path, photos: Photos, count: int) -> list[tuple[str, str, str, float]]:
    """(identity, frontal, another frontal, its yaw) for the `count` identities with the most
    single-face photos within FRONTAL_MAX_YAW (ties by name): their two most frontal."""
    by_identity: dict[str, list[tuple[float, str]]] = {}
    for row in _manifest(faces_dir):
        if row["identity"] not in NO_IDENTITY and row["n_faces"] == "1" and "frontal" in row["categories"].split(","):
            yaw = photos.yaw(row["file"])
            if yaw is not None and abs(yaw) <= FRONTAL_MAX_YAW:
                by_identity.setdefault(row["identity"], []).append((abs(yaw), row["file"]))
    pairs = []
    for identity, files in sorted(by_identity.items(), key=lambda i: (-len(i[1]), i[0])):
        ordered = [name for _, name in sorted(files)]
        # Two different photos: one photo at two sizes (obama-240p, obama_small) is not that.
        other = next((name for name in ordered[1:] if not same_photo(photos, ordered[0], name)), None)
        if other is not None:
            pairs.append((identity, ordered[0], other, float(photos.yaw(other) or 0.0)))
        if len(pairs) == count:
            break
    return pairs


def same_photo(photos: Photos, a: str, b: str) -> bool:
    """Whether two files are one photo (sizes, crops, encodings aside): their faces with the
    scene around, aligned on the judge's eye corners and mouth (the face a quarter of 64 px),
    correlate over SAME_PHOTO."""
    crops = []
    for name in (a, b):
        points = photos.landmarks(name)
        if points is None:
            return False
        corners = np.float32([points[36], points[45], points[48:68].mean(axis=0)])
        canonical = np.float32([[26, 28], [38, 28], [32, 37]])
        gray = cv2.cvtColor(photos.pixels(name), cv2.COLOR_RGB2GRAY)
        turn = cv2.getAffineTransform(corners, canonical)
        crops.append(cv2.warpAffine(gray, turn, (64, 64), borderMode=cv2.BORDER_REPLICATE).astype(np.float64))
    x, y = (c - c.mean() for c in crops)
    return float((x * y).sum() / max(float(np.sqrt((x * x).sum() * (y * y).sum())), 1e-9)) > SAME_PHOTO


def _manifest(faces_dir: Path) -> list[dict[str, str]]:
    with open(faces_dir / "MANIFEST.tsv", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def group_photos(faces_dir: Path, limit: int | None) -> list[str]:
    """Photos tagged `group` or with GROUP_MIN_FACES or more faces, the smallest first."""
    rows = [
        r
        for r in _manifest(faces_dir)
        if GROUP_CATEGORY in r["categories"].split(",") or int(r["n_faces"] or 0) >= GROUP_MIN_FACES
    ]
    rows.sort(key=lambda r: (int(r["width"]) * int(r["height"]), r["file"]))
    return [r["file"] for r in rows[:limit]]


# ------------------------------------------------------------------ measures


def measure_occluders(fuser: Fuser, photos: Photos, user: str, template: str) -> OccluderPair:
    """The user with and without drawn hair and glasses, a pasted hand and microphone, fused
    into the same template; and the drawn glasses with glare on their lenses against the
    glasses alone."""
    out = OccluderPair(user, template)
    user_points, template_points = photos.landmarks(user), photos.landmarks(template)
    if user_points is None or template_points is None:
        out.error = "the judge found no face"
        return out
    clean = photos.pixels(user)
    drawn = {"hair": draw_hair(clean, user_points), "glasses": draw_glasses(clean, user_points)}
    for kind in handsbench.KINDS:
        drawn[kind] = cutouts.paste(clean, handsbench.eyes(user_points), kind)
    template_bytes = photos.data(template)
    skin = plain_skin_mask(photos.pixels(template).shape, template_points)
    try:
        base = fuser.fuse([png_bytes(clean)], template_bytes)
        fused = {}
        for kind, image in drawn.items():
            fused[kind] = fuser.fuse([png_bytes(image)], template_bytes)
            mean, share = lstar_change(base, fused[kind], skin)
            setattr(out, f"{kind}_mean_dl", mean)
            setattr(out, f"{kind}_share_dl8", share)
        glared = fuser.fuse([png_bytes(draw_glare(clean, user_points))], template_bytes)
        lenses = under_lenses(base.shape, template_points)
        out.glare_mean_dl, out.glare_share_dl8 = lstar_change(fused["glasses"], glared, lenses)
    except FacefuseError as error:
        out.error = f"{error.error.code} {error.detail}"
    return out


def measure_pose(fuser: Fuser, photos: Photos, partner: tuple[str, str, str, float], template: str) -> PosePair:
    identity, frontal, turned, yaw = partner
    out = PosePair(identity, frontal, turned, yaw, template)
    template_points = photos.landmarks(template)
    if template_points is None:
        out.error = "the judge found no face"
        return out
    template_rgb, template_bytes = photos.pixels(template), photos.data(template)
    try:
        from_frontal = fuser.fuse([photos.data(frontal)], template_bytes)
        from_turned = fuser.fuse([photos.data(turned)], template_bytes)
    except FacefuseError as error:
        out.error = f"{error.error.code} {error.detail}"
        return out
    out.mean_dl = lstar_change(from_frontal, from_turned, plain_skin_mask(template_rgb.shape, template_points))[0]
    # yaw > 0 turns the face to the image's right: its right cheek turns away, edge-on.
    sides = cheek_sides(template_rgb.shape, template_points, far_is_right=yaw > 0)
    out.detail_ratio_result = far_near_ratio(from_turned, sides)
    out.detail_ratio_frontal = far_near_ratio(from_frontal, sides)
    out.detail_ratio_template = far_near_ratio(template_rgb, sides)
    out.detail_error = out.detail_ratio_result / out.detail_ratio_template - 1
    return out


def low_res_pairs(faces_dir: Path, photos: Photos, templates: list[quality.Photo]) -> list[tuple[str, str, float]]:
    """(user, template, upscale): one single-face LOW_RES_CATEGORY photo per identity (the
    first by name), into each template whose face is LOW_RES_UPSCALE times larger or more."""
    users: dict[str, str] = {}
    for row in _manifest(faces_dir):
        if row["n_faces"] == "1" and LOW_RES_CATEGORY in row["categories"].split(","):
            users.setdefault(row["identity"], row["file"])
    pairs = []
    for identity, user in sorted(users.items(), key=lambda item: item[1]):
        points = photos.landmarks(user)
        if points is None:
            continue
        for template in templates:
            t_points = photos.landmarks(template.file)
            if t_points is None or same_person(template, quality.Photo(user, identity)):
                continue
            upscale = quality.interocular_distance(t_points) / quality.interocular_distance(points)
            if upscale >= LOW_RES_UPSCALE:
                pairs.append((user, template.file, float(upscale)))
    return pairs


def detail_bands(rgb: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """The rms of luma's finest band (minus its blur at FINE_SIGMA) and of the band above it
    (up to NEXT_SIGMA) inside the mask."""
    luma = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    fine_blur = cv2.GaussianBlur(luma, (0, 0), FINE_SIGMA)
    next_blur = cv2.GaussianBlur(luma, (0, 0), NEXT_SIGMA)
    return (
        float(np.sqrt(np.mean((luma - fine_blur)[mask] ** 2))),
        float(np.sqrt(np.mean((fine_blur - next_blur)[mask] ** 2))),
    )


def measure_low_res(fuser: Fuser, photos: Photos, user: str, template: str, upscale: float) -> LowResPair:
    out = LowResPair(user, template, upscale)
    t_points = photos.landmarks(template)
    assert t_points is not None  # low_res_pairs keeps templates the judge reads
    t_rgb = photos.pixels(template)
    try:
        result = fuser.fuse([photos.data(user)], photos.data(template))
    except FacefuseError as error:
        out.error = f"{error.error.code} {error.detail}"
        return out
    skin = plain_skin_mask(t_rgb.shape, t_points)
    (r_fine, r_next), (t_fine, t_next) = detail_bands(result, skin), detail_bands(t_rgb, skin)
    out.fine_ratio, out.next_ratio = r_fine / max(t_fine, 1e-6), r_next / max(t_next, 1e-6)
    return out


def measure_group(photos: Photos, name: str) -> GroupPhoto:
    """The photo registered as a template: its faces against the judge's
    (benchmarks/group_recall.py, which also says how a face of each is matched)."""
    out = GroupPhoto(name)
    try:
        result = group_recall.measure(photos.path(name))
    except FacefuseError as error:
        out.error = f"{error.error.code} {error.detail}"
        return out
    out.judge_faces, out.found, out.matched = len(result.expected), len(result.registered), len(result.found)
    return out


# ------------------------------------------------------------------ summary


def _of_finite(statistic: Callable[[list[float]], Any], values: list[float]) -> float:
    """`statistic` of the finite values (a failed pair's nan left out); nan when none are."""
    finite = [v for v in values if np.isfinite(v)]
    return float(statistic(finite)) if finite else float("nan")


def _median(values: list[float]) -> float:
    return _of_finite(np.median, values)


def _max(values: list[float]) -> float:
    return _of_finite(np.max, values)


def _min(values: list[float]) -> float:
    return _of_finite(np.min, values)


def summarise(
    occluders: list[OccluderPair],
    poses: list[PosePair],
    groups: list[GroupPhoto],
    notes: list[str],
    template_hands: list[handsbench.TemplateHandPair] | None = None,
    pose_floor: list[PosePair] | None = None,
    low_res: list[LowResPair] | None = None,
) -> RealismSummary:
    kept = template_hands or []
    enlarged = low_res or []
    floor = [p for p in pose_floor or [] if not p.error]
    judge_faces = sum(g.judge_faces for g in groups)
    matched = sum(g.matched for g in groups)
    return RealismSummary(
        occluder_pairs=len(occluders),
        occluder_failed=sum(1 for p in occluders if p.error),
        hair_mean_dl=_median([p.hair_mean_dl for p in occluders]),
        hair_share_dl8=_median([p.hair_share_dl8 for p in occluders]),
        glasses_mean_dl=_median([p.glasses_mean_dl for p in occluders]),
        glasses_share_dl8=_median([p.glasses_share_dl8 for p in occluders]),
        glare_mean_dl=_median([p.glare_mean_dl for p in occluders]),
        glare_share_dl8=_median([p.glare_share_dl8 for p in occluders]),
        pose_identities=len({p.identity for p in poses}),
        pose_pairs=len(poses),
        pose_failed=sum(1 for p in poses if p.error),
        pose_mean_dl=_median([p.mean_dl for p in poses]),
        pose_mean_dl_max=_max([p.mean_dl for p in poses]),
        pose_detail_error=_median([abs(p.detail_error) for p in poses]),
        pose_detail_error_max=_max([abs(p.detail_error) for p in poses]),
        pose_floor_pairs=len(floor),
        pose_floor_mean_dl=_median([p.mean_dl for p in floor]),
        low_res_pairs=len(enlarged),
        low_res_failed=sum(1 for p in enlarged if p.error),
        low_res_fine=_median([p.fine_ratio for p in enlarged]),
        low_res_fine_min=_min([p.fine_ratio for p in enlarged]),
        low_res_next=_median([p.next_ratio for p in enlarged]),
        low_res_next_min=_min([p.next_ratio for p in enlarged]),
        group_photos=len(groups),
        group_judge_faces=judge_faces,
        group_matched=matched,
        group_recall=matched / judge_faces if judge_faces else float("nan"),
        hand_mean_dl=_median([p.hand_mean_dl for p in occluders]),
        hand_share_dl8=_median([p.hand_share_dl8 for p in occluders]),
        microphone_mean_dl=_median([p.microphone_mean_dl for p in occluders]),
        microphone_share_dl8=_median([p.microphone_share_dl8 for p in occluders]),
        template_hand_pairs=len(kept),
        template_hand_failed=sum(1 for p in kept if p.error),
        template_hand_mean_dl=_median([p.hand_mean_dl for p in kept]),
        template_hand_share_dl8=_median([p.hand_share_dl8 for p in kept]),
        template_microphone_mean_dl=_median([p.microphone_mean_dl for p in kept]),
        template_microphone_share_dl8=_median([p.microphone_share_dl8 for p in kept]),
        notes=notes,
    )


def verdicts(summary: RealismSummary) -> dict[str, bool]:
    values = asdict(summary)
    return {
        name: bool(values[name] >= bound if op == ">=" else values[name] <= bound)
        for name, (op, bound) in TARGETS.items()
    }


def summary_lines(summary: RealismSummary) -> list[str]:
    met = verdicts(summary)

    def mark(name: str) -> str:
        return "MET" if met[name] else "MISS"

    return [
        f"realism occluders (pairs {summary.occluder_pairs}, failed {summary.occluder_failed}; median; "
        f"targets mean <= 1.5, share <= 2 %): "
        f"hair |dL*| {summary.hair_mean_dl:.2f} {mark('hair_mean_dl')}, >8 {summary.hair_share_dl8:.1%} "
        f"{mark('hair_share_dl8')}; glasses |dL*| {summary.glasses_mean_dl:.2f} {mark('glasses_mean_dl')}, "
        f">8 {summary.glasses_share_dl8:.1%} {mark('glasses_share_dl8')}",
        f"realism lens glare (the rims with glare against the rims alone, under the lenses; median; targets "
        f"as above): |dL*| {summary.glare_mean_dl:.2f} {mark('glare_mean_dl')}, >8 {summary.glare_share_dl8:.1%} "
        f"{mark('glare_share_dl8')}",
        f"realism hands (median; targets mean <= 1.5, share <= 2 %): over the user, pairs as above: "
        f"hand |dL*| {summary.hand_mean_dl:.2f} {mark('hand_mean_dl')}, >8 {summary.hand_share_dl8:.1%} "
        f"{mark('hand_share_dl8')}; microphone |dL*| {summary.microphone_mean_dl:.2f} "
        f"{mark('microphone_mean_dl')}, >8 {summary.microphone_share_dl8:.1%} {mark('microphone_share_dl8')}",
        f"realism hands kept over the template (pairs {summary.template_hand_pairs}, failed "
        f"{summary.template_hand_failed}; median): hand |dL*| {summary.template_hand_mean_dl:.2f} "
        f"{mark('template_hand_mean_dl')}, >8 {summary.template_hand_share_dl8:.1%} "
        f"{mark('template_hand_share_dl8')}; microphone |dL*| {summary.template_microphone_mean_dl:.2f} "
        f"{mark('template_microphone_mean_dl')}, >8 {summary.template_microphone_share_dl8:.1%} "
        f"{mark('template_microphone_share_dl8')}",
        f"realism pose (identities {summary.pose_identities}, pairs {summary.pose_pairs}, failed "
        f"{summary.pose_failed}; median, max): |dL*| {summary.pose_mean_dl:.2f} (max {summary.pose_mean_dl_max:.2f}) "
        f"{mark('pose_mean_dl')} [<= 3]; far/near detail off the template's by "
        f"{summary.pose_detail_error:.0%} (max {summary.pose_detail_error_max:.0%}) "
        f"{mark('pose_detail_error')} [<= 30 %]",
        f"realism pose floor (two frontal photos of one person, pairs {summary.pose_floor_pairs}; median; no "
        f"target): |dL*| {summary.pose_floor_mean_dl:.2f}",
        f"realism low-res detail (pairs {summary.low_res_pairs}, failed {summary.low_res_failed}; the "
        f"result's over the template's on the plain skin, median (min)): finest band {summary.low_res_fine:.2f} "
        f"({summary.low_res_fine_min:.2f}) {mark('low_res_fine')}, the band above {summary.low_res_next:.2f} "
        f"({summary.low_res_next_min:.2f}) {mark('low_res_next')} [>= {LOW_RES_DETAIL}]",
        f"realism group recall (photos {summary.group_photos}): {summary.group_matched}/"
        f"{summary.group_judge_faces} = {summary.group_recall:.1%} {mark('group_recall')} [100 %]",
        f"realism targets met: {sum(met.values())}/{len(met)}",
    ]


# ------------------------------------------------------------------ review sheet


def _box_crop(shape: tuple[int, ...], boxes: list[tuple[float, float, float, float]]) -> tuple[int, int, int, int]:
    """x0, y0, x1, y1 around face boxes (x, y, side, side), each grown SHEET_CROP times."""
    corners = []
    for x, y, side, _ in boxes:
        cx, cy, half = x + side / 2, y + side / 2, side * SHEET_CROP / 2
        corners.append((cx - half, cy - half, cx + half, cy + half))
    c = np.array(corners)
    return (
        max(0, int(c[:, 0].min())),
        max(0, int(c[:, 1].min())),
        min(shape[1], int(np.ceil(c[:, 2].max()))),
        min(shape[0], int(np.ceil(c[:, 3].max()))),
    )


def _crop(rgb: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    x0, y0, x1, y1 = box
    return rgb[y0:y1, x0:x1]


def _labelled(panel: np.ndarray, text: str) -> np.ndarray:
    text_width = cv2.getTextSize(text, LABEL_FONT, LABEL_SCALE, 1)[0][0]
    label = np.full((LABEL_HEIGHT, max(panel.shape[1], text_width + 6), 3), 255, np.uint8)
    cv2.putText(label, text, (3, LABEL_HEIGHT - 7), LABEL_FONT, LABEL_SCALE, (0, 0, 0), 1, cv2.LINE_AA)
    padded = np.pad(panel, ((0, 0), (0, label.shape[1] - panel.shape[1]), (0, 0)), constant_values=255)
    return np.vstack([label, padded])


def _row(panels: list[tuple[np.ndarray, str]], title: str) -> np.ndarray:
    shown = [_labelled(image, text) for image, text in panels]
    height = max(p.shape[0] for p in shown)
    cells = []
    for p in shown:
        cells += [
            np.pad(p, ((0, height - p.shape[0]), (0, 0), (0, 0)), constant_values=255),
            np.full((height, GAP, 3), 255, np.uint8),
        ]
    return _labelled(np.hstack(cells), title)


def _stack(rows: list[np.ndarray]) -> np.ndarray:
    width = max(r.shape[1] for r in rows)
    return np.vstack([np.pad(r, ((0, GAP), (0, width - r.shape[1]), (0, 0)), constant_values=200) for r in rows])


def _short(name: str) -> str:
    return name if len(name) <= 40 else "..." + name[-37:]


def sheet_pair_row(fuser: Fuser, photos: Photos, user: tuple[str, str], template: tuple[str, str]) -> np.ndarray:
    user_rgb, template_rgb = photos.pixels(user[0]), photos.pixels(template[0])
    user_face = max(detect_faces(user_rgb), key=lambda f: f.size)
    template_face = max(detect_faces(template_rgb), key=lambda f: f.size)  # the face a lone user fills
    box = _box_crop(template_rgb.shape, [template_face.box])
    try:
        result, result_text = _crop(fuser.fuse([photos.data(user[0])], photos.data(template[0])), box), "result"
    except FacefuseError as error:
        result, result_text = np.zeros((8, 8, 3), np.uint8), f"refused: {error.error.code} {error.detail}"
    return _row(
        [
            (_crop(user_rgb, _box_crop(user_rgb.shape, [user_face.box])), f"user {_short(user[0])}"),
            (_crop(template_rgb, box), f"template {_short(template[0])}"),
            (result, result_text),
        ],
        f"{user[1]}  |  {template[1]}",
    )


def sheet_group_row(fuser: Fuser, photos: Photos) -> np.ndarray:
    name, why = GROUP_TEMPLATE
    template_rgb = photos.pixels(name)
    faces = detect_faces(template_rgb)
    users = list(GROUP_USERS[: len(faces)])
    result = fuser.fuse([photos.data(u) for u in users], photos.data(name), list(range(len(users))))
    box = _box_crop(template_rgb.shape, [f.box for f in faces[: len(users)]])
    user_crops = []
    for user in users:
        rgb = photos.pixels(user)
        user_crops.append(_crop(rgb, _box_crop(rgb.shape, [max(detect_faces(rgb), key=lambda f: f.size).box])))
    users_panel = _stack(user_crops)
    return _row(
        [
            (users_panel, "users, left to right"),
            (_crop(template_rgb, box), f"template {_short(name)}"),
            (_crop(result, box), "result"),
        ],
        why,
    )


def review_sheet(fuser: Fuser, photos: Photos) -> np.ndarray:
    """Every chosen user into every chosen template (not into its own identity's), then the group."""
    rows = []
    for template in SHEET_TEMPLATES:
        for user in SHEET_USERS:
            if user[0] != template[0]:
                rows.append(sheet_pair_row(fuser, photos, user, template))
    rows.append(sheet_group_row(fuser, photos))
    return _stack(rows)


# ------------------------------------------------------------------ running


def pose_note(partners: list[tuple[str, str, str, float]]) -> str:
    """Which identities pose consistency rests on: the set has few turned photos."""
    identities = sorted({p[0] for p in partners})
    counted = "1 identity of the set has" if len(identities) == 1 else f"{len(identities)} identities of the set have"
    return f"pose: {counted} a frontal photo and one turned {TURNED_YAW[0]:.0f}-{TURNED_YAW[1]:.0f} deg: " + (
        ", ".join(f"{i} ({f} and {t}, yaw {y:+.0f})" for i, f, t, y in partners) or "none"
    )


def run(faces_dir: Path, sizes: Sizes, sheet: Path | None, progress=print, hands_sheet: Path | None = None) -> dict:
    """Every measure; the report as a JSON-ready dict (summary, targets_met, per pair)."""
    photos = Photos(faces_dir)
    work_dir = Path(tempfile.mkdtemp(prefix="facefuse-realism-"))
    fuser = Fuser(work_dir)
    valid = quality.valid_photos(faces_dir)

    occluders = []
    for user, template in occluder_pairs(valid, sizes.occluder_pairs):
        occluders.append(measure_occluders(fuser, photos, user.file, template.file))
        p = occluders[-1]
        progress(
            f"occluders {user.file[:34]:34s} -> {template.file[:34]:34s} hair {p.hair_mean_dl:.2f} "
            f"{p.hair_share_dl8:.1%} glasses {p.glasses_mean_dl:.2f} {p.glasses_share_dl8:.1%} glare "
            f"{p.glare_mean_dl:.2f} {p.glare_share_dl8:.1%} hand "
            f"{p.hand_mean_dl:.2f} {p.hand_share_dl8:.1%} microphone {p.microphone_mean_dl:.2f} "
            f"{p.microphone_share_dl8:.1%} {p.error}"
        )

    template_hands = []
    for user, template in template_hand_pairs(valid, sizes.template_hand_pairs):
        template_hands.append(handsbench.measure_template(fuser, photos, user, template))
        h = template_hands[-1]
        progress(
            f"template hands {user[:34]:34s} -> {template[:34]:34s} hand {h.hand_mean_dl:.2f} "
            f"{h.hand_share_dl8:.1%} microphone {h.microphone_mean_dl:.2f} {h.microphone_share_dl8:.1%} {h.error}"
        )

    partners = pose_partners(faces_dir, photos)
    notes = [pose_note(partners)]

    def pose_pairs(pairs: list[tuple[str, str, str, float]], line: Callable[[PosePair], str]) -> list[PosePair]:
        """Each pair of photos of one person into the templates of other identities."""
        measured = []
        for partner in pairs:
            for template in template_choice(valid, sizes.pose_templates):
                if template.identity == partner[0]:  # partners always have a named identity
                    continue
                measured.append(measure_pose(fuser, photos, partner, template.file))
                progress(line(measured[-1]))
        return measured

    poses = pose_pairs(
        partners,
        lambda p: (
            f"pose {p.turned[-30:]:30s} -> {p.template[:34]:34s} |dL*| {p.mean_dl:.2f} "
            f"detail far/near {p.detail_ratio_result:.2f} (frontal's {p.detail_ratio_frontal:.2f}, "
            f"template {p.detail_ratio_template:.2f}) {p.error}"
        ),
    )
    pose_floor = pose_pairs(
        frontal_pairs(faces_dir, photos, sizes.pose_floor_identities),
        lambda p: (
            f"pose floor {p.frontal[-24:]:24s} / {p.turned[-24:]:24s} -> {p.template[:30]:30s} "
            f"|dL*| {p.mean_dl:.2f} {p.error}"
        ),
    )

    low_res = []
    for user, template, upscale in low_res_pairs(faces_dir, photos, template_choice(valid, sizes.low_res_templates)):
        low_res.append(measure_low_res(fuser, photos, user, template, upscale))
        p = low_res[-1]
        progress(
            f"low-res {user[-30:]:30s} -> {template[:34]:34s} x{upscale:.1f} finest {p.fine_ratio:.2f} "
            f"above {p.next_ratio:.2f} {p.error}"
        )

    groups = []
    for name in group_photos(faces_dir, sizes.group_photos):
        groups.append(measure_group(photos, name))
        g = groups[-1]
        progress(f"group {name[:50]:50s} judge {g.judge_faces} found {g.found} matched {g.matched} {g.error}")

    if sheet is not None:
        Image.fromarray(review_sheet(fuser, photos)).save(sheet)
    if hands_sheet is not None:
        Image.fromarray(handsbench.sheet(fuser, photos)).save(hands_sheet)

    summary = summarise(occluders, poses, groups, notes, template_hands, pose_floor, low_res)
    return {
        "summary": asdict(summary),
        "targets_met": verdicts(summary),
        "occluder_pairs": [asdict(p) for p in occluders],
        "template_hand_pairs": [asdict(p) for p in template_hands],
        "pose_pairs": [asdict(p) for p in poses],
        "pose_floor_pairs": [asdict(p) for p in pose_floor],
        "low_res_pairs": [asdict(p) for p in low_res],
        "groups": [asdict(g) for g in groups],
        "sheet": str(sheet) if sheet else None,
    }


def summary_from(report: dict) -> RealismSummary:
    return RealismSummary(**report["summary"])


def add_arguments(parser: argparse.ArgumentParser, prefix: str = "") -> None:
    parser.add_argument(f"--{prefix}pairs", type=int, default=OCCLUDER_PAIRS, help="occluder pairs (user x template)")
    parser.add_argument(
        f"--{prefix}pose-templates",
        type=int,
        default=POSE_TEMPLATES,
        help="templates each frontal/turned identity is fused into",
    )
    parser.add_argument(
        f"--{prefix}pose-floor",
        type=int,
        default=POSE_FLOOR_IDENTITIES,
        help="identities whose two frontal photos give the pose measure's floor",
    )
    parser.add_argument(
        f"--{prefix}low-res-templates",
        type=int,
        default=LOW_RES_TEMPLATES,
        help="templates each low-resolution user goes into (those that enlarge its face)",
    )
    parser.add_argument(
        f"--{prefix}groups", type=int, default=None, help="group photos, the smallest first (default: all)"
    )
    parser.add_argument(
        f"--{prefix}hand-pairs",
        type=int,
        default=handsbench.TEMPLATE_PAIRS,
        help="pairs (user x template) with a hand or a microphone over the template's face",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces-dir", type=Path, default=quality.DEFAULT_FACES)
    parser.add_argument("--out", type=Path, default=Path("realism.json"))
    parser.add_argument("--sheet", default="realism.png", help="review sheet PNG ('' for none)")
    parser.add_argument("--hands-sheet", default="hands.png", help="hands review sheet PNG ('' for none)")
    add_arguments(parser)
    args = parser.parse_args(argv)
    report = run(
        args.faces_dir,
        Sizes(args.pairs, args.pose_templates, args.groups, args.hand_pairs, args.pose_floor, args.low_res_templates),
        Path(args.sheet) if args.sheet else None,
        progress=lambda line: print(line, file=sys.stderr),
        hands_sheet=Path(args.hands_sheet) if args.hands_sheet else None,
    )
    args.out.write_text(json.dumps(report, indent=1))
    summary = summary_from(report)
    for line in summary_lines(summary) + summary.notes:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
