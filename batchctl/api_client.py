"""The REST API as ``batchctl``'s user commands see it: one exception class per failure a
user can meet, each with a message that says what to do."""

from collections.abc import Iterable, Iterator
from typing import Any

import httpx
import orjson

from batchctl.client_settings import ClientSettings, config_path


class ClientError(Exception):
    """Something the user can act on; the message says what."""


class ApiUnreachable(ClientError):
    pass


class NoApiKey(ClientError):
    pass


class BadApiKey(ClientError):
    pass


class JobNotFound(ClientError):
    pass


class Refused(ClientError):
    """The API refused the request (4xx/5xx); the message is its own."""

    def __init__(self, status: int, body: dict[str, Any]):
        self.status = status
        self.body = body
        detail = body.get("detail") or body
        extra = ""
        if invalid := body.get("invalid_items"):
            extra = "\n" + "\n".join(
                f"  item {i['item_index']}: {i['message']}" for i in invalid[:10]
            )
        super().__init__(f"{status} {body.get('error', 'error')}: {detail}{extra}")


class ApiClient:
    def __init__(self, settings: ClientSettings | None = None):
        self.settings = settings or ClientSettings()
        if self.settings.api_key is None:
            raise NoApiKey(
                "no API key: set BATCHCTL_API_KEY, or api_key in "
                f"{config_path()} (`batchctl keys create --user <you>` makes one)"
            )
        self._http = httpx.Client(
            base_url=self.settings.api_url.rstrip("/"),
            headers={"Authorization": f"Bearer {self.settings.api_key.get_secret_value()}"},
            timeout=self.settings.timeout_s,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "ApiClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ApiUnreachable(
                f"the API at {self.settings.api_url} is not reachable ({type(exc).__name__}); "
                "is `batchctl run` (or `batchctl api`) running? (BATCHCTL_API_URL)"
            ) from None
        return self._answer(response)

    @staticmethod
    def _answer(response: httpx.Response) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError:
            body = {"error": "unexpected_response", "detail": response.text[:200]}
        if response.status_code == 401:
            raise BadApiKey("the API key was refused (revoked, or not a key of this API)")
        if response.status_code == 404 and body.get("error") == "job_not_found":
            raise JobNotFound(str(body.get("detail")))
        if response.status_code >= 400:
            raise Refused(response.status_code, body)
        result: dict[str, Any] = body
        return result

    def submit_stream(
        self,
        job_type: str,
        lines: Iterable[bytes],
        metadata: dict[str, Any] | None = None,
        callback_url: str | None = None,
    ) -> dict[str, Any]:
        """Stream NDJSON lines (each ending in a newline) as one job."""
        params = {"job_type": job_type}
        if metadata:
            params["metadata"] = orjson.dumps(metadata).decode()
        if callback_url:
            params["callback_url"] = callback_url
        return self._request(
            "POST",
            "/batch/jobs",
            params=params,
            content=iter(lines),
            headers={"Content-Type": "application/x-ndjson"},
            timeout=httpx.Timeout(self.settings.timeout_s, write=None, read=600),
        )

    def job(self, job_id: str) -> dict[str, Any]:
        return self._request("GET", f"/batch/jobs/{job_id}")

    def jobs(
        self, status: str | None = None, limit: int = 20, cursor: str | None = None
    ) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": limit}
        if status:
            params["status"] = status
        if cursor:
            params["cursor"] = cursor
        return self._request("GET", "/batch/jobs", params=params)

    def items(self, job_id: str, status: str | None = None) -> Iterator[dict[str, Any]]:
        """Every item of the job (following the cursor)."""
        cursor = None
        while True:
            params: dict[str, Any] = {"limit": 1000}
            if status:
                params["status"] = status
            if cursor:
                params["cursor"] = cursor
            page = self._request("GET", f"/batch/jobs/{job_id}/items", params=params)
            yield from page["items"]
            cursor = page["next_cursor"]
            if cursor is None:
                return

    def cancel(self, job_id: str) -> dict[str, Any]:
        return self._request("POST", f"/batch/jobs/{job_id}/cancel")

    def retry(self, job_id: str) -> dict[str, Any]:
        return self._request("POST", f"/batch/jobs/{job_id}/retry")

    def progress(self, job_id: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """The job's Server-Sent Events: (event, snapshot) until ``done``."""
        try:
            with self._http.stream(
                "GET", f"/batch/jobs/{job_id}/events", timeout=httpx.Timeout(30, read=None)
            ) as response:
                if response.status_code != 200:
                    response.read()
                    self._answer(response)
                event = "message"
                for line in response.iter_lines():
                    if line.startswith("event:"):
                        event = line[6:].strip()
                    elif line.startswith("data:"):
                        yield event, orjson.loads(line[5:])
                        if event == "done":
                            return
        except httpx.TransportError as exc:
            raise ApiUnreachable(
                f"lost the API at {self.settings.api_url} ({type(exc).__name__})"
            ) from None
