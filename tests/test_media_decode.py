"""media.decode and media.encode: the image rules, every real photo, synthetic edge cases, fuzzing."""

from __future__ import annotations

import base64
import csv
import io
import struct
import zlib
from datetime import timedelta

import cv2
import numpy as np
import pytest
from conftest import FACES, face
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageFile, ImageOps

from facefuse.errors import Err, FacefuseError
from facefuse.media.decode import (
    MAX_JPEG_SCANS,
    check_image,
    decode_base64,
    decode_image,
    decode_image_reduced,
    decode_image_scaled,
    read_dimensions,
    sniff_format,
)
from facefuse.media.encode import TileCodedJpeg, encode_jpeg
from facefuse.media.limits import ImageLimits

MANIFEST = list(csv.DictReader((FACES / "MANIFEST.tsv").open(encoding="utf-8"), delimiter="\t"))
LIMITS = ImageLimits()
SMALL_JPEG = "dlib__examples_johns_John_Salley_000179_02159509.jpg"  # 150x150, 9 kB
SMALL_PNG = "insightface__crop_no_face.png"  # 140x141 RGBA, 8 kB
PORTRAIT = "face_recognition__examples_obama.jpg"

# EXIF orientation -> the Pillow transpose that makes an image stored that way upright
UPRIGHT_BY = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
STORED_BY = {**UPRIGHT_BY, 6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}  # the inverses


@pytest.fixture()
def no_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    """What a test refuses must be refused before any decoder runs: both fail if called."""
    monkeypatch.setattr(cv2, "imdecode", _must_not_decode)
    monkeypatch.setattr(Image, "open", _must_not_decode)


@pytest.fixture()
def no_opencv_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cv2, "imdecode", _must_not_decode)


def _must_not_decode(*_: object, **__: object) -> None:
    raise AssertionError("decoded")


def photo(name: str) -> bytes:
    return face(name).read_bytes()


def error_of(call, *args: object) -> Err:
    with pytest.raises(FacefuseError) as caught:
        call(*args)
    return caught.value.error


