"""Property tests (hypothesis) on the pure parts that hostile input reaches first.

The request model and JSON reader, the header checks against decompression bombs,
the url filter on any spelling of a non-public address, the per-key limiter and the
result-token lookup. (More decoder and address properties live in test_media_decode.py
and test_addresses.py.)
"""

from __future__ import annotations

import ipaddress
import itertools
import json
import struct
from datetime import timedelta
from typing import Any

import cv2
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from facefuse.errors import Err, FacefuseError
from facefuse.keys.limits import RateLimitExceeded, UsageLimiter
from facefuse.keys.store import ApiKey
from facefuse.media.addresses import is_public_address, parse_url, require_allowed
from facefuse.media.decode import check_image
from facefuse.media.limits import ImageLimits
from facefuse.storage.blobs import LocalBlobStore
from facefuse.storage.db import SqliteDatabase
from facefuse.storage.results import ResultStore
from facefuse.wire.schemas import FuseRequest, TemplateCreateRequest
from facefuse.wire.validation import parse_json_object, validate

# Real time on purpose: a parser or filter that stalls on a small hostile input (runaway
# backtracking, quadratic work) is a denial of service, and only a clock sees it. The bound
# is a second per example, far above what any of them takes.
PROPERTY = settings(
    max_examples=300,
    deadline=timedelta(seconds=1),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
MAX_DEPTH, MAX_LIST = 16, 64
REQUEST_ERRORS = {Err.INVALID_JSON, Err.MISSING_PARAMETER, Err.INVALID_PARAMETER}

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20))
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=10), inner, max_size=5)),
    max_leaves=40,
)


def depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(map(depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(depth, value), default=0)
    return 1


def longest_list(value: Any) -> int:
    if isinstance(value, dict):
        return max(map(longest_list, value.values()), default=0)
    if isinstance(value, list):
        return max([len(value), *map(longest_list, value)])
    return 0


# ------------------------------------------------------------------ the JSON reader


@PROPERTY
@given(st.binary(max_size=2000))
def test_any_body_is_an_object_or_a_request_error(body: bytes) -> None:
    try:
        assert isinstance(parse_json_object(body, MAX_DEPTH, MAX_LIST), dict)
    except FacefuseError as error:
        assert error.error in (Err.INVALID_JSON, Err.INVALID_PARAMETER)


@PROPERTY
@given(json_values)
def test_json_within_the_limits_reads_back_and_beyond_them_is_refused(value: Any) -> None:
    body = json.dumps({"v": value}).encode()
    too_deep, too_long = depth({"v": value}) > 4, longest_list(value) > 3
    try:
        parsed = parse_json_object(body, max_depth=4, max_list_length=3)
    except FacefuseError as error:
        assert too_deep or too_long
        assert error.error in (Err.INVALID_JSON, Err.INVALID_PARAMETER)
        return
    assert not (too_deep or too_long) and parsed == json.loads(body)


@pytest.mark.parametrize(
    "body",
    [
        b'\xef\xbb\xbf{"a": 1}',  # a UTF-8 byte order mark
        '{"a": "\u00e9"}'.encode("utf-16"),  # UTF-16, as json.loads detects it
        b'{"a": NaN, "b": -Infinity}',
        b'{"a": 123456789012345678901234567890, "b": [-9223372036854775809]}',  # beyond 64 bits
        b'{"a": 18446744073709551615, "b": 1e300, "c": "x"}',
    ],
)
def test_the_reader_reads_what_the_standard_parser_reads(body: bytes) -> None:
    parsed = parse_json_object(body, MAX_DEPTH, MAX_LIST)
    expected = json.loads(body)
    assert json.dumps(parsed) == json.dumps(expected)  # NaN-safe; ints stay ints
    assert [type(v) for v in parsed.values()] == [type(v) for v in expected.values()]


@pytest.mark.parametrize("levels", [17, 1000, 100_000])
def test_deep_nesting_is_refused_without_recursion_errors(levels: int) -> None:
    body = ("[" * levels + "]" * levels).encode()
    body = b'{"a":' + body + b"}"
    with pytest.raises(FacefuseError) as caught:  # not a RecursionError, nor a crash
        parse_json_object(body, MAX_DEPTH, MAX_LIST)
    assert caught.value.error is Err.INVALID_JSON


# ------------------------------------------------------------------ the request models

media_items = st.fixed_dictionaries(
    {
        "media_data": st.text(min_size=1, max_size=40),
        "media_profiles": st.fixed_dictionaries(
            {}, optional={"media_data_type": st.sampled_from(["jpg", "JPG", " png ", "jpeg", "base64", "url"])}
        ),
    },
    optional={
        "media_extra": st.fixed_dictionaries(
            {},
            optional={
                "role": st.sampled_from(["user", "template"]),
                "template_face_index": st.integers(0, 63),
                "face_rect": st.fixed_dictionaries(
                    {
                        "x": st.integers(-10, 10),
                        "y": st.floats(0, 9),
                        "width": st.integers(1, 99),
                        "height": st.floats(0.5, 9),
                    }
                ),
            },
        )
    },
)
valid_fuse_requests = st.fixed_dictionaries(
    {
        "media_info_list": st.lists(media_items, min_size=1, max_size=8),
        "parameter": st.fixed_dictionaries(
            {},
            optional={
                "faceFusePPType": st.text(max_size=20),
                "rsp_media_type": st.sampled_from(["base64", "url"]),
                "fuse_degree": st.integers(0, 100),
                "shape_degree": st.integers(0, 100),
            },
        ),
    },
    optional={"extra": st.dictionaries(st.text(max_size=5), json_scalars, max_size=3)},
)


@PROPERTY
@given(valid_fuse_requests)
def test_every_well_formed_request_is_accepted_as_sent(data: dict[str, Any]) -> None:
    request = validate(FuseRequest, data)
    assert len(request.media_info_list) == len(data["media_info_list"])
    for item, sent in zip(request.media_info_list, data["media_info_list"]):
        assert item.media_data == sent["media_data"]
        wanted = sent["media_profiles"].get("media_data_type", "jpg").strip().lower()
        assert item.media_profiles.media_data_type == wanted
    assert request.parameter.fuse_degree == data["parameter"].get("fuse_degree")


@PROPERTY
@given(
    valid_fuse_requests,
    st.sampled_from(["fuse_degree", "shape_degree"]),
    st.one_of(
        st.integers().filter(lambda n: not 0 <= n <= 100),
        st.text(max_size=5),
        st.floats(),
        st.lists(st.integers(), max_size=2),
    ),
)
@example({"media_info_list": [{"media_data": "0", "media_profiles": {}}], "parameter": {}}, "fuse_degree", "²")
@example({"media_info_list": [{"media_data": "0", "media_profiles": {}}], "parameter": {}}, "fuse_degree", "0.0")
@example({"media_info_list": [{"media_data": "0", "media_profiles": {}}], "parameter": {}}, "shape_degree", "101")
def test_an_out_of_range_degree_is_refused_naming_the_field(data: dict[str, Any], name: str, bad: Any) -> None:
    """A degree is refused naming its field unless it is an integer 0-100: a number, or text
    the validator reads leniently as one (" 5 ", "5.0", "1_0"); then it is that integer.
    ("²" is a digit int() refuses.)"""
    data["parameter"][name] = bad
    try:
        request = validate(FuseRequest, data)
    except FacefuseError as error:
        assert error.error is Err.INVALID_PARAMETER
        assert f"parameter.{name}" in error.detail
        return
    value = getattr(request.parameter, name)
    assert isinstance(value, int) and 0 <= value <= 100
    assert not isinstance(bad, (bool, list))
    assert float(bad.strip().replace("_", "") if isinstance(bad, str) else bad) == value


@PROPERTY
@given(st.dictionaries(st.sampled_from(["media_info_list", "parameter", "extra", "x"]), json_values, max_size=4))
def test_any_json_object_is_a_request_or_a_named_parameter_error(data: dict[str, Any]) -> None:
    for model in (FuseRequest, TemplateCreateRequest):
        try:
            validate(model, data)
        except FacefuseError as error:
            assert error.error in REQUEST_ERRORS
            assert 0 < len(error.detail) < 300 and "Traceback" not in error.detail


@PROPERTY
@given(valid_fuse_requests, st.sampled_from(["media_info_list", "parameter"]))
def test_a_missing_required_field_is_named(data: dict[str, Any], field: str) -> None:
    del data[field]
    with pytest.raises(FacefuseError) as caught:
        validate(FuseRequest, data)
    assert (caught.value.error, caught.value.detail) == (Err.MISSING_PARAMETER, f"{field} is required")


# ------------------------------------------------------------------ decompression bombs

LIMITS = ImageLimits()
sides = st.integers(0, 2**31 - 1)


def png_header(width: int, height: int) -> bytes:
    ihdr = struct.pack(">II", width, height) + b"\x08\x02\x00\x00\x00"
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr + b"\x00" * 4


def jpeg_header(width: int, height: int) -> bytes:
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 17, 8, height, width, 3) + b"\x01\x11\x00\x02\x11\x00\x03\x11\x00"
    return b"\xff\xd8" + sof + b"\xff\xda" + b"\x00" * 64


