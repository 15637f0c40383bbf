"""Pixels to JPEG bytes: the project's one JPEG encoder.

OpenCV's libjpeg-turbo, fed a contiguous BGR copy made by cvtColor: at least as fast as
Pillow, with byte-identical output at the same quality and 4:2:0 subsampling. A reversed
view (`rgb[:, :, ::-1]`) would send OpenCV down a much slower path
(`python benchmarks/decoder_timings.py PHOTO` compares them).

Results are written with full-resolution colour (4:4:4) by default: the template's
background must come back as it went in, and a re-encode with 4:2:0 moves it measurably
further from the original, for a little less time and a smaller file.

A result differs from its template only around the face. `TileCodedJpeg` keeps a
template encoded with a restart marker every few 8x8 blocks (a divisor of the row); each
such tile is then coded on its own, so a result is the template's tiles with only those
over the face encoded again, byte for byte the JPEG a full encode would give, for the
cost of encoding the face's part of the image only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import cv2
import numpy as np

from facefuse import parallel

_BLOCK = 8  # pixels per block side at 4:4:4
_RESTART = re.compile(rb"\xff[\xd0-\xd7]")  # RST0-7; a 0xFF in coded data is always stuffed as FF 00
_MARKERS = tuple(bytes((0xFF, 0xD0 + n)) for n in range(8))
MAX_TILE_BLOCKS = 12
MIN_TILE_BLOCKS = 4
_SOS = b"\xff\xda"
_EOI = b"\xff\xd9"


def encode_jpeg(rgb: np.ndarray, quality: int = 95, full_chroma: bool = True) -> bytes:
    """Baseline JPEG of an RGB uint8 (H, W, 3) image; quality is clamped to 1..100.

    full_chroma: 4:4:4 sampling (no colour subsampling); False gives the usual 4:2:0."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"encode_jpeg needs RGB uint8 (H, W, 3), got {rgb.dtype} {rgb.shape}")
    sampling = cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444 if full_chroma else cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420
    return _encode(rgb, [cv2.IMWRITE_JPEG_QUALITY, _clamped(quality), cv2.IMWRITE_JPEG_SAMPLING_FACTOR, sampling])


