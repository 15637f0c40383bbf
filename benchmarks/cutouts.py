"""Hands and a microphone cut out of a real photo, pasted over faces (tests and benchmarks only).

    .venv/bin/python benchmarks/cutouts.py [--faces-dir ../shared/faces] [--out tests/fixtures/hands]

`deepface__img59.jpg` of ../shared/faces shows a man with an open hand and, in the other
hand, a black microphone, both over his black hoodie. This writes two RGBA cut-outs of it
(`open_hand.png`, `microphone_hand.png`) into tests/fixtures/hands, where the tests and
benchmarks/realism.py take them from (so a clone without the full set has them too). What
is cut out is written down here: the hands' 21 landmarks (mediapipe's hand model on the
photo), each hand's outline the skin-coloured pixels around them (the hoodie and the wall
behind are dark and grey), and the microphone a polygon drawn by hand.

`paste(rgb, eyes, kind)` puts a cut-out over a face given its outer eye corners (image
left, image right: the judge's dlib points 36 and 45, or FaceMesh's 33 and 263): scaled to
the face, turned with it, at a named place:

  hand        the open hand over the image-left cheek, the fingers up to the eye, the
              wrist out past the jaw
  microphone  the hand holding the microphone beside the chin, the microphone's head
              over the mouth and chin
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_FACES = REPO.parent / "shared" / "faces"
FIXTURES = REPO / "tests" / "fixtures" / "hands"
SOURCE = "deepface__img59.jpg"

# mediapipe's hand landmarks (Hands, model_complexity=0) on the source photo, pixels.
OPEN_HAND = (
    (761.1, 1084.5), (715.7, 1019.2), (706.3, 956.0), (706.6, 905.8), (687.3, 867.6), (787.1, 958.7),
    (842.8, 892.5), (875.1, 852.6), (901.4, 820.5), (835.9, 983.0), (910.9, 910.9), (954.9, 862.9),
    (989.8, 825.4), (869.8, 1005.8), (940.8, 940.0), (982.3, 895.2), (1013.2, 860.4), (890.5, 1026.2),
    (950.6, 978.8), (986.2, 948.9), (1014.7, 922.8),
)  # fmt: skip
MICROPHONE_HAND = (
    (1267.1, 876.7), (1203.1, 858.5), (1147.8, 809.7), (1110.1, 774.6), (1075.0, 750.2), (1198.6, 712.1),
    (1187.5, 653.2), (1159.7, 647.4), (1133.5, 662.3), (1237.0, 706.7), (1188.5, 699.3), (1168.9, 746.2),
    (1164.5, 785.5), (1271.1, 720.5), (1211.6, 749.9), (1199.9, 803.7), (1200.3, 838.9), (1298.5, 746.9),
    (1246.4, 774.6), (1226.7, 813.7), (1219.6, 839.9),
)  # fmt: skip
# The microphone, drawn by hand on the source photo: its head (the grille between the
# thumb and the index finger), the body through the fist, the body below it to the end cap.
MICROPHONE = (
    ((1077, 700), (1080, 680), (1093, 660), (1110, 650), (1125, 645), (1150, 660), (1180, 675), (1188, 700),
     (1168, 740), (1152, 772), (1120, 745), (1110, 737), (1093, 727), (1080, 713)),
    ((1120, 742), (1182, 700), (1232, 828), (1192, 852)),
    ((1212, 818), (1300, 840), (1350, 878), (1400, 942), (1440, 972), (1462, 1000), (1482, 1035), (1465, 1055),
     (1448, 1068), (1430, 1060), (1400, 1027), (1350, 987), (1325, 960), (1280, 910), (1230, 870), (1196, 850)),
)  # fmt: skip
# The forearm below the microphone hand, down to where the cut-out ends; the beard above
# the microphone's head, which is skin-coloured too.
FOREARM = ((1196, 850), (1290, 860), (1330, 990), (1240, 990))
BEARD = ((1050, 625), (1140, 625), (1125, 645), (1093, 660), (1080, 680), (1050, 700))
# Each cut-out: its box on the source photo (x0, y0, x1, y1), its hand, what else is in it.
BOXES = {"hand": (660, 790, 1040, 1073), "microphone": (1050, 625, 1500, 1073)}
FILES = {"hand": "open_hand.png", "microphone": "microphone_hand.png"}

# Skin on the source photo: redder than blue and bright enough (the hoodie is black, the
# wall grey); in the shadow between the fingers and under the thumb the hand is darker.
SKIN_RED_OVER_BLUE = 10
SKIN_RED = 42
HAND_REACH = 0.35  # of the palm's width: how far around the landmarks' lines skin is looked for
# The landmarks' lines grown by this (of the palm's width) are the hand where not as dark as
# the background (the hand's own shadows are lighter).
HAND_CORE = 0.12
SHADOW_LUMA = 50
EDGE_SOFTNESS = 0.7  # px: the cut-out's anti-aliased edge (a Gaussian's sigma)
EDGE_INSET = 2  # px: the outline taken off the cut-out

FINGERS = ((0, 1, 2, 3, 4), (0, 5, 6, 7, 8), (9, 10, 11, 12), (13, 14, 15, 16), (0, 17, 18, 19, 20))
PALM = (0, 1, 5, 9, 13, 17)


def hand_lines(mask: np.ndarray, landmarks: np.ndarray, width: float) -> None:
    """The palm's hull and each finger's joints as lines `width` px wide, drawn into `mask` (uint8)."""
    w = max(1, int(round(width)))
    cv2.fillConvexPoly(mask, cv2.convexHull(np.round(landmarks[list(PALM)]).astype(np.int32)), 255)
    for finger in FINGERS:
        cv2.polylines(mask, [np.round(landmarks[list(finger)]).astype(np.int32)], False, 255, w, cv2.LINE_8)


def palm_width(landmarks: np.ndarray) -> float:
    return float(np.linalg.norm(landmarks[5] - landmarks[17]))


def cut_out(source: np.ndarray, kind: str) -> np.ndarray:
    """The RGBA cut-out of `kind` from the source photo (RGB)."""
    x0, y0, x1, y1 = BOXES[kind]
    rgb = source[y0:y1, x0:x1]
    origin = np.array([x0, y0], np.float64)
    landmarks = np.array(OPEN_HAND if kind == "hand" else MICROPHONE_HAND) - origin
    width = palm_width(landmarks)
    reach, core = np.zeros(rgb.shape[:2], np.uint8), np.zeros(rgb.shape[:2], np.uint8)
    hand_lines(reach, landmarks, 2 * HAND_REACH * width)
    hand_lines(core, landmarks, 2 * HAND_CORE * width)
    objects = np.zeros(rgb.shape[:2], np.uint8)
    if kind == "microphone":
        cv2.fillPoly(reach, [np.round(np.array(FOREARM) - origin).astype(np.int32)], 255)
        for part in MICROPHONE:
            cv2.fillPoly(objects, [np.round(np.array(part) - origin).astype(np.int32)], 255)
    r, g, b = (rgb[..., i].astype(np.int32) for i in range(3))
    skin = (r - b > SKIN_RED_OVER_BLUE) & (r > SKIN_RED) & (r > g)
    luma = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    hand = ((skin & (reach > 0)) | ((core > 0) & (luma > SHADOW_LUMA))).astype(np.uint8) * 255
    if kind == "microphone":
        cv2.fillPoly(hand, [np.round(np.array(BEARD) - origin).astype(np.int32)], 0)
    hand = cv2.morphologyEx(hand, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (7, 7)))
    mask = _filled(np.maximum(hand, objects))
    # The outermost pixels are half the dark background behind: left out, or the cut-out
    # wears a dark outline wherever it is pasted.
    mask = cv2.erode(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * EDGE_INSET + 1,) * 2))
    alpha = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), EDGE_SOFTNESS)
    return np.dstack([rgb, np.clip(np.round(alpha), 0, 255).astype(np.uint8)])


def _filled(mask: np.ndarray) -> np.ndarray:
    """The largest piece of `mask` (uint8) with its holes filled."""
    count, pieces, stats, _ = cv2.connectedComponentsWithStats((mask > 0).astype(np.uint8), connectivity=8)
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    contours, _ = cv2.findContours((pieces == largest).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    out = np.zeros_like(mask)
    cv2.drawContours(out, contours, -1, 255, cv2.FILLED)
    return out


# ------------------------------------------------------------------ pasting


# The source face's inter-ocular distance (the judge's, outer eye corners): a cut-out keeps
# its size against the face it is pasted over.
SOURCE_IOD = 175.3


@dataclass(frozen=True)
class Placing:
    """Where a cut-out goes, in the face's frame (IOD units from the outer eye corners'
    midpoint, x along the eye line toward dlib point 45, y down the face): its `anchor`
    (source pixels) lands `at`, and the direction from the anchor to `toward` (source
    pixels) turns to `heading`."""

    anchor: tuple[float, float]
    toward: tuple[float, float]
    at: tuple[float, float]
    heading: tuple[float, float]


PLACINGS = {
    # The palm over the image-left cheek and jaw, the fingers up toward the eye, the wrist
    # below and outside the jaw.
    "hand": Placing(anchor=(840.0, 985.0), toward=OPEN_HAND[12], at=(-0.66, 1.5), heading=(0.3, -1.0)),
    # The microphone's head over the mouth and chin, its body down to the image-right past the fist.
    "microphone": Placing(anchor=(1128.0, 703.0), toward=(1470.0, 1045.0), at=(0.0, 0.95), heading=(0.9, 1.0)),
}


def load(kind: str, fixtures: Path = FIXTURES) -> np.ndarray:
    """The RGBA cut-out `kind` ('hand' or 'microphone')."""
    bgra = cv2.imread(str(fixtures / FILES[kind]), cv2.IMREAD_UNCHANGED)
    if bgra is None:
        raise FileNotFoundError(fixtures / FILES[kind])
    return cv2.cvtColor(bgra, cv2.COLOR_BGRA2RGBA)


def placement(eyes: np.ndarray, kind: str) -> np.ndarray:
    """(2, 3) the similarity taking the cut-out's pixels onto a photo whose face has its
    outer eye corners at `eyes` (image left, image right)."""
    left, right = np.asarray(eyes, np.float64)
    x_axis = right - left
    y_axis = np.array([-x_axis[1], x_axis[0]])
    placing = PLACINGS[kind]
    box_origin = np.array(BOXES[kind][:2], np.float64)
    anchor = np.array(placing.anchor) - box_origin
    there = (left + right) / 2 + placing.at[0] * x_axis + placing.at[1] * y_axis
    heading = placing.heading[0] * x_axis + placing.heading[1] * y_axis
    source_way = np.array(placing.toward) - np.array(placing.anchor)
    turn = np.arctan2(heading[1], heading[0]) - np.arctan2(source_way[1], source_way[0])
    scale = float(np.linalg.norm(x_axis)) / SOURCE_IOD
    linear = scale * np.array([[np.cos(turn), -np.sin(turn)], [np.sin(turn), np.cos(turn)]])
    return np.hstack([linear, (there - linear @ anchor)[:, None]])


def coverage(shape: tuple[int, ...], eyes: np.ndarray, kind: str, cutout: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The cut-out on the photo's grid: its RGB (float32) and alpha (0..1, float32)."""
    matrix = placement(eyes, kind)
    size = (shape[1], shape[0])
    rgb = cv2.warpAffine(cutout[..., :3].astype(np.float32), matrix, size, flags=cv2.INTER_LINEAR)
    alpha = cv2.warpAffine(cutout[..., 3].astype(np.float32) / 255, matrix, size, flags=cv2.INTER_LINEAR)
    return rgb, alpha


