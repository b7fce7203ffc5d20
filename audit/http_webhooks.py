"""The webhook sender over HTTP(S) (:class:`audit.webhook_ports.WebhookSender`), on the
standard library's ``http.client``.

Against server-side request forgery the target is checked twice: the URL by
:func:`sealmark.webhooks.urls.parse`, and then every address its name resolves to, on the
address actually connected to (a name that resolves inwards later, DNS rebinding, is refused
at that send). TLS is verified against the system's CAs for the URL's host name. Redirects
are not followed (a 3xx is a failed attempt), at most :data:`MAX_RESPONSE_BYTES` of the answer
are read, and every socket operation has the call's timeout."""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import time
from collections.abc import Callable
from typing import Any

from audit.webhook_ports import SendResult
from sealmark.webhooks.urls import Target, UrlRefused, check_address, parse

MAX_RESPONSE_BYTES = 64 * 1024

Resolve = Callable[[str, int], list[str]]


def resolve(host: str, port: int) -> list[str]:
    """The addresses of ``host``, in the resolver's order."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class HttpSender:
    """POSTs deliveries. ``allow_private``: private, loopback and link-local targets are
    allowed (SEALMARK_WEBHOOK_ALLOW_PRIVATE); ``tls`` the client context (the system's CAs)."""

    def __init__(
        self,
        *,
        allow_private: bool = False,
        tls: ssl.SSLContext | None = None,
        resolver: Resolve = resolve,
    ) -> None:
        self._allow_private = allow_private
        self._tls = tls or ssl.create_default_context()
        self._resolve = resolver

    def send(self, url: str, headers: dict[str, str], body: bytes, timeout_s: float) -> SendResult:
        try:
            target = parse(url, allow_private=self._allow_private)
        except UrlRefused as exc:
            return SendResult(None, f"refused: {exc}")
        deadline = time.monotonic() + timeout_s
        try:
            addresses = self._resolve(target.host, target.port)
        except (OSError, UnicodeError) as exc:
            return SendResult(None, f"cannot resolve {target.host}: {type(exc).__name__}")
        try:
            for address in addresses:
                check_address(ipaddress.ip_address(address), allow_private=self._allow_private)
        except UrlRefused as exc:
            return SendResult(None, f"refused: {target.host} resolves to {exc}")
        except ValueError:
            return SendResult(None, f"refused: {target.host} resolved to a non-IP address")
        failure = SendResult(None, f"cannot resolve {target.host}")
        for address in addresses:  # the next address only when this one cannot be reached
            try:
                return self._post(target, address, headers, body, deadline)
            except _Unreachable as exc:
                failure = SendResult(None, f"{type(exc.__cause__).__name__}: {exc}")
                if time.monotonic() >= deadline:
                    break
            except TimeoutError:
                return SendResult(None, f"timed out after {timeout_s:g} s")
            except (OSError, http.client.HTTPException) as exc:
                return SendResult(None, f"{type(exc).__name__}: {_short(exc)}")
        return failure

    def _post(
        self,
        target: Target,
        address: str,
        headers: dict[str, str],
        body: bytes,
        deadline: float,
    ) -> SendResult:
        remaining = max(deadline - time.monotonic(), 0.001)
        try:
            raw = socket.create_connection((address, target.port), timeout=remaining)
        except TimeoutError:
            raise
        except OSError as exc:  # refused, no route: the next address may answer
            raise _Unreachable(_short(exc)) from exc
        sock: Any = raw
        conn: http.client.HTTPConnection
        try:
            if target.scheme == "https":
                sock = self._tls.wrap_socket(raw, server_hostname=target.host)
                conn = http.client.HTTPSConnection(target.host, target.port, context=self._tls)
            else:
                conn = http.client.HTTPConnection(target.host, target.port)
            conn.sock = sock  # connected to the checked address, never resolved again
            sock.settimeout(max(deadline - time.monotonic(), 0.001))
            conn.request("POST", target.path, body=body, headers=headers)
            response = conn.getresponse()
            response.read(MAX_RESPONSE_BYTES)  # bounded: the rest is dropped with the socket
            return SendResult(response.status)
        finally:
            sock.close()


class _Unreachable(Exception):
    """Connecting to one address failed (refused, no route): the next may answer."""


def _short(exc: BaseException) -> str:
    return str(exc)[:200]