def encoded(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def pillow_reference(data: bytes) -> np.ndarray:
    """What Pillow alone makes of the bytes: EXIF-transposed, RGB."""
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(ImageOps.exif_transpose(image).convert("RGB"))


def mean_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    assert a.shape == b.shape
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def assert_rgb(rgb: np.ndarray) -> None:
    assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3
    assert rgb.flags.c_contiguous and rgb.flags.writeable


def png_header_only(width: int, height: int, color_type: int = 2) -> bytes:
    """A valid PNG signature and IHDR claiming a size, then one small IDAT and IEND."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    body = chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 1000)) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


# --- every real photo ------------------------------------------------------------------------


@pytest.mark.parametrize("row", MANIFEST, ids=[row["file"] for row in MANIFEST])
def test_every_manifest_photo_follows_the_image_rules(row: dict[str, str]) -> None:
    data = photo(row["file"])
    width, height = int(row["width"]), int(row["height"])
    if row["format"] not in ("JPEG", "PNG"):
        assert error_of(decode_image, data, LIMITS) is Err.UNSUPPORTED_IMAGE_FORMAT
        return
    assert sniff_format(data) == row["format"].lower()
    assert read_dimensions(data) == (width, height)
    if "large_image" in row["categories"]:
        expected = Err.IMAGE_FILE_TOO_LARGE if len(data) > LIMITS.max_bytes else Err.IMAGE_SIZE_OUT_OF_RANGE
        assert error_of(check_image, data, LIMITS) is expected
        assert error_of(decode_image, data, LIMITS) is expected
        return
    assert check_image(data, LIMITS) == (row["format"].lower(), width, height)
    rgb = decode_image(data, LIMITS)
    assert_rgb(rgb)
    assert mean_abs_diff(rgb, pillow_reference(data)) < 0.5


def test_the_manifest_covers_what_the_rules_must_handle() -> None:
    categories = [row["categories"] for row in MANIFEST]
    assert any("large_image" in c for c in categories)
    assert any("png_alpha" in c for c in categories)
    assert [row["format"] for row in MANIFEST].count("WEBP") == 1


def test_webp_photo_with_a_jpg_name_is_refused_by_its_bytes() -> None:
    with pytest.raises(FacefuseError) as caught:
        decode_image(photo("deepface__img47.jpg"), LIMITS)
    assert caught.value.error is Err.UNSUPPORTED_IMAGE_FORMAT
    assert "WEBP" in caught.value.detail


@pytest.mark.parametrize("name", [row["file"] for row in MANIFEST if "png_alpha" in row["categories"]])
def test_png_with_alpha_comes_out_as_three_channels(name: str) -> None:
    data = photo(name)
    assert Image.open(io.BytesIO(data)).mode == "RGBA"
    assert_rgb(decode_image(data, LIMITS))


# --- EXIF orientation ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def upright() -> Image.Image:
    with Image.open(FACES / PORTRAIT) as image:
        return image.convert("RGB").resize((455, 568))


def test_exif_orientation_of_a_png_with_alpha_is_applied(upright: Image.Image) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    data = encoded(upright.convert("RGBA").transpose(Image.Transpose.ROTATE_90), "PNG", exif=exif)
    assert np.array_equal(decode_image(data, LIMITS), np.asarray(upright))


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")
@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_broken_exif_leaves_good_pixels_as_stored(fmt: str) -> None:
    image = Image.new("RGB", (64, 48), (10, 20, 30))
    junk = b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\xff\xff" if fmt == "JPEG" else b"MM\x00*junk"
    rgb = decode_image(encoded(image, fmt, exif=junk), LIMITS)
    assert rgb.shape == (48, 64, 3) and (rgb == [10, 20, 30]).all()


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_exif_orientation_is_applied(upright: Image.Image, orientation: int, fmt: str) -> None:
    stored = upright.transpose(STORED_BY[orientation]) if orientation > 1 else upright
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = encoded(stored, fmt, exif=exif, **({"quality": 95} if fmt == "JPEG" else {}))
    rgb = decode_image(data, LIMITS)
    assert_rgb(rgb)
    assert rgb.shape == (568, 455, 3)
    assert mean_abs_diff(rgb, pillow_reference(data)) < 0.5
    assert mean_abs_diff(rgb, np.asarray(upright)) < (2.0 if fmt == "JPEG" else 0.01)


def test_scaled_decode_is_upright_too(upright: Image.Image) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    data = encoded(upright.resize((910, 1136)).transpose(Image.Transpose.ROTATE_90), "JPEG", exif=exif)
    small = decode_image_scaled(data, 300, LIMITS)
    assert small.shape == (300, 240, 3)
    reference = np.asarray(upright.resize((240, 300), Image.Resampling.BOX))
    assert mean_abs_diff(small, reference) < 6


# --- synthetic edge cases --------------------------------------------------------------------


@pytest.mark.parametrize("keep", [0.5, 0.9, 0.999])
def test_truncated_jpeg_is_a_decode_error(keep: float) -> None:
    data = photo(PORTRAIT)
    assert error_of(decode_image, data[: int(len(data) * keep)], LIMITS) is Err.IMAGE_DECODE_ERROR


def test_jpeg_cut_inside_its_header_is_a_decode_error() -> None:
    data = photo(PORTRAIT)
    assert error_of(check_image, data[:100], LIMITS) is Err.IMAGE_DECODE_ERROR


def test_truncated_png_is_a_decode_error() -> None:
    data = photo("codeformer__inputs_cropped_faces_0143.png")
    assert error_of(decode_image, data[: len(data) // 2], LIMITS) is Err.IMAGE_DECODE_ERROR


def test_png_with_a_corrupt_stream_is_a_decode_error() -> None:
    data = bytearray(photo("codeformer__inputs_cropped_faces_0143.png"))
    start = data.index(b"IDAT") + 4
    data[start + 100 : start + 400] = bytes(300)
    assert error_of(decode_image, bytes(data), LIMITS) is Err.IMAGE_DECODE_ERROR


def test_png_with_a_forged_chunk_length_never_reaches_opencv(no_opencv_decoding: None) -> None:
    """OpenCV's PNG reader spends seconds and gigabytes on this 100-byte file: PNG goes to Pillow."""
    forged = png_header_only(64, 64)[:33] + struct.pack(">I", 0x7FFFFFF0) + b"IDAT" + bytes(100)
    assert error_of(decode_image, forged, LIMITS) is Err.IMAGE_DECODE_ERROR


def test_jpeg_scan_flood_is_refused_before_decoding() -> None:
    """Each repeated scan makes libjpeg (Pillow's as OpenCV's) rework the whole image."""
    data = encoded(Image.new("RGB", (2048, 2048), (120, 130, 140)), "JPEG", progressive=True)
    end = data.rindex(b"\xff\xd9")
    last_scan = data[data.rindex(b"\xff\xda") : end]
    assert 10 <= data.count(b"\xff\xda") <= MAX_JPEG_SCANS  # an ordinary progressive file passes
    assert decode_image(data, LIMITS).shape == (2048, 2048, 3)
    flood = data[:end] + last_scan * 5000 + b"\xff\xd9"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cv2, "imdecode", _must_not_decode)
        with pytest.raises(FacefuseError) as caught:
            decode_image(flood, LIMITS)
    assert caught.value.error is Err.IMAGE_DECODE_ERROR and "scans" in caught.value.detail


