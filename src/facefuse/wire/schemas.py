"""Request models of the wire (docs/api.md parts A and B)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr, field_validator

BASE64_TYPES = {"jpg", "jpeg", "png", "base64"}


class MediaProfiles(BaseModel):
    model_config = ConfigDict(extra="allow")

    media_data_type: StrictStr = Field(
        "jpg",
        json_schema_extra={"enum": sorted(BASE64_TYPES | {"url"})},
        description="jpg/jpeg/png/base64: media_data is base64 image data; url: media_data is a link",
    )

    @field_validator("media_data_type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        value = value.strip().lower()
        if value != "url" and value not in BASE64_TYPES:
            raise ValueError("must be 'jpg' (base64 image data) or 'url'")
        return value

    @property
    def is_url(self) -> bool:
        return self.media_data_type == "url"


class FaceRect(BaseModel):
    x: float
    y: float
    width: float = Field(gt=0)
    height: float = Field(gt=0)

    def as_tuple(self) -> tuple[float, float, float, float]:
        return self.x, self.y, self.width, self.height


class MediaExtra(BaseModel):
    """Client-supplied description of a media item; unknown keys are kept and ignored."""

    model_config = ConfigDict(extra="allow")

    role: Literal["user", "template"] = "user"
    template_face_index: int | None = Field(None, ge=0, le=63)
    face_rect: FaceRect | None = None


class MediaItem(BaseModel):
    model_config = ConfigDict(extra="allow")

    media_data: StrictStr = Field(min_length=1)
    media_profiles: MediaProfiles
    media_extra: MediaExtra | None = None

    @property
    def extra_or_default(self) -> MediaExtra:
        return self.media_extra or MediaExtra()


class FuseParameter(BaseModel):
    model_config = ConfigDict(extra="allow")

    faceFusePPType: StrictStr | None = None
    rsp_media_type: Literal["base64", "url"] = "base64"
    fuse_degree: int | None = Field(None, ge=0, le=100)
    shape_degree: int | None = Field(None, ge=0, le=100)
    ai_label: StrictBool | None = Field(
        None,
        description="the visible AI label: true or false where FACEFUSE_AI_LABEL lets the request decide "
        "(default_on, default_off); unset: the server's default. The XMP label is always written.",
    )


class FuseRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    media_info_list: list[MediaItem] = Field(min_length=1)
    parameter: FuseParameter
    extra: dict[str, Any] | None = None


class TemplateParameter(BaseModel):
    model_config = ConfigDict(extra="allow")

    template_id: StrictStr | None = None
    name: StrictStr | None = Field(None, max_length=200)
    fuse_degree: int | None = Field(None, ge=0, le=100)
    shape_degree: int | None = Field(None, ge=0, le=100)


class TemplateCreateRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    media_info_list: list[MediaItem] = Field(min_length=1, max_length=1)
    parameter: TemplateParameter = TemplateParameter()


class KeyCreateRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: StrictStr = Field(min_length=1, max_length=200, description="who or what the key is for")
    admin: StrictBool = Field(False, description="may use the admin APIs (templates, keys)")
    qps: float | None = Field(None, gt=0, allow_inf_nan=False, description="requests a second; none: no limit")
    daily_quota: int | None = Field(None, ge=0, description="requests a UTC day; none: no limit")


# ------------------------------------------------------------------ answers (for the OpenAPI document)


class ResultProfiles(BaseModel):
    model_config = ConfigDict(extra="forbid")

    media_data_type: Literal["jpg", "url"]


class ResultMedia(BaseModel):
    model_config = ConfigDict(extra="forbid")

    media_data: str = Field(description="base64 JPEG, or an absolute link to GET /v3/results/<token>.jpg")
    media_profiles: ResultProfiles


class ResultParameter(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rsp_media_type: Literal["base64", "url"]
    version: str


class FuseResponse(BaseModel):
    model_config = ConfigDict(extra="forbid")

    parameter: ResultParameter
    media_info_list: list[ResultMedia] = Field(min_length=1, max_length=1)


class FaceBox(BaseModel):
    model_config = ConfigDict(extra="forbid")

    x: int
    y: int
    width: int
    height: int


class TemplateView(BaseModel):
    model_config = ConfigDict(extra="forbid")

    template_id: str
    name: str
    faces: int = Field(ge=1)
    width: int
    height: int
    created_at: str
    face_boxes: list[FaceBox] = Field(
        description="each face's box in pixels of the upright photo, left to right (template_face_index order)"
    )
    fuse_degree: int | None = Field(description="the template's default; null: the server's")
    shape_degree: int | None = Field(description="the template's default; null: the server's")


class TemplateList(BaseModel):
    model_config = ConfigDict(extra="forbid")

    templates: list[TemplateView]


class TemplateDeleted(BaseModel):
    model_config = ConfigDict(extra="forbid")

    template_id: str
    deleted: Literal[True]


class KeyView(BaseModel):
    model_config = ConfigDict(extra="forbid")

    api_key: str
    name: str
    admin: bool
    qps: float | None
    daily_quota: int | None
    created_at: str
    revoked_at: str | None


class KeyCreated(KeyView):
    api_secret: str = Field(description="shown in this answer only; stored as a hash")


class KeyList(BaseModel):
    model_config = ConfigDict(extra="forbid")

    keys: list[KeyView]


class KeyRevoked(BaseModel):
    model_config = ConfigDict(extra="forbid")

    api_key: str
    revoked: Literal[True]


class Health(BaseModel):
    status: Literal["ok", "ready"]
    queue: int | None = None
