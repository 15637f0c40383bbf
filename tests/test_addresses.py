"""media.addresses: the SSRF filter as pure functions (no DNS, no sockets)."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from facefuse.errors import Err, FacefuseError
from facefuse.media.addresses import (
    IPAddress,
    embedded_ipv4,
    is_allowed,
    is_public_address,
    parse_ip,
    parse_ipv4,
    parse_url,
    require_allowed,
)

NO_ALLOWLIST: frozenset[str] = frozenset()
PUBLIC_V4 = ipaddress.ip_address("93.184.215.14")


def ip(text: str) -> IPAddress:
    return ipaddress.ip_address(text)


def refusal(url: str, resolved: Sequence[str] = ("93.184.215.14",), allowlist: frozenset[str] = NO_ALLOWLIST) -> str:
    """The 10010 detail for url; `resolved` stands in for DNS when the url names a host."""
    with pytest.raises(FacefuseError) as caught:
        target = parse_url(url)
        require_allowed(target, [target.ip] if target.ip else [ip(a) for a in resolved], allowlist)
    assert caught.value.error is Err.MEDIA_URL_NOT_ALLOWED
    return caught.value.detail


def allowed(url: str, resolved: Sequence[str] = ("93.184.215.14",), allowlist: frozenset[str] = NO_ALLOWLIST) -> bool:
    try:
        target = parse_url(url)
        require_allowed(target, [target.ip] if target.ip else [ip(a) for a in resolved], allowlist)
    except FacefuseError as error:
        assert error.error is Err.MEDIA_URL_NOT_ALLOWED
        return False
    return True


HOSTILE_URLS = [
    # loopback in every spelling getaddrinfo accepts
    "http://127.0.0.1/",
    "http://127.1/",
    "http://127.0.1/",
    "http://0177.0.0.1/",
    "http://0177.1/",
    "http://0x7f.1/",
    "http://0x7f.0x0.0x0.0x1/",
    "http://0x7f000001/",
    "http://0X7F000001/",
    "http://2130706433/",
    "http://017700000001/",
    "http://127.000.000.001/",
    "http://127.0.0.1./",
    "http://127.255.255.254:8080/",
    "http://１２７.０.０.１/",
    "http://127。0。0。1/",
    # the unspecified address reaches the local host
    "http://0/",
    "http://0.0.0.0/",
    "http://0x0/",
    "http://[::]/",
    # IPv6 loopback and IPv4 inside IPv6
    "http://[::1]/",
    "http://[0:0:0:0:0:0:0:1]/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:7f00:1]/",
    "http://[0:0:0:0:0:ffff:127.0.0.1]/",
    "http://[::127.0.0.1]/",
    "http://[::ffff:a9fe:a9fe]/",
    "http://[2002:7f00:1::]/",
    "http://[2002:a00:1::1]/",  # 6to4 of 127.0.0.1, 10.0.0.1
    "http://[64:ff9b::7f00:1]/",
    "http://[64:ff9b::a9fe:a9fe]/",  # NAT64 of loopback, metadata
    "http://[64:ff9b:1::8.8.8.8]/",  # local-use NAT64 prefix
    "http://[2001:0:4136:e378:8000:63bf:f5ff:fffe]/",  # Teredo, client 10.0.0.1
    "http://[fe80::1%25eth0]/",
    "http://[fe80::1]/",
    "http://[fc00::1]/",
    "http://[fd00:ec2::254]/",
    "http://[fec0::1]/",
    "http://[ff02::1]/",
    "http://[ff0e::1]/",
    "http://[2001:db8::1]/",
    "http://[3fff::1]/",
    "http://[100::1]/",
    "http://[2001:2::1]/",
    # private, link-local, metadata, CGNAT, multicast, reserved, broadcast, documentation, benchmarks
    "http://10.0.0.1/",
    "http://10.255.255.255/",
    "http://172.16.0.1/",
    "http://172.31.255.255/",
    "http://192.168.0.1/",
    "http://169.254.169.254/latest/meta-data/",
    "http://169.254.0.1/",
    "http://100.64.0.1/",
    "http://100.100.100.200/",
    "http://100.127.255.255/",
    "http://192.0.0.192/",
    "http://224.0.0.1/",
    "http://239.255.255.250/",
    "http://240.0.0.1/",
    "http://255.255.255.255/",
    "http://192.0.2.1/",
    "http://198.51.100.1/",
    "http://203.0.113.1/",
    "http://198.18.0.1/",
    "http://198.19.255.255/",
    "http://192.88.99.1/",
    "http://2852039166/",  # 169.254.169.254
    # userinfo tricks and ambiguous authorities
    "http://good.com@127.0.0.1/",
    "http://good.com:80@127.0.0.1/",
    "http://user:pass@example.com/",
    "http://127.0.0.1:80@good.com/",
    "http://@example.com/",
    "http://127.0.0.1\\@good.com/",
    "http://example.com\\.127.0.0.1/",
    "http://127.0.0.1\t.good.com/",
    "http://127.0.0.1%00.good.com/",
    "http://exa mple.com/",
    "http://[v1.fe]/",
    # schemes and shapes that are not http(s) urls
    "ftp://example.com/a.jpg",
    "file:///etc/passwd",
    "file://localhost/etc/passwd",
    "gopher://127.0.0.1:25/",
    "dict://127.0.0.1:11211/",
    "javascript:alert(1)",
    "data:image/png;base64,AAAA",
    "//example.com/a.jpg",
    "example.com/a.jpg",
    "http:///a.jpg",
    "http://:80/",
    "http://example.com:0/",
    "http://example.com:99999/",
    "http://example.com:-1/",
    "http://999.1.1.1/",
    "http://1.2.3.4.5/",
    "http://0x1g.1/",
    "http://a..b/",
    "http://-bad-.com/",
]


@pytest.mark.parametrize("url", HOSTILE_URLS)
def test_hostile_urls_are_refused(url: str) -> None:
    refusal(url)


@pytest.mark.parametrize(
    ("url", "resolved"),
    [
        ("http://localhost/", ["127.0.0.1"]),
        ("http://ⓛⓞⓒⓐⓛⓗⓞⓢⓣ/", ["127.0.0.1"]),
        ("http://rebind.example.com/", ["10.1.2.3"]),
        ("http://metadata.google.internal/", ["169.254.169.254"]),
        ("https://images.example.com/a.jpg", ["93.184.215.14", "192.168.1.10"]),  # one bad is enough
        ("https://v6.example.com/", ["2606:4700::1111", "fd12::1"]),
        ("http://mapped.example.com/", ["::ffff:10.0.0.1"]),
        ("http://scoped.example.com/", ["fe80::1%2"]),
    ],
)
def test_names_resolving_to_any_non_public_address_are_refused(url: str, resolved: list[str]) -> None:
    detail = refusal(url, resolved)
    assert not any(address.split("%")[0] in detail for address in resolved)  # never reveal addresses


@pytest.mark.parametrize(
    ("url", "resolved"),
    [
        ("http://8.8.8.8/", []),
        ("https://8.8.8.8/a.jpg", []),
        ("http://134744072/", []),  # 8.8.8.8
        ("https://[2606:4700::1111]/", []),
        ("http://[::ffff:8.8.8.8]/", []),
        ("http://[64:ff9b::808:808]/", []),
        ("http://1.1.1.1:8080/x?y=1", []),
        ("http://1.2.3/", []),
        ("http://example.com/", ["93.184.215.14"]),
        ("HTTPS://EXAMPLE.COM/A.JPG", ["93.184.215.14"]),
        ("https://bücher.example/", ["93.184.215.14"]),
        ("https://example.com./", ["2606:2800:21f:cb07:6820:80da:af6b:8b2c"]),
        ("http://cdn_1.example.com/a.jpg", ["93.184.215.14"]),
    ],
)
def test_public_destinations_are_allowed(url: str, resolved: list[str]) -> None:
    assert allowed(url, resolved)


@pytest.mark.parametrize(
    ("spelling", "address"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("127.0.1", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("0x7F.0.0.0x1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("017700000001", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("127.0.0.1.", "127.0.0.1"),
        ("0", "0.0.0.0"),
        ("10.1", "10.0.0.1"),
        ("192.168.257", "192.168.1.1"),
        ("1.2.3", "1.2.0.3"),
        ("[::1]", "::1"),
        ("::ffff:127.0.0.1", "::ffff:7f00:1"),
        ("[fe80::1%25eth0]", "fe80::1%eth0"),
        ("[FE80::1%eth0]", "fe80::1%eth0"),
    ],
)
def test_every_address_spelling_is_normalised(spelling: str, address: str) -> None:
    assert parse_ip(spelling) == ip(address)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "256.0.0.1",
        "1.2.3.4.5",
        "1.256.0.0.0",
        "08.0.0.1",
        "0x",
        "1_0.0.0.1",
        "+1.0.0.1",
        " 1.0.0.1",
        "1.0.0.1 ",
        "１.0.0.1",
        "4294967296",
        "example.com",
    ],
)
def test_non_addresses_are_not_parsed_as_ipv4(text: str) -> None:
    if text == "0x":
        assert parse_ipv4(text) == ip("0.0.0.0")  # glibc's inet_aton reads a bare 0x as zero
        return
    assert parse_ipv4(text) is None


def test_url_parts_are_normalised() -> None:
    target = parse_url("HTTPS://Bücher.Example:8443/a b/é.jpg?x=1&y=é#frag")
    assert (target.scheme, target.host, target.port, target.ip) == ("https", "xn--bcher-kva.example", 8443, None)
    assert target.target == "/a%20b/%C3%A9.jpg?x=1&y=%C3%A9"
    assert target.host_header == "xn--bcher-kva.example:8443"
    assert target.url_for(ip("93.184.215.14")) == "https://93.184.215.14:8443/a%20b/%C3%A9.jpg?x=1&y=%C3%A9"
    assert parse_url("http://example.com").target == "/"
    assert parse_url("http://example.com:80/").host_header == "example.com"
    v6 = parse_url("http://[2606:4700::1111]:8080/x")
    expected = ("2606:4700::1111", "[2606:4700::1111]:8080", "[2606:4700::1111]:8080")
    assert (v6.host, v6.authority, v6.host_header) == expected
    assert v6.url_for(ip("2606:4700::1111")) == "http://[2606:4700::1111]:8080/x"
    assert parse_url("http://[::1]/").url_for(ip("fe80::1%eth0")) == "http://[fe80::1%25eth0]:80/"


def test_percent_encoded_paths_are_kept_as_they_are() -> None:
    assert parse_url("http://example.com/a%2Fb%20c.jpg?q=%41").target == "/a%2Fb%20c.jpg?q=%41"


# --- the allowlist -------------------------------------------------------------------------


def test_allowlist_admits_exactly_its_host_and_port() -> None:
    allowlist = frozenset({"127.0.0.1:8080", "localhost:9000", "[::1]:7000", "files.internal:80"})
    assert allowed("http://127.0.0.1:8080/a.jpg", allowlist=allowlist)
    assert allowed("http://0x7f.1:8080/a.jpg", allowlist=allowlist)  # the same address, spelled otherwise
    assert allowed("http://LOCALHOST:9000/", ["127.0.0.1", "::1"], allowlist)
    assert allowed("http://localhost:8080/", ["127.0.0.1"], allowlist)  # its address is listed
    assert allowed("http://[::1]:7000/", allowlist=allowlist)
    assert allowed("http://files.internal/", ["10.0.0.5"], allowlist)
    assert not allowed("http://127.0.0.1:8081/", allowlist=allowlist)
    assert not allowed("http://127.0.0.2:8080/", allowlist=allowlist)
    assert not allowed("http://localhost:9001/", ["127.0.0.1"], allowlist)
    assert not allowed("http://127.0.0.1:9000/", allowlist=allowlist)  # a listed name does not list its address
    assert not allowed("http://[::1]:8080/", allowlist=allowlist)
    assert not allowed("http://files.internal:8080/", ["10.0.0.5"], allowlist)
    assert not allowed("ftp://127.0.0.1:8080/", allowlist=allowlist)


def test_is_allowed_directly() -> None:
    allowlist = frozenset({"127.0.0.1:8080"})
    assert is_allowed("example.com", 443, PUBLIC_V4, NO_ALLOWLIST)
    assert is_allowed("127.0.0.1", 8080, ip("127.0.0.1"), allowlist)
    assert is_allowed("dev.test", 8080, ip("127.0.0.1"), allowlist)
    assert not is_allowed("dev.test", 8081, ip("127.0.0.1"), allowlist)
    assert not is_allowed("example.com", 443, ip("10.0.0.1"), allowlist)


# --- embedded IPv4 -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("v6", "v4"),
    [
        ("::ffff:10.0.0.1", "10.0.0.1"),
        ("::10.0.0.1", "10.0.0.1"),
        ("64:ff9b::a00:1", "10.0.0.1"),
        ("2002:a00:1::", "10.0.0.1"),
        ("2001:0:4136:e378:8000:63bf:f5ff:fffe", "10.0.0.1"),
        ("2606:4700::1111", None),
        ("::1", None),
    ],
)
def test_embedded_ipv4(v6: str, v4: str | None) -> None:
    assert embedded_ipv4(ipaddress.IPv6Address(v6)) == (ip(v4) if v4 else None)


# --- agreement with the ipaddress module on generated addresses ----------------------------

_V4_EXTRA = [ipaddress.ip_network(n) for n in ("192.0.0.0/24", "192.88.99.0/24")]
_V6_EXTRA = [ipaddress.ip_network(n) for n in ("3fff::/20",)]
_V6_GLOBAL_UNICAST = ipaddress.ip_network("2000::/3")
_V6_NAT64 = ipaddress.ip_network("64:ff9b::/96")

V4_INTS = st.integers(0, 2**32 - 1)
V6_INTS = st.one_of(
    st.integers(0, 2**128 - 1),
    st.integers(0, 2**125 - 1).map(lambda n: (1 << 125) | n),  # 2000::/3, where public addresses live
    st.sampled_from(
        ["2001::", "2002::", "64:ff9b::", "::ffff:0:0", "fe80::", "fc00::", "ff00::", "2001:db8::"]
    ).flatmap(lambda prefix: st.integers(0, 2**96 - 1).map(lambda n: int(ipaddress.IPv6Address(prefix)) | n)),
)
V6_PROPERTY = settings(max_examples=1000, deadline=None)


def v4_spellings(n: int) -> list[str]:
    a, b, c, d = n.to_bytes(4, "big")
    return [
        f"{a}.{b}.{c}.{d}",
        str(n),
        hex(n),
        f"0{n:o}",
        f"{a:#x}.{b:#x}.{c:#x}.{d:#x}",
        f"0{a:o}.0{b:o}.0{c:o}.0{d:o}",
        f"{a}.{b}.{c * 256 + d}",
        f"{a}.{b * 65536 + c * 256 + d}",
        f"{a}.{b}.{c}.{d}.",
    ]


@V6_PROPERTY
@given(V4_INTS)
def test_every_ipv4_spelling_parses_to_the_same_address(n: int) -> None:
    expected = ipaddress.IPv4Address(n)
    for spelling in v4_spellings(n):
        assert parse_ip(spelling) == expected, spelling
        target = parse_url(f"http://{spelling}:8080/")
        assert (target.ip, target.host) == (expected, str(expected))


@V6_PROPERTY
@given(V4_INTS)
def test_ipv4_public_means_global_unicast(n: int) -> None:
    address = ipaddress.IPv4Address(n)
    expected = address.is_global and not address.is_multicast and not any(address in net for net in _V4_EXTRA)
    assert is_public_address(address) is expected
    if address.is_private or address.is_loopback or address.is_link_local or address.is_reserved:
        assert not is_public_address(address)


@V6_PROPERTY
@given(V6_INTS)
def test_ipv6_public_agrees_with_ipaddress(n: int) -> None:
    address = ipaddress.IPv6Address(n)
    public = is_public_address(address)
    if (
        address.is_loopback
        or address.is_link_local
        or address.is_site_local
        or address.is_multicast
        or address.is_unspecified
        or address.is_private
    ):
        assert not public or address.ipv4_mapped is not None  # mapped: judged by its IPv4 address
    carried = embedded_ipv4(address)
    if public:
        assert address in _V6_GLOBAL_UNICAST or address in _V6_NAT64 or address.ipv4_mapped is not None
        assert carried is None or is_public_address(carried)
    elif address in _V6_GLOBAL_UNICAST and address.is_global and not any(address in net for net in _V6_EXTRA):
        assert carried is not None and not is_public_address(carried)
    assert parse_ip(f"[{address}]") == address
    assert parse_ip(address.exploded) == address


@V6_PROPERTY
@given(V4_INTS)
def test_mapped_and_nat64_addresses_are_judged_by_their_ipv4_address(n: int) -> None:
    v4 = ipaddress.IPv4Address(n)
    mapped = ipaddress.IPv6Address(f"::ffff:{v4}")
    nat64 = ipaddress.IPv6Address(int(ipaddress.IPv6Address("64:ff9b::")) | n)
    sixtofour = ipaddress.IPv6Address((0x2002 << 112) | (n << 80) | 1)
    assert is_public_address(mapped) is is_public_address(v4)
    assert is_public_address(nat64) is is_public_address(v4)
    assert is_public_address(sixtofour) is is_public_address(v4)
