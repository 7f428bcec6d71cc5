"""The Python client: queue runs, and track your own training script as an external run.

with trainboard.Client("http://127.0.0.1:8000") as client:
    with client.start_run("my-script", {"lr": 1e-3}) as run:
        for epoch in range(1, 11):
            run.log({"train_loss": ..., "val_loss": ...}, step=epoch)
        run.log_checkpoint("model.pt", epoch=10)
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

BATCH_POINTS = 1000
FLUSH_SECONDS = 2.0


class ClientError(RuntimeError):
    """The server refused a request, or could not be reached; the message says why."""


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


class Client:
    def __init__(
        self, url: str = "http://127.0.0.1:8000", token: str | None = None, timeout: float = 30.0
    ) -> None:
        token = token or os.environ.get("TRAINBOARD_TOKEN")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=timeout)

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self.http.request(method, f"/api{path}", **kwargs)
        except httpx.HTTPError as exc:
            raise ClientError(f"cannot reach {self.http.base_url}: {exc}") from None
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail")
            except ValueError:
                detail = response.text
            raise ClientError(f"{response.status_code}: {describe_detail(detail)}")
        return response.json() if response.content else None

    def submit(self, spec: dict[str, Any]) -> dict[str, Any]:
        return self.request("POST", "/runs", json=spec)

    def list_runs(self, **filters: Any) -> list[dict[str, Any]]:
        return self.request("GET", "/runs", params=filters)["items"]

    def start_run(
        self, name: str, params: dict[str, Any] | None = None, tags: list[str] | None = None
    ) -> ExternalRun:
        run = self.request(
            "POST",
            "/runs",
            json={"kind": "external", "name": name, "params": params or {}, "tags": tags or []},
        )
        return ExternalRun(self, run["id"])

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ExternalRun:
    """A run your own script logs into; points are buffered and sent in batches."""

    def __init__(self, client: Client, run_id: int) -> None:
        self.client, self.id = client, run_id
        self.buffer: list[dict[str, Any]] = []
        self.last_flush = time.monotonic()

    def log(self, metrics: dict[str, float], step: int) -> None:
        now = time.time()
        for key, value in metrics.items():
            number = float(value)
            self.buffer.append(
                {
                    "key": key,
                    "step": int(step),
                    "value": number if math.isfinite(number) else None,
                    "timestamp": now,
                }
            )
        if len(self.buffer) >= BATCH_POINTS or time.monotonic() - self.last_flush >= FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        while self.buffer:
            batch = self.buffer[:BATCH_POINTS]
            # Re-sending a batch after a failure is safe: (key, step) replaces, never duplicates.
            self.client.request("POST", f"/runs/{self.id}/metrics", json={"points": batch})
            del self.buffer[: len(batch)]
        self.last_flush = time.monotonic()

    def log_checkpoint(self, path: str | Path, epoch: int = 0) -> dict[str, Any]:
        self.flush()
        with Path(path).open("rb") as handle:
            return self.client.request(
                "POST",
                f"/runs/{self.id}/checkpoints",
                files={"file": (Path(path).name, handle)},
                data={"epoch": str(epoch)},
            )

    def finish(self, status: str = "completed", error: str | None = None) -> dict[str, Any]:
        self.flush()
        return self.client.request(
            "POST", f"/runs/{self.id}/finish", json={"status": status, "error": error}
        )

    def __enter__(self) -> ExternalRun:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        if exc is None:
            self.finish("completed")
        else:
            self.finish("failed", f"{exc_type.__name__ if exc_type else 'error'}: {exc}")