def test_png_header_bomb_is_refused_from_the_header(no_decoding: None) -> None:
    bomb = png_header_only(30000, 30000)
    assert len(bomb) < 200
    with pytest.raises(FacefuseError) as caught:
        decode_image(bomb, LIMITS)
    assert caught.value.error is Err.IMAGE_SIZE_OUT_OF_RANGE
    assert "30000x30000" in caught.value.detail


def test_jpeg_header_bomb_is_refused_from_the_header() -> None:
    data = bytearray(encoded(Image.new("RGB", (64, 64)), "JPEG"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", 60000, 60000)
    with pytest.MonkeyPatch.context() as patch:  # made with Pillow above: no fixture
        patch.setattr(cv2, "imdecode", _must_not_decode)
        patch.setattr(Image, "open", _must_not_decode)
        assert error_of(decode_image, bytes(data), LIMITS) is Err.IMAGE_SIZE_OUT_OF_RANGE


@pytest.mark.parametrize(("fmt", "name"), [("GIF", "GIF"), ("WEBP", "WEBP"), ("BMP", "BMP"), ("TIFF", "TIFF")])
def test_other_formats_are_unsupported_and_named(fmt: str, name: str) -> None:
    data = encoded(Image.new("RGB", (64, 64), "red"), fmt)
    with pytest.raises(FacefuseError) as caught:
        check_image(data, LIMITS)
    assert caught.value.error is Err.UNSUPPORTED_IMAGE_FORMAT
    assert name in caught.value.detail


@pytest.mark.parametrize("data", [b"", b"hello world", b"<html><body>", b"\xff\xd8"])
def test_unknown_bytes_are_unsupported(data: bytes) -> None:
    assert error_of(sniff_format, data) is Err.UNSUPPORTED_IMAGE_FORMAT


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ((47, 100), Err.IMAGE_SIZE_OUT_OF_RANGE),
        ((100, 47), Err.IMAGE_SIZE_OUT_OF_RANGE),
        ((4097, 48), Err.IMAGE_SIZE_OUT_OF_RANGE),
        ((48, 48), None),
        ((4096, 48), None),
    ],
)
@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_side_limits(size: tuple[int, int], expected: Err | None, fmt: str) -> None:
    data = encoded(Image.new("RGB", size, "gray"), fmt)
    if expected is None:
        assert decode_image(data, LIMITS).shape == (size[1], size[0], 3)
    else:
        assert error_of(decode_image, data, LIMITS) is expected


def test_file_size_limit_comes_before_decoding() -> None:
    data = photo(PORTRAIT)
    limits = ImageLimits(max_bytes=len(data) - 1)
    with pytest.raises(FacefuseError) as caught:
        check_image(data, limits)
    assert caught.value.error is Err.IMAGE_FILE_TOO_LARGE
    assert str(len(data)) in caught.value.detail
    assert check_image(data, ImageLimits(max_bytes=len(data)))[0] == "jpeg"


