"""A Python client for this service or the original cloud endpoint (same wire protocol)."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

PhotoInput = bytes | Path


class FacefuseAPIError(Exception):
    """An error body answered by the service."""

    def __init__(self, status: int, code: int, message: str, data: str) -> None:
        super().__init__(f"HTTP {status}: {code} {message}: {data}")
        self.status, self.code, self.message, self.data = status, code, message, data


@dataclass(frozen=True)
class FuseResult:
    jpeg: bytes | None  # with rsp_media_type "base64"
    url: str | None  # with rsp_media_type "url"
    version: str


def media_item(photo: PhotoInput | str, **media_extra: Any) -> dict[str, Any]:
    """A media_info_list item: a file or bytes as base64, a str as a url."""
    if isinstance(photo, str):
        item: dict[str, Any] = {"media_data": photo, "media_profiles": {"media_data_type": "url"}}
    else:
        data = photo.read_bytes() if isinstance(photo, Path) else photo
        item = {"media_data": base64.b64encode(data).decode("ascii"), "media_profiles": {"media_data_type": "jpg"}}
    if media_extra:
        item["media_extra"] = media_extra
    return item


class FacefuseClient:
    """`FacefuseClient(key, secret, base_url="http://127.0.0.1:8080").fuse(Path("me.jpg"), "gjw4tjeloaba2psk973")`."""

    def __init__(
        self,
        api_key: str,
        api_secret: str,
        base_url: str = "http://127.0.0.1:8080",
        timeout: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._auth = {"api_key": api_key, "api_secret": api_secret}
        self._http = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout, transport=transport)

    def __enter__(self) -> "FacefuseClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def fuse(
        self,
        photo: PhotoInput | str,
        template_id: str | None = None,
        *,
        rsp_media_type: str = "base64",
        template_photo: PhotoInput | str | None = None,
        fuse_degree: int | None = None,
        shape_degree: int | None = None,
        ai_label: bool | None = None,
    ) -> FuseResult:
        """Fuse one user photo into a registered template or an ad-hoc template photo;
        ai_label: the visible AI label on or off, where the server lets the request decide."""
        parameter: dict[str, Any] = {"rsp_media_type": rsp_media_type}
        if template_id:
            parameter["faceFusePPType"] = template_id
        for name, value in (("fuse_degree", fuse_degree), ("shape_degree", shape_degree), ("ai_label", ai_label)):
            if value is not None:
                parameter[name] = value
        items = [media_item(photo)]
        if template_photo is not None:
            items.append(media_item(template_photo, role="template"))
        answer = self.request("POST", "/v3/facefuse", {"parameter": parameter, "extra": {}, "media_info_list": items})
        media = answer["media_info_list"][0]
        version = answer.get("parameter", {}).get("version", "")
        if media["media_profiles"]["media_data_type"] == "url":
            return FuseResult(jpeg=None, url=media["media_data"], version=version)
        return FuseResult(jpeg=base64.b64decode(media["media_data"]), url=None, version=version)

    def create_template(
        self, photo: PhotoInput | str, template_id: str | None = None, name: str | None = None
    ) -> dict[str, Any]:
        parameter = {k: v for k, v in (("template_id", template_id), ("name", name)) if v}
        return self.request("POST", "/v3/templates", {"media_info_list": [media_item(photo)], "parameter": parameter})

    def list_templates(self) -> list[dict[str, Any]]:
        return self.request("GET", "/v3/templates")["templates"]

    def get_template(self, template_id: str) -> dict[str, Any]:
        return self.request("GET", f"/v3/templates/{template_id}")

    def delete_template(self, template_id: str) -> dict[str, Any]:
        return self.request("DELETE", f"/v3/templates/{template_id}")

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        response = self._http.request(method, path, params=self._auth, json=body)
        payload = response.json()
        if response.status_code != 200 or "ErrorCode" in payload:
            raise FacefuseAPIError(
                response.status_code, payload.get("ErrorCode", 0), payload.get("ErrorMsg", ""), payload.get("Data", "")
            )
        return payload
