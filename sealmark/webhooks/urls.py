"""Which endpoint URLs Sealmark sends to (against server-side request forgery).

An endpoint URL is ``https://host[:port]/path[?query]``: no credentials in it, no fragment,
at most :data:`MAX_URL_CHARS`. Plain ``http`` only to a loopback host (tests, a developer's
machine). A host that is, or resolves to, a private, loopback, link-local, multicast,
reserved or unspecified address is refused unless the operator allows private targets
(``SEALMARK_WEBHOOK_ALLOW_PRIVATE``); names are checked again at every send, on the address
actually connected to, so a name that later resolves inwards is refused then."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

MAX_URL_CHARS = 2048
LOOPBACK_NAMES = {"localhost", "localhost.localdomain"}


class UrlRefused(ValueError):
    """Why the URL is not one Sealmark sends to (safe to show: it names no secret)."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str  # lower case; an IPv6 address without brackets
    port: int
    path: str  # path and query, at least "/"


def parse(url: str, *, allow_private: bool) -> Target:
    """The URL's target, or UrlRefused saying why not."""
    if not url or len(url) > MAX_URL_CHARS:
        raise UrlRefused(f"want 1..{MAX_URL_CHARS} characters")
    if not url.isascii() or any(c.isspace() or ord(c) < 0x21 or c == "\x7f" for c in url):
        raise UrlRefused("only visible ASCII characters (percent-encode the rest)")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UrlRefused(f"not a URL: {exc}") from None
    if port == 0:
        raise UrlRefused("port 0 is not a port")
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http"):
        raise UrlRefused("want an https:// URL")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise UrlRefused("no credentials in the URL: authenticate with the signature")
    if parts.fragment or url.endswith("#"):
        raise UrlRefused("no fragment")
    host = (parts.hostname or "").lower().rstrip(".")
    if not host:
        raise UrlRefused("a host is required")
    address = _address(host)
    loopback = host in LOOPBACK_NAMES or (address is not None and address.is_loopback)
    if scheme == "http" and not loopback:
        raise UrlRefused("want https:// (plain http only to a loopback host)")
    if loopback and not allow_private:
        raise UrlRefused("a loopback target (allowed only with SEALMARK_WEBHOOK_ALLOW_PRIVATE)")
    if address is not None:
        check_address(address, allow_private=allow_private)
    elif not _is_hostname(host):
        raise UrlRefused("not a valid host name")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(scheme, host, port or (443 if scheme == "https" else 80), path)


def check_address(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address, *, allow_private: bool
) -> None:
    """UrlRefused for an address Sealmark must not send to (see the module docstring)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_loopback:
        if not allow_private:
            raise UrlRefused(
                f"{address} is a loopback address (allowed only with"
                " SEALMARK_WEBHOOK_ALLOW_PRIVATE)"
            )
        return
    if address.is_multicast or address.is_unspecified or address.is_reserved:
        raise UrlRefused(f"{address} is not a unicast address")
    inward = (
        address.is_private or address.is_loopback or address.is_link_local or not address.is_global
    )
    if inward and not allow_private:
        raise UrlRefused(
            f"{address} is a private, loopback or link-local address"
            " (allowed only with SEALMARK_WEBHOOK_ALLOW_PRIVATE)"
        )


def _address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _is_hostname(host: str) -> bool:
    if len(host) > 253:
        return False
    labels = host.split(".")
    # "2130706433", "127.1", "0x7f.1": what inet_aton would read as an address
    if labels[-1].isdigit() or labels[-1].startswith("0x"):
        return False
    return all(
        0 < len(label) <= 63
        and label[0] != "-"
        and label[-1] != "-"
        and all(c.isalnum() or c == "-" for c in label)
        for label in labels
    )