def test_grayscale_jpeg_has_three_equal_channels(upright: Image.Image) -> None:
    rgb = decode_image(encoded(upright.convert("L"), "JPEG"), LIMITS)
    assert_rgb(rgb)
    assert (rgb[:, :, 0] == rgb[:, :, 1]).all() and (rgb[:, :, 1] == rgb[:, :, 2]).all()


def test_cmyk_jpeg_becomes_rgb(upright: Image.Image) -> None:
    data = encoded(upright.convert("CMYK"), "JPEG", quality=95)
    assert Image.open(io.BytesIO(data)).mode == "CMYK"
    rgb = decode_image(data, LIMITS)
    assert_rgb(rgb)
    assert mean_abs_diff(rgb, np.asarray(upright)) < 3


def test_progressive_jpeg_decodes(upright: Image.Image) -> None:
    data = encoded(upright, "JPEG", progressive=True, quality=95)
    assert mean_abs_diff(decode_image(data, LIMITS), np.asarray(upright)) < 2


def test_sixteen_bit_grayscale_png_is_scaled_to_eight_bits() -> None:
    gray16 = (np.arange(200 * 256, dtype=np.uint32).reshape(200, 256) * 1297 % 65536).astype(np.uint16)
    ok, png = cv2.imencode(".png", gray16)
    assert ok and Image.open(io.BytesIO(png.tobytes())).mode.startswith("I;16")
    rgb = decode_image(png.tobytes(), LIMITS)
    assert_rgb(rgb)
    expected = (gray16 >> 8).astype(np.uint8)
    for channel in range(3):
        assert np.array_equal(rgb[:, :, channel], expected)


@pytest.mark.parametrize("channels", [3, 4])
def test_sixteen_bit_colour_png_is_scaled_to_eight_bits(channels: int) -> None:
    rng = np.random.default_rng(7)
    bgr16 = rng.integers(0, 65536, size=(64, 80, channels), dtype=np.uint16)
    if channels == 4:
        bgr16[:, :, 3] = 65535
    _, png = cv2.imencode(".png", bgr16)
    rgb = decode_image(png.tobytes(), LIMITS)
    assert_rgb(rgb)
    assert np.array_equal(rgb, (bgr16[:, :, 2::-1] >> 8).astype(np.uint8))


def test_palette_png_becomes_rgb(upright: Image.Image) -> None:
    palette = upright.convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    rgb = decode_image(encoded(palette, "PNG"), LIMITS)
    assert np.array_equal(rgb, np.asarray(palette.convert("RGB")))


def test_one_bit_png_becomes_black_and_white(upright: Image.Image) -> None:
    rgb = decode_image(encoded(upright.convert("1"), "PNG"), LIMITS)
    assert set(np.unique(rgb)) <= {0, 255}


def test_transparency_is_composited_over_white() -> None:
    rgba = np.zeros((60, 60, 4), np.uint8)
    rgba[:, :, 0] = 200  # red under every pixel
    rgba[:, :20, 3] = 0  # transparent
    rgba[:, 20:40, 3] = 128  # half
    rgba[:, 40:, 3] = 255  # opaque
    rgb = decode_image(encoded(Image.fromarray(rgba, "RGBA"), "PNG"), LIMITS)
    assert (rgb[:, :20] == 255).all()
    assert np.allclose(rgb[0, 30], [227, 127, 127], atol=2)
    assert (rgb[:, 40:] == [200, 0, 0]).all()


def test_palette_transparency_and_gray_alpha_are_composited_over_white() -> None:
    palette = Image.new("P", (50, 50), 1)
    palette.putpalette([0, 0, 0, 10, 20, 30] + [0] * 762)
    data = encoded(palette, "PNG", transparency=1)
    assert (decode_image(data, LIMITS) == 255).all()
    gray_alpha = Image.new("LA", (50, 50), (0, 0))
    assert (decode_image(encoded(gray_alpha, "PNG"), LIMITS) == 255).all()


