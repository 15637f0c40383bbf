"""Schema-driven fuzzing of the running service: zero 5xx, every failure in the error body.

Schemathesis reads /openapi.json of the real server and generates requests for every
operation, both valid by the schema (positive) and invalid (negative); most carry a
valid admin key, so they reach the body parsing, the decoders and the registry. A
second run posts mutations of a real photo (truncated, bytes flipped, header sizes
forged) so the decoders are fuzzed through the wire too. A third draws fusion parameters
(the visible label on or off, strengths, result links, registered or ad-hoc templates).
Every fused result of all three runs must carry the implicit AI label: exiftool reads
them all at the end (docs/labels.md).

FACEFUSE_FUZZ_EXAMPLES sets the examples per operation and mode (CI: 100; a long run:
e.g. 1000). FACEFUSE_FUZZ_REPORT=path writes the counts as JSON.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import struct
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from conftest import DEMO_TEMPLATE, RunningServer, face, start_server, stop_server
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from facefuse.errors import Err
from facefuse.media.provenance import DIGITAL_SOURCE_TYPE

EXAMPLES = int(os.environ.get("FACEFUSE_FUZZ_EXAMPLES", "100"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
BY_CODE = {e.code: e for e in Err}
COUNTS: Counter[str] = Counter()
FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES, deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck)
)


class ResultAudit:
    """Keeps every fused result the fuzzing gets, for exiftool to read them all at once."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def keep(self, server: RunningServer, answer: dict[str, object]) -> None:
        media = answer["media_info_list"][0]  # type: ignore[index]
        if media["media_profiles"]["media_data_type"] == "url":
            fetched = httpx.get(media["media_data"], trust_env=False, timeout=30)
            assert fetched.status_code == 200
            jpeg = fetched.content
        else:
            jpeg = base64.b64decode(media["media_data"])
        (self.folder / f"{len(list(self.folder.iterdir())):05d}.jpg").write_bytes(jpeg)
        COUNTS["results"] += 1

    def assert_all_labelled(self) -> None:
        """Every result kept carries the IPTC digital source type, as exiftool reads it."""
        exiftool = shutil.which("exiftool")
        files = sorted(self.folder.iterdir())
        if exiftool is None or not files:
            return
        done = subprocess.run(
            [exiftool, "-j", "-XMP-iptcExt:DigitalSourceType", "-XMP-TC260:AIGC", str(self.folder)],
            capture_output=True,
            text=True,
            timeout=300,
        )
        tags = json.loads(done.stdout)
        labelled = [
            t for t in tags if t.get("DigitalSourceType") == DIGITAL_SOURCE_TYPE and '"Label":"1"' in t.get("Aigc", "")
        ]
        COUNTS["results with the implicit label"] = len(labelled)
        assert len(tags) == len(files) and len(labelled) == len(files), [t["SourceFile"] for t in tags]


@pytest.fixture(scope="module")
def audit(tmp_path_factory: pytest.TempPathFactory) -> ResultAudit:
    return ResultAudit(tmp_path_factory.mktemp("fuzz-results"))


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory, audit: ResultAudit) -> Iterator[RunningServer]:
    running = start_server(tmp_path_factory.mktemp("fuzz") / "data")
    yield running
    stop_server(running)
    audit.assert_all_labelled()
    report = os.environ.get("FACEFUSE_FUZZ_REPORT")
    if report:
        Path(report).write_text(json.dumps(dict(sorted(COUNTS.items())), indent=2) + "\n")
    print("\nfuzz counts:", dict(sorted(COUNTS.items())))


def assert_error_body(response: httpx.Response | object, status: int) -> None:
    """A failure carries exactly {ErrorCode, ErrorMsg, Data} with the table's code, name and status."""
    assert 400 <= status < 500 or status in (503, 504), f"status {status}"
    body = response.json()  # type: ignore[attr-defined]
    assert set(body) == {"ErrorCode", "ErrorMsg", "Data"}, body
    error = BY_CODE[body["ErrorCode"]]
    assert (body["ErrorMsg"], error.http_status) == (error.message, status), body
    assert isinstance(body["Data"], str) and "Traceback" not in body["Data"]


