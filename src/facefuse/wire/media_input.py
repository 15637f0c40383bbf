"""From a media item on the wire to image file bytes (base64 decoded, or fetched)."""

from __future__ import annotations

from facefuse.media.decode import decode_base64
from facefuse.media.fetch import fetch_url
from facefuse.wire.context import AppContext
from facefuse.wire.schemas import MediaItem


async def fetch_if_url(ctx: AppContext, item: MediaItem) -> bytes | str:
    """A url item becomes its downloaded bytes; base64 stays text, for as_bytes to decode."""
    if item.media_profiles.is_url:
        return await fetch_url(item.media_data.strip(), ctx.fetch_limits)
    return item.media_data


def as_bytes(ctx: AppContext, data: bytes | str) -> bytes:
    if isinstance(data, bytes):
        return data
    return decode_base64(data, max_bytes=ctx.image_limits.max_bytes)