def test_rgb_png_with_a_transparent_colour_key() -> None:
    image = Image.new("RGB", (50, 50), (1, 2, 3))
    image.paste((9, 9, 9), (0, 0, 25, 50))
    rgb = decode_image(encoded(image, "PNG", transparency=(1, 2, 3)), LIMITS)
    assert (rgb[:, 25:] == 255).all() and (rgb[:, :25] == 9).all()


def test_scaled_decode_fits_the_long_side() -> None:
    data = photo("deepface__img4.jpg")  # 2500x1728
    small = decode_image_scaled(data, 1024, LIMITS)
    assert_rgb(small)
    assert small.shape == (708, 1024, 3)
    full = decode_image(data, LIMITS)
    reference = cv2.resize(full, (1024, 708), interpolation=cv2.INTER_AREA)
    assert mean_abs_diff(small, reference) < 3
    assert decode_image_scaled(photo(SMALL_JPEG), 1024, LIMITS).shape == (150, 150, 3)
    png = photo("codeformer__inputs_cropped_faces_0143.png")
    assert decode_image_scaled(png, 256, LIMITS).shape == (256, 256, 3)


def test_scaled_decode_applies_the_rules_first() -> None:
    assert error_of(decode_image_scaled, png_header_only(30000, 30000), 512, LIMITS) is Err.IMAGE_SIZE_OUT_OF_RANGE


def test_pillow_never_loads_truncated_images() -> None:
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


# --- base64 ------------------------------------------------------------------------------

JPEG_BYTES = photo(SMALL_JPEG)


@pytest.mark.parametrize(
    "text",
    [
        base64.b64encode(JPEG_BYTES).decode(),
        base64.urlsafe_b64encode(JPEG_BYTES).decode(),
        base64.b64encode(JPEG_BYTES).decode().rstrip("="),
        base64.urlsafe_b64encode(JPEG_BYTES).decode().rstrip("="),
        base64.encodebytes(JPEG_BYTES).decode(),  # MIME: a newline every 76 characters
        base64.encodebytes(JPEG_BYTES).decode().replace("\n", "\r\n"),
        "data:image/jpeg;base64," + base64.b64encode(JPEG_BYTES).decode(),
        "DATA:image/png;base64," + base64.b64encode(JPEG_BYTES).decode(),
        "  \n" + base64.b64encode(JPEG_BYTES).decode() + "\n\t ",
    ],
    ids=[
        "standard",
        "urlsafe",
        "standard-unpadded",
        "urlsafe-unpadded",
        "mime",
        "mime-crlf",
        "data-uri",
        "data-uri-case",
        "surrounding-space",
    ],
)
def test_base64_variants_decode_to_the_same_bytes(text: str) -> None:
    assert decode_base64(text, max_bytes=LIMITS.max_bytes) == JPEG_BYTES


@pytest.mark.parametrize(
    "text", ["", "   \n", "a", "abcde", "ab$d", "YWJj*", "YQ==YQ==", "Y=Q=", "données", "data:image/png;base64,"]
)
def test_invalid_base64_is_invalid_media_data(text: str) -> None:
    assert error_of(decode_base64, text) is Err.INVALID_MEDIA_DATA


def test_absurdly_long_base64_is_refused_before_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    import binascii

    import pybase64

    monkeypatch.setattr(pybase64, "b64decode", _must_not_decode)
    monkeypatch.setattr(binascii, "a2b_base64", _must_not_decode)
    text = "A" * (4 * 1024 * 1024)
    with pytest.raises(FacefuseError) as caught:
        decode_base64(text, max_bytes=LIMITS.max_bytes)
    assert caught.value.error is Err.IMAGE_FILE_TOO_LARGE and "2 MB" in caught.value.detail


def test_base64_of_just_over_the_limit_is_too_large() -> None:
    limit = 3000
    assert len(decode_base64(base64.b64encode(bytes(limit)).decode(), max_bytes=limit)) == limit
    assert error_of(decode_base64, base64.b64encode(bytes(limit + 1)).decode(), limit) is Err.IMAGE_FILE_TOO_LARGE
    # line breaks do not count against the limit
    assert len(decode_base64(base64.encodebytes(bytes(limit)).decode(), max_bytes=limit)) == limit


