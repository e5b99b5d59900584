"""One attempt to deliver a webhook, guarded against server-side request forgery.

The URL is checked against the policy (``events.callback_urls``), the host resolved here and
every address it resolves to checked, and the request sent to an address that passed, with
the URL's host in the ``Host`` header and in TLS (SNI and certificate check): a name that
resolves to a public address when checked and to a private one a moment later (DNS
rebinding) cannot steer the request. Redirects are not followed; at most
``max_response_bytes`` of the answer are read; the attempt ends after ``timeout_s``
whatever the receiver does.
"""

import asyncio
import ipaddress
import socket
import time
from dataclasses import dataclass
from typing import Any

import httpx

from events.callback_urls import Address, CallbackPolicy, CallbackUrlRefused, literal_address
from notifications.retry import retried

Resolve = Any  # async (host, port) -> list of addresses


@dataclass(frozen=True)
class AttemptResult:
    delivered: bool
    retry: bool  # (when not delivered) whether to try again
    status_code: int | None
    latency_ms: float
    error: str | None = None
    retry_after: str | None = None  # the answer's Retry-After header


async def resolve(host: str, port: int) -> list[Address]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    seen: list[Address] = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if address not in seen:
            seen.append(address)
    return seen


def _netloc(address: Address, port: int) -> str:
    text = f"[{address}]" if address.version == 6 else str(address)
    return f"{text}:{port}"


async def attempt(
    client: httpx.AsyncClient,
    policy: CallbackPolicy,
    url: str,
    headers: dict[str, str],
    body: bytes,
    *,
    timeout_s: float,
    max_response_bytes: int,
    resolver: Resolve = resolve,
) -> AttemptResult:
    started = time.perf_counter()

    def result(**fields: Any) -> AttemptResult:
        return AttemptResult(latency_ms=(time.perf_counter() - started) * 1000, **fields)

    try:
        parts = policy.check(url)
    except CallbackUrlRefused as exc:
        return result(delivered=False, retry=False, status_code=None, error=f"refused: {exc}")
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        async with asyncio.timeout(timeout_s):
            literal = literal_address(host)
            try:
                found = [literal] if literal is not None else await resolver(host, port)
            except (OSError, UnicodeError) as exc:
                return result(
                    delivered=False, retry=True, status_code=None, error=f"DNS: {host}: {exc}"
                )
            try:
                addresses = policy.check_addresses(host, found)
            except CallbackUrlRefused as exc:
                return result(
                    delivered=False, retry=False, status_code=None, error=f"refused: {exc}"
                )
            return await _send(
                client, parts, host, port, addresses, headers, body, result, max_response_bytes
            )
    except TimeoutError:
        return result(
            delivered=False, retry=True, status_code=None, error=f"timed out after {timeout_s:g}s"
        )


async def _send(
    client: httpx.AsyncClient,
    parts: Any,
    host: str,
    port: int,
    addresses: list[Address],
    headers: dict[str, str],
    body: bytes,
    result: Any,
    max_response_bytes: int,
) -> AttemptResult:
    host_header = parts.netloc.rsplit("@", 1)[-1]
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    last_error = "no address"
    for address in addresses:  # the next one only if this one cannot be connected to
        pinned = f"{parts.scheme}://{_netloc(address, port)}{path}"
        extensions = {"sni_hostname": host} if parts.scheme == "https" else {}
        request = client.build_request(
            "POST",
            pinned,
            content=body,
            headers={**headers, "host": host_header},
            extensions=extensions,
        )
        try:
            response = await client.send(request, stream=True, follow_redirects=False)
        except httpx.ConnectError as exc:
            last_error = f"connection to {address} failed: {exc or type(exc).__name__}"
            continue
        except httpx.TimeoutException as exc:
            raise TimeoutError from exc
        except (httpx.HTTPError, OSError, ValueError) as exc:  # (ValueError: a bad header)
            return result(
                delivered=False, retry=True, status_code=None, error=f"{type(exc).__name__}: {exc}"
            )
        try:
            read = 0
            async for chunk in response.aiter_raw():
                read += len(chunk)
                if read >= max_response_bytes:
                    break  # the rest is not read (the connection is dropped)
        except httpx.HTTPError:
            pass  # the status is what counts
        finally:
            await response.aclose()
        code = response.status_code
        if 200 <= code <= 299:
            return result(delivered=True, retry=False, status_code=code)
        if 300 <= code <= 399:
            location = response.headers.get("location", "")[:200]
            return result(
                delivered=False,
                retry=False,
                status_code=code,
                error=f"redirect not followed (to {location!r})",
            )
        return result(
            delivered=False,
            retry=retried(code),
            status_code=code,
            error=f"HTTP {code}",
            retry_after=response.headers.get("retry-after"),
        )
    return result(delivered=False, retry=True, status_code=None, error=last_error)
