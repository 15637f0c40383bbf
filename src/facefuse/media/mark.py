"""The visible AI label: a short text on a plate in a corner of the result.

White text on a dark, rounded plate, both partly transparent: the plate darkens a light
background enough for the white text to stand out, and on a dark one the text stands out
by itself, so the label is legible on any photo. Its size follows the image's shorter
side, so it looks the same on a thumbnail and on a poster. The font ships in the package
(`fonts/`, a subset of Noto Sans CJK SC Bold), so every install draws the same label.

A label is rendered once per text, size and opacity (a few kilobytes, cached); drawing it
on a result is one multiply-add over the plate's pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal, get_args

import numpy as np
import numpy.typing as npt
from fontTools.ttLib import TTFont  # type: ignore[import-untyped]
from PIL import Image, ImageDraw, ImageFont

FONT_PATH = Path(__file__).with_name("fonts") / "FacefuseLabelSans-Bold.otf"
Position = Literal["bottom-right", "bottom-left", "top-right", "top-left"]
POSITIONS: tuple[str, ...] = get_args(Position)
MIN_TEXT_PX = 12  # below this the strokes of 合成 run together
PADDING = 0.3  # the plate's margin around the text, in text heights
MARGIN = 0.5  # between the plate and the image's edges, in text heights
PLATE_SHARE = 0.55  # the plate's opacity as a share of the text's
TEXT_RGB = (255.0, 255.0, 255.0)
PLATE_RGB = (0.0, 0.0, 0.0)
_STAMP_CACHE = 32

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class MarkStyle:
    """What the label says and how it looks (FACEFUSE_AI_LABEL_* settings)."""

    text: str = "AI合成"
    position: Position = "bottom-right"
    size: float = 0.03  # text height as a share of the image's shorter side
    opacity: float = 0.85  # of the text; the plate gets PLATE_SHARE of it

    def text_px(self, height: int, width: int) -> int:
        return max(MIN_TEXT_PX, round(self.size * min(height, width)))


@dataclass(frozen=True)
class _Stamp:
    """A rendered label as `pixels * scale + offset` (per pixel of the plate's box)."""

    scale: npt.NDArray[np.float32]  # (h, w, 1)
    offset: npt.NDArray[np.float32]  # (h, w, 3)

    @property
    def shape(self) -> tuple[int, int]:
        return self.scale.shape[0], self.scale.shape[1]


def missing_glyphs(text: str) -> str:
    """The characters of `text` the shipped font cannot draw (none: an empty string)."""
    return "".join(sorted({c for c in text if ord(c) not in _font_characters()}))


def draw_mark(rgb: npt.NDArray[np.uint8], style: MarkStyle) -> Box:
    """Draw the label on `rgb` (RGB uint8, changed in place); answer the box it covers,
    (x0, y0, x1, y1), empty when the image has no room for it."""
    height, width = rgb.shape[:2]
    px = style.text_px(height, width)
    stamp = _stamp(style.text, px, style.opacity)
    corner_x, corner_y = _corner(stamp.shape, px, style.position, height, width)
    # The part of the stamp inside the image: a label on a tiny image is cut, not squeezed.
    x0, y0 = max(0, corner_x), max(0, corner_y)
    x1, y1 = min(width, corner_x + stamp.shape[1]), min(height, corner_y + stamp.shape[0])
    if x1 <= x0 or y1 <= y0:
        return x0, y0, x0, y0
    sx, sy = x0 - corner_x, y0 - corner_y
    scale = stamp.scale[sy : sy + y1 - y0, sx : sx + x1 - x0]
    offset = stamp.offset[sy : sy + y1 - y0, sx : sx + x1 - x0]
    region = rgb[y0:y1, x0:x1]
    blended = region * scale + offset
    np.add(blended, 0.5, out=blended)
    region[...] = blended.astype(np.uint8)
    return x0, y0, x1, y1


def _corner(shape: tuple[int, int], px: int, position: str, height: int, width: int) -> tuple[int, int]:
    """Top-left corner of the stamp, before cutting it to the image."""
    stamp_h, stamp_w = shape
    margin = round(MARGIN * px)
    x = width - margin - stamp_w if position.endswith("right") else margin
    y = height - margin - stamp_h if position.startswith("bottom") else margin
    return x, y


@lru_cache(maxsize=_STAMP_CACHE)
def _stamp(text: str, px: int, opacity: float) -> _Stamp:
    font = ImageFont.truetype(str(FONT_PATH), px)
    left, top, right, bottom = font.getbbox(text)
    pad = round(PADDING * px)
    size = (round(right - left) + 2 * pad, round(bottom - top) + 2 * pad)
    plate = Image.new("L", size, 0)
    ImageDraw.Draw(plate).rounded_rectangle((0, 0, size[0] - 1, size[1] - 1), radius=pad, fill=255)
    glyphs = Image.new("L", size, 0)
    ImageDraw.Draw(glyphs).text((pad - left, pad - top), text, fill=255, font=font)
    text_alpha = np.asarray(glyphs, np.float32)[:, :, None] * (opacity / 255.0)
    plate_alpha = np.asarray(plate, np.float32)[:, :, None] * (opacity * PLATE_SHARE / 255.0)
    scale = ((1.0 - plate_alpha) * (1.0 - text_alpha)).astype(np.float32)
    plate = np.array(PLATE_RGB, np.float32) * plate_alpha * (1.0 - text_alpha)
    offset = (plate + np.array(TEXT_RGB, np.float32) * text_alpha).astype(np.float32)
    scale.setflags(write=False)  # cached and shared by every result: read-only
    offset.setflags(write=False)
    return _Stamp(scale=scale, offset=offset)


@lru_cache(maxsize=1)
def _font_characters() -> frozenset[int]:
    with TTFont(str(FONT_PATH), lazy=True) as font:
        return frozenset(font.getBestCmap())
