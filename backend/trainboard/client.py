"""The Python client: queue runs, and track your own training script as an external run
(whose `log` only queues: trainboard.tracking sends in the background).

with trainboard.Client("http://127.0.0.1:8000") as client:
    with client.start_run("my-script", {"lr": 1e-3}) as run:
        for epoch in range(1, 11):
            run.log({"train_loss": ..., "val_loss": ...}, step=epoch)
        run.log_checkpoint("model.pt", epoch=10)
"""

from __future__ import annotations

import os
from typing import Any

import httpx

from trainboard.tracking.run import Run
from trainboard.tracking.transport import describe_detail


class ClientError(RuntimeError):
    """The server refused a request, or could not be reached; the message says why."""


class Client:
    def __init__(
        self, url: str = "http://127.0.0.1:8000", token: str | None = None, timeout: float = 30.0
    ) -> None:
        token = token or os.environ.get("TRAINBOARD_TOKEN")
        self.url, self.token = url.rstrip("/"), token
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
    ) -> Run:
        """An external run whose `log` never blocks or raises (see trainboard.tracking);
        `params` are recorded as they are, without the code and environment `init` adds."""
        return Run(name, params, tags, self.url, self.token, record_code=False)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


ExternalRun = Run  # the name this client's runs had before the background sender
