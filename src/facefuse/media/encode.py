"""Pixels to JPEG bytes: the project's one JPEG encoder.

OpenCV's libjpeg-turbo, fed a contiguous BGR copy made by cvtColor: as fast as Pillow or
faster, with byte-identical output at the same quality and 4:2:0 subsampling; passing a
reversed view (`rgb[:, :, ::-1]`) instead would be ~2.4x slower (`python benchmarks/decoder_timings.py PHOTO`).

Results are written with full-resolution colour (4:4:4) by default: on the 65 frontal
photos of ../shared/faces a re-encode keeps 53.1 dB PSNR at quality 95 with 4:4:4 against
50.6 dB with 4:2:0 (48.9 dB at quality 92), for ~1 ms more per 0.3 MP and ~17 % more
bytes; the template's background must come back as it went in.

A result differs from its template only in the rows around the face. `RowCodedJpeg`
keeps a template encoded with a restart marker after every row of 8x8 blocks; each row
is then coded on its own, so a result is the template's rows with only the changed ones
encoded again, byte for byte the JPEG a full encode would give (biden2, 1200x1200 with a
534 px face: 4.6 ms -> 1.5 ms).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import cv2
import numpy as np

_BLOCK = 8  # pixel rows per row of blocks at 4:4:4
_RESTART = re.compile(rb"\xff[\xd0-\xd7]")  # RST0-7; a 0xFF in coded data is always stuffed as FF 00
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
class RowCodedJpeg:
    """An image encoded (4:4:4) with a restart interval of one row of 8x8 blocks, cut into
    its header and the coded data of each row, ready to take new pixels in some rows."""

    header: bytes  # SOI up to the end of the SOS segment
    rows: tuple[bytes, ...]  # the coded data of each row of blocks, restart markers left out
    width: int
    height: int
    quality: int

    @classmethod
    def encode(cls, rgb: np.ndarray, quality: int = 95) -> "RowCodedJpeg":
        header, rows = _split(_encode(rgb, _row_params(rgb.shape[1], quality)))
        return cls(header, tuple(rows), rgb.shape[1], rgb.shape[0], _clamped(quality))

    @property
    def nbytes(self) -> int:
        return len(self.header) + sum(len(r) for r in self.rows)

    def with_rows(self, rgb: np.ndarray, y0: int, y1: int) -> bytes:
        """The JPEG of `rgb`, which equals the encoded image outside rows y0..y1: only the
        rows of blocks that hold those are encoded again."""
        if rgb.shape[:2] != (self.height, self.width):
            raise ValueError(f"the image is {rgb.shape[1]}x{rgb.shape[0]}, not {self.width}x{self.height}")
        first = max(0, y0) // _BLOCK
        last = min(len(self.rows), -(-min(y1, self.height) // _BLOCK))
        if last <= first:
            return self._assemble(list(self.rows))
        band = rgb[first * _BLOCK: min(last * _BLOCK, self.height)]
        _, new_rows = _split(_encode(band, _row_params(self.width, self.quality)))
        if len(new_rows) != last - first:
            raise ValueError(f"{len(new_rows)} coded rows for {last - first} rows of blocks")
        return self._assemble([*self.rows[:first], *new_rows, *self.rows[last:]])

    def _assemble(self, rows: list[bytes]) -> bytes:
        parts = [self.header, rows[0]]
        for index, row in enumerate(rows[1:]):
            parts += (bytes((0xFF, 0xD0 + index % 8)), row)
        parts.append(_EOI)
        return b"".join(parts)


def _encode(rgb: np.ndarray, params: list[int]) -> bytes:
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"encode_jpeg needs RGB uint8 (H, W, 3), got {rgb.dtype} {rgb.shape}")
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    ok, buffer = cv2.imencode(".jpg", bgr, params)
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buffer.tobytes()


def _row_params(width: int, quality: int) -> list[int]:
    return [cv2.IMWRITE_JPEG_QUALITY, _clamped(quality),
            cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444,
            cv2.IMWRITE_JPEG_RST_INTERVAL, -(-width // _BLOCK)]


def _split(jpeg: bytes) -> tuple[bytes, list[bytes]]:
    """(header, coded rows) of a JPEG written by _encode with _row_params."""
    sos = jpeg.index(_SOS)
    scan = sos + 2 + int.from_bytes(jpeg[sos + 2: sos + 4], "big")
    if not jpeg.endswith(_EOI):
        raise ValueError("the JPEG does not end with EOI")
    return jpeg[:scan], _RESTART.split(jpeg[scan:-2])


def _clamped(quality: int) -> int:
    return min(100, max(1, int(quality)))