def schema_of(server: RunningServer) -> schemathesis.BaseSchema:
    schema = schemathesis.openapi.from_url(f"{server.base_url}/openapi.json")
    schema.config.update(base_url=server.base_url)  # type: ignore[attr-defined]
    return schema


def operations(server: RunningServer) -> list[schemathesis.APIOperation]:
    return [result.ok() for result in schema_of(server).get_all_operations()]


def test_openapi_document_covers_every_route(fuzz_server: RunningServer) -> None:
    document = httpx.get(f"{fuzz_server.base_url}/openapi.json", trust_env=False).json()
    assert set(document["paths"]) == {
        "/v3/facefuse",
        "/v3/templates",
        "/v3/templates/{template_id}",
        "/v3/templates/{template_id}/thumbnail",
        "/v3/keys",
        "/v3/keys/{api_key}",
        "/v3/results/{name}",
        "/healthz",
        "/readyz",
        "/metrics",
    }
    fuse = document["paths"]["/v3/facefuse"]["post"]
    assert {p["name"] for p in fuse["parameters"]} == {"api_key", "api_secret"}
    assert fuse["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/FuseRequest")
    assert {"400", "401", "429", "503"} <= set(fuse["responses"])


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=lambda m: m.value)
def test_schema_fuzz_gets_no_server_error_and_always_the_error_body(
    fuzz_server: RunningServer, mode: GenerationMode, audit: ResultAudit
) -> None:
    for operation in operations(fuzz_server):
        run_operation(fuzz_server, operation, mode, audit)
    assert_still_healthy(fuzz_server)


def run_operation(
    server: RunningServer, operation: schemathesis.APIOperation, mode: GenerationMode, audit: ResultAudit
) -> None:
    label = f"{operation.method.upper()} {operation.path}"
    needs_auth = "api_key" in {p.get("name") for p in operation.definition.raw.get("parameters", [])}

    @FUZZ_SETTINGS
    @given(case=operation.as_strategy(generation_mode=mode), authenticated=st.sampled_from([True] * 9 + [False]))
    def one_case(case: schemathesis.Case, authenticated: bool) -> None:
        if needs_auth and authenticated:  # nine in ten reach past the auth check
            case.query = {**(case.query or {}), **server.auth}
        response = case.call(base_url=server.base_url, timeout=60)
        COUNTS[f"{mode.value} requests"] += 1
        COUNTS[f"{mode.value} status {response.status_code}"] += 1
        case.validate_response(response, checks=CHECKS)
        if response.status_code >= 400:
            assert_error_body(response, response.status_code)
        elif label == "POST /v3/facefuse":
            audit.keep(server, response.json())

    try:
        one_case()
    except Unsatisfiable:
        assert mode is GenerationMode.NEGATIVE, label  # nothing to negate: e.g. a free-form path string
        COUNTS[f"{mode.value} operations with nothing to negate"] += 1
    except Exception as exc:
        raise AssertionError(f"{label} ({mode.value}): {exc}") from exc


def mutated_photos() -> st.SearchStrategy[bytes]:
    """A real JPEG, truncated, with bytes overwritten, or with its frame size forged."""
    jpeg = face("deepface__img5.jpg").read_bytes()
    png_header = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR"
    truncated = st.integers(0, len(jpeg)).map(lambda n: jpeg[:n])
    flipped = st.lists(st.tuples(st.integers(0, len(jpeg) - 1), st.integers(0, 255)), min_size=1, max_size=16).map(
        lambda edits: _overwrite(jpeg, edits)
    )
    forged_png = st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1), st.binary(max_size=64)).map(
        lambda t: png_header + struct.pack(">II", t[0], t[1]) + b"\x08\x02\x00\x00\x00" + t[2]
    )
    return st.one_of(truncated, flipped, forged_png, st.binary(max_size=256))


