"""Test helpers: waiting on conditions with deadlines, real server and worker processes."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import httpx

if TYPE_CHECKING:
    from sqlmodel import Session
    from trainboard.models import Run
    from trainboard.sweeps.space import SweepCreate
    from trainboard.training.spec import RunSpec

T = TypeVar("T")


def wait_until(
    condition: Callable[[], T],
    *,
    timeout: float = 30.0,
    interval: float = 0.05,
    what: str = "condition",
) -> T:
    """Poll `condition` until it returns something truthy; fail with `what` at the deadline."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def run_async(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to its end on an event loop of its own thread (Playwright's sync API
    keeps a loop running in the test's thread, where asyncio.run refuses to start another)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def process_env(home: Path, database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRAINBOARD_")}
    return (
        env
        | {
            "TRAINBOARD_HOME": str(home),
            "TRAINBOARD_DATABASE_URL": database_url,
            "PYTHONUNBUFFERED": "1",
        }
        | extra
    )


@dataclass
class Server:
    """A real `trainboard serve` process on a free 127.0.0.1 port."""

    home: Path
    database_url: str
    workers: int = 0
    env_extra: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Server:
        log = (self.home / f"server-{self.port}.log").open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "trainboard",
                "serve",
                "--port",
                str(self.port),
                "--workers",
                str(self.workers),
            ],
            env=process_env(self.home, self.database_url, **self.env_extra),
            stdout=log,
            stderr=subprocess.STDOUT,
        )

        def healthy() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"server exited with {self.process.returncode}: {self.log()}")
            try:
                return httpx.get(f"{self.url}/api/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(healthy, timeout=60, interval=0.1, what="the server to answer /api/health")
        return self

    def log(self) -> str:
        return (self.home / f"server-{self.port}.log").read_text(errors="replace")[-5000:]

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextmanager
def sqlite_server(home: Path, *, workers: int = 1) -> Iterator[Server]:
    """A real server on SQLite in `home` with `workers` embedded workers, stopped at the end."""
    server = Server(home, f"sqlite:///{home / 'trainboard.db'}", workers=workers).start()
    try:
        yield server
    finally:
        server.stop()


@dataclass
class WorkerProcess:
    """A real `trainboard worker` process."""

    home: Path
    database_url: str
    env_extra: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        log = (self.home / "workers.log").open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "trainboard", "worker", "--device", "cpu"],
            env=process_env(self.home, self.database_url, **self.env_extra),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def tiny_spec(**overrides: Any) -> dict[str, Any]:
    """The tests' one spec: trains in well under a second an epoch on CPU. Overrides replace
    whole top-level fields (`model={...}` replaces the model)."""
    spec: dict[str, Any] = {
        "name": "tiny",
        "dataset": {"name": "moons", "params": {"n_samples": 200}},
        "model": {"name": "mlp", "params": {"hidden_sizes": [16], "dropout": 0.0}},
        "optimizer": {"name": "adam", "lr": 0.01},
        "epochs": 3,
        "batch_size": 32,
        "deterministic": True,
    }
    return spec | overrides


def tiny_run_spec(**overrides: Any) -> RunSpec:
    """`tiny_spec` validated, for code that takes a RunSpec."""
    from trainboard.training.spec import RunSpec

    return RunSpec.model_validate(tiny_spec(**overrides))


def finished_sweep_row(session: Session, request: SweepCreate) -> int:
    """A completed Sweep of `request` written straight into the database, for tests and benches
    that need a finished sweep without training its trials; its id."""
    from trainboard.models import Sweep, SweepStatus, utcnow

    sweep = Sweep(
        name=request.name,
        status=SweepStatus.completed,
        config=request.model_dump(mode="json"),
        finished_at=utcnow(),
        seq=1,
    )
    session.add(sweep)
    session.flush()
    return sweep.id or 0


def finished_trial_run(
    request: SweepCreate, sweep_id: int, number: int, params: dict[str, Any]
) -> Run:
    """Trial `number` of that sweep as a worker leaves it, completed (not yet added)."""
    from trainboard.models import Run, RunStatus, utcnow
    from trainboard.sweeps.space import trial_spec

    spec = trial_spec(request.base, params, f"{request.name} #{number}")
    return Run(
        name=spec.display_name(),
        status=RunStatus.completed,
        spec=spec.model_dump(mode="json"),
        epochs=spec.epochs,
        epoch=spec.epochs,
        attempt=1,
        sweep_id=sweep_id,
        disk_bytes=0,
        options={"trial": number, "params": params},
        finished_at=utcnow(),
    )
