"""The implicit AI label: XMP in every result JPEG saying what it is (docs/labels.md).

A fused photo shows a person somewhere they never were. The result says so in metadata
that readers already look for:

- `Iptc4xmpExt:DigitalSourceType`, the IPTC NewsCodes term for a composite made with
  trained algorithmic media: what platforms and C2PA readers read to tell AI-edited
  images apart;
- `dc:description`, in English and Chinese, for a person reading the metadata;
- `xmp:CreatorTool` (the service's name and version), `xmpMM:DocumentID` and
  `xmpMM:InstanceID` (a unique content id), `dc:source` (the template it was made from),
  `xmp:CreateDate`;
- `TC260:AIGC`, the implicit label of GB 45438-2025 (China's labelling standard for
  AI-generated content): a JSON object with `Label` "1" (generated), `ContentProducer`
  and `ProduceID`.

Exiv2 (pyexiv2, which ships it) writes the packet into the JPEG's bytes without touching
the coded image. Nothing else is carried over from the inputs: a result is encoded from
pixels, so the user's and the template's EXIF (GPS, camera serials, thumbnails) never
reach it.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version

import pyexiv2  # type: ignore[import-untyped]

SERVICE_NAME = "facefuse"
DIGITAL_SOURCE_TYPE = "http://cv.iptc.org/newscodes/digitalsourcetype/compositeWithTrainedAlgorithmicMedia"
TC260_NAMESPACE = "http://www.tc260.org.cn/ns/AIGC/1.0/"
TC260_PREFIX = "TC260"
TC260_GENERATED = "1"  # GB 45438-2025: "1" generated, "2" possibly, "3" suspected
DESCRIPTION_EN = (
    "AI-generated image: a face fusion. A face in this picture was replaced with another "
    "person's face by software using trained face models; it does not show a real scene."
)
DESCRIPTION_ZH = "AI合成：人脸融合生成的图像，图中人脸经人工智能替换，并非真实场景。"
AD_HOC_TEMPLATE = "ad-hoc template photo (not stored)"

pyexiv2.registerNs(TC260_NAMESPACE, TC260_PREFIX)


@lru_cache(maxsize=1)
def service_version() -> str:
    try:
        return version(SERVICE_NAME)
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "0+unknown"


@dataclass(frozen=True)
class ContentLabel:
    """What one result says about itself; made fresh for every result."""

    template_id: str | None  # None: an ad-hoc template photo
    producer: str = SERVICE_NAME  # FACEFUSE_CONTENT_PRODUCER: who provides the service
    content_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    created: datetime = field(default_factory=lambda: datetime.now(timezone.utc))

    @property
    def creator_tool(self) -> str:
        return f"{SERVICE_NAME} {service_version()}"

    @property
    def source(self) -> str:
        return f"{SERVICE_NAME} template {self.template_id}" if self.template_id else AD_HOC_TEMPLATE

    def xmp(self) -> dict[str, object]:
        """The XMP properties, by Exiv2 key."""
        aigc = {
            "Label": TC260_GENERATED,
            "ContentProducer": self.producer,
            "ProduceID": self.content_id,
            "ReservedCode1": "",
            "ContentPropagator": "",
            "PropagateID": "",
            "ReservedCode2": "",
        }
        return {
            "Xmp.iptcExt.DigitalSourceType": DIGITAL_SOURCE_TYPE,
            "Xmp.dc.description": {'lang="x-default"': DESCRIPTION_EN, 'lang="zh-CN"': DESCRIPTION_ZH},
            "Xmp.dc.source": self.source,
            "Xmp.xmp.CreatorTool": self.creator_tool,
            "Xmp.xmp.CreateDate": self.created.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "Xmp.xmpMM.DocumentID": f"xmp.did:{self.content_id}",
            "Xmp.xmpMM.InstanceID": f"xmp.iid:{self.content_id}",
            f"Xmp.{TC260_PREFIX}.AIGC": json.dumps(aigc, ensure_ascii=False, separators=(",", ":")),
        }


def with_xmp(jpeg: bytes, label: ContentLabel) -> bytes:
    """The JPEG with the label's XMP packet; the coded image is the same bytes."""
    with pyexiv2.ImageData(jpeg) as image:
        image.modify_xmp(label.xmp())
        return bytes(image.get_bytes())
