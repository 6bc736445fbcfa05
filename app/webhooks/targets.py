"""Where a webhook may be sent (SSRF): https (http in dev only), no credentials in the URL,
and a host whose every address is public, unless ``SAMVERKAN_WEBHOOK_ALLOW_PRIVATE=true``.

Checked when a subscription is made (a 422 naming ``body.url``) and again before every
attempt, on the addresses the name resolves to then: a name that moved to a private address
after it was checked is refused at send time too, and the request goes to the address that
was checked (:func:`pinned`), not to whatever the name resolves to a moment later.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Any
from urllib.parse import SplitResult, urlsplit

from app.config import Environment, Settings
from app.errors import ValidationFailed

RESOLVE_TIMEOUT_SECONDS = 3.0


class TargetRefused(Exception):
    """The URL may not be called; the message says why (no value echoed)."""


def parse(url: str, settings: Settings) -> SplitResult:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise TargetRefused("The URL cannot be parsed.") from exc
    schemes = {"https"} if settings.env is not Environment.DEV else {"https", "http"}
    if parts.scheme not in schemes:
        raise TargetRefused("The URL must use https.")
    if parts.username is not None or parts.password is not None:
        raise TargetRefused("The URL may not carry credentials; the signature identifies us.")
    if not parts.hostname:
        raise TargetRefused("The URL has no host.")
    if parts.fragment:
        raise TargetRefused("The URL may not have a fragment.")
    if port == 0:
        raise TargetRefused("The URL's port is not valid.")
    return parts


def _allowed(address: str, settings: Settings) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if settings.webhook_allow_private:
        return not ip.is_multicast and not ip.is_unspecified
    return ip.is_global and not ip.is_multicast


async def resolve(parts: SplitResult, settings: Settings) -> list[str]:
    """The host's addresses, each one allowed; :class:`TargetRefused` otherwise."""
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = await asyncio.wait_for(
            asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM),
            timeout=RESOLVE_TIMEOUT_SECONDS,
        )
    except (OSError, UnicodeError, TimeoutError) as exc:
        raise TargetRefused("The URL's host does not resolve.") from exc
    addresses = sorted({str(info[4][0]) for info in infos})
    if not addresses:
        raise TargetRefused("The URL's host does not resolve.")
    if not all(_allowed(a, settings) for a in addresses):
        raise TargetRefused("The URL's host is a private, loopback or reserved address.")
    return addresses


def pinned(parts: SplitResult, address: str) -> tuple[str, str, dict[str, Any]]:
    """The request to make to the address that was checked, so that the name is not looked
    up a second time between the check and the connection (DNS rebinding): the URL with the
    address as its host, the ``Host`` header, and for https the name for SNI and for
    checking the certificate (httpx's ``sni_hostname``)."""
    literal = f"[{address}]" if ":" in address else address
    netloc = literal if parts.port is None else f"{literal}:{parts.port}"
    host = parts.hostname or ""
    host_header = host if parts.port is None else f"{host}:{parts.port}"
    extensions: dict[str, Any] = {"sni_hostname": host} if parts.scheme == "https" else {}
    return parts._replace(netloc=netloc).geturl(), host_header, extensions


async def check(url: str, settings: Settings) -> None:
    """For a new subscription: a 422 naming ``body.url`` if it may not be used."""
    try:
        await resolve(parse(url, settings), settings)
    except TargetRefused as exc:
        raise ValidationFailed.for_field("body.url", str(exc), "url_refused") from None
