"""A remote worker's line to the server: requests that ride out a network blip.

A request that cannot reach the server (or gets a 5xx) is tried again with backoff until its
`patience` runs out; a run's reports are patient for as long as its lease, so a blip shorter
than the lease loses nothing. A 409 means another attempt holds the run: `RunTakenOver`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

from trainboard.training.exits import RecordingLost, RunTakenOver

RETRY_FIRST, RETRY_MAX = 0.25, 4.0  # seconds between tries, doubling


class ServerUnreachable(RecordingLost):
    """The server did not answer for longer than the request could wait."""


class ServerClient:
    """HTTP to the server at `url` with the worker's token."""

    def __init__(self, url: str, token: str | None, timeout: float = 30.0) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.url = url.rstrip("/")
        self.http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def request(
        self, method: str, path: str, *, patience: float, wait: float | None = None, **kwargs: Any
    ) -> httpx.Response:
        """The answer to a request tried for up to `patience` seconds, each try waiting up to
        `wait` for its answer (by default what is left of the patience, at most 30 s);
        RunTakenOver for a 409, ServerUnreachable when patience ran out, httpx.HTTPStatusError
        for another 4xx."""
        deadline, pause = time.monotonic() + patience, RETRY_FIRST
        while True:
            left = max(0.5, deadline - time.monotonic())
            try:
                response = self.http.request(
                    method, path, timeout=wait or min(left, 30.0), **kwargs
                )
            except httpx.TransportError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code == 409:
                    raise RunTakenOver(f"{method} {path}: another attempt holds the run")
                if response.status_code < 500:
                    response.raise_for_status()
                    return response
                problem = f"HTTP {response.status_code}"
            if time.monotonic() + pause > deadline:
                raise ServerUnreachable(f"{method} {path}: {problem}")
            time.sleep(pause)
            pause = min(pause * 2, RETRY_MAX)
            rewind = kwargs.get("content")
            if hasattr(rewind, "seek"):
                rewind.seek(0)

    def download(self, path: str, to: Path, *, patience: float) -> None:
        """Write the file at `path` to `to` (via a temporary name, renamed when whole)."""
        to.parent.mkdir(parents=True, exist_ok=True)
        partial = to.with_name(to.name + ".part")
        deadline = time.monotonic() + patience
        while True:
            try:
                with self.http.stream("GET", path) as response:
                    if response.status_code >= 500:
                        raise httpx.TransportError(f"HTTP {response.status_code}")
                    response.raise_for_status()
                    with partial.open("wb") as out:
                        for chunk in response.iter_bytes(1 << 20):
                            out.write(chunk)
                partial.replace(to)
                return
            except httpx.TransportError as exc:
                if time.monotonic() > deadline:
                    raise ServerUnreachable(f"GET {path}: {exc}") from None
                time.sleep(RETRY_FIRST)

    def close(self) -> None:
        self.http.close()