# --- encode ------------------------------------------------------------------------------


def test_encode_jpeg_round_trips(upright: Image.Image) -> None:
    rgb = np.asarray(upright)
    data = encode_jpeg(rgb, 92)
    assert sniff_format(data) == "jpeg"
    assert mean_abs_diff(decode_image(data, LIMITS), rgb) < 2
    assert len(encode_jpeg(rgb, 50)) < len(data)


def test_encode_jpeg_accepts_views_and_refuses_non_rgb(upright: Image.Image) -> None:
    rgb = np.asarray(upright)
    view = rgb[10:200:2, 5:300]
    assert decode_image(encode_jpeg(view), LIMITS).shape == view.shape
    with pytest.raises(ValueError):
        encode_jpeg(rgb[:, :, 0])
    with pytest.raises(ValueError):
        encode_jpeg(rgb.astype(np.float32))


def _full_encode_with_restarts(rgb: np.ndarray, quality: int, interval: int) -> bytes:
    """What libjpeg-turbo writes for the whole image: 4:4:4, a restart every `interval` blocks."""
    ok, data = cv2.imencode(
        ".jpg",
        cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
        [
            cv2.IMWRITE_JPEG_QUALITY,
            quality,
            cv2.IMWRITE_JPEG_SAMPLING_FACTOR,
            cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444,
            cv2.IMWRITE_JPEG_RST_INTERVAL,
            interval,
        ],
    )
    assert ok
    return data.tobytes()


