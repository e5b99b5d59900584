"""The webhooks' pure rules: where a callback URL may point, the retry schedule, the
Standard Webhooks signature (checked by an independent implementation), and one attempt
against a real local receiver with the resolver steered (DNS rebinding)."""

import asyncio
import ipaddress
import random
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from events.callback_urls import CallbackPolicy, CallbackUrlRefused, forbidden_because
from notifications import retry, sender, signing
from storage.webhooks import new_secret
from tests.support.receiver import Answer, Receiver

NOBODY = CallbackPolicy()


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/hook",
        "https://8.8.8.8/hook",
        "https://[2001:4860:4860::8888]:8443/x?y=1",
        "https://xn--bcher-kva.example/",
    ],
)
def test_public_https_urls_are_allowed(url):
    NOBODY.check(url)


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://example.com/", "https"),
        ("https://127.0.0.1/", "loopback"),
        ("https://127.8.9.10/", "loopback"),
        ("https://[::1]/", "loopback"),
        ("https://10.0.0.1/", "private"),
        ("https://172.16.5.4/", "private"),
        ("https://192.168.1.1/", "private"),
        ("https://169.254.169.254/", "link-local"),
        ("https://[fe80::1]/", "link-local"),
        ("https://[::ffff:10.0.0.1]/", "private"),
        ("https://100.100.100.200/", "metadata"),
        ("https://[fd00:ec2::254]/", "metadata"),
        ("https://0.0.0.0/", "unspecified"),
        ("https://224.0.0.1/", "multicast"),
        ("https://metadata.google.internal/", "metadata.google.internal"),
        ("https://localhost/", "localhost"),
        ("https://user:pw@example.com/", "user name"),
        ("gopher://example.com/", "http"),
        ("https:///nohost", "host"),
        ("https://example.com:0x50/", "port"),
    ],
)
def test_urls_that_can_never_be_called_are_refused_with_a_reason(url, why):
    with pytest.raises(CallbackUrlRefused, match=why):
        NOBODY.check(url)


def test_an_operator_allows_hosts_and_addresses():
    policy = CallbackPolicy.from_setting(" receiver.internal , 10.0.0.7,[::1]")
    policy.check("http://receiver.internal:8080/hook")
    policy.check("https://10.0.0.7/hook")
    policy.check("http://[::1]:9/")
    with pytest.raises(CallbackUrlRefused):
        policy.check("https://10.0.0.8/hook")
    assert policy.check_addresses("other.example", [ipaddress.ip_address("10.0.0.7")])
    everything = CallbackPolicy.from_setting("*")
    everything.check("http://127.0.0.1/")


def test_a_name_is_checked_by_what_it_resolves_to():
    loopback, public = ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("93.184.216.34")
    assert NOBODY.check_addresses("a.example", [loopback, public]) == [public]
    with pytest.raises(CallbackUrlRefused, match=r"127\.0\.0\.1 \(loopback\)"):
        NOBODY.check_addresses("a.example", [loopback])
    with pytest.raises(CallbackUrlRefused):
        NOBODY.check_addresses("a.example", [])
    assert forbidden_because(public) is None


def test_retried_answers():
    assert all(retry.retried(c) for c in (408, 429, 500, 502, 503, 504, 599))
    assert not any(retry.retried(c) for c in (400, 401, 403, 404, 410, 422, 301, 302))


def test_the_backoff_doubles_to_its_cap_with_jitter_in_its_upper_half():
    rng = random.Random(7)
    for attempts, ceiling in [(1, 5), (2, 10), (3, 20), (8, 640), (12, 3600), (500, 3600)]:
        delays = [retry.backoff_s(attempts, 5, 3600, rng) for _ in range(200)]
        assert ceiling / 2 <= min(delays) and max(delays) <= ceiling
        assert len(set(delays)) > 100  # jittered


def test_retry_after_is_honoured_and_the_window_ends_retries():
    now = datetime(2026, 1, 1, tzinfo=UTC)
    until = now + timedelta(hours=24)
    assert retry.retry_after_s("120", now) == 120
    assert retry.retry_after_s("Thu, 01 Jan 2026 00:01:00 GMT", now) == 60
    assert retry.retry_after_s("soon", now) is None
    asked = retry.next_attempt_at(now, 1, until, base_s=5, max_s=60, retry_after=120)
    assert asked == now + timedelta(seconds=120)
    assert retry.next_attempt_at(now, 1, until, base_s=5, max_s=60, retry_after=90_000) is None
    assert retry.next_attempt_at(until, 9, until, base_s=5, max_s=60) is None
    last = retry.next_attempt_at(until - timedelta(seconds=1), 30, until, base_s=5, max_s=3600)
    assert last == until  # one last attempt at the window's end, never past it


def test_the_signature_verifies_with_standardwebhooks_and_both_sign_during_a_rotation():
    old, new = new_secret(), new_secret()
    body = b'{"event_type":"JobFinished"}'
    now = int(datetime.now(UTC).timestamp())
    headers = signing.headers([new, old], "msg_1", now, body)
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (old, new):  # a receiver with either secret accepts it
        assert Webhook(secret).verify(body, headers) == {"event_type": "JobFinished"}
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new).verify(body + b" ", headers)


@pytest.fixture
def local_receiver():
    r = Receiver(host="127.0.0.1").start()
    yield r
    r.stop()


def _attempt(policy, url, resolver, **options):
    async def go():
        async with httpx.AsyncClient(trust_env=False) as client:
            return await sender.attempt(
                client,
                policy,
                url,
                {"webhook-id": "x"},
                b"{}",
                timeout_s=options.get("timeout_s", 5),
                max_response_bytes=1024,
                resolver=resolver,
            )

    return asyncio.run(go())


def test_a_name_that_rebinds_to_loopback_is_refused_before_any_connection(local_receiver):
    async def rebinding(host, port):
        return [ipaddress.ip_address("127.0.0.1")]

    result = _attempt(NOBODY, f"https://rebind.example:{local_receiver.port}/", rebinding)
    assert not result.delivered and not result.retry
    assert "loopback" in (result.error or "")
    assert local_receiver.received == []


def test_the_request_goes_to_the_checked_address_with_the_urls_host(local_receiver):
    async def pinned(host, port):
        return [ipaddress.ip_address("127.0.0.1")]

    allowed = CallbackPolicy.from_setting("hooks.example")
    result = _attempt(allowed, f"http://hooks.example:{local_receiver.port}/in", pinned)
    assert result.delivered and result.status_code == 200
    [request] = local_receiver.received
    assert request.headers["host"] == f"hooks.example:{local_receiver.port}"


def test_a_slow_receiver_times_out_and_is_retried(local_receiver):
    local_receiver.script("/slow", [Answer(200, delay_s=3)])
    policy = CallbackPolicy.from_setting("127.0.0.1")
    result = _attempt(policy, local_receiver.url("/slow"), sender.resolve, timeout_s=0.5)
    assert not result.delivered and result.retry and "timed out" in (result.error or "")
    assert result.latency_ms < 2000