def paste(rgb: np.ndarray, eyes: np.ndarray, kind: str, cutout: np.ndarray | None = None) -> np.ndarray:
    """`rgb` with the cut-out `kind` over the face whose outer eye corners are `eyes`."""
    over, alpha = coverage(rgb.shape, eyes, kind, load(kind) if cutout is None else cutout)
    out = rgb.astype(np.float32) * (1 - alpha[..., None]) + over * alpha[..., None]
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def png_bytes(rgb: np.ndarray) -> bytes:
    """A photo (RGB) as PNG bytes: what is pasted goes to the service losslessly."""
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok
    return encoded.tobytes()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces-dir", type=Path, default=DEFAULT_FACES)
    parser.add_argument("--out", type=Path, default=FIXTURES)
    args = parser.parse_args(argv)
    bgr = cv2.imread(str(args.faces_dir / SOURCE), cv2.IMREAD_COLOR)
    if bgr is None:
        print(f"{args.faces_dir / SOURCE} not found", file=sys.stderr)
        return 1
    source = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    args.out.mkdir(parents=True, exist_ok=True)
    for kind, name in FILES.items():
        rgba = cut_out(source, kind)
        cv2.imwrite(str(args.out / name), cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA), [cv2.IMWRITE_PNG_COMPRESSION, 9])
        print(f"{args.out / name}: {rgba.shape[1]}x{rgba.shape[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
