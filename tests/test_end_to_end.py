"""What a user does, end to end: url input, who is in the result, the offline CLI, health under load."""

from __future__ import annotations

import base64
import http.server
import io
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from conftest import DEMO_TEMPLATE, FACES, RunningServer, face, free_port, start_server, stop_server
from identity import SAME_PERSON, distance
from PIL import Image
from test_api import assert_error, b64, fuse_body, post_fuse

SELFIE = "face_recognition__examples_obama.jpg"
OTHER_SELFIE = "deepface__img2.jpg"


def rgb(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def fused_jpeg(response: httpx.Response) -> bytes:
    assert response.status_code == 200, response.text
    return base64.b64decode(response.json()["media_info_list"][0]["media_data"])


@pytest.fixture(scope="module")
def photo_host() -> Iterator[str]:
    """A plain HTTP server on 127.0.0.1 serving ../shared/faces (the only host tests fetch from)."""
    handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(*a, directory=str(FACES), **k)  # noqa: E731
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.fixture(scope="module")
def allowlisted_server(photo_host: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running = start_server(tmp_path_factory.mktemp("allow") / "data", extra_env={"FACEFUSE_URL_ALLOWLIST": photo_host})
    yield running
    stop_server(running)


def test_the_result_shows_the_user_not_the_template(server: RunningServer) -> None:
    result = rgb(fused_jpeg(post_fuse(server, fuse_body(b64(SELFIE)))))
    user = rgb(face(SELFIE).read_bytes())
    with server.client() as client:
        template_info = client.get(f"/v3/templates/{DEMO_TEMPLATE}", params=server.auth).json()
    assert (template_info["width"], template_info["height"]) == (result.shape[1], result.shape[0])
    to_user = distance(result, user)
    from matplotlib import cbook

    template = rgb(cbook.get_sample_data("grace_hopper.jpg").read())
    assert to_user < SAME_PERSON and to_user < distance(result, template), to_user


def test_url_input_is_fetched_from_an_allowlisted_host(allowlisted_server: RunningServer, photo_host: str) -> None:
    body = fuse_body(f"http://{photo_host}/{SELFIE}")
    body["media_info_list"][0]["media_profiles"]["media_data_type"] = "url"
    by_url = rgb(fused_jpeg(post_fuse(allowlisted_server, body)))
    by_base64 = rgb(fused_jpeg(post_fuse(allowlisted_server, fuse_body(b64(SELFIE)))))
    assert np.abs(by_url.astype(int) - by_base64.astype(int)).mean() < 0.5  # the same photo, the same result
    body["media_info_list"][0]["media_data"] = f"http://{photo_host}/no-such-photo.jpg"
    assert_error(post_fuse(allowlisted_server, body), 400, 10009, "MEDIA_URL_FETCH_FAILED")


@pytest.mark.parametrize("address", ["127.0.0.1", "localhost", "0x7f000001", "[::1]", "2130706433"])
def test_url_input_to_loopback_is_refused_without_the_allowlist(
    server: RunningServer, photo_host: str, address: str
) -> None:
    port = photo_host.split(":")[1]
    body = fuse_body(f"http://{address}:{port}/{SELFIE}")
    body["media_info_list"][0]["media_profiles"]["media_data_type"] = "url"
    assert_error(post_fuse(server, body), 400, 10010, "MEDIA_URL_NOT_ALLOWED")


def test_cli_fuses_one_photo_and_a_folder(server: RunningServer, tmp_path: Path) -> None:
    single = tmp_path / "one.jpg"
    done = server.cli("fuse", str(face(SELFIE)), "--template", DEMO_TEMPLATE, "-o", str(single))
    assert done.stdout.strip() == str(single)
    assert distance(rgb(single.read_bytes()), rgb(face(SELFIE).read_bytes())) < SAME_PERSON
    folder = tmp_path / "in"
    folder.mkdir()
    for name in (SELFIE, OTHER_SELFIE, "dlib__dlib_test_ffmpeg_data_eagle.jpg"):
        (folder / name).write_bytes(face(name).read_bytes())
    failed = server.cli(
        "fuse",
        str(folder),
        "--template-photo",
        str(face("deepface__img29.jpg")),
        "-o",
        str(tmp_path / "out"),
        check=False,
    )
    assert failed.returncode == 1  # the eagle has no face
    assert "2 of 3 fused" in failed.stdout and "20003 DETECT_NOT_FACE" in failed.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        Path(n).stem + ".jpg" for n in (SELFIE, OTHER_SELFIE)
    )


def test_health_answers_while_every_worker_thread_is_busy(server: RunningServer) -> None:
    # That the event loop runs while a job is in a work process is decided in test_workpool
    # (a job held at a gate the loop opens); here /healthz answers while fusions are in hand.
    body = fuse_body(b64(OTHER_SELFIE))
    with ThreadPoolExecutor(8) as pool:
        busy = [pool.submit(post_fuse, server, body) for _ in range(8)]
        with server.client() as client:
            in_hand = 0
            for _ in range(5000):  # the bound only stops a hang
                in_hand = client.get("/readyz").json().get("queue", 0)
                if in_hand >= 2 or all(f.done() for f in busy):
                    break
            health = client.get("/healthz")
        statuses = [f.result().status_code for f in busy]
    assert in_hand >= 2, "the fusions were never in hand together"
    assert health.status_code == 200 and health.json() == {"status": "ok"}
    assert set(statuses) <= {200, 503} and 200 in statuses


def test_result_links_expire_and_are_swept(tmp_path_factory: pytest.TempPathFactory) -> None:
    from facefuse.settings import Settings
    from facefuse.storage.db import SqliteDatabase

    running = start_server(
        tmp_path_factory.mktemp("ttl") / "data",
        extra_env={"FACEFUSE_RESULT_TTL_SECONDS": "60", "FACEFUSE_RESULT_CLEANUP_INTERVAL": "1"},
    )
    try:
        link = post_fuse(running, fuse_body(b64(SELFIE), rsp="url")).json()["media_info_list"][0]["media_data"]
        assert link.startswith(running.base_url + "/v3/results/")
        token = link.rsplit("/", 1)[1].removesuffix(".jpg")
        db = SqliteDatabase(Settings(data_dir=running.data_dir).db_path)
        row = db.query_one("SELECT created_at, expires_at FROM results WHERE token = ?", (token,))
        assert row is not None and row["expires_at"] - row["created_at"] == 60  # FACEFUSE_RESULT_TTL_SECONDS
        with httpx.Client(trust_env=False) as client:
            fetched = client.get(link)
            assert fetched.status_code == 200 and fetched.headers["content-type"] == "image/jpeg"
            stored = list((running.data_dir / "results").rglob("*.jpg"))
            assert len(stored) == 1
            # The TTL passes: the row's expiry moves into the past instead of the test waiting
            # (ResultStore's own clock is injected in test_storage).
            with db.transaction() as conn:
                conn.execute("UPDATE results SET expires_at = created_at WHERE token = ?", (token,))
            assert_error(client.get(link), 404, 10104, "NOT_FOUND")
            for _ in range(1000):  # the sweeper runs every second; the bound only stops a hang
                if not stored[0].exists():
                    break
                time.sleep(0.01)
            assert not stored[0].exists()  # the sweeper removed the file too
            assert db.scalar("SELECT count(*) FROM results") == 0
        db.close()
    finally:
        stop_server(running)
