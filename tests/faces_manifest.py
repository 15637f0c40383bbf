"""The photos of FACES (the full set, or the bundled tests/fixtures/faces) as test cases,
read from its MANIFEST.tsv."""

from __future__ import annotations

import csv
from dataclasses import dataclass

from conftest import FACES


@dataclass(frozen=True)
class Photo:
    file: str
    format: str
    width: int
    height: int
    n_faces: int
    identity: str
    categories: frozenset[str]


def photos() -> list[Photo]:
    with open(FACES / "MANIFEST.tsv", newline="") as f:
        return [
            Photo(
                row["file"],
                row["format"],
                int(row["width"]),
                int(row["height"]),
                int(row["n_faces"]),
                row["identity"],
                frozenset(filter(None, row["categories"].split(","))),
            )
            for row in csv.DictReader(f, delimiter="\t")
        ]


def with_category(*names: str) -> list[Photo]:
    return [p for p in photos() if p.categories & set(names)]
