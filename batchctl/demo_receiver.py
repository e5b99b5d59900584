"""The demo's webhook receiver: a small HTTP server on this machine that checks each
webhook's Standard Webhooks signature with the demo user's secret and prints one line per
notification."""

import hmac
import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from notifications.signing import signature


class DemoReceiver:
    def __init__(self, on_notification: Callable[[dict[str, Any], bool], None]):
        """``on_notification(event, signature_valid)`` for every webhook received."""
        self.on_notification = on_notification
        self.secret: str | None = None  # set once known: signatures are checked with it
        self.received: list[dict[str, Any]] = []
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/webhooks"

    def verified(self, headers: Any, body: bytes) -> bool:
        if self.secret is None:
            return False
        expected = signature(
            self.secret,
            headers.get("webhook-id", ""),
            int(headers.get("webhook-timestamp", 0)),
            body,
        )
        sent = headers.get("webhook-signature", "").split(" ")
        return any(hmac.compare_digest(expected, s) for s in sent)

    def start(self) -> "DemoReceiver":
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                try:
                    event = json.loads(body)
                    ok = receiver.verified(self.headers, body)
                except ValueError:
                    self.send_response(400)
                    self.end_headers()
                    return
                receiver.received.append(event)
                receiver.on_notification(event, ok)
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
