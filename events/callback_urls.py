"""Which callback URLs may be called: the contract's shape of one, and the deployment's rule
for where one may point (``CallbackPolicy``), shared by the API (a URL that can never be
allowed is refused at submission) and the notifier (which checks again at each delivery,
with the addresses the host resolves to then).

The rule, against server-side request forgery: ``https`` only, or ``http`` to a host an
operator allows (``WEBHOOK_ALLOWED_HOSTS``: host names or addresses, comma-separated; ``*``
allows every host); and whatever the scheme, never an address that is loopback, private,
link-local (the cloud metadata services live there), multicast, reserved or unspecified,
unless the operator allows that host or address.
"""

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import SplitResult, urlsplit

from pydantic import AfterValidator, Field

MAX_URL_LENGTH = 2048
# Printable ASCII, no space: a host in IDNA form ("xn--..."), the rest percent-encoded.
URL_PATTERN = r"^https?://[\x21-\x7e]+$"

# Cloud metadata endpoints outside the link-local range (169.254.0.0/16 and fe80::/10 are
# refused as link-local already).
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("100.100.100.200", "fd00:ec2::254", "fd20:ce::254")
)
METADATA_NAMES = frozenset({"metadata.google.internal", "metadata", "instance-data"})

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class CallbackUrlRefused(ValueError):
    """A callback URL this deployment will not call; the message says why."""


def parse(url: str) -> SplitResult:
    """The URL's parts, once its shape is the contract's: http or https, a host, no user
    name or password (the signature authenticates a delivery; a password in a URL ends up
    in logs), a valid port."""
    if len(url) > MAX_URL_LENGTH:
        raise CallbackUrlRefused(f"a callback URL has at most {MAX_URL_LENGTH} characters")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise CallbackUrlRefused("a callback URL is http:// or https://")
    if parts.username is not None or parts.password is not None:
        raise CallbackUrlRefused("a callback URL carries no user name or password")
    try:
        parts.port  # noqa: B018 (raises for a port that is not a number in range)
    except ValueError as exc:
        raise CallbackUrlRefused(f"a callback URL's port is invalid: {exc}") from None
    if not parts.hostname:
        raise CallbackUrlRefused("a callback URL names a host")
    return parts


def _check_shape(url: str) -> str:
    parse(url)
    return url


CallbackUrl = Annotated[
    str,
    Field(max_length=MAX_URL_LENGTH, pattern=URL_PATTERN),
    AfterValidator(_check_shape),
]
"""A callback URL as the contract takes it: see ``parse``. Where it may point is the
deployment's rule (``CallbackPolicy``)."""


def literal_address(host: str) -> Address | None:
    """The address a host names literally (``[::1]``'s brackets already gone), else None."""
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None


def forbidden_because(address: Address) -> str | None:
    """Why an address is never called unless allowed (None: it is public)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return forbidden_because(address.ipv4_mapped)
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    for reason, test in (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local (cloud metadata lives there)", address.is_link_local),
        ("private", address.is_private),
        ("multicast", address.is_multicast),
        ("reserved", address.is_reserved),
        ("not globally reachable", not address.is_global),
    ):
        if test:
            return reason
    return None


@dataclass(frozen=True)
class CallbackPolicy:
    """``allowed``: host names and addresses an operator allows (http, and addresses that
    are otherwise refused); ``"*"`` among them allows every host (a test bed, not
    production)."""

    allowed: frozenset[str] = frozenset()

    @classmethod
    def from_setting(cls, text: str) -> "CallbackPolicy":
        hosts = (h.strip().lower().strip("[]") for h in text.split(","))
        return cls(frozenset(h for h in hosts if h))

    @property
    def allows_all(self) -> bool:
        return "*" in self.allowed

    def host_allowed(self, host: str) -> bool:
        return self.allows_all or host.lower() in self.allowed

    def address_allowed(self, address: Address) -> bool:
        return self.allows_all or str(address) in self.allowed

    def check(self, url: str) -> SplitResult:
        """Refuse a URL that can never be called here (``CallbackUrlRefused``): its shape,
        its scheme for its host, a literal address or a metadata name that is refused.
        A host name's addresses are checked at each delivery (``check_addresses``)."""
        parts = parse(url)
        host = (parts.hostname or "").lower()
        if parts.scheme == "http" and not self.host_allowed(host):
            raise CallbackUrlRefused(
                f"a callback URL is https:// (http:// only to hosts the operator allows; "
                f"{host} is not one)"
            )
        if self.host_allowed(host):
            return parts
        address = literal_address(host)
        if address is not None:
            reason = forbidden_because(address)
            if reason is not None and not self.address_allowed(address):
                raise CallbackUrlRefused(f"a callback URL may not point at {address}: {reason}")
        elif host.rstrip(".") in METADATA_NAMES or host.rstrip(".") == "localhost":
            raise CallbackUrlRefused(f"a callback URL may not point at {host}")
        return parts

    def check_addresses(self, host: str, addresses: Iterable[Address]) -> list[Address]:
        """The addresses of ``host`` that may be called (in their order); raises
        ``CallbackUrlRefused`` naming the first refused one when none may."""
        addresses = list(addresses)
        if self.host_allowed(host):
            return addresses
        callable_ = []
        refusals = []
        for address in addresses:
            reason = forbidden_because(address)
            if reason is None or self.address_allowed(address):
                callable_.append(address)
            else:
                refusals.append(f"{address} ({reason})")
        if not callable_:
            named = ", ".join(refusals) if refusals else "no address"
            raise CallbackUrlRefused(f"{host} resolves only to addresses never called: {named}")
        return callable_
