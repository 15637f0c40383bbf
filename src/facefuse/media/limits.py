"""Limits on media, built from the settings."""

from __future__ import annotations

from dataclasses import dataclass, field

from facefuse.settings import Settings


@dataclass(frozen=True)
class ImageLimits:
    max_bytes: int = 2 * 1024 * 1024
    min_side: int = 48
    max_side: int = 4096

    @classmethod
    def from_settings(cls, s: Settings) -> ImageLimits:
        return cls(max_bytes=s.max_image_bytes, min_side=s.min_image_side, max_side=s.max_image_side)


@dataclass(frozen=True)
class FetchLimits:
    max_bytes: int = 2 * 1024 * 1024
    connect_timeout: float = 3.0
    read_timeout: float = 5.0
    total_timeout: float = 10.0
    max_redirects: int = 3
    allowlist: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def from_settings(cls, s: Settings) -> FetchLimits:
        return cls(
            max_bytes=s.max_image_bytes,
            connect_timeout=s.url_connect_timeout,
            read_timeout=s.url_read_timeout,
            total_timeout=s.url_total_timeout,
            max_redirects=s.url_max_redirects,
            allowlist=s.allowlist,
        )


def format_size(n_bytes: int) -> str:
    """A limit as people say it: 2097152 -> "2 MB"."""
    megabytes = n_bytes / (1024 * 1024)
    return f"{megabytes:g} MB" if megabytes >= 1 else f"{n_bytes} bytes"
