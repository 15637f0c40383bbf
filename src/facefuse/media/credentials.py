"""Signed provenance: a C2PA manifest (Content Credentials) in a result, when configured.

With a signing certificate and key (FACEFUSE_C2PA_CERT, FACEFUSE_C2PA_KEY) every result
carries a manifest signed with them: a `c2pa.created` action with the IPTC digital source
type of a composite made with trained algorithmic media, a `c2pa.edited` action naming the
face fusion, and the template and the user photos as ingredients. An ingredient holds a
title and the SHA-256 of the photo's bytes, never its pixels: thumbnails are off, and the
ingredient's ids are its hash, not ids read from the photo's own metadata. The manifest
binds the whole file by hash, so any change to it, the XMP label included, fails
verification. c2pa-python (the Content Authenticity Initiative's library) builds, signs
and verifies; a receiver verifies with any C2PA reader (docs/labels.md).
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import c2pa  # type: ignore[import-untyped]
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from facefuse.media.provenance import DIGITAL_SOURCE_TYPE, SERVICE_NAME, ContentLabel, service_version

JPEG = "image/jpeg"
_CURVE_ALGORITHMS = {"secp256r1": "es256", "secp384r1": "es384", "secp521r1": "es512"}
_RSA_ALGORITHM = "ps256"  # C2PA allows RSA only with PSS padding
_NO_THUMBNAILS = {"builder": {"thumbnail": {"enabled": False}}}
FUSION_DESCRIPTION = "face fusion: the user's face fused into the template's face"


@dataclass(frozen=True)
class Ingredient:
    """A photo a result was made from: its title and its bytes (hashed, never embedded)."""

    title: str
    data: bytes
    mime_type: str = JPEG

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


class ContentCredentials:
    """Signs results with one certificate chain and key; one per process."""

    def __init__(self, cert_chain_pem: bytes, key_pem: bytes) -> None:
        algorithm = signing_algorithm(key_pem)
        self._signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(algorithm.encode(), cert_chain_pem, key_pem, None))
        self._context = c2pa.Context.from_dict(_NO_THUMBNAILS)
        self.algorithm = algorithm

    @classmethod
    def from_files(cls, cert_chain: Path, key: Path) -> ContentCredentials:
        return cls(Path(cert_chain).read_bytes(), Path(key).read_bytes())

    def sign(self, jpeg: bytes, label: ContentLabel, ingredients: list[Ingredient]) -> bytes:
        """The JPEG with its manifest embedded."""
        builder = c2pa.Builder(manifest(label), self._context)
        for ingredient in ingredients:
            builder.add_ingredient(ingredient_json(ingredient), ingredient.mime_type, io.BytesIO(ingredient.data))
        signed = io.BytesIO()
        builder.sign(self._signer, JPEG, io.BytesIO(jpeg), signed)
        return signed.getvalue()


def manifest(label: ContentLabel) -> dict[str, object]:
    agent = {"name": SERVICE_NAME, "version": service_version()}
    return {
        "claim_generator_info": [agent],
        "title": f"{label.content_id}.jpg",
        "format": JPEG,
        "instance_id": f"xmp.iid:{label.content_id}",
        "assertions": [
            {
                "label": "c2pa.actions",
                "data": {
                    "actions": [
                        {"action": "c2pa.created", "digitalSourceType": DIGITAL_SOURCE_TYPE, "softwareAgent": agent},
                        {
                            "action": "c2pa.edited",
                            "digitalSourceType": DIGITAL_SOURCE_TYPE,
                            "softwareAgent": agent,
                            "description": FUSION_DESCRIPTION,
                        },
                    ]
                },
            }
        ],
    }


def ingredient_json(ingredient: Ingredient) -> dict[str, object]:
    digest = ingredient.sha256
    return {
        "title": ingredient.title,
        "relationship": "componentOf",
        # Set here, the ids are not read from the photo's own XMP (which may identify it).
        "instance_id": f"sha256:{digest}",
        "document_id": f"sha256:{digest}",
        "metadata": {f"{SERVICE_NAME}.sha256": digest},
    }


def signing_algorithm(key_pem: bytes) -> str:
    """The C2PA signing algorithm for a PEM private key (EC P-256/384/521, Ed25519, RSA)."""
    key = serialization.load_pem_private_key(key_pem, password=None)
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name in _CURVE_ALGORITHMS:
        return _CURVE_ALGORITHMS[key.curve.name]
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "ed25519"
    if isinstance(key, rsa.RSAPrivateKey):
        return _RSA_ALGORITHM
    raise ValueError(f"a {type(key).__name__} cannot sign C2PA manifests: use EC P-256/384/521, Ed25519 or RSA")
