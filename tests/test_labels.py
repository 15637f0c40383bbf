"""Every result says what it is (docs/labels.md): the XMP label read back by exiftool, the
visible mark, the signed C2PA manifest verified by the C2PA library, and nothing of the
inputs' EXIF in a result. Against the real server and the real command line."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import c2pa
import numpy as np
import pydantic
import pytest
from conftest import DEMO_TEMPLATE, FACEFUSE, RunningServer, face, start_server, stop_server
from PIL import Image
from signing_chain import SigningChain, make_chain

from facefuse.client import FacefuseClient
from facefuse.media.encode import TileCodedJpeg
from facefuse.media.mark import MarkStyle, draw_mark
from facefuse.media.provenance import DIGITAL_SOURCE_TYPE, service_version
from facefuse.settings import Settings

SELFIE = "face_recognition__examples_obama.jpg"
TEMPLATE_PHOTO = "deepface__img29.jpg"
EXIFTOOL = shutil.which("exiftool")
needs_exiftool = pytest.mark.skipif(
    EXIFTOOL is None, reason="exiftool is not installed (Debian: libimage-exiftool-perl; .ci/run installs it)"
)
SERIAL = "SN-LEAK-77310"
OWNER = "Leaky Owner"
LATITUDE = 48.858370
EXIF_ARGS = [
    f"-GPSLatitude={LATITUDE}",
    "-GPSLatitudeRef=N",
    "-GPSLongitude=2.294481",
    "-GPSLongitudeRef=E",
    f"-SerialNumber={SERIAL}",
    f"-BodySerialNumber={SERIAL}",
    f"-OwnerName={OWNER}",
    "-Make=LeakCam",
    "-Model=LeakCam 9000",
    "-XMP-xmpMM:DocumentID=xmp.did:leaky-document",
]


# ------------------------------------------------------------------ helpers


def exiftool_json(*paths: Path) -> list[dict[str, object]]:
    """exiftool's reading of each file: every tag, by group (-G1), duplicates too (-a)."""
    assert EXIFTOOL is not None
    done = subprocess.run(
        [EXIFTOOL, "-j", "-a", "-G1", "-struct", *map(str, paths)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def fuse_body(user: bytes, template: str | None = DEMO_TEMPLATE, **parameter: object) -> dict[str, object]:
    return {
        "parameter": {"faceFusePPType": template, "rsp_media_type": "base64", **parameter},
        "media_info_list": [
            {"media_data": base64.b64encode(user).decode(), "media_profiles": {"media_data_type": "jpg"}}
        ],
    }


def fused(server: RunningServer, body: dict[str, object]) -> bytes:
    with server.client() as client:
        answer = client.post("/v3/facefuse", params=server.auth, json=body)
        assert answer.status_code == 200, answer.text
        media = answer.json()["media_info_list"][0]
        if media["media_profiles"]["media_data_type"] == "url":
            got = client.get(media["media_data"])
            assert got.status_code == 200
            return got.content
        return base64.b64decode(media["media_data"])


def pixels(jpeg: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"), dtype=np.int16)


def assert_implicit_label(tags: dict[str, object], template_id: str | None) -> None:
    assert tags["XMP-iptcExt:DigitalSourceType"] == DIGITAL_SOURCE_TYPE
    assert "AI-generated image: a face fusion" in str(tags["XMP-dc:Description"])
    assert str(tags["XMP-dc:Description-zh-CN"]).startswith("AI合成")
    assert tags["XMP-xmp:CreatorTool"] == f"facefuse {service_version()}"
    assert str(tags["XMP-xmpMM:DocumentID"]).startswith("xmp.did:")
    assert template_id is None or tags["XMP-dc:Source"] == f"facefuse template {template_id}"
    aigc = json.loads(str(tags["XMP-TC260:Aigc"]))
    assert aigc["Label"] == "1" and aigc["ContentProducer"] and aigc["ProduceID"] in str(tags["XMP-xmpMM:DocumentID"])


def leaky_copy(name: str, folder: Path) -> Path:
    """A copy of a photo with GPS, camera serials, an owner and an EXIF thumbnail."""
    folder.mkdir(parents=True, exist_ok=True)
    path, thumb = folder / f"leaky-{name}", folder / f"thumb-{name}"
    path.write_bytes(face(name).read_bytes())
    Image.open(path).convert("RGB").resize((96, 96)).save(thumb, "JPEG")
    assert EXIFTOOL is not None
    subprocess.run(
        [EXIFTOOL, "-q", "-overwrite_original", *EXIF_ARGS, f"-ThumbnailImage<={thumb}", str(path)],
        check=True,
        timeout=60,
    )
    tags = exiftool_json(path)[0]
    assert tags["IFD1:ThumbnailImage"] and tags["ExifIFD:SerialNumber"] == SERIAL  # the leak is there to find
    return path


def assert_nothing_leaks(result: bytes, tags: dict[str, object]) -> None:
    leaked = [k for k in tags if k.split(":")[0] in ("IFD0", "IFD1", "ExifIFD", "GPS", "InteropIFD", "MakerNotes")]
    assert leaked == [], leaked
    assert not any(word in key for key in tags for word in ("GPS", "Serial", "Thumbnail", "Owner", "Make", "Model"))
    for secret in (SERIAL.encode(), OWNER.encode(), b"LeakCam", b"leaky-document"):
        assert secret not in result


def verify(jpeg: bytes, trust_anchor: bytes) -> c2pa.Reader:
    context = c2pa.Context.from_dict(
        {"verify": {"verify_trust": True}, "trust": {"trust_anchors": trust_anchor.decode()}}
    )
    return c2pa.Reader("image/jpeg", io.BytesIO(jpeg), context=context)


# ------------------------------------------------------------------ the implicit label


@needs_exiftool
def test_every_result_carries_the_xmp_label_read_by_exiftool(server: RunningServer, tmp_path: Path) -> None:
    user = face(SELFIE).read_bytes()
    first, second = tmp_path / "first.jpg", tmp_path / "second.jpg"
    first.write_bytes(fused(server, fuse_body(user)))
    second.write_bytes(fused(server, fuse_body(user, rsp_media_type="url")))  # the stored result link
    tags = exiftool_json(first, second)
    for each in tags:
        assert_implicit_label(each, DEMO_TEMPLATE)
    assert tags[0]["XMP-xmpMM:DocumentID"] != tags[1]["XMP-xmpMM:DocumentID"]  # a content id of its own


@needs_exiftool
def test_an_ad_hoc_template_result_is_labelled_too(server: RunningServer, tmp_path: Path) -> None:
    body = fuse_body(face(SELFIE).read_bytes(), template=None)
    body["media_info_list"].append(  # type: ignore[attr-defined]
        {
            "media_data": base64.b64encode(face(TEMPLATE_PHOTO).read_bytes()).decode(),
            "media_profiles": {"media_data_type": "jpg"},
            "media_extra": {"role": "template"},
        }
    )
    path = tmp_path / "ad-hoc.jpg"
    path.write_bytes(fused(server, body))
    tags = exiftool_json(path)[0]
    assert_implicit_label(tags, None)
    assert "ad-hoc" in str(tags["XMP-dc:Source"])


# ------------------------------------------------------------------ the visible mark


def test_the_mark_is_on_by_default_and_off_on_request(server: RunningServer) -> None:
    user = face(SELFIE).read_bytes()
    unset = pixels(fused(server, fuse_body(user)))
    marked = pixels(fused(server, fuse_body(user, ai_label=True)))
    plain = pixels(fused(server, fuse_body(user, ai_label=False)))
    with FacefuseClient(server.api_key, server.api_secret, base_url=server.base_url) as client:
        from_client = client.fuse(user, DEMO_TEMPLATE, ai_label=False).jpeg
    assert from_client is not None and np.array_equal(pixels(from_client), plain)  # the Python client says so too
    assert np.array_equal(unset, marked)  # default_on
    changed = np.argwhere(np.abs(marked - plain).max(axis=2) > 8)
    height, width = plain.shape[:2]
    assert len(changed) > 0.001 * height * width  # the mark is there ...
    ys, xs = changed[:, 0], changed[:, 1]
    assert ys.min() > 0.85 * height and xs.min() > 0.6 * width  # ... in the bottom-right corner only
    assert (height - ys.max()) < 0.06 * height and (width - xs.max()) < 0.06 * width


@pytest.mark.parametrize("value", ["yes", 1, "true", 0])
def test_ai_label_must_be_a_boolean(server: RunningServer, value: object) -> None:
    with server.client() as client:
        answer = client.post("/v3/facefuse", params=server.auth, json=fuse_body(b"x", ai_label=value))
    assert answer.status_code == 400
    body = answer.json()
    assert body["ErrorCode"] == 10003 and "parameter.ai_label" in body["Data"], body


@pytest.mark.parametrize("background", [0, 255, 128])
def test_the_mark_is_legible_on_dark_light_and_mid_backgrounds(background: int) -> None:
    image = np.full((1000, 800, 3), background, np.uint8)
    x0, y0, x1, y1 = draw_mark(image, MarkStyle())
    region = image[y0:y1, x0:x1].astype(int).mean(axis=2)
    text = np.percentile(region, 99)  # the glyphs' cores
    plate = np.percentile(region, 20)  # the plate around them
    assert text - plate > 90, (text, plate)
    assert np.array_equal(image[: y0 - 1], np.full_like(image[: y0 - 1], background))  # nothing outside the box


def test_the_mark_scales_with_the_image_and_takes_its_corner() -> None:
    boxes = {}
    for side in (600, 1200, 2400):
        boxes[side] = draw_mark(np.zeros((side, side, 3), np.uint8), MarkStyle())
    heights = {side: box[3] - box[1] for side, box in boxes.items()}
    assert 1.8 < heights[1200] / heights[600] < 2.2 and 1.8 < heights[2400] / heights[1200] < 2.2
    assert heights[1200] < 0.06 * 1200  # small
    for position in ("bottom-right", "bottom-left", "top-right", "top-left"):
        x0, y0, x1, y1 = draw_mark(np.zeros((1000, 1000, 3), np.uint8), MarkStyle(position=position))  # type: ignore[arg-type]
        assert (y0 > 500) == position.startswith("bottom") and (x0 > 500) == position.endswith("right")
    tiny = draw_mark(np.zeros((48, 48, 3), np.uint8), MarkStyle(text="AI-generated"))
    assert 0 <= tiny[0] < tiny[2] <= 48 and 0 <= tiny[1] < tiny[3] <= 48  # cut to the image, not past it


def test_label_settings_are_checked() -> None:
    with pytest.raises(pydantic.ValidationError, match="no glyph"):
        Settings(ai_label_text="AI généré")
    with pytest.raises(pydantic.ValidationError, match="both or neither"):
        Settings(c2pa_cert=Path("chain.pem"))
    assert Settings(ai_label_text="AI-generated", c2pa_cert="", c2pa_key="").c2pa_cert is None


def test_re_encoding_the_face_and_the_mark_gives_the_bytes_of_a_full_encode() -> None:
    rng = np.random.default_rng(5)
    template = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    kept = TileCodedJpeg.encode(template, 95)
    result = template.copy()
    result[100:220, 250:380] = rng.integers(0, 256, (120, 130, 3), dtype=np.uint8)
    mark = draw_mark(result, MarkStyle())
    assert kept.with_regions(result, [(250, 100, 380, 220), mark]) == b"".join(
        [TileCodedJpeg.encode(result, 95).header, *TileCodedJpeg.encode(result, 95).tiles, b"\xff\xd9"]
    )


@needs_exiftool
def test_the_command_line_labels_its_results_and_follows_the_policy(tmp_path: Path) -> None:
    def run(policy: str, *flags: str) -> bytes:
        out = tmp_path / f"{policy}{''.join(flags)}.jpg"
        env = {"FACEFUSE_DATA_DIR": str(tmp_path / "data"), "FACEFUSE_AI_LABEL": policy}
        done = subprocess.run(
            [*FACEFUSE, "fuse", str(face(SELFIE)), "--template", DEMO_TEMPLATE, "-o", str(out), *flags],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr
        return out.read_bytes()

    forced = run("always", "--no-ai-label")
    off = run("default_off")
    asked = run("default_off", "--ai-label")
    assert np.array_equal(pixels(forced), pixels(asked))  # always: the request cannot take the mark off
    assert np.abs(pixels(forced) - pixels(off)).max() > 24
    for name in ("always--no-ai-label", "default_off", "default_off--ai-label"):
        assert_implicit_label(exiftool_json(tmp_path / f"{name}.jpg")[0], DEMO_TEMPLATE)  # always there


# ------------------------------------------------------------------ signed provenance and leaks


@pytest.fixture(scope="module")
def chain() -> SigningChain:
    return make_chain()


@pytest.fixture(scope="module")
def signing_server(tmp_path_factory: pytest.TempPathFactory, chain: SigningChain) -> Iterator[RunningServer]:
    cert, key = chain.write(tmp_path_factory.mktemp("pki"))
    env = {"FACEFUSE_C2PA_CERT": str(cert), "FACEFUSE_C2PA_KEY": str(key), "FACEFUSE_WORKERS": "1"}
    running = start_server(tmp_path_factory.mktemp("signing") / "data", extra_env=env)
    yield running
    stop_server(running)


@needs_exiftool
def test_a_signed_result_verifies_and_names_its_ingredients_by_hash(
    signing_server: RunningServer, chain: SigningChain, tmp_path: Path
) -> None:
    user = face(SELFIE).read_bytes()
    jpeg = fused(signing_server, fuse_body(user))
    reader = verify(jpeg, chain.root_pem)
    assert reader.get_validation_state() == "Trusted", reader.get_validation_results()
    manifest = reader.get_active_manifest()
    assert manifest is not None
    actions = next(a for a in manifest["assertions"] if a["label"].startswith("c2pa.actions"))["data"]["actions"]
    assert [a["action"] for a in actions] == ["c2pa.created", "c2pa.edited"]
    assert {a["digitalSourceType"] for a in actions} == {DIGITAL_SOURCE_TYPE}
    assert actions[0]["softwareAgent"] == {"name": "facefuse", "version": service_version()}
    ingredients = {i["title"]: i for i in manifest["ingredients"]}
    assert set(ingredients) == {f"template {DEMO_TEMPLATE}", "user photo 1"}
    assert ingredients["user photo 1"]["metadata"]["facefuse.sha256"] == hashlib.sha256(user).hexdigest()
    assert all("thumbnail" not in i for i in ingredients.values())  # hashes, never pixels
    path = tmp_path / "signed.jpg"
    path.write_bytes(jpeg)
    assert_implicit_label(exiftool_json(path)[0], DEMO_TEMPLATE)  # the XMP label is kept under the signature


def test_a_tampered_result_fails_verification(signing_server: RunningServer, chain: SigningChain) -> None:
    jpeg = fused(signing_server, fuse_body(face(SELFIE).read_bytes()))
    scan = jpeg.rindex(b"\xff\xda")
    tampered = bytearray(jpeg)
    tampered[(scan + len(jpeg)) // 2] ^= 0x5A  # one byte of the coded image
    reader = verify(bytes(tampered), chain.root_pem)
    assert reader.get_validation_state() == "Invalid"
    failures = reader.get_validation_results()["activeManifest"]["failure"]  # type: ignore[index]
    assert "assertion.dataHash.mismatch" in {f["code"] for f in failures}
    relabelled = jpeg.replace(b"AI-generated image", b"AI-processed image")  # the XMP label edited
    assert verify(relabelled, chain.root_pem).get_validation_state() == "Invalid"


@needs_exiftool
def test_no_exif_of_the_user_or_the_template_reaches_a_result(
    signing_server: RunningServer, chain: SigningChain, tmp_path: Path
) -> None:
    """GPS, serials, owner, make, model and the EXIF thumbnail of both inputs stay out of the
    result: its XMP, its JPEG segments and its signed manifest alike."""
    user = leaky_copy(SELFIE, tmp_path / "in").read_bytes()
    template = leaky_copy(TEMPLATE_PHOTO, tmp_path / "in").read_bytes()
    with signing_server.client() as client:
        added = client.post(
            "/v3/templates",
            params=signing_server.auth,
            json={"media_info_list": [{"media_data": base64.b64encode(template).decode(), "media_profiles": {}}]},
        )
    assert added.status_code == 200, added.text
    ad_hoc = fuse_body(user, template=None)
    ad_hoc["media_info_list"].append(  # type: ignore[attr-defined]
        {
            "media_data": base64.b64encode(template).decode(),
            "media_profiles": {"media_data_type": "jpg"},
            "media_extra": {"role": "template"},
        }
    )
    results = {
        "registered": fused(signing_server, fuse_body(user, template=added.json()["template_id"])),
        "ad-hoc": fused(signing_server, ad_hoc),
    }
    for name, jpeg in results.items():
        path = tmp_path / f"{name}.jpg"
        path.write_bytes(jpeg)
        tags = exiftool_json(path)[0]
        assert_implicit_label(tags, None)
        assert_nothing_leaks(jpeg, tags)
        reader = verify(jpeg, chain.root_pem)
        assert reader.get_validation_state() == "Trusted"
        text = reader.json()
        for secret in (SERIAL, OWNER, "LeakCam", "leaky-document", f"{LATITUDE}"):
            assert secret not in text


def test_a_key_that_cannot_sign_stops_the_server_at_start(tmp_path: Path, chain: SigningChain) -> None:
    cert, _ = chain.write(tmp_path / "pki")
    wrong = tmp_path / "pki" / "not-a-key.pem"
    wrong.write_text("-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n")
    env = {**os.environ, "FACEFUSE_DATA_DIR": str(tmp_path / "data")}
    env |= {"FACEFUSE_C2PA_CERT": str(cert), "FACEFUSE_C2PA_KEY": str(wrong)}
    done = subprocess.run([*FACEFUSE, "serve", "--port", "0"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "FACEFUSE_C2PA_KEY" in done.stderr and "Traceback" not in done.stderr, done.stderr[-2000:]


@pytest.mark.parametrize(
    "env, message",
    [
        ({"FACEFUSE_AI_LABEL_TEXT": "AI généré"}, "FACEFUSE_AI_LABEL_TEXT: the label font has no glyph for 'é'"),
        ({"FACEFUSE_AI_LABEL": "sometimes"}, "FACEFUSE_AI_LABEL: Input should be 'always', 'default_on'"),
        ({"FACEFUSE_C2PA_KEY": "signer.key"}, "FACEFUSE_C2PA_CERT and FACEFUSE_C2PA_KEY go together"),
    ],
)
def test_label_settings_that_cannot_work_stop_the_command_line(
    tmp_path: Path, env: dict[str, str], message: str
) -> None:
    done = subprocess.run(
        [*FACEFUSE, "fuse", str(face(SELFIE)), "--template", DEMO_TEMPLATE, "-o", str(tmp_path / "out.jpg")],
        env={**os.environ, "FACEFUSE_DATA_DIR": str(tmp_path / "data"), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0 and not (tmp_path / "out.jpg").exists()
    assert message in done.stderr and "Traceback" not in done.stderr, done.stderr[-2000:]


def test_the_result_link_serves_the_same_labelled_bytes(server: RunningServer) -> None:
    with server.client() as client:
        answer = client.post(
            "/v3/facefuse", params=server.auth, json=fuse_body(face(SELFIE).read_bytes(), rsp_media_type="url")
        )
        link = answer.json()["media_info_list"][0]["media_data"]
        stored = client.get(link).content
    files = list((server.data_dir / "results").glob("*.jpg"))
    token = link.rsplit("/", 1)[1]
    assert (server.data_dir / "results" / token).read_bytes() == stored and files
    assert DIGITAL_SOURCE_TYPE.encode() in stored
