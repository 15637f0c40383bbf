"""The wire contract of docs/api.md part A against the real server."""

from __future__ import annotations

import base64
import io
import json
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
from conftest import DEMO_TEMPLATE, RunningServer, face
from PIL import Image

SELFIE = "face_recognition__examples_obama.jpg"
JSON_TYPE = "application/json; charset=utf-8"


def b64(name: str) -> str:
    return base64.b64encode(face(name).read_bytes()).decode()


def fuse_body(user_b64: str, template: str = DEMO_TEMPLATE, rsp: str = "base64") -> dict:
    return {
        "parameter": {"rsp_media_type": rsp, "faceFusePPType": template},
        "extra": {},
        "media_info_list": [{"media_data": user_b64, "media_profiles": {"media_data_type": "jpg"}}],
    }


def post_fuse(server: RunningServer, body: object, **kwargs: object) -> httpx.Response:
    with server.client() as client:
        content = body if isinstance(body, (bytes, str)) else json.dumps(body)
        headers = kwargs.pop("headers", {"Content-Type": "application/json"})
        params = kwargs.pop("params", server.auth)
        return client.post("/v3/facefuse", content=content, headers=headers, params=params)


def assert_error(response: httpx.Response, status: int, code: int, name: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == JSON_TYPE
    body = response.json()
    assert set(body) == {"ErrorCode", "ErrorMsg", "Data"}
    assert (body["ErrorCode"], body["ErrorMsg"]) == (code, name), body
    assert isinstance(body["Data"], str) and "Traceback" not in body["Data"]
    assert response.headers.get("x-request-id")
    return body


def decode_jpeg(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    assert image.format == "JPEG"
    return image


def test_original_curl_request_answers_a_jpeg_of_the_template_size(server: RunningServer, tmp_path: Path) -> None:
    """The request exactly as the original document sends it, with curl."""
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    request_file = tmp_path / "facefuseV3.json"
    request_file.write_text(json.dumps(fuse_body(b64(SELFIE))))
    url = f"{server.base_url}/v3/facefuse?api_key={server.api_key}&api_secret={server.api_secret}"
    completed = subprocess.run(
        [
            "curl",
            "-sS",
            "-X",
            "POST",
            url,
            "-d",
            f"@{request_file}",
            "--header",
            "Content-Type: application/json",
            "-D",
            str(tmp_path / "headers"),
        ],
        capture_output=True,
        check=True,
        timeout=60,
    )
    headers = (tmp_path / "headers").read_text().lower()
    assert "200 ok" in headers.splitlines()[0]
    assert f"content-type: {JSON_TYPE}" in headers
    answer = json.loads(completed.stdout)
    assert answer["parameter"] == {"rsp_media_type": "base64", "version": "1.0.1"}
    [media] = answer["media_info_list"]
    assert media["media_profiles"] == {"media_data_type": "jpg"}
    result = decode_jpeg(base64.b64decode(media["media_data"]))
    with server.client() as client:
        template = client.get(f"/v3/templates/{DEMO_TEMPLATE}", params=server.auth).json()
    assert result.size == (template["width"], template["height"])


def test_url_output_links_to_a_stored_jpeg(server: RunningServer) -> None:
    response = post_fuse(server, fuse_body(b64(SELFIE), rsp="url"))
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["parameter"] == {"rsp_media_type": "url", "version": "1.0.1"}
    [media] = answer["media_info_list"]
    assert media["media_profiles"] == {"media_data_type": "url"}
    link = media["media_data"]
    assert link.startswith(f"{server.base_url}/v3/results/") and link.endswith(".jpg")
    token = link.rsplit("/", 1)[1].removesuffix(".jpg")
    assert len(token) >= 22  # at least 128 random bits
    with server.client() as client:
        fetched = client.get(link)
        assert fetched.status_code == 200
        assert fetched.headers["content-type"] == "image/jpeg"
        decode_jpeg(fetched.content)
        guessed = client.get(f"/v3/results/{token[:-2]}xx.jpg")
        assert_error(guessed, 404, 10104, "NOT_FOUND")
        traversal = client.get("/v3/results/..%2F..%2Ffacefuse.sqlite3")
        assert traversal.status_code == 404


def test_form_content_type_and_data_uri_and_urlsafe_base64_are_accepted(server: RunningServer) -> None:
    raw = face(SELFIE).read_bytes()
    urlsafe = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    response = post_fuse(
        server,
        fuse_body("data:image/jpeg;base64," + urlsafe),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("body", "code", "name"),
    [
        (b"{not json", 10001, "INVALID_JSON"),
        (b"[1, 2]", 10001, "INVALID_JSON"),
        (b"", 10001, "INVALID_JSON"),
        (b"[" * 5000 + b"]" * 5000, 10001, "INVALID_JSON"),
        ({"parameter": {}}, 10002, "MISSING_PARAMETER"),
        ({"media_info_list": [{"media_data": "x", "media_profiles": {}}]}, 10002, "MISSING_PARAMETER"),
        ({"parameter": {}, "media_info_list": [{"media_profiles": {}}]}, 10002, "MISSING_PARAMETER"),
        (
            {
                "parameter": {"faceFusePPType": DEMO_TEMPLATE},
                "media_info_list": [{"media_data": "QUJD", "media_profiles": {}}],
            },
            10005,
            "UNSUPPORTED_IMAGE_FORMAT",
        ),
        (
            {
                "parameter": {"faceFusePPType": DEMO_TEMPLATE},
                "media_info_list": [{"media_data": "@@@ not base64 @@@", "media_profiles": {}}],
            },
            10004,
            "INVALID_MEDIA_DATA",
        ),
        (
            {
                "parameter": {"faceFusePPType": DEMO_TEMPLATE, "fuse_degree": 150},
                "media_info_list": [{"media_data": "QUJD", "media_profiles": {}}],
            },
            10003,
            "INVALID_PARAMETER",
        ),
        (
            {"parameter": {"rsp_media_type": "gif"}, "media_info_list": [{"media_data": "QUJD", "media_profiles": {}}]},
            10003,
            "INVALID_PARAMETER",
        ),
        ({"parameter": [], "media_info_list": []}, 10003, "INVALID_PARAMETER"),
        ({"parameter": {}, "media_info_list": [{"media_data": 5, "media_profiles": {}}]}, 10003, "INVALID_PARAMETER"),
        (
            {
                "parameter": {"faceFusePPType": "nosuchtemplate00000"},
                "media_info_list": [{"media_data": "QUJD", "media_profiles": {}}],
            },
            10011,
            "TEMPLATE_NOT_FOUND",
        ),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_malformed_requests_get_the_error_body(server: RunningServer, body: object, code: int, name: str) -> None:
    assert_error(post_fuse(server, body), 400, code, name)


def test_missing_field_is_named(server: RunningServer) -> None:
    body = {"parameter": {}, "media_info_list": [{"media_profiles": {}}]}
    detail = assert_error(post_fuse(server, body), 400, 10002, "MISSING_PARAMETER")["Data"]
    assert "media_info_list[0].media_data" in detail


@pytest.mark.parametrize(
    ("photo", "code", "name"),
    [
        ("insightface__crop_no_face.png", 20003, "DETECT_NOT_FACE"),
        ("dlib__dlib_test_ffmpeg_data_giraffe.jpg", 20003, "DETECT_NOT_FACE"),
        ("insightface__pose_left_face.jpeg", 20022, "DETECT_FACE_YAWANGLE_BIG"),
        ("insightface__pose_rise_face.jpeg", 20021, "DETECT_FACE_PITCHANGLE_BIG"),
        ("face_recognition__tests_test_images_obama_partial_face.jpg", 20020, "DETECT_FACE_OUTOFIMAGE"),
        ("deepface__img47.jpg", 10005, "UNSUPPORTED_IMAGE_FORMAT"),
        ("deepface__img1.jpg", 10006, "IMAGE_FILE_TOO_LARGE"),
        ("deepface__img49.jpg", 10007, "IMAGE_SIZE_OUT_OF_RANGE"),
    ],
)
def test_photo_problems_answer_their_codes(server: RunningServer, photo: str, code: int, name: str) -> None:
    assert_error(post_fuse(server, fuse_body(b64(photo))), 400, code, name)


def test_auth_failures(server: RunningServer) -> None:
    body = fuse_body(b64(SELFIE))
    assert_error(post_fuse(server, body, params={}), 401, 10101, "AUTH_MISSING")
    assert_error(post_fuse(server, body, params={"api_key": server.api_key}), 401, 10101, "AUTH_MISSING")
    wrong = {"api_key": server.api_key, "api_secret": server.api_secret + "x"}
    assert_error(post_fuse(server, body, params=wrong), 401, 10102, "AUTH_FAILED")
    unknown = {"api_key": "nokey", "api_secret": server.api_secret}
    assert_error(post_fuse(server, body, params=unknown), 401, 10102, "AUTH_FAILED")


def test_revoked_key_is_refused_at_once(server: RunningServer) -> None:
    created = json.loads(server.cli("keys", "create", "--name", "short-lived", "--json").stdout)
    body = fuse_body(b64(SELFIE))
    assert post_fuse(server, body, params=created).status_code == 200
    server.cli("keys", "revoke", created["api_key"])
    assert_error(post_fuse(server, body, params=created), 401, 10102, "AUTH_FAILED")


def test_routes_and_methods(server: RunningServer) -> None:
    with server.client() as client:
        assert_error(client.get("/nowhere"), 404, 10104, "NOT_FOUND")
        assert_error(client.get("/v3/facefuse", params=server.auth), 405, 10105, "METHOD_NOT_ALLOWED")


def test_body_over_the_limit_is_refused_before_parsing(server: RunningServer) -> None:
    huge = b'{"media_info_list": "' + b"A" * (9 * 1024 * 1024) + b'"}'
    assert_error(post_fuse(server, huge), 413, 10106, "REQUEST_TOO_LARGE")


def test_request_id_is_echoed_or_made(server: RunningServer) -> None:
    with server.client() as client:
        assert client.get("/healthz", headers={"X-Request-Id": "abc-123"}).headers["x-request-id"] == "abc-123"
        made = client.get("/healthz").headers["x-request-id"]
        assert len(made) >= 16


def test_the_fusion_route_keeps_its_request_id_log_and_metrics(server: RunningServer) -> None:
    """POST /v3/facefuse takes the short way in (wire/fastlane.py): the same plumbing as the rest."""

    def fused_count(metrics: str, status: str) -> float:
        prefix = f'facefuse_requests_total{{error_code="",method="POST",route="/v3/facefuse",status="{status}"}} '
        return sum(float(line[len(prefix) :]) for line in metrics.splitlines() if line.startswith(prefix))

    with server.client() as client:
        before = client.get("/metrics").text
        answer = client.post(
            "/v3/facefuse",
            params=server.auth,
            headers={"X-Request-Id": "fuse-7"},
            content=json.dumps(fuse_body(b64(SELFIE))),
        )
        refused = client.post("/v3/facefuse", params={"api_key": "nobody", "api_secret": "x"}, content=b"{}")
        after = client.get("/metrics").text
    assert answer.status_code == 200 and answer.headers["x-request-id"] == "fuse-7"
    assert_error(refused, 401, 10102, "AUTH_FAILED")
    assert fused_count(after, "200") == fused_count(before, "200") + 1
    assert fused_count(after, "401") == fused_count(before, "401") + 1
    log_file = server.data_dir.parent / f"server-{server.base_url.rsplit(':', 1)[1]}.log"
    logged = [json.loads(line) for line in log_file.read_text().splitlines() if '"fuse-7"' in line]
    assert [(e["path"], e["status"]) for e in logged] == [("/v3/facefuse", 200)]


def test_ops_endpoints(server: RunningServer) -> None:
    with server.client() as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        assert client.get("/readyz").status_code == 200
        metrics = client.get("/metrics").text
    assert "facefuse_requests_total" in metrics
    assert "facefuse_request_seconds_bucket" in metrics


def test_the_server_leaves_its_start_up_objects_out_of_garbage_collection(server: RunningServer) -> None:
    # A full collection that walked them stalled every request in flight for ~125 ms.
    log_file = server.data_dir.parent / f"server-{server.base_url.rsplit(':', 1)[1]}.log"
    ready = [json.loads(line) for line in log_file.read_text().splitlines() if '"msg": "ready"' in line]
    assert len(ready) == 1 and ready[0]["frozen_objects"] > 20_000


def test_logs_are_json_and_never_hold_secrets(server: RunningServer) -> None:
    post_fuse(server, fuse_body(b64(SELFIE)))
    log_file = server.data_dir.parent / f"server-{server.base_url.rsplit(':', 1)[1]}.log"
    lines = [line for line in log_file.read_text().splitlines() if line.startswith("{")]
    assert lines, "no JSON log lines"
    entries = [json.loads(line) for line in lines]
    assert any(e.get("msg") == "request" and e.get("path") == "/v3/facefuse" for e in entries)
    assert server.api_secret not in log_file.read_text()
