"""Bytes to pixels: base64, format sniffing, header limits and the project's one image decoder.

Image rules (docs/api.md part A): JPG or PNG judged by the bytes, file <= max_bytes, each side
within min_side..max_side. `check_image` enforces them from the header alone (a tiny PNG
claiming 30000x30000 px costs microseconds), `decode_image` checks first, then decodes.

Decoders, chosen by measurement (`python benchmarks/decoder_timings.py PHOTO`):
- JPEG: OpenCV's libjpeg-turbo with `IMREAD_COLOR_RGB`, straight into a writable RGB
  array: faster than Pillow, which decodes a little slower and then has to export a fresh
  image to numpy. It applies EXIF orientation, expands grayscale, converts CMYK/YCCK, and
  fails on truncated data (all checked by the tests).
- PNG: Pillow, never OpenCV: OpenCV 4.11's PNG reader spends seconds and gigabytes on a
  100-byte file whose chunk length claims 2 GB (a test guards this). Pillow also names
  every PNG flavour (palette, gray, 16-bit, tRNS, alpha) so each becomes RGB correctly.
  Transparency is composited over white: a cut-out portrait then looks like a studio
  photo, whereas dropping alpha shows whatever colour the transparent pixels hold.
"""

from __future__ import annotations

import binascii
import contextlib
import io
import re
import struct
from typing import Literal

import cv2
import numpy as np
import pybase64
from PIL import Image, ImageOps

from facefuse.arrays import UInt8Array
from facefuse.errors import Err, FacefuseError
from facefuse.media.limits import ImageLimits, format_size

ImageFormat = Literal["jpeg", "png"]
DEFAULT_LIMITS = ImageLimits()

_JPEG_MAGIC = b"\xff\xd8\xff"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_OTHER_FORMATS: tuple[tuple[re.Pattern[bytes], str], ...] = tuple(
    (re.compile(pattern, re.DOTALL), name)
    for pattern, name in (
        (rb"GIF8[79]a", "GIF"),
        (rb"RIFF....WEBP", "WEBP"),
        (rb"BM", "BMP"),
        (rb"II\*\x00|MM\x00\*", "TIFF"),
        (rb"....ftyp(?:avif|avis)", "AVIF"),
        (rb"....ftyp(?:heic|heix|hevc|heim|heis|mif1|msf1)", "HEIC"),
        (rb"\x00\x00\x00\x0cjP  \r\n\x87\n|\xffO\xffQ", "JPEG 2000"),
        (rb"\x00\x00\x00\x0cJXL \r\n\x87\n|\xff\x0a", "JPEG XL"),
        (rb"\x00\x00[\x01\x02]\x00", "ICO"),
        (rb"8BPS", "PSD"),
        (rb"%PDF", "PDF"),
        (rb"\s*<(?:\?xml|svg)", "SVG/XML"),
        (rb"\s*<", "HTML/text"),
    )
)

# JPEG markers: frame headers (SOF0-15 less DHT, JPG, DAC) and the ones without a length.
_SOF_MARKERS = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
_STANDALONE_MARKERS = frozenset({0x01, *range(0xD0, 0xD8)})
_MAX_JPEG_SEGMENTS = 4096  # real files have a few dozen before the frame header
MAX_JPEG_SCANS = 64  # libjpeg writes 10 for a progressive colour JPEG, mozjpeg about 20
_FILL_BYTES = re.compile(rb"\xff+")

_DATA_URI_PREFIX = re.compile(r"\s*data:[\w.+/-]*(?:;[\w.+-]+=[\w.+\"-]*)*;base64,", re.ASCII | re.IGNORECASE)
_WHITESPACE = b" \t\n\r\v\f"
_URLSAFE_TO_STANDARD = bytes.maketrans(b"-_", b"+/")
_BASE64_SLACK = 1024  # characters of prefix and stray whitespace tolerated above the line rule


