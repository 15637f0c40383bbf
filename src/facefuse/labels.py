"""Every result says what it is (docs/labels.md): the steps the service runs after fusion.

1. the visible mark on the pixels (`media.mark`), when the policy and the request want it;
2. the implicit label, XMP in the JPEG (`media.provenance`), always;
3. the signed C2PA manifest (`media.credentials`), when a certificate and key are set.

The fusion's own pixels are never touched before these steps: the mark goes on the
result after fusion, the metadata on the encoded bytes.
"""

from __future__ import annotations

import c2pa  # type: ignore[import-untyped]
import numpy as np
import numpy.typing as npt

from facefuse.media.credentials import ContentCredentials, Ingredient
from facefuse.media.mark import Box, MarkStyle, draw_mark
from facefuse.media.provenance import ContentLabel, with_xmp
from facefuse.settings import Settings


class Labeller:
    """The label steps of one service, set up once from its settings."""

    def __init__(self, settings: Settings) -> None:
        self.policy = settings.ai_label
        self.style = MarkStyle(
            text=settings.ai_label_text,
            position=settings.ai_label_position,
            size=settings.ai_label_size,
            opacity=settings.ai_label_opacity,
        )
        self.producer = settings.content_producer
        self.credentials = signing_credentials(settings)

    def wants_mark(self, requested: bool | None) -> bool:
        """Whether a result gets the visible mark: `always` draws it whatever the request
        says; otherwise the request's `ai_label` decides, and the policy when it is unset."""
        if self.policy == "always" or requested is None:
            return self.policy != "default_off"
        return requested

    def mark(self, rgb: npt.NDArray[np.uint8], requested: bool | None) -> Box | None:
        """Draw the visible mark on the result (in place) when wanted; the box it covers."""
        return draw_mark(rgb, self.style) if self.wants_mark(requested) else None

    def finish(self, jpeg: bytes, template_id: str | None, ingredients: list[Ingredient]) -> bytes:
        """The encoded result with its XMP label and, when configured, its signed manifest."""
        label = ContentLabel(template_id=template_id, producer=self.producer)
        labelled = with_xmp(jpeg, label)
        if self.credentials is None:
            return labelled
        return self.credentials.sign(labelled, label, ingredients)


def signing_credentials(settings: Settings) -> ContentCredentials | None:
    """The C2PA signer of FACEFUSE_C2PA_CERT and FACEFUSE_C2PA_KEY; None when they are unset.
    ValueError, naming both settings, when they cannot sign."""
    if settings.c2pa_cert is None or settings.c2pa_key is None:
        return None
    try:
        return ContentCredentials.from_files(settings.c2pa_cert, settings.c2pa_key)
    except (OSError, ValueError, TypeError, c2pa.C2paError) as exc:
        raise ValueError(f"FACEFUSE_C2PA_CERT / FACEFUSE_C2PA_KEY cannot sign: {exc}") from None