@PROPERTY
@given(sides, sides, st.sampled_from([png_header, jpeg_header]))
def test_claimed_sizes_outside_the_rules_are_refused_from_the_header(width: int, height: int, make: Any) -> None:
    if make is jpeg_header:
        width, height = width % 65536, height % 65536
    data = make(width, height)
    inside = LIMITS.min_side <= min(width, height) and max(width, height) <= LIMITS.max_side
    with pytest.MonkeyPatch.context() as patch:  # from the header alone: no decoder runs
        patch.setattr(cv2, "imdecode", _must_not_decode)
        patch.setattr(Image, "open", _must_not_decode)
        try:
            fmt, w, h = check_image(data, LIMITS)
        except FacefuseError as error:
            assert error.error is not Err.IMAGE_SIZE_OUT_OF_RANGE or not inside
            assert inside or error.error in (Err.IMAGE_SIZE_OUT_OF_RANGE, Err.IMAGE_DECODE_ERROR)
        else:
            assert inside and (w, h) == (width, height)


def _must_not_decode(*_: object, **__: object) -> None:
    raise AssertionError("decoded")


# ------------------------------------------------------------------ the url filter

blocked_v4 = st.sampled_from(
    [
        "127.0.0.0/8",
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "169.254.0.0/16",
        "100.64.0.0/10",
        "0.0.0.0/8",
        "224.0.0.0/4",
        "240.0.0.0/4",
    ]
).flatmap(
    lambda net: st.integers(0, ipaddress.IPv4Network(net).num_addresses - 1).map(
        lambda i: ipaddress.IPv4Network(net)[i]
    )
)


def spellings(ip: ipaddress.IPv4Address) -> list[str]:
    n = int(ip)
    a, b, c, d = ip.packed
    return [
        str(ip),
        str(n),
        hex(n),
        f"0{n:o}",
        f"{a}.{b * 65536 + c * 256 + d}",
        f"{a}.{b}.{c * 256 + d}",
        f"{a:#x}.{b:#o}.{c}.{d:#x}",
        f"[::ffff:{ip}]",
        f"[::ffff:{(n >> 16):x}:{(n & 0xFFFF):x}]",
        f"[64:ff9b::{ip}]",
        f"{ip}.",
    ]


@PROPERTY
@given(blocked_v4, st.sampled_from(["http", "https", "HTTP"]), st.integers(1, 65535))
def test_no_spelling_of_a_non_public_address_gets_through(ip: ipaddress.IPv4Address, scheme: str, port: int) -> None:
    assert not is_public_address(ip)
    for host in spellings(ip):
        try:
            target = parse_url(f"{scheme}://{host}:{port}/x.jpg")
            require_allowed(target, [target.ip] if target.ip else [], frozenset())
        except FacefuseError as error:
            assert error.error is Err.MEDIA_URL_NOT_ALLOWED
        else:
            pytest.fail(f"{host} was allowed")


@PROPERTY
@given(st.text(alphabet="abc:@.%2540/?#", min_size=1, max_size=12), blocked_v4)
def test_userinfo_tricks_never_make_a_blocked_address_the_target(userinfo: str, ip: ipaddress.IPv4Address) -> None:
    """`user@host` is refused; what parses has another host, which must pass the DNS check."""
    try:
        target = parse_url(f"http://{userinfo}@{ip}/")
        require_allowed(target, [target.ip] if target.ip else [], frozenset())
    except FacefuseError as error:
        assert error.error is Err.MEDIA_URL_NOT_ALLOWED
        return
    assert target.ip != ip and "@" not in target.host and target.host != str(ip)
    assert target.ip is None or is_public_address(target.ip)
    with pytest.raises(FacefuseError):
        require_allowed(target, [ip], frozenset())  # the name resolving to it is refused too


