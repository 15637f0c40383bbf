"""Which urls and addresses a url input may reach: pure functions, no I/O (the SSRF filter).

Rules (docs/api.md part C): only http and https; every loopback, private, link-local, CGNAT,
multicast, reserved, documentation or benchmarking address is refused, unless its
`host:port` is in FACEFUSE_URL_ALLOWLIST. Decisions:

- A url with userinfo (`http://user@host/`, `http://good.com@127.0.0.1/`) is refused
  outright: image urls never need credentials and userinfo only serves to mislead.
- Hosts are parsed the way the system resolver would read them: `getaddrinfo` accepts
  every inet_aton spelling (`2130706433`, `0x7f.1`, `0177.0.0.1`, `127.1`), so those are
  addresses here too. A host whose last label is numeric but is no valid address
  (`999.1.1.1`) is refused rather than sent to DNS.
- Non-ASCII hosts are mapped with IDNA 2008 / UTS 46 first, so full-width digits
  (`１２７.０.０.１`) become the address they spell.
- IPv6: only global unicast (2000::/3) minus the special blocks below is public, plus
  NAT64 (64:ff9b::/96) when the IPv4 address inside is public. An address that carries
  an IPv4 address (mapped, 6to4, NAT64, Teredo) is public only if that one is too.
  Scoped addresses (`fe80::1%eth0`) are never public.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

import idna

from facefuse.errors import Err, FacefuseError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

DEFAULT_PORTS = {"http": 80, "https": 443}

_V4_NOT_PUBLIC = tuple(
    ipaddress.IPv4Network(net)
    for net in (
        "0.0.0.0/8",  # "this network"; 0.0.0.0 reaches the local host on Linux
        "10.0.0.0/8",
        "100.64.0.0/10",  # CGNAT (also Alibaba's metadata 100.100.100.200)
        "127.0.0.0/8",
        "169.254.0.0/16",  # link-local, cloud metadata 169.254.169.254
        "172.16.0.0/12",
        "192.0.0.0/24",  # IETF protocol assignments (Oracle metadata 192.0.0.192)
        "192.0.2.0/24",  # TEST-NET-1
        "192.88.99.0/24",  # 6to4 relay anycast (deprecated)
        "192.168.0.0/16",
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",  # TEST-NET-2
        "203.0.113.0/24",  # TEST-NET-3
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, includes 255.255.255.255 broadcast
    )
)
_V6_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")
_V6_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_V6_COMPATIBLE = ipaddress.IPv6Network("::/96")
_V6_NOT_PUBLIC = tuple(
    ipaddress.IPv6Network(net)
    for net in (
        "2001::/23",  # IETF protocol assignments: Teredo, benchmarking, ORCHID ...
        "2001:db8::/32",  # documentation
        "3fff::/20",  # documentation (RFC 9637)
    )
)

_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?", re.ASCII)
_NUMERIC_LABEL = re.compile(r"(?:0x[0-9a-f]*|[0-9]+)", re.ASCII | re.IGNORECASE)
_HEX = re.compile(r"0x[0-9a-f]*", re.ASCII | re.IGNORECASE)
_OCTAL = re.compile(r"0[0-7]+", re.ASCII)
_DECIMAL = re.compile(r"0|[1-9][0-9]*", re.ASCII)
_FORBIDDEN_IN_URL = re.compile(r"[\x00-\x1f\x7f\\]")


@dataclass(frozen=True)
class UrlTarget:
    """A checked http(s) url: where to connect and what to ask for."""

    scheme: str
    host: str  # lower-case ASCII name, or the address in canonical text (IPv6 unbracketed)
    port: int
    target: str  # request target: path and query, percent-encoded ASCII
    ip: IPAddress | None  # set when the url names an address rather than a host name

    @property
    def authority(self) -> str:
        """`host:port` as FACEFUSE_URL_ALLOWLIST spells it (IPv6 in brackets)."""
        return host_port(self.host, self.port)

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == DEFAULT_PORTS[self.scheme] else f"{host}:{self.port}"

    def url_for(self, ip: IPAddress) -> str:
        """The same url with the host replaced by one of its checked addresses."""
        host = str(ip).replace("%", "%25")  # a zone id, only ever here when allowlisted
        return f"{self.scheme}://{host_port(host, self.port)}{self.target}"


def host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_url(url: str) -> UrlTarget:
    """Parse and validate an http(s) url; 10010 MEDIA_URL_NOT_ALLOWED when refused."""
    if _FORBIDDEN_IN_URL.search(url):
        raise _refused("the url contains control characters or backslashes")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise _refused("the url is malformed") from exc
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise _refused("only http and https urls are allowed")
    if " " in parts.netloc:
        raise _refused("the url host contains a space")
    if "@" in parts.netloc:
        raise _refused("urls with a user name or password are not allowed")
    if not parts.hostname:
        raise _refused("the url has no host")
    if "[" in parts.netloc and ":" not in parts.hostname:
        raise _refused("the url host is not a valid IPv6 address")
    if port == 0:
        raise _refused("the url has port 0")
    host, ip = normalise_host(parts.hostname)
    return UrlTarget(
        scheme=scheme,
        host=host,
        port=port or DEFAULT_PORTS[scheme],
        target=_request_target(parts.path, parts.query),
        ip=ip,
    )


def normalise_host(host: str) -> tuple[str, IPAddress | None]:
    """The canonical text of a url host and, when it is one, the address it spells."""
    if ":" in host:  # only a bracketed IPv6 literal gets here with a colon
        ip = _parse_ipv6(host)
        return str(ip), ip
    ascii_host = _idna_ascii(host).rstrip(".")
    labels = ascii_host.split(".")
    if not ascii_host or not all(labels) or len(ascii_host) > 253:
        raise _refused("the url host is not a valid host name")
    if _NUMERIC_LABEL.fullmatch(labels[-1]):
        ip4 = parse_ipv4(ascii_host)
        if ip4 is None:
            raise _refused("the url host is neither a host name nor an IP address")
        return str(ip4), ip4
    if not all(_LABEL.fullmatch(label) for label in labels):
        raise _refused("the url host is not a valid host name")
    return ascii_host, None


def parse_ipv4(text: str) -> ipaddress.IPv4Address | None:
    """Any inet_aton spelling (decimal, octal, hex, 1 to 4 parts) as an address, else None."""
    parts = text.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    numbers = [n for n in map(_inet_aton_number, parts) if n is not None]
    if len(numbers) != len(parts):
        return None
    *leading, last = numbers
    if any(n > 255 for n in leading) or last >= 256 ** (5 - len(parts)):
        return None
    value = last
    for position, n in enumerate(leading):
        value += n << (8 * (3 - position))
    return ipaddress.IPv4Address(value)


def parse_ip(text: str) -> IPAddress | None:
    """An address in any spelling a url or resolver may use (IPv6 may be bracketed/scoped)."""
    text = text.strip().removeprefix("[").removesuffix("]")
    if ":" in text:
        try:
            return _parse_ipv6(text)
        except FacefuseError:
            return None
    return parse_ipv4(text.rstrip(".")) if text else None


def embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries: mapped, compatible, NAT64, 6to4, Teredo client."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _V6_NAT64 or (ip in _V6_COMPATIBLE and int(ip) > 1):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    return None


def is_public_address(ip: IPAddress) -> bool:
    """True only for a globally reachable unicast address (see the module docstring)."""
    if isinstance(ip, ipaddress.IPv4Address):
        return not any(ip in net for net in _V4_NOT_PUBLIC)
    if ip.scope_id:
        return False
    if ip.ipv4_mapped is not None:
        return is_public_address(ip.ipv4_mapped)
    if ip in _V6_NAT64:
        return is_public_address(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    if ip not in _V6_GLOBAL_UNICAST or any(ip in net for net in _V6_NOT_PUBLIC):
        return False
    carried = embedded_ipv4(ip)
    return carried is None or is_public_address(carried)


def is_allowed(host: str, port: int, ip: IPAddress, allowlist: frozenset[str]) -> bool:
    """May a url naming `host:port` connect to `ip`? Public, or allowlisted by name or address."""
    if is_public_address(ip):
        return True
    return host_port(host, port) in allowlist or host_port(str(ip), port) in allowlist


def require_allowed(target: UrlTarget, ips: Iterable[IPAddress], allowlist: frozenset[str]) -> None:
    """10010 unless every address is allowed; the detail never shows a resolved address."""
    if all(is_allowed(target.host, target.port, ip, allowlist) for ip in ips):
        return
    if target.ip is not None:
        raise _refused(f"{target.authority} is not a public address")
    raise _refused(f"{target.host} resolves to an address that is not public")


def _parse_ipv6(text: str) -> ipaddress.IPv6Address:
    address, _, zone = text.partition("%")
    zone = zone.removeprefix("25")  # "%25" is how a url writes the zone separator
    try:
        return ipaddress.IPv6Address(f"{address}%{zone}" if zone else address)
    except ValueError as exc:
        raise _refused("the url host is not a valid IPv6 address") from exc


def _inet_aton_number(part: str) -> int | None:
    """One inet_aton component: 0x hex, leading-zero octal, or decimal."""
    if _HEX.fullmatch(part):
        return int(part[2:] or "0", 16)
    if _OCTAL.fullmatch(part):
        return int(part, 8)
    if _DECIMAL.fullmatch(part):
        return int(part)
    return None


def _idna_ascii(host: str) -> str:
    if host.isascii():
        return host.lower()
    try:
        return idna.encode(host, uts46=True).decode("ascii").lower()
    except idna.IDNAError as exc:
        raise _refused("the url host is not a valid international domain name") from exc


def _request_target(path: str, query: str) -> str:
    """Path and query, with anything outside printable ASCII percent-encoded."""
    safe = "/%:@!$&'()*+,;=-._~?"
    target = quote(path or "/", safe=safe)
    return f"{target}?{quote(query, safe=safe)}" if query else target


def _refused(detail: str) -> FacefuseError:
    return FacefuseError(Err.MEDIA_URL_NOT_ALLOWED, detail)