def _overwrite(data: bytes, edits: list[tuple[int, int]]) -> bytes:
    mutable = bytearray(data)
    for index, value in edits:
        mutable[index] = value
    return bytes(mutable)


def test_mutated_photos_through_the_wire_get_an_answer_never_a_crash(
    fuzz_server: RunningServer, audit: ResultAudit
) -> None:
    with fuzz_server.client() as client:

        @settings(FUZZ_SETTINGS, max_examples=max(10, EXAMPLES))
        @given(photo=mutated_photos())
        def one_photo(photo: bytes) -> None:
            body = {
                "parameter": {"faceFusePPType": DEMO_TEMPLATE, "rsp_media_type": "base64"},
                "media_info_list": [
                    {"media_data": base64.b64encode(photo).decode(), "media_profiles": {"media_data_type": "jpg"}}
                ],
            }
            answer = client.post("/v3/facefuse", params=fuzz_server.auth, json=body)
            COUNTS["photos requests"] += 1
            COUNTS[f"photos status {answer.status_code}"] += 1
            if answer.status_code != 200:
                assert_error_body(answer, answer.status_code)
            else:
                audit.keep(fuzz_server, answer.json())

        one_photo()
    assert_still_healthy(fuzz_server)


USERS = ["deepface__img5.jpg", "deepface__img29.jpg", "face_recognition__examples_obama.jpg"]
TEMPLATES = [None, "deepface__img2.jpg", "face_recognition__examples_obama2.jpg"]  # None: the demo template


def fusion_parameters() -> st.SearchStrategy[dict[str, object]]:
    """Any mix of the fusion's optional parameters; None leaves a parameter out."""
    return st.fixed_dictionaries(
        {
            "ai_label": st.sampled_from([None, True, False]),
            "fuse_degree": st.one_of(st.none(), st.integers(0, 100)),
            "shape_degree": st.one_of(st.none(), st.integers(0, 100)),
            "rsp_media_type": st.sampled_from(["base64", "url"]),
        }
    ).map(lambda drawn: {k: v for k, v in drawn.items() if v is not None})


def test_every_fused_result_carries_the_implicit_label(fuzz_server: RunningServer, audit: ResultAudit) -> None:
    fused = Counter[str]()
    with fuzz_server.client() as client:

        @settings(FUZZ_SETTINGS, max_examples=max(10, EXAMPLES // 4))
        @given(parameter=fusion_parameters(), user=st.sampled_from(USERS), template=st.sampled_from(TEMPLATES))
        def one_fusion(parameter: dict[str, object], user: str, template: str | None) -> None:
            items = [{"media_data": base64.b64encode(face(user).read_bytes()).decode(), "media_profiles": {}}]
            if template is not None:
                items.append(
                    {
                        "media_data": base64.b64encode(face(template).read_bytes()).decode(),
                        "media_profiles": {"media_data_type": "jpg"},
                        "media_extra": {"role": "template"},
                    }
                )
            else:
                parameter = {**parameter, "faceFusePPType": DEMO_TEMPLATE}
            answer = client.post(
                "/v3/facefuse", params=fuzz_server.auth, json={"parameter": parameter, "media_info_list": items}
            )
            assert answer.status_code == 200, answer.text
            audit.keep(fuzz_server, answer.json())
            fused["results"] += 1

        one_fusion()
    assert fused["results"] >= 10


def assert_still_healthy(server: RunningServer) -> None:
    assert server.process.poll() is None, "the server died"
    assert httpx.get(f"{server.base_url}/readyz", trust_env=False, timeout=10).status_code == 200
    log = (server.data_dir.parent / f"server-{server.base_url.rsplit(':', 1)[1]}.log").read_text()
    assert "Traceback" not in log, log[-4000:]