@pytest.mark.parametrize("size", [(455, 568), (480, 563), (440, 560)])  # whole blocks or not, tiles or rows
@pytest.mark.parametrize(
    "box", [(40, 100, 400, 300), (0, 0, 37, 37), (201, 421, 480, 563), (100, 203, 101, 204), (0, 0, 480, 568)]
)
def test_re_encoding_only_changed_tiles_gives_the_bytes_of_a_full_encode(
    upright: Image.Image, size: tuple[int, int], box: tuple[int, int, int, int], spare_core: bool
) -> None:
    width, height = size
    template = np.ascontiguousarray(np.asarray(upright.resize((width, 568)))[:height])
    kept = TileCodedJpeg.encode(template, 93)
    blocks = -(-width // 8)
    assert blocks % kept.interval == 0 and (kept.interval < blocks) == (width == 480 or width == 440)
    x0, y0, x1, y1 = box
    result = template.copy()
    result[y0:y1, x0:x1] = 255 - result[y0:y1, x0:x1]  # a change confined to the box
    data = kept.with_region(result, box)
    assert data == _full_encode_with_restarts(result, 93, kept.interval)
    assert mean_abs_diff(decode_image(data, LIMITS), result) < 2
    assert kept.with_region(template, (0, 0, 0, 0)) == _full_encode_with_restarts(template, 93, kept.interval)
    with pytest.raises(ValueError):
        kept.with_region(result[:-8], box)


# --- properties --------------------------------------------------------------------------

# the deadline catches decoders that stall on small hostile inputs (a 4 kB file must not take a second)
FUZZ = settings(max_examples=300, deadline=timedelta(seconds=1), suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.text())
def test_decode_base64_raises_only_facefuse_errors(text: str) -> None:
    try:
        decode_base64(text, max_bytes=1000)
    except FacefuseError as error:
        assert error.error in (Err.INVALID_MEDIA_DATA, Err.IMAGE_FILE_TOO_LARGE)


@FUZZ
@given(st.binary(max_size=3000), st.sampled_from(["standard", "urlsafe", "unpadded", "mime", "data-uri"]))
def test_decode_base64_round_trips(data: bytes, variant: str) -> None:
    text = {
        "standard": lambda: base64.b64encode(data).decode(),
        "urlsafe": lambda: base64.urlsafe_b64encode(data).decode(),
        "unpadded": lambda: base64.b64encode(data).decode().rstrip("="),
        "mime": lambda: base64.encodebytes(data).decode(),
        "data-uri": lambda: "data:image/png;base64," + base64.b64encode(data).decode(),
    }[variant]()
    if data:
        assert decode_base64(text, max_bytes=3000) == data
    else:
        assert error_of(decode_base64, text) is Err.INVALID_MEDIA_DATA


def decode_or_refuse(data: bytes) -> None:
    """decode_image either gives an RGB image within the rules or a FacefuseError: nothing else."""
    try:
        rgb = decode_image(data, LIMITS)
    except FacefuseError as error:
        assert error.error in (
            Err.UNSUPPORTED_IMAGE_FORMAT,
            Err.IMAGE_FILE_TOO_LARGE,
            Err.IMAGE_SIZE_OUT_OF_RANGE,
            Err.IMAGE_DECODE_ERROR,
        )
        return
    assert_rgb(rgb)
    assert LIMITS.min_side <= min(rgb.shape[:2]) and max(rgb.shape[:2]) <= LIMITS.max_side


@FUZZ
@given(
    st.one_of(
        st.binary(max_size=4000),
        st.binary(max_size=4000).map(lambda tail: b"\xff\xd8\xff" + tail),
        st.binary(max_size=4000).map(lambda tail: b"\x89PNG\r\n\x1a\n" + tail),
        st.binary(max_size=4000).map(lambda tail: png_header_only(64, 64)[:33] + tail),
    )
)
def test_arbitrary_bytes_raise_only_facefuse_errors(data: bytes) -> None:
    decode_or_refuse(data)


def mutated(original: bytes) -> st.SearchStrategy[bytes]:
    edits = st.lists(st.tuples(st.integers(0, len(original) - 1), st.integers(0, 255)), min_size=1, max_size=12)
    cut = st.one_of(st.none(), st.integers(0, len(original)))

    def apply(pair: tuple[list[tuple[int, int]], int | None]) -> bytes:
        changed = bytearray(original)
        for position, value in pair[0]:
            changed[position] = value
        return bytes(changed[: pair[1]] if pair[1] is not None else changed)

    return st.tuples(edits, cut).map(apply)


@FUZZ
@given(mutated(photo(SMALL_JPEG)))
def test_mutated_real_jpeg_raises_only_facefuse_errors(data: bytes) -> None:
    decode_or_refuse(data)


@FUZZ
@given(st.deferred(lambda: mutated(photo(SMALL_PNG))))  # drawn in the test: skips without the photo
def test_mutated_real_png_raises_only_facefuse_errors(data: bytes) -> None:
    decode_or_refuse(data)


@FUZZ
@given(mutated(photo(SMALL_JPEG)[:700]))
def test_mutated_jpeg_headers_raise_only_facefuse_errors(data: bytes) -> None:
    """Edits concentrated on the marker segments that read_dimensions walks."""
    try:
        check_image(data + photo(SMALL_JPEG)[700:], LIMITS)
    except FacefuseError:
        pass


def test_reduced_decode_halves_from_the_dct_upright_and_rounds_up(upright: Image.Image) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    stored = upright.resize((911, 1135)).transpose(Image.Transpose.ROTATE_90)
    data = encoded(stored, "JPEG", exif=exif, quality=95)
    full, half = decode_image(data, LIMITS), decode_image_reduced(data, 2, LIMITS)
    assert_rgb(half)
    assert half.shape == (568, 456, 3)  # ceil(1135 / 2), ceil(911 / 2), upright
    shrunk = cv2.resize(full, (456, 568), interpolation=cv2.INTER_AREA)
    assert mean_abs_diff(half, shrunk) < 3.0


def test_reduced_decode_of_a_png_is_the_whole_image() -> None:
    assert decode_image_reduced(photo(SMALL_PNG), 4, LIMITS).shape == (141, 140, 3)


def test_reduced_decode_applies_the_rules_first() -> None:
    assert error_of(decode_image_reduced, png_header_only(30000, 30000), 2, LIMITS) is Err.IMAGE_SIZE_OUT_OF_RANGE
