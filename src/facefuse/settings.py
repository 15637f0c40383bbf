"""Every setting in one place; each is also the environment variable FACEFUSE_<NAME>."""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_data_dir() -> Path:
    return Path.home() / ".local" / "share" / "facefuse"


def default_workers() -> int:
    """One work process per CPU this process may use, at most 8 (each holds its own models)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(8, cpus))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FACEFUSE_", extra="ignore")

    # Where and how to run
    data_dir: Path = Field(default_factory=_default_data_dir)
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    workers: int = Field(default_factory=default_workers, ge=1, le=64)  # work processes
    pin_workers: bool = True  # with at least one worker per CPU, each on a CPU of its own
    spare_cores: bool = True  # a lone request's fusion hands pieces to an idle core (facefuse.parallel)
    public_base_url: str = ""  # e.g. https://fuse.example.com; empty: taken from the request
    log_level: str = "info"
    demo_template: bool = True  # create the demo template on first start
    preload_templates: int = Field(4, ge=0)  # newest templates each work process loads at start

    # Where the state lives (docs/deploy.md): empty for the data dir, else shared by every node
    database_url: str = ""  # postgresql://user:password@host:port/db
    database_threads: int = Field(4, ge=1, le=64)  # PostgreSQL: threads for key checks; beyond them a short wait
    storage_url: str = ""  # s3://bucket/prefix (credentials: the standard AWS_* variables)
    s3_endpoint_url: str = ""  # e.g. http://minio:9000; empty: AWS S3

    # Image rules (docs/api.md part A)
    max_image_bytes: int = 2 * 1024 * 1024
    min_image_side: int = 48
    max_image_side: int = 4096
    min_face_px: int = 48
    min_face_fraction: float = 1 / 48  # of the short image side
    # Head pose accepted in user photos, degrees (chosen on ../shared/faces, docs/vision.md)
    max_yaw: float = 35.0
    max_pitch_up: float = 26.0
    max_pitch_down: float = 18.5

    # Request limits
    max_body_bytes: int = 8 * 1024 * 1024
    max_json_depth: int = 16
    max_media_items: int = 8
    max_json_list_length: int = 64

    # url inputs
    url_allowlist: str = ""  # comma-separated host:port reachable even if loopback/private
    url_connect_timeout: float = 3.0
    url_read_timeout: float = 5.0
    url_total_timeout: float = 10.0
    url_max_redirects: int = 3

    # Work queue and deadlines
    queue_size: int = Field(16, ge=0)  # waiting requests (beyond one per worker) before SERVER_BUSY
    request_deadline: float = 30.0  # seconds

    # Results
    result_ttl_seconds: int = 24 * 3600
    result_cleanup_interval: int = 600
    jpeg_quality: int = Field(95, ge=1, le=100)

    # Fusion defaults (a template may override them)
    fuse_degree: int = Field(100, ge=0, le=100)
    shape_degree: int = Field(40, ge=0, le=100)

    # AI labels (docs/labels.md): the visible mark; the XMP label is always written
    ai_label: Literal["always", "default_on", "default_off"] = "default_on"  # may a request's ai_label decide?
    ai_label_text: str = Field("AI合成", min_length=1, max_length=40)
    ai_label_position: Literal["bottom-right", "bottom-left", "top-right", "top-left"] = "bottom-right"
    ai_label_size: float = Field(0.03, gt=0, le=0.25)  # text height, share of the image's shorter side
    ai_label_opacity: float = Field(0.85, gt=0, le=1)
    content_producer: str = Field("facefuse", min_length=1, max_length=200)  # GB 45438 ContentProducer
    # Signed provenance (C2PA): PEM certificate chain (signer first) and its private key; both or neither
    c2pa_cert: Path | None = None
    c2pa_key: Path | None = None

    @field_validator("ai_label_text", mode="after")
    @classmethod
    def _drawable(cls, value: str) -> str:
        from facefuse.media.mark import missing_glyphs  # the font's table, only when a label is set

        missing = missing_glyphs(value)
        if missing:
            raise ValueError(f"the label font has no glyph for {missing!r} (see src/facefuse/media/fonts/README.md)")
        return value

    @field_validator("c2pa_cert", "c2pa_key", mode="before")
    @classmethod
    def _unset_when_empty(cls, value: object) -> object:
        return None if value == "" else value

    @model_validator(mode="after")
    def _c2pa_pair(self) -> "Settings":
        if (self.c2pa_cert is None) != (self.c2pa_key is None):
            raise ValueError("FACEFUSE_C2PA_CERT and FACEFUSE_C2PA_KEY go together: set both or neither")
        return self

    @field_validator("data_dir", mode="after")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser()

    @field_validator("database_url", mode="after")
    @classmethod
    def _database_scheme(cls, value: str) -> str:
        if value and not value.startswith(("postgresql://", "postgres://")):
            raise ValueError("database_url is empty (SQLite in the data dir) or postgresql://user:password@host/db")
        return value

    @field_validator("storage_url", mode="after")
    @classmethod
    def _storage_scheme(cls, value: str) -> str:
        if value and not value.startswith("s3://"):
            raise ValueError("storage_url is empty (the data dir) or s3://bucket/prefix")
        return value

    @cached_property
    def allowlist(self) -> frozenset[str]:
        """Lower-cased `host:port` entries of url_allowlist."""
        return frozenset(e.strip().lower() for e in self.url_allowlist.split(",") if e.strip())

    @property
    def db_path(self) -> Path:
        return self.data_dir / "facefuse.sqlite3"
