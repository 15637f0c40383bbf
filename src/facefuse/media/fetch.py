"""Download a url input safely: the SSRF filter applied to every hop, size and time bounded.

Each hop: parse the url (addresses.parse_url), resolve its host once, refuse unless every
address is public or allowlisted, then connect to a checked address itself, sending the
real name as Host header and TLS SNI (TLS verifies that name). No second DNS lookup is
ever made, so a name that re-resolves to an internal address (DNS rebinding) is harmless.
Redirects are followed by hand, each re-checked. Bodies are streamed and dropped past
max_bytes; connections are never kept alive, so none is reused for another name.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Awaitable, Callable, Sequence
from functools import cache
from urllib.parse import urljoin

import httpx

from facefuse.errors import Err, FacefuseError
from facefuse.media.addresses import IPAddress, UrlTarget, parse_ip, parse_url, require_allowed
from facefuse.media.limits import FetchLimits, format_size

Resolver = Callable[[str, int], Awaitable[Sequence[IPAddress]]]

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_HEADERS = {
    "User-Agent": "facefuse (media url fetch)",
    "Accept": "image/jpeg, image/png;q=0.9, */*;q=0.1",
    "Accept-Encoding": "identity",
}


async def resolve_host(host: str, port: int) -> list[IPAddress]:
    """Every address the system resolver gives for host (getaddrinfo runs on a thread)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses = (parse_ip(str(info[4][0])) for info in infos if info[0] in (socket.AF_INET, socket.AF_INET6))
    return list(dict.fromkeys(ip for ip in addresses if ip is not None))


async def fetch_url(url: str, limits: FetchLimits, *, resolver: Resolver = resolve_host) -> bytes:
    """The body at url (10009 when it cannot be had, 10010 when the url or an address is refused)."""
    try:
        async with asyncio.timeout(limits.total_timeout):
            async with _client(limits) as client:
                return await _follow(client, url, limits, resolver)
    except TimeoutError as exc:
        raise _failed(f"the download took longer than {limits.total_timeout:g} s") from exc
    except httpx.TimeoutException as exc:
        raise _failed("the server was too slow to connect or to send data") from exc
    except httpx.InvalidURL as exc:
        raise FacefuseError(Err.MEDIA_URL_NOT_ALLOWED, "the url is malformed") from exc
    except httpx.HTTPError as exc:  # the message may name an internal address: never shown
        raise _failed(f"the download failed ({type(exc).__name__})") from exc


async def _follow(client: httpx.AsyncClient, url: str, limits: FetchLimits, resolver: Resolver) -> bytes:
    for _ in range(limits.max_redirects + 1):
        target = parse_url(url)
        addresses = await _checked_addresses(target, limits.allowlist, resolver)
        response = await _connect(client, target, addresses)
        try:
            location = response.headers.get("location")
            if response.status_code in REDIRECT_STATUSES and location:
                url = urljoin(url, location)
                continue
            if not response.is_success:
                raise _failed(f"the server answered HTTP {response.status_code}")
            return await _read_body(response, limits.max_bytes)
        finally:
            await response.aclose()
    raise _failed(f"more than {limits.max_redirects} redirects")


async def _checked_addresses(target: UrlTarget, allowlist: frozenset[str], resolver: Resolver) -> Sequence[IPAddress]:
    if target.ip is not None:
        addresses: Sequence[IPAddress] = [target.ip]
    else:
        try:
            addresses = await resolver(target.host, target.port)
        except (OSError, UnicodeError) as exc:
            raise _failed(f"the host {target.host} cannot be resolved") from exc
        if not addresses:
            raise _failed(f"the host {target.host} cannot be resolved")
    require_allowed(target, addresses, allowlist)
    return addresses


async def _connect(client: httpx.AsyncClient, target: UrlTarget, addresses: Sequence[IPAddress]) -> httpx.Response:
    """Send the request to the first checked address that accepts a connection."""
    for ip in addresses:
        try:
            return await client.send(build_request(client, target, ip), stream=True)
        except httpx.ConnectError:
            continue
    raise _failed(f"cannot connect to {target.authority}")


def build_request(client: httpx.AsyncClient, target: UrlTarget, ip: IPAddress) -> httpx.Request:
    """GET to the address itself, naming the host in the Host header and, for https, in SNI."""
    extensions = {"sni_hostname": target.host} if target.scheme == "https" else None
    return client.build_request("GET", target.url_for(ip), headers={"Host": target.host_header}, extensions=extensions)


async def _read_body(response: httpx.Response, max_bytes: int) -> bytes:
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise _failed(f"the server sent a {encoding}-compressed body; images must be sent as they are")
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise _failed(f"the file is larger than {format_size(max_bytes)}")
    chunks: list[bytes] = []
    received = 0
    async for chunk in response.aiter_raw():
        received += len(chunk)
        if received > max_bytes:
            raise _failed(f"the file is larger than {format_size(max_bytes)}")
        chunks.append(chunk)
    if not received:
        raise _failed("the server sent an empty body")
    return b"".join(chunks)


def _client(limits: FetchLimits) -> httpx.AsyncClient:
    timeout = httpx.Timeout(
        connect=limits.connect_timeout,
        read=limits.read_timeout,
        write=limits.read_timeout,
        pool=limits.connect_timeout,
    )
    return httpx.AsyncClient(
        headers=_HEADERS,
        timeout=timeout,
        follow_redirects=False,
        trust_env=False,  # no proxy or netrc from the environment
        verify=_tls_context(),
        limits=httpx.Limits(max_connections=4, max_keepalive_connections=0),
    )


@cache
def _tls_context() -> ssl.SSLContext:
    """Built once: loading the CA bundle costs milliseconds per client otherwise."""
    return httpx.create_ssl_context(trust_env=False)


def _failed(detail: str) -> FacefuseError:
    return FacefuseError(Err.MEDIA_URL_FETCH_FAILED, detail)
