"""What keeps the dashboard's actions to its operator: the token, the origin of a POST, the
``Host`` a request names, and the headers every answer carries.

- **Token.** Every POST carries the token (form field ``token``) that ``pulpo dashboard``
  printed when it started, or was given; it is compared in constant time.
- **Origin.** A POST whose ``Origin`` (or, without one, ``Referer``) is not one of the
  dashboard's own addresses is refused, so another site open in the same browser cannot send
  the operator's browser to kick or delete (cross-site request forgery).
- **Host.** On a loopback or named address a request must name that address in ``Host``, so a
  site whose name is made to point at 127.0.0.1 (DNS rebinding) reads nothing.
- **Headers.** No framing (``X-Frame-Options: DENY``, ``frame-ancestors 'none'``), nothing
  loaded from elsewhere (``default-src 'self'``), no inline script at all.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
from collections.abc import Mapping
from urllib.parse import urlsplit

#: Headers on every answer.
HEADERS = (
    ("Content-Security-Policy",
     "default-src 'self'; script-src 'none'; object-src 'none'; base-uri 'none'; "
     "form-action 'self'; frame-ancestors 'none'"),
    ("X-Frame-Options", "DENY"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "same-origin"),
    ("Cache-Control", "no-store"),
)
#: Addresses that mean "every interface": the Host header cannot be known in advance.
WILDCARDS = ("0.0.0.0", "::", "")


def new_token() -> str:
    """A token for this run of the dashboard: 128 random bits in hex (never starts with ``-``,
    so it can be passed back as ``--token``)."""
    return secrets.token_hex(16)


def token_matches(given: str | None, token: str) -> bool:
    """Whether ``given`` is the token (compared in constant time)."""
    if not given:
        return False
    return hmac.compare_digest(given.encode("utf-8"), token.encode("utf-8"))


class Origins:
    """The ``host:port`` names the dashboard answers to, from the address it listens on."""

    def __init__(self, host: str, port: int) -> None:
        self.port = port
        self.any_host = host in WILDCARDS
        names = {host.lower()}
        if _is_loopback(host):
            names |= {"localhost", "127.0.0.1", "[::1]", "::1"}
        self.hosts = {_with_port(name, port) for name in names}

    def host_allowed(self, environ: Mapping[str, object]) -> bool:
        """Whether the request's ``Host`` is one of the dashboard's names."""
        if self.any_host:
            return True
        host = str(environ.get("HTTP_HOST") or "").lower()
        return host in self.hosts or (self.port == 80 and f"{host}:80" in self.hosts)

    def same_origin(self, environ: Mapping[str, object]) -> tuple[bool, str]:
        """Whether a POST came from the dashboard's own pages, and the origin it named."""
        origin = str(environ.get("HTTP_ORIGIN") or "")
        if not origin:
            referer = str(environ.get("HTTP_REFERER") or "")
            if referer:
                parts = urlsplit(referer)
                origin = f"{parts.scheme}://{parts.netloc}"
        if not origin or origin == "null":
            return False, origin or "none"
        parts = urlsplit(origin)
        if parts.scheme != "http" or parts.path not in ("", "/"):
            return False, origin
        netloc = parts.netloc.lower()
        if ":" not in netloc.rsplit("]", 1)[-1]:
            netloc += ":80"
        if self.any_host:  # then the page's own Host is the dashboard's name
            host = str(environ.get("HTTP_HOST") or "").lower()
            return netloc in (host, f"{host}:80"), origin
        return netloc in self.hosts, origin

    def first(self) -> str:
        """The address to show the operator."""
        return sorted(self.hosts)[0]


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _with_port(name: str, port: int) -> str:
    if ":" in name and not name.startswith("["):
        name = f"[{name}]"  # an IPv6 address, as it appears in a Host header
    return f"{name}:{port}"
