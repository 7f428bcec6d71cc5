"""The few requests a tracked run makes, and the two ways they fail: worth retrying or not."""

from __future__ import annotations

import math
from typing import Any

import httpx

from trainboard.tracking.spool import Point

# A refused connection fails at once; a server that accepted the connection gets this long.
TIMEOUT = httpx.Timeout(10.0, connect=3.0)


class Unreachable(Exception):
    """No answer, or 5xx / 429: the same request may succeed later."""


class Refused(Exception):
    """A 4xx answer: sending the same request again would be refused again."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def describe_detail(detail: Any) -> str:
    """A validation error list as `field: message; ...`, anything else as it is."""
    if isinstance(detail, list) and all(isinstance(d, dict) and "msg" in d for d in detail):
        parts = []
        for item in detail:
            # "body" and the union's branch tag ("job") are not part of the field's name.
            loc = [str(p) for p in item.get("loc", []) if p not in ("body", "job", "external")]
            parts.append(f"{'.'.join(loc) or 'request'}: {item['msg']}")
        return "; ".join(parts)
    return str(detail)


class Transport:
    """An httpx client for one server, raising Unreachable or Refused instead of answers."""

    def __init__(self, url: str, token: str | None) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.url = url.rstrip("/")
        self.http = httpx.Client(base_url=self.url, headers=headers, timeout=TIMEOUT)
        self.heartbeat: float | None = None  # how often the server wants to hear from us

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self.http.request(method, f"/api{path}", **kwargs)
        except httpx.HTTPError as exc:
            raise Unreachable(f"cannot reach {self.url}: {exc}") from None
        except Exception as exc:  # a body httpx cannot encode: sending it again would fail again
            raise Refused(0, f"cannot send the request ({type(exc).__name__}: {exc})") from None
        if response.status_code >= 500 or response.status_code == 429:
            raise Unreachable(f"{self.url} answered {response.status_code}")
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail")
            except ValueError:
                detail = response.text
            raise Refused(
                response.status_code, f"{response.status_code}: {describe_detail(detail)}"
            )
        try:
            return response.json() if response.content else None
        except ValueError:  # a proxy's page, not the server's answer
            raise Unreachable(f"{self.url} answered something that is not JSON") from None

    def create_run(self, create: dict[str, Any]) -> int:
        return int(self.request("POST", "/runs", json=create)["id"])

    def send_points(self, run_id: int, points: list[Point]) -> None:
        body = [
            {
                "key": key,
                "step": step,
                "value": value if value is not None and math.isfinite(value) else None,
                "timestamp": ts,
            }
            for key, step, value, ts in points
        ]
        answer = self.request("POST", f"/runs/{run_id}/metrics", json={"points": body})
        if isinstance(answer, dict) and isinstance(answer.get("heartbeat_seconds"), int | float):
            self.heartbeat = float(answer["heartbeat_seconds"])

    def finish(self, run_id: int, finish: dict[str, Any]) -> None:
        self.request("POST", f"/runs/{run_id}/finish", json=finish)

    def send_log(self, run_id: int, text: str) -> None:
        self.request("POST", f"/runs/{run_id}/log", json={"text": text})

    def close(self) -> None:
        self.http.close()
