"""The client's address for the login lockout (django-axes), also behind a reverse proxy.

Behind a proxy every request comes from the proxy's address; counting failures per
that address would let anyone lock `admin` out for everybody. X-Forwarded-For is
trusted only when the request comes from a proxy listed in DJANGO_TRUSTED_PROXIES
(addresses or networks): then the client is the right-most address in that header
that is not itself a trusted proxy. Anyone else can write whatever they like in the
header, so for them it is ignored.
"""

import ipaddress
from functools import lru_cache

from django.conf import settings

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=8)
def _networks(proxies: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(proxy, strict=False) for proxy in proxies)


def _is_trusted(address: str, networks: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def client_ip(request) -> str | None:
    """AXES_CLIENT_IP_CALLABLE: REMOTE_ADDR, or the forwarded client of a trusted proxy."""
    remote = request.META.get("REMOTE_ADDR")
    networks = _networks(tuple(settings.TRUSTED_PROXIES))
    if not remote or not networks or not _is_trusted(remote, networks):
        return remote
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
    for hop in reversed(hops):
        if _is_trusted(hop, networks):
            continue
        try:
            return str(ipaddress.ip_address(hop))
        except ValueError:
            return remote  # a garbled header: count it against the proxy, not a made-up client
    return remote
