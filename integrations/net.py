"""Outgoing HTTP for webhooks, with the address checked before connecting.

The host name is resolved once; every address it resolves to must be public (unless
WEBHOOKS_ALLOW_PRIVATE), and the connection goes to the address that was checked, so a
DNS answer that changes between the check and the connection cannot reach an internal
service.
"""

import http.client
import ipaddress
import socket
import ssl
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings


class AddressRefused(Exception):
    """The URL points at a private, loopback, link-local or otherwise internal address."""


@dataclass
class HttpResult:
    status_code: int | None
    duration_ms: int
    error: str = ""


def is_public_address(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def resolve_checked(url: str, *, allow_private: bool | None = None) -> tuple[str, str, int, str]:
    """(scheme, host, port, address to connect to) or AddressRefused with the reason."""
    if allow_private is None:
        allow_private = settings.WEBHOOKS_ALLOW_PRIVATE
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise AddressRefused("Only http and https URLs with a host name can receive webhooks.")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise AddressRefused("The URL's port is not a number between 0 and 65535.") from exc
    try:
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise AddressRefused(f"The host {parts.hostname!r} does not resolve.") from exc
    addresses = [info[4][0] for info in infos]
    if not addresses:
        raise AddressRefused(f"The host {parts.hostname!r} does not resolve.")
    if not allow_private:
        for address in addresses:
            if not is_public_address(address):
                raise AddressRefused(
                    f"{parts.hostname} resolves to {address}, a private or internal address "
                    "(set WEBHOOKS_ALLOW_PRIVATE=1 to allow it for local testing)."
                )
    return parts.scheme, parts.hostname, port, addresses[0]


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to a checked address, still verifying the certificate of the host name."""

    def __init__(self, host: str, address: str, port: int, timeout: float):
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address = address

    def connect(self):
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def post_json(url: str, body: bytes, headers: dict[str, str], *, timeout: float) -> HttpResult:
    """POST `body`; never raises for network trouble (the result says what happened)."""
    started = time.monotonic()

    def took() -> int:
        return int((time.monotonic() - started) * 1000)

    try:
        scheme, host, port, address = resolve_checked(url)
    except AddressRefused as exc:
        return HttpResult(None, took(), str(exc))
    parts = urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    default_port = 443 if scheme == "https" else 80
    all_headers = {
        "Host": host if port == default_port else f"{host}:{port}",
        "Content-Type": "application/json",
        "User-Agent": "PipelineCRM-Webhooks/1",
        **headers,
    }
    if scheme == "https":
        connection = _PinnedHTTPSConnection(host, address, port, timeout)
    else:
        connection = http.client.HTTPConnection(address, port, timeout=timeout)
    try:
        connection.request("POST", target, body=body, headers=all_headers)
        response = connection.getresponse()
        response.read(64 * 1024)  # the receiver's answer is not kept
        return HttpResult(response.status, took())
    except (OSError, http.client.HTTPException) as exc:
        return HttpResult(None, took(), f"{type(exc).__name__}: {exc}"[:300])
    finally:
        connection.close()