# ------------------------------------------------------------------ the per-key limiter


KEY_NUMBERS = itertools.count()  # a fresh key for every example: no state carried over


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> SqliteDatabase:
    return SqliteDatabase(tmp_path_factory.mktemp("limits") / "db.sqlite3")


def key(name: str, qps: float | None, quota: int | None) -> ApiKey:
    return ApiKey(
        api_key=name,
        name=name,
        admin=False,
        qps=qps,
        daily_quota=quota,
        created_at="2027-01-15T08:00:00Z",
        revoked_at=None,
    )


@settings(PROPERTY, max_examples=60)
@given(qps=st.sampled_from([0.5, 1.0, 2.0, 5.0]), gaps=st.lists(st.floats(0, 1.5), min_size=1, max_size=40))
def test_the_bucket_never_admits_more_than_its_rate(database: SqliteDatabase, qps: float, gaps: list[float]) -> None:
    clock, admitted = Clock(), []
    limiter, limited = UsageLimiter(database, clock=clock), key(f"q{next(KEY_NUMBERS)}", qps, None)
    start = clock.now
    for gap in gaps:
        clock.now += gap
        try:
            limiter.spend(limited)
            admitted.append(clock.now)
        except RateLimitExceeded as refusal:
            assert refusal.error is Err.QPS_LIMIT_EXCEEDED and refusal.retry_after >= 1
    elapsed = clock.now - start
    assert len(admitted) <= max(1.0, qps) + qps * elapsed + 1e-6
    assert admitted, "a fresh key's first request must pass"


@settings(PROPERTY, max_examples=40)
@given(quota=st.integers(0, 5), calls=st.integers(0, 12))
def test_the_daily_quota_admits_exactly_the_quota_then_renews_at_midnight(
    database: SqliteDatabase, quota: int, calls: int
) -> None:
    clock = Clock()
    limiter, limited = UsageLimiter(database, clock=clock), key(f"d{next(KEY_NUMBERS)}", None, quota)
    outcomes = []
    for _ in range(calls):
        try:
            limiter.spend(limited)
            outcomes.append(True)
        except RateLimitExceeded as refusal:
            assert refusal.error is Err.QUOTA_EXCEEDED and 0 < refusal.retry_after <= 86400
            outcomes.append(False)
    assert outcomes == [True] * min(quota, calls) + [False] * max(0, calls - quota)
    clock.now += 86400
    if quota:
        limiter.spend(limited)  # a new UTC day


# ------------------------------------------------------------------ result links


@pytest.fixture(scope="module")
def results(database: SqliteDatabase, tmp_path_factory: pytest.TempPathFactory) -> ResultStore:
    store = ResultStore(database, LocalBlobStore(database.path.parent), ttl_seconds=60)
    store.save(b"\xff\xd8 a result")
    return store


@PROPERTY
@given(
    st.one_of(
        st.text(max_size=64),
        st.sampled_from(["../facefuse.sqlite3", "..%2F..%2Fetc%2Fpasswd", "/etc/passwd", "a" * 31 + "/", ".", ""]),
    )
)
def test_no_token_reaches_a_file_outside_the_results(results: ResultStore, token: str) -> None:
    assert results.read(token) is None  # beside the results folder is the database file


def test_result_tokens_are_long_random_and_distinct(results: ResultStore) -> None:
    tokens = {results.save(b"x") for _ in range(50)}
    assert len(tokens) == 50 and all(len(t) == 32 for t in tokens)
    assert all(results.read(t) == b"x" for t in tokens)


def test_usage_counters_skip_the_fsync_and_everything_else_keeps_it(database: SqliteDatabase) -> None:
    limiter = UsageLimiter(database)
    assert limiter.db.path == database.path
    assert limiter.db.scalar("PRAGMA synchronous") == 1  # NORMAL: kill -9 safe, no fsync per request
    assert database.scalar("PRAGMA synchronous") == 2  # FULL
    assert limiter.db.scalar("PRAGMA journal_mode") == "wal"
