"""Template library end to end: admin HTTP API, CLI while the server runs, ad-hoc and multi-face."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
from conftest import DEMO_TEMPLATE, RunningServer, face
from PIL import Image
from test_api import SELFIE, assert_error, b64, fuse_body, post_fuse

from facefuse.media.decode import decode_image
from facefuse.media.encode import encode_jpeg

GROUP = "face_recognition__examples_two_people.jpg"


def media(name: str, **extra: object) -> dict:
    item: dict = {"media_data": b64(name), "media_profiles": {"media_data_type": "jpg"}}
    if extra:
        item["media_extra"] = extra
    return item


def result_image(response) -> np.ndarray:
    assert response.status_code == 200, response.text
    data = base64.b64decode(response.json()["media_info_list"][0]["media_data"])
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.int16)


def test_admin_api_create_list_get_delete(server: RunningServer) -> None:
    with server.client() as client:
        created = client.post(
            "/v3/templates",
            params=server.auth,
            json={
                "media_info_list": [media("deepface__img2.jpg")],
                "parameter": {"template_id": "adminapitemplate01", "name": "angelina"},
            },
        )
        assert created.status_code == 200, created.text
        info = created.json()
        assert {k: info[k] for k in ("template_id", "name", "faces", "width", "height")} == {
            "template_id": "adminapitemplate01",
            "name": "angelina",
            "faces": 1,
            "width": 1536,
            "height": 1152,
        }
        assert info["created_at"]
        listed = client.get("/v3/templates", params=server.auth).json()["templates"]
        assert {"adminapitemplate01", DEMO_TEMPLATE} <= {t["template_id"] for t in listed}
        assert client.get("/v3/templates/adminapitemplate01", params=server.auth).json() == info
        assert post_fuse(server, fuse_body(b64(SELFIE), template="adminapitemplate01")).status_code == 200
        deleted = client.delete("/v3/templates/adminapitemplate01", params=server.auth)
        assert deleted.json() == {"template_id": "adminapitemplate01", "deleted": True}
        assert_error(client.get("/v3/templates/adminapitemplate01", params=server.auth), 404, 10104, "NOT_FOUND")
    assert_error(
        post_fuse(server, fuse_body(b64(SELFIE), template="adminapitemplate01")), 400, 10011, "TEMPLATE_NOT_FOUND"
    )


def test_admin_api_errors(server: RunningServer) -> None:
    plain = json.loads(server.cli("keys", "create", "--name", "plain", "--json").stdout)
    with server.client() as client:
        body = {"media_info_list": [media("insightface__crop_no_face.png")]}
        assert_error(client.post("/v3/templates", params=plain, json=body), 403, 10103, "PERMISSION_DENIED")
        assert client.get("/v3/templates", params=plain).status_code == 200  # every key may look (B.11)
        assert_error(client.delete(f"/v3/templates/{DEMO_TEMPLATE}", params=plain), 403, 10103, "PERMISSION_DENIED")
        assert_error(
            client.post("/v3/templates", params=server.auth, json=body), 400, 220003, "model photo detect no face"
        )
        bad_id = {"media_info_list": [media("deepface__img2.jpg")], "parameter": {"template_id": "Bad/Id"}}
        assert_error(client.post("/v3/templates", params=server.auth, json=bad_id), 400, 10003, "INVALID_PARAMETER")
        duplicate = {"media_info_list": [media("deepface__img2.jpg")], "parameter": {"template_id": DEMO_TEMPLATE}}
        assert_error(client.post("/v3/templates", params=server.auth, json=duplicate), 400, 10003, "INVALID_PARAMETER")
        assert_error(client.delete("/v3/templates/nosuchtemplate0000", params=server.auth), 404, 10104, "NOT_FOUND")
    assert client.is_closed


def test_template_added_by_cli_is_usable_at_once(server: RunningServer) -> None:
    added = server.cli(
        "templates",
        "add",
        str(face("deepface__img29.jpg")),
        "--id",
        "clitemplate0000001",
        "--name",
        "from-cli",
        "--json",
    )
    assert json.loads(added.stdout) == {"template_id": "clitemplate0000001", "faces": 1}
    assert "clitemplate0000001" in server.cli("templates", "list").stdout
    assert json.loads(server.cli("templates", "show", "clitemplate0000001").stdout)["name"] == "from-cli"
    assert post_fuse(server, fuse_body(b64(SELFIE), template="clitemplate0000001")).status_code == 200
    server.cli("templates", "remove", "clitemplate0000001")
    assert_error(
        post_fuse(server, fuse_body(b64(SELFIE), template="clitemplate0000001")), 400, 10011, "TEMPLATE_NOT_FOUND"
    )


def test_ad_hoc_template_photo(server: RunningServer) -> None:
    body = {
        "parameter": {"rsp_media_type": "base64"},
        "media_info_list": [media(SELFIE), media("deepface__img29.jpg", role="template")],
    }
    result = result_image(post_fuse(server, body))
    template = np.asarray(Image.open(face("deepface__img29.jpg")).convert("RGB"), dtype=np.int16)
    assert result.shape == template.shape
    assert np.abs(result - template).mean() > 0.5  # the face changed
    no_face = {
        "parameter": {},
        "media_info_list": [media(SELFIE), media("insightface__crop_no_face.png", role="template")],
    }
    assert_error(post_fuse(server, no_face), 400, 220003, "model photo detect no face")


def test_multi_face_template_fills_the_faces_asked_for(server: RunningServer) -> None:
    server.cli("templates", "add", str(face(GROUP)), "--id", "twopeopletemplate1")
    # The template as the service would return it untouched: same decoder, same JPEG encoder.
    untouched = Image.open(io.BytesIO(encode_jpeg(decode_image(face(GROUP).read_bytes()), 95)))
    template = np.asarray(untouched.convert("RGB"), dtype=np.int16)
    half = template.shape[1] // 2

    def changed(result: np.ndarray) -> tuple[float, float]:
        """Share of each half's pixels that changed (untouched pixels match exactly)."""
        moved = np.abs(result - template).max(axis=2) > 8
        return float(moved[:, :half].mean()), float(moved[:, half:].mean())

    left_only = result_image(
        post_fuse(
            server,
            {
                # No visible AI label: its corner would count as a change in the right half.
                "parameter": {"faceFusePPType": "twopeopletemplate1", "ai_label": False},
                "media_info_list": [media(SELFIE, template_face_index=0)],
            },
        )
    )
    left, right = changed(left_only)
    assert left > 0.01 and right < 0.0005, (left, right)
    both = result_image(
        post_fuse(
            server,
            {
                "parameter": {"faceFusePPType": "twopeopletemplate1", "ai_label": False},
                "media_info_list": [media(SELFIE), media("deepface__img29.jpg")],
            },
        )
    )
    left, right = changed(both)
    assert left > 0.01 and right > 0.01, (left, right)
    too_far = {
        "parameter": {"faceFusePPType": "twopeopletemplate1"},
        "media_info_list": [media(SELFIE, template_face_index=5)],
    }
    assert_error(post_fuse(server, too_far), 400, 10003, "INVALID_PARAMETER")


def test_face_rect_picks_a_face_in_a_group_selfie(server: RunningServer) -> None:
    group = Image.open(face(GROUP))
    left_box = {"x": 0, "y": 0, "width": group.width // 2, "height": group.height}
    right_box = {"x": group.width // 2, "y": 0, "width": group.width // 2, "height": group.height}
    results = [
        result_image(
            post_fuse(
                server,
                {"parameter": {"faceFusePPType": DEMO_TEMPLATE}, "media_info_list": [media(GROUP, face_rect=box)]},
            )
        )
        for box in (left_box, right_box)
    ]
    assert np.abs(results[0] - results[1]).mean() > 0.5
