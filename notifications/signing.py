"""Standard Webhooks signatures (https://www.standardwebhooks.com): an HMAC-SHA256 over
``"{webhook-id}.{webhook-timestamp}.{body}"``, keyed by the base64 secret after ``whsec_``,
sent as ``v1,<base64>``; several (during a rotation) separated by spaces."""

import base64
import hashlib
import hmac

from storage.webhooks import SECRET_PREFIX


def signature(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def headers(secrets: list[str], webhook_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The headers of one attempt: every secret in ``secrets`` signs."""
    return {
        "content-type": "application/json",
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(signature(s, webhook_id, timestamp, body) for s in secrets),
        "user-agent": "archiveorigin-batch-notifier/1",
    }