def decode_base64(text: str, max_bytes: int | None = None) -> bytes:
    """Decode media_data: standard or url-safe alphabet, padding optional, data-URI prefix and
    whitespace allowed (10004). With max_bytes, oversized input is refused before decoding (10006)."""
    if max_bytes is not None and len(text) > _max_base64_chars(max_bytes):
        raise FacefuseError(
            Err.IMAGE_FILE_TOO_LARGE,
            f"media_data is {len(text)} characters of base64, more than a {format_size(max_bytes)} image needs",
        )
    if prefix := _DATA_URI_PREFIX.match(text):
        text = text[prefix.end() :]
    if decoded := _decode_plain_base64(text):
        if max_bytes is not None and len(decoded) > max_bytes:
            raise _too_large(len(decoded), max_bytes)
        return decoded
    try:
        raw = text.encode("ascii")
    except UnicodeEncodeError as exc:
        raise _invalid_base64("it contains a non-ASCII character") from exc
    body = raw.translate(_URLSAFE_TO_STANDARD, _WHITESPACE).rstrip(b"=")
    if not body:
        raise _invalid_base64("it is empty")
    if len(body) % 4 == 1:
        raise _invalid_base64("its length is not that of any base64 text")
    if max_bytes is not None and len(body) * 3 // 4 > max_bytes:
        raise _too_large(len(body) * 3 // 4, max_bytes)
    try:
        return binascii.a2b_base64(body + b"=" * (-len(body) % 4), strict_mode=True)
    except binascii.Error as exc:
        raise _invalid_base64(f"bad character or padding ({str(exc).rstrip('.').lower()})") from exc


def _decode_plain_base64(text: str) -> bytes:
    """What nearly every client sends, standard alphabet with padding and no whitespace,
    decoded by pybase64's SIMD code, many times faster than binascii; b"" for anything
    else, which the careful path then decodes or names."""
    try:
        return pybase64.b64decode(text, validate=True)
    except ValueError:  # binascii.Error, or a non-ASCII character
        return b""


def _too_large(size: int, max_bytes: int) -> FacefuseError:
    return FacefuseError(
        Err.IMAGE_FILE_TOO_LARGE, f"the image file is {size} bytes; the limit is {format_size(max_bytes)}"
    )


def sniff_format(data: bytes) -> ImageFormat:
    """'jpeg' or 'png' by the magic bytes; 10005 naming what the bytes look like otherwise."""
    if data.startswith(_JPEG_MAGIC):
        return "jpeg"
    if data.startswith(_PNG_MAGIC):
        return "png"
    raise FacefuseError(
        Err.UNSUPPORTED_IMAGE_FORMAT, f"the file is {_describe_format(data)}; only JPG and PNG are accepted"
    )


def read_dimensions(data: bytes) -> tuple[int, int]:
    """(width, height) as stored, from the header alone (10005 unknown format, 10008 broken header)."""
    if sniff_format(data) == "png":
        return _png_dimensions(data)
    return _jpeg_dimensions(data)


def check_image(data: bytes, limits: ImageLimits = DEFAULT_LIMITS) -> tuple[ImageFormat, int, int]:
    """Apply the image rules without decoding: 10006 file size, 10005 format, 10007 sides."""
    if len(data) > limits.max_bytes:
        raise FacefuseError(
            Err.IMAGE_FILE_TOO_LARGE,
            f"the image file is {len(data)} bytes; the limit is {format_size(limits.max_bytes)}",
        )
    fmt = sniff_format(data)
    width, height = _png_dimensions(data) if fmt == "png" else _jpeg_dimensions(data)
    if min(width, height) < limits.min_side or max(width, height) > limits.max_side:
        raise FacefuseError(
            Err.IMAGE_SIZE_OUT_OF_RANGE,
            f"the image is {width}x{height} px; each side must be {limits.min_side} to {limits.max_side} px",
        )
    return fmt, width, height


def decode_image(data: bytes, limits: ImageLimits = DEFAULT_LIMITS) -> UInt8Array:
    """The image as RGB uint8 (H, W, 3), C-contiguous and writable, upright by its EXIF orientation."""
    fmt, width, height = check_image(data, limits)
    rgb = _decode_jpeg(data, cv2.IMREAD_COLOR_RGB) if fmt == "jpeg" else _decode_png(data, limits)
    if sorted(rgb.shape[:2]) != sorted((width, height)):
        raise _corrupt(fmt, "its pixel data does not match its header")
    return rgb


def decode_image_scaled(data: bytes, max_side: int, limits: ImageLimits = DEFAULT_LIMITS) -> UInt8Array:
    """Like decode_image, but with the long side at most max_side (JPEG: cheap DCT-domain scaling).

    The scale to map coordinates back is long side of the result / long side of the original.
    """
    fmt, width, height = check_image(data, limits)
    long_side = max(width, height)
    if long_side <= max_side or fmt == "png":
        return _fit_long_side(decode_image(data, limits), max_side)
    factor = max(f for f in (1, 2, 4, 8) if -(-long_side // f) >= max_side)
    return _fit_long_side(_decode_jpeg(data, _REDUCED_RGB[factor]), max_side)


def decode_image_reduced(data: bytes, factor: int, limits: ImageLimits = DEFAULT_LIMITS) -> UInt8Array:
    """Like decode_image, a JPEG at 1/factor of its size (factor 1, 2, 4 or 8) straight from
    the DCT, in well under half the time of a full decode. Sides are rounded up
    (ceil(w / factor)), as libjpeg does. A PNG is decoded whole (factor ignored)."""
    fmt, width, height = check_image(data, limits)
    if fmt == "png" or factor == 1:
        return decode_image(data, limits)
    if factor not in _REDUCED_RGB:
        raise ValueError(f"factor must be 1, 2, 4 or 8, not {factor}")
    rgb = _decode_jpeg(data, _REDUCED_RGB[factor])
    if sorted(rgb.shape[:2]) != sorted((-(-width // factor), -(-height // factor))):
        raise _corrupt(fmt, "its pixel data does not match its header")
    return rgb


_REDUCED_RGB = {
    1: cv2.IMREAD_COLOR_RGB,
    2: cv2.IMREAD_REDUCED_COLOR_2 | cv2.IMREAD_COLOR_RGB,
    4: cv2.IMREAD_REDUCED_COLOR_4 | cv2.IMREAD_COLOR_RGB,
    8: cv2.IMREAD_REDUCED_COLOR_8 | cv2.IMREAD_COLOR_RGB,
}


def _decode_jpeg(data: bytes, flags: int) -> UInt8Array:
    _refuse_scan_floods(data)
    try:
        rgb = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    except cv2.error as exc:
        raise _corrupt("jpeg") from exc
    if rgb is None or rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise _corrupt("jpeg")
    return np.ascontiguousarray(rgb)


def _decode_png(data: bytes, limits: ImageLimits) -> UInt8Array:
    try:
        with Image.open(io.BytesIO(data), formats=["PNG"]) as image:
            if max(image.size) > limits.max_side:  # Pillow must agree with our header reading
                raise _corrupt("png", "its header is inconsistent")
            image.load()
            _apply_exif_orientation(image)
            return _pillow_to_rgb(image)
    except FacefuseError:
        raise
    except Exception as exc:  # Pillow's plugins raise many types on hostile bytes; all mean "corrupt"
        raise _corrupt("png") from exc


def _apply_exif_orientation(image: Image.Image) -> None:
    # broken metadata on good pixels: keep them as stored, as OpenCV does for JPEG
    with contextlib.suppress(SyntaxError, ValueError, OSError, KeyError, IndexError, TypeError, struct.error):
        ImageOps.exif_transpose(image, in_place=True)


def _pillow_to_rgb(image: Image.Image) -> UInt8Array:
    """Any PNG mode as RGB uint8: 16-bit gray scaled down, transparency composited over white."""
    if image.mode.startswith("I"):  # 16-bit grayscale ("I;16", "I;16B", "I")
        gray = (np.asarray(image).astype(np.uint32) >> 8).clip(0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, np.newaxis], 3, axis=2)
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        image = _over_white(image.convert("RGBA"))
    elif image.mode != "RGB":
        image = image.convert("RGB")
    return np.array(image)  # a writable copy: Pillow's buffer is read-only


def _over_white(rgba: Image.Image) -> Image.Image:
    alpha = rgba.getchannel("A")
    if alpha.getextrema()[0] == 255:
        return rgba.convert("RGB")
    white = Image.new("RGB", rgba.size, (255, 255, 255))
    white.paste(rgba, mask=alpha)
    return white


def _fit_long_side(rgb: UInt8Array, max_side: int) -> UInt8Array:
    height, width = rgb.shape[:2]
    scale = max_side / max(height, width)
    if scale >= 1:
        return rgb
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    # area averaging is needed against aliasing only below half size, and is much slower
    interpolation = cv2.INTER_AREA if scale < 0.5 else cv2.INTER_LINEAR
    return np.ascontiguousarray(cv2.resize(rgb, size, interpolation=interpolation))


def _refuse_scan_floods(data: bytes) -> None:
    """libjpeg reworks the whole image for every scan, so thousands of 16-byte scans would
    cost minutes; encoders write at most a few dozen. Counting is safe: entropy-coded data
    never holds FF DA, and counting from the frame header skips any EXIF thumbnail."""
    scans = data.count(b"\xff\xda", _jpeg_frame(data)[2])
    if scans > MAX_JPEG_SCANS:
        raise _corrupt("jpeg", f"it has {scans} scans; at most {MAX_JPEG_SCANS} are accepted")


def _png_dimensions(data: bytes) -> tuple[int, int]:
    if len(data) < 24 or data[8:16] != b"\x00\x00\x00\x0dIHDR":
        raise _corrupt("png", "it has no valid IHDR header")
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def _jpeg_dimensions(data: bytes) -> tuple[int, int]:
    width, height, _ = _jpeg_frame(data)
    return width, height


def _jpeg_frame(data: bytes) -> tuple[int, int, int]:
    """(width, height, offset of the frame header): walk the marker segments up to the first
    SOFn, as libjpeg does."""
    pos, end = 2, len(data)
    for _ in range(_MAX_JPEG_SEGMENTS):
        if pos >= end or data[pos] != 0xFF:
            break
        pos = _FILL_BYTES.match(data, pos).end()  # type: ignore[union-attr]
        if pos + 3 > end:
            break
        marker = data[pos]
        pos += 1
        if marker in _STANDALONE_MARKERS:
            continue
        length = int.from_bytes(data[pos : pos + 2], "big")
        if marker in (0x00, 0xD8, 0xD9, 0xDA) or length < 2:
            break  # no frame header before the scan or the end: nothing to size
        if marker in _SOF_MARKERS:
            if length < 7 or pos + 7 > end:
                break
            height, width = struct.unpack(">HH", data[pos + 3 : pos + 7])
            return width, height, pos
        pos += length
    raise _corrupt("jpeg", "its header is truncated or has no frame size")


def _describe_format(data: bytes) -> str:
    if not data:
        return "empty"
    head = data[:32]
    for pattern, name in _OTHER_FORMATS:
        if pattern.match(head):
            return name
    return "of an unknown format"


def _max_base64_chars(max_bytes: int) -> int:
    """Base64 of max_bytes, plus line breaks every 64 characters (PEM is the densest) and slack."""
    encoded = -(-max_bytes // 3) * 4
    return encoded + encoded // 32 + _BASE64_SLACK


def _invalid_base64(reason: str) -> FacefuseError:
    return FacefuseError(Err.INVALID_MEDIA_DATA, f"media_data is not valid base64: {reason}")


def _corrupt(fmt: str, reason: str = "it is truncated or corrupt") -> FacefuseError:
    return FacefuseError(Err.IMAGE_DECODE_ERROR, f"the {fmt.upper()} file cannot be decoded: {reason}")
