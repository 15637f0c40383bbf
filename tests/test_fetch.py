"""media.fetch against local HTTP servers on 127.0.0.1 only (no other address is ever contacted)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from conftest import FACES

from facefuse.errors import Err, FacefuseError
from facefuse.media.addresses import IPAddress, parse_url
from facefuse.media.fetch import build_request, fetch_url, resolve_host
from facefuse.media.limits import FetchLimits

PHOTO = (FACES / "dlib__examples_johns_John_Salley_000179_02159509.jpg").read_bytes()
LOOPBACK = ipaddress.ip_address("127.0.0.1")
MB = 1024 * 1024


@dataclass
class ServerLog:
    requests: list[tuple[str, str]] = field(default_factory=list)  # (path, Host header)
    closed_early: threading.Event = field(default_factory=threading.Event)
    bytes_sent: int = 0


class Handler(BaseHTTPRequestHandler):
    """Routes: /photo.jpg, /redirect/N (N redirects, then the photo), /to/PORT, /status/CODE,
    /big (no length, streamed), /big-declared, /trickle, /gzip, /empty."""

    server: LocalServer

    def log_message(self, format: str, *args: object) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:
        self.server.log.requests.append((self.path, self.headers.get("Host", "")))
        parts = self.path.strip("/").split("/")
        route = getattr(self, f"route_{parts[0].replace('.', '_').replace('-', '_')}", None)
        if route is None:
            self.send_error(404)
            return
        route(*parts[1:])

    def route_photo_jpg(self) -> None:
        self.send_body(PHOTO)

    def route_redirect(self, hops: str) -> None:
        remaining = int(hops)
        self.redirect("/photo.jpg" if remaining <= 1 else f"/redirect/{remaining - 1}")

    def route_to(self, port: str) -> None:
        self.redirect(f"http://127.0.0.1:{port}/photo.jpg")

    def route_status(self, code: str) -> None:
        self.send_error(int(code))

    def route_big(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        self.end_headers()
        self.stream(64 * MB)

    def route_big_declared(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(64 * MB))
        self.end_headers()
        self.stream(64 * MB)

    def route_trickle(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "100")
        self.end_headers()
        try:
            for _ in range(100):
                self.wfile.write(b"x")
                self.wfile.flush()
                time.sleep(0.5)
        except OSError:
            self.server.log.closed_early.set()

    def route_gzip(self) -> None:
        self.send_body(PHOTO, {"Content-Encoding": "gzip"})

    def route_empty(self) -> None:
        self.send_body(b"")

    def send_body(self, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def stream(self, total: int) -> None:
        chunk = b"\0" * 65536
        try:
            while self.server.log.bytes_sent < total:
                self.wfile.write(chunk)
                self.server.log.bytes_sent += len(chunk)
        except OSError:  # the client hung up before the end
            self.server.log.closed_early.set()


class LocalServer(ThreadingHTTPServer):
    daemon_threads = True
    host = "127.0.0.1"

    def __init__(self) -> None:
        super().__init__((self.host, 0), Handler)
        self.log = ServerLog()

    @property
    def port(self) -> int:
        return self.server_address[1]

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"


class LocalServerV6(LocalServer):
    address_family = socket.AF_INET6
    host = "::1"

    def url(self, path: str) -> str:
        return f"http://[::1]:{self.port}{path}"


def start_server(kind: type[LocalServer] = LocalServer) -> LocalServer:
    server = kind()
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server


@pytest.fixture
def server() -> Iterator[LocalServer]:
    running = start_server()
    yield running
    running.shutdown()
    running.server_close()


@pytest.fixture
def other_server() -> Iterator[LocalServer]:
    running = start_server()
    yield running
    running.shutdown()
    running.server_close()


def limits_for(*servers: LocalServer, **overrides: object) -> FetchLimits:
    allowlist = frozenset(f"127.0.0.1:{s.port}" for s in servers)
    return FetchLimits(**{"allowlist": allowlist, "total_timeout": 5.0, **overrides})  # type: ignore[arg-type]


def fetch(url: str, limits: FetchLimits, **kwargs: object) -> bytes:
    return asyncio.run(fetch_url(url, limits, **kwargs))  # type: ignore[arg-type]


def fetch_error(url: str, limits: FetchLimits, **kwargs: object) -> FacefuseError:
    with pytest.raises(FacefuseError) as caught:
        fetch(url, limits, **kwargs)
    return caught.value


class FakeResolver:
    """Answers fixed addresses for any name and counts the look-ups (stands in for DNS)."""

    def __init__(self, *addresses: str) -> None:
        self.addresses = [ipaddress.ip_address(a) for a in addresses]
        self.lookups: list[tuple[str, int]] = []

    async def __call__(self, host: str, port: int) -> Sequence[IPAddress]:
        self.lookups.append((host, port))
        return self.addresses


def test_allowlisted_loopback_server_downloads(server: LocalServer) -> None:
    assert fetch(server.url("/photo.jpg"), limits_for(server)) == PHOTO


def test_allowlisted_ipv6_loopback_server_downloads() -> None:
    try:
        server = start_server(LocalServerV6)
    except OSError:
        pytest.skip("no IPv6 loopback here")
    try:
        limits = FetchLimits(allowlist=frozenset({f"[::1]:{server.port}"}))
        assert fetch(server.url("/photo.jpg"), limits) == PHOTO
        assert fetch_error(server.url("/photo.jpg"), FetchLimits()).error is Err.MEDIA_URL_NOT_ALLOWED
    finally:
        server.shutdown()
        server.server_close()


def test_loopback_without_allowlist_is_not_allowed(server: LocalServer) -> None:
    error = fetch_error(server.url("/photo.jpg"), FetchLimits())
    assert error.error is Err.MEDIA_URL_NOT_ALLOWED
    assert server.log.requests == []


def test_allowlisted_name_connects_to_the_checked_address_with_the_real_host(server: LocalServer) -> None:
    resolver = FakeResolver("127.0.0.1")
    limits = FetchLimits(allowlist=frozenset({f"images.test:{server.port}"}))
    assert fetch(f"http://images.test:{server.port}/photo.jpg", limits, resolver=resolver) == PHOTO
    assert resolver.lookups == [("images.test", server.port)]  # one look-up: nothing to rebind
    assert server.log.requests == [("/photo.jpg", f"images.test:{server.port}")]


def test_public_looking_name_resolving_to_loopback_is_refused_without_connecting(server: LocalServer) -> None:
    error = fetch_error(
        f"http://images.example.com:{server.port}/photo.jpg", FetchLimits(), resolver=FakeResolver("127.0.0.1")
    )
    assert error.error is Err.MEDIA_URL_NOT_ALLOWED
    assert "127.0.0.1" not in error.detail
    assert server.log.requests == []


def test_one_private_address_among_public_ones_is_refused_without_connecting() -> None:
    resolver = FakeResolver("93.184.215.14", "10.0.0.7")
    error = fetch_error("http://images.example.com/photo.jpg", FetchLimits(), resolver=resolver)
    assert error.error is Err.MEDIA_URL_NOT_ALLOWED
    assert "10.0.0.7" not in error.detail


def test_redirects_are_followed_and_each_hop_checked(server: LocalServer) -> None:
    assert fetch(server.url("/redirect/3"), limits_for(server, max_redirects=3)) == PHOTO
    assert [path for path, _ in server.log.requests] == ["/redirect/3", "/redirect/2", "/redirect/1", "/photo.jpg"]


def test_redirect_to_a_non_allowlisted_loopback_port_is_not_allowed(
    server: LocalServer, other_server: LocalServer
) -> None:
    error = fetch_error(server.url(f"/to/{other_server.port}"), limits_for(server))
    assert error.error is Err.MEDIA_URL_NOT_ALLOWED
    assert other_server.log.requests == []
    assert fetch(server.url(f"/to/{other_server.port}"), limits_for(server, other_server)) == PHOTO


def test_redirect_from_an_allowlisted_name_is_rechecked(server: LocalServer) -> None:
    resolver = FakeResolver("127.0.0.1")
    limits = FetchLimits(allowlist=frozenset({f"a.test:{server.port}"}))
    assert fetch(f"http://a.test:{server.port}/redirect/1", limits, resolver=resolver) == PHOTO
    assert [host for host, _ in resolver.lookups] == ["a.test", "a.test"]


def test_too_many_redirects_fail(server: LocalServer) -> None:
    error = fetch_error(server.url("/redirect/4"), limits_for(server, max_redirects=3))
    assert error.error is Err.MEDIA_URL_FETCH_FAILED
    assert "redirects" in error.detail
    assert len(server.log.requests) == 4


def test_oversize_streamed_body_is_cut_off(server: LocalServer) -> None:
    error = fetch_error(server.url("/big"), limits_for(server))
    assert error.error is Err.MEDIA_URL_FETCH_FAILED
    assert "larger than 2 MB" in error.detail
    assert server.log.closed_early.wait(5), "the server never saw the connection close"
    assert server.log.bytes_sent < 32 * MB  # cut off: the rest of the 64 MB was never sent


def test_oversize_declared_body_is_refused_before_reading(server: LocalServer) -> None:
    error = fetch_error(server.url("/big-declared"), limits_for(server))
    assert error.error is Err.MEDIA_URL_FETCH_FAILED
    assert "larger than 2 MB" in error.detail
    assert server.log.closed_early.wait(5)


def test_body_at_exactly_the_limit_is_accepted(server: LocalServer) -> None:
    assert fetch(server.url("/photo.jpg"), limits_for(server, max_bytes=len(PHOTO))) == PHOTO
    assert (
        fetch_error(server.url("/photo.jpg"), limits_for(server, max_bytes=len(PHOTO) - 1)).error
        is Err.MEDIA_URL_FETCH_FAILED
    )


def test_trickling_server_is_cut_off_by_the_total_deadline(server: LocalServer) -> None:
    # One byte every 0.5 s never trips the 5 s read timeout, and the whole body would take
    # 50 s: only the total deadline can end it, and its detail says so.
    error = fetch_error(server.url("/trickle"), limits_for(server, total_timeout=1.5, read_timeout=5.0))
    assert error.error is Err.MEDIA_URL_FETCH_FAILED
    assert error.detail == "the download took longer than 1.5 s"
    assert server.log.closed_early.wait(3)


@pytest.mark.parametrize("code", [404, 403, 500, 503])
def test_error_status_fails_with_the_status(server: LocalServer, code: int) -> None:
    error = fetch_error(server.url(f"/status/{code}"), limits_for(server))
    assert error.error is Err.MEDIA_URL_FETCH_FAILED
    assert str(code) in error.detail


def test_compressed_and_empty_bodies_fail(server: LocalServer) -> None:
    assert "gzip" in fetch_error(server.url("/gzip"), limits_for(server)).detail
    assert fetch_error(server.url("/empty"), limits_for(server)).error is Err.MEDIA_URL_FETCH_FAILED


def test_closed_port_fails_without_naming_the_address(server: LocalServer) -> None:
    closed = start_server()
    port = closed.port
    closed.shutdown()
    closed.server_close()
    resolver = FakeResolver("127.0.0.1")
    limits = FetchLimits(allowlist=frozenset({f"gone.test:{port}"}), total_timeout=5.0)
    error = fetch_error(f"http://gone.test:{port}/photo.jpg", limits, resolver=resolver)
    assert error.error is Err.MEDIA_URL_FETCH_FAILED
    assert "127.0.0.1" not in error.detail


def test_unresolvable_name_fails() -> None:
    async def no_answer(host: str, port: int) -> Sequence[IPAddress]:
        raise OSError("name or service not known")

    error = fetch_error("http://nowhere.test/a.jpg", FetchLimits(), resolver=no_answer)
    assert error.error is Err.MEDIA_URL_FETCH_FAILED and "nowhere.test" in error.detail


@pytest.mark.parametrize(
    "url",
    [
        "ftp://127.0.0.1/a.jpg",
        "file:///etc/passwd",
        "gopher://127.0.0.1:70/",
        "http://user@127.0.0.1/",
        "http://169.254.169.254/latest/meta-data/",
    ],
)
def test_refused_schemes_and_addresses(url: str) -> None:
    assert fetch_error(url, FetchLimits()).error is Err.MEDIA_URL_NOT_ALLOWED


def test_refused_even_when_allowlisted_scheme_is_wrong(server: LocalServer) -> None:
    url = f"ftp://127.0.0.1:{server.port}/photo.jpg"
    assert fetch_error(url, limits_for(server)).error is Err.MEDIA_URL_NOT_ALLOWED


def test_https_request_goes_to_the_address_with_the_name_in_sni_and_host() -> None:
    target = parse_url("https://images.example.com/a.jpg?x=1")
    request = build_request(httpx.AsyncClient(), target, ipaddress.ip_address("93.184.215.14"))
    assert str(request.url) == "https://93.184.215.14/a.jpg?x=1"
    assert request.headers["Host"] == "images.example.com"
    assert request.extensions["sni_hostname"] == "images.example.com"


def test_proxies_from_the_environment_are_ignored(server: LocalServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # a closed port: using it would fail
    monkeypatch.setenv("ALL_PROXY", "http://127.0.0.1:9")
    assert fetch(server.url("/photo.jpg"), limits_for(server)) == PHOTO


def test_system_resolver_reads_localhost_and_the_download_uses_its_checked_address(server: LocalServer) -> None:
    assert LOOPBACK in asyncio.run(resolve_host("localhost", server.port))
    limits = FetchLimits(allowlist=frozenset({f"localhost:{server.port}"}), total_timeout=5.0)
    assert fetch(f"http://localhost:{server.port}/photo.jpg", limits) == PHOTO
    assert server.log.requests[-1] == ("/photo.jpg", f"localhost:{server.port}")