@dataclass(frozen=True)
class TileCodedJpeg:
    """An image encoded (4:4:4) with a restart marker every few 8x8 blocks, cut into its
    header and the coded data of each tile (a run of blocks between two markers), ready
    to take new pixels in some tiles. A tile is `interval` blocks of one row of blocks:
    the interval divides the row, so tiles line up in columns."""

    header: bytes  # SOI up to the end of the SOS segment
    tiles: tuple[bytes, ...]  # each tile's coded data in raster order and the marker after it
    width: int
    height: int
    quality: int
    interval: int  # blocks per tile

    @classmethod
    def encode(cls, rgb: np.ndarray, quality: int = 95) -> "TileCodedJpeg":
        interval = _restart_interval(-(-rgb.shape[1] // _BLOCK))
        header, tiles = _split(_encode(rgb, _tile_params(quality, interval)))
        return cls(
            header, tuple(_with_markers(tiles, 0, len(tiles))), rgb.shape[1], rgb.shape[0], _clamped(quality), interval
        )

    @property
    def nbytes(self) -> int:
        return len(self.header) + sum(len(t) for t in self.tiles)

    def with_region(self, rgb: np.ndarray, box: tuple[int, int, int, int]) -> bytes:
        """The JPEG of `rgb`, which equals the encoded image outside box (x0, y0, x1, y1):
        only the tiles that hold the box are encoded again."""
        return self.with_regions(rgb, [box])

    def with_regions(self, rgb: np.ndarray, boxes: list[tuple[int, int, int, int]]) -> bytes:
        """The JPEG of `rgb`, which equals the encoded image outside the boxes: only the
        tiles that hold a box are encoded again (a tile under two boxes is coded twice from
        the same pixels, so to the same bytes)."""
        if rgb.shape[:2] != (self.height, self.width):
            raise ValueError(f"the image is {rgb.shape[1]}x{rgb.shape[0]}, not {self.width}x{self.height}")
        tiles = list(self.tiles)
        for box in boxes:
            self._recode(rgb, box, tiles)
        return b"".join([self.header, *tiles, _EOI])

    def _recode(self, rgb: np.ndarray, box: tuple[int, int, int, int], tiles: list[bytes]) -> None:
        """Replace, in `tiles`, those over box with the coded tiles of rgb there."""
        tile_px = self.interval * _BLOCK
        per_row = -(-self.width // tile_px)
        rows = -(-self.height // _BLOCK)
        x0, y0, x1, y1 = box
        c0, c1 = max(0, x0) // tile_px, min(per_row, -(-min(x1, self.width) // tile_px))
        r0, r1 = max(0, y0) // _BLOCK, min(rows, -(-min(y1, self.height) // _BLOCK))
        if c1 <= c0 or r1 <= r0:
            return
        columns = slice(c0 * tile_px, min(c1 * tile_px, self.width))
        # Two halves of rows, coded apart (a tile is coded on its own), on two cores when spare.
        middle = (r0 + r1 + 1) // 2
        upper = parallel.start(self._coded_tiles, rgb[r0 * _BLOCK : middle * _BLOCK, columns])
        lower = rgb[middle * _BLOCK : min(r1 * _BLOCK, self.height), columns]
        lower_tiles = self._coded_tiles(lower) if lower.size else []
        new = upper.result() + lower_tiles
        if len(new) != (r1 - r0) * (c1 - c0):
            raise ValueError(f"{len(new)} coded tiles for {(r1 - r0) * (c1 - c0)}")
        for row in range(r0, r1):
            start, first = (row - r0) * (c1 - c0), row * per_row + c0
            tiles[first : first + c1 - c0] = _with_markers(new[start : start + c1 - c0], first, len(tiles))

    def _coded_tiles(self, region: np.ndarray) -> list[bytes]:
        return _split(_encode(region, _tile_params(self.quality, self.interval)))[1]


def _with_markers(tiles: list[bytes], first: int, count: int) -> list[bytes]:
    """Tiles `first`, `first + 1`, ... of `count`, each followed by its restart marker (the
    numbers run 0-7 over the whole image; none after the last tile)."""
    return [tile + _MARKERS[index % 8] if index < count - 1 else tile for index, tile in enumerate(tiles, start=first)]


def _encode(rgb: np.ndarray, params: list[int]) -> bytes:
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"encode_jpeg needs RGB uint8 (H, W, 3), got {rgb.dtype} {rgb.shape}")
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    ok, buffer = cv2.imencode(".jpg", bgr, params)
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buffer.tobytes()


def _tile_params(quality: int, interval: int) -> list[int]:
    return [
        cv2.IMWRITE_JPEG_QUALITY,
        _clamped(quality),
        cv2.IMWRITE_JPEG_SAMPLING_FACTOR,
        cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444,
        cv2.IMWRITE_JPEG_RST_INTERVAL,
        interval,
    ]


def _restart_interval(blocks_per_row: int) -> int:
    """Blocks per tile: the largest divisor of the row up to MAX_TILE_BLOCKS, or the whole
    row when that is under MIN_TILE_BLOCKS (a marker and its byte alignment cost about 2.5
    bytes: on a 1200 px wide photo, 10-block tiles add about 1 % to the file)."""
    best = max(d for d in range(1, min(blocks_per_row, MAX_TILE_BLOCKS) + 1) if blocks_per_row % d == 0)
    return best if best >= MIN_TILE_BLOCKS else blocks_per_row


def _split(jpeg: bytes) -> tuple[bytes, list[bytes]]:
    """(header, coded tiles) of a JPEG written by _encode with _tile_params."""
    sos = jpeg.index(_SOS)
    scan = sos + 2 + int.from_bytes(jpeg[sos + 2 : sos + 4], "big")
    if not jpeg.endswith(_EOI):
        raise ValueError("the JPEG does not end with EOI")
    return jpeg[:scan], _RESTART.split(jpeg[scan:-2])


def _clamped(quality: int) -> int:
    return min(100, max(1, int(quality)))
