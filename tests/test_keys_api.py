"""Key management over HTTP (docs/api.md B.10) and what the console shows of templates (B.11)."""

from __future__ import annotations

import io
import json

from conftest import DEMO_TEMPLATE, RunningServer
from PIL import Image
from test_api import assert_error
from test_templates_api import GROUP, media

from facefuse.templates.preview import THUMBNAIL_SIDE


def plain_key(server: RunningServer, name: str) -> dict[str, str]:
    return json.loads(server.cli("keys", "create", "--name", name, "--json").stdout)


def test_an_admin_creates_lists_and_revokes_keys(server: RunningServer) -> None:
    with server.client() as client:
        created = client.post(
            "/v3/keys", params=server.auth, json={"name": "mobile app", "qps": 2.5, "daily_quota": 1000}
        )
        assert created.status_code == 200, created.text
        key = created.json()
        assert {k: key[k] for k in ("name", "admin", "qps", "daily_quota", "revoked_at")} == {
            "name": "mobile app",
            "admin": False,
            "qps": 2.5,
            "daily_quota": 1000,
            "revoked_at": None,
        }
        fresh = {"api_key": key["api_key"], "api_secret": key["api_secret"]}
        assert client.get("/v3/templates", params=fresh).status_code == 200

        listed = client.get("/v3/keys", params=server.auth).json()["keys"]
        mine = [k for k in listed if k["api_key"] == key["api_key"]]
        assert mine == [{k: v for k, v in key.items() if k != "api_secret"}]  # never the secret again
        assert all("api_secret" not in k and "secret_hash" not in k for k in listed)
        cli_listed = json.loads(server.cli("keys", "list", "--json").stdout)
        assert {k["api_key"] for k in cli_listed} == {k["api_key"] for k in listed}  # one store

        revoked = client.delete(f"/v3/keys/{key['api_key']}", params=server.auth)
        assert revoked.json() == {"api_key": key["api_key"], "revoked": True}
        assert_error(client.get("/v3/templates", params=fresh), 401, 10102, "AUTH_FAILED")
        assert_error(client.delete(f"/v3/keys/{key['api_key']}", params=server.auth), 404, 10104, "NOT_FOUND")
        listed = client.get("/v3/keys", params=server.auth).json()["keys"]
        assert [k["revoked_at"] for k in listed if k["api_key"] == key["api_key"]] != [None]


def test_key_api_refusals(server: RunningServer) -> None:
    plain = plain_key(server, "not an admin")
    with server.client() as client:
        assert_error(client.get("/v3/keys", params=plain), 403, 10103, "PERMISSION_DENIED")
        assert_error(client.post("/v3/keys", params=plain, json={"name": "x"}), 403, 10103, "PERMISSION_DENIED")
        assert_error(client.delete(f"/v3/keys/{plain['api_key']}", params=plain), 403, 10103, "PERMISSION_DENIED")
        assert_error(client.get("/v3/keys"), 401, 10101, "AUTH_MISSING")
        assert_error(client.post("/v3/keys", params=server.auth, json={}), 400, 10002, "MISSING_PARAMETER")
        for bad in ({"name": ""}, {"name": "x", "qps": 0}, {"name": "x", "daily_quota": -1}, {"name": "x", "admin": 1}):
            assert_error(client.post("/v3/keys", params=server.auth, json=bad), 400, 10003, "INVALID_PARAMETER")
        itself = client.delete(f"/v3/keys/{server.api_key}", params=server.auth)
        assert_error(itself, 400, 10003, "INVALID_PARAMETER")
        assert client.get("/v3/keys", params=server.auth).status_code == 200  # still usable
        assert_error(client.delete("/v3/keys/nosuchkey", params=server.auth), 404, 10104, "NOT_FOUND")


def test_every_key_sees_templates_with_their_faces_and_thumbnails(server: RunningServer) -> None:
    plain = plain_key(server, "viewer")
    with server.client() as client:
        added = client.post(
            "/v3/templates",
            params=server.auth,
            json={"media_info_list": [media(GROUP)], "parameter": {"name": "pair", "shape_degree": 70}},
        )
        assert added.status_code == 200, added.text
        view = added.json()
        assert (view["faces"], len(view["face_boxes"]), view["fuse_degree"], view["shape_degree"]) == (2, 2, None, 70)
        left, right = view["face_boxes"]
        assert left["x"] + left["width"] <= right["x"]  # left to right: template_face_index order
        for box in view["face_boxes"]:
            assert 0 <= box["x"] and box["x"] + box["width"] <= view["width"] and box["width"] == box["height"] > 48

        listed = client.get("/v3/templates", params=plain)
        assert listed.status_code == 200
        assert view in listed.json()["templates"]
        assert client.get(f"/v3/templates/{view['template_id']}", params=plain).json() == view

        thumbnail = client.get(f"/v3/templates/{view['template_id']}/thumbnail", params=plain)
        assert thumbnail.status_code == 200 and thumbnail.headers["content-type"] == "image/jpeg"
        with Image.open(io.BytesIO(thumbnail.content)) as image:
            assert max(image.size) == THUMBNAIL_SIDE
            assert abs(image.size[0] / image.size[1] - view["width"] / view["height"]) < 0.01
        again = client.get(f"/v3/templates/{view['template_id']}/thumbnail", params=plain)
        assert again.content == thumbnail.content and again.headers["etag"] == thumbnail.headers["etag"]
        unchanged = client.get(
            f"/v3/templates/{view['template_id']}/thumbnail",
            params=plain,
            headers={"If-None-Match": thumbnail.headers["etag"]},
        )
        assert unchanged.status_code == 304 and unchanged.content == b""

        assert_error(
            client.delete(f"/v3/templates/{view['template_id']}", params=plain), 403, 10103, "PERMISSION_DENIED"
        )
        assert client.delete(f"/v3/templates/{view['template_id']}", params=server.auth).status_code == 200
        gone = client.get(f"/v3/templates/{view['template_id']}/thumbnail", params=plain)
        assert_error(gone, 404, 10104, "NOT_FOUND")
        demo = client.get(f"/v3/templates/{DEMO_TEMPLATE}/thumbnail", params=plain)
        with Image.open(io.BytesIO(demo.content)) as image:
            assert image.size == (410, 480)  # 512 x 600, shrunk
        assert_error(client.get(f"/v3/templates/{DEMO_TEMPLATE}/thumbnail"), 401, 10101, "AUTH_MISSING")


def test_the_console_and_docs_are_served_and_the_address_is_printed(server: RunningServer) -> None:
    with server.client() as client:
        page = client.get("/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert '<script type="module" src="/console/app.js">' in page.text
        assert client.get("/docs").status_code == 200
        assert client.get("/docs/assets/swagger-ui-bundle.js").headers["content-type"].startswith("text/javascript")
        assert_error(client.get("/docs/assets/swagger-editor-bundle.js"), 404, 10104, "NOT_FOUND")
        document = client.get("/openapi.json").json()
        assert "/" not in document["paths"] and "/docs" not in document["paths"]
    log = (server.data_dir.parent / f"server-{server.base_url.rsplit(':', 1)[1]}.log").read_text()
    assert f"open {server.base_url}/ in a browser" in log
